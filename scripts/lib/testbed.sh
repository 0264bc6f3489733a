# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Shared helpers for scripts that build a throw-away testbed out of network namespaces (the demo, the
# benchmarks, end-to-end tests). Source it from bash; it does not change shell options of its own.
#
# Everything a testbed creates is recorded here and removed by tb_cleanup, which is safe to call more
# than once (put it in an EXIT trap, or let tb_exit_traps do it):
#   - namespaces made with tb_netns_add (deleting a namespace also deletes its veths and bridges),
#   - processes started with tb_spawn or recorded with tb_track (stopped by PID: a signal, SIGTERM by
#     default, then SIGKILL after a grace period; never by name, so agents of other runs or of the host
#     are left alone). A process that tb_stop or tb_wait has seen go is forgotten, so that its PID,
#     once the kernel hands it to someone else, is never signalled,
#   - directories made with tb_tmpdir.
# Addresses: only 198.18.0.0/15 and 2001:db8::/32, and only inside the namespaces.
#
# Layout made by tb_core + tb_hub: one "core" namespace with a Linux bridge, one namespace per hub, each
# joined to the bridge by a veth pair (hub side "eth0", core side named after the hub). Veths are created
# directly in their namespaces, so nothing ever appears in the caller's namespace, even for an instant.

TB_NETNS=()
TB_PIDS=()
TB_PID_NAMES=()
TB_DIRS=()
TB_LAST_PID=
TB_EXIT_HOOK=

tb_log() { printf '%s\n' "$*" >&2; }

# tb_netns_add [--no-ipv6] NAME: a namespace with loopback up. With --no-ipv6, IPv6 is off in it (for
# the links made later too): no link-local addresses, no router solicitations or MLD reports.
tb_netns_add() {
  local no_ipv6=0
  if [[ $1 == --no-ipv6 ]]; then
    no_ipv6=1
    shift
  fi
  # A namespace of that name is someone else's: not ours to use, nor to delete in tb_cleanup.
  if [[ -e /run/netns/$1 ]]; then
    tb_log "testbed: namespace $1 exists already"
    return 1
  fi
  # Recorded first: a signal handled right after `ip netns add` must not leave it behind.
  TB_NETNS+=("$1")
  ip netns add "$1"
  if ((no_ipv6)); then
    ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 \
      2>/dev/null || true
  fi
  ip -n "$1" link set dev lo up
}

# tb_addr_add NS DEV ADDR/LEN...: addresses on an interface; IPv6 ones without duplicate detection.
tb_addr_add() {
  local ns=$1 dev=$2 a
  shift 2
  for a in "$@"; do
    case $a in
    *:*) ip -n "$ns" addr add "$a" dev "$dev" nodad ;;
    *) ip -n "$ns" addr add "$a" dev "$dev" ;;
    esac
  done
}

# tb_veth_pair NS_A IF_A ADDR_A/LEN NS_B IF_B ADDR_B/LEN: a veth pair between two namespaces (IF_A in
# NS_A, IF_B in NS_B, at most 15 characters each), an address on each end, both ends up. Both ends are
# created in their namespaces, so deleting the namespaces leaves nothing behind.
tb_veth_pair() {
  local ns_a=$1 if_a=$2 addr_a=$3 ns_b=$4 if_b=$5 addr_b=$6
  ip -n "$ns_a" link add "$if_a" type veth peer name "$if_b" netns "$ns_b"
  tb_addr_add "$ns_a" "$if_a" "$addr_a"
  tb_addr_add "$ns_b" "$if_b" "$addr_b"
  ip -n "$ns_a" link set dev "$if_a" up
  ip -n "$ns_b" link set dev "$if_b" up
}

# tb_tmpdir VAR [PREFIX]: a fresh directory ${TMPDIR:-/tmp}/PREFIX.XXXXXX (PREFIX hpdemo by default),
# stored in VAR.
tb_tmpdir() {
  local tb_tmpdir_path # a name no caller's VAR has: a local named VAR would take the value instead
  tb_tmpdir_path=$(mktemp -d "${TMPDIR:-/tmp}/${2:-hpdemo}.XXXXXX")
  TB_DIRS+=("$tb_tmpdir_path")
  printf -v "$1" '%s' "$tb_tmpdir_path"
}

