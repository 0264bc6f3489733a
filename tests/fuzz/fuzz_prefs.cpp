// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the documents `hubprobe prefs` reads (prefs_documents.h) and the table it prints
// from them (render_preferences_table, preferences.h): the input is up to 8 documents separated by 0x1e,
// as etcd keys or files would hold them. Any text is a document or one "not JSON" line; any set of
// documents gives a table, never a crash, an escaping exception or undefined behaviour; every invalid
// document is listed as such, and a valid one has its line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include "hubprobe/preferences.h"
#include "hubprobe/prefs_documents.h"

namespace {

constexpr hubprobe::WallNs kNow = 1'796'000'000'000'000'000;  // 2026-11-29

size_t count(const std::string& text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  hubprobe::PreferenceDocuments found;
  std::ostringstream err;
  size_t texts = 0;
  for (size_t start = 0; start <= input.size() && texts < 8; ++texts) {
    size_t end = input.find('\x1e', start);
    if (end == std::string_view::npos) end = input.size();
    hubprobe::add_preference_document(found, "key-" + std::to_string(texts),
                                      std::string(input.substr(start, end - start)), err);
    start = end + 1;
  }
  if (found.documents.size() + count(err.str(), ": not JSON\n") != texts) abort();
  if (found.valid > found.documents.size()) abort();

  const std::string table = hubprobe::render_preferences_table(found.documents, kNow);
  const size_t invalid = found.documents.size() - found.valid;
  // Names and keys are printed as the documents hold them, so only a lower bound is certain.
  const size_t listed = table.rfind("\ninvalid documents:\n");
  if (invalid > 0 && (listed == std::string::npos || count(table.substr(listed), "\n  document ") < invalid)) abort();
  if ((found.valid == 0) != (table.rfind("no valid preference documents\n", 0) == 0)) abort();
  if (found.valid > 0 && count(table, ": generation ") < found.valid) abort();
  return 0;
}
