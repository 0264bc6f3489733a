#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Configures and builds hubprobe into build/ (or $HUBPROBE_BUILD_DIR). Extra arguments go to cmake.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${HUBPROBE_BUILD_DIR:-$top/build}
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
