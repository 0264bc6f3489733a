#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: ./scripts/demo.sh [--headless]      (as root)
# The local demo. Installs what is needed (scripts/setup.sh), builds the agent, the CLI and the link
# emulator (scripts/build.sh --target ..., showing cmake's progress), then:
#   - builds the emulated WAN of a topology file with scripts/testbed.sh (default: the eight hub regions
#     of "East Data West Computing", config/topology/eight-regions.toml: 10 hub namespaces, 32 links
#     through the link emulator with 2.8 to 26.7 ms RTT), in namespaces hpdemo-<pid>-*,
#   - runs a hubprobed agent in each hub, probing every hub it has a link to (over every link) every
#     100 ms, with /metrics on the hub's management address (198.19.255.<i>:9862),
#   - runs a real Prometheus in the core namespace that scrapes every agent each second, reachable from
#     this machine at http://127.0.0.1:9090/ (forwarded with socat through a unix socket; nothing
#     listens on any other address of this machine),
#   - prints the hub-to-hub RTT p50 matrix read back from Prometheus' HTTP API, refreshed in place for
#     DEMO_SECONDS (plain snapshots when headless), coloured by the policy latency bands,
#   - shows `hubprobe ping` between two hubs (IPv4 and IPv6) and `hubprobe status` of one agent,
#   - runs a real etcd in the core namespace where every agent publishes its path preferences (lease
#     with TTL), prints them as a hub-by-hub table (`hubprobe prefs --etcd`), then slows down the
#     preferred one of two links between two hubs and shows the preference moving to the other link,
#   - tears everything down (also on Ctrl-C or failure) and checks that nothing is left behind.
# Addresses come only from 198.18.0.0/15 and 2001:db8::/32, inside the namespaces.
#
# Environment:
#   DEMO_TOPOLOGY=FILE  topology (default config/topology/eight-regions.toml; format in docs/testbed.md)
#   DEMO_SECONDS=30     how long to show the matrix (seconds)
#   DEMO_XDP=1          every second hub's agent runs the xdp backend (its reflector in XDP on its links),
#                       the others kernel; 0: every agent kernel
#   DEMO_DPDK=1         the first hub with a single link runs the dpdk backend instead: a net_af_packet vdev
#                       on that link's veth owns the hub's link addresses (the kernel keeps none there);
#                       0: no dpdk hub
#   DEMO_REFRESH=2      seconds between matrix updates (headless: 10)
#   DEMO_HEADLESS=1     for tests and CI: no colours, no in-place redraw, no hold. Also --headless.
#   DEMO_HOLD=1         keep everything running (matrix refreshing) after the checks until Ctrl-C
#   DEMO_PROM_PORT=9090 port on 127.0.0.1 of this machine for Prometheus (the next free one up to +9 if
#                       taken); 0: no forwarding (use `ip netns exec` as printed)
#   DEMO_SKIP_BUILD=1   skip setup.sh and build.sh (the binaries must already be built)
#   HUBPROBE_BUILD_DIR  build directory (default: build/), as for scripts/build.sh
# Exit status: 0 when every linked hub pair has an RTT in Prometheus, every peer is up and the preference
# moved; 1 when the matrix is incomplete or a step failed; 130 on Ctrl-C. Teardown leftovers also make the status non-zero.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# shellcheck source=scripts/lib/testbed.sh
source "$top/scripts/lib/testbed.sh"

headless=${DEMO_HEADLESS:-0}
for arg in "$@"; do
  case $arg in
  --headless) headless=1 ;;
  -h | --help)
    sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "demo.sh: unknown argument '$arg' (try --help)" >&2
    exit 2
    ;;
  esac
done
topology=${DEMO_TOPOLOGY:-$top/config/topology/eight-regions.toml}
seconds=${DEMO_SECONDS:-30}
if [[ $headless == 1 ]]; then refresh=${DEMO_REFRESH:-10}; else refresh=${DEMO_REFRESH:-2}; fi
hold=${DEMO_HOLD:-0}
prom_host_port=${DEMO_PROM_PORT:-9090}
[[ $headless == 1 ]] && hold=0
if ! [[ $seconds =~ ^[0-9]+$ && $refresh =~ ^[1-9][0-9]*$ && $prom_host_port =~ ^[0-9]+$ ]] ||
  ((prom_host_port > 65526)); then
  echo "demo.sh: DEMO_SECONDS, DEMO_REFRESH (>= 1) must be whole seconds, DEMO_PROM_PORT a port" >&2
  exit 2
