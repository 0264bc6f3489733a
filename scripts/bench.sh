#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# RTT benchmark (docs/design.md, "Measuring performance"): in one run, over the same veth pair between
# two network namespaces, with the same probe count and rate, measures `ping`, `fping`,
# `sockperf ping-pong --full-rtt`, `hubprobe ping` against a `hubprobe reflect` (socket reflector) and
# `hubprobe ping` against the XDP reflector (`hubprobe reflect --backend xdp`, port 863 on the same veth),
# and `hubprobe ping` against the DPDK reflector (`hubprobe reflect --backend dpdk` on a net_af_packet vdev, on
# a second veth pair between the same namespaces whose reflector side the DPDK port owns, started only for its
# turns so that its busy-polled core is not taken from the other tools), unpinned as a real deployment runs; for both reflectors also their turnaround T3 - T2. Statistics are computed here, identically for every tool, from the per-probe values
# each tool prints (nearest-rank percentiles, population stddev; scripts/bench/stats.awk). Also the
# client's CPU time and peak RSS and the reflector's CPU time. Prints a Markdown report and rewrites the
# marked section of docs/benchmarks.md (between <!-- bench:begin --> and <!-- bench:end -->), including
# PASS/FAIL for the targets listed there. Run as root. Needs the packages of scripts/setup.sh; builds
# hubprobe only if missing.
#
#   scripts/bench.sh                 2000 probes per tool, one every 10 ms, in 4 rounds (about 2 min in all)
#   scripts/bench.sh --quick         300 probes per tool, prints the report, leaves the doc alone
#   scripts/bench.sh -n 5000 -i 0.005 --rounds 5 --raw /tmp/bench-raw
#
# Environment: BENCH_COUNT, BENCH_INTERVAL, BENCH_ROUNDS, BENCH_DOC, BENCH_RAW_DIR, HUBPROBE_BIN.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
helpers=$top/scripts/bench
export LC_ALL=C
# shellcheck source=scripts/lib/testbed.sh
source "$top/scripts/lib/testbed.sh"
# shellcheck source=scripts/lib/doc_section.sh
source "$top/scripts/lib/doc_section.sh"

usage() {
  cat <<EOF
usage: scripts/bench.sh [--quick] [-n|--count N] [-i|--interval SECONDS] [--rounds R]
                        [--doc FILE | --no-doc] [--raw DIR] [--no-json-check]
  -n, --count N        probes per tool (default 2000; 300 with --quick)
  -i, --interval S     seconds between probes, same for every tool (default 0.01; 1/S must be an integer)
  --rounds R           split the N probes of each tool into R rounds, the tools taking turns in a rotating
                       order, so that background load falls on all of them alike (default 4; 1 with --quick)
  --quick              short smoke run, 300 probes in one round; does not rewrite the doc unless --doc is given
  --doc FILE           Markdown file whose bench:begin/bench:end section is rewritten
                       (default docs/benchmarks.md)
  --no-doc             only print the report
  --raw DIR            keep every tool's raw output and the per-probe samples in DIR
  --no-json-check      skip the extra 'hubprobe ping -q --json' run (its own summary and the kernel /
                       user-space timestamp sources of T1 and T4)
EOF
}

count=${BENCH_COUNT:-}
interval=${BENCH_INTERVAL:-0.01}
rounds=${BENCH_ROUNDS:-}
doc=${BENCH_DOC:-$top/docs/benchmarks.md}
doc_given=${BENCH_DOC:+1}
write_doc=
raw_dir=${BENCH_RAW_DIR:-}
bin=${HUBPROBE_BIN:-$top/build/agent/hubprobe}
quick=0
json_check=1
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    -n | --count) count=${2:?}; shift ;;
    -i | --interval) interval=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --doc) doc=${2:?}; doc_given=1; shift ;;
    --no-doc) write_doc=0 ;;
    --raw) raw_dir=${2:?}; shift ;;
    --no-json-check) json_check=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [[ -z $count ]]; then
  if ((quick)); then count=300; else count=2000; fi
fi
if [[ -z $rounds ]]; then
  if ((quick)); then rounds=1; else rounds=4; fi
fi
if [[ -z $write_doc ]]; then
  if ((quick)) && [[ -z $doc_given ]]; then write_doc=0; else write_doc=1; fi
