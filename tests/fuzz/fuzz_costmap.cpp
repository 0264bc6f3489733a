// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for `hubprobe costmap`'s pure part (hubprobe/costmap.h): what etcd may hold for a fleet
// and what a client may POST. The input is split at 0x1e: the first part is a filtered cost map request,
// the others alternate preference documents and registrations of agents a0, a1, ... Checks: every
// resource is JSON with its media type, the filter answers 200 with a cost map or 400 with an ALTO error,
// and the same state gives the same tags (what lets several instances serve the same maps).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "hubprobe/costmap.h"

namespace {

using nlohmann::json;
using namespace hubprobe::costmap;

bool is_json_object(const std::string& text) {
  const json parsed = json::parse(text, nullptr, false);
  return !parsed.is_discarded() && parsed.is_object();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() < 17) {
    const size_t end = input.find('\x1e', start);
    parts.emplace_back(input.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  FleetState state;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string id = "a" + std::to_string((i - 1) / 2);
    ((i % 2 == 1) ? state.documents : state.registrations)[id] = parts[i];
  }
  const auto maps = FleetMaps::build(state);
  const auto again = FleetMaps::build(state);
  if (!is_json_object(maps->directory().body) || maps->directory().content_type != kDirectoryMediaType) abort();
  if (!is_json_object(maps->network_map().body) || maps->network_map().etag != again->network_map().etag) abort();
  for (const std::string& metric : maps->metrics()) {
    const Resource* resource = maps->cost_map(metric);
    if (resource == nullptr || !is_json_object(resource->body) || !is_rfc9439_metric(metric)) abort();
    if (again->cost_map(metric) == nullptr || again->cost_map(metric)->etag != resource->etag) abort();
  }
  const Resource path_map = maps->path_map(0);
  if (!is_json_object(path_map.body) || path_map.etag != again->path_map(1).etag) abort();

  const FilterAnswer answer = maps->filter(parts[0]);
  if (!is_json_object(answer.resource.body)) abort();
  if (answer.status == 200) {
    if (answer.resource.content_type != kCostMapMediaType) abort();
  } else if (answer.status != 400 || answer.resource.content_type != kErrorMediaType ||
             !json::parse(answer.resource.body)["meta"]["code"].is_string()) {
    abort();
  }
  (void)if_none_match(parts[0], maps->network_map().etag);
  (void)accepts_media_type(parts[0], kCostMapMediaType);
  (void)preferred_wait_seconds(parts[0]);
  return 0;
}
