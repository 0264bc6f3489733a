// SPDX-License-Identifier: Apache-2.0
// The TOML loader: one method per section of the file, each reading its keys with the typed readers
// (value_readers.h) and the host checks (host_checks.h), and throwing ConfigError (toml_report.h) at the
// first problem. Internal to hubprobe_config; parse_config() is the public entry point.
#pragma once

#include <toml++/toml.h>

#include <array>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "hubprobe/backend_support.h"
#include "hubprobe/backend_traits.h"
#include "hubprobe/config.h"

namespace hubprobe::config_detail {

inline constexpr std::array<std::string_view, 8> kProbeKeys = {
    "interval", "size", "dscp", "timeout", "window", "down_after", "timestamp_format", "auth_key_file"};
inline constexpr std::array<std::string_view, 14> kPeerKeys = {
    "name",   "hub",        "address",          "port",          "interval", "size", "dscp", "timeout",
    "window", "down_after", "timestamp_format", "auth_key_file", "paths",    "sla"};

// Where a peer's effective probe settings were written in the table being read (null = inherited).
struct ProbeNodes {
  const toml::node* interval = nullptr;
  const toml::node* size = nullptr;
  const toml::node* timeout = nullptr;
  const toml::node* window = nullptr;
};

class Loader {
 public:
  explicit Loader(std::filesystem::path base_directory) : base_directory_(std::move(base_directory)) {}

  AgentConfig load(const toml::table& root);

 private:
  KeyFile read_key_file(const toml::node& node, const std::string& path);
  void read_agent(const toml::table& root, AgentConfig& config);
  void read_dataplane(const toml::table& root, AgentConfig& config);
  void read_kernel_options(const toml::table& dataplane, KernelDataplaneOptions& options);
  void read_xdp_options(const toml::table& dataplane, const toml::table* xdp, dp::XdpOptions& options);
  void read_dpdk_options(const toml::table& dataplane, const toml::table* dpdk, dp::DpdkOptions& options);
  /// With backend "dpdk": `host` (at `node`) must be one of the port's addresses, or a wildcard (0.0.0.0, ::)
  /// when `allow_wildcard`. Nothing with another backend.
  void check_dpdk_address(const toml::node& node, const std::string& path, const SocketAddress& host,
                          bool allow_wildcard, const DataplaneConfig& dataplane) const;
  /// With backend "dpdk": the port has an address of `host`'s family (a peer it can reach at all).
  void check_dpdk_family(const toml::node& node, const std::string& path, const SocketAddress& host,
                         const DataplaneConfig& dataplane) const;
  void read_reflector(const toml::table& root, AgentConfig& config);
  ProbeNodes read_probe_settings(const toml::table& table, const std::string& path, ProbeSettings& settings);
  void check_probe_settings(const toml::table& table, const std::string& path, const ProbeSettings& settings,
                            const ProbeNodes& nodes, bool inherits_from_probe);
  void read_paths(const toml::table& root, AgentConfig& config);
  void read_sla(const toml::table& root, AgentConfig& config);
  void check_sla_down_after(const AgentConfig& config) const;
  void resolve_peer_paths(const toml::table& table, const std::string& path, const AgentConfig& config,
                          PeerConfig& peer);
  /// Fails at `key` of `table` (at the table when the key is not written: a default) with the refusal.
  [[noreturn]] void refuse(const toml::node& table, const std::string& path, const Refusal& refusal) const;
  void read_scheduler(const toml::table& root, AgentConfig& config);
  HttpSinkConfig read_http_sink(const toml::table& entry, const std::string& path, const SchedulerConfig& scheduler);
  EtcdSinkConfig read_etcd_sink(const toml::table& entry, const std::string& path);
  void read_tls_files(const toml::table& entry, const std::string& path, std::string& ca, std::string& cert,
                      std::string& key);
  std::string read_bearer_token(const toml::node& node, const std::string& path, const std::string& file);
  std::string read_file_path(const toml::node& node, const std::string& path, std::string_view what);
  void read_peers(const toml::table& root, AgentConfig& config);
  void read_metrics(const toml::table& root, AgentConfig& config);
  void read_logging(const toml::table& root, AgentConfig& config);
  void read_costmap(const toml::table& root, AgentConfig& config);

  std::filesystem::path base_directory_;
  dp::BackendTraits backend_;  ///< of [dataplane].backend: what [[path]] and [reflector] may ask for
  std::map<std::string, std::shared_ptr<const stamp::HmacKey>> keys_;  // by resolved path: read once
  std::map<std::string, const toml::node*> sla_down_after_;            // [sla.NAME].down_after, by NAME
};

}  // namespace hubprobe::config_detail
