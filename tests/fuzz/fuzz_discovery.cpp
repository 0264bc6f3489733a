// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for discovery (discovery.h): registrations as etcd returns them, read by an agent that
// has a configured peer, paths and an advertised address. The input is a list of entries separated by
// 0x1e, each KEY 0x1f VALUE (a value without 0x1f goes under PREFIX/agents/fuzz-N). Any list gives peers
// and reasons, never a crash or an escaping exception; every peer found is one this agent may probe (a
// name, a unicast address and a port, not this agent, not a configured peer's name or address, each
// address once), and what it advertises reads back as the same peer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "hubprobe/config.h"
#include "hubprobe/discovery.h"

namespace {

using namespace hubprobe;

constexpr std::string_view kConfig = R"([agent]
id = "gz-edge-01"
hub = "gz"

[probe]
interval = "50ms"
window = "10s"

[[path]]
name = "uplink-a"
source = "198.18.1.1"

[[path]]
name = "uplink-b"
fwmark = 2
hubs = ["sh"]

[[path]]
name = "v6-only"
source = "2001:db8::1"

[sla.gold]
rtt_p99 = "30ms"

[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
sla = "gold"

[[scheduler.etcd]]
endpoints = ["http://198.18.0.254:2379"]
prefix = "/fleet/"
advertise = "198.18.0.1"
discover = true
)";

const AgentConfig& agent() {
  static const AgentConfig config = parse_config(kConfig, "fuzz.toml").value();
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const AgentConfig& config = agent();
  const std::string& prefix = config.scheduler.etcd.front().prefix;
  const std::string base = registrations_prefix(prefix);
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  std::vector<EtcdKeyValue> registrations;
  for (size_t start = 0; start <= input.size() && registrations.size() < 16;) {
    size_t end = input.find('\x1e', start);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view entry = input.substr(start, end - start);
    EtcdKeyValue kv;
    if (const size_t split = entry.find('\x1f'); split != std::string_view::npos) {
      kv.key = std::string(entry.substr(0, split));
      kv.value = std::string(entry.substr(split + 1));
    } else {
      kv.key = base + "fuzz-" + std::to_string(registrations.size());
      kv.value = std::string(entry);
    }
    registrations.push_back(std::move(kv));
    start = end + 1;
  }

  const DiscoveredPeers found = discover_peers(registrations, prefix, config);
  if (found.peers.size() + found.ignored.size() > registrations.size()) abort();
  for (const auto& ignored : found.ignored) {
    if (ignored.reason.empty()) abort();
  }
  for (size_t i = 0; i < found.peers.size(); ++i) {
    const PeerConfig& peer = found.peers[i];
    if (!valid_name(peer.name) || !valid_name(peer.hub) || peer.name == config.agent.id) abort();
    if (!peer.address.valid() || peer.address.port() == 0) abort();
    if (peer.probe.size < stamp::base_length(peer.probe.mode())) abort();
    for (const PeerConfig& configured : config.peers) {
      if (configured.name == peer.name || configured.address == peer.address) abort();
    }
    for (size_t j = 0; j < i; ++j) {
      if (found.peers[j].address == peer.address) abort();
    }
    // What this peer would advertise about itself reads back as the same peer.
    const nlohmann::json registration = {{"id", peer.name},
                                         {"hub", peer.hub},
                                         {"address", peer.address.host()},
                                         {"reflector_port", peer.address.port()}};
    const auto again = peer_from_registration(peer.name, registration.dump(), config);
    if (!again || !(again->address == peer.address) || again->hub != peer.hub || again->sla != peer.sla) abort();
  }
  return 0;
}
