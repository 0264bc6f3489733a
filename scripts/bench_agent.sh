#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Agent benchmark (docs/design.md, "Measuring performance"): the cost of probing many peers continuously.
# In one run, over the same veth pair between a "sender" and a "targets" network namespace, one tool after
# the other probes the same N target addresses (default 100) at the same rate (default every 100 ms each):
#   - hubprobed with N [[peer]]s (reflector disabled), against one `hubprobe reflect` listening on all N
#     addresses;
#   - `fping -l -Q SECS -p PERIOD` on the N addresses (the targets' kernel answers ICMP echo);
#   - Debian's prometheus-smokeping-prober (ICMP, privileged) with the N addresses at the same interval.
# For each tool, over a steady window after a warm-up, without any scrape in it: CPU (utime+stime of
# /proc/PID/stat, as % of one core and per probe), resident memory (VmRSS sampled every second, VmHWM at
# the end), and the packets it really sent and got back (the sender namespace's /proc/net/snmp). Then, for
# the two exporters, /metrics response time over a series of scrapes (curl time_total: median and max),
# response size and series count, and the CPU a scrape costs. For hubprobed also its own /status (peers up,
# replies per second per peer) and, for information, the CPU of the reflector. Prints a Markdown report
# and rewrites the results part (<!-- bench-agent-results:begin/end -->) of its section of docs/benchmarks.md
# (<!-- bench-agent:begin/end -->), with PASS/FAIL for its targets (listed with the results). Run as root.
#
#   scripts/bench_agent.sh                    100 peers, 100 ms, 10 s warm-up + 60 s window per tool (~4.5 min)
#   scripts/bench_agent.sh --quick            20 s windows, prints the report, leaves the doc alone
#   scripts/bench_agent.sh --rounds 2 --raw /tmp/bench-agent-raw
#
# Environment: HUBPROBE_BIN, HUBPROBED_BIN, SMOKEPING_BIN.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export LC_ALL=C
# shellcheck source=scripts/lib/testbed.sh
source "$top/scripts/lib/testbed.sh"
# shellcheck source=scripts/lib/doc_section.sh
source "$top/scripts/lib/doc_section.sh"
command_line="scripts/bench_agent.sh${*:+ $*}"

usage() {
  cat <<EOF
usage: scripts/bench_agent.sh [--quick] [--peers N] [--interval-ms MS] [--warmup S] [--duration S]
                              [--rounds R] [--scrapes K] [--tools LIST] [--doc FILE | --no-doc] [--raw DIR]
  --peers N          target addresses, probed by every tool (default 100, at most 10000; above 1000
                     the reflector listens on the wildcard address instead of on each target)
  --interval-ms MS   time between two probes to one target, every tool (default 100)
  --warmup S         seconds each tool runs before its window starts (default 10)
  --duration S       seconds of the measured window per tool and round (default 60; 20 with --quick)
  --rounds R         repeat the sequence of tools R times, rotating the order; CPU is the sum over the
                     rounds' windows, memory the largest (default 1)
  --scrapes K        /metrics scrapes per exporter and round, one every 0.5 s, after the window (default 20)
  --tools LIST       comma-separated subset of hubprobed,fping,smokeping (default all three)
  --tick T           hubprobed's [agent] tick, e.g. 2ms (default "auto": a tenth of the interval)
  --rtt-buckets N    hubprobed's [metrics] rtt_buckets: 16 (default), 8, 4, 2, 1 or 0 (no histogram)
  --quick            --duration 20 --warmup 5 --scrapes 10; prints the report only unless --doc is given
  --doc FILE         Markdown file whose bench-agent section is rewritten (default docs/benchmarks.md)
  --no-doc           only print the report
  --raw DIR          keep configurations, logs, samples and scraped pages in DIR
EOF
}

peers=100
interval_ms=100
warmup=
duration=
rounds=1
scrapes=
tools_arg=hubprobed,fping,smokeping
tick=auto
rtt_buckets=16
doc=$top/docs/benchmarks.md
doc_given=
write_doc=
raw_dir=
quick=0
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --peers) peers=${2:?}; shift ;;
    --interval-ms) interval_ms=${2:?}; shift ;;
    --warmup) warmup=${2:?}; shift ;;
    --duration) duration=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --scrapes) scrapes=${2:?}; shift ;;
    --tools) tools_arg=${2:?}; shift ;;
    --tick) tick=${2:?}; shift ;;
    --rtt-buckets) rtt_buckets=${2:?}; shift ;;
    --doc) doc=${2:?}; doc_given=1; shift ;;
    --no-doc) write_doc=0 ;;
    --raw) raw_dir=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench_agent.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ((quick)); then
  : "${duration:=20}" "${warmup:=5}" "${scrapes:=10}"
