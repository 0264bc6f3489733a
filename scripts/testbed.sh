#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: scripts/testbed.sh up [--detach] [TOPOLOGY.toml]    (as root)
#        scripts/testbed.sh down [TOPOLOGY.toml]
#        scripts/testbed.sh show [TOPOLOGY.toml]
#        scripts/testbed.sh exec [TOPOLOGY.toml] HUB COMMAND [ARG...]
#        scripts/testbed.sh check [TOPOLOGY.toml]              (no root: validate, print the nominal RTTs)
# TOPOLOGY defaults to config/topology/eight-regions.toml (the eight hub regions of "East Data West
# Computing"). Builds an emulated WAN out of network namespaces from a topology file (docs/testbed.md):
#   - one namespace <prefix>-<hub> per [[hub]],
#   - per [[link]] a backbone namespace <prefix>-bb<N> running hubprobe-linkemu between two veths, with
#     the link's delay / jitter / loss in each direction:
#       <prefix>-<a>  hp-<b> 198.18.N.1/24 --veth-- bl0 [ <prefix>-bb<N>: linkemu ] br0 --veth-- hp-<a> 198.18.N.2/24  <prefix>-<b>
#     A second (third...) link between the same two hubs is its own [[link]]: interfaces hp2-<peer>
#     (hp3-...), addresses from 198.19.M.0/24 (M counts such extra links), its own delay.
#   - a management network without delay: a core namespace <prefix>-core with a bridge (198.19.255.254)
#     and a veth mg0 from every hub (198.19.255.<i>), for Prometheus and /metrics.
#   - IPv6 too: 2001:db8:1:N::1,2/64 (first links), 2001:db8:2:M::/64 (extra links), 2001:db8:ff::/64 (mgmt).
#   - TSO/GSO/tx-checksum off on the hub ends, GRO off on the backbone ends (linkemu README).
# Addresses only from 198.18.0.0/15 and 2001:db8::/32, only inside the namespaces; nothing is created in
# the caller's namespace. `up` stays in the foreground and tears everything down on exit, Ctrl-C or
# SIGTERM; `up --detach` leaves it running for `down`. A failed `up` removes what it built. State
# (namespaces, PIDs, control sockets, logs, address tables) lives in $HPTB_STATE_DIR.
#
# Environment: HPTB_STATE_DIR     state directory (default ${TMPDIR:-/tmp}/<prefix>-<topology name>)
#              HPTB_PREFIX        namespace prefix (default hptb; must start with "hp")
#              HPTB_LINKEMU_ARGS  extra options for every emulator, e.g. "--spin 50us"
#              HUBPROBE_LINKEMU   path of hubprobe-linkemu (default: build tree, then PATH)
#              HUBPROBE_BUILD_DIR build directory (default: build/)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
default_topology=$top/config/topology/eight-regions.toml

