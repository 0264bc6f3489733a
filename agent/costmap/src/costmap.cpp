// SPDX-License-Identifier: Apache-2.0
// The fleet's documents as ALTO resources (hubprobe/costmap.h). The JSON shapes follow RFC 7285 sections
// 9 (directory), 11.2.1 (network map), 11.2.3 (cost map), 11.3.2 (filtered cost map), 8.5 (errors), RFC
// 8189 (multi-cost) and RFC 9439 (metrics, cost-context); docs/alto.schema.json writes them down.
#include "hubprobe/costmap.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>

#include "hubprobe/discovery.h"
#include "hubprobe/preferences.h"

namespace hubprobe::costmap {
namespace {

using nlohmann::json;

constexpr size_t kMaxMetricLength = 32;  // RFC 7285 section 10.6
constexpr size_t kMaxPidLength = 64;     // RFC 7285 sections 10.1, 10.2

bool is_operator(std::string_view op) {
  if (op == "min" || op == "max" || op == "median" || op == "mean" || op == "cur" || op == "stddev" || op == "stdvar") {
    return true;
  }
  // pNN with an optional decimal part, 0..100 (RFC 9439 section 3.2).
  if (op.size() < 2 || op[0] != 'p') return false;
  std::string_view number = op.substr(1);
  const size_t dot = number.find('.');
  std::string_view whole = number.substr(0, dot);
  if (whole.empty() || whole.size() > 3 || !std::all_of(whole.begin(), whole.end(), ::isdigit)) return false;
  if (dot != std::string_view::npos) {
    std::string_view fraction = number.substr(dot + 1);
    if (fraction.empty() || !std::all_of(fraction.begin(), fraction.end(), ::isdigit)) return false;
  }
  int value = 0;
  (void)std::from_chars(whole.data(), whole.data() + whole.size(), value);
  return value < 100 || (value == 100 && (dot == std::string_view::npos ||
                                          number.substr(dot + 1).find_first_not_of('0') == std::string_view::npos));
}

std::string hex(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0xf];
  }
  return out;
}

json vtag(const std::string& resource_id, const std::string& tag) {
  return {{"resource-id", resource_id}, {"tag", tag}};
}

// RFC 9439's cost type of `metric`, as the directory and the maps announce it.
json cost_type(const std::string& metric) {
  return {{"cost-mode", "numerical"}, {"cost-metric", metric}, {"cost-context", {{"cost-source", kCostSource}}}};
}

// A resource ID for a metric's cost map: '.' (p99.9) is reserved in IDs, so it becomes '_'.
std::string cost_map_id(const std::string& metric) {
  std::string id = "costmap-" + metric;
  std::replace(id.begin(), id.end(), '.', '_');
  return id;
}

std::string resource_uri(const ServiceLayout& layout, const std::string& path) {
  std::string base = layout.public_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + path;
}

Resource make_resource(json body, const char* content_type, const std::string& tag, bool weak = false) {
  Resource resource;
  resource.body = body.dump();
  resource.content_type = content_type;
  resource.tag = tag;
  resource.etag = (weak ? "W/\"" : "\"") + tag + "\"";
  return resource;
}

// One agent's preferred candidate toward a destination hub, when it may carry the pair's costs.
struct Choice {
  std::string agent;
  double score = std::numeric_limits<double>::infinity();
  double delay_rt = std::numeric_limits<double>::infinity();
  const json* candidate = nullptr;
};

bool better(const Choice& a, const Choice& b) {
  if (a.score != b.score) return a.score < b.score;
  if (a.delay_rt != b.delay_rt) return a.delay_rt < b.delay_rt;
  return a.agent < b.agent;
}

double number_or_infinity(const json& object, const char* name) {
  const auto it = object.find(name);
  return it != object.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::infinity();
}

