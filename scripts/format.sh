#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Formats C, C++ and BPF sources with clang-format; --check only reports (CI).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mapfile -t files < <(git ls-files -- '*.cpp' '*.h' '*.c' | grep -v '^build')
[[ ${#files[@]} -eq 0 ]] && exit 0
if [[ ${1:-} == --check ]]; then
  clang-format --dry-run --Werror "${files[@]}"
else
  clang-format -i "${files[@]}"
fi