else
  : "${duration:=60}" "${warmup:=10}" "${scrapes:=20}"
fi
if [[ -z $write_doc ]]; then
  if ((quick)) && [[ -z $doc_given ]]; then write_doc=0; else write_doc=1; fi
fi

die() { echo "bench_agent.sh: $*" >&2; exit 1; }
note() { echo "bench-agent: $*" >&2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

if ! is_uint "$peers" || ((peers < 1 || peers > 10000)); then die "--peers must be 1 .. 10000"; fi
if ! is_uint "$interval_ms" || ((interval_ms < 10 || interval_ms > 10000)); then die "--interval-ms must be 10 .. 10000"; fi
is_uint "$warmup" || die "--warmup must be a whole number of seconds"
if ! is_uint "$duration" || ((duration < 5)); then die "--duration must be at least 5 s"; fi
if ! is_uint "$rounds" || ((rounds < 1)); then die "--rounds must be a positive integer"; fi
is_uint "$scrapes" || die "--scrapes must be a whole number"
IFS=, read -r -a tools <<<"$tools_arg"
for t in "${tools[@]}"; do
  case $t in hubprobed | fping | smokeping) ;; *) die "--tools: unknown tool '$t'" ;; esac
done
((${#tools[@]})) || die "--tools is empty"
has_tool() { [[ ,$tools_arg, == *,"$1",* ]]; }

[[ $(id -u) -eq 0 ]] || die "run as root (it creates network namespaces)"
for cmd in ip curl jq awk sort ss; do
  command -v "$cmd" >/dev/null || die "'$cmd' is missing: run scripts/setup.sh"
done
bin=${HUBPROBE_BIN:-$top/build/agent/hubprobe}
agent_bin=${HUBPROBED_BIN:-$top/build/agent/hubprobed}
smokeping_bin=${SMOKEPING_BIN:-$(command -v prometheus-smokeping-prober || command -v smokeping_prober || true)}
if [[ ! -x $bin || ! -x $agent_bin ]]; then
  [[ -z ${HUBPROBE_BIN:-}${HUBPROBED_BIN:-} ]] || die "HUBPROBE_BIN/HUBPROBED_BIN is not an executable"
  note "hubprobe or hubprobed missing, building with scripts/build.sh"
  "$top/scripts/build.sh" >&2
fi
[[ -x $bin ]] || die "$bin is missing (scripts/build.sh)"
has_tool hubprobed && { [[ -x $agent_bin ]] || die "$agent_bin is missing (scripts/build.sh)"; }
has_tool fping && { command -v fping >/dev/null || die "'fping' is missing: run scripts/setup.sh"; }
has_tool smokeping && { [[ -n $smokeping_bin && -x $smokeping_bin ]] ||
  die "prometheus-smokeping-prober is missing: run scripts/setup.sh"; }
clk_tck=$(getconf CLK_TCK)

# --- namespaces, addresses, cleanup -------------------------------------------------------------------
tag=$$
ns_s=hpagent-$tag-s
ns_t=hpagent-$tag-t
if_s=hpas$tag
if_t=hpat$tag
addr_s=198.18.0.1
addr_gw=198.18.0.2
agent_metrics=$addr_s:9862
smokeping_metrics=$addr_s:9374

target_addr() { echo "198.18.$((1 + $1 / 250)).$((1 + $1 % 250))"; } # 0-based index
targets=()
for ((i = 0; i < peers; i++)); do targets+=("$(target_addr "$i")"); done

# On exit: every process this script started is stopped by PID, the raw outputs are kept if asked
# (without the private copies of the binaries), the namespaces and $work removed.
keep_raw() {
  if [[ -n $raw_dir && -d $work ]]; then
    mkdir -p "$raw_dir" && cp -r "$work"/. "$raw_dir"/ && rm -rf "${raw_dir:?}/bin" && note "raw outputs kept in $raw_dir"
  fi
}
work=
tb_exit_traps keep_raw
tb_tmpdir work hubprobe-bench-agent

# Run private copies: a rebuild of the tree during the run (the binaries are replaced in place by the
# build) must not give the rounds different programs.
agent_src=$agent_bin
agent_built=$(date -u -r "$agent_src" '+%Y-%m-%d %H:%M UTC')
agent_tree=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo 'an unknown commit')
[[ -z $(git -C "$top" status --porcelain --untracked-files=no 2>/dev/null) ]] ||
  agent_tree+=" with uncommitted changes in the tree"
mkdir -p "$work/bin"
cp "$bin" "$work/bin/hubprobe"
cp "$agent_bin" "$work/bin/hubprobed"
bin=$work/bin/hubprobe
agent_bin=$work/bin/hubprobed

read -r load_before < <(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)
tb_netns_add --no-ipv6 "$ns_s"
tb_netns_add --no-ipv6 "$ns_t"
tb_veth_pair "$ns_s" "$if_s" "$addr_s/24" "$ns_t" "$if_t" "$addr_gw/24"
{
  for a in "${targets[@]}"; do echo "addr add $a/32 dev $if_t"; done
} | ip -n "$ns_t" -batch -
# Every target sits behind the targets end of the veth: one neighbour entry on the sender side.
ip -n "$ns_s" route add 198.18.0.0/15 via "$addr_gw" dev "$if_s"
ip netns exec "$ns_s" ping -n -c 1 -W 2 "${targets[0]}" >/dev/null || die "no ping reply from ${targets[0]}"
ip netns exec "$ns_s" ping -n -c 1 -W 2 "${targets[peers - 1]}" >/dev/null ||
  die "no ping reply from ${targets[peers - 1]}"

# --- measuring helpers --------------------------------------------------------------------------------
now_s() { date +%s.%N; }
sleep_until() { sleep "$(awk -v t="$1" -v n="$(now_s)" 'BEGIN { d = t - n; printf "%.6f", (d > 0 ? d : 0) }')"; }
cpu_ticks() { # utime+stime of the whole process (all threads), clock ticks; fails if it is gone
  [[ -r /proc/$1/stat ]] || return 1
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" # fields 14, 15 after pid and (comm)
}
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
snmp() { # snmp PROTO FIELD: a counter of the sender namespace
  ip netns exec "$ns_s" cat /proc/net/snmp | awk -v p="$1:" -v f="$2" '
    $1 == p && !h { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next }
    $1 == p && h { print $(col[f]); exit }'
}
scrape() { # scrape URL OUT: prints "time_total size http_code"
  ip netns exec "$ns_s" curl -sS --max-time 10 -o "$2" -w '%{time_total} %{size_download} %{http_code}\n' "$1" ||
    echo "- 0 000"
}
wait_http() { # wait_http URL PID NAME: until the endpoint answers (a page of 10 000 peers takes seconds)
  local k
  for ((k = 0; k < 100; k++)); do
    kill -0 "$2" 2>/dev/null || die "$3 exited at start (see its log)"
    if ip netns exec "$ns_s" curl -s -o /dev/null --max-time 10 "$1"; then return 0; fi
    sleep 0.1
  done
  die "$3 did not answer on $1 within 100 tries"
}

# The reflector: one process on all target addresses (one socket each, or one wildcard socket beyond 1000
# of them), for the whole run.
reflect_args=()
reflect_sockets=$peers
if ((peers > 1000)); then
  reflect_args=(--listen "0.0.0.0:862")
  reflect_sockets=1
else
  for a in "${targets[@]}"; do reflect_args+=(--listen "$a:862"); done
fi
tb_spawn reflector "$ns_t" "$work/reflect.log" "$bin" reflect "${reflect_args[@]}"
reflector_pid=$TB_LAST_PID
for ((k = 0; ; k++)); do
  bound=$(ip netns exec "$ns_t" ss -Hunl 'sport = :862' | wc -l)
  ((bound >= reflect_sockets)) && break
  kill -0 "$reflector_pid" 2>/dev/null || { cat "$work/reflect.log" >&2; die "hubprobe reflect exited at start"; }
  ((k < 100)) || die "hubprobe reflect bound only $bound of $reflect_sockets sockets within 10 s"
  sleep 0.1
done

# The configurations.
{
  cat <<EOF
# hubprobed for scripts/bench_agent.sh: $peers peers, one probe every $interval_ms ms each.
[agent]
id = "bench-agent"
hub = "bench"
tick = "$tick"

[reflector]
enabled = false

[probe]
interval = "${interval_ms}ms"

[metrics]
listen = "$agent_metrics"
rtt_buckets = $rtt_buckets

[logging]
level = "warn"
EOF
  for ((i = 0; i < peers; i++)); do
    printf '\n[[peer]]\nname = "t%03d"\nhub = "targets"\naddress = "%s"\n' "$((i + 1))" "${targets[i]}"
  done
} >"$work/hubprobed.toml"
{
  echo "# prometheus-smokeping-prober for scripts/bench_agent.sh"
  echo "targets:"
  echo "- hosts:"
  for a in "${targets[@]}"; do echo "  - $a"; done
  echo "  interval: ${interval_ms}ms"
  echo "  network: ip4"
  echo "  protocol: icmp"
  echo "  size: 56"
} >"$work/smokeping.yml"
# fping paces all its packets by -i (default 10 ms, i.e. 100 packets/s in all): give it half the gap
# that N targets at one per period need, so -p alone sets the rate.
fping_gap_ms=$(awk -v p="$interval_ms" -v n="$peers" 'BEGIN { printf "%g", p / n / 2 }')
# fping 5.1 ignores -q in loop mode (-l): it prints every reply. -Q SECS is quiet too and prints a
# summary every SECS seconds: longer than a round, so the only summary is the one at the end (SIGINT).
fping_quiet_s=$((warmup + duration + 3600))

command_for() { # the argv of a tool, one per line
  case $1 in
    hubprobed) printf '%s\n' "$agent_bin" -c "$work/hubprobed.toml" ;;
    fping) printf '%s\n' fping -l -Q "$fping_quiet_s" -p "$interval_ms" -i "$fping_gap_ms" "${targets[@]}" ;;
    smokeping) printf '%s\n' "$smokeping_bin" --config.file="$work/smokeping.yml" --privileged \
      --web.listen-address="$smokeping_metrics" --log.level=warn ;;
  esac
}
shown_command() { # how the report shows it
  case $1 in
    hubprobed) echo "hubprobed -c hubprobed.toml  ($peers [[peer]], interval \"${interval_ms}ms\", tick \"$tick\", rtt_buckets $rtt_buckets, [reflector] enabled = false)" ;;
    fping) echo "fping -l -Q $fping_quiet_s -p $interval_ms -i $fping_gap_ms <$peers addresses>" ;;
    smokeping) echo "$(basename "$smokeping_bin") --config.file=smokeping.yml --privileged --web.listen-address=$smokeping_metrics  ($peers hosts, interval: ${interval_ms}ms, protocol: icmp)" ;;
  esac
}
metrics_url() {
  case $1 in
    hubprobed) echo "http://$agent_metrics/metrics" ;;
    smokeping) echo "http://$smokeping_metrics/metrics" ;;
  esac
}

