#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Reflector throughput benchmark (docs/benchmarks.md, "Reflector throughput"): in one run, over the same
# veth pair between two network namespaces, the same load generator (hubprobe-stamp-flood: 44-octet STAMP
# requests, a window of outstanding ones, sendmmsg/recvmmsg) saturates, in turns:
#   - `hubprobe reflect` (the socket reflector), pinned to CPU 0;
#   - `hubprobe reflect --backend xdp` (the XDP program answers in the kernel; its user-space process idles);
#   - `hubprobe reflect --backend dpdk` on a net_af_xdp vdev (a busy-polled lcore on CPU 0), on a second veth
#     pair between the same namespaces whose reflector side the DPDK port owns (198.18.1.2, no kernel address);
# with the load generator pinned to CPU 1. Per reflector: replies per second; the host's CPU time per reply
# (all CPUs, /proc/stat, busy = everything but idle and iowait), which counts the load generator's own
# work alike for both; the reflector process's CPU per reply (socket); and the XDP program's own run time
# per packet (kernel.bpf_stats_enabled, turned on for the run and restored). Prints a Markdown report and
# rewrites the part of docs/benchmarks.md between <!-- bench-reflector:begin --> and
# <!-- bench-reflector:end -->. Run as root; needs the build tree (hubprobe, hubprobe-stamp-flood) and bpftool.
#
#   scripts/bench_reflector.sh             3 rounds of 5 s per reflector, window 64 (about 40 s)
#   scripts/bench_reflector.sh --quick     1 round of 3 s, prints the report, leaves the doc alone
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export LC_ALL=C
# shellcheck source=scripts/lib/testbed.sh
source "$top/scripts/lib/testbed.sh"
# shellcheck source=scripts/lib/doc_section.sh
source "$top/scripts/lib/doc_section.sh"

build=${HUBPROBE_BUILD_DIR:-$top/build}
bin=$build/agent/hubprobe
flood=$build/tests/tools/hubprobe-stamp-flood
doc=$top/docs/benchmarks.md
rounds=3 seconds=5 window=64 write_doc=1
while (($#)); do
  case $1 in
    --quick) rounds=1 seconds=3 write_doc=0 ;;
    --no-doc) write_doc=0 ;;
    --window) window=${2:?}; shift ;;
    *) echo "usage: scripts/bench_reflector.sh [--quick] [--no-doc] [--window N]" >&2; exit 2 ;;
  esac
  shift
done
die() { echo "bench_reflector.sh: $*" >&2; exit 1; }
note() { echo "bench_reflector: $*" >&2; }
[[ $(id -u) -eq 0 ]] || die "run as root (it creates network namespaces and loads an XDP program)"
[[ -x $bin && -x $flood ]] || die "build hubprobe and hubprobe-stamp-flood first (cmake --build build)"
command -v bpftool >/dev/null || die "bpftool is missing: run scripts/setup.sh"
(($(nproc) >= 2)) || die "needs two CPUs (the reflector and the load generator each on its own)"