// The candidate of `destination` that its "preferred" names, or nullptr.
const json* preferred_candidate(const json& destination) {
  const json& preferred = destination["preferred"];
  if (!preferred.is_object()) return nullptr;
  for (const json& candidate : destination["paths"]) {
    if (candidate["peer"] == preferred["peer"] && candidate["path"] == preferred["path"]) return &candidate;
  }
  return nullptr;
}

json candidate_summary(const json& candidate) {
  json out = {{"peer", candidate["peer"]},         {"path", candidate["path"]},
              {"state", candidate["state"]},       {"rank", candidate["rank"]},
              {"eligible", candidate["eligible"]}, {"confidence", candidate["confidence"]},
              {"costs", candidate["costs"]}};
  if (candidate.contains("score")) out["score"] = candidate["score"];
  if (candidate.contains("state-since")) out["state-since"] = candidate["state-since"];
  return out;
}

// ---- the filter ----

struct FilterError {
  std::string code, field;
  std::optional<json> value;
};

struct Constraint {
  std::string op;
  double bound = 0;
  bool holds(double cost) const {
    if (op == "gt") return cost > bound;
    if (op == "lt") return cost < bound;
    if (op == "ge") return cost >= bound;
    if (op == "le") return cost <= bound;
    return cost == bound;  // "eq"
  }
};

// RFC 7285 section 11.3.2.3: "[operator] [value]", operator one of gt, lt, ge, le, eq.
std::optional<Constraint> parse_constraint(const std::string& text) {
  const size_t space = text.find(' ');
  if (space == std::string::npos) return std::nullopt;
  Constraint constraint{text.substr(0, space)};
  if (constraint.op != "gt" && constraint.op != "lt" && constraint.op != "ge" && constraint.op != "le" &&
      constraint.op != "eq") {
    return std::nullopt;
  }
  const json value = json::parse(text.substr(space + 1), nullptr, false);
  if (value.is_discarded() || !value.is_number()) return std::nullopt;
  constraint.bound = value.get<double>();
  return constraint;
}

}  // namespace

bool is_rfc9439_metric(std::string_view metric) {
  if (metric.empty() || metric.size() > kMaxMetricLength) return false;
  const size_t colon = metric.find(':');
  const std::string_view base = metric.substr(0, colon);
  static constexpr std::string_view kBases[] = {"delay-ow", "delay-rt",    "delay-variation", "lossrate", "hopcount",
                                                "tput",     "bw-residual", "bw-available",    "bw-maxres"};
  if (std::find(std::begin(kBases), std::end(kBases), base) == std::end(kBases)) return false;
  return colon == std::string_view::npos || is_operator(metric.substr(colon + 1));
}

bool is_valid_pid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxPidLength) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == ':' ||
           c == '@' || c == '_';
  });
}

std::string content_tag(const json& value) {
  const std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  return hex(digest, std::min<unsigned int>(length, 16));
}

