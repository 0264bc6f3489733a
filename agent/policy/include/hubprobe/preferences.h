// SPDX-License-Identifier: Apache-2.0
// The preference document: what the agent tells the scheduler (docs/design.md "Path preferences",
// docs/scheduler-api.md, JSON schema docs/scheduler-api.schema.json). One document per agent, with one entry per
// destination hub holding the ranked (peer, path) candidates with their state, score and RFC 9439 costs.
//
// Also: the generation number, which only grows, also across restarts (GenerationStore, in the adapters, keeps it in
// the state directory), and the hub-by-hub table `hubprobe prefs` prints from a fleet's documents.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/path_selection.h"
#include "hubprobe/result.h"

namespace hubprobe {

/// The value of the document's "schema" member.
inline constexpr const char* kPreferencesSchemaId = "hubprobe.preferences/v1";

/// One destination hub as the agent sees it.
struct DestinationPreferences {
  std::string hub;
  std::vector<CandidateView> ranked;  ///< PathSelector::ranked()
  std::string preferred;              ///< PathSelector::preferred() (candidate id), may be empty
};

struct PreferenceDocumentInput {
  std::string agent_id;
  std::string agent_hub;
  uint64_t generation = 0;
  WallNs timestamp = 0;  ///< when the document was made
  bool stale = false;    ///< the agent stopped: measurements no longer refresh (docs/operations.md, shutdown)
  std::vector<DestinationPreferences> destinations;  ///< any order; the document sorts by hub
};

/// The JSON document (exactly what the schema describes). Costs in RFC 9439 units; NaN values become
/// absent members, never JSON nulls or invalid numbers.
nlohmann::json make_preference_document(const PreferenceDocumentInput& input);

/// Checks that `document` has the shape of a preference document of this schema version (the members
/// `hubprobe prefs` and the tests rely on). Used when reading documents back from etcd or files.
Result<void> validate_preference_document(const nlohmann::json& document);

/// A document time (RFC 3339, as validate_preference_document accepts it) as wall time; nullopt when it is
/// not one.
std::optional<WallNs> parse_document_time(const std::string& text);

/// `hubprobe prefs`: the fleet's documents as a hub-by-hub table. Rows: source agent's hub (and id when a
/// hub has several agents), columns: destination hubs, cells: the preferred path and its delay-rt in ms
/// ("path 20.1", "down", "-"). Followed by one line per source agent with its generation, age of the
/// document and "stale" when it is. `now` computes the ages. Invalid documents are listed as such at the
/// end, never dropped silently.
std::string render_preferences_table(const std::vector<nlohmann::json>& documents, WallNs now);

}  // namespace hubprobe