tag=$$ ns_a=hpbrf-$tag-a ns_b=hpbrf-$tag-b if_a=hpra$tag if_b=hprb$tag if_c=hprc$tag if_d=hprd$tag
addr_a=198.18.0.1 addr_b=198.18.0.2 addr_c=198.18.1.1 addr_d=198.18.1.2
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
restore_stats() { sysctl -qw kernel.bpf_stats_enabled="$stats_before" || true; }
work=
tb_exit_traps restore_stats
tb_tmpdir work hubprobe-bench-reflector
tb_netns_add --no-ipv6 "$ns_a"
tb_netns_add --no-ipv6 "$ns_b"
tb_veth_pair "$ns_a" "$if_a" "$addr_a/24" "$ns_b" "$if_b" "$addr_b/24"
# Full UDP checksums from the sender: the XDP program answers only those (docs/configuration.md).
ip netns exec "$ns_a" ethtool -K "$if_a" tx off >/dev/null
# Receive Packet Steering puts each side's receive processing on its own CPU: what reaches the reflector's
# veth is processed on CPU 0 (the socket reflector's kernel receive path, or the XDP program in generic
# mode), what comes back on CPU 1 with the load generator. Without it a veth processes the frame in the
# sender's context, and the XDP program would run on the generator's CPU.
ip netns exec "$ns_b" sh -c "echo 1 > /sys/class/net/$if_b/queues/rx-0/rps_cpus"
ip netns exec "$ns_a" sh -c "echo 2 > /sys/class/net/$if_a/queues/rx-0/rps_cpus"
ip netns exec "$ns_a" ping -n -c 1 -W 2 "$addr_b" >/dev/null || die "no ping reply over the veth pair"
# The second pair, for the DPDK reflector: its veth in ns_b has no address (the DPDK port owns addr_d and
# answers ARP for it), receive processing on CPU 0 there and on CPU 1 on the generator's side, as above.
tb_veth_pair "$ns_a" "$if_c" "$addr_c/24" "$ns_b" "$if_d" "$addr_d/24"
ip -n "$ns_b" addr flush dev "$if_d"
ip netns exec "$ns_a" ethtool -K "$if_c" tx off >/dev/null
ip netns exec "$ns_b" sh -c "echo 1 > /sys/class/net/$if_d/queues/rx-0/rps_cpus"
ip netns exec "$ns_a" sh -c "echo 2 > /sys/class/net/$if_c/queues/rx-0/rps_cpus"
sysctl -qw kernel.bpf_stats_enabled=1

busy_ns() { # busy time in ns from /proc/stat (USER_HZ ticks) of the line `cpu` (all CPUs) or `cpu0`
  awk -v hz="$(getconf CLK_TCK)" -v line="${1:-cpu}" '$1 == line { b = 0; for (i = 2; i <= NF; i++) if (i != 5 && i != 6) b += $i
    printf "%.0f\n", b * 1e9 / hz }' /proc/stat
}
cpu_ns_of() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
# xdp_prog_stats: "run_time_ns run_cnt" of the XDP program attached to if_b
xdp_prog_stats() {
  local id
  id=$(ip -n "$ns_b" -j link show dev "$if_b" | grep -o '"prog":{[^}]*"id":[0-9]*' | grep -o '[0-9]*$' | head -1)
  [[ -n $id ]] || { echo "0 0"; return; }
  # Both fields are absent until the program has run with statistics on.
  bpftool -j prog show id "$id" | awk '{ t = c = 0
      if (match($0, /"run_time_ns":[0-9]+/)) t = substr($0, RSTART + 14, RLENGTH - 14)
      if (match($0, /"run_cnt":[0-9]+/)) c = substr($0, RSTART + 10, RLENGTH - 10)
      print t, c }'
}