fi

die() { echo "bench.sh: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

[[ $count =~ ^[0-9]+$ && $count -ge 1 ]] || die "--count must be a positive integer"
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 ]] || die "--rounds must be a positive integer"
((count % rounds == 0)) || die "--count ($count) must be a multiple of --rounds ($rounds)"
per_round=$((count / rounds))
# Every tool gets the same rate: ping -i S, fping -p MS, sockperf --mps 1/S, hubprobe -i S.
read -r mps period_ms interval_ok < <(awk -v s="$interval" 'BEGIN {
  m = (s > 0) ? int(1 / s + 0.5) : 0
  ok = (s >= 0.002 && s <= 1 && m > 0 && (m * s > 0.999 && m * s < 1.001)) ? 1 : 0
  printf "%d %g %d\n", m, s * 1000, ok }')
((interval_ok)) || die "--interval must be between 0.002 and 1 s with 1/interval an integer (sockperf --mps)"

[[ $(id -u) -eq 0 ]] || die "run as root (it creates network namespaces)"
for tool in ip ping fping sockperf ss sort awk ethtool; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: run scripts/setup.sh"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (package 'time'): run scripts/setup.sh"
if [[ ! -x $bin ]]; then
  [[ -z ${HUBPROBE_BIN:-} ]] || die "HUBPROBE_BIN=$bin is not an executable"
  note "$bin missing, building it with scripts/build.sh"
  "$top/scripts/build.sh" >&2
  [[ -x $bin ]] || die "scripts/build.sh did not produce $bin"
fi

# --- the veth pair and cleanup ------------------------------------------------------------------------
tag=$$
ns_a=hpbench-$tag-a
ns_b=hpbench-$tag-b
if_a=hpba$tag
if_b=hpbb$tag
addr_a=198.18.0.1
addr_b=198.18.0.2
if_c=hpbc$tag
if_d=hpbd$tag
addr_c=198.18.1.1
addr_d=198.18.1.2
sockperf_port=11111
declare -A server_pid=()

# On exit: every process this script started is stopped by PID (the client's /usr/bin/time wrapper and
# the command it runs too), the raw outputs are kept if asked, the namespaces and $work removed.
keep_raw() {
  if [[ -n $raw_dir && -d $work ]]; then
    mkdir -p "$raw_dir" && cp -r "$work"/. "$raw_dir"/ && note "raw outputs kept in $raw_dir"
  fi
}
work=
tb_exit_traps keep_raw
tb_tmpdir work hubprobe-bench

read -r load_before _ < <(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)
# IPv4 only: no link-local IPv6 address, no router solicitations or MLD reports on the pair.
tb_netns_add --no-ipv6 "$ns_a"
tb_netns_add --no-ipv6 "$ns_b"
tb_veth_pair "$ns_a" "$if_a" "$addr_a/24" "$ns_b" "$if_b" "$addr_b/24"
# The sender's datagrams carry full UDP checksums (TX offload off): the XDP reflector answers only those,
# and hands partial ones (a veth peer on the same host) to user space. Every tool runs over the same setting.
ip netns exec "$ns_a" ethtool -K "$if_a" tx off >/dev/null || die "ethtool -K $if_a tx off failed"
# Resolve ARP both ways before anything is measured.
ip netns exec "$ns_a" ping -n -c 1 -W 2 "$addr_b" >/dev/null || die "no ping reply over the veth pair"
# The DPDK reflector's pair: the reflector side's kernel keeps no address (the DPDK port owns addr_d).
tb_veth_pair "$ns_a" "$if_c" "$addr_c/24" "$ns_b" "$if_d" "$addr_d/24"
ip -n "$ns_b" addr flush dev "$if_d"
ip netns exec "$ns_a" ethtool -K "$if_c" tx off >/dev/null || die "ethtool -K $if_c tx off failed"

# --- running one tool ---------------------------------------------------------------------------------
declare -A cpu_ms=() rss_kb=() server_ns=() sent=() received=() rc_note=()

add() { # add ARRAY KEY VALUE
  local -n arr=$1
  arr[$2]=$((${arr[$2]:-0} + $3))
}
# CPU time of the threads of a process we started, in ns (schedstat: time on CPU).
cpu_ns_of() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

