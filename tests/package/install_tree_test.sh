#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: install_tree_test.sh BUILD_DIR CONFIGURED_PREFIX CONFIGURED_SYSCONFDIR   (ctest: install_tree)
# The installed tree of a build (docs/operations.md, "Installing"):
#   1. `cmake --install BUILD_DIR --prefix TMP/tree`, another prefix than the configured one: the unit's
#      ExecStart and --config name files inside TMP/tree (the example configuration in TMP/tree/etc),
#      `systemd-analyze verify` passes, the man pages are there (naming the package's paths, not the
#      configured prefix's; no man warnings), and the installed programs default to the tree's own
#      configuration, TMP/tree/etc/hubprobe/hubprobe.toml (`hubprobed --check-config`, `hubprobe
#      check-config --help`): the unit's --config and the example are that file.
#   2. `DESTDIR=TMP/stage cmake --install BUILD_DIR` into the configured prefix: there the unit's --config
#      is CONFIGURED_SYSCONFDIR/hubprobe/hubprobe.toml, the example is installed there, and the staged
#      hubprobed defaults to it (under TMP/stage); the build tree's hubprobed defaults to it too.
set -uo pipefail
build=$1 prefix=$2 sysconfdir=$3
default_config=$sysconfdir/hubprobe/hubprobe.toml

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
step() { echo "== $*"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# exec_start UNIT: the words of ExecStart= (the [Service] section has one).
exec_start() { sed -n 's/^ExecStart=//p' "$1"; }

# check_default HUBPROBED EXPECTED: the file hubprobed reads without --config (--check-config says).
check_default() {
  local out
  out=$("$1" --check-config 2>&1)
  grep -qF "$2" <<<"$out" || fail "$1 --check-config did not read $2:"$'\n'"$out"
}

# ---- 1. another prefix ----------------------------------------------------------------------------------
tree=$tmp/tree
step "cmake --install $build --prefix $tree"
if ! out=$(cmake --install "$build" --prefix "$tree" 2>&1); then
  echo "FAIL: cmake --install failed:"$'\n'"$out" >&2
  exit 1
fi
unit=$tree/lib/systemd/system/hubprobed.service
[[ -f $unit ]] || {
  echo "FAIL: $unit was not installed"$'\n'"$out" >&2
  exit 1
}

# The example configuration lands in the tree's sysconfdir, as GNUInstallDirs would put it for that prefix.
tree_config=$tree/etc/hubprobe/hubprobe.toml
read -r -a words <<<"$(exec_start "$unit")"
step "ExecStart=${words[*]}"
[[ ${words[0]:-} == "$tree/sbin/hubprobed" ]] || fail "ExecStart runs ${words[0]:-nothing}, not $tree/sbin/hubprobed"
[[ -x ${words[0]:-/nonexistent} ]] || fail "ExecStart's ${words[0]:-} is not an executable file"
[[ ${words[1]:-} == --config && ${words[2]:-} == "$tree_config" ]] ||
  fail "ExecStart does not pass --config $tree_config: ${words[*]}"
[[ -f $tree_config ]] || fail "$tree_config (the unit's --config) was not installed"
cmp -s "$tree_config" "$(dirname "$0")/../../config/hubprobe.toml" ||
  fail "$tree_config is not config/hubprobe.toml"
grep -q "^Documentation=file:$tree/share/doc/hubprobe/operations.md$" "$unit" ||
  fail "Documentation= does not name $tree/share/doc/hubprobe/operations.md"
[[ -f $tree/share/doc/hubprobe/operations.md ]] || fail "operations.md is not in $tree/share/doc/hubprobe"
[[ -f $tree/bin/hubprobe && -x $tree/bin/hubprobe ]] || fail "$tree/bin/hubprobe is missing"
[[ -f $tree/lib/sysusers.d/hubprobe.conf ]] || fail "$tree/lib/sysusers.d/hubprobe.conf is missing"
# Nothing outside the tree: every file cmake says it installed is under it.
if outside=$(grep -v "^$tree/" "$build/install_manifest.txt"); then
  fail "installed outside $tree:"$'\n'"$outside"
fi

step "man pages"
for page in man1/hubprobe.1.gz man5/hubprobe.toml.5.gz man8/hubprobed.8.gz; do
  f=$tree/share/man/$page
  if [[ ! -f $f ]]; then
    fail "$f is missing"
    continue
  fi
  gzip -t "$f" || fail "$f is not gzip'ed"
  text=$(zcat "$f")
  # The package's paths, the same in every build: not those of the configured prefix.
  grep -qF /etc/hubprobe/hubprobe.toml <<<"$text" || fail "$f does not name /etc/hubprobe/hubprobe.toml"
  if [[ $default_config != /etc/hubprobe/hubprobe.toml ]] && grep -F "$default_config" <<<"$text"; then
    fail "$f names the configured prefix's $default_config"
  fi
  warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$f" 2>&1 >/dev/null)
  [[ -z $warnings ]] || fail "man warns about $f:"$'\n'"$warnings"
done

step "the installed programs' default: $tree_config (the tree's own, not $default_config)"
check_default "$tree/sbin/hubprobed" "$tree_config"
grep -qF "$tree_config: ok" <<<"$("$tree/sbin/hubprobed" --check-config 2>&1)" ||
  fail "$tree/sbin/hubprobed --check-config does not accept the installed example"
grep -qF "e.g. $tree_config" <<<"$("$tree/bin/hubprobe" check-config --help 2>&1)" ||
  fail "hubprobe check-config --help does not name $tree_config"

if command -v systemd-analyze >/dev/null; then
  step "systemd-analyze verify $unit"
  out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify failed:"$'\n'"$out"
  if grep -F hubprobed.service <<<"$out"; then fail "systemd-analyze verify has remarks on the unit"; fi
else
  fail "systemd-analyze is not installed (Debian package systemd)"
fi

# hubprobe costmap's unit (docs/costmap.md): the tree's hubprobe, the tree's configuration, verify clean.
costmap_unit=$tree/lib/systemd/system/hubprobe-costmap.service
step "$costmap_unit"
if [[ ! -f $costmap_unit ]]; then
  fail "$costmap_unit was not installed"
else
  grep -qx "ExecStart=$tree/bin/hubprobe costmap \$HUBPROBE_COSTMAP_ARGS" "$costmap_unit" ||
    fail "$costmap_unit: ExecStart does not run $tree/bin/hubprobe costmap"
  grep -qxF "Environment=\"HUBPROBE_COSTMAP_ARGS=--config $tree_config\"" "$costmap_unit" ||
    fail "$costmap_unit: the default flags do not name $tree_config"
  grep -qxF "EnvironmentFile=-$tree/etc/hubprobe/costmap.env" "$costmap_unit" ||
    fail "$costmap_unit: EnvironmentFile= is not $tree/etc/hubprobe/costmap.env"
  if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify "$costmap_unit" 2>&1) || fail "systemd-analyze verify $costmap_unit failed:"$'\n'"$out"
    if grep -F hubprobe-costmap.service <<<"$out"; then fail "systemd-analyze verify has remarks on $costmap_unit"; fi
  fi
