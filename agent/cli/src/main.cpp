// SPDX-License-Identifier: Apache-2.0
// hubprobe: the command-line tool (ping, reflect, check-config, status, prefs, costmap). Here: the flags of each
// command (CLI11) and the dispatch; each command checks its flags and runs in its own file.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <iostream>
#include <string>

#include "hubprobe/cli_usage.h"
#include "hubprobe/config.h"
#include "hubprobe/costmap_command.h"
#include "hubprobe/install_paths.h"
#include "hubprobe/ping.h"
#include "hubprobe/prefs.h"
#include "hubprobe/reflect.h"
#include "hubprobe/stamp.h"
#include "hubprobe/status_command.h"
#include "hubprobe_version.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: poll returns at once
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// CLI11's own range check prints a 300-digit bound; say plainly what is expected.
const CLI::Validator kUnsignedInteger(
    [](std::string& text) -> std::string {
      const bool digits =
          !text.empty() && std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      return digits ? std::string() : "expected a non-negative integer, got \"" + text + "\"";
    },
    "UINT");

const std::string kStampPort = std::to_string(hubprobe::kDefaultStampPort);

// Each command's flags: its arguments (declared with the command, e.g. hubprobe::PingArgs) bound to CLI11
// options here. The command's own file checks them and runs.
struct PingFlags : hubprobe::PingArgs {
  CLI::App* add_to(CLI::App& app);
};
struct ReflectFlags : hubprobe::ReflectArgs {
  CLI::App* add_to(CLI::App& app);
};
struct CheckConfigFlags {
  std::string file;
  CLI::App* add_to(CLI::App& app);
};
struct StatusFlags {
  std::string agent_address = hubprobe::MetricsConfig::default_listen().to_string();
  bool json = false;
  CLI::App* add_to(CLI::App& app);
};
struct PrefsFlags : hubprobe::PrefsArgs {
  CLI::App* add_to(CLI::App& app);
};
struct CostmapFlags : hubprobe::CostmapArgs {
  CLI::App* add_to(CLI::App& app);
};

// The dataplane flags of ping and reflect, defined once (hubprobe::DataplaneArgs; dataplane_flags() turns them
// into dp::DataplaneOptions). Each repeatable flag takes one value per occurrence, so it never swallows the
// host of `ping`. A value that starts with '-' is written --eal-arg=VALUE.
void add_dataplane_flags(CLI::App& command, hubprobe::DataplaneArgs& args) {
  command
      .add_option("--backend", args.backend,
                  "dataplane: kernel (sockets, the default), xdp (needs -I) or dpdk (needs --dpdk-port and "
                  "--dpdk-address)")
      ->check(CLI::IsMember({"kernel", "xdp", "dpdk"}));
  command.add_option("--xdp-mode", args.xdp_mode, "with --backend xdp: auto (native, else generic), native, generic")
      ->check(CLI::IsMember({"auto", "native", "generic"}));
  command.add_option(
      "--dpdk-port", args.dpdk_port,
      "with --backend dpdk: the port, a PCI address (0000:03:00.0) or a vdev (net_af_packet0,iface=eth1)");
  command
      .add_option("--dpdk-address", args.dpdk_addresses,
                  "with --backend dpdk: an address of the port with its prefix length (198.18.0.1/24), may repeat")
      ->allow_extra_args(false);
  command
      .add_option("--dpdk-gateway", args.dpdk_gateways,
                  "with --backend dpdk: where off-link destinations go, on-link of a --dpdk-address; may repeat, at "
                  "most one IPv4 and one IPv6")
      ->allow_extra_args(false);
  command
      .add_option("--dpdk-neighbour", args.dpdk_neighbours,
                  "with --backend dpdk: ADDR=MAC, a neighbour's MAC instead of ARP/ND (198.18.0.2=02:00:00:00:00:02), "
                  "may repeat")
      ->allow_extra_args(false);
  command
      .add_option("--eal-arg", args.eal_args,
                  "with --backend dpdk: one more DPDK EAL argument, may repeat; write --eal-arg=--no-huge for one that "
                  "starts with '-'")
      ->allow_extra_args(false);
  command.add_option("--lcore", args.lcore, "with --backend dpdk: the core of the poll loop (default: the last one)")
      ->check(kUnsignedInteger);
}

