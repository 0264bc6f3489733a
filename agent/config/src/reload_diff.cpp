// SPDX-License-Identifier: Apache-2.0
// What changed between two configurations (hubprobe/config.h: same_session, diff_configs).
#include "hubprobe/config.h"

namespace hubprobe {

bool same_session(const PeerConfig& before, const PeerConfig& after) {
  const ProbeSettings& a = before.probe;
  const ProbeSettings& b = after.probe;
  const bool same_key = (!a.auth_key.key && !b.auth_key.key) ||
                        (a.auth_key.key && b.auth_key.key && a.auth_key.key->bytes == b.auth_key.key->bytes);
  return before.name == after.name && before.hub == after.hub && before.address == after.address && same_key &&
         a.interval_ns == b.interval_ns && a.size == b.size && a.dscp == b.dscp && a.timeout_ns == b.timeout_ns &&
         a.timestamp_format == b.timestamp_format && before.paths == after.paths;
}

bool ConfigDiff::empty() const {
  return peers_added.empty() && peers_removed.empty() && peers_restarted.empty() && peers_updated.empty() &&
         !agent_changed && !dataplane_changed && !reflector_changed && !probe_defaults_changed && !metrics_changed &&
         !logging_changed && !sla_changed && !scheduler_changed;
}

ConfigDiff diff_configs(const AgentConfig& before, const AgentConfig& after) {
  ConfigDiff diff;
  diff.agent_changed = !(before.agent == after.agent);
  diff.dataplane_changed = !(before.dataplane == after.dataplane);
  diff.reflector_changed = !(before.reflector == after.reflector);
  diff.probe_defaults_changed = !(before.probe == after.probe);
  diff.metrics_changed = !(before.metrics == after.metrics);
  diff.logging_changed = !(before.logging == after.logging);
  diff.sla_changed = before.sla != after.sla;
  diff.scheduler_changed = !(before.scheduler == after.scheduler);
  for (const PeerConfig& peer : after.peers) {
    const PeerConfig* old = before.find_peer(peer.name);
    if (old == nullptr) {
      diff.peers_added.push_back(peer.name);
    } else if (!same_session(*old, peer)) {
      diff.peers_restarted.push_back(peer.name);
    } else if (!(*old == peer)) {
      diff.peers_updated.push_back(peer.name);
    } else {
      diff.peers_unchanged.push_back(peer.name);
    }
  }
  for (const PeerConfig& peer : before.peers) {
    if (after.find_peer(peer.name) == nullptr) diff.peers_removed.push_back(peer.name);
  }
  return diff;
}

}  // namespace hubprobe