std::string alto_error(const std::string& code, const std::string& field, const std::optional<json>& value) {
  json meta = {{"code", code}};
  if (!field.empty()) meta["field"] = field;
  if (value) meta["value"] = *value;
  return json{{"meta", meta}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool if_none_match(std::string_view header, std::string_view etag) {
  const auto opaque = [](std::string_view tag) {
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    return tag;
  };
  const std::string_view wanted = opaque(etag);
  size_t pos = 0;
  while (pos < header.size()) {
    while (pos < header.size() && (header[pos] == ' ' || header[pos] == ',' || header[pos] == '\t')) ++pos;
    if (pos >= header.size()) break;
    if (header[pos] == '*') return true;
    size_t end = pos;
    if (header.substr(pos, 2) == "W/") end += 2;
    if (end < header.size() && header[end] == '"') {
      const size_t close = header.find('"', end + 1);
      if (close == std::string_view::npos) return false;
      end = close + 1;
    } else {
      end = header.find(',', pos);
      if (end == std::string_view::npos) end = header.size();
    }
    if (opaque(header.substr(pos, end - pos)) == wanted) return true;
    pos = end;
  }
  return false;
}

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

bool accepts_media_type(std::string_view accept, std::string_view media_type) {
  if (trim(accept).empty()) return true;
  const std::string type = lower(media_type.substr(0, media_type.find(';')));
  const std::string major = type.substr(0, type.find('/'));
  size_t pos = 0;
  while (pos <= accept.size()) {
    size_t end = accept.find(',', pos);
    if (end == std::string_view::npos) end = accept.size();
    const std::string_view item = accept.substr(pos, end - pos);
    pos = end + 1;
    const size_t semicolon = item.find(';');
    const std::string range = lower(trim(item.substr(0, semicolon)));
    bool refused = false;
    if (semicolon != std::string_view::npos) {
      const std::string parameters = lower(item.substr(semicolon));
      const size_t q = parameters.find("q=");
      if (q != std::string::npos) {
        const std::string value = parameters.substr(q + 2, parameters.find(';', q) - q - 2);
        refused = std::strtod(value.c_str(), nullptr) <= 0;
      }
    }
    if (refused) continue;
    if (range == "*/*" || range == type || range == major + "/*") return true;
  }
  return false;
}

int64_t preferred_wait_seconds(std::string_view prefer) {
  const std::string text = lower(prefer);
  size_t pos = 0;
  while ((pos = text.find("wait", pos)) != std::string::npos) {
    const bool starts = pos == 0 || text[pos - 1] == ' ' || text[pos - 1] == ',' || text[pos - 1] == ';';
    size_t i = pos + 4;
    while (i < text.size() && text[i] == ' ') ++i;
    if (starts && i < text.size() && text[i] == '=') {
      ++i;
      while (i < text.size() && text[i] == ' ') ++i;
      int64_t seconds = 0;
      size_t digits = 0;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) != 0 && digits < 9) {
        seconds = seconds * 10 + (text[i] - '0');
        ++i;
        ++digits;
      }
      if (digits > 0) return seconds;
    }
    pos += 4;
  }
  return 0;
}

