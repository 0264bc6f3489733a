#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs everything hubprobe needs to build, test, package and run its demo on Debian 12, and changes
# nothing else on the host: no service is started, stopped, enabled or disabled. (The packaged
# prometheus and etcd services may keep running: the tests and the demo start their own instances
# inside network namespaces or on free loopback ports, never on this host's 9090 or 2379; the demo
# forwards Prometheus to 127.0.0.1:9090 or, when that is taken, the next free port and prints which.)
# Safe to run twice: apt-get only installs what is missing.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: run as root (apt-get, network namespaces)" >&2
  exit 1
fi

packages=(
  # toolchain
  build-essential cmake pkg-config clang llvm clang-format git ca-certificates
  # dataplanes
  libdpdk-dev dpdk libbpf-dev bpftool libelf-dev zlib1g-dev libxdp-dev
  # agent libraries
  prometheus-cpp-dev libtomlplusplus-dev libcurl4-openssl-dev nlohmann-json3-dev libssl-dev
  libcli11-dev libspdlog-dev libfmt-dev libsystemd-dev libcivetweb-dev
  # the web configuration file of the metrics endpoint (TLS, basic auth) is YAML, as the exporters' is;
  # libcrypt-dev (libxcrypt) checks its bcrypt password hashes
  libyaml-cpp-dev libcrypt-dev
  # tests
  libgtest-dev libgmock-dev iproute2 nftables ethtool tcpdump procps curl jq
  # certificates for the mutual-TLS test of the HTTPS sink, and its HTTPS server
  openssl python3
  # a real JSON Schema (draft 2020-12) validator for the preference document test (/usr/bin/python3)
  python3-jsonschema
  # the demo: Prometheus forwarded to 127.0.0.1 of this machine
  socat
  # baselines for benchmarks and real servers for end-to-end tests
  iputils-ping fping sockperf time prometheus etcd-server etcd-client systemd prometheus-smokeping-prober
  # man pages from docs/ at build time: pandoc (hubprobe.1, hubprobe.toml.5) and help2man (hubprobed.8);
  # man-db renders them for the warning check of the package tests
  pandoc help2man man-db
  # the .deb (scripts/package.sh, tests/package): dpkg-shlibdeps (Depends:) from dpkg-dev, file (cpack
  # finds the ELF files with it), lintian (Debian policy check)
  dpkg-dev file lintian
  # compiler cache: scripts/build.sh uses it, so the package test's /usr build reuses the main build's
  # objects instead of compiling the agent again
  ccache
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all packages present"
fi
