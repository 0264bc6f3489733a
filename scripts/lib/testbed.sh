# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Shared helpers for scripts that build a throw-away hub testbed out of network namespaces (the demo,
# end-to-end tests). Source it from bash; it does not change shell options of its own.
#
# Everything a testbed creates is recorded here and removed by tb_cleanup, which is safe to call more
# than once (put it in an EXIT trap):
#   - namespaces made with tb_netns_add (deleting a namespace also deletes its veths and bridges),
#   - processes started with tb_spawn (stopped by PID: SIGTERM, then SIGKILL after a grace period;
#     never by name, so agents of other runs or of the host are left alone),
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

tb_log() { printf '%s\n' "$*" >&2; }

# tb_netns_add NAME: a namespace with loopback up.
tb_netns_add() {
  # Recorded first: a signal handled right after `ip netns add` must not leave it behind.
  TB_NETNS+=("$1")
  ip netns add "$1"
  ip -n "$1" link set dev lo up
}

# tb_tmpdir VAR: a fresh directory under ${TMPDIR:-/tmp}, stored in VAR.
tb_tmpdir() {
  local d
  d=$(mktemp -d "${TMPDIR:-/tmp}/hpdemo.XXXXXX")
  TB_DIRS+=("$d")
  printf -v "$1" '%s' "$d"
}

# tb_core NS BRIDGE [ADDR/LEN...]: the core namespace with a bridge (and optional addresses on it).
tb_core() {
  local ns=$1 br=$2 a
  shift 2
  tb_netns_add "$ns"
  ip -n "$ns" link add "$br" type bridge
  # No STP and no forwarding delay: ports forward at once.
  ip -n "$ns" link set dev "$br" type bridge stp_state 0 forward_delay 0
  for a in "$@"; do
    case $a in
    *:*) ip -n "$ns" addr add "$a" dev "$br" nodad ;;
    *) ip -n "$ns" addr add "$a" dev "$br" ;;
    esac
  done
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
  for a in "$@"; do
    case $a in
    *:*) ip -n "$ns" addr add "$a" dev eth0 nodad ;;
    *) ip -n "$ns" addr add "$a" dev eth0 ;;
    esac
  done
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
  TB_LAST_PID=$!
  TB_PIDS+=("$TB_LAST_PID")
  TB_PID_NAMES+=("$name")
}

# tb_alive PID: true while a process we started is running (not a zombie we have yet to reap).
tb_alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

# tb_stop PID [GRACE_TENTHS]: SIGTERM, then SIGKILL after the grace period (default 3 s); reaps it.
# Children it forked (socat's per-connection processes) are stopped after it, by their PIDs.
tb_stop() {
  local pid=$1 grace=${2:-30} i children child
  children=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for ((i = 0; i < grace; i++)); do
    tb_alive "$pid" || break
    sleep 0.1
  done
  if tb_alive "$pid"; then
    tb_log "testbed: PID $pid ignored SIGTERM, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for child in $children; do
    tb_alive "$child" && tb_stop "$child" "$grace"
  done
  return 0
}

# tb_stop_all: stops every process tb_spawn started (tb_cleanup does it too): SIGTERM to all of them
# at once, last started first, then each is waited for as in tb_stop (SIGKILL after its grace period).
tb_stop_all() {
  local i children="" child
  for ((i = ${#TB_PIDS[@]} - 1; i >= 0; i--)); do
    tb_alive "${TB_PIDS[i]}" || continue
    children+=" $(ps -o pid= --ppid "${TB_PIDS[i]}" 2>/dev/null || true)"
    kill -TERM "${TB_PIDS[i]}" 2>/dev/null || true
  done
  for ((i = ${#TB_PIDS[@]} - 1; i >= 0; i--)); do
    tb_stop "${TB_PIDS[i]}"
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

# tb_cleanup: stops every process tb_spawn started (last started first), deletes the namespaces and
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