die() {
  printf 'testbed.sh: %s\n' "$*" >&2
  exit 1
}
usage() {
  sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# parse_topology FILE: prints tab-separated "hub NAME SITE REGION" and "link A B DELAY JITTER LOSS"
# lines, or "error: ..." lines and fails. Format: a TOML subset — [[hub]] / [[link]] tables of
# `key = "value"` (or bare value) lines, # comments; unknown keys are errors (a typo never falls back to
# a default).
parse_topology() {
  awk '
    BEGIN { OFS = "\t"; known["hub"] = " name site region "; known["link"] = " a b delay jitter loss note " }
    function err(msg) { print "error: " FILENAME ":" NR ": " msg; bad = 1 }
    function flush() {
      if (sec == "hub") {
        if (!("name" in kv)) { print "error: " FILENAME ":" start ": [[hub]] without name"; bad = 1 }
        else print "hub", kv["name"], ("site" in kv ? kv["site"] : kv["name"]), ("region" in kv ? kv["region"] : "-")
      } else if (sec == "link") {
        if (!("a" in kv) || !("b" in kv)) { print "error: " FILENAME ":" start ": [[link]] without a or b"; bad = 1 }
        else print "link", kv["a"], kv["b"], ("delay" in kv ? kv["delay"] : "0ms"), \
                   ("jitter" in kv ? kv["jitter"] : "0"), ("loss" in kv ? kv["loss"] : "0%")
      }
      delete kv
    }
    { sub(/#.*/, ""); gsub(/^[ \t]+|[ \t]+$/, "") }
    $0 == "" { next }
    /^\[\[[a-z]+\]\]$/ {
      flush(); sec = substr($0, 3, length($0) - 4); start = NR
      if (!(sec in known)) err("unknown table [[" sec "]] (expected [[hub]] or [[link]])")
      next
    }
    /^\[/ { err("unsupported table " $0); next }
    /^[A-Za-z_]+[ \t]*=/ {
      key = $0; sub(/[ \t]*=.*/, "", key)
      val = $0; sub(/^[^=]*=[ \t]*/, "", val); gsub(/^"|"$/, "", val)
      if (sec == "") { err("key " key " outside a [[hub]] or [[link]] table"); next }
      if (index(known[sec], " " key " ") == 0) { err("unknown key " key " in [[" sec "]] (expected:" known[sec] ")"); next }
      if (val ~ /\t/) { err("tab in the value of " key); next }
      kv[key] = val; next
    }
    { err("cannot parse line: " $0) }
    END { flush(); exit bad }
  ' "$1"
}

# --- arguments -------------------------------------------------------------------------------------
[[ $# -ge 1 ]] || usage
cmd=$1
shift
detach=0
if [[ $cmd == up && ${1:-} == --detach ]]; then
  detach=1
  shift
fi
case $cmd in
up | down | show | check)
  [[ $# -le 1 ]] || usage
  topo=${1:-$default_topology}
  ;;
exec)
  if [[ ${1:-} == *.toml ]]; then
    topo=$1
    shift
  else
    topo=$default_topology
  fi
  [[ $# -ge 2 ]] || usage
  ;;
-h | --help | help) usage ;;
*) usage ;;
esac
[[ -r $topo ]] || die "cannot read topology '$topo'"
topo_name=$(basename "$topo" .toml)
prefix=${HPTB_PREFIX:-hptb}
[[ $prefix =~ ^hp[a-z0-9-]{0,40}$ ]] || die "HPTB_PREFIX '$prefix': must start with hp, then [a-z0-9-]"
state=${HPTB_STATE_DIR:-${TMPDIR:-/tmp}/$prefix-$topo_name}

# --- the topology, validated ------------------------------------------------------------------------
parsed=$(parse_topology "$topo") || die "$(grep '^error' <<<"$parsed" | head -1 | sed 's/^error: //')"
hubs=()
declare -A hub_site=() hub_region=() hub_index=()
while IFS=$'\t' read -r kind name site region; do
  [[ $kind == hub ]] || continue
  [[ $name =~ ^[a-z0-9][a-z0-9-]{0,10}$ ]] ||
    die "hub name '$name': 1-11 of [a-z0-9-], starting with a letter or digit (interface names are hp2-<hub>)"
  [[ $name != core && ! $name =~ ^bb[0-9]+$ ]] || die "hub name '$name' is reserved (core, bb<N> are namespaces of the testbed)"
  [[ -z ${hub_index[$name]:-} ]] || die "$topo: duplicate hub name '$name'"
  hubs+=("$name")
  hub_index[$name]=${#hubs[@]}
  hub_site[$name]=$site
  hub_region[$name]=$region
done <<<"$parsed"
[[ ${#hubs[@]} -ge 1 ]] || die "$topo: no [[hub]]"
[[ ${#hubs[@]} -le 253 ]] || die "$topo: at most 253 hubs"

# Links, numbered in file order: link<N> (N = 1.. over all links) is the nth link between its two hubs;
# the first gets 198.18.<first>.0/24 (first = 1.. over first links), later ones 198.19.<extra>.0/24.
links=()        # "A B DELAY JITTER LOSS NTH SUBNET V6NET"
declare -A npair=()
nfirst=0 nextra=0
duration_re='^[0-9]+(\.[0-9]+)?(ns|us|ms|s)?$'
while IFS=$'\t' read -r kind a b delay jitter loss; do
  [[ $kind == link ]] || continue
  [[ -n ${hub_index[$a]:-} && -n ${hub_index[$b]:-} ]] || die "link $a-$b: unknown hub"
  [[ $a != "$b" ]] || die "link $a-$b: a link joins two different hubs"
  [[ $delay =~ $duration_re ]] || die "link $a-$b: delay '$delay': a duration like 13.5ms, 250us, 1s"
  [[ $jitter =~ $duration_re ]] || die "link $a-$b: jitter '$jitter': a duration like 1ms"
  [[ $loss =~ ^[0-9]+(\.[0-9]+)?%?$ ]] || die "link $a-$b: loss '$loss': like 1% or 0.01"
  pair=$(printf '%s\n' "$a" "$b" | sort | tr '\n' ' ')
  nth=$((${npair[$pair]:-0} + 1))
  npair[$pair]=$nth
  ((nth <= 9)) || die "link $a-$b: at most 9 links between two hubs"
  if ((nth == 1)); then
    nfirst=$((nfirst + 1))
    ((nfirst <= 254)) || die "$topo: at most 254 first links (198.18.1-254.0/24)"
    links+=("$a $b $delay $jitter $loss $nth 198.18.$nfirst 2001:db8:1:$(printf '%x' "$nfirst")")
  else
    nextra=$((nextra + 1))
    ((nextra <= 254)) || die "$topo: at most 254 second links (198.19.1-254.0/24)"
    links+=("$a $b $delay $jitter $loss $nth 198.19.$nextra 2001:db8:2:$(printf '%x' "$nextra")")
  fi
done <<<"$parsed"

ns_of() { printf '%s-%s' "$prefix" "$1"; }
core_ns=$prefix-core
mgmt_net=198.19.255
mgmt_v6=2001:db8:ff
# Interface in hub A towards hub B for the nth link: hp-B, hp2-B, ...
if_to() { if (($2 == 1)); then printf 'hp-%s' "$1"; else printf 'hp%d-%s' "$2" "$1"; fi; }

# Duration in µs (awk: "13.35ms" -> 13350).
to_us() {
  awk -v d="$1" 'BEGIN {
    u = d; sub(/^[0-9.]+/, "", u); v = d + 0
    m = (u == "ns") ? 0.001 : (u == "us") ? 1 : (u == "s") ? 1e6 : 1000
    printf "%.0f", v * m }'
}

# --- check: no root needed ----------------------------------------------------------------------------
check() {
  echo "$topo: ok, ${#hubs[@]} hubs, ${#links[@]} links ($nfirst first, $nextra more between the same hubs)"
  echo "# nominal RTT in ms (2 x one-way delay), first link of each pair; rows: from, columns: to"
  local row h p l a b delay nth rtt
  declare -A rtt_of=()
  for l in "${links[@]}"; do
    read -r a b delay _ _ nth _ <<<"$l"
    ((nth == 1)) || continue
    rtt=$(awk -v us="$(to_us "$delay")" 'BEGIN { printf "%.1f", 2 * us / 1000 }')
    rtt_of[$a,$b]=$rtt
    rtt_of[$b,$a]=$rtt
  done
  row=$(printf '%-8s' 'from\to')
  for p in "${hubs[@]}"; do row+=$(printf ' %5s' "$p"); done
  echo "$row"
  for h in "${hubs[@]}"; do
    row=$(printf '%-8s' "$h")
    for p in "${hubs[@]}"; do
      if [[ $h == "$p" ]]; then row+=$(printf ' %5s' -); else row+=$(printf ' %5s' "${rtt_of[$h,$p]:-.}"); fi
    done
    echo "$row"
  done
  for l in "${links[@]}"; do
    read -r a b delay _ _ nth _ <<<"$l"
    ((nth > 1)) || continue
    printf '# link %d between %s and %s: %s ms RTT (first link: %s ms)\n' "$nth" "$a" "$b" \
      "$(awk -v us="$(to_us "$delay")" 'BEGIN { printf "%.1f", 2 * us / 1000 }')" "${rtt_of[$a,$b]:-none}"
  done
}

# --- up / down ----------------------------------------------------------------------------------------

# Removes everything recorded in the state directory. Safe to call more than once.
teardown() {
  if [[ -n ${sleep_pid:-} ]]; then kill "$sleep_pid" 2>/dev/null || true; fi
  [[ -d $state ]] || return 0
  local pid ns alive
  if [[ -f $state/pids ]]; then
    while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$state/pids"
    for _ in $(seq 20); do
      alive=0
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
  echo "$1" >>"$state/namespaces" # recorded first: a signal right after `ip netns add` leaves nothing
  ip netns add "$1"
  ip -n "$1" link set dev lo up
  # IPv6 without duplicate address detection and router solicitations: addresses are usable at once and
  # the links carry only what the test or demo sends (plus a few MLD reports).
  ip netns exec "$1" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
    net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.default.accept_ra=0
}

up() {
  [[ $EUID -eq 0 ]] || die "needs root (network namespaces)"
  local emu extra=()
  emu=$(linkemu_bin)
  [[ -x $emu ]] || die "$emu is not executable (build the hubprobe-linkemu target)"
  read -r -a extra <<<"${HPTB_LINKEMU_ARGS:-}"
  [[ ! -e $state ]] || die "$state exists: already up? ($0 down $topo)"
  local ns all_ns=("$core_ns") h i
  for h in "${hubs[@]}"; do all_ns+=("$(ns_of "$h")"); done
  for ((i = 1; i <= ${#links[@]}; i++)); do all_ns+=("$prefix-bb$i"); done
  for ns in "${all_ns[@]}"; do
    [[ ! -e /run/netns/$ns ]] || die "namespace $ns exists already"
  done
  mkdir -p "$state"
  trap 'teardown' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  : >"$state/namespaces"
  : >"$state/pids"
  : >"$state/hosts"
  : >"$state/mgmt"
  : >"$state/hubs"
  printf '%s\n' "$prefix" >"$state/prefix"
  printf '%s\n' "$topo" >"$state/topology"
  i=0
  # Management network: core bridge, one mg0 per hub.
  add_ns "$core_ns"
  ip -n "$core_ns" link add hpbr0 type bridge
  ip -n "$core_ns" link set dev hpbr0 type bridge stp_state 0 forward_delay 0
  ip -n "$core_ns" addr add "$mgmt_net.254/24" dev hpbr0
  ip -n "$core_ns" addr add "$mgmt_v6::fe/64" dev hpbr0 nodad
  ip -n "$core_ns" link set dev hpbr0 up
  printf 'core %s.254 %s %s::fe\n' "$mgmt_net" "$core_ns" "$mgmt_v6" >>"$state/mgmt"
  for h in "${hubs[@]}"; do
    i=$((i + 1))
    add_ns "$(ns_of "$h")"
    ip -n "$(ns_of "$h")" link add mg0 type veth peer name "mg-$h" netns "$core_ns"
    ip -n "$core_ns" link set dev "mg-$h" master hpbr0
    ip -n "$core_ns" link set dev "mg-$h" up
    ip -n "$(ns_of "$h")" addr add "$mgmt_net.$i/24" dev mg0
    ip -n "$(ns_of "$h")" addr add "$mgmt_v6::$(printf '%x' "$i")/64" dev mg0 nodad
    ip -n "$(ns_of "$h")" link set dev mg0 up
    printf '%s %s.%d %s %s::%x\n' "$h" "$mgmt_net" "$i" "$(ns_of "$h")" "$mgmt_v6" "$i" >>"$state/mgmt"
    printf '%s\t%s\t%s\n' "$h" "${hub_site[$h]}" "${hub_region[$h]}" >>"$state/hubs"
  done
  # Links: all emulators are started first, then waited for (each takes a moment to open its sockets).
  local n=0 a b delay jitter loss nth net v6 bb ia ib
  for l in "${links[@]}"; do
    read -r a b delay jitter loss nth net v6 <<<"$l"
    n=$((n + 1))
    bb=$prefix-bb$n
    ia=$(if_to "$b" "$nth") # in hub a, towards b
    ib=$(if_to "$a" "$nth")
    add_ns "$bb"
    ip link add "$ia" netns "$(ns_of "$a")" type veth peer name bl0 netns "$bb"
    ip link add "$ib" netns "$(ns_of "$b")" type veth peer name br0 netns "$bb"
    ip -n "$(ns_of "$a")" addr add "$net.1/24" dev "$ia"
    ip -n "$(ns_of "$b")" addr add "$net.2/24" dev "$ib"
    ip -n "$(ns_of "$a")" addr add "$v6::1/64" dev "$ia" nodad
    ip -n "$(ns_of "$b")" addr add "$v6::2/64" dev "$ib" nodad
    ip netns exec "$(ns_of "$a")" ethtool -K "$ia" tso off gso off tx off >/dev/null
    ip netns exec "$(ns_of "$b")" ethtool -K "$ib" tso off gso off tx off >/dev/null
    ip netns exec "$bb" ethtool -K bl0 gro off tso off gso off tx off >/dev/null
    ip netns exec "$bb" ethtool -K br0 gro off tso off gso off tx off >/dev/null
    ip -n "$(ns_of "$a")" link set dev "$ia" up
    ip -n "$(ns_of "$b")" link set dev "$ib" up
    ip -n "$bb" link set dev bl0 up
    ip -n "$bb" link set dev br0 up
    setsid ip netns exec "$bb" "$emu" --a bl0 --b br0 --delay "$delay" --jitter "$jitter" --loss "$loss" \
      "${extra[@]}" --control "$state/link$n.sock" </dev/null >"$state/link$n.log" 2>&1 &
    echo $! >>"$state/pids"
    printf '%s %s %s.1 %s %s link%d %d %s::1 %s\n' "$a" "$b" "$net" "$(ns_of "$a")" "$ia" "$n" "$nth" "$v6" \
      "$delay" >>"$state/hosts"
    printf '%s %s %s.2 %s %s link%d %d %s::2 %s\n' "$b" "$a" "$net" "$(ns_of "$b")" "$ib" "$n" "$nth" "$v6" \
      "$delay" >>"$state/hosts"
  done
  local pid
  n=0
  while read -r pid; do
    n=$((n + 1))
    for _ in $(seq 100); do
      [[ -S $state/link$n.sock ]] && break
      kill -0 "$pid" 2>/dev/null || die "linkemu of link$n exited: $(cat "$state/link$n.log")"
      sleep 0.05
    done
    [[ -S $state/link$n.sock ]] || die "linkemu of link$n did not start: $(cat "$state/link$n.log")"
  done <"$state/pids"
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
  echo "# management network (no delay): hub address namespace address6; Prometheus goes in $core_ns"
  cat "$state/mgmt"
  echo "# links: hub peer address namespace interface link nth address6 one-way-delay"
  cat "$state/hosts"
  local n=0 l emu
  emu=$(linkemu_bin)
  for l in "${links[@]}"; do
    n=$((n + 1))
    read -r a b delay _ _ nth _ <<<"$l"
    echo "# link$n: $a-$b (link $nth between them), control socket $state/link$n.sock:"
    "$emu" --ctl "$state/link$n.sock" show | sed 's/^/#   /'
  done
}

case $cmd in
check) check ;;
up) up ;;
down) teardown ;;
show) show ;;
exec)
  hub=$1
  shift
  [[ -n ${hub_index[$hub]:-} ]] || die "unknown hub '$hub'"
  exec ip netns exec "$(ns_of "$hub")" "$@"
  ;;
esac
