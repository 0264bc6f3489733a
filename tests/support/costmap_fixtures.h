// SPDX-License-Identifier: Apache-2.0
// Shared inputs of the `hubprobe costmap` tests (tests/unit/costmap_test.cpp, the component tests of its
// schemas and of the service): preference documents made by the agents' own document maker
// (make_preference_document) and registrations as the etcd sink writes them.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "preference_fixtures.h"

namespace hubprobe {
namespace {

// One candidate toward a destination hub, for costmap_document().
struct PathSpec {
  std::string peer, path;
  PathState state = PathState::kOk;
  double rtt_s = 0.020;
  bool preferred = false;
  double lossrate = 0;       // 0..1
  double delay_ow_s = kNaN;  // published only when given
  bool eligible = true;      // for an ok path: the hold-down is over
};

// A document of agent `id` in `hub`: per destination hub its candidates, ranked as given.
inline std::string costmap_document(const std::string& id, const std::string& hub, uint64_t generation,
                                    const std::map<std::string, std::vector<PathSpec>>& destinations,
                                    bool stale = false, WallNs timestamp = kNow) {
  PreferenceDocumentInput input;
  input.agent_id = id;
  input.agent_hub = hub;
  input.generation = generation;
  input.timestamp = timestamp;
  input.stale = stale;
  for (const auto& [to, paths] : destinations) {
    DestinationPreferences destination;
    destination.hub = to;
    uint32_t rank = 1;
    for (const PathSpec& spec : paths) {
      CandidateView view = candidate(spec.peer, spec.path, rank++, spec.state, spec.rtt_s);
      view.eligible = spec.state == PathState::kOk && spec.eligible;
      view.lossrate = spec.lossrate;
      view.delay_ow_s = spec.delay_ow_s;
      view.score_s = spec.rtt_s + spec.lossrate * 0.1;
      view.rtt_p99_s = spec.rtt_s * 1.1;
      view.delay_variation_s = 0.00004;
      if (spec.state == PathState::kDown) {
        view.delay_rt_s = kNaN;
        view.rtt_p99_s = kNaN;
        view.delay_variation_s = kNaN;
        view.score_s = kNaN;
        view.lossrate = 1;
      }
      if (spec.preferred) destination.preferred = view.id;
      destination.ranked.push_back(view);
    }
    input.destinations.push_back(destination);
  }
  return make_preference_document(input).dump();
}

inline std::string costmap_registration(const std::string& id, const std::string& hub, const std::string& address) {
  nlohmann::json registration = {{"id", id}, {"hub", hub}, {"reflector_port", 862}, {"metrics", "127.0.0.1:9862"}};
  if (!address.empty()) registration["address"] = address;
  return registration.dump();
}

}  // namespace
}  // namespace hubprobe
