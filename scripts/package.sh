#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: scripts/package.sh [--build-dir DIR] [--no-lintian] [CMAKE ARGS...]
# Builds the Debian package, build-deb/hubprobe_<version>-<revision>_<arch>.deb (docs/operations.md,
# "Packaging"):
#   1. configures DIR (default build-deb/, or $HUBPROBE_DEB_BUILD_DIR) with the prefix /usr, which the
#      package installs to (any build makes the same package: `cd build && cpack -G DEB` works too; this
#      is a convenience); without the test suite; linked with Debian's hardening link flags
#      (-z relro -z now). CMAKE ARGS are added (e.g. compile flags).
#   2. builds it (scripts/build.sh, so through ccache when installed): hubprobe, hubprobed, man pages,
#   3. runs `cpack -G DEB` there, and lintian on the result (not with --no-lintian).
# The last line printed is the path of the .deb. Exit status: 0, or non-zero when a step failed or
# lintian reported an error.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${HUBPROBE_DEB_BUILD_DIR:-$top/build-deb}
lintian=1
cmake_args=()
while (($#)); do
  case $1 in
  --build-dir)
    [[ $# -ge 2 ]] || {
      echo "package.sh: --build-dir needs a directory" >&2
      exit 2
    }
    build=$2
    shift 2
    ;;
  --no-lintian)
    lintian=0
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
mkdir -p "$build"
build=$(cd "$build" && pwd)

for tool in cpack dpkg-shlibdeps pandoc help2man; do
  command -v "$tool" >/dev/null || {
    echo "package.sh: $tool is missing (scripts/setup.sh installs it)" >&2
    exit 1
  }
done

# Everything: without the tests that is what cpack builds anyway (its "preinstall" step builds all).
HUBPROBE_BUILD_DIR=$build "$top/scripts/build.sh" -DCMAKE_INSTALL_PREFIX=/usr -DHUBPROBE_TESTS=OFF -DHUBPROBE_MAN_PAGES=ON \
  "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-z,relro -Wl,-z,now" "${cmake_args[@]}"

echo "package.sh: cpack -G DEB in $build"
rm -f "$build"/hubprobe_*.deb
(cd "$build" && cpack -G DEB)
debs=("$build"/hubprobe_*.deb)
[[ -f ${debs[0]} ]] || {
  echo "package.sh: cpack made no hubprobe_*.deb in $build" >&2
  exit 1
}
deb=${debs[0]}

if ((lintian)); then
  if command -v lintian >/dev/null; then
    echo "package.sh: lintian $(basename "$deb")"
    # Errors fail (exit status 1); warnings are printed (docs/operations.md explains those left).
    lintian --fail-on error "$deb"
  else
    echo "package.sh: lintian is not installed (scripts/setup.sh installs it): package not checked" >&2
  fi
fi
echo "$deb"