# Accumulated over rounds.
declare -A cpu_t=() win_s=() tx=() rx=() rss_sum=() rss_n=() hwm=() refl_ns=()
declare -A peers_up=() rate_min=() rate_max=() status_rx=() status_s=() fping_targets=()
fold() { # fold OP ARRAY KEY VALUE: ARRAY[KEY] = ARRAY[KEY] OP VALUE, OP one of sum, min, max
  local -n acc=$2
  acc[$3]=$(awk -v op="$1" -v a="${acc[$3]:-}" -v b="$4" 'BEGIN {
    if (a == "") print b; else if (op == "sum") printf "%.9g\n", a + b
    else if (op == "max") print (b + 0 > a + 0) ? b : a; else print (b + 0 < a + 0) ? b : a }')
}
add() { fold sum "$@"; }
maxof() { fold max "$@"; }
minof() { fold min "$@"; }

status_snapshot() { # per-peer received counters of hubprobed, "name received state" lines
  ip netns exec "$ns_s" curl -s --max-time 5 "http://$agent_metrics/status" |
    jq -r '.peers[] | "\(.name) \(.received) \(.state)"' >"$1"
}

run_tool() { # run_tool TOOL ROUND
  local t=$1 r=$2 dir=$work/round$2
  mkdir -p "$dir"
  local -a argv
  mapfile -t argv < <(command_for "$t")
  note "round $r/$rounds: $t, ${warmup} s warm-up + ${duration} s window$(has_metrics "$t" && echo " + $scrapes scrapes")"
  # `ip netns exec` execs the command in place: $! is the tool itself.
  local born
  born=$(now_s)
  ip netns exec "$ns_s" "${argv[@]}" >"$dir/$t.out" 2>"$dir/$t.err" &
  tb_track "$t" "$!"
  local pid=$TB_LAST_PID
  if has_metrics "$t"; then wait_http "$(metrics_url "$t")" "$pid" "$t"; else sleep 0.5; fi
  kill -0 "$pid" 2>/dev/null || { cat "$dir/$t.err" >&2; die "$t exited at start"; }
  sleep "$warmup"

  # The window: no scrape in it (hubprobed's /status is read just outside it).
  local ts0 ts1
  if [[ $t == hubprobed ]]; then ts0=$(now_s); status_snapshot "$dir/status.0"; fi
  local tx_proto tx_field rx_field
  if [[ $t == hubprobed ]]; then tx_proto=Udp tx_field=OutDatagrams rx_field=InDatagrams
  else tx_proto=Icmp tx_field=OutEchos rx_field=InEchoReps; fi
  local tx0 rx0 c0 rf0 w0 tx1 rx1 c1 rf1 w1
  tx0=$(snmp "$tx_proto" "$tx_field") rx0=$(snmp "$tx_proto" "$rx_field")
  rf0=$(cpu_ns "$reflector_pid")
  w0=$(now_s)
  c0=$(cpu_ticks "$pid") || die "$t exited during the warm-up"
  local k rss
  for ((k = 1; k <= duration; k++)); do
    sleep_until "$(awk -v w="$w0" -v k="$k" 'BEGIN { printf "%.6f", w + k }')"
    rss=$(status_kb "$pid" VmRSS)
    [[ -n $rss ]] || die "$t (pid $pid) exited during the window"
    echo "$rss" >>"$dir/$t.rss"
    cpu_ns "$pid" >>"$dir/$t.cpu_ns"
  done
  c1=$(cpu_ticks "$pid") || die "$t exited during the window"
  w1=$(now_s)
  rf1=$(cpu_ns "$reflector_pid")
  tx1=$(snmp "$tx_proto" "$tx_field") rx1=$(snmp "$tx_proto" "$rx_field")
  if [[ $t == hubprobed ]]; then status_snapshot "$dir/status.1"; ts1=$(now_s); fi

  local wall
  wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.6f", b - a }')
  add cpu_t "$t" $((c1 - c0))
  add win_s "$t" "$wall"
  add tx "$t" $((tx1 - tx0))
  add rx "$t" $((rx1 - rx0))
  add rss_sum "$t" "$(awk '{ s += $1 } END { print s + 0 }' "$dir/$t.rss")"
  add rss_n "$t" "$(wc -l <"$dir/$t.rss")"
  [[ $t == hubprobed ]] && add refl_ns "$t" $((rf1 - rf0))

  if [[ $t == hubprobed ]]; then
    # Replies per second of every peer over the window, and how many peers are up at its end.
    local secs
    secs=$(awk -v a="$ts0" -v b="$ts1" 'BEGIN { printf "%.6f", b - a }')
    read -r up lo hi total < <(awk -v s="$secs" 'NR == FNR { r0[$1] = $2; next }
      { n++; if ($3 == "up") up++; v = ($2 - r0[$1]) / s; t += $2 - r0[$1]
        if (n == 1 || v < lo) lo = v; if (n == 1 || v > hi) hi = v }
      END { printf "%d %.2f %.2f %d\n", up, lo, hi, t }' "$dir/status.0" "$dir/status.1")
    minof peers_up "$t" "$up"
    minof rate_min "$t" "$lo"
    maxof rate_max "$t" "$hi"
    add status_rx "$t" "$total"
    add status_s "$t" "$secs"
    wc -l <"$dir/status.1" >"$dir/status.peers"
  fi

  if has_metrics "$t" && ((scrapes > 0)); then
    local s0 s1 q0 q1 out
    q0=$(now_s)
    s0=$(cpu_ns "$pid")
    for ((k = 1; k <= scrapes; k++)); do
      out=$dir/$t.metrics.$k
      scrape "$(metrics_url "$t")" "$out" >>"$work/$t.scrapes"
      # Series: sample lines (not comments, not blank); kept from the last scrape only.
      if ((k == scrapes)); then
        grep -vc '^#\|^$' "$out" >"$work/$t.series" || true
        cp "$out" "$work/$t.metrics.last"
      fi
      rm -f "$out"
      sleep 0.5
    done
    s1=$(cpu_ns "$pid")
    q1=$(now_s)
    # CPU of the scrapes: what the process used meanwhile, less its probing rate (the mean of the window's
    # one-second samples) over the same time; the noise is the samples' spread over that time.
    awk -v a="$s0" -v b="$s1" -v q="$q0" -v e="$q1" -v n="$scrapes" '
      { if (NR > 1) { d[++k] = $1 - prev; sum += d[k] } prev = $1 }
      END { m = sum / k; for (i = 1; i <= k; i++) v += (d[i] - m) ^ 2
            printf "%.0f %.0f %d\n", (b - a) - m * (e - q), sqrt(v / (k - 1)) * sqrt(e - q), n }' \
      "$dir/$t.cpu_ns" >>"$work/$t.scrape_cpu"
  fi
  maxof hwm "$t" "$(status_kb "$pid" VmHWM)"
  if [[ $t == fping ]]; then
    tb_stop "$pid" 50 INT
    # Its own summary on SIGINT, per target: "ADDR : xmt/rcv/%loss = 712/712/0%, min/avg/max = ...",
    # over its whole life (warm-up included).
    local life
    life=$(awk -v a="$born" -v b="$(now_s)" 'BEGIN { printf "%.3f", b - a }')
    read -r n lo hi < <(awk -v s="$life" '$2 == ":" && $3 == "xmt/rcv/%loss" {
        split($5, v, "/"); r = v[2] / s; n++; if (n == 1 || r < lo) lo = r; if (n == 1 || r > hi) hi = r }
      END { printf "%d %.2f %.2f\n", n, lo, hi }' "$dir/$t.err")
    minof fping_targets "$t" "$n"
    minof rate_min "$t" "$lo"
    maxof rate_max "$t" "$hi"
  else
    tb_stop "$pid" 50
  fi
}
has_metrics() { [[ $1 == hubprobed || $1 == smokeping ]]; }

per_tool_s=$((warmup + duration + (scrapes + 1) / 2 + 2))
note "namespaces $ns_s / $ns_t, veth $if_s ($addr_s) <-> $if_t, targets ${targets[0]} .. ${targets[peers - 1]}"
note "${#tools[@]} tool(s) x $rounds round(s), about $((per_tool_s * ${#tools[@]} * rounds)) s; load average $load_before"
for ((r = 1; r <= rounds; r++)); do
  for ((k = 0; k < ${#tools[@]}; k++)); do
    run_tool "${tools[$(((k + r - 1) % ${#tools[@]}))]}" "$r"
  done
done
read -r load_after < <(awk '{ print $1 "/" $2 "/" $3 }' /proc/loadavg)
kill -0 "$reflector_pid" 2>/dev/null || die "hubprobe reflect exited during the benchmark"
tb_stop "$reflector_pid" 50
reflector_summary=$(grep -m 1 '^received ' "$work/reflect.log" || true)

# --- report -------------------------------------------------------------------------------------------
version_of() {
  case $1 in
    hubprobed) "$agent_bin" --version 2>/dev/null | awk 'NR == 1 { print $NF }' ;;
    fping) fping -v 2>&1 | awk 'NR == 1 { print $NF }' ;;
    smokeping) dpkg-query -W -f='${Version}' prometheus-smokeping-prober 2>/dev/null ||
      "$smokeping_bin" --version 2>&1 | awk 'NR == 1 { print $3 }' ;;
  esac
}
declare -A name=(
  [hubprobed]="\`hubprobed\` $(version_of hubprobed)"
  [fping]="\`fping -l\` $(version_of fping)"
  [smokeping]="\`prometheus-smokeping-prober\` $(version_of smokeping)"
)
calc() { awk "BEGIN { $1 }"; }
cpu_pct() { calc "printf \"%.2f\", ${cpu_t[$1]} / $clk_tck / ${win_s[$1]} * 100"; }
cpu_us_probe() { calc "t = ${tx[$1]}; if (t > 0) printf \"%.1f\", ${cpu_t[$1]} / $clk_tck / t * 1e6; else print \"–\""; }
per_s() { calc "printf \"%.0f\", $2 / ${win_s[$1]}"; }
mib() { calc "v = \"$1\"; if (v == \"\") print \"–\"; else printf \"%.1f\", v / 1024"; }
scrape_cpu() { # TOOL -> ms of CPU per scrape, or "< BOUND" when it is within twice the noise
  [[ -s $work/$1.scrape_cpu ]] || { echo –; return; }
  awk '{ x += $1; v += $2 * $2; n += $3 }
    END { s = 2 * sqrt(v); if (x < s) printf "< %.1f", ((x > 0 ? x : 0) + s) / n / 1e6; else printf "%.1f", x / n / 1e6 }' \
    "$work/$1.scrape_cpu"
}
scrape_stats() { # TOOL -> "n p50_ms max_ms size_kib" over the successful scrapes
  [[ -s $work/$1.scrapes ]] || { echo "0 – – –"; return; }
  awk '$3 == 200 { print $1 * 1000, $2 }' "$work/$1.scrapes" | sort -g -k1,1 | awk '
    { v[++n] = $1; size = $2 }
    END { if (!n) { print "0 – – –"; exit }
          printf "%d %.1f %.1f %.1f\n", n, v[int((n + 1) / 2)], v[n], size / 1024 }'
}

rtt_quantiles() { # FILE -> "p50 A, p90 B, p99 C, max D": per quantile, the median over the peers
  awk 'match($0, /^hubprobe_rtt_window_seconds\{.*quantile="([0-9.]+)"/) {
      q = $0; sub(/.*quantile="/, "", q); sub(/".*/, "", q); print q, $NF * 1e6 }' "$1" |
    sort -k1,1 -k2,2g | awk '
      { v[$1, ++n[$1]] = $2 }
      END { split("0.5 0.9 0.99 1", qs, " "); split("p50 p90 p99 max", names, " "); out = ""
            for (i = 1; i <= 4; i++) { q = qs[i]; if (!(q in n)) continue
              out = out (out == "" ? "" : ", ") sprintf("%s %.1f", names[i], v[q, int((n[q] + 1) / 2)]) }
            print (out == "" ? "none" : out) }'
}