std::shared_ptr<const FleetMaps> FleetMaps::build(const FleetState& state, const ServiceLayout& layout) {
  std::shared_ptr<FleetMaps> maps(new FleetMaps());
  maps->layout_ = layout;
  std::set<std::string> hubs;
  std::map<std::string, json> counted;  // agent id -> document
  json agents = json::object();

  // Registrations: the agents' hubs and addresses.
  std::map<std::string, std::set<std::string>> addresses_v4, addresses_v6;  // hub -> prefixes
  std::map<std::string, Registration> registrations;
  for (const auto& [id, text] : state.registrations) {
    auto registration = parse_registration(id, text);
    if (!registration) {
      maps->ignored_.push_back({id, "registration: " + registration.error().message});
      continue;
    }
    if (!is_valid_pid_name(registration->hub)) {
      maps->ignored_.push_back({id, "registration: hub \"" + registration->hub + "\" is not an ALTO PID name"});
      continue;
    }
    hubs.insert(registration->hub);
    if (registration->address) {
      const SocketAddress& address = *registration->address;
      if (address.is_v6()) {
        addresses_v6[registration->hub].insert(address.host() + "/128");
      } else {
        addresses_v4[registration->hub].insert(address.host() + "/32");
      }
    }
    registrations.emplace(id, std::move(*registration));
  }

  // Documents: the agents that count, and the stale ones.
  for (const auto& [id, text] : state.documents) {
    json document = json::parse(text, nullptr, false);
    if (document.is_discarded()) {
      maps->ignored_.push_back({id, "document: not JSON"});
      continue;
    }
    if (auto valid = validate_preference_document(document); !valid) {
      maps->ignored_.push_back({id, "document: " + valid.error().message});
      continue;
    }
    if (document["agent"]["id"] != id) {
      maps->ignored_.push_back({id, "document: agent.id " + document["agent"]["id"].dump() + " differs from the key"});
      continue;
    }
    const std::string hub = document["agent"]["hub"].get<std::string>();
    if (!is_valid_pid_name(hub)) {
      maps->ignored_.push_back({id, "document: hub \"" + hub + "\" is not an ALTO PID name"});
      continue;
    }
    const bool stale = document["stale"].get<bool>();
    json agent = {{"hub", hub},
                  {"generation", document["generation"]},
                  {"timestamp", document["timestamp"]},
                  {"stale", stale},
                  {"counted", !stale}};
    if (auto it = registrations.find(id); it != registrations.end() && it->second.address) {
      agent["address"] = it->second.address->host();
    }
    agents[id] = agent;
    maps->document_times_[id] = parse_document_time(document["timestamp"].get<std::string>()).value_or(0);
    hubs.insert(hub);
    if (stale) continue;
    for (const json& destination : document["destinations"]) {
      const std::string to = destination["hub"].get<std::string>();
      if (is_valid_pid_name(to)) hubs.insert(to);
    }
    counted.emplace(id, std::move(document));
  }
  for (const auto& [id, registration] : registrations) {
    if (!agents.contains(id)) {
      json agent = {{"hub", registration.hub}, {"counted", false}};
      if (registration.address) agent["address"] = registration.address->host();
      agents[id] = agent;  // registered, no document yet
    }
  }
  maps->pids_.assign(hubs.begin(), hubs.end());

  // The network map.
  json network = json::object();
  for (const std::string& hub : hubs) {
    json group = json::object();
    if (auto it = addresses_v4.find(hub); it != addresses_v4.end()) group["ipv4"] = it->second;
    if (auto it = addresses_v6.find(hub); it != addresses_v6.end()) group["ipv6"] = it->second;
    network[hub] = group;
  }
  maps->network_map_vtag_ = vtag(kNetworkMapId, content_tag(network));
  maps->network_map_ = make_resource({{"meta", {{"vtag", maps->network_map_vtag_}}}, {"network-map", network}},
                                     kNetworkMapMediaType, maps->network_map_vtag_["tag"].get<std::string>());

  // The cells: per (source hub, destination hub) the best eligible preferred path of the hub's agents.
  std::map<std::string, std::map<std::string, std::vector<json>>> per_pair;  // for the path map
  std::map<std::string, std::map<std::string, Choice>> chosen;
  for (const auto& [id, document] : counted) {
    const std::string from = document["agent"]["hub"].get<std::string>();
    std::set<std::string> seen;
    for (const json& destination : document["destinations"]) {
      const std::string to = destination["hub"].get<std::string>();
      if (!is_valid_pid_name(to) || !seen.insert(to).second) continue;  // a repeated hub: the first counts
      const json* candidate = preferred_candidate(destination);
      json entry = {{"agent", id},
                    {"generation", document["generation"]},
                    {"timestamp", document["timestamp"]},
                    {"preferred", candidate != nullptr ? candidate_summary(*candidate) : json(nullptr)}};
      per_pair[from][to].push_back(entry);
      if (candidate == nullptr || !(*candidate)["eligible"].get<bool>()) continue;
      Choice choice{id, number_or_infinity(*candidate, "score"), number_or_infinity((*candidate)["costs"], "delay-rt"),
                    candidate};
      auto [it, inserted] = chosen[from].emplace(to, choice);
      if (!inserted && better(choice, it->second)) it->second = choice;
    }
  }
  std::set<std::string> metrics;
  for (const auto& [from, row] : chosen) {
    for (const auto& [to, choice] : row) {
      for (const auto& [metric, value] : (*choice.candidate)["costs"].items()) {
        if (!is_rfc9439_metric(metric) || !value.is_number()) continue;
        maps->cells_[from][to][metric] = value.get<double>();
        metrics.insert(metric);
      }
    }
  }

  // A cost map per metric.
  const json dependent = json::array({maps->network_map_vtag_});
  for (const std::string& metric : metrics) {
    json cost_map = json::object();
    for (const auto& [from, row] : maps->cells_) {
      for (const auto& [to, costs] : row) {
        if (auto it = costs.find(metric); it != costs.end()) cost_map[from][to] = it->second;
      }
    }
    json meta = {{"dependent-vtags", dependent}, {"cost-type", cost_type(metric)}};
    const std::string tag = content_tag({{"meta", meta}, {"cost-map", cost_map}});
    meta["vtag"] = vtag(cost_map_id(metric), tag);
    maps->cost_maps_.emplace(metric, make_resource({{"meta", meta}, {"cost-map", cost_map}}, kCostMapMediaType, tag));
  }

  // The path map (ages added when served).
  json path_map = json::object();
  for (const auto& [from, row] : per_pair) {
    for (const auto& [to, entries] : row) {
      json cell = {{"agents", entries}, {"agents-counted", entries.size()}, {"preferred", nullptr}};
      if (auto it = chosen.find(from); it != chosen.end()) {
        if (auto choice = it->second.find(to); choice != it->second.end()) {
          const json& document = counted.at(choice->second.agent);
          json preferred = candidate_summary(*choice->second.candidate);
          preferred["agent"] = choice->second.agent;
          preferred["generation"] = document["generation"];
          preferred["timestamp"] = document["timestamp"];
          cell["preferred"] = preferred;
        }
      }
      path_map[from][to] = cell;
    }
  }
  json ignored = json::array();
  for (const Ignored& entry : maps->ignored_) ignored.push_back({{"agent", entry.agent}, {"reason", entry.reason}});
  json content = {{"schema", kPathMapSchemaId},
                  {"meta", {{"dependent-vtags", dependent}}},
                  {"agents", agents},
                  {"path-map", path_map},
                  {"ignored", ignored}};
  content["meta"]["vtag"] = vtag(kPathMapId, content_tag(content));
  maps->path_map_ = std::move(content);

  // The directory.
  json cost_types = json::object();
  json resources = json::object();
  const std::string network_uri = resource_uri(layout, layout.network_map_path());
  resources[kNetworkMapId] = {{"uri", network_uri}, {"media-type", kNetworkMapMediaType}};
  json names = json::array();
  for (const std::string& metric : metrics) {
    json type = cost_type(metric);
    type["description"] = "hubprobe agents' " + metric + " between hubs (RFC 9439 units)";
    cost_types[metric] = type;
    names.push_back(metric);
    resources[cost_map_id(metric)] = {{"uri", resource_uri(layout, layout.cost_map_path(metric))},
                                      {"media-type", kCostMapMediaType},
                                      {"capabilities", {{"cost-type-names", json::array({metric})}}},
                                      {"uses", json::array({kNetworkMapId})}};
  }
  json filtered_capabilities = {{"cost-constraints", true}, {"cost-type-names", names}};
  if (!metrics.empty()) filtered_capabilities["max-cost-types"] = metrics.size();
  resources[kFilteredCostMapId] = {{"uri", resource_uri(layout, layout.filtered_cost_map_path())},
                                   {"media-type", kCostMapMediaType},
                                   {"accepts", kCostMapFilterMediaType},
                                   {"capabilities", filtered_capabilities},
                                   {"uses", json::array({kNetworkMapId})}};
  resources[kPathMapId] = {{"uri", resource_uri(layout, layout.path_map_path())},
                           {"media-type", kPathMapMediaType},
                           {"uses", json::array({kNetworkMapId})}};
  json directory = {{"meta", {{"cost-types", cost_types}, {"default-alto-network-map", kNetworkMapId}}},
                    {"resources", resources}};
  maps->directory_ = make_resource(directory, kDirectoryMediaType, content_tag(directory));
  return maps;
}

