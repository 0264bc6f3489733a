// SPDX-License-Identifier: Apache-2.0
// The documents `hubprobe prefs` reads (from etcd keys or files), without any I/O: what a text becomes
// before render_preferences_table (preferences.h) shows it. tests/fuzz/fuzz_prefs.cpp feeds it directly.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hubprobe {

/// The documents read so far: every text that parsed as JSON (invalid documents too: the table lists
/// them), and how many of them are valid preference documents.
struct PreferenceDocuments {
  std::vector<nlohmann::json> documents;
  size_t valid = 0;
};

/// Adds `text` (from `origin`, a key or a file) when it parses as JSON; says why on `err` when not
/// ("hubprobe prefs: ORIGIN: not JSON").
void add_preference_document(PreferenceDocuments& found, const std::string& origin, const std::string& text,
                             std::ostream& err);

}  // namespace hubprobe
