#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: deb_test.sh contents|lintian DEB_BUILD_DIR   (ctest: package_deb_contents, package_deb_lintian)
# Checks the .deb that `cpack -G DEB` made in DEB_BUILD_DIR (the test package_deb_build, or
# scripts/package.sh; docs/operations.md, "Packaging").
#   contents  `dpkg --root` unpacks it into a scratch root (no maintainer script runs: unpacking runs
#             none, as the package has no preinst) and dpkg registers /etc/hubprobe/hubprobe.toml as a
#             conffile ("newconffile" until configured); then, in the unpacked tree: files only under /usr and /etc/hubprobe; the unit's
#             ExecStart binary and --config file exist, the --config file is a conffile and so is every
#             file under /etc; the unit passes `systemd-analyze verify` (run on a copy whose ExecStart
#             points into the scratch root); the man pages; the binaries are stripped; run from /usr
#             (the package's bin and sbin mounted over the host's in a private mount namespace: root),
#             hubprobed and hubprobe default to /etc/hubprobe/hubprobe.toml (--check-config, starting
#             without --config, check-config --help); copyright, changelog.Debian.gz; the maintainer scripts parse.
#   lintian   lintian reports no error (warnings are printed; docs/operations.md explains them).
# Exit 77 (skipped) when a tool is missing.
set -uo pipefail
check=${1:-} dir=${2:-}
if ! [[ ($check == contents || $check == lintian) && -d $dir ]]; then
  echo "usage: deb_test.sh contents|lintian DEB_BUILD_DIR" >&2
  exit 2
