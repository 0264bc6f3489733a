// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/preferences.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include "../support/preference_fixtures.h"

namespace hubprobe {
namespace {

TEST(PreferenceDocument, ShapeAndRfc9439Units) {
  const nlohmann::json doc = make_preference_document(gz_input());
  EXPECT_EQ(doc["schema"], "hubprobe.preferences/v1");
  EXPECT_EQ(doc["agent"], nlohmann::json({{"id", "gz-edge-01"}, {"hub", "gz"}}));
  EXPECT_EQ(doc["generation"], 42);
  EXPECT_EQ(doc["timestamp"], "2026-11-25T10:31:00.123Z");
  EXPECT_EQ(doc["stale"], false);
  ASSERT_EQ(doc["destinations"].size(), 2u);
  EXPECT_EQ(doc["destinations"][0]["hub"], "bj");  // sorted by hub
  const nlohmann::json& sg = doc["destinations"][1];
  EXPECT_EQ(sg["hub"], "sg");
  EXPECT_EQ(sg["preferred"], nlohmann::json({{"peer", "sg-edge-01"}, {"path", "uplink-a"}}));
  ASSERT_EQ(sg["paths"].size(), 2u);

  const nlohmann::json& a = sg["paths"][0];
  EXPECT_EQ(a["peer"], "sg-edge-01");
  EXPECT_EQ(a["path"], "uplink-a");
  EXPECT_EQ(a["rank"], 1);
  EXPECT_EQ(a["state"], "ok");
  EXPECT_EQ(a["eligible"], true);
  EXPECT_EQ(a["preferred"], true);
  EXPECT_DOUBLE_EQ(a["score"].get<double>(), 0.004124);  // seconds
  EXPECT_DOUBLE_EQ(a["confidence"].get<double>(), 1.0);
  EXPECT_EQ(a["samples"], 100);
  EXPECT_EQ(a["state-since"], "2026-11-25T10:21:00.123Z");
  // RFC 9439: delays in microseconds, lossrate in percent.
  const nlohmann::json& costs = a["costs"];
  EXPECT_DOUBLE_EQ(costs["delay-rt"].get<double>(), 3100.0);
  EXPECT_DOUBLE_EQ(costs["delay-rt:p99"].get<double>(), 3400.0);
  EXPECT_DOUBLE_EQ(costs["delay-ow"].get<double>(), 1500.0);
  EXPECT_DOUBLE_EQ(costs["delay-ow-error"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(costs["delay-variation"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(costs["lossrate"].get<double>(), 1.0);
  EXPECT_EQ(costs.size(), 6u) << costs.dump();

  const nlohmann::json& b = sg["paths"][1];
  EXPECT_EQ(b["rank"], 2);
  EXPECT_EQ(b["state"], "degraded");
  EXPECT_EQ(b["eligible"], false);
  EXPECT_EQ(b["preferred"], false);
  EXPECT_DOUBLE_EQ(b["confidence"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(b["costs"]["lossrate"].get<double>(), 20.0);
  EXPECT_FALSE(b["costs"].contains("delay-ow"));        // clocks not synchronised
  EXPECT_FALSE(b["costs"].contains("delay-ow-error"));  // only ever with delay-ow
}

TEST(PreferenceDocument, NaNIsAnAbsentMemberNeverNullOrInvalidJson) {
  const nlohmann::json doc = make_preference_document(gz_input());
  const nlohmann::json& bj = doc["destinations"][0];
  EXPECT_TRUE(bj["preferred"].is_null());
  const nlohmann::json& down = bj["paths"][0];
  EXPECT_EQ(down["state"], "down");
  EXPECT_FALSE(down.contains("score"));
  EXPECT_EQ(down["costs"], nlohmann::json({{"lossrate", 100.0}}));
  const std::string text = doc.dump();
  EXPECT_EQ(text.find("NaN"), std::string::npos) << text;
  const size_t null_at = text.find("null");
  EXPECT_EQ(text.rfind("null"), null_at) << "one null only: " << text;
  EXPECT_EQ(text.rfind("\"preferred\":null"), null_at - 12) << "the missing preference is the only null";
  EXPECT_TRUE(nlohmann::json::accept(text));
}

TEST(PreferenceDocument, NegativeOneWayDelayAndUnsetTimesAreNotPublished) {
  PreferenceDocumentInput input = gz_input();
  input.destinations[0].ranked[0].delay_ow_s = -0.0002;  // clocks further apart than the delay
  input.destinations[0].ranked[0].state_since = 0;
  input.timestamp = kNow + 999'999;  // milliseconds are truncated, never rounded up
  const nlohmann::json doc = make_preference_document(input);
  const nlohmann::json& a = doc["destinations"][1]["paths"][0];
  EXPECT_FALSE(a["costs"].contains("delay-ow"));
  EXPECT_FALSE(a["costs"].contains("delay-ow-error"));
  EXPECT_FALSE(a.contains("state-since"));
  EXPECT_EQ(doc["timestamp"], "2026-11-25T10:31:00.123Z");
}

TEST(PreferenceDocument, PathsInRankOrderAndOnePreferredFromTheSelectorId) {
  PreferenceDocumentInput input = gz_input();
  auto& sg = input.destinations[0];
  std::swap(sg.ranked[0], sg.ranked[1]);  // given worst first
  sg.preferred = sg.ranked[0].id;         // the selector now prefers uplink-b
  const nlohmann::json doc = make_preference_document(input);
  const nlohmann::json& paths = doc["destinations"][1]["paths"];
  EXPECT_EQ(paths[0]["path"], "uplink-a");
  EXPECT_EQ(paths[0]["preferred"], false) << "the flag follows DestinationPreferences::preferred";
  EXPECT_EQ(paths[1]["path"], "uplink-b");
  EXPECT_EQ(paths[1]["preferred"], true);
  EXPECT_EQ(doc["destinations"][1]["preferred"]["path"], "uplink-b");
}

TEST(PreferenceValidation, AcceptsWhatTheAgentMakes) {
  const auto ok = validate_preference_document(make_preference_document(gz_input()));
  EXPECT_TRUE(ok) << ok.error().message;
  PreferenceDocumentInput empty;
  empty.agent_id = "sg-edge-01";
  empty.agent_hub = "sg";
  empty.generation = 1;
  empty.stale = true;
  const auto also_ok = validate_preference_document(make_preference_document(empty));
  EXPECT_TRUE(also_ok) << also_ok.error().message;
}

TEST(PreferenceValidation, NamesTheBadMember) {
  struct Case {
    const char* pointer;
    nlohmann::json value;  // discarded: remove the member
    const char* expected;
  };
  const Case cases[] = {
      {"/schema", "hubprobe.preferences/v2", "schema: expected \"hubprobe.preferences/v1\", got \"hubprobe.pref"},
      {"/agent/id", nlohmann::json::value_t::discarded, "agent.id: missing (expected a non-empty string)"},
      {"/agent/hub", "", "agent.hub: expected a non-empty string, got \"\""},
      {"/generation", 0, "generation: expected an integer >= 1, got 0"},
      {"/generation", -3, "generation: expected an integer >= 1, got -3"},
      {"/generation", "42", "generation: expected an integer >= 1, got \"42\""},
      {"/generation", 4.5, "generation: expected an integer >= 1, got 4.5"},
      {"/timestamp", "yesterday", "timestamp: expected an RFC 3339 date-time, got \"yesterday\""},
      {"/timestamp", "2026-02-31T00:00:00Z", "timestamp: expected an RFC 3339 date-time"},
      {"/stale", "no", "stale: expected true or false, got \"no\""},
      {"/destinations", nlohmann::json::object(), "destinations: expected an array, got {}"},
      {"/destinations/0/hub", 5, "destinations[0].hub: expected a non-empty string, got 5"},
      {"/destinations/1/preferred", "uplink-a", "destinations[1].preferred: expected null or an object"},
      {"/destinations/1/preferred/peer", nlohmann::json::value_t::discarded, "destinations[1].preferred.peer: missing"},
      {"/destinations/1/paths", nlohmann::json::value_t::discarded, "destinations[1].paths: missing"},
      {"/destinations/1/paths/0/state", "flapping", "destinations[1].paths[0].state: expected one of \"unknown\""},
      {"/destinations/1/paths/1/rank", 0, "destinations[1].paths[1].rank: expected an integer >= 1, got 0"},
      {"/destinations/1/paths/0/eligible", 1, "destinations[1].paths[0].eligible: expected true or false, got 1"},
      {"/destinations/1/paths/0/confidence", 1.5, "destinations[1].paths[0].confidence: expected a number from 0 to 1"},
      {"/destinations/1/paths/0/samples", -1, "destinations[1].paths[0].samples: expected an integer >= 0"},
      {"/destinations/1/paths/0/score", "fast", "destinations[1].paths[0].score: expected a number >= 0"},
      {"/destinations/1/paths/0/costs", nlohmann::json::array(), "destinations[1].paths[0].costs: expected an object"},
      {"/destinations/1/paths/0/costs/delay-rt", -1, "destinations[1].paths[0].costs.delay-rt: expected a number >= 0"},
      {"/destinations/1/paths/0/costs/lossrate", 150, "destinations[1].paths[0].costs.lossrate: expected a percentage"},
      {"/destinations/1/paths/0/state-since", "10:31", "destinations[1].paths[0].state-since: expected an RFC 3339"},
  };
  for (const Case& c : cases) {
    nlohmann::json doc = make_preference_document(gz_input());
    const nlohmann::json::json_pointer pointer(c.pointer);
    if (c.value.is_discarded()) {
      doc.at(pointer.parent_pointer()).erase(pointer.back());
    } else {
      doc[pointer] = c.value;
    }
    const auto result = validate_preference_document(doc);
    ASSERT_FALSE(result) << c.pointer << " = " << c.value.dump() << " was accepted";
    EXPECT_EQ(result.error().message.rfind(c.expected, 0), 0u)
        << c.pointer << ": got \"" << result.error().message << "\", expected it to start with \"" << c.expected
        << "\"";
  }
  const auto not_object = validate_preference_document("garbage");
  ASSERT_FALSE(not_object);
  EXPECT_EQ(not_object.error().message, "document: expected a JSON object, got \"garbage\"");
}

TEST(PreferenceValidation, ReadersAcceptAnyRfc3339Time) {
  for (const char* time : {"2026-11-25T10:31:00Z", "2026-11-25T18:31:00.5+08:00", "2026-11-25t10:31:00.123456789z"}) {
    nlohmann::json doc = make_preference_document(gz_input());
    doc["timestamp"] = time;
    const auto ok = validate_preference_document(doc);
    EXPECT_TRUE(ok) << time << ": " << ok.error().message;
  }
}

// Found by tests/fuzz/fuzz_prefs.cpp (seed regression_timestamp_year_overflow): a year outside what
// WallNs holds overflowed int64 (undefined behaviour) instead of being refused.
TEST(PreferenceValidation, TimesBeyondWhatWallNsHoldsAreRefused) {
  for (const char* time : {"9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "1014-03-01T00:00:00Z",
                           "2262-04-12T00:00:00Z", "1677-09-21T00:00:00Z"}) {
    nlohmann::json doc = make_preference_document(gz_input());
    doc["timestamp"] = time;
    const auto refused = validate_preference_document(doc);
    ASSERT_FALSE(refused) << time;
    EXPECT_EQ(refused.error().message.rfind("timestamp: expected an RFC 3339 date-time", 0), 0u) << time;
  }
  for (const char* time : {"2262-04-10T23:59:59Z", "1677-09-22T00:00:00Z"}) {
    nlohmann::json doc = make_preference_document(gz_input());
    doc["timestamp"] = time;
    EXPECT_TRUE(validate_preference_document(doc)) << time;
  }
}

// ---- `hubprobe prefs` ----

PreferenceDocumentInput agent(const std::string& id, const std::string& hub, uint64_t generation, WallNs timestamp) {
  PreferenceDocumentInput input;
  input.agent_id = id;
  input.agent_hub = hub;
  input.generation = generation;
  input.timestamp = timestamp;
  return input;
}

DestinationPreferences preferring(const std::string& hub, const std::string& peer, const std::string& path,
                                  double delay_rt_s) {
  DestinationPreferences destination;
  destination.hub = hub;
  destination.ranked = {candidate(peer, path, 1, PathState::kOk, delay_rt_s)};
  destination.preferred = destination.ranked[0].id;
  return destination;
}

TEST(PreferencesTable, HubByHubWithAgesStaleAndInvalidDocuments) {
  PreferenceDocumentInput bj = agent("bj-edge-01", "bj", 7, kNow - 65 * kSecond);
  bj.stale = true;
  bj.destinations = {preferring("sg", "sg-edge-01", "uplink-b", 0.025),
                     preferring("gz", "gz-edge-01", "isp-a", 0.02012)};
  PreferenceDocumentInput gz = gz_input();
  gz.timestamp = kNow - 3200 * kSecond / 1000;
  PreferenceDocumentInput sg = agent("sg-edge-01", "sg", 3, kNow - kSecond / 2);
  sg.destinations = {preferring("gz", "gz-edge-01", "isp-b", 0.0032)};
  nlohmann::json bad = make_preference_document(agent("x-edge-01", "x", 1, kNow));
  bad["generation"] = 0;

  const std::vector<nlohmann::json> documents = {make_preference_document(gz), make_preference_document(sg),
                                                 make_preference_document(bj), bad, "garbage"};
  EXPECT_EQ(render_preferences_table(documents, kNow),
            "from \\ to  bj    gz          sg\n"
            "bj         -     isp-a 20.1  uplink-b 25.0\n"
            "gz         down  -           uplink-a 3.1\n"
            "sg         -     isp-b 3.2   -\n"
            "\n"
            "bj (bj-edge-01): generation 7, 65.0 s old, stale\n"
            "gz (gz-edge-01): generation 42, 3.2 s old\n"
            "sg (sg-edge-01): generation 3, 0.5 s old\n"
            "\n"
            "invalid documents:\n"
            "  document 4 (agent \"x-edge-01\"): generation: expected an integer >= 1, got 0\n"
            "  document 5: document: expected a JSON object, got \"garbage\"\n");
}

TEST(PreferencesTable, TheDefaultPathIsShownByItsPeer) {
  // Peers without [[path]] entries (one per link, say): the choice is between peers of the hub.
  PreferenceDocumentInput one = agent("zjk-demo", "zjk", 4, kNow);
  one.destinations = {preferring("ga", "ga-link2", "default", 0.02315), preferring("wh", "wh", "default", 0.0164)};
  EXPECT_EQ(render_preferences_table({make_preference_document(one)}, kNow),
            "from \\ to  ga             wh       zjk\n"
            "zjk        ga-link2 23.1  wh 16.4  -\n"
            "\n"
            "zjk (zjk-demo): generation 4, 0.0 s old\n");
}

TEST(PreferencesTable, SeveralAgentsInAHubAndCellsWithoutAPreference) {
  PreferenceDocumentInput one = agent("gz-edge-01", "gz", 5, kNow - 2 * kSecond);
  DestinationPreferences unmeasured = preferring("sg", "sg-edge-01", "uplink-a", kNaN);  // preferred, no delay-rt
  DestinationPreferences starting;  // candidates, none judged yet: no preference
  starting.hub = "sh";
  starting.ranked = {candidate("sh-edge-01", "uplink-a", 1, PathState::kUnknown, kNaN)};
  DestinationPreferences nothing;  // a hub without candidates
  nothing.hub = "wh";
  one.destinations = {unmeasured, starting, nothing};
  PreferenceDocumentInput two = agent("gz-edge-02", "gz", 9, kNow + 2 * kSecond);  // its clock runs ahead
  two.destinations = {preferring("sg", "sg-edge-01", "uplink-c", 0.00304)};

  EXPECT_EQ(render_preferences_table({make_preference_document(two), make_preference_document(one)}, kNow),
            "from \\ to        gz  sg            sh    wh\n"
            "gz (gz-edge-01)  -   uplink-a ?    none  none\n"
            "gz (gz-edge-02)  -   uplink-c 3.0  -     -\n"
            "\n"
            "gz (gz-edge-01): generation 5, 2.0 s old\n"
            "gz (gz-edge-02): generation 9, 2.0 s in the future\n");
  EXPECT_EQ(render_preferences_table({}, kNow), "no valid preference documents\n");
}

// An integral float beyond 2^64 (valid: JSON Schema's integer) and a document dated 1700 (its age does not
// fit in an int64 of nanoseconds) render without undefined behaviour (tests/fuzz/fuzz_prefs.cpp).
TEST(PreferencesTable, HugeGenerationsAndOldDocumentsRender) {
  nlohmann::json doc = make_preference_document(agent("gz-edge-01", "gz", 1, kNow));
  doc["generation"] = 1e300;
  doc["timestamp"] = "1700-01-01T00:00:00Z";
  ASSERT_TRUE(validate_preference_document(doc));
  const std::string table = render_preferences_table({doc}, kNow);
  EXPECT_NE(table.find("gz (gz-edge-01): generation 18446744073709551615, "), std::string::npos) << table;
  EXPECT_NE(table.find(" s old\n"), std::string::npos) << table;
}

// ---- the generation store ----

}  // namespace
}  // namespace hubprobe
