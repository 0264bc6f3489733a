#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite, as CI runs it: install dependencies, check formatting, build with warnings as
# errors, run unit, BPF and namespace integration tests, the unit tests again under ASan/UBSan, and the
# libFuzzer targets for a bounded time. Run as root (namespaces, BPF). With HUBPROBE_REQUIRE_PRIVILEGED=1
# (set by .ci/run) a test that would skip for lack of privilege or a kernel feature fails instead.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fuzz_seconds=${HUBPROBE_FUZZ_SECONDS:-30}

step() { printf '\n=== %s\n' "$*"; }

if [[ $(id -u) -eq 0 ]]; then
  step "dependencies"
  scripts/setup.sh
else
  echo "test.sh: not root: skipping the package check; privileged tests will skip" >&2
fi

step "format check (clang-format)"
scripts/format.sh --check

step "build (warnings are errors)"
HUBPROBE_BUILD_DIR="$top/build" scripts/build.sh -DHUBPROBE_WERROR=ON

step "unit, BPF and integration tests"
ctest_log=$(mktemp)
trap 'rm -f "$ctest_log"' EXIT
(cd build && ctest --output-on-failure -j2 --timeout 600) | tee "$ctest_log"
if [[ ${HUBPROBE_REQUIRE_PRIVILEGED:-0} == 1 ]] && grep -q '\*\*\*Skipped' "$ctest_log"; then
  echo "test.sh: tests were skipped although HUBPROBE_REQUIRE_PRIVILEGED=1" >&2
  exit 1
fi

step "unit tests under AddressSanitizer and UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHUBPROBE_SANITIZE=ON -DHUBPROBE_WERROR=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target hubprobe_unit_tests hubprobe_component_tests
for suite in hubprobe_unit_tests hubprobe_component_tests; do
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build-asan/tests/$suite" --gtest_brief=1
done

step "fuzzing (${fuzz_seconds}s per target)"
scripts/fuzz.sh --seconds "$fuzz_seconds"

step "all tests passed"