fi
debs=("$dir"/hubprobe_*.deb)
[[ -f ${debs[0]} ]] || {
  echo "FAIL: no hubprobe_*.deb in $dir (the test package_deb_build makes it)" >&2
  exit 1
}
((${#debs[@]} == 1)) || echo "note: ${#debs[@]} packages in $dir, checking the newest" >&2
deb=$(ls -t "${debs[@]}" | head -n 1)
config=/etc/hubprobe/hubprobe.toml

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
step() { echo "== $*"; }
need() {
  command -v "$1" >/dev/null || {
    echo "SKIP: $1 is not installed (scripts/setup.sh installs it)" >&2
    exit 77
  }
}

if [[ $check == lintian ]]; then
  need lintian
  step "lintian $(basename "$deb")"
  out=$(lintian "$deb" 2>&1)
  rc=$?
  printf '%s\n' "$out"
  if ((rc != 0)) || grep -q '^E: ' <<<"$out"; then
    echo "FAIL: lintian reports errors (exit status $rc)" >&2
    exit 1
  fi
  echo "package_deb_lintian: ok, no errors"
  exit 0
fi

need dpkg
need dpkg-deb
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- dpkg --root: the package as dpkg installs it (unpacked, not configured) ------------------------------
root=$tmp/root
step "dpkg --root $root --unpack $(basename "$deb")"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/log"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
# Dependencies are not installed in the scratch root; dpkg checks nothing else against it.
if ! out=$(dpkg --root="$root" --force-depends --unpack "$deb" 2>&1); then
  echo "FAIL: dpkg --unpack failed:"$'\n'"$out" >&2
  exit 1
fi
registered=$(dpkg-query --root="$root" -W -f='${Conffiles}\n' hubprobe 2>&1)
grep -qE "^ $config ([0-9a-f]{32}|newconffile)$" <<<"$registered" ||
  fail "dpkg did not register $config as a conffile: $registered"

# ---- the unpacked tree ----------------------------------------------------------------------------------
tree=$tmp/tree control=$tmp/control
if ! dpkg-deb -x "$deb" "$tree" || ! dpkg-deb -e "$deb" "$control"; then
  echo "FAIL: dpkg-deb could not unpack $deb" >&2
  exit 1
fi

step "files under /usr and /etc/hubprobe only"
if stray=$(cd "$tree" && find . ! -type d | sed 's|^\.||' | grep -vE '^/(usr/|etc/hubprobe/)'); then
  fail "files outside /usr and /etc/hubprobe:"$'\n'"$stray"
fi

step "conffiles"
[[ -f $control/conffiles ]] || fail "DEBIAN/conffiles is missing"
grep -qxF "$config" "$control/conffiles" 2>/dev/null || fail "$config is not in DEBIAN/conffiles"
while read -r f; do
  [[ -z $f || -f $tree$f ]] || fail "conffile $f is not in the package"
done <"$control/conffiles"
while read -r f; do
  grep -qxF "$f" "$control/conffiles" || fail "$f is under /etc but not a conffile"
done < <(cd "$tree" && find etc ! -type d | sed 's|^|/|')

step "the unit"
unit=$tree/usr/lib/systemd/system/hubprobed.service
if [[ ! -f $unit ]]; then
  fail "usr/lib/systemd/system/hubprobed.service is missing"
else
  read -r -a words <<<"$(sed -n 's/^ExecStart=//p' "$unit")"
  echo "ExecStart=${words[*]}"
  [[ ${words[0]:-} == /usr/sbin/hubprobed ]] || fail "ExecStart runs ${words[0]:-nothing}, not /usr/sbin/hubprobed"
  [[ -f $tree${words[0]:-/nonexistent} && -x $tree${words[0]:-/nonexistent} ]] ||
    fail "ExecStart's ${words[0]:-} is not an executable file of the package"
  [[ ${words[1]:-} == --config && ${words[2]:-} == "$config" ]] || fail "ExecStart does not pass --config $config"
  [[ -f $tree${words[2]:-/nonexistent} ]] || fail "the unit's --config ${words[2]:-} is not in the package"
  grep -qxF "${words[2]:-}" "$control/conffiles" || fail "the unit's --config ${words[2]:-} is not a conffile"
  doc=$(sed -n 's/^Documentation=file://p' "$unit")
  [[ -f $tree$doc ]] || fail "Documentation= names $doc, which is not in the package"
  if command -v systemd-analyze >/dev/null; then
    # verify needs ExecStart's binary on this host: a copy of the unit pointing into the scratch root.
    sed "s|^ExecStart=/usr/sbin/hubprobed|ExecStart=$tree/usr/sbin/hubprobed|" "$unit" >"$tmp/hubprobed.service"
    out=$(systemd-analyze verify "$tmp/hubprobed.service" 2>&1) || fail "systemd-analyze verify failed:"$'\n'"$out"
    if grep -F hubprobed.service <<<"$out"; then fail "systemd-analyze verify has remarks on the unit"; fi
  else
    fail "systemd-analyze is not installed (Debian package systemd)"
  fi
fi
[[ -f $tree/usr/lib/sysusers.d/hubprobe.conf ]] || fail "usr/lib/sysusers.d/hubprobe.conf is missing"
grep -q '^User=hubprobe$' "$unit" && ! grep -q '^u hubprobe ' "$tree/usr/lib/sysusers.d/hubprobe.conf" &&
  fail "sysusers.d/hubprobe.conf does not create the unit's user"

step "man pages"
for page in man1/hubprobe.1.gz man5/hubprobe.toml.5.gz man8/hubprobed.8.gz; do
  f=$tree/usr/share/man/$page
  if [[ ! -f $f ]]; then
    fail "usr/share/man/$page is missing"
    continue
  fi
  # grep -q would stop reading early, and zcat's SIGPIPE fail the pipeline (pipefail).
  zcat "$f" | grep -F "$config" >/dev/null || fail "$page does not name $config"
done

step "binaries"
for b in usr/bin/hubprobe usr/sbin/hubprobed; do
  [[ -x $tree/$b ]] || fail "$b is missing"
  info=$(file -b "$tree/$b" 2>&1)
  [[ $info == *ELF* && $info == *", stripped"* ]] || fail "$b is not a stripped ELF binary: $info"
done

step "the programs' default at /usr: $config"
# run_at_usr DIR PROGRAM ARGS...: the package's usr/DIR/PROGRAM run as /usr/DIR/PROGRAM, with the package's
# usr/DIR mounted over the host's in a mount namespace of its own (the host's /usr/DIR is not touched).
# There an empty /etc/hubprobe hides the host's, should it have one: the agent never finds a file to
# start with, and fails at once.
run_at_usr() {
  local dir=$1 program=$2
  shift 2
  timeout 20 unshare --mount --propagation private -- sh -c '
    { [ ! -d /etc/hubprobe ] || mount -t tmpfs tmpfs /etc/hubprobe; } &&
      mount --bind "$1" "/usr/$2" && shift 2 && exec "$@"' sh "$tree/usr/$dir" "$dir" "/usr/$dir/$program" "$@"
}
if ! unshare --mount --propagation private -- true 2>/dev/null; then
  msg="unshare --mount is not allowed (not root): the programs' default at /usr is not checked"
  [[ ${HUBPROBE_REQUIRE_PRIVILEGED:-0} == 1 ]] && fail "$msg" || echo "note: $msg" >&2
else
  # Without --config: --check-config reads the default, and the agent logs it when it starts.
  out=$(run_at_usr sbin hubprobed --check-config 2>&1)
  grep -qF "$config" <<<"$out" || fail "/usr/sbin/hubprobed --check-config did not read $config: $out"
  out=$(run_at_usr sbin hubprobed 2>&1)
  grep -qF "$config: cannot open" <<<"$out" || fail "/usr/sbin/hubprobed did not try to read $config: $out"
  out=$(run_at_usr bin hubprobe check-config --help 2>&1)
  grep -qF "e.g. $config" <<<"$out" || fail "/usr/bin/hubprobe check-config --help does not name $config: $out"
fi

step "copyright, changelog, maintainer scripts"
head -n 1 "$tree/usr/share/doc/hubprobe/copyright" 2>/dev/null |
  grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' ||
  fail "usr/share/doc/hubprobe/copyright is missing or not machine-readable (DEP-5)"
version=$(dpkg-deb -f "$deb" Version)
zcat "$tree/usr/share/doc/hubprobe/changelog.Debian.gz" 2>/dev/null | head -n 1 | grep -qF "hubprobe ($version)" ||
  fail "changelog.Debian.gz does not start with the entry for $version"
for s in postinst prerm postrm; do
  [[ -x $control/$s ]] || fail "DEBIAN/$s is missing or not executable"
  sh -n "$control/$s" || fail "DEBIAN/$s does not parse"
done
desc=$(dpkg-deb -f "$deb" Description)
(($(wc -l <<<"$desc") >= 3)) || fail "the Description has no extended description: $desc"
[[ -n $(dpkg-deb -f "$deb" Section) && -n $(dpkg-deb -f "$deb" Priority) ]] || fail "Section or Priority is missing"

if ((failures)); then
  echo "package_deb_contents: $failures check(s) failed" >&2
  exit 1
fi
echo "package_deb_contents: ok ($(basename "$deb"))"
