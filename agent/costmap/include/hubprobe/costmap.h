// SPDX-License-Identifier: Apache-2.0
// `hubprobe costmap`, the pure part: the fleet's preference documents and registrations, as etcd holds
// them under PREFIX/preferences/ and PREFIX/agents/, turned into ALTO (RFC 7285) resources with the
// performance metrics of RFC 9439: an information resource directory, a network map (one PID per hub), a
// cost map per metric, the filtered cost map (POST), and hubprobe's path-preference map. No I/O: the
// service (costmap_service.h) watches etcd, builds a FleetMaps from every new state and serves it.
// docs/costmap.md is the contract; its JSON Schemas are docs/alto.schema.json and docs/costmap-pathmap.schema.json.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hubprobe/clock.h"

namespace hubprobe::costmap {

/// The ALTO media types (RFC 7285 section 10.1 and the IANA registrations of section 14).
inline constexpr const char* kDirectoryMediaType = "application/alto-directory+json";
inline constexpr const char* kNetworkMapMediaType = "application/alto-networkmap+json";
inline constexpr const char* kCostMapMediaType = "application/alto-costmap+json";
inline constexpr const char* kCostMapFilterMediaType = "application/alto-costmapfilter+json";
inline constexpr const char* kErrorMediaType = "application/alto-error+json";
/// The path-preference map is hubprobe's own resource, not ALTO's.
inline constexpr const char* kPathMapMediaType = "application/json";
inline constexpr const char* kPathMapSchemaId = "hubprobe.pathmap/v1";

/// The resource IDs (RFC 7285 section 10.2) of the directory.
inline constexpr const char* kNetworkMapId = "hubs";
inline constexpr const char* kFilteredCostMapId = "filtered-costmap";
inline constexpr const char* kPathMapId = "pathmap";

/// The value every cost type of this service carries in "cost-context" (RFC 9439 section 3.1): the agents'
/// values come out of an active measurement (STAMP), which the RFC calls "estimation" (values "computed
/// ... from ... traffic measurement management tools (e.g., TWAMP)"); "sla" is for committed values.
inline constexpr const char* kCostSource = "estimation";

/// What etcd holds for the fleet: the values of PREFIX/preferences/ID and PREFIX/agents/ID by agent id.
struct FleetState {
  std::map<std::string, std::string> documents;      ///< agent id -> preference document (JSON text)
  std::map<std::string, std::string> registrations;  ///< agent id -> registration (JSON text)
  bool operator==(const FleetState&) const = default;
};

/// Where the resources live. Relative URIs in the directory are resolved against the directory's own
/// URI (RFC 3986); `public_url` ("https://alto.example.net") makes them absolute.
struct ServiceLayout {
  std::string base_path = "/alto";  ///< the directory; every resource below it
  std::string public_url;           ///< empty: the directory names its resources by path only
  std::string directory_path() const { return base_path; }
  std::string network_map_path() const { return base_path + "/networkmap"; }
  std::string cost_map_path(std::string_view metric) const { return base_path + "/costmap/" + std::string(metric); }
  std::string filtered_cost_map_path() const { return base_path + "/costmap"; }
  std::string path_map_path() const { return base_path + "/pathmap"; }
};

/// True for an RFC 9439 cost metric string: a registered base identifier (delay-ow, delay-rt,
/// delay-variation, lossrate, hopcount, tput, bw-residual, bw-available, bw-maxres) with an optional
/// statistical operator (":min", ":max", ":median", ":mean", ":cur", ":stddev", ":stdvar", ":pNN[.N]"),
/// 32 characters at most (RFC 7285 section 10.6). "delay-ow-error" (hubprobe's own) is not one.
bool is_rfc9439_metric(std::string_view metric);

/// RFC 7285 section 10.1 (PIDName) and 10.2 (ResourceID): 1..64 of [A-Za-z0-9-:@_.]; this service never
/// uses '.', which section 10.1 reserves.
bool is_valid_pid_name(std::string_view name);

/// A resource as served: body, media type and the ETag derived from its vtag.
struct Resource {
  std::string body;
  std::string content_type;
  std::string etag;  ///< "\"TAG\"" (strong), or W/"TAG" for the path map (its ages are computed when served)
  std::string tag;   ///< the vtag's "tag" (RFC 7285 section 10.3): 32 hex digits of SHA-256 of the content
};

/// The answer to a filtered cost map request.
struct FilterAnswer {
  int status = 200;  ///< 200, or 400 with an alto-error body
  Resource resource;
};

/// An agent's document that did not make it into the maps, and why.
struct Ignored {
  std::string agent;  ///< the key's last part
  std::string reason;
};

/// Every resource of one fleet state. Immutable once built, so threads can share one through a
/// shared_ptr<const FleetMaps>.
///
/// How the maps are made (docs/costmap.md, "Aggregation"):
/// - PIDs: one per hub that appears as an agent's hub or a destination, named as the hub; its
///   addresses are the registered "address" of the hub's agents, as /32 or /128 (RFC 7285 section 10.4.4
///   address groups), none when no agent of the hub advertises one.
/// - An agent counts when its document is a valid v1 document (validate_preference_document), its key
///   matches its agent.id, and it is not stale. Stale and invalid documents appear in the path map only.
/// - Cost of (source hub, destination hub): among the agents of the source hub, the preferred
///   candidate of each toward the destination hub that is eligible; of those, the one with the lowest
///   score (then delay-rt, then agent id). All metrics of a cell come from that one path; a cell with no
///   such candidate is absent (RFC 7285 lets a cost map omit a pair whose cost is unknown), and so is a
///   metric the chosen path has no value for.
/// - Cost maps: one per RFC 9439 metric that at least one chosen path carries.
class FleetMaps {
 public:
  static std::shared_ptr<const FleetMaps> build(const FleetState& state, const ServiceLayout& layout = {});