fi
[[ -r $topology ]] || {
  echo "demo.sh: cannot read DEMO_TOPOLOGY '$topology'" >&2
  exit 2
}
redraw=0 colour=0
if [[ $headless != 1 && -t 1 ]]; then
  redraw=1
  [[ -z ${NO_COLOR:-} ]] && colour=1
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root (it creates network namespaces)" >&2
  exit 1
fi

# --- teardown, armed before anything is created ---------------------------------------------------
dir=
failed_step=
testbed_state=
show_logs=('agent-*.log' prometheus.log) # what to show on failure (globs in $dir)
on_exit() {
  local rc=$? i pat
  trap - EXIT INT TERM HUP
  if ((rc != 0 && rc != 130)) && [[ -n $dir && -d $dir ]]; then
    # Show why, before the logs go away with the temp dir.
    [[ -n $failed_step ]] && echo "demo.sh: failed: $failed_step" >&2
    for pat in "${show_logs[@]}"; do
      for i in "$dir"/$pat; do
        [[ -s $i ]] || continue
        echo "---- last lines of $(basename "$i")" >&2
        tail -n 15 "$i" >&2
      done
    done
  fi
  echo
  echo "tearing down: stopping ${#TB_PIDS[@]} processes, the testbed's emulators and namespaces, and $dir"
  local t0=$SECONDS
  tb_stop_all
  if [[ -n $testbed_state && -d $testbed_state ]]; then
    HPTB_STATE_DIR=$testbed_state HPTB_PREFIX=$prefix scripts/testbed.sh down "$topology" ||
      echo "teardown: scripts/testbed.sh down failed" >&2
  fi
  if tb_cleanup; then
    echo "teardown: clean in $((SECONDS - t0)) s (no namespaces, processes or files of this demo left)"
  else
    echo "teardown: something was left behind, see above" >&2
    ((rc != 0)) || rc=1
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'echo; echo "interrupted"; exit 130' INT TERM HUP

tb_tmpdir dir

build=${HUBPROBE_BUILD_DIR:-$top/build}
# progress LOG REGEX: copies stdin to LOG and shows the lines matching REGEX as they come, on a terminal
# in place on one line (cut to its width), otherwise one per line; the log shows what failed.
progress() {
  tee "$1" | awk -v redraw="$redraw" -v width="$(tput cols 2>/dev/null || echo 80)" -v keep="$2" '
    $0 ~ keep {
      if (redraw) { printf "\r\033[K  %s", substr($0, 1, width - 3); shown = 1 } else print "  " $0
      fflush()
    }
    END { if (shown) printf "\r\033[K" }'
}
if [[ ${DEMO_SKIP_BUILD:-0} != 1 ]]; then
  failed_step="scripts/setup.sh" show_logs=(setup.log)
  echo "installing packages (scripts/setup.sh; minutes on a fresh machine)..."
  # On a terminal every line of apt, in place; otherwise only setup.sh's own.
  if ((redraw)); then keep=.; else keep='^setup\.sh:'; fi
  scripts/setup.sh 2>&1 | progress "$dir/setup.log" "$keep"
  # Only what the demo runs (not the test suite): the agent, the CLI and the link emulator. cmake's
  # [NN%] lines show the progress; a first build takes a few minutes.
  failed_step="scripts/build.sh" show_logs=(build.log)
  demo_targets=hubprobe,hubprobed,hubprobe-linkemu
  echo "building $demo_targets (scripts/build.sh --target $demo_targets)..."
  HUBPROBE_BUILD_DIR=$build scripts/build.sh --target "$demo_targets" 2>&1 |
    progress "$dir/build.log" '^(\[ *[0-9]+%\]|\[[0-9]+/[0-9]+\]|build\.sh:)'
  echo "built in $build"
  show_logs=('agent-*.log' prometheus.log)
fi
daemon=$build/agent/hubprobed
cli=$build/agent/hubprobe
linkemu=$build/tests/linkemu/hubprobe-linkemu
for b in "$daemon" "$cli" "$linkemu"; do
  [[ -x $b ]] || {
    failed_step="$b is missing: build first"
    exit 1
  }
done
for c in prometheus etcd curl jq ethtool; do
  command -v "$c" >/dev/null || {
    failed_step="$c is not installed: run scripts/setup.sh"
    exit 1
  }
done

# Namespaces of an earlier demo that was killed (SIGKILL skips its teardown): point them out, never
# touch them (a concurrent demo may own them).
while read -r ns _; do
  [[ $ns =~ ^hpdemo-([0-9]+)- ]] || continue
  owner=${BASH_REMATCH[1]}
  if ! kill -0 "$owner" 2>/dev/null; then
    echo "note: namespace $ns is left over from a demo (PID $owner) that no longer runs;" \
      "remove it with: ip netns pids $ns | xargs -r kill; ip netns del $ns"
  fi
done < <(ip netns list 2>/dev/null)

# --- the testbed ------------------------------------------------------------------------------------
prefix=hpdemo-$$
core=$prefix-core
metrics_port=9862
prom_port=9090
interval=100ms
window=10s

failed_step="building the testbed (scripts/testbed.sh up $topology)" show_logs=(testbed.log)
echo
echo "testbed: $(scripts/testbed.sh check "$topology" | head -1)"
testbed_state=$dir/testbed
HPTB_STATE_DIR=$testbed_state HPTB_PREFIX=$prefix HUBPROBE_LINKEMU=$linkemu \
  scripts/testbed.sh up --detach "$topology" >"$dir/testbed.log" 2>&1
mapfile -t testbed_ns <"$testbed_state/namespaces"
tb_adopt_netns "${testbed_ns[@]}"
show_logs=('agent-*.log' prometheus.log testbed.log)

# Hubs (in file order) and their management addresses; links as "hub peer address ns if link nth v6 delay".
hubs=()
declare -A hub_site=() hub_region=() mgmt=()
while IFS=$'\t' read -r h site region; do
  hubs+=("$h")
  hub_site[$h]=$site
  hub_region[$h]=$region
done <"$testbed_state/hubs"
while read -r h addr _; do mgmt[$h]=$addr; done <"$testbed_state/mgmt"
core_v4=${mgmt[core]}
mapfile -t ends <"$testbed_state/hosts"
links_n=$(($(wc -l <"$testbed_state/pids")))
echo "         ${#hubs[@]} hubs in namespaces $prefix-<hub>, $links_n emulated links (hubprobe-linkemu in $prefix-bb<N>),"
echo "         a management network without delay (bridge in $core, 198.19.255.0/24) for /metrics and Prometheus"
for h in "${hubs[@]}"; do
  printf '  %-4s %-19s %-44s mgmt %s\n' "$h" "${hub_site[$h]}" "${hub_region[$h]}" "${mgmt[$h]}"
done

# --- etcd: where the agents publish their path preferences (the scheduler's view) --------------------
failed_step="starting etcd" show_logs=(etcd.log testbed.log)
etcd_url=http://$core_v4:2379
etcd_prefix=/hubprobe-demo
tb_spawn etcd "$core" "$dir/etcd.log" etcd --name demo --data-dir "$dir/etcd" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster demo=http://127.0.0.1:2380 --log-level warn
tb_wait_http "$core" "$etcd_url/health" 20 || {
  failed_step="etcd did not answer $etcd_url/health within 20 s"
  exit 1
}
show_logs=('agent-*.log' prometheus.log etcd.log testbed.log)

# --- agents -----------------------------------------------------------------------------------------
# peer name: the peer hub for the first link between two hubs, <hub>-link<N> for the Nth.
peer_name() { if (($2 == 1)); then printf '%s' "$1"; else printf '%s-link%d' "$1" "$2"; fi; }
failed_step="starting the agents"
declare -A npeers=() addr_of=()
for e in "${ends[@]}"; do
  read -r eh _ eaddr _ _ link _ <<<"$e"
  addr_of[$link $eh]=$eaddr
done
# The xdp backend on every second hub: XDP answers the STAMP requests arriving on its link interfaces
# (generic mode: on veth, native XDP_TX needs a program on the peer veth too).
declare -A backend_of=()
i=0
for h in "${hubs[@]}"; do
  backend_of[$h]=kernel
  if ((${DEMO_XDP:-1} == 1 && i % 2 == 0)); then backend_of[$h]=xdp; fi
  i=$((i + 1))
done
# The dpdk backend on the first hub with a single link: its poll-mode port takes over that link's veth and
# addresses. The lcore loop pauses 50 us when idle (idle_pause_us), so it does not take a core from the
# other agents and emulators of this small machine.
declare -A links_of=()
for e in "${ends[@]}"; do
  read -r eh _ <<<"$e"
  links_of[$eh]=$((${links_of[$eh]:-0} + 1))
done
dpdk_hub=''
if ((${DEMO_DPDK:-1} == 1)); then
  for h in "${hubs[@]}"; do
    if ((${links_of[$h]:-0} == 1)); then
      dpdk_hub=$h
      backend_of[$h]=dpdk
      break
    fi
  done
fi
# dpdk_end HUB: the "hub peer address ns if link nth v6 delay" line of the dpdk hub's one link.
dpdk_end() {
  local e eh
  for e in "${ends[@]}"; do
    read -r eh _ <<<"$e"
    if [[ $eh == "$1" ]]; then printf '%s' "$e"; fi
  done
}
# The kernel of the dpdk hub gives its link addresses up to the DPDK port (which answers ARP and ND for them).
if [[ -n $dpdk_hub ]]; then
  read -r _ _ dpdk_v4 dpdk_ns dpdk_if _ _ dpdk_v6 _ <<<"$(dpdk_end "$dpdk_hub")"
  ip -n "$dpdk_ns" addr flush dev "$dpdk_if"
  ip netns exec "$dpdk_ns" sysctl -qw "net.ipv6.conf.$dpdk_if.disable_ipv6=1"
fi
# dataplane_table HUB: the agent's [dataplane] table (none for kernel, the default).
dataplane_table() {
  if [[ ${backend_of[$1]} == dpdk ]]; then
    printf '[dataplane]\nbackend = "dpdk"\n[dataplane.dpdk]\nport = "net_af_packet0,iface=%s"\n' "$dpdk_if"
    printf 'addresses = ["%s/24", "%s/64"]\n' "$dpdk_v4" "$dpdk_v6"
    printf 'eal_args = ["--no-huge", "-m", "256", "--no-pci", "--no-telemetry"]\nidle_pause_us = 50\n'
    return 0
  fi
  [[ ${backend_of[$1]} == xdp ]] || return 0
  local e eh iface list=""
  for e in "${ends[@]}"; do
    read -r eh _ _ _ iface _ <<<"$e"
    if [[ $eh == "$1" ]]; then list+="${list:+, }\"$iface\""; fi
  done
  printf '[dataplane]\nbackend = "xdp"\n[dataplane.xdp]\ninterfaces = [%s]\nmode = "generic"\n' "$list"
}
for h in "${hubs[@]}"; do
  conf=$dir/$h.toml
  npeers[$h]=0
  {
    echo "# hubprobe demo: agent of hub $h (${hub_site[$h]}, ${hub_region[$h]}), ${backend_of[$h]} backend"
    echo "[agent]"
    echo "id = \"$h-demo\""
    echo "hub = \"$h\""
    dataplane_table "$h"
    echo "[probe]"
    echo "interval = \"$interval\""
    echo "window = \"$window\""
    for e in "${ends[@]}"; do
      read -r eh peer _ _ _ link nth _ <<<"$e"
      [[ $eh == "$h" ]] || continue
      echo "[[peer]]"
      echo "name = \"$(peer_name "$peer" "$nth")\""
      echo "hub = \"$peer\""
      echo "address = \"${addr_of[$link $peer]}\"" # the other end of the same link
      npeers[$h]=$((${npeers[$h]} + 1))
    done
    # Path selection: the links to one hub are that hub's candidates; a short SLA window for the demo.
    echo "[sla.default]"
    echo "window = \"$window\""
    echo "hold_down = \"20s\""
    echo "switch_after = \"3s\""
    echo "[scheduler]"
    echo "state_dir = \"$dir/state-$h\""
    echo "refresh = \"10s\""
    echo "[[scheduler.etcd]]"
    echo "endpoints = [\"$etcd_url\"]"
    echo "prefix = \"$etcd_prefix\""
    echo "ttl = \"5s\""
    echo "[metrics]"
    echo "listen = \"${mgmt[$h]}:$metrics_port\""
  } >"$conf"
  # In the hub namespace: the config names its interfaces.
  out=$(ip netns exec "$prefix-$h" "$daemon" -c "$conf" --check-config 2>&1) || {
    failed_step="config of agent $h: $out"
    exit 1
  }
done
# Started back to back: an agent's probes to a peer whose agent is not up yet are lost (forward loss).
for h in "${hubs[@]}"; do
  tb_spawn "hubprobed/$h" "$prefix-$h" "$dir/agent-$h.log" "$daemon" -c "$dir/$h.toml"
done
for h in "${hubs[@]}"; do
  tb_wait_http "$core" "http://${mgmt[$h]}:$metrics_port/healthz" 10 || {
    failed_step="agent $h did not answer /healthz within 10 s"
    exit 1
  }
done
sessions=0
for h in "${hubs[@]}"; do sessions=$((sessions + ${npeers[$h]})); done
echo
echo "agents: hubprobed in each hub probes each hub it has a link to, over each link, every $interval"
xdp_hubs=$(for h in "${hubs[@]}"; do if [[ ${backend_of[$h]} == xdp ]]; then printf '%s ' "$h"; fi; done)
echo "        backends: xdp (reflector in XDP) on ${xdp_hubs:-no hub}${dpdk_hub:+; dpdk (a poll-mode port owning its link addresses) on $dpdk_hub}; kernel on the others"
echo "        ($sessions sessions; statistics window $window); /metrics on <mgmt address>:$metrics_port"

# --- Prometheus -------------------------------------------------------------------------------------
failed_step="starting Prometheus"
{
  echo "# Written by scripts/demo.sh; see config/prometheus/prometheus.yml for the operator example."
  echo "global:"
  echo "  scrape_interval: 1s"
  echo "  scrape_timeout: 1s"
  echo "scrape_configs:"
  echo "  - job_name: hubprobe"
  echo "    static_configs:"
  echo "      - targets:"
  for h in "${hubs[@]}"; do echo "          - '${mgmt[$h]}:$metrics_port'"; done
} >"$dir/prometheus.yml"
mkdir "$dir/tsdb"
tb_spawn prometheus "$core" "$dir/prometheus.log" prometheus \
  --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
  --web.listen-address="$core_v4:$prom_port" --log.level=warn
prom=http://$core_v4:$prom_port
tb_wait_http "$core" "$prom/-/ready" 15 || {
  failed_step="Prometheus not ready within 15 s"
  exit 1
}
# To this machine's loopback (only): socat in the core namespace serves a unix socket in $dir, socat in
# this namespace listens on 127.0.0.1:PORT and connects to it. Unix sockets do not care about network
# namespaces, so no interface or address is added to this machine.
prom_local=
if ((prom_host_port != 0)) && command -v socat >/dev/null; then
  failed_step="forwarding Prometheus to 127.0.0.1"
  for ((p = prom_host_port; p <= prom_host_port + 9; p++)); do
    if [[ -z $(ss -Hltn "sport = :$p" 2>/dev/null) ]]; then
      tb_spawn socat-core "$core" "$dir/socat-core.log" socat \
        "UNIX-LISTEN:$dir/prometheus.sock,fork,mode=600" "TCP:$core_v4:$prom_port"
      tb_spawn socat-host - "$dir/socat-host.log" socat \
        "TCP-LISTEN:$p,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$dir/prometheus.sock"
      for _ in $(seq 50); do
        curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$p/-/ready" 2>/dev/null && {
          prom_local=http://127.0.0.1:$p
          break
        }
        sleep 0.1
      done
      [[ -n $prom_local ]] || echo "note: forwarding Prometheus to 127.0.0.1:$p did not work ($(cat "$dir/socat-host.log"))"
      break
    fi
  done
  [[ -n $prom_local ]] || echo "note: no free port in 127.0.0.1:$prom_host_port-$((prom_host_port + 9)) for Prometheus"
