// SPDX-License-Identifier: Apache-2.0
// The preference document, its reader-side validation and the `hubprobe prefs` table. The document's shape is
// docs/scheduler-api.schema.json; tests/unit/preferences_test.cpp checks the two against each other with a real JSON
// Schema validator.
#include "hubprobe/preferences.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <set>

namespace hubprobe {
namespace {

// A cost worth publishing: RFC 9439 values are non-negative numbers. NaN means "nothing to say"; a
// negative median one-way delay means the two clocks disagree by more than the delay itself.
bool publishable(double value) { return std::isfinite(value) && value >= 0; }

double round_to(double value, double resolution) { return std::round(value / resolution) * resolution; }

// Seconds to RFC 9439 microseconds, kept to the nanosecond.
double to_microseconds(double seconds) { return round_to(seconds * 1e6, 1e-3); }

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// RFC 3339, UTC, milliseconds (truncated): 2026-11-25T10:31:00.123Z.
std::string format_timestamp(WallNs t) {
  const int64_t seconds = floor_div(t, 1'000'000'000);
  const int64_t millis = (t - seconds * 1'000'000'000) / 1'000'000;
  const time_t as_time = static_cast<time_t>(seconds);
  struct tm utc {};
  gmtime_r(&as_time, &utc);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                     utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
}

// Any RFC 3339 date-time (readers are lenient: fraction of any length or none, Z or a numeric offset).
std::optional<WallNs> parse_timestamp(const std::string& text) {
  size_t pos = 0;
  auto number = [&](size_t digits, int& out) {
    if (pos + digits > text.size()) return false;
    out = 0;
    for (size_t i = 0; i < digits; ++i) {
      const char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    pos += digits;
    return true;
  };
  auto expect = [&](const char* any_of) {
    if (pos < text.size() && std::strchr(any_of, text[pos]) != nullptr && text[pos] != '\0') {
      ++pos;
      return true;
    }
    return false;
  };
  int year, month, day, hour, minute, second;
  if (!number(4, year) || !expect("-") || !number(2, month) || !expect("-") || !number(2, day) || !expect("Tt ") ||
      !number(2, hour) || !expect(":") || !number(2, minute) || !expect(":") || !number(2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  int64_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int64_t scale = 100'000'000;
    const size_t first = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      nanos += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == first) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (!expect("Zz")) {
    if (pos >= text.size() || (text[pos] != '+' && text[pos] != '-')) return std::nullopt;
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int offset_hours, offset_minutes;
    if (!number(2, offset_hours) || !expect(":") || !number(2, offset_minutes) || offset_hours > 23 ||
        offset_minutes > 59) {
      return std::nullopt;
    }
    offset_s = sign * (offset_hours * 3600 + offset_minutes * 60);
  }
  if (pos != text.size()) return std::nullopt;
  struct tm utc {};
  utc.tm_year = year - 1900;
  utc.tm_mon = month - 1;
  utc.tm_mday = day;
  utc.tm_hour = hour;
  utc.tm_min = minute;
  utc.tm_sec = std::min(second, 59);  // a leap second counts as the second before it
  const time_t as_time = timegm(&utc);
  if (utc.tm_mday != day || utc.tm_mon != month - 1) return std::nullopt;  // 31 February and the like
  // Only what WallNs holds (1677-09-21 to 2262-04-11): a year such as 0000 or 9999 is refused, not wrapped.
  const int64_t seconds = static_cast<int64_t>(as_time) - offset_s;
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1'000'000'000 - 1;
  if (seconds > kMaxSeconds || seconds < -kMaxSeconds) return std::nullopt;
  return seconds * 1'000'000'000 + nanos;
}

nlohmann::json make_costs(const CandidateView& candidate) {
  nlohmann::json costs = nlohmann::json::object();
  if (publishable(candidate.delay_rt_s)) costs["delay-rt"] = to_microseconds(candidate.delay_rt_s);
  if (publishable(candidate.rtt_p99_s)) costs["delay-rt:p99"] = to_microseconds(candidate.rtt_p99_s);
  if (publishable(candidate.delay_ow_s)) {
    costs["delay-ow"] = to_microseconds(candidate.delay_ow_s);
    if (publishable(candidate.delay_ow_error_s)) costs["delay-ow-error"] = to_microseconds(candidate.delay_ow_error_s);
  }
  if (publishable(candidate.delay_variation_s)) {
    costs["delay-variation"] = to_microseconds(candidate.delay_variation_s);
  }
  // RFC 9439 section 4.4: the percentage of packets lost.
  if (publishable(candidate.lossrate)) costs["lossrate"] = round_to(std::min(candidate.lossrate, 1.0) * 100, 1e-6);
  return costs;
}

nlohmann::json make_candidate(const CandidateView& candidate, uint32_t position, bool preferred) {
  nlohmann::json out = {
      {"peer", candidate.peer},
      {"path", candidate.path},
      {"rank", candidate.rank != 0 ? candidate.rank : position},
      {"state", to_string(candidate.state)},
      {"eligible", candidate.eligible},
      {"preferred", preferred},
      {"confidence",
       std::isnan(candidate.confidence) ? 0.0 : round_to(std::clamp(candidate.confidence, 0.0, 1.0), 1e-6)},
      {"samples", candidate.samples},
      {"costs", make_costs(candidate)},
  };
  if (publishable(candidate.score_s)) out["score"] = round_to(candidate.score_s, 1e-9);
  if (candidate.state_since != 0) out["state-since"] = format_timestamp(candidate.state_since);
  return out;
}

// ---- reading documents back ----

// A value quoted in an error message: short, and never throwing on invalid UTF-8.
std::string shown(const nlohmann::json& value) {
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

Error member_error(const std::string& member, const std::string& expected, const nlohmann::json* value) {
  if (value == nullptr) return make_error(member + ": missing (expected " + expected + ")");
  return make_error(member + ": expected " + expected + ", got " + shown(*value));
}

const nlohmann::json* find(const nlohmann::json& object, const char* name) {
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

bool is_positive_integer(const nlohmann::json& value, bool allow_zero) {
  if (value.is_number_unsigned()) return allow_zero || value.get<uint64_t>() >= 1;
  if (value.is_number_integer()) return value.get<int64_t>() >= (allow_zero ? 0 : 1);
  if (value.is_number_float()) {  // JSON Schema's "integer" also accepts 42.0
    const double number = value.get<double>();
    return std::isfinite(number) && std::trunc(number) == number && number >= (allow_zero ? 0 : 1);
  }
  return false;
}

Result<void> check_string(const nlohmann::json& object, const char* name, const std::string& where) {
  const nlohmann::json* value = find(object, name);
  if (value == nullptr || !value->is_string() || value->get<std::string>().empty()) {
    return member_error(where + name, "a non-empty string", value);
  }
  return {};
}

Result<void> check_bool(const nlohmann::json& object, const char* name, const std::string& where) {
  const nlohmann::json* value = find(object, name);
  if (value == nullptr || !value->is_boolean()) return member_error(where + name, "true or false", value);
  return {};
}

Result<void> check_timestamp(const nlohmann::json& object, const char* name, const std::string& where, bool required) {
  const nlohmann::json* value = find(object, name);
  if (value == nullptr && !required) return {};
  if (value == nullptr || !value->is_string() || !parse_timestamp(value->get<std::string>())) {
    return member_error(where + name, "an RFC 3339 date-time", value);
  }
  return {};
}

Result<void> check_candidate(const nlohmann::json& candidate, const std::string& where) {
  if (!candidate.is_object()) return member_error(where.substr(0, where.size() - 1), "an object", &candidate);
  for (const char* name : {"peer", "path"}) {
    if (auto ok = check_string(candidate, name, where); !ok) return ok;
  }
  if (const auto* rank = find(candidate, "rank"); rank == nullptr || !is_positive_integer(*rank, false)) {
    return member_error(where + "rank", "an integer >= 1", rank);
  }
  const nlohmann::json* state = find(candidate, "state");
  if (state == nullptr || !state->is_string() ||
      std::none_of(std::begin(kPathStates), std::end(kPathStates),
                   [&](PathState known) { return state->get<std::string>() == to_string(known); })) {
    return member_error(where + "state", "one of \"unknown\", \"ok\", \"degraded\", \"down\"", state);
  }
  for (const char* name : {"eligible", "preferred"}) {
    if (auto ok = check_bool(candidate, name, where); !ok) return ok;
  }
  const nlohmann::json* confidence = find(candidate, "confidence");
  if (confidence == nullptr || !confidence->is_number() || !(confidence->get<double>() >= 0) ||
      confidence->get<double>() > 1) {
    return member_error(where + "confidence", "a number from 0 to 1", confidence);
  }
  if (const auto* samples = find(candidate, "samples"); samples == nullptr || !is_positive_integer(*samples, true)) {
    return member_error(where + "samples", "an integer >= 0", samples);
  }
  if (const auto* score = find(candidate, "score");
      score != nullptr && (!score->is_number() || !(score->get<double>() >= 0))) {
    return member_error(where + "score", "a number >= 0 (seconds)", score);
  }
  const nlohmann::json* costs = find(candidate, "costs");
  if (costs == nullptr || !costs->is_object()) return member_error(where + "costs", "an object", costs);
  for (const auto& [name, value] : costs->items()) {
    if (!value.is_number() || !(value.get<double>() >= 0)) {
      return member_error(where + "costs." + name, "a number >= 0", &value);
    }
  }
  if (const auto* lossrate = find(*costs, "lossrate"); lossrate != nullptr && lossrate->get<double>() > 100) {
    return member_error(where + "costs.lossrate", "a percentage from 0 to 100", lossrate);
  }
  return check_timestamp(candidate, "state-since", where, false);
}

Result<void> check_destination(const nlohmann::json& destination, const std::string& where) {
  if (!destination.is_object()) return member_error(where.substr(0, where.size() - 1), "an object", &destination);
  if (auto ok = check_string(destination, "hub", where); !ok) return ok;
  const nlohmann::json* preferred = find(destination, "preferred");
  if (preferred == nullptr || !(preferred->is_null() || preferred->is_object())) {
    return member_error(where + "preferred", "null or an object with \"peer\" and \"path\"", preferred);
  }
  if (preferred->is_object()) {
    for (const char* name : {"peer", "path"}) {
      if (auto ok = check_string(*preferred, name, where + "preferred."); !ok) return ok;
    }
  }
  const nlohmann::json* paths = find(destination, "paths");
  if (paths == nullptr || !paths->is_array()) return member_error(where + "paths", "an array", paths);
  for (size_t i = 0; i < paths->size(); ++i) {
    if (auto ok = check_candidate((*paths)[i], where + "paths[" + std::to_string(i) + "]."); !ok) return ok;
  }
  return {};
}

// ---- the table ----

struct Row {
  std::string hub, id;
  uint64_t generation = 0;
  WallNs timestamp = 0;
  bool stale = false;
  std::map<std::string, std::string> cells;  // destination hub -> cell text
};

uint64_t generation_of(const nlohmann::json& value) {
  if (!value.is_number_float()) return value.get<uint64_t>();
  // An integral float (JSON Schema's integer) beyond 2^64 shows as the largest generation.
  const double number = value.get<double>();
  return number >= 18446744073709551616.0 ? std::numeric_limits<uint64_t>::max() : static_cast<uint64_t>(number);
}

std::string cell_text(const nlohmann::json& destination) {
  const nlohmann::json& paths = destination["paths"];
  const nlohmann::json& preferred = destination["preferred"];
  if (preferred.is_object()) {
    // The path's name; for the implicit path "default" (peers without [[path]] entries, where the choice
    // is between peers of the hub, e.g. one per link) the peer's name says more.
    std::string text = preferred["path"].get<std::string>();
    if (text == "default") text = preferred["peer"].get<std::string>();
    for (const auto& candidate : paths) {
      if (candidate["peer"] == preferred["peer"] && candidate["path"] == preferred["path"]) {
        if (const auto* delay = find(candidate["costs"], "delay-rt"); delay != nullptr) {
          return text + fmt::format(" {:.1f}", delay->get<double>() / 1000.0);
        }
        break;
      }
    }
    return text + " ?";
  }
  if (!paths.empty() &&
      std::all_of(paths.begin(), paths.end(), [](const nlohmann::json& c) { return c["state"] == "down"; })) {
    return "down";
  }
  return "none";
}

std::string age_text(WallNs now, WallNs timestamp) {
  // In double: two WallNs far apart (a document dated 1700) differ by more than an int64 holds.
  const double seconds = (static_cast<double>(now) - static_cast<double>(timestamp)) / 1e9;
  if (seconds < -0.05) return fmt::format("{:.1f} s in the future", -seconds);
  return fmt::format("{:.1f} s old", std::max(seconds, 0.0));
}

void append_line(std::string& out, const std::vector<std::string>& columns, const std::vector<size_t>& widths) {
  std::string line;
  for (size_t i = 0; i < columns.size(); ++i) {
    line += columns[i];
    if (i + 1 < columns.size()) line.append(widths[i] - columns[i].size() + 2, ' ');
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  out += line + "\n";
}

}  // namespace

nlohmann::json make_preference_document(const PreferenceDocumentInput& input) {
  std::vector<const DestinationPreferences*> destinations;
  for (const auto& destination : input.destinations) destinations.push_back(&destination);
  std::stable_sort(destinations.begin(), destinations.end(),
                   [](const auto* a, const auto* b) { return a->hub < b->hub; });

  nlohmann::json out_destinations = nlohmann::json::array();
  for (const DestinationPreferences* destination : destinations) {
    std::vector<const CandidateView*> ranked;
    for (const auto& candidate : destination->ranked) ranked.push_back(&candidate);
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto* a, const auto* b) { return a->rank < b->rank; });

    nlohmann::json preferred = nullptr;
    nlohmann::json paths = nlohmann::json::array();
    for (size_t i = 0; i < ranked.size(); ++i) {
      // The selector's preferred() id is the one truth: the flag and the "preferred" object agree.
      const bool is_preferred = !destination->preferred.empty() && ranked[i]->id == destination->preferred;
      if (is_preferred && preferred.is_null()) preferred = {{"peer", ranked[i]->peer}, {"path", ranked[i]->path}};
      paths.push_back(make_candidate(*ranked[i], static_cast<uint32_t>(i + 1), is_preferred));
    }
    out_destinations.push_back({{"hub", destination->hub}, {"preferred", preferred}, {"paths", paths}});
  }

  return {
      {"schema", kPreferencesSchemaId}, {"agent", {{"id", input.agent_id}, {"hub", input.agent_hub}}},
      {"generation", input.generation}, {"timestamp", format_timestamp(input.timestamp)},
      {"stale", input.stale},           {"destinations", out_destinations},
  };
}

std::optional<WallNs> parse_document_time(const std::string& text) { return parse_timestamp(text); }

Result<void> validate_preference_document(const nlohmann::json& document) {
  if (!document.is_object()) return member_error("document", "a JSON object", &document);
  const nlohmann::json* schema = find(document, "schema");
  if (schema == nullptr || !schema->is_string() || schema->get<std::string>() != kPreferencesSchemaId) {
    return member_error("schema", std::string("\"") + kPreferencesSchemaId + "\"", schema);
  }
  const nlohmann::json* agent = find(document, "agent");
  if (agent == nullptr || !agent->is_object()) return member_error("agent", "an object with \"id\" and \"hub\"", agent);
  for (const char* name : {"id", "hub"}) {
    if (auto ok = check_string(*agent, name, "agent."); !ok) return ok;
  }
  if (const auto* generation = find(document, "generation");
      generation == nullptr || !is_positive_integer(*generation, false)) {
    return member_error("generation", "an integer >= 1", generation);
  }
  if (auto ok = check_timestamp(document, "timestamp", "", true); !ok) return ok;
  if (auto ok = check_bool(document, "stale", ""); !ok) return ok;
  const nlohmann::json* destinations = find(document, "destinations");
  if (destinations == nullptr || !destinations->is_array()) {
    return member_error("destinations", "an array", destinations);
  }
  for (size_t i = 0; i < destinations->size(); ++i) {
    if (auto ok = check_destination((*destinations)[i], "destinations[" + std::to_string(i) + "]."); !ok) return ok;
  }
  return {};
}

std::string render_preferences_table(const std::vector<nlohmann::json>& documents, WallNs now) {
  std::vector<Row> rows;
  std::vector<std::string> invalid;
  std::set<std::string> hubs;
  for (size_t i = 0; i < documents.size(); ++i) {
    const nlohmann::json& document = documents[i];
    if (auto ok = validate_preference_document(document); !ok) {
      std::string label = "document " + std::to_string(i + 1);
      if (document.is_object() && document.contains("agent") && document["agent"].is_object() &&
          document["agent"].contains("id") && document["agent"]["id"].is_string()) {
        label += " (agent " + shown(document["agent"]["id"]) + ")";
      }
      invalid.push_back(label + ": " + ok.error().message);
      continue;
    }
    Row row;
    row.hub = document["agent"]["hub"].get<std::string>();
    row.id = document["agent"]["id"].get<std::string>();
    row.generation = generation_of(document["generation"]);
    row.timestamp = *parse_timestamp(document["timestamp"].get<std::string>());
    row.stale = document["stale"].get<bool>();
    hubs.insert(row.hub);
    for (const auto& destination : document["destinations"]) {
      const std::string hub = destination["hub"].get<std::string>();
      hubs.insert(hub);
      row.cells.emplace(hub, cell_text(destination));  // a repeated hub: the first entry counts
    }
    rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    if (a.hub != b.hub) return a.hub < b.hub;
    if (a.id != b.id) return a.id < b.id;
    return a.generation > b.generation;
  });

  std::string out;
  if (rows.empty()) {
    out += "no valid preference documents\n";
  } else {
    std::map<std::string, size_t> rows_per_hub;
    for (const Row& row : rows) ++rows_per_hub[row.hub];
    std::vector<std::vector<std::string>> table;
    table.push_back({"from \\ to"});
    for (const std::string& hub : hubs) table.back().push_back(hub);
    for (const Row& row : rows) {
      table.push_back({rows_per_hub[row.hub] > 1 ? row.hub + " (" + row.id + ")" : row.hub});
      for (const std::string& hub : hubs) {
        const auto it = row.cells.find(hub);
        table.back().push_back(it == row.cells.end() ? "-" : it->second);
      }
    }
    std::vector<size_t> widths(table.front().size(), 0);
    for (const auto& line : table) {
      for (size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], line[i].size());
    }
    for (const auto& line : table) append_line(out, line, widths);
    out += "\n";
    for (const Row& row : rows) {
      out += fmt::format("{} ({}): generation {}, {}{}\n", row.hub, row.id, row.generation,
                         age_text(now, row.timestamp), row.stale ? ", stale" : "");
    }
  }
  if (!invalid.empty()) {
    out += "\ninvalid documents:\n";
    for (const std::string& line : invalid) out += "  " + line + "\n";
  }
  return out;
}

}  // namespace hubprobe
