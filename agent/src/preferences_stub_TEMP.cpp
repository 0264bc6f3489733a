// SPDX-License-Identifier: Apache-2.0
// TEMPORARY STUB (branch wip-sinks only) — DELETE WHEN MERGING: the real implementation of these two
// functions lives in agent/src/preferences.cpp (branch wip-prefs). This stand-in only lets
// `hubprobe prefs` link and print a simple listing in this worktree.
#include <fmt/format.h>

#include "hubprobe/preferences.h"

namespace hubprobe {

Result<void> validate_preference_document(const nlohmann::json& document) {
  if (!document.is_object()) return make_error("not a JSON object");
  if (document.value("schema", std::string()) != kPreferencesSchemaId) {
    return make_error(std::string("\"schema\" is not \"") + kPreferencesSchemaId + "\"");
  }
  if (!document.contains("agent") || !document.contains("generation")) {
    return make_error("\"agent\" or \"generation\" missing");
  }
  return {};
}

std::string render_preferences_table(const std::vector<nlohmann::json>& documents, WallNs now) {
  std::string out = "(temporary listing, wip-sinks stub)\n";
  for (const auto& document : documents) {
    const auto valid = validate_preference_document(document);
    if (!valid) {
      out += "invalid document: " + valid.error().message + "\n";
      continue;
    }
    out += fmt::format("agent {} generation {} at {} (now {})\n", document["agent"].dump(),
                       document["generation"].dump(), document.value("timestamp", nlohmann::json()).dump(), now);
  }
  return out;
}

}  // namespace hubprobe