const Resource* FleetMaps::cost_map(std::string_view metric) const {
  const auto it = cost_maps_.find(metric);
  return it == cost_maps_.end() ? nullptr : &it->second;
}

nlohmann::json FleetMaps::cost_map_json(std::string_view metric) const {
  const Resource* resource = cost_map(metric);
  return resource == nullptr ? json(nullptr) : json::parse(resource->body);
}

std::vector<std::string> FleetMaps::metrics() const {
  std::vector<std::string> out;
  for (const auto& [metric, resource] : cost_maps_) out.push_back(metric);
  return out;
}

Resource FleetMaps::path_map(WallNs now) const {
  json body = path_map_;
  const auto age = [&](const std::string& agent) {
    const auto it = document_times_.find(agent);
    return it == document_times_.end() ? json(nullptr)
                                       : json(std::round((static_cast<double>(now) - it->second) / 1e6) / 1e3);
  };
  for (auto& [id, agent] : body["agents"].items()) {
    if (agent.contains("timestamp")) agent["age-s"] = age(id);
  }
  for (auto& [from, row] : body["path-map"].items()) {
    for (auto& [to, cell] : row.items()) {
      for (json& entry : cell["agents"]) entry["age-s"] = age(entry["agent"].get<std::string>());
      if (cell["preferred"].is_object())
        cell["preferred"]["age-s"] = age(cell["preferred"]["agent"].get<std::string>());
    }
  }
  return make_resource(std::move(body), kPathMapMediaType, path_map_["meta"]["vtag"]["tag"].get<std::string>(), true);
}