report=$work/report.md
{
  echo "_Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`sudo $command_line\`._"
  echo
  echo "- Host: Linux $(uname -r), $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) vCPU," \
    "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo unknown)."
  echo "- Load average (1/5/15 min) before $load_before, after $load_after. Nothing pinned."
  echo "- hubprobed and hubprobe: copies of ${agent_src#"$top"/} (built $agent_built) and its sibling, taken at the start; tree at $agent_tree."
  echo "- $peers targets ${targets[0]} .. ${targets[peers - 1]} in their own namespace behind a veth pair," \
    "each probed every $interval_ms ms by each tool in turn ($((peers * 1000 / interval_ms)) probes/s in all)." \
    "$rounds round(s); per tool and round a ${warmup} s warm-up, then a ${duration} s window with no scrape in it," \
    "then $scrapes scrapes of /metrics, one every 0.5 s."
  echo "- Commands (run in the sender namespace):"
  for t in "${tools[@]}"; do echo "  - \`$(shown_command "$t")\`"; done
  if ((reflect_sockets == 1)); then
    echo "  - reflector for hubprobed (targets namespace, whole run): \`hubprobe reflect --listen 0.0.0.0:862\`, one process."
  else
    echo "  - reflector for hubprobed (targets namespace, whole run): \`hubprobe reflect --listen A:862\` for each of the $peers addresses, one process."
  fi
  echo
  echo "| tool | probes/s sent | replies/s | CPU, % of one core | CPU µs/probe | RSS steady MiB | RSS peak MiB | /metrics p50 ms | /metrics max ms | /metrics KiB | series | CPU per scrape ms |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for t in "${tools[@]}"; do
    read -r sn sp50 smax ssize < <(scrape_stats "$t")
    if has_metrics "$t"; then
      series=$(cat "$work/$t.series" 2>/dev/null || echo –)
      scpu=$(scrape_cpu "$t")
    else
      sp50=– smax=– ssize=– series=– scpu=–
    fi
    printf '| %s | %s | %s | **%s** | %s | %s | **%s** | %s | **%s** | %s | %s | %s |\n' "${name[$t]}" \
      "$(per_s "$t" "${tx[$t]}")" "$(per_s "$t" "${rx[$t]}")" "$(cpu_pct "$t")" "$(cpu_us_probe "$t")" \
      "$(mib "$(calc "printf \"%.0f\", ${rss_sum[$t]} / ${rss_n[$t]}")")" "$(mib "${hwm[$t]:-}")" \
      "$sp50" "$smax" "$ssize" "$series" "$scpu"
  done
  echo
  echo "CPU is utime+stime of the process (all threads, /proc/PID/stat, 1/$clk_tck s ticks) over the windows" \
    "($(calc "printf \"%.0f\", ${win_s[${tools[0]}]}") s per tool in all), as a share of one core, and per probe sent." \
    "Probes and replies per second are the sender namespace's ICMP OutEchos/InEchoReps (fping, smokeping) or" \
    "UDP OutDatagrams/InDatagrams (hubprobed) over the same windows. RSS steady is the mean of VmRSS sampled" \
    "every second in the window, RSS peak the VmHWM after the scrapes. /metrics times are curl's time_total" \
    "(median and largest of the scrapes, from the same namespace); size and series count (sample lines) of the" \
    "last scrape; CPU per scrape is the process's extra on-CPU time while scraping, beyond its probing rate."
  echo
  if has_tool hubprobed; then
    echo "hubprobed's own view (/status just before and after each window): $(cat "$work/round$rounds/status.peers") peers," \
      "${peers_up[hubprobed]} up at the end of every window; replies per peer per second" \
      "$(calc "printf \"%.2f\", ${status_rx[hubprobed]} / ${status_s[hubprobed]} / $peers") on average," \
      "${rate_min[hubprobed]} .. ${rate_max[hubprobed]} (expected $(calc "printf \"%g\", 1000 / $interval_ms"))." \
      "Reflector (\`hubprobe reflect\`, informational, not part of the agent's cost):" \
      "$(calc "printf \"%.2f\", ${refl_ns[hubprobed]} / 1e9 / ${win_s[hubprobed]} * 100") % of one core" \
      "(on-CPU time of its threads in hubprobed's windows); ${reflector_summary:-no summary}."
    echo
    if [[ -s $work/hubprobed.metrics.last ]]; then
      echo "hubprobed's RTT over its last window (hubprobe_rtt_window_seconds at the last scrape), the median over" \
        "the peers of each quantile, in µs: $(rtt_quantiles "$work/hubprobed.metrics.last")."
      echo
    fi
  fi
  if has_tool smokeping && [[ -s $work/smokeping.metrics.last ]]; then
    echo "smokeping_prober's own counters at its last scrape (since its start):" \
      "$(awk '/^smokeping_requests_total/ { q += $NF } /^smokeping_response_duration_seconds_count/ { a += $NF }
        END { printf "%d requests, %d responses recorded (%.1f %%)", q, a, q ? 100 * a / q : 0 }' "$work/smokeping.metrics.last")."
  fi
  if has_tool fping; then
    echo "fping's own summary (on SIGINT, over its whole life including the warm-up and start-up, hence a little" \
      "low): ${fping_targets[fping]} targets, replies per target per second ${rate_min[fping]} .. ${rate_max[fping]}."
  fi
  if has_tool fping || has_tool smokeping; then
    echo "fping and smokeping_prober are answered by the targets' kernel (ICMP echo in softirq), which on a veth pair" \
      "runs inside their own \`sendto\` and is charged to them (see Caveats)."
    echo
  fi
  echo "### Targets"
  echo
  if has_tool hubprobed && has_tool fping; then
    calc "a = $(cpu_us_probe hubprobed); b = $(cpu_us_probe fping);
      printf \"- **%s** hubprobed CPU per probe at most a third of fping's: %.1f µs against %.1f µs (%.2f of it)\n\",
      (3 * a <= b) ? \"PASS\" : \"FAIL\", a, b, a / b"
  fi
  if has_tool hubprobed; then
    calc "k = ${hwm[hubprobed]}; printf \"- **%s** hubprobed resident memory under 16 MB: peak %.1f MB (%.1f MiB)\n\",
      (k * 1024 < 16e6) ? \"PASS\" : \"FAIL\", k * 1024 / 1e6, k / 1024"
    read -r sn sp50 smax ssize < <(scrape_stats hubprobed)
    if ((sn > 0)); then
      calc "m = $smax; printf \"- **%s** hubprobed /metrics under 50 ms: largest of %d scrapes %.1f ms (median %.1f ms)\n\",
        (m < 50) ? \"PASS\" : \"FAIL\", $sn, m, $sp50"
    else
      echo "- **FAIL** hubprobed /metrics under 50 ms: no successful scrape"
    fi
    calc "e = $peers * 1000 / $interval_ms; g = ${rx[hubprobed]} / ${win_s[hubprobed]};
      printf \"- **%s** (check) hubprobed measured: %d/%d peers up, %.0f replies/s of %.0f expected\n\",
      (${peers_up[hubprobed]} == $peers && g >= 0.98 * e) ? \"PASS\" : \"FAIL\", ${peers_up[hubprobed]}, $peers, g, e"
  fi
  for t in fping smokeping; do
    has_tool "$t" || continue
    calc "e = $peers * 1000 / $interval_ms; g = ${rx[$t]} / ${win_s[$t]};
      printf \"- **%s** (check) %s kept the rate: %.0f replies/s of %.0f expected\n\",
      (g >= 0.98 * e) ? \"PASS\" : \"FAIL\", \"$t\", g, e"
  done
} >"$report"

cat "$report"

if ((write_doc)); then
  # The section of this benchmark lies between <!-- bench-agent:begin --> and <!-- bench-agent:end -->;
  # only its results part, between <!-- bench-agent-results:begin --> and <!-- bench-agent-results:end -->,
  # is rewritten. Missing markers are added (the section at the end of the file, the results part at the
  # end of the section).
  if [[ ! -f $doc ]]; then
    mkdir -p "$(dirname "$doc")"
    printf '# Benchmarks\n' >"$doc"
  fi
  begin='<!-- bench-agent:begin -->' end='<!-- bench-agent:end -->'
  results_begin='<!-- bench-agent-results:begin -->' results_end='<!-- bench-agent-results:end -->'
  doc_ensure_section "$doc" "$begin" "$end" "$(printf '\n%s\n## Agent: probing many peers\n\n%s' "$begin" "$end")"
  doc_ensure_section "$doc" "$results_begin" "$results_end" "$results_begin"$'\n'"$results_end" "$end"
  doc_replace_section "$doc" "$results_begin" "$results_end" "$report"
  note "rewrote the bench-agent results in $doc"
fi
