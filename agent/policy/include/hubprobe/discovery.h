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

#include "hubprobe/clock.h"
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

/// The probe plan. With `discover = true` every agent would probe every other: N² sessions for N agents.
/// The plan keeps every peer of this agent's own hub and, of each other hub, the `per_hub` peers with the
/// highest rendezvous score (rendezvous_score(own id, peer id, epoch)): the choice is stable while the
/// registrations and the epoch stay (an agent coming or going moves only the choices it wins or loses),
/// spread (each agent of a hub is picked by about as many agents as any other), and drawn afresh each
/// epoch, so every pair is measured over time. An agent's sessions are O(hubs × per_hub + own hub), not
/// O(N). per_hub = 0: every peer. Peers keep their order.
std::vector<PeerConfig> plan_peers(std::vector<PeerConfig> discovered, std::string_view own_id,
                                   std::string_view own_hub, uint32_t per_hub, uint64_t epoch);
/// A 64-bit hash of the three, the same on every host and build (FNV-1a, then a finaliser that spreads
/// every input bit over the result).
uint64_t rendezvous_score(std::string_view own_id, std::string_view peer_id, uint64_t epoch);
/// The plan's epoch at wall time `now`: whole `rotate_ns` periods since the Unix epoch, so agents agree on
/// it within their clocks' error.
uint64_t plan_epoch(WallNs now, int64_t rotate_ns);

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