FilterAnswer FleetMaps::filter(std::string_view body) const {
  const auto fail = [](const FilterError& error) {
    FilterAnswer answer;
    answer.status = 400;
    answer.resource.content_type = kErrorMediaType;
    answer.resource.body = alto_error(error.code, error.field, error.value);
    return answer;
  };
  const json request = json::parse(body, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    FilterAnswer answer = fail({"E_SYNTAX", {}, std::nullopt});
    json error = json::parse(answer.resource.body);
    error["meta"]["syntax-error"] =
        request.is_discarded() ? "the request body is not JSON" : "the request body is not a JSON object";
    answer.resource.body = error.dump();
    return answer;
  }

  // The cost types asked for: "cost-type" (RFC 7285) or "multi-cost-types" (RFC 8189), exactly one.
  const bool single = request.contains("cost-type");
  const bool multi = request.contains("multi-cost-types");
  if (!single && !multi) return fail({"E_MISSING_FIELD", "cost-type", std::nullopt});
  if (single && multi) return fail({"E_INVALID_FIELD_VALUE", "multi-cost-types", request["multi-cost-types"]});
  for (const char* unsupported : {"testable-cost-types", "or-constraints"}) {
    if (request.contains(unsupported)) return fail({"E_INVALID_FIELD_VALUE", unsupported, request[unsupported]});
  }
  std::vector<json> types;
  std::string types_field = single ? "cost-type" : "multi-cost-types";
  if (single) {
    types.push_back(request["cost-type"]);
  } else {
    const json& list = request["multi-cost-types"];
    if (!list.is_array()) return fail({"E_INVALID_FIELD_TYPE", types_field, list});
    if (list.empty()) return fail({"E_INVALID_FIELD_VALUE", types_field, list});
    types.assign(list.begin(), list.end());
  }
  std::vector<std::string> metrics;
  for (const json& type : types) {
    if (!type.is_object()) return fail({"E_INVALID_FIELD_TYPE", types_field, type});
    for (const char* member : {"cost-mode", "cost-metric"}) {
      const std::string field = types_field + "/" + member;
      if (!type.contains(member)) return fail({"E_MISSING_FIELD", field, std::nullopt});
      if (!type[member].is_string()) return fail({"E_INVALID_FIELD_TYPE", field, type[member]});
    }
    if (type.contains("cost-context") && !type["cost-context"].is_object()) {
      return fail({"E_INVALID_FIELD_TYPE", types_field + "/cost-context", type["cost-context"]});
    }
    if (type["cost-mode"] != "numerical") {
      return fail({"E_INVALID_FIELD_VALUE", types_field + "/cost-mode", type["cost-mode"]});
    }
    const std::string metric = type["cost-metric"].get<std::string>();
    if (cost_maps_.find(metric) == cost_maps_.end()) {
      return fail({"E_INVALID_FIELD_VALUE", types_field + "/cost-metric", type["cost-metric"]});
    }
    metrics.push_back(metric);
  }

  // Constraints (RFC 7285 section 11.3.2.3), with a single cost type only (RFC 8189 section 4.1.1).
  std::vector<Constraint> constraints;
  if (request.contains("constraints")) {
    const json& list = request["constraints"];
    if (multi) return fail({"E_INVALID_FIELD_VALUE", "constraints", list});
    if (!list.is_array()) return fail({"E_INVALID_FIELD_TYPE", "constraints", list});
    for (const json& item : list) {
      if (!item.is_string()) return fail({"E_INVALID_FIELD_TYPE", "constraints", item});
      auto constraint = parse_constraint(item.get<std::string>());
      if (!constraint) return fail({"E_INVALID_FIELD_VALUE", "constraints", item});
      constraints.push_back(*constraint);
    }
  }

  // The PIDs: every PID when "pids" is absent or a list is empty; PIDs the network map does not define are
  // left out, as RFC 7285 section 11.3.1.3 says for the filtered network map.
  std::vector<std::string> sources = pids_, destinations = pids_;
  if (request.contains("pids")) {
    const json& pids = request["pids"];
    if (!pids.is_object()) return fail({"E_INVALID_FIELD_TYPE", "pids", pids});
    for (const char* member : {"srcs", "dsts"}) {
      const std::string field = std::string("pids/") + member;
      if (!pids.contains(member)) return fail({"E_MISSING_FIELD", field, std::nullopt});
      const json& list = pids[member];
      if (!list.is_array()) return fail({"E_INVALID_FIELD_TYPE", field, list});
      std::vector<std::string> chosen;
      for (const json& item : list) {
        if (!item.is_string()) return fail({"E_INVALID_FIELD_TYPE", field, item});
        const std::string name = item.get<std::string>();
        if (!is_valid_pid_name(name)) return fail({"E_INVALID_FIELD_VALUE", field, item});
        if (std::binary_search(pids_.begin(), pids_.end(), name) &&
            std::find(chosen.begin(), chosen.end(), name) == chosen.end()) {
          chosen.push_back(name);
        }
      }
      if (!list.empty()) (std::string(member) == "srcs" ? sources : destinations) = chosen;
    }
  }

  json cost_map = json::object();
  for (const std::string& from : sources) {
    const auto row = cells_.find(from);
    if (row == cells_.end()) continue;
    for (const std::string& to : destinations) {
      const auto cell = row->second.find(to);
      if (cell == row->second.end()) continue;
      if (single) {
        const auto cost = cell->second.find(metrics.front());
        if (cost == cell->second.end()) continue;
        if (!std::all_of(constraints.begin(), constraints.end(),
                         [&](const Constraint& c) { return c.holds(cost->second); })) {
          continue;
        }
        cost_map[from][to] = cost->second;
      } else {
        json values = json::array();
        bool any = false;
        for (const std::string& metric : metrics) {
          const auto cost = cell->second.find(metric);
          values.push_back(cost == cell->second.end() ? json(nullptr) : json(cost->second));
          any = any || cost != cell->second.end();
        }
        if (any) cost_map[from][to] = values;
      }
    }
  }
  json meta = {{"dependent-vtags", json::array({network_map_vtag_})}};
  if (single) {
    meta["cost-type"] = cost_type(metrics.front());
  } else {
    json list = json::array();
    for (const std::string& metric : metrics) list.push_back(cost_type(metric));
    meta["multi-cost-types"] = list;
  }
  json response = {{"meta", meta}, {"cost-map", cost_map}};
  FilterAnswer answer;
  answer.resource = make_resource(response, kCostMapMediaType, content_tag(response));
  return answer;
}

}  // namespace hubprobe::costmap