CLI::App* PingFlags::add_to(CLI::App& app) {
  auto* ping = app.add_subcommand("ping", "one-shot STAMP measurement, like ping(8)");
  ping->add_option("host", host, "reflector: HOST, HOST:PORT or [IPv6]:PORT (default port " + kStampPort + ")")
      ->required();
  ping->add_option("-c,--count", count, "stop after COUNT probes (default: until interrupted)")
      ->check(kUnsignedInteger);
  ping->add_option("-i,--interval", interval_s, "seconds between probes, fractions allowed, >= 0.001 (default 1)");
  ping->add_option("-s,--size", size, "STAMP packet size in octets (default: 44, or 112 authenticated)")
      ->check(kUnsignedInteger);
  ping->add_option("-Q,--dscp", dscp, "DSCP: 0..63 or a PHB name (ef, af41, cs5, ...)");
  ping->add_option("-I,--interface", interface,
                   "send through this interface (SO_BINDTODEVICE); with --backend xdp, replies are stamped there; "
                   "not with --backend dpdk");
  add_dataplane_flags(*ping, *this);
  ping->add_option("-S,--source", source, "local source address");
  ping->add_option("--source-port", source_port, "local UDP source port (default: ephemeral)")->check(kUnsignedInteger);
  ping->add_option("-m,--mark", fwmark, "fwmark for policy routing (SO_MARK)")->check(kUnsignedInteger);
  ping->add_option("--auth-key-file", key_file, "authenticated mode with the hex HMAC key in this file");
  ping->add_option("-W,--timeout", timeout_s, "seconds to wait for each reply (default 2)");
  ping->add_flag("--json", json, "print one JSON object instead of text");
  ping->add_flag("-q,--quiet", quiet, "only the summary");
  ping->add_flag("--ptp", ptp, "PTPv2 truncated timestamps instead of NTP");
  return ping;
}

CLI::App* ReflectFlags::add_to(CLI::App& app) {
  auto* reflect = app.add_subcommand("reflect", "standalone STAMP session-reflector");
  reflect->add_option(
      "-l,--listen", listen,
      "ADDR[:PORT] to listen on, may repeat (default 0.0.0.0:" + kStampPort + " and [::]:" + kStampPort + ")");
  reflect->add_flag("--stateful", stateful, "stateful reflector: own sequence numbers per session");
  reflect->add_flag("--answer-short-requests", answer_short_requests,
                    "answer 14..43-octet (TWAMP-Light) requests with a 44-octet reply: larger than the request");
  reflect->add_option("--auth-key-file", key_file, "authenticated mode with the hex HMAC key in this file");
  reflect->add_option("-I,--interface", interface,
                      "only on this interface (SO_BINDTODEVICE); with --backend xdp, the XDP reflector attaches there; "
                      "not with --backend dpdk");
  add_dataplane_flags(*reflect, *this);
  reflect->add_flag("--ptp", ptp, "PTPv2 truncated timestamps instead of NTP");
  return reflect;
}

CLI::App* CheckConfigFlags::add_to(CLI::App& app) {
  auto* check = app.add_subcommand("check-config", "validate an agent configuration file");
  check->add_option("file", file, "the TOML file, e.g. " + hubprobe::default_config_file() + " (hubprobed's default)")
      ->required();
  return check;
}

CLI::App* StatusFlags::add_to(CLI::App& app) {
  auto* status = app.add_subcommand("status", "what a running agent sees: peers, states, RTT, loss");
  status->add_option("-a,--agent", agent_address, "the agent's metrics.listen address (default " + agent_address + ")");
  status->add_flag("--json", json, "print the agent's status document as JSON");
  return status;
}