# start_server NAME PORT LOG COMMAND... : in the reflector namespace, waits until the UDP port is bound.
# The reflectors run for the whole benchmark, as they would in a deployment.
start_server() {
  local name=$1 port=$2 log=$3
  shift 3
  tb_spawn "$name" "$ns_b" "$log" "$@"
  server_pid[$name]=$TB_LAST_PID
  local tries=0
  until [[ -n $(ip netns exec "$ns_b" ss -Hunl "sport = :$port") ]]; do
    kill -0 "${server_pid[$name]}" 2>/dev/null || { cat "$log" >&2; die "$name exited at start"; }
    ((++tries < 100)) || die "$name did not bind UDP port $port within 5 s"
    sleep 0.05
  done
}
stop_server() { # stop_server NAME: SIGTERM, then wait for it to write its last words to its log (SIGKILL after 3 s)
  tb_stop "${server_pid[$1]}"
  unset "server_pid[$1]"
}
# server_cpu NAME: on-CPU ns so far, failing if the server is gone
server_cpu() {
  local pid=${server_pid[$1]}
  [[ -d /proc/$pid ]] || die "$1 (pid $pid) exited during the benchmark"
  cpu_ns_of "$pid"
}

# The CPU time of `ip netns exec NS /usr/bin/time true`, subtracted from every client's (ms).
wrapper_ms=0
measure_wrapper() {
  local ms
  wrapper_ms=1000000
  for _ in 1 2 3; do # the least of three
    times >"$work/times.0"
    ip netns exec "$ns_a" /usr/bin/time -f '%M' -o /dev/null true
    times >"$work/times.1"
    ms=$(children_ms_between "$work/times.0" "$work/times.1")
    ((ms >= wrapper_ms)) || wrapper_ms=$ms
  done
}
children_ms_between() { # two outputs of `times`: the children's user+system time between them, in ms
  awk 'function s(t, a) { split(t, a, "m"); sub("s", "", a[2]); return a[1] * 60 + a[2] }
    FNR == 2 { c[++f] = s($1) + s($2) } END { printf "%.0f\n", (c[2] - c[1]) * 1000 }' "$1" "$2"
}

# run_client KEY OUT ERR COMMAND... : in the sender namespace, under /usr/bin/time for the peak RSS; the
# CPU time (user+system, ms) comes from this shell's children times around it, less the wrapper's own.
run_client() {
  local key=$1 out=$2 err=$3 rc=0
  shift 3
  times >"$work/times.0"
  ip netns exec "$ns_a" /usr/bin/time -f '%M' -o "$out.rss" "$@" >"$out" 2>"$err" &
  tb_track "$key" "$!"
  tb_wait "$TB_LAST_PID" || rc=$?
  times >"$work/times.1"
  local ms
  ms=$(($(children_ms_between "$work/times.0" "$work/times.1") - wrapper_ms))
  add cpu_ms "$key" $((ms < 0 ? 0 : ms))
  local rss
  rss=$(tail -n 1 "$out.rss")
  [[ $rss =~ ^[0-9]+$ ]] && ((rss > ${rss_kb[$key]:-0})) && rss_kb[$key]=$rss
  if ((rc != 0)); then
    rc_note[$key]="exit status $rc"
    note "$key exited with status $rc (see $err)"
  fi
  return 0
}

label() { # the probe number shown for an outlier: the tool's own sequence number, round-prefixed
  if ((rounds > 1)); then echo "r$1:"; fi
}

run_ping() {
  local r=$1 dir=$work/round$1
  run_client ping "$dir/ping.out" "$dir/ping.err" ping -n -i "$interval" -c "$per_round" "$addr_b"
  awk -v p="$(label "$r")" '/ time=/ && !/DUP!/ {
      match($0, /time=[0-9.]+/); t = substr($0, RSTART + 5, RLENGTH - 5)
      match($0, /icmp_seq=[0-9]+/); q = substr($0, RSTART + 9, RLENGTH - 9)
      printf "%.3f %s%s\n", t * 1000, p, q }' "$dir/ping.out" >>"$work/ping.samples"
  add sent ping "$(awk '/packets transmitted/ { print $1 + 0; f = 1 } END { if (!f) print 0 }' "$dir/ping.out")"
  add received ping "$(grep -c ' time=' "$dir/ping.out" || true)"
}

