#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets (tests/fuzz/, build-fuzz/, clang, -DHUBPROBE_FUZZ=ON: ASan, UBSan) and runs
# each one for INPUTS executions (default 10000000) from a copy of its seed corpus tests/fuzz/corpus/NAME/
# (with the libFuzzer dictionary tests/fuzz/dict/NAME.dict when there is one).
# Prints per target the executions, the coverage (libFuzzer's cov: and ft: at the end), the units it
# added to the corpus and the crashes; exits non-zero when any target crashed (UBSan reports count as
# crashes), keeping the crash file under build-fuzz/fuzz-artifacts/TARGET/ and the log under
# build-fuzz/fuzz-logs/TARGET.log.
#
#   scripts/fuzz.sh [--minimize] [--seconds S] [INPUTS] [TARGET...]
#
#   --minimize   merge what each run found (-merge=1: only inputs with new coverage) into its seed corpus
#   --seconds S  a time budget per target instead of a number of inputs (scripts/test.sh: 30 s)
#   TARGET       fuzz_config, fuzz_stamp_engines, ... (default: every tests/fuzz/fuzz_*.cpp)
#
# HUBPROBE_FUZZ_JOBS (default 2) bounds the build's parallelism; the targets run one after the other.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

usage() {
  sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

minimize=0
seconds=""
inputs=10000000
targets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --minimize) minimize=1 ;;
    --seconds)
      [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage
      seconds=$2
      shift
      ;;
    -h | --help) usage ;;
    -*) usage ;;
    *)
      if [[ $1 =~ ^[0-9]+$ ]]; then
        inputs=$1
      else
        targets+=("$1")
      fi
      ;;
  esac
  shift
done
if [[ ${#targets[@]} -eq 0 ]]; then
  for src in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi
for name in "${targets[@]}"; do
  [[ -f tests/fuzz/$name.cpp ]] || {
    echo "fuzz.sh: no target $name (tests/fuzz/$name.cpp)" >&2
    exit 2
  }
done

build="build-fuzz"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUBPROBE_FUZZ=ON \
  -DHUBPROBE_TESTS=ON "${launcher[@]}" >/dev/null
cmake --build "$build" -j"${HUBPROBE_FUZZ_JOBS:-2}" --target "${targets[@]}"

# UBSan is built recoverable for the fuzz tree: halting turns a report into a crash libFuzzer keeps.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

work_root=$(mktemp -d)
trap 'rm -rf "$work_root"' EXIT
mkdir -p "$build/fuzz-logs"
if [[ -n $seconds ]]; then
  budget=(-max_total_time="$seconds")
  echo "fuzz.sh: ${seconds}s per target"
else
  budget=(-runs="$inputs")
  echo "fuzz.sh: $inputs inputs per target"
fi

failed=()
rows=()
for name in "${targets[@]}"; do
  seed="tests/fuzz/corpus/${name#fuzz_}"
  corpus="$work_root/$name"
  artifacts="$build/fuzz-artifacts/$name"
  log="$build/fuzz-logs/$name.log"
  mkdir -p "$corpus" "$artifacts"
  [[ -d $seed ]] && cp -r "$seed"/. "$corpus"/
  dict=()
  [[ -f tests/fuzz/dict/${name#fuzz_}.dict ]] && dict=(-dict="tests/fuzz/dict/${name#fuzz_}.dict")
  started=$SECONDS
  touch "$work_root/$name.start"
  status=0
  "$build/tests/fuzz/$name" "${budget[@]}" "${dict[@]}" -print_final_stats=1 -timeout=20 -artifact_prefix="$artifacts/" \
    "$corpus" >"$log" 2>&1 || status=$?
  elapsed=$((SECONDS - started))
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
  coverage=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
  # Artifacts of this run only (the directory keeps those of earlier runs).
  crashes=$(find "$artifacts" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) -newer "$work_root/$name.start" | wc -l)
  if [[ $status -ne 0 ]]; then
    [[ $crashes -eq 0 ]] && crashes=1  # a failure without an artifact (the target could not start)
    failed+=("$name")
    echo "fuzz.sh: $name failed (exit $status); log $log:" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written)' "$log" | head -n 8 >&2 || true
  fi
  rows+=("$(printf '%-20s %12s  %-22s %9s %8s %6ss' "$name" "${executions:-?}" "${coverage:-?}" "${added:-?}" \
    "$crashes" "$elapsed")")
  if [[ $minimize -eq 1 && $status -eq 0 ]]; then
    mkdir -p "$seed"
    before=$(find "$seed" -type f | wc -l)
    "$build/tests/fuzz/$name" -merge=1 "$seed" "$corpus" >"$build/fuzz-logs/$name.merge.log" 2>&1
    echo "fuzz.sh: $name: merged $(($(find "$seed" -type f | wc -l) - before)) inputs into $seed"
  fi
done

printf '\n%-20s %12s  %-22s %9s %8s %7s\n' target executions coverage new_units crashes time
printf '%s\n' "${rows[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: crashes in ${failed[*]} (files under $build/fuzz-artifacts/)" >&2
  exit 1
fi
