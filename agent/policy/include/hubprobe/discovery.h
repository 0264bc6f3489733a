// SPDX-License-Identifier: Apache-2.0
// Peer discovery through etcd (docs/design.md "Path preferences", docs/scheduler-api.md "etcd sink"): every agent
// registers under PREFIX/agents/AGENT_ID, under its lease, and an agent with `discover = true` probes the agents it
// finds there. This header is the pure part: what a registration holds, and how the registrations read
// from etcd become peers of this agent. The Agent polls etcd and applies the result (agent.h).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hubprobe/config.h"
#include "hubprobe/result.h"
#include "hubprobe/sink_config.h"

namespace hubprobe {

/// The registration written under PREFIX/agents/AGENT_ID by an etcd sink with register = true:
/// {"id", "hub", "metrics", "reflector_port"} and, when the sink has `advertise`, "address".
nlohmann::json make_registration(const AgentConfig& config, const EtcdSinkConfig& sink);

/// What a registration says about an agent, read without any agent's configuration (discovery and
/// `hubprobe costmap` both read registrations through this).
struct Registration {
  std::string id, hub;
  /// "address" with "reflector_port" as its port; absent when the agent does not set `advertise`.
  std::optional<SocketAddress> address;
};

/// Reads a registration: a JSON object whose "id" (the key's last part, `id_from_key`) and "hub" are names
/// as the file accepts them, "address" (optional) a numeric unicast address without a port, and
/// "reflector_port" a port 1..65535. The error says which member is wrong.
Result<Registration> parse_registration(std::string_view id_from_key, std::string_view value);

/// One registration as a peer of `config`, or why it is not one. `id_from_key` is the last part of the
/// key (PREFIX/agents/ID); the value is the registration's JSON.
///
/// The peer: name = the registration's id, hub = its hub, address = address:reflector_port, probe settings =
/// the [probe] defaults, paths = default_paths_for() (as for a [[peer]] without `paths`), SLA class =
/// "default", or the class of the configured peers of the same hub (one selector ranks a hub's paths, and its
/// peers share one class).
///
/// Refused: not a JSON object; id, hub, address or reflector_port missing or malformed (names as in the
/// file, a numeric unicast address without a port, a port 1..65535); an id that differs from the key; this
/// agent's own id or advertised address; a name or address:port of a configured [[peer]] (the file wins).
Result<PeerConfig> peer_from_registration(std::string_view id_from_key, std::string_view value,
                                          const AgentConfig& config);

/// A registration that did not become a peer, and why (for /status and the log).
struct IgnoredRegistration {
  std::string key;
  std::string reason;
  bool operator==(const IgnoredRegistration&) const = default;
};

struct DiscoveredPeers {
  std::vector<PeerConfig> peers;  ///< in key order (etcd returns keys sorted)
  std::vector<IgnoredRegistration> ignored;
};

/// Every key under PREFIX/agents/ (as the etcd client returns them) through
/// peer_from_registration(); also refused: a key that is not PREFIX/agents/NAME, and a registration whose
/// address:port an earlier key already uses. This agent's own key is skipped without a reason (every
/// registering agent finds itself there).
DiscoveredPeers discover_peers(const std::vector<EtcdKeyValue>& registrations, const std::string& prefix,
                               const AgentConfig& config);

}  // namespace hubprobe