elif ((prom_host_port != 0)); then
  echo "note: socat is not installed (scripts/setup.sh installs it): Prometheus only inside $core"
fi
echo
if [[ -n $prom_local ]]; then
  echo "prometheus: $prom_local/  (browser on this machine; from another: ssh -L ${prom_local##*:}:127.0.0.1:${prom_local##*:} root@<this host>)"
  echo "            e.g. $prom_local/graph?g0.expr=hubprobe_rtt_window_seconds%7Bquantile%3D%220.5%22%7D"
fi
echo "prometheus: $prom inside $core, scraping ${#hubs[@]} agents every second; from a shell:"
echo "  ip netns exec $core curl -s '$prom/api/v1/query?query=hubprobe_peer_up'"

# Prometheus' HTTP API from inside the core namespace; query strings are URL-encoded by curl.
# prom_query QUERY [CURL ARGS...]
prom_query() {
  local q=$1
  shift
  tb_http_get "$core" "$prom/api/v1/query" -G --data-urlencode "query=$q" "$@"
}

failed_step="waiting for Prometheus to scrape all ${#hubs[@]} agents"
deadline=$((SECONDS + 20))
until [[ $(tb_http_get "$core" "$prom/api/v1/targets?state=active" 2>/dev/null |
  jq '[.data.activeTargets[] | select(.health == "up")] | length' 2>/dev/null) == "${#hubs[@]}" ]]; do
  ((SECONDS < deadline)) || {
    tb_http_get "$core" "$prom/api/v1/targets" | jq -r '.data.activeTargets[] |
      "  target \(.scrapeUrl): \(.health) \(.lastError)"' >&2 || true
    exit 1
  }
  sleep 0.2