run_fping() {
  local r=$1 dir=$work/round$1
  run_client fping "$dir/fping.out" "$dir/fping.err" fping -C "$per_round" -p "$period_ms" -q "$addr_b"
  # -C prints on stderr "ADDR : ms ms - ms ..." with "-" for a probe without reply.
  awk -v p="$(label "$r")" -v a="$addr_b" '$1 == a && $2 == ":" {
      for (i = 3; i <= NF; i++) if ($i != "-") printf "%.3f %s%d\n", $i * 1000, p, i - 3 }' \
    "$dir/fping.err" >>"$work/fping.samples"
  add sent fping "$per_round"
  add received fping "$(awk -v a="$addr_b" '$1 == a && $2 == ":" { for (i = 3; i <= NF; i++) n += ($i != "-") }
    END { print n + 0 }' "$dir/fping.err")"
}

run_sockperf() {
  local r=$1 dir=$work/round$1
  # sockperf runs for whole seconds and drops a warm-up (~0.4 s) and a tail from its results: run for a
  # second more than needed and keep the first N packets of its full log.
  local seconds=$(((per_round + mps - 1) / mps + 1))
  local cpu0
  cpu0=$(server_cpu sockperf)
  run_client sockperf "$dir/sockperf.out" "$dir/sockperf.err" sockperf ping-pong -i "$addr_b" \
    -p "$sockperf_port" --full-rtt --mps="$mps" -t "$seconds" --full-log "$dir/sockperf.csv"
  add server_ns sockperf $(($(server_cpu sockperf) - cpu0))
  # Full log lines: "packet, txTime(sec), rxTime(sec), rtt(usec)"; an unanswered packet has no rxTime.
  awk -F', *' -v n="$per_round" -v p="$(label "$r")" -v out="$work/sockperf.samples" \
    -v counts="$work/sockperf.counts" '
      $1 ~ /^[0-9]+$/ && NF >= 4 && k < n { k++; if ($3 > 0 && $4 > 0) { printf "%.3f %s%d\n", $4, p, $1 >> out; got++ } }
      END { print k + 0, got + 0 > counts }' "$dir/sockperf.csv"
  local k got
  read -r k got <"$work/sockperf.counts"
  add sent sockperf "$k"
  add received sockperf "$got"
  ((k == per_round)) || note "sockperf logged only $k packets in round $r (wanted $per_round)"
}

# hubprobe_against KEY ROUND TARGET: `hubprobe ping` against the reflector KEY at TARGET; its RTT and
# turnaround (T3 - T2) samples go to KEY.samples and KEY.turnaround.
hubprobe_against() {
  local key=$1 r=$2 target=$3 dir=$work/round$2
  local cpu0
  cpu0=$(server_cpu "$key")
  run_client "$key" "$dir/$key.out" "$dir/$key.err" "$bin" ping -c "$per_round" -i "$interval" "$target"
  add server_ns "$key" $(($(server_cpu "$key") - cpu0))
  # "44 bytes from 198.18.0.2:862: seq=3 rtt=0.045 ms turnaround=0.012 ms ttl=64"
  awk -v p="$(label "$r")" -v turnaround="$work/$key.turnaround" '/ bytes from .* seq=[0-9]+ rtt=/ {
      match($0, /seq=[0-9]+/); q = substr($0, RSTART + 4, RLENGTH - 4)
      match($0, /rtt=-?[0-9.]+/); t = substr($0, RSTART + 4, RLENGTH - 4)
      printf "%.3f %s%s\n", t * 1000, p, q
      if (match($0, /turnaround=-?[0-9.]+/)) printf "%.3f %s%s\n", substr($0, RSTART + 11, RLENGTH - 11) * 1000, p, q >> turnaround
    }' "$dir/$key.out" >>"$work/$key.samples"
  add sent "$key" "$(awk '/ probes sent, / { print $1 + 0; f = 1 } END { if (!f) print 0 }' "$dir/$key.out")"
  add received "$key" "$(grep -c ' bytes from .* rtt=' "$dir/$key.out" || true)"
  grep -o 'timestamps T1 [a-z-]*, T4 [a-z-]*' "$dir/$key.out" | sed 's/^timestamps //' \
    >>"$work/$key.sources" || true
}
run_hubprobe() { hubprobe_against hubprobe "$1" "$addr_b"; }
# The DPDK reflector runs for its turns only: a busy-polled lcore takes a CPU whatever the load.
run_hubprobe_dpdk() {
  local log=$work/hubprobe-dpdk-reflect.r$1.log tries=0
  tb_spawn hubprobe_dpdk "$ns_b" "$log" "$bin" reflect --backend dpdk --dpdk-port "net_af_packet0,iface=$if_d" \
    --dpdk-address "$addr_d/24" --eal-arg=--no-huge --eal-arg=-m --eal-arg=256 --eal-arg=--no-pci \
    --eal-arg=--no-telemetry --listen "$addr_d:862"
  server_pid[hubprobe_dpdk]=$TB_LAST_PID
  until grep -q '^reflecting STAMP on' "$log"; do
    kill -0 "${server_pid[hubprobe_dpdk]}" 2>/dev/null || { cat "$log" >&2; die "the DPDK reflector exited at start"; }
    ((++tries < 200)) || die "the DPDK reflector did not start within 10 s"
    sleep 0.05
  done
  hubprobe_against hubprobe_dpdk "$1" "$addr_d"
  stop_server hubprobe_dpdk
  dpdk_summary=$(grep -m 1 '^received ' "$log" || true)
}
run_hubprobe_xdp() { hubprobe_against hubprobe_xdp "$1" "$addr_b:$xdp_port"; }

