#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The local demo: installs what is needed, builds, then puts two "hubs" in network namespaces joined by
# a veth pair, runs a STAMP reflector in one and `hubprobe ping` from the other over IPv4 and IPv6, prints
# the summaries and tears everything down (also on Ctrl-C or failure). Run as root.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root (it creates network namespaces)" >&2
  exit 1
fi
scripts/setup.sh >/dev/null
echo "building hubprobe..."
scripts/build.sh >/dev/null
bin=$top/build/agent/hubprobe

suffix=$$
hub_a=hpdemo-a-$suffix
hub_b=hpdemo-b-$suffix
reflector_pid=
cleanup() {
  [[ -n $reflector_pid ]] && kill "$reflector_pid" 2>/dev/null && wait "$reflector_pid" 2>/dev/null
  ip netns del "$hub_a" 2>/dev/null || true
  ip netns del "$hub_b" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$hub_a"
ip netns add "$hub_b"
ip link add "hpda$suffix" type veth peer name "hpdb$suffix"
ip link set "hpda$suffix" netns "$hub_a"
ip link set "hpdb$suffix" netns "$hub_b"
ip -n "$hub_a" addr add 198.18.0.1/24 dev "hpda$suffix"
ip -n "$hub_b" addr add 198.18.0.2/24 dev "hpdb$suffix"
ip -n "$hub_a" addr add 2001:db8::1/64 dev "hpda$suffix" nodad
ip -n "$hub_b" addr add 2001:db8::2/64 dev "hpdb$suffix" nodad
for ns in "$hub_a" "$hub_b"; do ip -n "$ns" link set lo up; done
ip -n "$hub_a" link set "hpda$suffix" up
ip -n "$hub_b" link set "hpdb$suffix" up

echo "hub B ($hub_b): stateful STAMP reflector on 198.18.0.2:862 and [2001:db8::2]:862"
ip netns exec "$hub_b" "$bin" reflect --stateful --listen 198.18.0.2:862 --listen '[2001:db8::2]:862' \
  >/dev/null &
reflector_pid=$!
sleep 0.3

echo
echo "hub A ($hub_a): hubprobe ping 198.18.0.2 -c 20 -i 0.05"
ip netns exec "$hub_a" "$bin" ping -c 20 -i 0.05 198.18.0.2
echo
echo "hub A ($hub_a): hubprobe ping [2001:db8::2] -c 200 -i 0.005 -q"
ip netns exec "$hub_a" "$bin" ping -c 200 -i 0.005 -q '[2001:db8::2]'
