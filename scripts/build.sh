#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: scripts/build.sh [--target NAME[,NAME...]]... [CMAKE ARGS...]
# Configures and builds hubprobe into build/ (or $HUBPROBE_BUILD_DIR): every target (what
# scripts/test.sh needs), or only the targets named with --target (repeatable, or comma-separated),
# e.g. `--target hubprobe,hubprobed,hubprobe-linkemu` for what the demo runs. Other arguments go to
# cmake when configuring. Progress is cmake's own: a [NN%] line per step.
# With ccache installed the compilers run through it (unless CMAKE ARGS set a launcher, or
# HUBPROBE_CCACHE=0), with the source tree as its base directory: build directories side by side
# (build/, build-deb/ of scripts/package.sh, a clone's build/) share compiled objects.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${HUBPROBE_BUILD_DIR:-$top/build}

targets=()
cmake_args=()
while (($#)); do
  case $1 in
  --target)
    [[ $# -ge 2 && -n $2 ]] || {
      echo "build.sh: --target needs a target name" >&2
      exit 2
    }
    IFS=, read -ra names <<<"$2"
    targets+=("${names[@]}")
    shift 2
    ;;
  --target=*)
    IFS=, read -ra names <<<"${1#--target=}"
    targets+=("${names[@]}")
    shift
    ;;
  -h | --help)
    sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    cmake_args+=("$1")
    shift
    ;;
  esac
done

if [[ ${HUBPROBE_CCACHE:-1} != 0 ]] && command -v ccache >/dev/null; then
  if ! [[ " ${cmake_args[*]} " == *COMPILER_LAUNCHER=* ]]; then
    cmake_args+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  # Also for a launcher given here or kept in the build's cache.
  export CCACHE_BASEDIR=$top
fi

echo "build.sh: configuring $build"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}" >/dev/null
if ((${#targets[@]})); then
  echo "build.sh: building ${targets[*]}"
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
else
  echo "build.sh: building everything"
  cmake --build "$build" -j"$(nproc)"
fi