done
# Up targets are not yet samples: wait for the first RTT of every session to land in the TSDB.
failed_step="waiting for RTT samples of all $sessions sessions in Prometheus"
deadline=$((SECONDS + 15))
until [[ $(prom_query 'count(hubprobe_rtt_window_samples{job="hubprobe"} > 0)' 2>/dev/null |
  jq -r '.data.result[0].value[1] // 0' 2>/dev/null) == "$sessions" ]]; do
  ((SECONDS < deadline)) || break # the matrix shows what is missing and fails the demo
  sleep 0.2
done

# --- the matrix -------------------------------------------------------------------------------------
# Four instant queries evaluated at the same time (the time= parameter), so every cell is consistent:
# the windowed RTT p50, how many RTT samples the window holds (an empty window is "no samples", whatever
# the quantile says), the windowed loss ratio and whether the peer is up. (Not one query joined with
# `or`: `or` matches label sets without the metric name, so hubprobe_peer_up would be shadowed by
# hubprobe_rtt_window_samples, which has the same labels.)
matrix_queries=(
  'hubprobe_rtt_window_seconds{job="hubprobe",quantile="0.5"}'
  'hubprobe_rtt_window_samples{job="hubprobe"}'
  'hubprobe_loss_window_ratio{job="hubprobe",direction="total"}'
  'hubprobe_peer_up{job="hubprobe"}'
  'hubprobe_build_info{job="hubprobe"}'
)
# Expected sessions as "hub peer-name peer-hub nth" lines, for the renderer.
expected=$dir/sessions.txt
for e in "${ends[@]}"; do
  read -r eh peer _ _ _ _ nth _ <<<"$e"
  echo "$eh $(peer_name "$peer" "$nth") $peer $nth"