# tb_core NS BRIDGE [ADDR/LEN...]: the core namespace with a bridge (and optional addresses on it).
tb_core() {
  local ns=$1 br=$2 a
  shift 2
  tb_netns_add "$ns"
  ip -n "$ns" link add "$br" type bridge
  # No STP and no forwarding delay: ports forward at once.
  ip -n "$ns" link set dev "$br" type bridge stp_state 0 forward_delay 0
  tb_addr_add "$ns" "$br" "$@"
  ip -n "$ns" link set dev "$br" up
}

# tb_hub NS CORE_NS BRIDGE PORT ADDR/LEN...: a hub namespace joined to the core bridge. PORT names the
# core side of the veth (at most 15 characters); the hub side is eth0.
tb_hub() {
  local ns=$1 core=$2 br=$3 port=$4 a
  shift 4
  tb_netns_add "$ns"
  ip -n "$ns" link add eth0 type veth peer name "$port" netns "$core"
  ip -n "$core" link set dev "$port" master "$br"
  ip -n "$core" link set dev "$port" up
  tb_addr_add "$ns" eth0 "$@"
  ip -n "$ns" link set dev eth0 up
}

# tb_adopt_netns NAME...: namespaces someone else made for us (scripts/testbed.sh): tb_cleanup stops
# what still runs in them, deletes them if they are still there, and checks that they are gone.
tb_adopt_netns() {
  TB_NETNS+=("$@")
}

# tb_spawn NAME NS LOG CMD...: runs CMD in namespace NS in the background, output to LOG. `ip netns
# exec` execs CMD in place, so the recorded PID is CMD's own. NS "-" runs it in the caller's namespace.
# The PID is left in TB_LAST_PID.
tb_spawn() {
  local name=$1 ns=$2 log=$3
  shift 3
  if [[ $ns == - ]]; then
    "$@" >"$log" 2>&1 </dev/null &
  else
    ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
  fi
  tb_track "$name" "$!"
}

# tb_track NAME PID: records a process the caller started itself in the background (when tb_spawn's
# redirections do not fit), right after starting it, so that tb_stop_all and tb_cleanup stop it too.
# The PID is left in TB_LAST_PID.
tb_track() {
  TB_LAST_PID=$2
  TB_PIDS+=("$TB_LAST_PID")
  TB_PID_NAMES+=("$1")
}

