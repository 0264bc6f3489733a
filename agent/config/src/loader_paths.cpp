// SPDX-License-Identifier: Apache-2.0
// The loader's [[path]] and [sla.NAME] sections, and how a peer's paths and SLA class are resolved.
#include <algorithm>

#include "config_limits.h"
#include "host_checks.h"
#include "loader.h"
#include "toml_report.h"
#include "value_readers.h"

namespace hubprobe::config_detail {
namespace {

bool same_family_or_unset(const SocketAddress& source, int family) {
  return !source.valid() || source.family() == family;
}

}  // namespace

void Loader::read_paths(const toml::table& root, AgentConfig& config) {
  const toml::node* paths = root.get("path");
  if (paths == nullptr) return;
  if (!paths->is_array()) expected(*paths, "path", "[[path]] entries (an array of tables)");
  const toml::array& array = *paths->as_array();
  for (size_t i = 0; i < array.size(); ++i) {
    const std::string path = indexed("path", i);
    const toml::node& element = *array.get(i);
    if (!element.is_table()) expected(element, path, "a table with a name and how probes are pinned to the path");
    const toml::table& table = *element.as_table();
    check_keys(table, path,
               {"name", "interface", "source", "fwmark", "dscp", "source_ports", "hubs", "vlan", "next_hop"});
    PathConfig entry;
    const toml::node* name = table.get("name");
    if (name == nullptr) missing(table, path + ".name", "a name like \"backbone-a\"");
    entry.name = read_name(*name, path + ".name", "backbone-a");
    for (const PathConfig& other : config.paths) {
      if (other.name == entry.name) expected(*name, path + ".name", "a name no other path uses");
    }
    if (const toml::node* node = table.get("interface")) {
      // A backend that cannot pin an interface refuses the key below (refuse_path): it is not looked up on the
      // host first (a DPDK port is no kernel interface).
      entry.interface = backend_.path.interface.honoured
                            ? read_interface(*node, path + ".interface")
                            : std::string(read_string(*node, path + ".interface", "an interface name"));
    }
    if (const toml::node* node = table.get("source")) {
      entry.source = read_host(*node, path + ".source", "198.18.1.1", false);
      entry.source.set_port(0);
      check_dpdk_address(*node, path + ".source", entry.source, false, config.dataplane);
    }
    if (const toml::node* node = table.get("fwmark")) {
      entry.fwmark = static_cast<uint32_t>(
          read_integer(*node, path + ".fwmark", 0, UINT32_MAX, "a firewall mark 0..4294967295 (0 = none)"));
    }
    if (const toml::node* node = table.get("dscp")) entry.dscp = read_dscp(*node, path + ".dscp");
    if (const toml::node* node = table.get("source_ports")) {
      entry.source_ports = read_source_ports(*node, path + ".source_ports");
    }
    if (const toml::node* node = table.get("hubs")) entry.hubs = read_names(*node, path + ".hubs", "sh");
    // vlan and next_hop are only known to be refused: no backend of this build honours them.
    const PathKeysWithoutField written{table.get("vlan") != nullptr, table.get("next_hop") != nullptr};
    if (auto refusal = refuse_path(backend_, entry, written)) refuse(table, path, *refusal);
    config.paths.push_back(std::move(entry));
  }
}

void Loader::read_sla(const toml::table& root, AgentConfig& config) {
  SlaClass defaults;
  config.sla["default"] = defaults;
  const toml::table* classes = optional_table(root, "sla", "sla", "[sla.NAME] tables");
  if (classes == nullptr) return;
  for (auto&& [key, value] : *classes) {
    const std::string path = join("sla", key.str());
    if (!value.is_table()) expected(value, path, "a table [" + path + "] of SLA thresholds");
    if (!valid_name(key.str())) {
      fail(key.source(), path,
           "expected an SLA class name of letters, digits, '.', '_' or '-' (at most " + std::to_string(kMaxNameLength) +
               ", starting with a letter or digit) like \"gold\"");
    }
    const toml::table& table = *value.as_table();
    check_keys(table, path,
               {"rtt_p99", "jitter", "loss", "min_samples", "down_after", "window", "hold_down", "switch_margin",
                "switch_margin_ratio", "switch_after", "loss_penalty"});
    SlaClass sla = defaults;
    sla.name = std::string(key.str());
    if (const toml::node* node = table.get("rtt_p99")) {
      sla.rtt_p99_ns = read_duration(*node, path + ".rtt_p99", 0, kHour);
    }
    if (const toml::node* node = table.get("jitter")) sla.jitter_ns = read_duration(*node, path + ".jitter", 0, kHour);
    if (const toml::node* node = table.get("loss")) {
      constexpr std::string_view kWhat = "a loss ratio 0..1 like 0.01 or a percentage like \"1%\"";
      double ratio = -1;
      if (node->is_floating_point() || node->is_integer()) {
        ratio = node->is_integer() ? static_cast<double>(node->as_integer()->get()) : node->as_floating_point()->get();
      } else if (node->is_string()) {
        const std::string text = node->as_string()->get();
        if (text.size() >= 2 && text.back() == '%') {
          try {
            size_t used = 0;
            ratio = std::stod(text.substr(0, text.size() - 1), &used) / 100.0;
            if (used != text.size() - 1) ratio = -1;
          } catch (const std::exception&) {
            ratio = -1;
          }
        }
      }
      if (!(ratio >= 0 && ratio <= 1)) expected(*node, path + ".loss", kWhat);
      sla.loss_ratio = ratio;
    }
    if (const toml::node* node = table.get("min_samples")) {
      sla.min_samples =
          static_cast<uint32_t>(read_integer(*node, path + ".min_samples", 1, 1'000'000, "a count 1..1000000"));
    }
    if (const toml::node* node = table.get("down_after")) {
      (void)read_integer(*node, path + ".down_after", 1, kMaxDownAfter,
                         "a count of lost probes 1.." + std::to_string(kMaxDownAfter));
      sla_down_after_[sla.name] = node;
    }
    if (const toml::node* node = table.get("window"))
      sla.window_ns = read_duration(*node, path + ".window", kSecond, kHour);
    if (const toml::node* node = table.get("hold_down")) {
      sla.hold_down_ns = read_duration(*node, path + ".hold_down", 0, kHour);
    }
    if (const toml::node* node = table.get("switch_margin")) {
      sla.switch_margin_ns = read_duration(*node, path + ".switch_margin", 0, kSecond);
    }
    if (const toml::node* node = table.get("switch_margin_ratio")) {
      constexpr std::string_view kWhat = "a ratio 0..1 like 0.02";
      double ratio = -1;
      if (node->is_floating_point()) ratio = node->as_floating_point()->get();
      if (node->is_integer()) ratio = static_cast<double>(node->as_integer()->get());
      if (!(ratio >= 0 && ratio <= 1)) expected(*node, path + ".switch_margin_ratio", kWhat);
      sla.switch_margin_ratio = ratio;
    }
    if (const toml::node* node = table.get("switch_after")) {
      sla.switch_after_ns = read_duration(*node, path + ".switch_after", 0, kHour);
    }
    if (const toml::node* node = table.get("loss_penalty")) {
      sla.loss_penalty_ns = read_duration(*node, path + ".loss_penalty", 0, kHour);
    }
    config.sla[sla.name] = sla;
  }
}

// [sla.NAME].down_after is where the path's threshold once was. A path is down when its peer is (one
// judgement, by the peer's down_after), so the key is accepted only when it says what the peers of the class
// say: each [[peer]] that names it, or [probe] when none does (peers found in etcd take [probe]'s).
void Loader::check_sla_down_after(const AgentConfig& config) const {
  for (const auto& [name, node] : sla_down_after_) {
    const int64_t value = node->as_integer()->get();
    std::string other;
    bool named = false;
    for (const PeerConfig& peer : config.peers) {
      if (peer.sla != name) continue;
      named = true;
      if (peer.probe.down_after != value && other.empty()) {
        other = "peer \"" + peer.name + "\" has " + std::to_string(peer.probe.down_after);
      }
    }
    if (!named && config.probe.down_after != value) other = "[probe] has " + std::to_string(config.probe.down_after);
    if (other.empty()) continue;
    fail(node->source(), join(join("sla", name), "down_after"),
         "expected the down_after of the peers this class judges (" + other + "), got " + std::to_string(value) +
             " (a path is down when its peer is: set down_after in [probe] or [[peer]], and leave it out here)");
  }
}

void Loader::resolve_peer_paths(const toml::table& table, const std::string& path, const AgentConfig& config,
                                PeerConfig& peer) {
  const int family = peer.address.family();
  if (const toml::node* node = table.get("paths")) {
    const std::vector<std::string> names = read_names(*node, path + ".paths", "backbone-a");
    if (names.empty()) expected(*node, path + ".paths", "at least one path name (or leave paths out)");
    for (size_t i = 0; i < names.size(); ++i) {
      const auto it = std::find_if(config.paths.begin(), config.paths.end(),
                                   [&](const PathConfig& candidate) { return candidate.name == names[i]; });
      const toml::node& element = *node->as_array()->get(i);
      if (it == config.paths.end()) {
        if (names[i] == "default") {
          peer.paths.push_back(PathConfig{});
          continue;
        }
        expected(element, indexed(path + ".paths", i), "the name of a [[path]] (or \"default\")");
      }
      if (!same_family_or_unset(it->source, family)) {
        expected(element, indexed(path + ".paths", i),
                 "a path whose source address has the peer's address family (path \"" + it->name + "\" has " +
                     it->source.host() + ")");
      }
      peer.paths.push_back(*it);
    }
  } else {
    peer.paths = default_paths_for(config.paths, peer.hub, family);
  }
  if (const toml::node* node = table.get("sla")) {
    peer.sla = read_name(*node, path + ".sla", "gold");
    if (config.sla.count(peer.sla) == 0) expected(*node, path + ".sla", "the name of an [sla.NAME] table");
  }
  // One selector per destination hub: its peers share one SLA class.
  for (const PeerConfig& other : config.peers) {
    if (other.hub == peer.hub && other.sla != peer.sla) {
      fail(table.source(), path + ".sla",
           "expected the SLA class of the other peers of hub \"" + peer.hub + "\" (\"" + other.sla + "\", peer \"" +
               other.name + "\"), got \"" + peer.sla + "\"");
    }
  }
}

}  // namespace hubprobe::config_detail