done >"$expected"

# render_matrix FILE: writes the matrix to FILE and sets missing_pairs (sessions without an RTT, or down).
# Lines stay under 80 columns so that the in-place redraw on a terminal counts them right.
render_matrix() {
  local out=$1 at q rows="" part
  at=$(date +%s.%N)
  for q in "${matrix_queries[@]}"; do
    # TSV rows: hub, peer (name), field, value.
    part=$(prom_query "$q" --data-urlencode "time=$at" | jq -r '.data.result[] | .metric as $m |
        [$m.hub, $m.peer,
         (if $m.__name__ == "hubprobe_rtt_window_seconds" then "p50"
          elif $m.__name__ == "hubprobe_rtt_window_samples" then "samples"
          elif $m.__name__ == "hubprobe_loss_window_ratio" then "loss"
          elif $m.__name__ == "hubprobe_build_info" then "backend" else "up" end),
         (if $m.__name__ == "hubprobe_build_info" then $m.backend else .value[1] end)] | @tsv') || {
      echo "(the Prometheus query failed: $q)" >"$out"
      missing_pairs=$sessions
      return 0
    }
    rows+=$part$'\n'
  done
  awk -F'\t' -v hubs="${hubs[*]}" -v at="$(date -d "@$at" +%T)" -v mfile="$out.missing" -v colour="$colour" \
    -v expected="$expected" -v window="$window" '
    BEGIN {
      while ((getline line < expected) > 0) { split(line, e, " "); nexp++; eh[nexp] = e[1]; ep[nexp] = e[2]; eph[nexp] = e[3]; en[nexp] = e[4] }
      if (colour) { G = "\033[32m"; Y = "\033[33m"; R = "\033[1;31m"; D = "\033[2m"; N = "\033[0m" }
    }
    { v[$1, $2, $3] = $4 }
    function num(k) { return (k in v) && v[k] != "NaN" }
    # cell(hub, peer name): "12.3" (p50 in ms), "DOWN", "?" (no data yet); sets ok[hub, peer], band colour.
    function cell(h, p,    k) {
      k = h SUBSEP p
      if ((k SUBSEP "up") in v && v[k, "up"] != 1) return "DOWN"
      if (!num(k SUBSEP "p50") || ((k SUBSEP "samples") in v && v[k, "samples"] == 0)) return "?"
      ok[h, p] = 1
      return sprintf("%.1f", v[k, "p50"] * 1000)
    }
    # The cell right-aligned in w columns, coloured by band (escape codes outside the width).
    function paint(s, w,    x, c) {
      x = sprintf("%" w "s", s)
      if (!colour || s == "-") return x
      if (s == ".") return D x N
      if (s == "DOWN" || s == "?") return R x N
      c = s + 0
      if (c <= 5) return G x N
      if (c <= 20) return x
      return Y x N
    }
    END {
      n = split(hubs, hub, " ")
      for (i = 1; i <= nexp; i++) { if (en[i] == 1) link1[eh[i], eph[i]] = ep[i]; else extra[++nx] = i }
      printf "%s  RTT p50 in ms (window %s, from Prometheus); rows: from, columns: to\n", at, window
      printf "%-8s", "from\\to"
      for (j = 1; j <= n; j++) printf " %5s", hub[j]
      printf "  backend\n"
      for (i = 1; i <= n; i++) {
        printf "%-8s", hub[i]
        for (j = 1; j <= n; j++) {
          if (i == j) s = "-"
          else if ((hub[i], hub[j]) in link1) s = cell(hub[i], link1[hub[i], hub[j]])
          else s = "."
          printf " %s", paint(s, 5)
        }
        printf "  %s\n", ((hub[i], "", "backend") in v) ? v[hub[i], "", "backend"] : "?"
      }
      # Second (third...) links between two hubs, next to the first link of the same pair.
      for (x = 1; x <= nx; x++) {
        i = extra[x]
        printf "link %d  %3s -> %-3s %s ms   (link 1: %s ms)\n", en[i], eh[i], eph[i], paint(cell(eh[i], ep[i]), 5), \
          paint(((eh[i], eph[i]) in link1) ? cell(eh[i], link1[eh[i], eph[i]]) : ".", 5)
      }
      lossy = ""
      for (i = 1; i <= nexp; i++) {
        k = eh[i] SUBSEP ep[i]
        if (num(k SUBSEP "loss") && v[k, "loss"] > 0)
          lossy = lossy sprintf(" %s->%s%s %.1f%%", eh[i], eph[i], en[i] > 1 ? "#" en[i] : "", v[k, "loss"] * 100)
      }
      if (length(lossy) > 70) lossy = substr(lossy, 1, 66) " ..."
      print "loss:" (lossy == "" ? " none in the window" : lossy)
      print "bands: " (colour ? G "<= 5 ms" N ", <= 20 ms, " Y "> 20 ms" N ", " R "down / no data" N : \
        "(policy targets) <= 5 ms region, <= 20 ms between hubs; ? no data, . no link")
      missing = 0
      for (i = 1; i <= nexp; i++) if (!((eh[i], ep[i]) in ok)) missing++
      print missing > mfile
    }' <<<"$rows" >"$out"
  missing_pairs=$(<"$out.missing")
}