CLI::App* PrefsFlags::add_to(CLI::App& app) {
  auto* prefs = app.add_subcommand("prefs", "the fleet's path preferences, hub by hub, from etcd or files");
  auto* etcd_option = prefs->add_option("--etcd", etcd, "etcd endpoints URL[,URL...], e.g. http://198.18.0.254:2379");
  prefs->add_option("--prefix", prefix, "key prefix of the agents' sinks (default /hubprobe)");
  auto* file_option =
      prefs->add_option("--file", files, "preference documents: JSON files, or directories of *.json files");
  prefs->add_option("--ca-file", tls.ca_file, "verify https etcd endpoints with this CA bundle");
  prefs->add_option("--cert-file", tls.client_cert_file, "client certificate for https etcd endpoints (PEM)");
  prefs->add_option("--key-file", tls.client_key_file, "client key for https etcd endpoints (PEM)");
  etcd_option->excludes(file_option);
  file_option->excludes(etcd_option);
  return prefs;
}

CLI::App* CostmapFlags::add_to(CLI::App& app) {
  auto* costmap =
      app.add_subcommand("costmap", "serve the fleet's preferences from etcd as ALTO network and cost maps");
  costmap->add_option("-c,--config", config,
                      "an agent's TOML file: etcd endpoints, prefix and TLS of its first [[scheduler.etcd]], "
                      "[metrics] web_config_file and [costmap] (flags win)");
  costmap->add_option("--etcd", etcd, "etcd endpoints URL[,URL...], e.g. http://198.18.0.254:2379");
  costmap->add_option("--prefix", prefix, "key prefix of the agents' sinks (default /hubprobe)");
  costmap->add_option("-l,--listen", listen, "ADDR:PORT to serve on (default 127.0.0.1:9863)");
  costmap->add_option("--web-config", web_config, "web-config.yml: TLS and basic auth, as for the agent's endpoints");
  costmap->add_option("--base-path", base_path, "the directory's path; every resource below it (default /alto)");
  costmap->add_option("--public-url", public_url,
                      "scheme://host[:port] the clients use (behind a load balancer): makes the directory's URIs "
                      "absolute");
  costmap->add_option("--threads", threads, "HTTP workers; a long poll holds one while it waits (default 16)")
      ->check(kUnsignedInteger);
  costmap->add_option("--max-wait", max_wait_s,
                      "the longest long poll (Prefer: wait=N) honoured, seconds (default 60)");
  costmap->add_option("--ca-file", tls.ca_file, "verify https etcd endpoints with this CA bundle");
  costmap->add_option("--cert-file", tls.client_cert_file, "client certificate for https etcd endpoints (PEM)");
  costmap->add_option("--key-file", tls.client_key_file, "client key for https etcd endpoints (PEM)");
  return costmap;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hubprobe: STAMP (RFC 8762) latency probe for hub-to-hub paths", "hubprobe"};
  app.set_version_flag("--version", std::string(HUBPROBE_VERSION));
  app.require_subcommand(1);
  PingFlags ping_flags;
  ReflectFlags reflect_flags;
  CheckConfigFlags check_flags;
  StatusFlags status_flags;
  PrefsFlags prefs_flags;
  CostmapFlags costmap_flags;
  const CLI::App* ping = ping_flags.add_to(app);
  reflect_flags.add_to(app);
  const CLI::App* check = check_flags.add_to(app);
  const CLI::App* status = status_flags.add_to(app);
  const CLI::App* prefs = prefs_flags.add_to(app);
  const CLI::App* costmap = costmap_flags.add_to(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like ping(8): the full help is one --help away.
    return hubprobe::usage_error(std::cerr, e.what());
  }

  if (*check) return hubprobe::check_config_command(check_flags.file, std::cout, std::cerr);
  if (*status) return hubprobe::status_command(status_flags.agent_address, status_flags.json, std::cout, std::cerr);
  if (*prefs) return hubprobe::prefs_command(prefs_flags, std::cout, std::cerr);

  install_signal_handlers();
  std::ios::sync_with_stdio(false);
  if (*costmap) return hubprobe::costmap_command(costmap_flags, std::cout, std::cerr, g_stop);
  if (*ping) return hubprobe::ping_command(ping_flags, std::cout, std::cerr, g_stop);
  return hubprobe::reflect_command(reflect_flags, std::cout, std::cerr, g_stop);
}
