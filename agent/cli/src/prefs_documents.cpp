// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/prefs_documents.h"

#include <ostream>

#include "hubprobe/preferences.h"

namespace hubprobe {

void add_preference_document(PreferenceDocuments& found, const std::string& origin, const std::string& text,
                             std::ostream& err) {
  nlohmann::json document = nlohmann::json::parse(text, nullptr, false);
  if (document.is_discarded()) {
    err << "hubprobe prefs: " << origin << ": not JSON\n";
    return;
  }
  if (validate_preference_document(document)) ++found.valid;
  found.documents.push_back(std::move(document));
}

}  // namespace hubprobe
