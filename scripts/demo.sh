#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: ./scripts/demo.sh [--headless]      (as root)
# The local demo. Installs what is needed (scripts/setup.sh), builds (scripts/build.sh), then:
#   - puts three hubs, gz (Guangzhou), sg (Shaoguan) and sh (Shanghai), in network namespaces
#     hpdemo-<pid>-{gz,sg,sh}, joined through a bridge in a core namespace hpdemo-<pid>-core,
#   - runs a hubprobed agent in each hub, probing the other two every 100 ms, with /metrics on the
#     hub's address (198.18.x.1:9862),
#   - runs a real Prometheus in the core namespace that scrapes the three agents every second,
#   - prints the hub-to-hub RTT matrix read back from Prometheus' HTTP API for DEMO_SECONDS,
#   - shows `hubprobe ping` against one hub's reflector and `hubprobe status` of one agent,
#   - tears everything down (also on Ctrl-C or failure) and checks that nothing is left behind.
# Run as root. Addresses come only from 198.18.0.0/15 and 2001:db8::/32, inside the namespaces.
#
# Environment:
#   DEMO_SECONDS=10     how long to show the matrix (seconds)
#   DEMO_REFRESH=2      seconds between matrix updates
#   DEMO_HEADLESS=1     for tests and CI: no in-place redraw, no hold; same checks. Also --headless.
#   DEMO_HOLD=1         keep everything running after the matrix until Ctrl-C (to explore Prometheus)
#   DEMO_SKIP_BUILD=1   skip setup.sh and build.sh (the binaries must already be built)
#   HUBPROBE_BUILD_DIR  build directory (default: build/), as for scripts/build.sh
# Exit status: 0 when every hub pair has an RTT in Prometheus and every peer is up; 1 when the matrix
# is incomplete or a step failed; 130 on Ctrl-C. Teardown leftovers also make the status non-zero.
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
seconds=${DEMO_SECONDS:-10}
refresh=${DEMO_REFRESH:-2}
hold=${DEMO_HOLD:-0}
[[ $headless == 1 ]] && hold=0
if ! [[ $seconds =~ ^[0-9]+$ && $refresh =~ ^[1-9][0-9]*$ ]]; then
  echo "demo.sh: DEMO_SECONDS and DEMO_REFRESH must be whole seconds (DEMO_REFRESH >= 1)" >&2
  exit 2
fi
redraw=0
[[ $headless != 1 && -t 1 ]] && redraw=1

if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root (it creates network namespaces)" >&2
  exit 1
fi

# --- teardown, armed before anything is created ---------------------------------------------------
dir=
failed_step=
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
  echo "tearing down: stopping ${#TB_PIDS[@]} processes, removing ${#TB_NETNS[@]} namespaces and $dir"
  if tb_cleanup; then
    echo "teardown: clean (no namespaces, processes or files of this demo left)"
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
if [[ ${DEMO_SKIP_BUILD:-0} != 1 ]]; then
  failed_step="scripts/setup.sh" show_logs=(setup.log)
  echo "installing packages (scripts/setup.sh)..."
  scripts/setup.sh >"$dir/setup.log" 2>&1
  failed_step="scripts/build.sh" show_logs=(build.log)
  echo "building hubprobe (scripts/build.sh)..."
  scripts/build.sh >"$dir/build.log" 2>&1
  show_logs=('agent-*.log' prometheus.log)
fi
daemon=$build/agent/hubprobed
cli=$build/agent/hubprobe
for b in "$daemon" "$cli"; do
  [[ -x $b ]] || { failed_step="$b is missing: build first"; exit 1; }
done
for c in prometheus curl jq; do
  command -v "$c" >/dev/null || { failed_step="$c is not installed: run scripts/setup.sh"; exit 1; }
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
hubs=(gz sg sh)
declare -A hub_name=([gz]=Guangzhou [sg]=Shaoguan [sh]=Shanghai)
declare -A hub_v4=([gz]=198.18.0.1 [sg]=198.18.1.1 [sh]=198.18.2.1)
declare -A hub_v6=([gz]=2001:db8::1 [sg]=2001:db8::2 [sh]=2001:db8::3)
core_v4=198.18.255.254
prom_port=9090
metrics_port=9862

failed_step="creating the namespaces"
echo
echo "testbed: core namespace $core, bridge hpbr0, Prometheus on $core_v4 (scrapes) and 127.0.0.1:$prom_port (web)"
tb_core "$core" hpbr0 "$core_v4/16" 2001:db8::ff/64
for h in "${hubs[@]}"; do
  tb_hub "$prefix-$h" "$core" hpbr0 "$h" "${hub_v4[$h]}/16" "${hub_v6[$h]}/64"
  printf '  hub %-3s %-10s namespace %-22s %-11s %s\n' "$h" "${hub_name[$h]}" "$prefix-$h" \
    "${hub_v4[$h]}" "${hub_v6[$h]}"
done
echo "links: veth to one Linux bridge, no added delay (this kernel has no netem; the link emulator that"
echo "       gives the hubs real distances comes with a later milestone), so RTTs are host-local microseconds."