# spin SECONDS: counts loop iterations on CPU 0 at SCHED_IDLE priority, which runs only when nothing else
# wants the CPU (softirqs and the reflector preempt it). How much it lost under load is the share of CPU 0
# the reflector's side took: a measure that does not depend on the kernel's tick-sampled softirq time.
spin() {
  chrt --idle 0 taskset -c 0 awk -v s="$1" 'BEGIN { "date +%s.%N" | getline t0; close("date +%s.%N")
    end = t0 + s; n = 0
    while (1) { for (i = 0; i < 200000; i++) n++; "date +%s.%N" | getline t; close("date +%s.%N"); if (t >= end) break }
    printf "%.0f\n", n / (t - t0) }'
}
declare -A replies=() host_ns=() cpu0_ns=() proc_ns=() prog_ns=() prog_cnt=() elapsed=() taken=()
# ready KEY PORT LOG: the reflector listens (a socket bound, or the DPDK reflector says so on its log).
ready() {
  if [[ $1 == dpdk ]]; then grep -q '^reflecting STAMP on' "$3"; else [[ -n $(ip netns exec "$ns_b" ss -Hunl "sport = :$2") ]]; fi
}
# one_round KEY ADDRESS PORT REFLECTOR-ARGS...: a reflector, a flood against it, the counters around the flood.
one_round() {
  local key=$1 address=$2 port=$3
  shift 3
  # The spinner's idle rate, before the reflector starts: a busy-polled one takes CPU 0 from its start.
  local idle_rate
  idle_rate=$(spin 2)
  tb_spawn "reflect-$key" "$ns_b" "$work/$key.log" taskset -c 0 "$bin" reflect "$@" --listen "$address:$port"
  local pid=$TB_LAST_PID tries=0
  until ready "$key" "$port" "$work/$key.log"; do
    ((++tries < 100)) || die "the $key reflector did not start: $(cat "$work/$key.log")"
    sleep 0.05
  done
  local busy0 core0 proc0 prog0 busy1 core1 proc1 prog1 out loaded_rate
  busy0=$(busy_ns) core0=$(busy_ns cpu0) proc0=$(cpu_ns_of "$pid") prog0=$(xdp_prog_stats)
  spin "$seconds" >"$work/spin.out" &
  local spinner=$!
  out=$(ip netns exec "$ns_a" taskset -c 1 "$flood" --target "$address:$port" --seconds "$seconds" --window "$window")
  busy1=$(busy_ns) core1=$(busy_ns cpu0) proc1=$(cpu_ns_of "$pid") prog1=$(xdp_prog_stats)
  wait "$spinner"
  loaded_rate=$(<"$work/spin.out")
  # CPU 0 taken, in ns over the run: the spinner's lost share of the run.
  taken[$key]=$(awk -v t="${taken[$key]:-0}" -v i="$idle_rate" -v l="$loaded_rate" -v s="$seconds" \
    'BEGIN { f = 1 - l / i; if (f < 0) f = 0; printf "%.0f", t + f * s * 1e9 }')
  tb_stop "$pid"
  read -r _ _ _ got _ secs _ _ <<<"$out"
  replies[$key]=$((${replies[$key]:-0} + got))
  elapsed[$key]=$(awk -v a="${elapsed[$key]:-0}" -v b="$secs" 'BEGIN { printf "%.3f", a + b }')
  host_ns[$key]=$((${host_ns[$key]:-0} + busy1 - busy0))
  cpu0_ns[$key]=$((${cpu0_ns[$key]:-0} + core1 - core0))
  proc_ns[$key]=$((${proc_ns[$key]:-0} + proc1 - proc0))
  read -r t0 c0 <<<"$prog0"
  read -r t1 c1 <<<"$prog1"
  prog_ns[$key]=$((${prog_ns[$key]:-0} + t1 - t0))
  prog_cnt[$key]=$((${prog_cnt[$key]:-0} + c1 - c0))
}

read -r load_before _ < <(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)
for ((r = 1; r <= rounds; r++)); do
  note "round $r/$rounds: socket reflector, ${seconds} s"
  one_round socket "$addr_b" 862
  note "round $r/$rounds: XDP reflector, ${seconds} s"
  one_round xdp "$addr_b" 863 --backend xdp --xdp-mode generic -I "$if_b"
  note "round $r/$rounds: DPDK reflector (net_af_xdp), ${seconds} s"
  one_round dpdk "$addr_d" 862 --backend dpdk --dpdk-port "net_af_xdp0,iface=$if_d" --dpdk-address "$addr_d/24" \
    --lcore 0 --eal-arg=--no-huge --eal-arg=-m --eal-arg=256 --eal-arg=--no-pci --eal-arg=--no-telemetry
done
read -r load_after _ < <(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)