run_hubprobe_json() {
  local dir=$work/json
  mkdir -p "$dir"
  local cpu0
  cpu0=$(server_cpu hubprobe)
  run_client hubprobe_json "$dir/hubprobe.json" "$dir/hubprobe.err" "$bin" ping -c "$count" -i "$interval" -q \
    --json "$addr_b"
  add server_ns hubprobe_json $(($(server_cpu hubprobe) - cpu0))
}

tools=(ping fping sockperf hubprobe hubprobe_xdp hubprobe_dpdk)
dpdk_summary=
measure_wrapper
start_server sockperf "$sockperf_port" "$work/sockperf-server.log" sockperf server -i "$addr_b" -p "$sockperf_port"
start_server hubprobe 862 "$work/hubprobe-reflect.log" "$bin" reflect --listen "$addr_b:862"
# The XDP reflector on the same veth, another port: its program answers only that port (generic mode: on veth,
# native XDP_TX needs a program on the peer too).
xdp_port=863
start_server hubprobe_xdp "$xdp_port" "$work/hubprobe-xdp-reflect.log" "$bin" reflect --backend xdp --xdp-mode generic \
  -I "$if_b" --listen "$addr_b:$xdp_port"
per_tool_s=$(awk -v n="$per_round" -v s="$interval" 'BEGIN { printf "%.0f", n * s }')
total_s=$(awk -v n="$count" -v s="$interval" -v t="${#tools[@]}" -v j="$json_check" -v r="$rounds" \
  'BEGIN { printf "%.0f", n * s * (t + j) + 3 * r + 2 }')