# tb_forget PID: drops a process from the record (it is gone: its PID may soon be someone else's).
tb_forget() {
  local i pids=() names=()
  for ((i = 0; i < ${#TB_PIDS[@]}; i++)); do
    [[ ${TB_PIDS[i]} == "$1" ]] && continue
    pids+=("${TB_PIDS[i]}")
    names+=("${TB_PID_NAMES[i]}")
  done
  TB_PIDS=("${pids[@]}")
  TB_PID_NAMES=("${names[@]}")
}

# tb_wait PID: waits for a recorded process to end by itself, forgets it; returns its exit status.
tb_wait() {
  local rc=0
  wait "$1" || rc=$?
  tb_forget "$1"
  return $rc
}

# tb_alive PID: true while a process we started is running (not a zombie we have yet to reap).
tb_alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

# tb_stop PID [GRACE_TENTHS [SIGNAL]]: a process this script started: SIGNAL (default TERM; INT for a
# tool that prints its summary on Ctrl-C), then SIGKILL after the grace period (default 3 s); reaps and
# forgets it. Children it forked (socat's per-connection processes, the command a /usr/bin/time
# wrapper runs) are stopped after it, by their PIDs, with SIGTERM.
tb_stop() {
  local pid=$1 grace=${2:-30} sig=${3:-TERM} i children child
  children=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
  if ! kill -"$sig" "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    tb_forget "$pid"
    return 0
  fi
  for ((i = 0; i < grace; i++)); do
    tb_alive "$pid" || break
    sleep 0.1
  done
  if tb_alive "$pid"; then
    tb_log "testbed: PID $pid ignored SIG$sig, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  tb_alive "$pid" || tb_forget "$pid"
  for child in $children; do
    tb_alive "$child" && tb_stop "$child" "$grace"
  done
  return 0
}

# tb_stop_all: stops every recorded process (tb_cleanup does it too): SIGTERM to all of them at once,
# last started first, then each is waited for as in tb_stop (SIGKILL after its grace period).
tb_stop_all() {
  local i children="" child pids=("${TB_PIDS[@]}")
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    tb_alive "${pids[i]}" || continue
    children+=" $(ps -o pid= --ppid "${pids[i]}" 2>/dev/null || true)"
    kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    tb_stop "${pids[i]}"
  done
  for child in $children; do
    tb_alive "$child" && tb_stop "$child"
  done
  return 0
}

# tb_http_get NS URL [CURL ARGS...]: GET from inside a namespace, body on stdout; fails on HTTP errors.
tb_http_get() {
  local ns=$1 url=$2
  shift 2
  ip netns exec "$ns" curl -fsS --max-time 3 "$@" "$url"
}

# tb_wait_http NS URL TIMEOUT_S: waits until URL answers 2xx from inside NS.
tb_wait_http() {
  local ns=$1 url=$2 deadline=$((SECONDS + $3))
  until ip netns exec "$ns" curl -fsS --max-time 1 -o /dev/null "$url" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# tb_cleanup: stops every recorded process (last started first), deletes the namespaces and
# directories. Reports and returns non-zero if anything it created is still there afterwards.
tb_cleanup() {
  local i pid ns d rc=0
  tb_stop_all
  # Anything still running inside our namespaces was started by us too (for instance by a tb_spawn
  # interrupted before it could record the PID): stop it, by PID, before the namespace goes.
  for ns in "${TB_NETNS[@]}"; do
    [[ -e /run/netns/$ns ]] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      [[ $pid != "$$" ]] || continue
      tb_log "testbed: stopping PID $pid still running in $ns"
      tb_stop "$pid"
    done
    ip netns del "$ns" 2>/dev/null || true
  done
  for d in "${TB_DIRS[@]}"; do
    rm -rf -- "$d"
  done
  # Verify: our PIDs gone, our namespaces gone, our directories gone.
  for ((i = 0; i < ${#TB_PIDS[@]}; i++)); do
    pid=${TB_PIDS[i]}
    if tb_alive "$pid"; then
      tb_log "testbed: leftover process ${TB_PID_NAMES[i]} (PID $pid)"
      rc=1
    fi
  done
  for ns in "${TB_NETNS[@]}"; do
    if [[ -e /run/netns/$ns ]]; then
      tb_log "testbed: leftover namespace $ns"
      rc=1
    fi
  done
  for d in "${TB_DIRS[@]}"; do
    if [[ -e $d ]]; then
      tb_log "testbed: leftover directory $d"
      rc=1
    fi
  done
  TB_PIDS=() TB_PID_NAMES=() TB_NETNS=() TB_DIRS=()
  return $rc
}

# tb_exit_traps [HOOK]: on exit, and on SIGINT / SIGTERM / SIGHUP (which exit with 130 / 143 / 129):
# stops every recorded process, runs HOOK (a function, for instance one that keeps logs before the
# directories go), then tb_cleanup; the script exits with its own status, or 1 if that was 0 and
# something was left behind.
tb_exit_traps() {
  TB_EXIT_HOOK=${1:-}
  trap tb__on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}
tb__on_exit() {
  local rc=$?
  trap - EXIT INT TERM HUP
  tb_stop_all
  if [[ -n $TB_EXIT_HOOK ]]; then "$TB_EXIT_HOOK" || true; fi
  tb_cleanup || ((rc)) || rc=1
  exit "$rc"
}