rate() { awk -v n="${replies[$1]}" -v s="${elapsed[$1]}" 'BEGIN { printf "%.0f", n / s }'; }
# Replies per second of CPU 0 taken (the spinner's loss): what one core gives to the reflector's side.
per_core() { awk -v n="${replies[$1]}" -v b="${taken[$1]}" 'BEGIN { if (b == 0) print "–"; else printf "%.0f", n / (b / 1e9) }'; }
cpu0_pct() { awk -v b="${taken[$1]}" -v s="${elapsed[$1]}" 'BEGIN { printf "%.0f", b / 1e9 / s * 100 }'; }
cpu0_stat_pct() { awk -v b="${cpu0_ns[$1]}" -v s="${elapsed[$1]}" 'BEGIN { printf "%.0f", b / 1e9 / s * 100 }'; }
per() { awk -v t="$1" -v n="$2" 'BEGIN { if (n == 0) print "–"; else printf "%.2f", t / n / 1000 }'; }
report=$work/report.md
{
  echo "_Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`sudo scripts/bench_reflector.sh\` ($rounds rounds of $seconds s" \
    "per reflector, window $window)._"
  echo
  echo "- Host: Linux $(uname -r), $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) vCPU;" \
    "load average before $load_before, after $load_after."
  echo "- A veth pair between two namespaces; the load generator on CPU 1, \`hubprobe reflect\` on CPU 0, and"
  echo "  Receive Packet Steering sending what reaches the reflector's veth to CPU 0 (the socket reflector's"
  echo "  receive path, or the XDP program in generic mode) and the replies to CPU 1: each reflector has CPU 0."
  echo
  echo "| reflector | replies/s | CPU 0 taken (spinner) | CPU 0 busy (/proc/stat) | replies per CPU-0 second | host CPU µs/reply (all CPUs) | reflector process CPU µs/reply | XDP program µs/packet |"
  echo "|---|---|---|---|---|---|---|---|"
  for k in socket xdp dpdk; do
    case $k in
      socket) local_name="\`hubprobe reflect\` (socket)" ;;
      xdp) local_name="\`hubprobe reflect --backend xdp\`" ;;
      dpdk) local_name="\`hubprobe reflect --backend dpdk\` (net_af_xdp, lcore on CPU 0)" ;;
    esac
    printf '| %s | %s | %s %% | %s %% | %s | %s | %s | %s |\n' "$local_name" "$(rate "$k")" "$(cpu0_pct "$k")" \
      "$(cpu0_stat_pct "$k")" "$(per_core "$k")" \
      "$(per "${host_ns[$k]}" "${replies[$k]}")" "$(per "${proc_ns[$k]}" "${replies[$k]}")" \
      "$(per "${prog_ns[$k]}" "${prog_cnt[$k]}")"
  done
  echo
  ratio=$(awk -v a="$(rate xdp)" -v b="$(rate socket)" 'BEGIN { printf "%.1f", a / b }')
  core_ratio=$(awk -v a="$(per_core xdp)" -v b="$(per_core socket)" 'BEGIN { printf "%.1f", a / b }')
  echo "XDP / socket, replies per second: ${ratio}× (the XDP run is bounded by the load generator's core when CPU 0"
  echo "is not busy); per second of the reflector's core (CPU 0): **${core_ratio}×** (target ≥ 5×:" \
    "$(awk -v r="$core_ratio" 'BEGIN { print (r >= 5) ? "PASS" : "FAIL" }'))."
  echo
  dpdk_socket=$(awk -v a="$(per_core dpdk)" -v b="$(per_core socket)" 'BEGIN { printf "%.1f", a / b }')
  dpdk_xdp=$(awk -v a="$(per_core dpdk)" -v b="$(per_core xdp)" 'BEGIN { printf "%.2f", a / b }')
  echo "DPDK (one busy-polled lcore: it takes all of CPU 0 whatever the load, so its replies per CPU-0 second"
  echo "are its replies per second) / socket, per second of the reflector's core: **${dpdk_socket}×** (target ≥ 5×:" \
    "$(awk -v r="$dpdk_socket" 'BEGIN { print (r >= 5) ? "PASS" : "FAIL" }')); DPDK / XDP: **${dpdk_xdp}×** (target ≥ 1:" \
    "$(awk -v r="$dpdk_xdp" 'BEGIN { print (r >= 1) ? "PASS" : "FAIL" }'))."
} >"$report"
cat "$report"
if ((write_doc)); then
  begin='<!-- bench-reflector:begin -->' end='<!-- bench-reflector:end -->'
  doc_ensure_section "$doc" "$begin" "$end" "$(printf '\n## Reflector throughput\n\n%s\n%s' "$begin" "$end")"
  doc_replace_section "$doc" "$begin" "$end" "$report"
  note "rewrote the reflector section of $doc"
fi
