// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/costmap_command.h"

#include <chrono>
#include <cmath>
#include <ostream>
#include <sstream>
#include <thread>

#include "hubprobe/cli_usage.h"
#include "hubprobe/config.h"
#include "hubprobe/costmap_service.h"
#include "hubprobe/net.h"
#include "hubprobe/systemd.h"
#include "hubprobe/web_config.h"

namespace hubprobe {
namespace {

constexpr int kBadConfig = 78;  // EX_CONFIG, as check-config and hubprobed
constexpr int kCannotListen = 3;

}  // namespace

int costmap_command(const CostmapArgs& args, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop) {
  costmap::ServiceOptions options;
  options.etcd = args.tls;
  CostmapConfig settings;  // [costmap] of --config, or its defaults
  if (!args.config.empty()) {
    auto config = load_config(args.config);
    if (!config) {
      err << "hubprobe costmap: " << config.error().message << "\n";
      return kBadConfig;
    }
    if (!config->scheduler.etcd.empty()) {
      const EtcdSinkConfig& sink = config->scheduler.etcd.front();
      options.etcd = etcd_client_options(sink);
      options.prefix = sink.prefix;
    }
    options.web = config->metrics.web;
    settings = config->costmap;
  }
  if (!args.etcd.empty()) {
    options.etcd.endpoints.clear();
    std::stringstream list(args.etcd);
    for (std::string endpoint; std::getline(list, endpoint, ',');) {
      if (endpoint.empty()) continue;
      if (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0) {
        return usage_error(err, "costmap: --etcd: \"" + endpoint + "\" is not an http:// or https:// URL");
      }
      options.etcd.endpoints.push_back(endpoint);
    }
    if (!args.tls.ca_file.empty()) options.etcd.ca_file = args.tls.ca_file;
    if (!args.tls.client_cert_file.empty()) options.etcd.client_cert_file = args.tls.client_cert_file;
    if (!args.tls.client_key_file.empty()) options.etcd.client_key_file = args.tls.client_key_file;
  }
  if (options.etcd.endpoints.empty()) {
    return usage_error(err, "costmap: give --etcd URL[,URL...] or --config FILE with a [[scheduler.etcd]]");
  }
  if (!args.prefix.empty()) options.prefix = args.prefix;
  if (!args.web_config.empty()) {
    auto web = load_web_config(args.web_config);
    if (!web) {
      err << "hubprobe costmap: " << web.error().message << "\n";
      return kBadConfig;
    }
    options.web = *web;
  }
  const std::string base_path = args.base_path.empty() ? settings.base_path : args.base_path;
  if (base_path.size() < 2 || base_path.front() != '/' || base_path.back() == '/') {
    return usage_error(err, "costmap: --base-path: expected a path such as /alto, got \"" + base_path + "\"");
  }
  if (args.threads < 0 || args.threads > 1024) return usage_error(err, "costmap: --threads: expected 1..1024");
  if (args.max_wait_s > 3600) return usage_error(err, "costmap: --max-wait: expected 0..3600 seconds");
  options.listen = args.listen.empty() ? settings.listen.to_string() : args.listen;
  if (auto listen = SocketAddress::parse(options.listen, kDefaultCostmapPort); !listen || !listen->is_v4()) {
    return usage_error(
        err, "costmap: --listen: expected an IPv4 address and port like 0.0.0.0:9863, got \"" + options.listen + "\"");
  } else {
    options.listen = listen->to_string();  // without a port: 9863
  }
  options.threads = args.threads > 0 ? args.threads : settings.threads;
  options.layout.base_path = base_path;
  options.layout.public_url = args.public_url.empty() ? settings.public_url : args.public_url;
  options.max_wait_ns =
      args.max_wait_s >= 0 ? static_cast<int64_t>(std::llround(args.max_wait_s * 1e9)) : settings.max_wait_ns;

  auto service = costmap::Service::start(
      options, [&err](const std::string& message) { err << "hubprobe costmap: " << message << std::endl; });
  if (!service) {
    err << "hubprobe costmap: " << service.error().message << "\n";
    return kCannotListen;
  }
  out << "hubprobe costmap: serving " << options.layout.directory_path() << " on " << options.listen
      << ((*service)->tls() ? " (TLS)" : "") << ", port " << (*service)->port() << ", etcd "
      << options.etcd.endpoints.front() << " prefix " << options.prefix << std::endl;
  (void)systemd::notify_ready();
  const auto ping = systemd::watchdog_ping_period();
  auto next_ping = std::chrono::steady_clock::now();
  while (!stop) {
    if (ping && std::chrono::steady_clock::now() >= next_ping) {
      (void)systemd::notify_watchdog();
      next_ping = std::chrono::steady_clock::now() + *ping;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (void)systemd::notify_stopping();
  service->reset();
  return 0;
}

}  // namespace hubprobe
