#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: scripts/testbed.sh up [--detach] TOPOLOGY.toml     (as root)
#        scripts/testbed.sh down TOPOLOGY.toml
#        scripts/testbed.sh exec TOPOLOGY.toml HUB COMMAND [ARG...]
#        scripts/testbed.sh show TOPOLOGY.toml
# Builds an emulated WAN out of network namespaces from a topology file (docs/testbed.md):
#   - one namespace hptb-<hub> per [[hub]],
#   - per [[link]] a backbone namespace hptb-bb<N> running hubprobe-linkemu between two veths, with the
#     link's delay / jitter / loss in each direction:
#       hptb-<a>  hp-<b> 198.18.N.1/24 --veth-- bl0 [ hptb-bb<N>: linkemu ] br0 --veth-- hp-<a> 198.18.N.2/24  hptb-<b>
#   - TSO/GSO/tx-checksum off on the hub ends, GRO off on the backbone ends, IPv6 off (linkemu README).
# Addresses only from 198.18.0.0/15 (link N: 198.18.N.0/24, N = 1..254), only inside the namespaces.
# `up` stays in the foreground and tears everything down on exit, Ctrl-C or SIGTERM; `up --detach`
# leaves it running for `down`. A failed `up` removes what it built. State (namespaces, PIDs, control
# sockets, logs, an address table) lives in $HPTB_STATE_DIR (default ${TMPDIR:-/tmp}/hptb-<topology>).
# `exec` runs a command in a hub's namespace; `show` prints the addresses and the emulators' settings.
#
# Environment: HUBPROBE_LINKEMU  path of hubprobe-linkemu (default: build tree, then PATH)
#              HUBPROBE_BUILD_DIR build directory (default: build/)
# Only point-to-point links between hubs for now (one link per hub pair).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

