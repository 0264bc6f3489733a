// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/discovery.h"

#include <algorithm>
#include <map>
#include <unordered_set>

namespace hubprobe {
namespace {

using nlohmann::json;

// A string member that is a name as the file accepts it.
Result<std::string> name_member(const json& registration, const char* member) {
  const auto it = registration.find(member);
  if (it == registration.end()) return make_error(std::string("no \"") + member + "\"");
  if (!it->is_string() || !valid_name(it->get_ref<const std::string&>())) {
    return make_error(std::string("\"") + member + "\" is not a name: " + it->dump());
  }
  return it->get<std::string>();
}

// The SLA class of the configured peers of `hub` ("default" when there are none).
std::string sla_of_hub(const AgentConfig& config, const std::string& hub) {
  for (const PeerConfig& peer : config.peers) {
    if (peer.hub == hub) return peer.sla;
  }
  return "default";
}

}  // namespace

json make_registration(const AgentConfig& config, const EtcdSinkConfig& sink) {
  json registration = {{"id", config.agent.id},
                       {"hub", config.agent.hub},
                       {"metrics", config.metrics.listen.to_string()},
                       {"reflector_port", config.reflector.port}};
  if (!sink.advertise.empty()) registration["address"] = sink.advertise;
  return registration;
}

Result<Registration> parse_registration(std::string_view id_from_key, std::string_view value) {
  const json registration = json::parse(value, nullptr, false);
  if (registration.is_discarded() || !registration.is_object()) return make_error("not a JSON object");
  Registration out;
  auto id = name_member(registration, "id");
  if (!id) return id.error();
  if (*id != id_from_key) return make_error("id \"" + *id + "\" differs from the key");
  auto hub = name_member(registration, "hub");
  if (!hub) return hub.error();
  out.id = std::move(*id);
  out.hub = std::move(*hub);

  std::optional<SocketAddress> host;
  if (const auto address = registration.find("address"); address != registration.end()) {
    if (!address->is_string()) return make_error("\"address\" is not a string: " + address->dump());
    auto parsed = parse_unicast_host(address->get_ref<const std::string&>());
    if (!parsed) return make_error("\"address\" is " + parsed.error().message);
    host = *parsed;
  }
  const auto port = registration.find("reflector_port");
  if (port == registration.end()) return make_error("no \"reflector_port\"");
  if (!port->is_number_integer() || port->get<int64_t>() < 1 || port->get<int64_t>() > 65535) {
    return make_error("\"reflector_port\" is not a port 1..65535: " + port->dump());
  }
  if (host) {
    host->set_port(static_cast<uint16_t>(port->get<int64_t>()));
    out.address = *host;
  }
  return out;
}

Result<PeerConfig> peer_from_registration(std::string_view id_from_key, std::string_view value,
                                          const AgentConfig& config) {
  auto registration = parse_registration(id_from_key, value);
  if (!registration) return registration.error();
  if (registration->id == config.agent.id) return make_error("this agent's own registration");
  if (!registration->address) return make_error("no \"address\" (the agent does not set advertise)");
  const SocketAddress target = *registration->address;

  for (const EtcdSinkConfig& sink : config.scheduler.etcd) {
    if (!sink.advertise.empty() && sink.advertise == target.host() && config.reflector.port == target.port()) {
      return make_error("this agent's own address " + target.to_string() + " (registered by another id)");
    }
  }
  for (const PeerConfig& peer : config.peers) {
    if (peer.name == registration->id) return make_error("a configured [[peer]] has this name (the file wins)");
    if (peer.address == target) {
      return make_error("configured [[peer]] \"" + peer.name + "\" has the address " + target.to_string() +
                        " (the file wins)");
    }
  }

  PeerConfig peer;
  peer.name = std::move(registration->id);
  peer.hub = std::move(registration->hub);
  peer.address = target;
  peer.probe = config.probe;
  if (peer.probe.size == 0) peer.probe.size = static_cast<uint32_t>(stamp::base_length(peer.probe.mode()));
  peer.paths = default_paths_for(config.paths, peer.hub, peer.address.family());
  peer.sla = sla_of_hub(config, peer.hub);
  return peer;
}

DiscoveredPeers discover_peers(const std::vector<EtcdKeyValue>& registrations, const std::string& prefix,
                               const AgentConfig& config) {
  const std::string base = registrations_prefix(prefix);
  DiscoveredPeers found;
  std::unordered_set<SocketAddress> addresses;
  for (const EtcdKeyValue& entry : registrations) {
    const auto ignore = [&](const std::string& reason) { found.ignored.push_back({entry.key, reason}); };
    if (entry.key.rfind(base, 0) != 0) {
      ignore("not under " + base);
      continue;
    }
    const std::string id = entry.key.substr(base.size());
    if (!valid_name(id)) {
      ignore("the key does not end in an agent id");
      continue;
    }
    if (id == config.agent.id) continue;  // this agent's own registration: not a peer, and nothing wrong
    auto peer = peer_from_registration(id, entry.value, config);
    if (!peer) {
      ignore(peer.error().message);
      continue;
    }
    if (!addresses.insert(peer->address).second) {
      ignore("another registration has the address " + peer->address.to_string());
      continue;
    }
    found.peers.push_back(std::move(*peer));
  }
  return found;
}

uint64_t rendezvous_score(std::string_view own_id, std::string_view peer_id, uint64_t epoch) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a offset basis
  const auto mix = [&h](uint8_t byte) {
    h ^= byte;
    h *= 0x100000001b3ULL;  // FNV prime
  };
  for (const char c : own_id) mix(static_cast<uint8_t>(c));
  mix(0);  // "ab" + "c" and "a" + "bc" differ
  for (const char c : peer_id) mix(static_cast<uint8_t>(c));
  mix(0);
  for (int i = 0; i < 8; ++i) mix(static_cast<uint8_t>(epoch >> (8 * i)));
  // splitmix64's finaliser: FNV-1a alone leaves the high bits weak for short inputs.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

uint64_t plan_epoch(WallNs now, int64_t rotate_ns) {
  if (rotate_ns <= 0 || now < 0) return 0;
  return static_cast<uint64_t>(now / rotate_ns);
}

std::vector<PeerConfig> plan_peers(std::vector<PeerConfig> discovered, std::string_view own_id,
                                   std::string_view own_hub, uint32_t per_hub, uint64_t epoch) {
  if (per_hub == 0) return discovered;
  // Per other hub, its peers by score, best first; the first per_hub of each stay.
  std::map<std::string, std::vector<std::pair<uint64_t, size_t>>> by_hub;
  for (size_t i = 0; i < discovered.size(); ++i) {
    if (discovered[i].hub == own_hub) continue;
    by_hub[discovered[i].hub].push_back({rendezvous_score(own_id, discovered[i].name, epoch), i});
  }
  std::vector<bool> keep(discovered.size(), false);
  for (size_t i = 0; i < discovered.size(); ++i) keep[i] = discovered[i].hub == own_hub;
  for (auto& [hub, scored] : by_hub) {
    const size_t n = std::min<size_t>(per_hub, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(n), scored.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t j = 0; j < n; ++j) keep[scored[j].second] = true;
  }
  std::vector<PeerConfig> planned;
  for (size_t i = 0; i < discovered.size(); ++i) {
    if (keep[i]) planned.push_back(std::move(discovered[i]));
  }
  return planned;
}

}  // namespace hubprobe