# show_matrix SECONDS: renders and prints the matrix every $refresh seconds for SECONDS (forever if
# SECONDS is "forever"), in place on a terminal.
show_matrix() {
  local until=$1 end drawn=0
  end=$((SECONDS + ${until/forever/0}))
  while :; do
    render_matrix "$dir/matrix.txt"
    if ((redraw && drawn)); then
      printf '\033[%dA\033[J' "$drawn"
    elif ((drawn)); then
      echo
    fi
    cat "$dir/matrix.txt"
    drawn=$(wc -l <"$dir/matrix.txt")
    [[ $until == forever ]] || ((SECONDS + refresh <= end)) || break
    sleep "$refresh"
  done
}

echo
echo "nominal RTTs of the topology (2 x the emulated one-way delay; the measured ones come out a few"
echo "tens of microseconds above: the emulator's own delay, veth hops, the stack):"
scripts/testbed.sh check "$topology" | tail -n +3 | sed 's/^# /   /; s/^/  /'
echo
echo "measured: hub-to-hub matrix for ${seconds} s, read from Prometheus' HTTP API (/api/v1/query):"
printf '  %s\n' "${matrix_queries[@]}"
failed_step="reading the matrix from Prometheus"
show_matrix "$seconds"

# --- the CLI and /status ----------------------------------------------------------------------------
# A pair with a second link if there is one (IPv4 on link 1, IPv6 on link 2), else the first link.
pick=${ends[0]}
for e in "${ends[@]}"; do
  read -r _ _ _ _ _ _ nth _ <<<"$e"
  if ((nth == 2)); then
    pick=$e
    break
  fi