  const Resource& directory() const { return directory_; }
  const Resource& network_map() const { return network_map_; }
  /// nullptr when no cost map of that metric exists.
  const Resource* cost_map(std::string_view metric) const;
  /// The path map with "age-s" of each document computed at `now`; its ETag is that of the content without
  /// the ages (weak), so it changes exactly when a document, a preference or the network map does.
  Resource path_map(WallNs now) const;
  /// A filtered cost map (RFC 7285 section 11.3.2) for `body` (application/alto-costmapfilter+json):
  /// {"cost-type": ..., "pids": {"srcs": [...], "dsts": [...]}, "constraints": [...]} or, instead of
  /// "cost-type", RFC 8189's "multi-cost-types" for several metrics at once. Errors are 400 with the
  /// RFC 7285 section 8.5.2 codes.
  FilterAnswer filter(std::string_view body) const;

  std::vector<std::string> metrics() const;
  const std::vector<Ignored>& ignored() const { return ignored_; }
  /// The cost map of `metric` as JSON (tests), null when none.
  nlohmann::json cost_map_json(std::string_view metric) const;

 private:
  FleetMaps() = default;

  ServiceLayout layout_;
  Resource directory_;
  Resource network_map_;
  nlohmann::json network_map_vtag_;
  std::map<std::string, Resource, std::less<>> cost_maps_;  // metric -> resource
  // source hub -> destination hub -> RFC 9439 metric -> value of the chosen path
  std::map<std::string, std::map<std::string, std::map<std::string, double>>> cells_;
  std::vector<std::string> pids_;
  nlohmann::json path_map_;                       // without ages
  std::map<std::string, WallNs> document_times_;  // agent id -> its document's timestamp
  std::vector<Ignored> ignored_;
};

/// An application/alto-error+json body (RFC 7285 section 8.5): {"meta": {"code", "field", "value"}}.
std::string alto_error(const std::string& code, const std::string& field = {},
                       const std::optional<nlohmann::json>& value = std::nullopt);

/// The vtag tag of a JSON value: 32 lowercase hex digits of SHA-256 of its compact, sorted serialization.
std::string content_tag(const nlohmann::json& value);

/// True when an If-None-Match header value (RFC 9110 section 13.1.2) matches `etag`, by weak comparison:
/// "*", or one of the listed entity tags with or without W/.
bool if_none_match(std::string_view header, std::string_view etag);

/// True when an Accept header value (RFC 9110 section 12.5.1) lets a client take `media_type`: empty,
/// "*/*", "TYPE/*" or the type itself (case-insensitive, parameters ignored, q=0 refuses).
bool accepts_media_type(std::string_view accept, std::string_view media_type);

/// The seconds of a "Prefer: wait=N" header (RFC 7240 section 4.3), 0 when there is none.
int64_t preferred_wait_seconds(std::string_view prefer);

}  // namespace hubprobe::costmap