# --- agents -----------------------------------------------------------------------------------------
failed_step="starting the agents"
for h in "${hubs[@]}"; do
  conf=$dir/$h.toml
  {
    echo "# hubprobe demo: agent of hub $h (${hub_name[$h]})"
    echo "[agent]"
    echo "id = \"$h-demo\""
    echo "hub = \"$h\""
    echo "[probe]"
    echo "interval = \"100ms\""
    echo "window = \"10s\""
    for p in "${hubs[@]}"; do
      [[ $p == "$h" ]] && continue
      echo "[[peer]]"
      echo "name = \"$p-demo\""
      echo "hub = \"$p\""
      echo "address = \"${hub_v4[$p]}\""
    done
    echo "[metrics]"
    echo "listen = \"${hub_v4[$h]}:$metrics_port\""
  } >"$conf"
  out=$("$daemon" -c "$conf" --check-config 2>&1) || { failed_step="config of agent $h: $out"; exit 1; }
done
# Started back to back: an agent's probes to a peer whose agent is not up yet are lost (forward loss).
for h in "${hubs[@]}"; do
  tb_spawn "hubprobed/$h" "$prefix-$h" "$dir/agent-$h.log" "$daemon" -c "$dir/$h.toml"
done
for h in "${hubs[@]}"; do
  tb_wait_http "$core" "http://${hub_v4[$h]}:$metrics_port/healthz" 10 || {
    failed_step="agent $h did not answer /healthz within 10 s"
    exit 1
  }
done
echo
echo "agents: hubprobed in each hub probes the other two every 100 ms (window 10 s), /metrics on :$metrics_port"
echo "        (the agents start one after another: probes sent before a peer's agent was listening count"
echo "        as forward loss, and leave the matrix when they leave the 10 s window)"

# --- Prometheus -------------------------------------------------------------------------------------
failed_step="starting Prometheus"
cat >"$dir/prometheus.yml" <<EOF
# Written by scripts/demo.sh; see config/prometheus/prometheus.yml for the operator example.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: hubprobe
    static_configs:
      - targets: ['${hub_v4[gz]}:$metrics_port', '${hub_v4[sg]}:$metrics_port', '${hub_v4[sh]}:$metrics_port']
EOF
mkdir "$dir/tsdb"
tb_spawn prometheus "$core" "$dir/prometheus.log" prometheus \
  --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn
prom=http://127.0.0.1:$prom_port
tb_wait_http "$core" "$prom/-/ready" 15 || { failed_step="Prometheus not ready within 15 s"; exit 1; }
echo "prometheus: ready, web UI and API at $prom inside $core; while the demo runs (DEMO_HOLD=1 keeps it):"
echo "  sudo ip netns exec $core curl -s '$prom/api/v1/query?query=hubprobe_peer_up'"

# Prometheus' HTTP API from inside the core namespace; query strings are URL-encoded by curl.
# prom_query QUERY [CURL ARGS...]
prom_query() {
  local q=$1
  shift
  tb_http_get "$core" "$prom/api/v1/query" -G --data-urlencode "query=$q" "$@"
}