note "namespaces $ns_a / $ns_b, veth $if_a ($addr_a) <-> $if_b ($addr_b); load average $load_before"
note "$count probes per tool, one every $period_ms ms, $rounds round(s): about $total_s s"
for ((r = 1; r <= rounds; r++)); do
  mkdir -p "$work/round$r"
  for ((k = 0; k < ${#tools[@]}; k++)); do
    tool=${tools[$(((k + r - 1) % ${#tools[@]}))]}
    note "round $r/$rounds: $tool, $per_round probes (~$per_tool_s s)"
    "run_$tool" "$r"
  done
done
if ((json_check)); then
  note "hubprobe ping -q --json, $count probes (~$(awk -v n="$count" -v s="$interval" 'BEGIN { printf "%.0f", n * s }') s)"
  run_hubprobe_json
fi
read -r load_after _ < <(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)
stop_server sockperf
stop_server hubprobe
stop_server hubprobe_xdp
reflector_summary=$(grep -m 1 '^received ' "$work/hubprobe-reflect.log" || true)
xdp_summary=$(grep -m 1 '^in the kernel: ' "$work/hubprobe-xdp-reflect.log" || true)

# --- statistics and report ----------------------------------------------------------------------------
declare -A stat=()
for tool in "${tools[@]}"; do
  touch "$work/$tool.samples"
  stat[$tool]=$(sort -g -k1,1 "$work/$tool.samples" | awk -f "$helpers/stats.awk")
done
touch "$work/hubprobe.turnaround" "$work/hubprobe_xdp.turnaround" "$work/hubprobe_dpdk.turnaround"
stat[turnaround_socket]=$(sort -g -k1,1 "$work/hubprobe.turnaround" | awk -f "$helpers/stats.awk")
stat[turnaround_xdp]=$(sort -g -k1,1 "$work/hubprobe_xdp.turnaround" | awk -f "$helpers/stats.awk")
stat[turnaround_dpdk]=$(sort -g -k1,1 "$work/hubprobe_dpdk.turnaround" | awk -f "$helpers/stats.awk")
if ((json_check)); then
  # hubprobe's own summary: "rtt_us":{"count":..,"max":..,...}, same definitions as stats.awk.
  stat[hubprobe_json]=$(tr -d '\n' <"$work/json/hubprobe.json" | grep -o '"rtt_us":{[^}]*}' | awk '{
      gsub(/"rtt_us":{|}|"/, ""); n = split($0, kv, ",")
      for (i = 1; i <= n; i++) { split(kv[i], p, ":"); v[p[1]] = p[2] }
      printf "%d %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.3f\n", v["count"], v["min"], v["p50"], v["p90"], v["p99"],
             v["p999"], v["max"], v["mean"], v["stddev"] }')
  [[ -n ${stat[hubprobe_json]} ]] || stat[hubprobe_json]="0 - - - - - - - -"
  json_field() { tr -d '\n' <"$work/json/hubprobe.json" | grep -o "\"$1\":[^,}]*" | awk -F: 'NR == 1 { print $2 }'; }
  sent[hubprobe_json]=$(json_field sent)
  received[hubprobe_json]=$(json_field received)
  json_sources=$(tr -d '\n' <"$work/json/hubprobe.json" | grep -o '"t[14]_sources":{[^}]*}' | tr -d '"{}' |
    sed 's/^t/T/; s/_sources:/ /; s/:/ /g; s/,/, /g' | paste -sd ';' | sed 's/;/; /')
fi

version_of() {
  case $1 in
    ping) ping -V 2>&1 | awk 'NR == 1 { print "iputils " $NF }' ;;
    fping) fping -v 2>&1 | awk 'NR == 1 { print $NF }' ;;
    sockperf) sockperf --version 2>&1 | awk '/version/ && !f { print $NF; f = 1 }' ;;
    hubprobe) "$bin" --version 2>/dev/null | awk 'NR == 1' ;;
  esac
}
declare -A name=(
  [ping]="\`ping\` ($(version_of ping))"
  [fping]="\`fping\` $(version_of fping)"
  [sockperf]="\`sockperf ping-pong --full-rtt\` $(version_of sockperf)"
  [hubprobe]="\`hubprobe ping\` $(version_of hubprobe), per-reply lines"
  [hubprobe_xdp]="\`hubprobe ping\` against the XDP reflector, per-reply lines"
  [hubprobe_dpdk]="\`hubprobe ping\` against the DPDK reflector (net_af_packet), per-reply lines"
  [hubprobe_json]="\`hubprobe ping -q --json\`, its own summary (separate run)"
  [turnaround_socket]="\`hubprobe reflect\` (socket, T3 read in user space + learnt send path)"
  [turnaround_xdp]="\`hubprobe reflect --backend xdp\` (T2 and T3 in the XDP program)"
  [turnaround_dpdk]="\`hubprobe reflect --backend dpdk\` (T2 the TSC at RX burst, T3 the TSC read before the TX burst)"
)
rows=("${tools[@]}")
((json_check)) && rows+=(hubprobe_json)

field() { # field TOOL INDEX (1 n, 2 min, 3 p50, 4 p90, 5 p99, 6 p999, 7 max, 8 mean, 9 stddev)
  awk -v i="$2" '{ print $i }' <<<"${stat[$1]}"
}
us() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "–"; else printf "%.1f", v }'; }
per_probe_us() { # total (in unit/probe) -> µs per probe
  awk -v t="${1:-}" -v scale="$2" -v n="${3:-0}" 'BEGIN { if (t == "" || n == 0) print "–"; else printf "%.1f", t * scale / n }'
}

report=$work/report.md
{
  echo "_Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`sudo scripts/bench.sh --count $count --interval $interval --rounds $rounds\`._"
  echo
  echo "- Host: Linux $(uname -r), $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) vCPU," \
    "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo unknown)," \
    "$(systemd-detect-virt 2>/dev/null || echo unknown virtualisation)."
  echo "- Load average (1/5/15 min) before $load_before, after $load_after. Nothing pinned: the script's CPU" \
    "affinity was $(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status)."
  echo "- Path: a veth pair between two namespaces, $addr_a → $addr_b, no qdisc or delay added, IPv6 off."
  if ((rounds > 1)); then
    echo "- Probes: $count per tool, one every $period_ms ms, in $rounds rounds of $per_round in which the tools take turns"
    echo "  in a rotating order."
  else
    echo "- Probes: $count per tool, one every $period_ms ms, the tools one after the other."
  fi
  echo "  Statistics computed by scripts/bench/stats.awk from every tool's per-probe values: nearest-rank"
  echo "  percentiles, population standard deviation. All times in µs."
  echo
  echo "| tool | replies/probes | min | p50 | p90 | p99 | p99.9 | max | mean | stddev | client CPU µs/probe | client peak RSS MiB | reflector CPU µs/probe |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for t in "${rows[@]}"; do
    n_sent=${sent[$t]:-0}
    rss=$(awk -v k="${rss_kb[$t]:-}" 'BEGIN { if (k == "") print "–"; else printf "%.1f", k / 1024 }')
    case $t in
      ping | fping) refl="kernel echo" ;;
      hubprobe_xdp) refl="in XDP (below)" ;;
      hubprobe_dpdk) refl="busy-polled core" ;;
      *) refl=$(per_probe_us "${server_ns[$t]:-}" 0.001 "$n_sent") ;;
    esac
    printf '| %s | %s/%s | %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %s |\n' "${name[$t]}" \
      "${received[$t]:-0}" "$n_sent" "$(us "$(field "$t" 2)")" "$(us "$(field "$t" 3)")" \
      "$(us "$(field "$t" 4)")" "$(us "$(field "$t" 5)")" "$(us "$(field "$t" 6)")" "$(us "$(field "$t" 7)")" \
      "$(us "$(field "$t" 8)")" "$(us "$(field "$t" 9)")" "$(per_probe_us "${cpu_ms[$t]:-}" 1000 "$n_sent")" "$rss" "$refl"
  done
  echo
  echo "Resolution of the per-probe values: \`ping\`, \`fping\` and hubprobe's per-reply lines print 1 µs below"
  echo "1 ms (10 µs from 1 to 10 ms); \`sockperf\`'s full log and hubprobe's JSON summary 1 ns. Client CPU is"
  echo "user+system time of the measuring process including its start-up (1 ms resolution per run, less the"
  echo "${wrapper_ms} ms that \`ip netns exec … /usr/bin/time true\` costs); reflector CPU is the on-CPU time of"
  echo "\`sockperf server\` / \`hubprobe reflect\` while the client ran."
  for t in "${rows[@]}"; do
    [[ -n ${rc_note[$t]:-} ]] && echo "${name[$t]}: ${rc_note[$t]}."
  done
  echo
  echo "### Targets"
  echo
  verdict() { # verdict DESCRIPTION VALUE LIMIT
    awk -v d="$1" -v v="$2" -v l="$3" 'BEGIN {
      if (v == "-" || l == "-" || v == "" || l == "") { printf "- **n/a** %s (no data)\n", d; exit }
      printf "- **%s** %s: %.1f µs ≤ %.1f µs\n", (v + 0 <= l + 0) ? "PASS" : "FAIL", d, v, l }'
  }
  fifth() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else printf "%.3f", v / 5 }'; }
  verdict "hubprobe p99 ≤ sockperf p99 / 5" "$(field hubprobe 5)" "$(fifth "$(field sockperf 5)")"
  verdict "hubprobe stddev ≤ sockperf stddev / 5" "$(field hubprobe 9)" "$(fifth "$(field sockperf 9)")"
  verdict "hubprobe p99 ≤ ping p99" "$(field hubprobe 5)" "$(field ping 5)"
  verdict "hubprobe stddev ≤ ping stddev" "$(field hubprobe 9)" "$(field ping 9)"
  verdict "hubprobe against the XDP reflector: p99 ≤ ping p99" "$(field hubprobe_xdp 5)" "$(field ping 5)"
  verdict "hubprobe against the XDP reflector: stddev ≤ ping stddev" "$(field hubprobe_xdp 9)" "$(field ping 9)"
  verdict "XDP reflector turnaround (T3 - T2) p99 < 2 µs" "$(field turnaround_xdp 5)" "2.0"
  verdict "hubprobe against the DPDK reflector: p99 ≤ ping p99" "$(field hubprobe_dpdk 5)" "$(field ping 5)"
  verdict "hubprobe against the DPDK reflector: stddev ≤ ping stddev" "$(field hubprobe_dpdk 9)" "$(field ping 9)"
  verdict "DPDK reflector turnaround (T3 - T2) p99 < 10 µs" "$(field turnaround_dpdk 5)" "10.0"
  echo
  echo "### Reflector turnaround (T3 − T2, as the replies report it)"
  echo
  echo "| reflector | replies | min | p50 | p90 | p99 | p99.9 | max |"
  echo "|---|---|---|---|---|---|---|---|"
  for t in turnaround_socket turnaround_xdp turnaround_dpdk; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "${name[$t]}" "$(field "$t" 1)" "$(us "$(field "$t" 2)")" \
      "$(us "$(field "$t" 3)")" "$(us "$(field "$t" 4)")" "$(us "$(field "$t" 5)")" "$(us "$(field "$t" 6)")" \
      "$(us "$(field "$t" 7)")"
  done
  echo
  echo "Turnaround values are printed with 1 µs resolution below 1 ms (hubprobe's per-reply lines)."
  echo
  echo "### Where the tails come from"
  echo
  echo "The three largest samples of each tool (µs, at probe number as the tool numbers them) and its first probe:"
  echo
  for t in "${tools[@]}"; do
    top3=$(sort -g -r -k1,1 "$work/$t.samples" | awk 'NR <= 3 { printf "%s%.1f (#%s)", (NR > 1 ? ", " : ""), $1, $2 }')
    first=$(awk 'NR == 1 { printf "%.1f (#%s)", $1, $2 }' "$work/$t.samples")
    echo "- ${name[$t]}: ${top3:-none}; first ${first:-none}"
  done
  if [[ -s $work/hubprobe.sources ]]; then
    echo "- hubprobe timestamps (text summary, most frequent source): $(sort "$work/hubprobe.sources" | uniq -c |
      awk '{ c = $1; $1 = ""; printf "%s%s%s", (NR > 1 ? "; " : ""), substr($0, 2), (c > 1 ? " (" c " rounds)" : "") }')"
  fi
  if ((json_check)); then
    echo "- hubprobe timestamp sources per reply (--json run): ${json_sources:-not reported}"
  fi
  echo "- \`hubprobe reflect\` (one process for the whole run, as \`sockperf server\`): ${reflector_summary:-no summary}"
  echo "- \`hubprobe reflect --backend xdp\`: ${xdp_summary:-no summary}"
  echo "- \`hubprobe reflect --backend dpdk\` (last round): ${dpdk_summary:-no summary}"
} >"$report"

cat "$report"

if ((write_doc)); then
  if [[ ! -f $doc ]]; then
    mkdir -p "$(dirname "$doc")"
    printf '# Benchmarks\n\n' >"$doc"
  fi
  begin='<!-- bench:begin -->' end='<!-- bench:end -->'
  doc_ensure_section "$doc" "$begin" "$end" "$(printf '\n## Results\n\n%s\n%s' "$begin" "$end")"
  doc_replace_section "$doc" "$begin" "$end" "$report"
  note "rewrote the bench section of $doc"
fi