done
read -r ph pp _ _ _ _ pnth _ <<<"$pick"
v4_1='' v6_n=''
for e in "${ends[@]}"; do
  read -r eh ep eaddr _ _ _ enth ev6 _ <<<"$e"
  [[ $eh == "$pp" && $ep == "$ph" ]] || continue
  ((enth == 1)) && v4_1=$eaddr
  ((enth == pnth)) && v6_n=$ev6
done
failed_step="hubprobe ping"
echo
echo "hub $ph -> reflector of the $pp agent over link 1: hubprobe ping -c 10 -i 0.05 $v4_1"
ip netns exec "$prefix-$ph" "$cli" ping -c 10 -i 0.05 "$v4_1"
echo
echo "hub $ph -> $pp over link $pnth and IPv6: hubprobe ping -q -c 100 -i 0.01 [$v6_n]"
ip netns exec "$prefix-$ph" "$cli" ping -q -c 100 -i 0.01 "[$v6_n]"

failed_step="hubprobe status of the $ph agent"
echo
echo "hubprobe status -a ${mgmt[$ph]}:$metrics_port   (the $ph agent's /status, from the core namespace)"
ip netns exec "$core" "$cli" status -a "${mgmt[$ph]}:$metrics_port"
tb_http_get "$core" "http://${mgmt[$ph]}:$metrics_port/status" | jq -r '.reflector |
  "reflector: \(.listen | join(" ")), \(if .stateful then "stateful" else "stateless" end),"
  + " \(.received) received, \(.reflected) reflected, \(.dropped) dropped in user space"
  + (if (.in_backend // "") != "" then "; in the kernel first: \(.in_backend)" else "" end)'

# --- path preferences: what the scheduler sees, and a preference that moves ------------------------
failed_step="hubprobe prefs"
echo
echo "path preferences in etcd (what a scheduler reads): hubprobe prefs --etcd $etcd_url --prefix $etcd_prefix"
echo "(per source hub: the preferred link to each destination hub and its delay-rt in ms)"
ip netns exec "$core" "$cli" prefs --etcd "$etcd_url" --prefix "$etcd_prefix"

# The pair picked above has two links: slow down the link its agent prefers by 5 ms each way and watch the
# preference move to the other link (after the SLA's switch_after of 3 s, once the windowed median moved).
preferred_peer() {
  tb_http_get "$core" "http://${mgmt[$ph]}:$metrics_port/status" |
    jq -r --arg hub "$pp" '.preferences.destinations[]? | select(.hub == $hub) | .preferred.peer // empty'
}
if ((pnth == 2)); then
  failed_step="moving a preference"
  before=$(preferred_peer)
  slow_link='' slow_delay=''
  for e in "${ends[@]}"; do
    read -r eh ep _ _ _ elink enth _ edelay <<<"$e"
    [[ $eh == "$ph" && $ep == "$pp" && $(peer_name "$ep" "$enth") == "$before" ]] || continue
    slow_link=$elink slow_delay=$edelay
  done
  if [[ -n $slow_link ]]; then
    new_delay=$(awk -v d="${slow_delay%ms}" 'BEGIN { printf "%g", d + 5 }')ms
    echo
    echo "the $ph agent prefers $before to reach $pp; making that link 10 ms slower (RTT):"
    echo "  $linkemu --ctl $testbed_state/$slow_link.sock 'set both delay=$new_delay'"
    "$linkemu" --ctl "$testbed_state/$slow_link.sock" "set both delay=$new_delay" >/dev/null
    moved_at=$SECONDS after=$before
    while [[ $after == "$before" ]] && ((SECONDS - moved_at < 30)); do
      sleep 0.5
      after=$(preferred_peer)
    done
    if [[ $after != "$before" ]]; then
      echo "preference of $ph for hub $pp moved from $before to $after within $((SECONDS - moved_at)) s"
      echo "(it waits for the SLA window's median to move, then for switch_after: no flapping on noise)"
      ip netns exec "$core" "$cli" prefs --etcd "$etcd_url" --prefix "$etcd_prefix" | grep -E "^ *(from|$ph) " || true
    else
      echo "preference of $ph for hub $pp did not move within 30 s"
      missing_pairs=$((missing_pairs + 1))
    fi
  fi
fi

# --- verdict ----------------------------------------------------------------------------------------
failed_step=
echo
if [[ $missing_pairs != 0 ]]; then
  echo "RESULT: matrix incomplete: $missing_pairs of $sessions sessions down or without an RTT in Prometheus"
  exit 1
fi
echo "RESULT: ok, all $sessions sessions (every linked hub pair, both ways, every link) measured by the"
echo "        agents and read back from Prometheus"
if [[ $hold == 1 ]]; then
  echo
  read -r l1a l1b _ _ _ _ _ _ l1delay <<<"${ends[0]}"
  echo "DEMO_HOLD=1: everything keeps running until Ctrl-C. Change a link while it runs (link1 is $l1a-$l1b,"
  echo "$l1delay each way; ab = $l1a to $l1b), e.g. 5 ms more one way, or 2 % loss:"
  echo "  $linkemu --ctl $testbed_state/link1.sock 'set ab delay=$(awk -v d="${l1delay%ms}" 'BEGIN { printf "%g", d + 5 }')ms'"
  echo "  $linkemu --ctl $testbed_state/link1.sock 'set ab loss=2%'"
  echo "  (links: $testbed_state/hosts; shell in a hub: ip netns exec $prefix-${hubs[0]} bash)"
  [[ -n $prom_local ]] && echo "  Prometheus: $prom_local/"
  echo
  show_matrix forever
fi