fi

# ---- 2. the configured prefix, staged -----------------------------------------------------------------
stage=$tmp/stage
step "DESTDIR=$stage cmake --install $build (prefix $prefix)"
if ! out=$(DESTDIR=$stage cmake --install "$build" 2>&1); then
  fail "cmake --install with DESTDIR failed:"$'\n'"$out"
else
  unit=$stage$prefix/lib/systemd/system/hubprobed.service
  read -r -a words <<<"$(exec_start "$unit")"
  [[ ${words[0]:-} == "${prefix%/}/sbin/hubprobed" && -x $stage${words[0]:-/nonexistent} ]] ||
    fail "ExecStart runs ${words[0]:-nothing}, not the installed ${prefix%/}/sbin/hubprobed"
  [[ ${words[2]:-} == "$default_config" ]] ||
    fail "the unit's --config ${words[2]:-} is not the configured prefix's $default_config"
  [[ -f $stage$default_config ]] || fail "the example configuration is not at $default_config"
  # Staged, the prefix it runs from is $stage$prefix: its default is the staged example.
  [[ $sysconfdir == "$prefix"/* ]] && check_default "$stage${words[0]:-}" "$stage$default_config"
fi

step "the build tree's hubprobed: the configured default $default_config"
check_default "$build/agent/hubprobed" "$default_config"

if ((failures)); then
  echo "install_tree: $failures check(s) failed" >&2
  exit 1
fi
echo "install_tree: ok"