die() {
  printf 'testbed.sh: %s\n' "$*" >&2
  exit 1
}
usage() {
  sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# parse_topology FILE: prints "hub NAME" and "link A B DELAY JITTER LOSS" lines, or fails.
# Format: TOML subset — [[hub]] / [[link]] tables of `key = "value"` (or bare value) lines, # comments.
parse_topology() {
  awk '
    function flush() {
      if (sec == "hub") {
        if (!("name" in kv)) { print "error: [[hub]] without name" ; bad = 1 }
        else print "hub", kv["name"]
      } else if (sec == "link") {
        if (!("a" in kv) || !("b" in kv)) { print "error: [[link]] without a or b"; bad = 1 }
        else print "link", kv["a"], kv["b"], ("delay" in kv ? kv["delay"] : "0ms"), \
                   ("jitter" in kv ? kv["jitter"] : "0"), ("loss" in kv ? kv["loss"] : "0%")
      }
      delete kv
    }
    { sub(/#.*/, ""); gsub(/^[ \t]+|[ \t]+$/, "") }
    $0 == "" { next }
    /^\[\[[a-z]+\]\]$/ { flush(); sec = substr($0, 3, length($0) - 4); next }
    /^\[/ { print "error: unsupported table " $0; bad = 1; next }
    /^[A-Za-z_]+[ \t]*=/ {
      key = $0; sub(/[ \t]*=.*/, "", key)
      val = $0; sub(/^[^=]*=[ \t]*/, "", val); gsub(/^"|"$/, "", val)
      kv[key] = val; next
    }
    { print "error: cannot parse line: " $0; bad = 1 }
    END { flush(); exit bad }
  ' "$1"
}

[[ $# -ge 2 ]] || usage
cmd=$1
shift
detach=0
if [[ $cmd == up && ${1:-} == --detach ]]; then
  detach=1
  shift
fi
topo=$1
shift
[[ -r $topo ]] || die "cannot read topology '$topo'"
topo_name=$(basename "$topo" .toml)
state=${HPTB_STATE_DIR:-${TMPDIR:-/tmp}/hptb-$topo_name}

parsed=$(parse_topology "$topo") || die "$topo: $(grep '^error' <<<"$parsed" | head -1)"
mapfile -t hubs < <(awk '$1 == "hub" { print $2 }' <<<"$parsed")
mapfile -t links < <(awk '$1 == "link" { print $2, $3, $4, $5, $6 }' <<<"$parsed")
[[ ${#hubs[@]} -ge 1 ]] || die "$topo: no [[hub]]"
[[ ${#links[@]} -le 254 ]] || die "$topo: at most 254 links"
for h in "${hubs[@]}"; do
  [[ $h =~ ^[a-z0-9][a-z0-9-]{0,11}$ ]] || die "hub name '$h': 1-12 of [a-z0-9-] (interface names are hp-<hub>)"
done
[[ $(printf '%s\n' "${hubs[@]}" | sort | uniq -d) == "" ]] || die "$topo: duplicate hub names"
declare -A seen=()
for l in "${links[@]}"; do
  read -r a b _ <<<"$l"
  [[ " ${hubs[*]} " == *" $a "* && " ${hubs[*]} " == *" $b "* ]] || die "link $a-$b: unknown hub"
  [[ $a != "$b" ]] || die "link $a-$b: a link joins two different hubs"
  pair=$(printf '%s\n' "$a" "$b" | sort | tr '\n' ' ')
  [[ -z ${seen[$pair]:-} ]] || die "link $a-$b: only one link per hub pair for now"
  seen[$pair]=1
done

ns_of() { printf 'hptb-%s' "$1"; }

# Removes everything recorded in the state directory. Safe to call more than once.
teardown() {
  if [[ -n ${sleep_pid:-} ]]; then kill "$sleep_pid" 2>/dev/null || true; fi
  [[ -d $state ]] || return 0
  local pid ns
  if [[ -f $state/pids ]]; then
    while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$state/pids"
    for _ in $(seq 20); do
      local alive=0
      while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$state/pids"
      [[ $alive == 0 ]] && break
      sleep 0.1
    done
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$state/pids"
  fi
  if [[ -f $state/namespaces ]]; then
    while read -r ns; do ip netns del "$ns" 2>/dev/null || true; done <"$state/namespaces"
  fi
  rm -rf "$state"
}

linkemu_bin() {
  if [[ -n ${HUBPROBE_LINKEMU:-} ]]; then
    printf '%s' "$HUBPROBE_LINKEMU"
  elif [[ -x ${HUBPROBE_BUILD_DIR:-$top/build}/tests/linkemu/hubprobe-linkemu ]]; then
    printf '%s' "${HUBPROBE_BUILD_DIR:-$top/build}/tests/linkemu/hubprobe-linkemu"
  else
    command -v hubprobe-linkemu || die "hubprobe-linkemu not found (build it, or set HUBPROBE_LINKEMU)"
  fi
}

add_ns() {
  echo "$1" >>"$state/namespaces"  # recorded first: a signal right after `ip netns add` leaves nothing
  ip netns add "$1"
  ip -n "$1" link set dev lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

up() {
  [[ $EUID -eq 0 ]] || die "needs root (network namespaces)"
  local emu
  emu=$(linkemu_bin)
  [[ ! -e $state ]] || die "$state exists: already up? (scripts/testbed.sh down $topo)"
  for h in "${hubs[@]}"; do
    ! ip netns list | grep -qw "$(ns_of "$h")" || die "namespace $(ns_of "$h") exists already"
  done
  mkdir -p "$state"
  trap 'teardown' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  : >"$state/namespaces"
  : >"$state/pids"
  : >"$state/hosts"
  for h in "${hubs[@]}"; do add_ns "$(ns_of "$h")"; done
  local n=0 a b delay jitter loss bb
  for l in "${links[@]}"; do
    read -r a b delay jitter loss <<<"$l"
    n=$((n + 1))
    bb=hptb-bb$n
    add_ns "$bb"
    ip link add "hp-$b" netns "$(ns_of "$a")" type veth peer name bl0 netns "$bb"
    ip link add "hp-$a" netns "$(ns_of "$b")" type veth peer name br0 netns "$bb"
    ip -n "$(ns_of "$a")" addr add "198.18.$n.1/24" dev "hp-$b"
    ip -n "$(ns_of "$b")" addr add "198.18.$n.2/24" dev "hp-$a"
    ip netns exec "$(ns_of "$a")" ethtool -K "hp-$b" tso off gso off tx off >/dev/null
    ip netns exec "$(ns_of "$b")" ethtool -K "hp-$a" tso off gso off tx off >/dev/null
    ip netns exec "$bb" ethtool -K bl0 gro off tso off gso off tx off >/dev/null
    ip netns exec "$bb" ethtool -K br0 gro off tso off gso off tx off >/dev/null
    ip -n "$(ns_of "$a")" link set dev "hp-$b" up
    ip -n "$(ns_of "$b")" link set dev "hp-$a" up
    ip -n "$bb" link set dev bl0 up
    ip -n "$bb" link set dev br0 up
    setsid ip netns exec "$bb" "$emu" --a bl0 --b br0 --delay "$delay" --jitter "$jitter" --loss "$loss" \
      --control "$state/link$n.sock" </dev/null >"$state/link$n.log" 2>&1 &
    echo $! >>"$state/pids"
    for _ in $(seq 50); do
      [[ -S $state/link$n.sock ]] && break
      kill -0 "$!" 2>/dev/null || die "linkemu for $a-$b exited: $(cat "$state/link$n.log")"
      sleep 0.1
    done
    [[ -S $state/link$n.sock ]] || die "linkemu for $a-$b did not start: $(cat "$state/link$n.log")"
    printf '%s %s 198.18.%d.1 %s hp-%s link%d\n' "$a" "$b" "$n" "$(ns_of "$a")" "$b" "$n" >>"$state/hosts"
    printf '%s %s 198.18.%d.2 %s hp-%s link%d\n' "$b" "$a" "$n" "$(ns_of "$b")" "$a" "$n" >>"$state/hosts"
  done
  show
  if [[ $detach == 1 ]]; then
    trap - EXIT INT TERM
    echo "up (detached); state in $state; tear down with: $0 down $topo" >&2
    return 0
  fi
  echo "up; Ctrl-C tears it down (state in $state)" >&2
  while true; do
    sleep 3600 &
    sleep_pid=$!
    wait "$sleep_pid" || true
  done
}

show() {
  [[ -d $state ]] || die "not up ($state missing)"
  echo "# hub peer address namespace interface link"
  cat "$state/hosts"
  local n=0 l emu
  emu=$(linkemu_bin)
  for l in "${links[@]}"; do
    n=$((n + 1))
    echo "# link$n ($l):"
    "$emu" --ctl "$state/link$n.sock" show | sed 's/^/#   /'
  done
}

case $cmd in
up) up ;;
down) teardown ;;
show) show ;;
exec)
  [[ $# -ge 2 ]] || usage
  hub=$1
  shift
  [[ " ${hubs[*]} " == *" $hub "* ]] || die "unknown hub '$hub'"
  exec ip netns exec "$(ns_of "$hub")" "$@"
  ;;
*) usage ;;
esac