failed_step="waiting for Prometheus to scrape all three agents"
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
# Up targets are not yet samples: wait for the first RTT of every pair to land in the TSDB.
pairs=$((${#hubs[@]} * (${#hubs[@]} - 1)))
failed_step="waiting for RTT samples of all $pairs hub pairs in Prometheus"
deadline=$((SECONDS + 10))
until [[ $(prom_query 'count(hubprobe_rtt_window_samples{job="hubprobe"} > 0)' 2>/dev/null |
  jq -r '.data.result[0].value[1] // 0' 2>/dev/null) == "$pairs" ]]; do
  ((SECONDS < deadline)) || break # the matrix shows what is missing and fails the demo
  sleep 0.2
done
echo "prometheus: scraping all ${#hubs[@]} agents (job=\"hubprobe\", every 1 s)"

# --- the matrix -------------------------------------------------------------------------------------
# Four instant queries evaluated at the same time (the time= parameter), so every cell is consistent:
# p50 and p99 of the windowed RTT summary, how many RTT samples the window holds (an empty window is
# "no samples", whatever the quantiles say), the windowed loss ratio and whether the peer is up.
# (Not one query joined with `or`: `or` matches label sets without the metric name, so
# hubprobe_peer_up would be shadowed by hubprobe_rtt_window_samples, which has the same labels.)
matrix_queries=(
  'hubprobe_rtt_window_seconds{job="hubprobe",quantile=~"0.5|0.99"}'
  'hubprobe_rtt_window_samples{job="hubprobe"}'
  'hubprobe_loss_window_ratio{job="hubprobe",direction="total"}'
  'hubprobe_peer_up{job="hubprobe"}'
)

# render_matrix FILE: writes the table to FILE and sets missing_pairs (pairs without an RTT, or down).
# Lines stay under 80 columns so that the in-place redraw on a terminal counts them right.
render_matrix() {
  local out=$1 at q rows="" part
  missing_pairs=$pairs
  at=$(date +%s.%N)
  for q in "${matrix_queries[@]}"; do
    # TSV rows: from-hub, to-hub, field, value.
    part=$(prom_query "$q" --data-urlencode "time=$at" | jq -r '.data.result[] | .metric as $m |
        [$m.hub, $m.peer_hub,
         (if $m.__name__ == "hubprobe_rtt_window_seconds" then "p" + $m.quantile
          elif $m.__name__ == "hubprobe_rtt_window_samples" then "samples"
          elif $m.__name__ == "hubprobe_loss_window_ratio" then "loss" else "up" end),
         .value[1]] | @tsv') || { echo "(the Prometheus query failed: $q)" >"$out"; return 0; }
    rows+=$part$'\n'
  done
  awk -F'\t' -v hubs="${hubs[*]}" -v at="$(date -d "@$at" +%T)" -v mfile="$out.missing" '
    { v[$1, $2, $3] = $4 }
    function num(k) { return (k in v) && v[k] != "NaN" }
    END {
      n = split(hubs, h, " ")
      printf "%s  RTT p50 / p99 (microseconds)  loss   rows: from, columns: to\n", at
      printf "%-9s", "from\\to"
      for (j = 1; j <= n; j++) printf " %21s", h[j]
      printf "\n"
      missing = 0
      for (i = 1; i <= n; i++) {
        printf "%-9s", h[i]
        for (j = 1; j <= n; j++) {
          if (i == j) { printf " %21s", "-"; continue }
          k = h[i] SUBSEP h[j]
          if ((k SUBSEP "up") in v && v[k, "up"] != 1) {
            # A peer that is down: its RTT quantiles are stale or empty, the loss says how bad.
            cell = "DOWN" (num(k SUBSEP "loss") ? sprintf(", loss %.1f%%", v[k, "loss"] * 100) : "")
            missing++
          } else if (!num(k SUBSEP "p0.5")) { cell = "no data"; missing++ }
          else if ((k SUBSEP "samples") in v && v[k, "samples"] == 0) { cell = "no samples"; missing++ }
          else {
            cell = sprintf("%.1f / %s", v[k, "p0.5"] * 1e6, \
              num(k SUBSEP "p0.99") ? sprintf("%.1f", v[k, "p0.99"] * 1e6) : "?")
            cell = cell (num(k SUBSEP "loss") ? sprintf("  %.1f%%", v[k, "loss"] * 100) : "  ?%")
          }
          printf " %21s", cell
        }
        printf "\n"
      }
      print missing > mfile
    }' <<<"$rows" >"$out"
  missing_pairs=$(<"$out.missing")
}

echo
echo "hub-to-hub matrix for ${seconds} s, read from Prometheus' HTTP API (/api/v1/query):"
printf '  %s\n' "${matrix_queries[@]}"
failed_step="reading the matrix from Prometheus"
end=$((SECONDS + seconds))
drawn=0
while :; do
  render_matrix "$dir/matrix.txt"
  if ((redraw && drawn)); then
    printf '\033[%dA\033[J' "$drawn"
  elif ((drawn)); then
    echo
  fi
  cat "$dir/matrix.txt"
  drawn=$(wc -l <"$dir/matrix.txt")
  ((SECONDS + refresh <= end)) || break
  sleep "$refresh"
done

# --- the CLI and /status ----------------------------------------------------------------------------
failed_step="hubprobe ping"
echo
echo "hub sh -> reflector of the gz agent: hubprobe ping -c 10 -i 0.05 ${hub_v4[gz]}"
ip netns exec "$prefix-sh" "$cli" ping -c 10 -i 0.05 "${hub_v4[gz]}"
echo
echo "hub sh -> gz over IPv6: hubprobe ping -q -c 100 -i 0.01 [${hub_v6[gz]}]"
ip netns exec "$prefix-sh" "$cli" ping -q -c 100 -i 0.01 "[${hub_v6[gz]}]"

failed_step="hubprobe status of the gz agent"
echo
echo "hubprobe status -a ${hub_v4[gz]}:$metrics_port   (the gz agent's /status, from the core namespace)"
ip netns exec "$core" "$cli" status -a "${hub_v4[gz]}:$metrics_port"
tb_http_get "$core" "http://${hub_v4[gz]}:$metrics_port/status" | jq -r '.reflector |
  "reflector: \(.listen | join(" ")), \(if .stateful then "stateful" else "stateless" end),"
  + " \(.received) received, \(.reflected) reflected, \(.dropped) dropped"'

# --- verdict ----------------------------------------------------------------------------------------
failed_step=
echo
if [[ $missing_pairs != 0 ]]; then
  echo "RESULT: matrix incomplete: $missing_pairs of $pairs hub pairs down or without an RTT in Prometheus"
  exit 1
fi
echo "RESULT: ok, all $pairs hub pairs measured by the agents and read back from Prometheus"
if [[ $hold == 1 ]]; then
  echo "DEMO_HOLD=1: everything keeps running; Prometheus at $prom in $core. Ctrl-C tears down."
  while :; do sleep 1; done
fi
