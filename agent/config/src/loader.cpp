// SPDX-License-Identifier: Apache-2.0
// The loader's sections: agent, dataplane, reflector, probe defaults, peers, metrics, logging.
#include "loader.h"

#include <algorithm>
#include <unordered_map>

#include "config_limits.h"
#include "host_checks.h"
#include "toml_report.h"
#include "value_readers.h"

namespace hubprobe::config_detail {

AgentConfig Loader::load(const toml::table& root) {
  check_keys(root, "",
             {"agent", "dataplane", "reflector", "probe", "peer", "path", "sla", "scheduler", "metrics", "logging",
              "costmap"});
  AgentConfig config;
  read_agent(root, config);
  read_dataplane(root, config);
  backend_ = dp::backend_traits(config.dataplane.backend);
  read_reflector(root, config);
  if (const toml::table* probe = optional_table(root, "probe", "probe", "a table [probe]")) {
    check_keys(*probe, "probe", kProbeKeys);
    const ProbeNodes nodes = read_probe_settings(*probe, "probe", config.probe);
    check_probe_settings(*probe, "probe", config.probe, nodes, false);
  }
  read_paths(root, config);
  read_sla(root, config);
  read_peers(root, config);
  check_sla_down_after(config);
  read_scheduler(root, config);
  read_metrics(root, config);
  read_costmap(root, config);
  read_logging(root, config);
  return config;
}

void Loader::read_agent(const toml::table& root, AgentConfig& config) {
  constexpr std::string_view kIdExample = "gz-edge-01";
  constexpr std::string_view kHubExample = "gz";
  const toml::table* agent = optional_table(root, "agent", "agent", "a table [agent] with id and hub");
  if (agent == nullptr) missing(root, "agent.id", "a name like \"gz-edge-01\"");
  check_keys(*agent, "agent", {"id", "hub", "tick"});
  const toml::node* id = agent->get("id");
  if (id == nullptr) missing(*agent, "agent.id", "a name like \"gz-edge-01\"");
  config.agent.id = read_name(*id, "agent.id", kIdExample);
  const toml::node* hub = agent->get("hub");
  if (hub == nullptr) missing(*agent, "agent.hub", "a hub name like \"gz\"");
  config.agent.hub = read_name(*hub, "agent.hub", kHubExample);
  if (const toml::node* tick = agent->get("tick"); tick != nullptr && !(tick->value<std::string>() == "auto")) {
    config.tick_ns = read_duration(*tick, "agent.tick", kMillisecond, 100 * kMillisecond);
  }
}

void Loader::read_dataplane(const toml::table& root, AgentConfig& config) {
  const toml::table* dataplane = optional_table(root, "dataplane", "dataplane", "a table [dataplane]");
  if (dataplane == nullptr) return;
  check_keys(*dataplane, "dataplane", {"backend", "kernel", "xdp", "dpdk"});
  if (const toml::node* backend = dataplane->get("backend")) {
    static constexpr std::string_view kBackends[] = {"kernel", "xdp", "dpdk"};
    config.dataplane.backend =
        std::string(kBackends[read_choice(*backend, "dataplane.backend", {"kernel", "xdp", "dpdk"})]);
  }
  read_kernel_options(*dataplane, config.dataplane.kernel);
  // A backend's table is read only with that backend: settings that would be ignored are refused.
  const auto backend_table = [&](std::string_view name) {
    const std::string path = "dataplane." + std::string(name);
    const toml::table* table = optional_table(*dataplane, name, path, "a table [" + path + "]");
    if (table != nullptr && config.dataplane.backend != name) {
      fail(table->source(), path,
           "is only read with backend = \"" + std::string(name) + "\" (the backend is \"" + config.dataplane.backend +
               "\"): remove the table or select the backend");
    }
    return table;
  };
  const toml::table* xdp = backend_table("xdp");
  const toml::table* dpdk = backend_table("dpdk");
  if (config.dataplane.backend == "xdp") read_xdp_options(*dataplane, xdp, config.dataplane.xdp);
  if (config.dataplane.backend == "dpdk") read_dpdk_options(*dataplane, dpdk, config.dataplane.dpdk);
}

void Loader::read_kernel_options(const toml::table& dataplane, KernelDataplaneOptions& options) {
  const toml::table* kernel = optional_table(dataplane, "kernel", "dataplane.kernel", "a table [dataplane.kernel]");
  if (kernel == nullptr) return;
  check_keys(*kernel, "dataplane.kernel", {"hardware_timestamps", "receive_buffer"});
  if (const toml::node* node = kernel->get("hardware_timestamps")) {
    options.hardware_timestamps = read_bool(*node, "dataplane.kernel.hardware_timestamps");
  }
  if (const toml::node* node = kernel->get("receive_buffer")) {
    options.receive_buffer = static_cast<int>(read_integer(
        *node, "dataplane.kernel.receive_buffer", kMinReceiveBuffer, kMaxReceiveBuffer,
        "a size in octets from " + std::to_string(kMinReceiveBuffer) + " to " + std::to_string(kMaxReceiveBuffer)));
  }
}

void Loader::read_xdp_options(const toml::table& dataplane, const toml::table* xdp, dp::XdpOptions& options) {
  constexpr std::string_view kWhat = "an array of interface names like [\"eth1\"]";
  const toml::node* interfaces = xdp != nullptr ? xdp->get("interfaces") : nullptr;
  if (interfaces == nullptr) {
    missing(xdp != nullptr ? *xdp : dataplane, "dataplane.xdp.interfaces",
            std::string(kWhat) + ": where the XDP programs attach");
  }
  check_keys(*xdp, "dataplane.xdp", {"interfaces", "mode"});
  if (!interfaces->is_array() || interfaces->as_array()->empty())
    expected(*interfaces, "dataplane.xdp.interfaces", kWhat);
  const toml::array& array = *interfaces->as_array();
  for (size_t i = 0; i < array.size(); ++i) {
    const std::string path = indexed("dataplane.xdp.interfaces", i);
    std::string name = read_interface(*array.get(i), path);
    if (name.empty()) expected(*array.get(i), path, "an interface name, not an empty string");
    if (std::find(options.interfaces.begin(), options.interfaces.end(), name) != options.interfaces.end()) {
      expected(*array.get(i), path, "an interface not listed before");
    }
    options.interfaces.push_back(std::move(name));
  }
  if (const toml::node* node = xdp->get("mode")) {
    static constexpr dp::XdpAttachMode kModes[] = {dp::XdpAttachMode::kAuto, dp::XdpAttachMode::kNative,
                                                   dp::XdpAttachMode::kGeneric};
    options.mode = kModes[read_choice(*node, "dataplane.xdp.mode", {"auto", "native", "generic"})];
  }
}

void Loader::read_reflector(const toml::table& root, AgentConfig& config) {
  ReflectorConfig& reflector = config.reflector;
  std::vector<SocketAddress> hosts = {SocketAddress::any(AF_INET, 0), SocketAddress::any(AF_INET6, 0)};
  const toml::table* table = optional_table(root, "reflector", "reflector", "a table [reflector]");
  if (table != nullptr) {
    check_keys(*table, "reflector",
               {"enabled", "listen", "port", "mode", "allow", "rate_limit_pps", "interface", "timestamp_format",
                "auth_key_file", "auth", "answer_short_requests"});
    if (const toml::node* node = table->get("enabled")) reflector.enabled = read_bool(*node, "reflector.enabled");
    if (const toml::node* node = table->get("listen")) {
      constexpr std::string_view kWhat = "an array of addresses like [\"0.0.0.0\", \"::\"]";
      if (!node->is_array() || node->as_array()->empty()) expected(*node, "reflector.listen", kWhat);
      const toml::array& array = *node->as_array();
      hosts.clear();
      for (size_t i = 0; i < array.size(); ++i) {
        const std::string path = indexed("reflector.listen", i);
        SocketAddress host = read_host(*array.get(i), path, "198.18.0.1", true);
        if (std::find(hosts.begin(), hosts.end(), host) != hosts.end()) {
          expected(*array.get(i), path, "an address not listed before");
        }
        if (reflector.enabled) check_dpdk_address(*array.get(i), path, host, true, config.dataplane);
        hosts.push_back(host);
      }
    }
    if (const toml::node* node = table->get("port")) {
      reflector.port = static_cast<uint16_t>(read_integer(*node, "reflector.port", 1, 65535, "a port 1..65535"));
    }
    if (const toml::node* node = table->get("mode")) {
      reflector.stateful = read_choice(*node, "reflector.mode", {"stateful", "stateless"}) == 0;
    }
    if (const toml::node* node = table->get("allow")) reflector.allow = read_prefixes(*node, "reflector.allow", true);
    if (const toml::node* node = table->get("answer_short_requests")) {
      reflector.answer_short_requests = read_bool(*node, "reflector.answer_short_requests");
    }
    if (const toml::node* node = table->get("rate_limit_pps")) {
      reflector.rate_limit_pps = static_cast<uint32_t>(
          read_integer(*node, "reflector.rate_limit_pps", 0, kMaxRateLimitPps,
                       "packets per second per source 0.." + std::to_string(kMaxRateLimitPps) + " (0 = unlimited)"));
    }
    if (const toml::node* node = table->get("interface")) {
      // A backend that cannot bind the reflector to an interface refuses the key below (refuse_reflector): it
      // is not looked up on the host first (a DPDK port is no kernel interface).
      reflector.interface = backend_.reflector.interface.honoured
                                ? read_interface(*node, "reflector.interface")
                                : std::string(read_string(*node, "reflector.interface", "an interface name"));
    }
    if (const toml::node* node = table->get("timestamp_format")) {
      reflector.timestamp_format = read_timestamp_format(*node, "reflector.timestamp_format");
    }
    if (const toml::node* node = table->get("auth_key_file")) {
      reflector.auth_key = read_key_file(*node, "reflector.auth_key_file");
    }
    if (const toml::node* node = table->get("auth")) {
      constexpr std::string_view kWhat = "[[reflector.auth]] entries (an array of tables)";
      if (!node->is_array()) expected(*node, "reflector.auth", kWhat);
      const toml::array& array = *node->as_array();
      for (size_t i = 0; i < array.size(); ++i) {
        const std::string path = indexed("reflector.auth", i);
        const toml::node& element = *array.get(i);
        if (!element.is_table()) expected(element, path, "a table with sources and key_file");
        const toml::table& entry = *element.as_table();
        check_keys(entry, path, {"sources", "key_file"});
        ReflectorSourceKey source_key;
        const toml::node* sources = entry.get("sources");
        if (sources == nullptr) missing(entry, path + ".sources", "an array of prefixes like [\"198.18.1.0/24\"]");
        source_key.sources = read_prefixes(*sources, path + ".sources", false);
        const toml::node* key_file = entry.get("key_file");
        if (key_file == nullptr) missing(entry, path + ".key_file", "a path to a file with a hex HMAC key");
        source_key.key = read_key_file(*key_file, path + ".key_file");
        if (!source_key.key) expected(*key_file, path + ".key_file", "a path to a file with a hex HMAC key");
        reflector.source_keys.push_back(std::move(source_key));
      }
    }
  }
  for (SocketAddress& host : hosts) host.set_port(reflector.port);
  reflector.listen = std::move(hosts);
  if (auto refusal = refuse_reflector(backend_, reflector)) {
    refuse(table != nullptr ? static_cast<const toml::node&>(*table) : root, "reflector", *refusal);
  }
}

void Loader::refuse(const toml::node& table, const std::string& path, const Refusal& refusal) const {
  const toml::node* node = table.is_table() ? table.as_table()->get(refusal.key) : nullptr;
  fail(node != nullptr ? node->source() : table.source(), join(path, refusal.key), refusal.reason);
}

ProbeNodes Loader::read_probe_settings(const toml::table& table, const std::string& path, ProbeSettings& settings) {
  ProbeNodes nodes;
  if (const toml::node* node = table.get("interval")) {
    settings.interval_ns = read_duration(*node, join(path, "interval"), kMillisecond, kHour);
    nodes.interval = node;
  }
  if (const toml::node* node = table.get("window")) {
    settings.window_ns = read_duration(*node, join(path, "window"), kSecond, kHour);
    nodes.window = node;
  }
  if (const toml::node* node = table.get("timeout")) {
    settings.timeout_ns = read_duration(*node, join(path, "timeout"), kMillisecond, kHour);
    nodes.timeout = node;
  }
  if (const toml::node* node = table.get("dscp")) settings.dscp = read_dscp(*node, join(path, "dscp"));
  if (const toml::node* node = table.get("down_after")) {
    settings.down_after =
        static_cast<uint32_t>(read_integer(*node, join(path, "down_after"), 1, kMaxDownAfter,
                                           "a count of lost probes 1.." + std::to_string(kMaxDownAfter)));
  }
  if (const toml::node* node = table.get("timestamp_format")) {
    settings.timestamp_format = read_timestamp_format(*node, join(path, "timestamp_format"));
  }
  if (const toml::node* node = table.get("auth_key_file")) {
    settings.auth_key = read_key_file(*node, join(path, "auth_key_file"));
  }
  if (const toml::node* node = table.get("size")) {
    settings.size = static_cast<uint32_t>(
        read_integer(*node, join(path, "size"), 44, kMaxPacketSize, "a packet size of 44..9000 octets"));
    nodes.size = node;
  }
  return nodes;
}

// Rules between fields. A value written in `table` is blamed where it is written; an inherited one (from
// [probe]) is blamed on the table that inherits it.
void Loader::check_probe_settings(const toml::table& table, const std::string& path, const ProbeSettings& settings,
                                  const ProbeNodes& nodes, bool inherits_from_probe) {
  const auto inherited = [&](std::string_view key) {
    return inherits_from_probe
               ? " (inherited from probe." + std::string(key) + "; set " + std::string(key) + " in this table)"
               : std::string();
  };
  const auto at_most_window = [&](const toml::node* node, std::string_view key, int64_t value) {
    if (value <= settings.window_ns) return;
    const std::string limit = "at most the window (" + format_duration(settings.window_ns) + ")";
    if (node != nullptr) expected(*node, join(path, key), "a duration " + limit);
    if (nodes.window != nullptr) {
      expected(*nodes.window, join(path, "window"),
               "a duration of at least the " + std::string(key) + " (" + format_duration(value) + ")");
    }
    fail(table.source(), join(path, key),
         "expected a duration " + limit + ", got " + quote(format_duration(value)) + inherited(key));
  };
  at_most_window(nodes.interval, "interval", settings.interval_ns);
  at_most_window(nodes.timeout, "timeout", settings.timeout_ns);

  const uint32_t base = static_cast<uint32_t>(stamp::base_length(settings.mode()));
  if (settings.size != 0 && settings.size < base) {
    const std::string what = "a packet size of " + std::to_string(base) + "..9000 octets (authenticated)";
    if (nodes.size != nullptr) expected(*nodes.size, join(path, "size"), what);
    fail(table.source(), join(path, "size"),
         "expected " + what + ", got " + std::to_string(settings.size) + inherited("size"));
  }
}

void Loader::read_peers(const toml::table& root, AgentConfig& config) {
  const toml::node* peers = root.get("peer");
  if (peers == nullptr) return;
  if (!peers->is_array()) expected(*peers, "peer", "[[peer]] entries (an array of tables)");
  const toml::array& array = *peers->as_array();

  struct Seen {
    size_t index;
    uint32_t line;
  };
  std::unordered_map<std::string, Seen> names;
  std::unordered_map<SocketAddress, Seen> addresses;
  const auto where = [&](const Seen& seen) {
    return indexed("peer", seen.index) + " \"" + config.peers[seen.index].name + "\", line " +
           std::to_string(seen.line);
  };

  for (size_t i = 0; i < array.size(); ++i) {
    const std::string path = indexed("peer", i);
    const toml::node& element = *array.get(i);
    if (!element.is_table()) expected(element, path, "a table with name, hub and address");
    const toml::table& table = *element.as_table();
    check_keys(table, path, kPeerKeys);

    PeerConfig peer;
    const toml::node* name = table.get("name");
    if (name == nullptr) missing(table, path + ".name", "a name like \"sg-edge-01\"");
    peer.name = read_name(*name, path + ".name", "sg-edge-01");
    if (auto it = names.find(peer.name); it != names.end()) {
      fail(name->source(), path + ".name",
           "expected a name no other peer uses, got " + describe(*name) + " (also " + where(it->second) + ")");
    }

    const toml::node* hub = table.get("hub");
    if (hub == nullptr) missing(table, path + ".hub", "a hub name like \"sg\"");
    peer.hub = read_name(*hub, path + ".hub", "sg");

    const toml::node* address = table.get("address");
    if (address == nullptr) missing(table, path + ".address", "a numeric IPv4 or IPv6 address like \"198.18.1.1\"");
    peer.address = read_host(*address, path + ".address", "198.18.1.1", false);
    check_dpdk_family(*address, path + ".address", peer.address, config.dataplane);
    uint16_t port = kDefaultStampPort;
    if (const toml::node* node = table.get("port")) {
      port = static_cast<uint16_t>(read_integer(*node, path + ".port", 1, 65535, "a port 1..65535"));
    }
    peer.address.set_port(port);

    peer.probe = config.probe;
    const ProbeNodes nodes = read_probe_settings(table, path, peer.probe);
    check_probe_settings(table, path, peer.probe, nodes, true);
    if (peer.probe.size == 0) peer.probe.size = static_cast<uint32_t>(stamp::base_length(peer.probe.mode()));
    resolve_peer_paths(table, path, config, peer);

    if (auto it = addresses.find(peer.address); it != addresses.end()) {
      fail(address->source(), path + ".address",
           "expected an address and port no other peer uses, got " + peer.address.to_string() + " (also " +
               where(it->second) + ")");
    }
    const uint32_t line = position_of(table.source()).line;
    names.emplace(peer.name, Seen{i, line});
    addresses.emplace(peer.address, Seen{i, line});
    config.peers.push_back(std::move(peer));
  }
}

namespace {
// An HTTP listen address: IPv4 (Debian 12's civetweb, which serves hubprobe's endpoints, is built without
// IPv6) and a port, `default_port` when the text has none. `what` is the example the error shows.
SocketAddress read_listen(const toml::node& node, const std::string& path, uint16_t default_port,
                          std::string_view what) {
  auto listen = SocketAddress::parse(read_string(node, path, what), default_port);
  if (!listen || listen->port() == 0 || !listen->is_v4()) expected(node, path, what);
  return *listen;
}
}  // namespace

void Loader::read_metrics(const toml::table& root, AgentConfig& config) {
  const toml::table* metrics = optional_table(root, "metrics", "metrics", "a table [metrics]");
  if (metrics == nullptr) return;
  check_keys(*metrics, "metrics", {"listen", "web_config_file", "rtt_buckets"});
  if (const toml::node* node = metrics->get("listen")) {
    config.metrics.listen =
        read_listen(*node, "metrics.listen", kDefaultMetricsPort, "an IPv4 address and port like \"127.0.0.1:9862\"");
  }
  if (const toml::node* node = metrics->get("web_config_file")) {
    const std::string file = read_file_path(*node, "metrics.web_config_file",
                                            "a readable web configuration file (YAML, as Prometheus "
                                            "exporters read it)");
    auto web = load_web_config(file);
    // The web configuration's own FILE:LINE:COLUMN: KEY follows this file's.
    if (!web) fail(node->source(), "metrics.web_config_file", web.error().message);
    config.metrics.web = std::move(*web);
  }
  if (const toml::node* node = metrics->get("rtt_buckets")) {
    static constexpr uint32_t kChoices[] = {0, 1, 2, 4, 8, 16};
    constexpr std::string_view kWhat = "buckets per doubling: 16, 8, 4, 2, 1 or 0 (no histogram)";
    const int64_t n = read_integer(*node, "metrics.rtt_buckets", 0, 16, kWhat);
    if (std::find(std::begin(kChoices), std::end(kChoices), n) == std::end(kChoices)) {
      expected(*node, "metrics.rtt_buckets", kWhat);
    }
    config.metrics.rtt_buckets = static_cast<uint32_t>(n);
  }
}

void Loader::read_costmap(const toml::table& root, AgentConfig& config) {
  const toml::table* costmap = optional_table(root, "costmap", "costmap", "a table [costmap]");
  if (costmap == nullptr) return;
  check_keys(*costmap, "costmap", {"listen", "base_path", "public_url", "threads", "max_wait"});
  if (const toml::node* node = costmap->get("listen")) {
    config.costmap.listen =
        read_listen(*node, "costmap.listen", kDefaultCostmapPort, "an IPv4 address and port like \"0.0.0.0:9863\"");
  }
  if (const toml::node* node = costmap->get("base_path")) {
    constexpr std::string_view kWhat = "a path like \"/alto\" (starting with '/', not ending with one)";
    const std::string path(read_string(*node, "costmap.base_path", kWhat));
    if (path.size() < 2 || path.front() != '/' || path.back() == '/' ||
        path.find_first_of("?# ") != std::string::npos) {
      expected(*node, "costmap.base_path", kWhat);
    }
    config.costmap.base_path = path;
  }
  if (const toml::node* node = costmap->get("public_url")) {
    constexpr std::string_view kWhat = "an http:// or https:// URL like \"https://alto.example.net\"";
    const std::string url(read_string(*node, "costmap.public_url", kWhat));
    // "" is the default: no public URL, relative URIs.
    if (!url.empty() &&
        ((url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) || url.find(' ') != std::string::npos)) {
      expected(*node, "costmap.public_url", kWhat);
    }
    config.costmap.public_url = url;
  }
  if (const toml::node* node = costmap->get("threads")) {
    config.costmap.threads = static_cast<int>(read_integer(*node, "costmap.threads", 1, 1024, "an integer 1..1024"));
  }
  if (const toml::node* node = costmap->get("max_wait")) {
    config.costmap.max_wait_ns = read_duration(*node, "costmap.max_wait", 0, 3600 * kSecond);
  }
}

void Loader::read_logging(const toml::table& root, AgentConfig& config) {
  const toml::table* logging = optional_table(root, "logging", "logging", "a table [logging]");
  if (logging == nullptr) return;
  check_keys(*logging, "logging", {"level"});
  if (const toml::node* node = logging->get("level")) {
    config.logging.level = static_cast<LogLevel>(
        read_choice(*node, "logging.level", {"trace", "debug", "info", "warn", "error", "critical", "off"}));
  }
}

}  // namespace hubprobe::config_detail
