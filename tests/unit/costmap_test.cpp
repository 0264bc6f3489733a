// SPDX-License-Identifier: Apache-2.0
// `hubprobe costmap`'s pure part (hubprobe/costmap.h): the fleet's documents and registrations to the ALTO
// directory, network map, cost maps, filtered cost map and path map; vtags; the request header helpers.
// The JSON Schemas of these resources are checked with a real validator in
// tests/component/costmap_schema_test.cpp.
#include "hubprobe/costmap.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../support/costmap_fixtures.h"

namespace hubprobe::costmap {
namespace {

using nlohmann::json;

// gz has two agents (gz-edge-01 the better one toward sg: score 3.1 ms + 0.1 % loss x 100 ms = 3.2 ms against
// 4.0 ms), sg one; bj is a destination only.
FleetState fleet() {
  FleetState state;
  state.documents["gz-edge-01"] =
      costmap_document("gz-edge-01", "gz", 42,
                       {{"sg",
                         {{"sg-edge-01", "uplink-a", PathState::kOk, 0.0031, true, 0.001, 0.0015},
                          {"sg-edge-01", "uplink-b", PathState::kDegraded, 0.0052}}},
                        {"bj", {{"bj-edge-01", "isp-a", PathState::kDown, 0}}}});
  state.documents["gz-edge-02"] =
      costmap_document("gz-edge-02", "gz", 7, {{"sg", {{"sg-edge-01", "default", PathState::kOk, 0.0040, true}}}});
  state.documents["sg-edge-01"] =
      costmap_document("sg-edge-01", "sg", 3, {{"gz", {{"gz-edge-01", "default", PathState::kOk, 0.0032, true}}}});
  state.registrations["gz-edge-01"] = costmap_registration("gz-edge-01", "gz", "198.18.0.1");
  state.registrations["gz-edge-02"] = costmap_registration("gz-edge-02", "gz", "2001:db8::2");
  state.registrations["sg-edge-01"] = costmap_registration("sg-edge-01", "sg", "198.18.1.1");
  return state;
}

json body(const Resource& resource) { return json::parse(resource.body); }

TEST(CostmapNames, Rfc9439MetricsAndPidNames) {
  for (const char* metric :
       {"delay-ow", "delay-rt", "delay-rt:p99", "delay-rt:p99.9", "delay-variation", "lossrate", "delay-ow:min",
        "delay-rt:median", "lossrate:cur", "hopcount", "delay-rt:p100", "delay-rt:p0", "bw-available:max"}) {
    EXPECT_TRUE(is_rfc9439_metric(metric)) << metric;
  }
  for (const char* metric : {"", "delay-ow-error", "routingcost", "delay-rt:", "delay-rt:p101", "delay-rt:p99.",
                             "delay-rt:q99", "delay-rt:p", "delay-rt:p99:min", "DELAY-RT", "delay-rt:p100.5"}) {
    EXPECT_FALSE(is_rfc9439_metric(metric)) << metric;
  }
  EXPECT_TRUE(is_valid_pid_name("gz"));
  EXPECT_TRUE(is_valid_pid_name("PID1:a@b_c-d"));
  EXPECT_TRUE(is_valid_pid_name(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_pid_name(std::string(65, 'a')));
  EXPECT_FALSE(is_valid_pid_name(""));
  EXPECT_FALSE(is_valid_pid_name("gz.east"));  // '.' is reserved (RFC 7285 section 10.1)
  EXPECT_FALSE(is_valid_pid_name("g z"));
}

TEST(CostmapNetworkMap, OnePidPerHubWithTheRegisteredAddresses) {
  const auto maps = FleetMaps::build(fleet());
  json map = body(maps->network_map());
  EXPECT_EQ(maps->network_map().content_type, "application/alto-networkmap+json");
  EXPECT_EQ(map["network-map"], json::parse(R"({
    "bj": {},
    "gz": {"ipv4": ["198.18.0.1/32"], "ipv6": ["2001:db8::2/128"]},
    "sg": {"ipv4": ["198.18.1.1/32"]}
  })"));
  EXPECT_EQ(map["meta"]["vtag"]["resource-id"], "hubs");
  EXPECT_EQ(map["meta"]["vtag"]["tag"], maps->network_map().tag);
  EXPECT_EQ(maps->network_map().tag.size(), 32u);
  EXPECT_EQ(maps->network_map().etag, "\"" + maps->network_map().tag + "\"");
}

TEST(CostmapCostMaps, OneMapPerRfc9439MetricInRfcUnits) {
  const auto maps = FleetMaps::build(fleet());
  // delay-ow comes from gz-edge-01's uplink-a only; delay-ow-error is hubprobe's, not RFC 9439's.
  EXPECT_EQ(maps->metrics(),
            (std::vector<std::string>{"delay-ow", "delay-rt", "delay-rt:p99", "delay-variation", "lossrate"}));
  json delay = maps->cost_map_json("delay-rt");
  EXPECT_EQ(delay["meta"]["cost-type"], json::parse(R"({"cost-mode": "numerical", "cost-metric": "delay-rt",
                            "cost-context": {"cost-source": "estimation"}})"));
  EXPECT_EQ(delay["meta"]["dependent-vtags"], json::array({body(maps->network_map())["meta"]["vtag"]}));
  EXPECT_EQ(delay["meta"]["vtag"]["resource-id"], "costmap-delay-rt");
  // Microseconds; gz -> sg from the better of gz's two agents (3.1 ms, not 4.0 ms); gz -> bj is down: absent.
  EXPECT_EQ(delay["cost-map"], json::parse(R"({"gz": {"sg": 3100.0}, "sg": {"gz": 3200.0}})"));
  EXPECT_NEAR(maps->cost_map_json("lossrate")["cost-map"]["gz"]["sg"].get<double>(), 0.1, 1e-9);  // a percentage
  EXPECT_EQ(maps->cost_map_json("delay-ow")["cost-map"], json::parse(R"({"gz": {"sg": 1500.0}})"));
  EXPECT_EQ(maps->cost_map("delay-ow-error"), nullptr);
  EXPECT_EQ(maps->cost_map("delay-rt")->content_type, "application/alto-costmap+json");
}

TEST(CostmapAggregation, TheBestEligiblePathOfTheHubsAgentsWithTheAgentsCounted) {
  FleetState state = fleet();
  // gz-edge-01's preferred path to sg is in its hold-down (not eligible): gz-edge-02's 4.0 ms counts.
  state.documents["gz-edge-01"] = costmap_document(
      "gz-edge-01", "gz", 43, {{"sg", {{"sg-edge-01", "uplink-a", PathState::kOk, 0.0031, true, 0, kNaN, false}}}});
  auto maps = FleetMaps::build(state);
  EXPECT_EQ(maps->cost_map_json("delay-rt")["cost-map"]["gz"]["sg"], 4000.0);
  json cell = json::parse(maps->path_map(kNow).body)["path-map"]["gz"]["sg"];
  EXPECT_EQ(cell["agents-counted"], 2);
  EXPECT_EQ(cell["preferred"]["agent"], "gz-edge-02");
  EXPECT_EQ(cell["preferred"]["path"], "default");
  EXPECT_EQ(cell["preferred"]["state"], "ok");
  EXPECT_EQ(cell["preferred"]["generation"], 7);
  ASSERT_EQ(cell["agents"].size(), 2u);
  EXPECT_EQ(cell["agents"][0]["agent"], "gz-edge-01");
  EXPECT_EQ(cell["agents"][0]["preferred"]["eligible"], false);

  // A stale document (the agent stopped) counts for nothing; the path map still lists the agent.
  state.documents["gz-edge-02"] = costmap_document(
      "gz-edge-02", "gz", 8, {{"sg", {{"sg-edge-01", "default", PathState::kOk, 0.0040, true}}}}, true);
  maps = FleetMaps::build(state);
  EXPECT_FALSE(maps->cost_map_json("delay-rt")["cost-map"].contains("gz"));
  json path_map = json::parse(maps->path_map(kNow).body);
  EXPECT_EQ(path_map["agents"]["gz-edge-02"]["stale"], true);
  EXPECT_EQ(path_map["agents"]["gz-edge-02"]["counted"], false);
  EXPECT_EQ(path_map["path-map"]["gz"]["sg"]["agents-counted"], 1);
  EXPECT_TRUE(path_map["path-map"]["gz"]["sg"]["preferred"].is_null());
}

TEST(CostmapPathMap, PreferredPathStateGenerationAndAge) {
  const auto maps = FleetMaps::build(fleet());
  const Resource resource = maps->path_map(kNow + 2500 * kSecond / 1000);
  EXPECT_EQ(resource.content_type, "application/json");
  EXPECT_EQ(resource.etag, "W/\"" + resource.tag + "\"");
  json map = json::parse(resource.body);
  EXPECT_EQ(map["schema"], "hubprobe.pathmap/v1");
  json& cell = map["path-map"]["gz"]["sg"];
  EXPECT_EQ(cell["preferred"]["agent"], "gz-edge-01");
  EXPECT_EQ(cell["preferred"]["peer"], "sg-edge-01");
  EXPECT_EQ(cell["preferred"]["path"], "uplink-a");
  EXPECT_EQ(cell["preferred"]["generation"], 42);
  EXPECT_EQ(cell["preferred"]["timestamp"], "2026-11-25T10:31:00.123Z");
  EXPECT_DOUBLE_EQ(cell["preferred"]["age-s"].get<double>(), 2.5);
  // gz -> bj: every candidate down, no preference.
  EXPECT_TRUE(map["path-map"]["gz"]["bj"]["preferred"].is_null());
  EXPECT_EQ(map["agents"]["gz-edge-02"]["address"], "2001:db8::2");
  // The ages move, the tag does not.
  EXPECT_EQ(maps->path_map(kNow + 60 * kSecond).etag, resource.etag);
}

TEST(CostmapVtags, ChangeExactlyWhenTheContentDoes) {
  const FleetState base = fleet();
  const auto a = FleetMaps::build(base);
  const auto b = FleetMaps::build(base);
  EXPECT_EQ(a->network_map().etag, b->network_map().etag);
  EXPECT_EQ(a->cost_map("delay-rt")->etag, b->cost_map("delay-rt")->etag);
  EXPECT_EQ(a->directory().etag, b->directory().etag);
  EXPECT_EQ(a->path_map(kNow).etag, b->path_map(kNow).etag);

  // A new generation with the same costs: the cost maps and the network map stay, the path map moves.
  FleetState refreshed = base;
  refreshed.documents["sg-edge-01"] =
      costmap_document("sg-edge-01", "sg", 4, {{"gz", {{"gz-edge-01", "default", PathState::kOk, 0.0032, true}}}});
  const auto c = FleetMaps::build(refreshed);
  EXPECT_EQ(c->network_map().etag, a->network_map().etag);
  for (const std::string& metric : a->metrics()) EXPECT_EQ(c->cost_map(metric)->etag, a->cost_map(metric)->etag);
  EXPECT_NE(c->path_map(kNow).etag, a->path_map(kNow).etag);

  // sg -> gz 1 ms slower: delay-rt (and p99, score) move; lossrate does not.
  FleetState slower = base;
  slower.documents["sg-edge-01"] =
      costmap_document("sg-edge-01", "sg", 4, {{"gz", {{"gz-edge-01", "default", PathState::kOk, 0.0042, true}}}});
  const auto d = FleetMaps::build(slower);
  EXPECT_NE(d->cost_map("delay-rt")->etag, a->cost_map("delay-rt")->etag);
  EXPECT_EQ(d->cost_map("lossrate")->etag, a->cost_map("lossrate")->etag);
  EXPECT_EQ(d->network_map().etag, a->network_map().etag);

  // A new address: the network map moves, and with it every cost map's dependent vtag.
  FleetState moved = base;
  moved.registrations["sg-edge-01"] = costmap_registration("sg-edge-01", "sg", "198.18.1.2");
  const auto e = FleetMaps::build(moved);
  EXPECT_NE(e->network_map().etag, a->network_map().etag);
  EXPECT_NE(e->cost_map("lossrate")->etag, a->cost_map("lossrate")->etag);
  EXPECT_EQ(e->cost_map_json("lossrate")["meta"]["dependent-vtags"][0]["tag"], e->network_map().tag);
}

TEST(CostmapLiveness, AnAgentWhoseKeysWentIsGoneFromEveryMap) {
  FleetState state = fleet();
  state.documents.erase("sg-edge-01");
  state.registrations.erase("sg-edge-01");
  const auto maps = FleetMaps::build(state);
  json network = body(maps->network_map())["network-map"];
  EXPECT_EQ(network["sg"], json::object());  // still a destination of gz's agents, without an address
  EXPECT_FALSE(maps->cost_map_json("delay-rt")["cost-map"].contains("sg"));
  json path_map = json::parse(maps->path_map(kNow).body);
  EXPECT_FALSE(path_map["agents"].contains("sg-edge-01"));
  EXPECT_FALSE(path_map["path-map"].contains("sg"));

  // Every agent gone: no PIDs, no cost maps, the directory keeps the network map and the filter.
  const auto empty = FleetMaps::build({});
  EXPECT_EQ(body(empty->network_map())["network-map"], json::object());
  EXPECT_TRUE(empty->metrics().empty());
  json directory = body(empty->directory());
  EXPECT_TRUE(directory["resources"].contains("hubs"));
  EXPECT_TRUE(directory["resources"].contains("filtered-costmap"));
}

TEST(CostmapInvalid, BrokenDocumentsAndRegistrationsAreListedNotServed) {
  FleetState state = fleet();
  state.documents["x-edge-01"] = "{not json";
  state.documents["y-edge-01"] = R"({"schema": "hubprobe.preferences/v1"})";
  state.documents["other-key"] = costmap_document("z-edge-01", "z", 1, {});
  state.documents["dot-edge-01"] = costmap_document("dot-edge-01", "a.b", 1, {});
  state.registrations["w-edge-01"] = R"({"id": "w-edge-01"})";
  const auto maps = FleetMaps::build(state);
  std::map<std::string, std::string> reasons;
  for (const Ignored& ignored : maps->ignored()) reasons[ignored.agent] = ignored.reason;
  EXPECT_EQ(reasons["x-edge-01"], "document: not JSON");
  EXPECT_EQ(reasons["y-edge-01"], "document: agent: missing (expected an object with \"id\" and \"hub\")");
  EXPECT_EQ(reasons["other-key"], "document: agent.id \"z-edge-01\" differs from the key");
  EXPECT_EQ(reasons["dot-edge-01"], "document: hub \"a.b\" is not an ALTO PID name");
  EXPECT_EQ(reasons["w-edge-01"], "registration: no \"hub\"");
  EXPECT_EQ(json::parse(maps->path_map(kNow).body)["ignored"].size(), 5u);
  EXPECT_FALSE(body(maps->network_map())["network-map"].contains("z"));
}

TEST(CostmapDirectory, NamesEveryResourceWithItsMediaTypeAndCostTypes) {
  ServiceLayout layout;
  layout.public_url = "https://alto.example.net/";
  const auto maps = FleetMaps::build(fleet(), layout);
  EXPECT_EQ(maps->directory().content_type, "application/alto-directory+json");
  json directory = body(maps->directory());
  EXPECT_EQ(directory["meta"]["default-alto-network-map"], "hubs");
  EXPECT_EQ(directory["meta"]["cost-types"]["delay-rt:p99"]["cost-metric"], "delay-rt:p99");
  EXPECT_EQ(directory["meta"]["cost-types"]["delay-rt:p99"]["cost-context"]["cost-source"], "estimation");
  json& resources = directory["resources"];
  EXPECT_EQ(resources["hubs"], json::parse(R"({"uri": "https://alto.example.net/alto/networkmap",
                                               "media-type": "application/alto-networkmap+json"})"));
  EXPECT_EQ(resources["costmap-delay-rt:p99"]["uri"], "https://alto.example.net/alto/costmap/delay-rt:p99");
  EXPECT_EQ(resources["costmap-delay-rt:p99"]["capabilities"]["cost-type-names"], json::array({"delay-rt:p99"}));
  EXPECT_EQ(resources["costmap-delay-rt:p99"]["uses"], json::array({"hubs"}));
  EXPECT_EQ(resources["filtered-costmap"]["accepts"], "application/alto-costmapfilter+json");
  EXPECT_EQ(resources["filtered-costmap"]["capabilities"]["cost-type-names"].size(), 5u);
  EXPECT_EQ(resources["filtered-costmap"]["capabilities"]["cost-constraints"], true);
  EXPECT_EQ(resources["filtered-costmap"]["capabilities"]["max-cost-types"], 5);
  EXPECT_EQ(resources["pathmap"]["uri"], "https://alto.example.net/alto/pathmap");
  // Without a public URL: paths, resolved against the directory's URI.
  EXPECT_EQ(body(FleetMaps::build(fleet())->directory())["resources"]["hubs"]["uri"], "/alto/networkmap");
}

TEST(CostmapFilter, SubsetsOfPidsAndMetrics) {
  const auto maps = FleetMaps::build(fleet());
  FilterAnswer answer = maps->filter(R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"},
                                         "pids": {"srcs": ["gz"], "dsts": []}})");
  ASSERT_EQ(answer.status, 200) << answer.resource.body;
  EXPECT_EQ(answer.resource.content_type, "application/alto-costmap+json");
  json map = json::parse(answer.resource.body);
  EXPECT_EQ(map["cost-map"], json::parse(R"({"gz": {"sg": 3100.0}})"));
  EXPECT_EQ(map["meta"]["cost-type"]["cost-metric"], "delay-rt");
  EXPECT_EQ(map["meta"]["dependent-vtags"][0]["tag"], maps->network_map().tag);

  // PIDs the map does not define are left out; no "pids": every PID.
  answer = maps->filter(R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"},
                            "pids": {"srcs": ["sg", "nowhere"], "dsts": ["gz"]}})");
  EXPECT_EQ(json::parse(answer.resource.body)["cost-map"], json::parse(R"({"sg": {"gz": 3200.0}})"));
  answer = maps->filter(R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}})");
  EXPECT_EQ(json::parse(answer.resource.body)["cost-map"], maps->cost_map_json("delay-rt")["cost-map"]);

  // Constraints (RFC 7285 section 11.3.2.3).
  answer = maps->filter(R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"},
                            "constraints": ["le 3150", "gt 0"]})");
  EXPECT_EQ(json::parse(answer.resource.body)["cost-map"], json::parse(R"({"gz": {"sg": 3100.0}})"));

  // Several metrics at once (RFC 8189): arrays in the order asked, null where a path has no value.
  answer = maps->filter(R"({"multi-cost-types": [{"cost-mode": "numerical", "cost-metric": "delay-rt"},
                                                  {"cost-mode": "numerical", "cost-metric": "delay-ow"}],
                            "pids": {"srcs": [], "dsts": []}})");
  ASSERT_EQ(answer.status, 200) << answer.resource.body;
  map = json::parse(answer.resource.body);
  EXPECT_EQ(map["cost-map"], json::parse(R"({"gz": {"sg": [3100.0, 1500.0]}, "sg": {"gz": [3200.0, null]}})"));
  EXPECT_EQ(map["meta"]["multi-cost-types"].size(), 2u);
  EXPECT_FALSE(map["meta"].contains("cost-type"));
}

TEST(CostmapFilter, MalformedRequestsGetTheRfc7285ErrorCodes) {
  const auto maps = FleetMaps::build(fleet());
  struct Case {
    const char* request;
    const char* code;
    const char* field;  // "" = none
  };
  const Case cases[] = {
      {"{not json", "E_SYNTAX", ""},
      {"[1, 2]", "E_SYNTAX", ""},
      {R"({"pids": {"srcs": [], "dsts": []}})", "E_MISSING_FIELD", "cost-type"},
      {R"({"cost-type": "delay-rt"})", "E_INVALID_FIELD_TYPE", "cost-type"},
      {R"({"cost-type": {"cost-metric": "delay-rt"}})", "E_MISSING_FIELD", "cost-type/cost-mode"},
      {R"({"cost-type": {"cost-mode": "numerical"}})", "E_MISSING_FIELD", "cost-type/cost-metric"},
      {R"({"cost-type": {"cost-mode": 1, "cost-metric": "delay-rt"}})", "E_INVALID_FIELD_TYPE", "cost-type/cost-mode"},
      {R"({"cost-type": {"cost-mode": "ordinal", "cost-metric": "delay-rt"}})", "E_INVALID_FIELD_VALUE",
       "cost-type/cost-mode"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "routingcost"}})", "E_INVALID_FIELD_VALUE",
       "cost-type/cost-metric"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt", "cost-context": "sla"}})",
       "E_INVALID_FIELD_TYPE", "cost-type/cost-context"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}, "pids": []})", "E_INVALID_FIELD_TYPE",
       "pids"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}, "pids": {"dsts": []}})",
       "E_MISSING_FIELD", "pids/srcs"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}, "pids": {"srcs": []}})",
       "E_MISSING_FIELD", "pids/dsts"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}, "pids": {"srcs": "gz", "dsts": []}})",
       "E_INVALID_FIELD_TYPE", "pids/srcs"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}, "pids": {"srcs": [7], "dsts": []}})",
       "E_INVALID_FIELD_TYPE", "pids/srcs"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"},
           "pids": {"srcs": [], "dsts": ["not a pid"]}})",
       "E_INVALID_FIELD_VALUE", "pids/dsts"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}, "constraints": "le 5"})",
       "E_INVALID_FIELD_TYPE", "constraints"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}, "constraints": ["below 5"]})",
       "E_INVALID_FIELD_VALUE", "constraints"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}, "constraints": ["le five"]})",
       "E_INVALID_FIELD_VALUE", "constraints"},
      {R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"},
           "multi-cost-types": [{"cost-mode": "numerical", "cost-metric": "delay-rt"}]})",
       "E_INVALID_FIELD_VALUE", "multi-cost-types"},
      {R"({"multi-cost-types": {"cost-mode": "numerical", "cost-metric": "delay-rt"}})", "E_INVALID_FIELD_TYPE",
       "multi-cost-types"},
      {R"({"multi-cost-types": []})", "E_INVALID_FIELD_VALUE", "multi-cost-types"},
      {R"({"multi-cost-types": [{"cost-mode": "numerical", "cost-metric": "delay-rt"}], "constraints": ["le 1"]})",
       "E_INVALID_FIELD_VALUE", "constraints"},
      {R"({"multi-cost-types": [{"cost-mode": "numerical", "cost-metric": "delay-rt"}],
           "or-constraints": [["[0] le 1"]]})",
       "E_INVALID_FIELD_VALUE", "or-constraints"},
  };
  for (const Case& c : cases) {
    const FilterAnswer answer = maps->filter(c.request);
    EXPECT_EQ(answer.status, 400) << c.request;
    EXPECT_EQ(answer.resource.content_type, "application/alto-error+json") << c.request;
    json error = json::parse(answer.resource.body, nullptr, false);
    ASSERT_TRUE(error.is_object()) << answer.resource.body;
    EXPECT_EQ(error["meta"]["code"], c.code) << c.request;
    if (*c.field == '\0') {
      EXPECT_FALSE(error["meta"].contains("field")) << c.request;
    } else {
      EXPECT_EQ(error["meta"]["field"], c.field) << c.request;
    }
  }
  // E_SYNTAX says what the syntax error is.
  EXPECT_EQ(json::parse(maps->filter("{").resource.body)["meta"]["syntax-error"], "the request body is not JSON");
}

// RFC 7285 section 11.3.2.7's request asks for routingcost, which this server does not offer: an error
// that names the field (section 8.5.2). The same request for an RFC 9439 metric is answered.
TEST(CostmapFilter, TheRfcExampleRequests) {
  const auto maps = FleetMaps::build(fleet());
  const std::string rfc7285 = R"({
    "cost-type" : {"cost-mode" : "numerical",
                   "cost-metric" : "routingcost"},
    "pids" : {
      "srcs" : [ "PID1" ],
      "dsts" : [ "PID1", "PID2", "PID3" ]
    }
  })";
  json error = json::parse(maps->filter(rfc7285).resource.body);
  EXPECT_EQ(error, json::parse(R"({"meta": {"code": "E_INVALID_FIELD_VALUE", "field": "cost-type/cost-metric",
                                             "value": "routingcost"}})"));
  // RFC 9439 section 4.1.4's request, against PIDs this fleet has.
  const std::string rfc9439 = R"({
    "cost-type": {"cost-mode": "numerical", "cost-metric": "delay-ow"},
    "pids": {"srcs": ["gz"], "dsts": ["sg", "bj"]}
  })";
  const FilterAnswer answer = maps->filter(rfc9439);
  ASSERT_EQ(answer.status, 200);
  EXPECT_EQ(json::parse(answer.resource.body)["cost-map"], json::parse(R"({"gz": {"sg": 1500.0}})"));
}

TEST(CostmapHeaders, IfNoneMatchAcceptAndPreferWait) {
  EXPECT_TRUE(if_none_match("\"abc\"", "\"abc\""));
  EXPECT_TRUE(if_none_match("W/\"abc\"", "\"abc\""));
  EXPECT_TRUE(if_none_match("\"abc\"", "W/\"abc\""));
  EXPECT_TRUE(if_none_match("\"x\", \"abc\"", "\"abc\""));
  EXPECT_TRUE(if_none_match("*", "\"abc\""));
  EXPECT_FALSE(if_none_match("\"abcd\"", "\"abc\""));
  EXPECT_FALSE(if_none_match("\"ab", "\"abc\""));
  EXPECT_FALSE(if_none_match("", "\"abc\""));

  EXPECT_TRUE(accepts_media_type("", "application/alto-costmap+json"));
  EXPECT_TRUE(accepts_media_type("*/*", "application/alto-costmap+json"));
  EXPECT_TRUE(accepts_media_type("application/*", "application/alto-costmap+json"));
  EXPECT_TRUE(
      accepts_media_type("application/alto-costmap+json,application/alto-error+json", "application/alto-costmap+json"));
  EXPECT_TRUE(accepts_media_type("Application/ALTO-Costmap+JSON; q=0.5", "application/alto-costmap+json"));
  EXPECT_FALSE(accepts_media_type("application/alto-networkmap+json", "application/alto-costmap+json"));
  EXPECT_FALSE(accepts_media_type("application/alto-costmap+json;q=0", "application/alto-costmap+json"));
  EXPECT_FALSE(accepts_media_type("text/html", "application/json"));

  EXPECT_EQ(preferred_wait_seconds("wait=30"), 30);
  EXPECT_EQ(preferred_wait_seconds("respond-async, wait=10"), 10);
  EXPECT_EQ(preferred_wait_seconds("Wait = 5"), 5);
  EXPECT_EQ(preferred_wait_seconds("handling=lenient"), 0);
  EXPECT_EQ(preferred_wait_seconds("nowait=3"), 0);
  EXPECT_EQ(preferred_wait_seconds(""), 0);
}

TEST(CostmapErrors, AltoErrorBodies) {
  EXPECT_EQ(json::parse(alto_error("E_SYNTAX")), json::parse(R"({"meta": {"code": "E_SYNTAX"}})"));
  EXPECT_EQ(json::parse(alto_error("E_INVALID_FIELD_VALUE", "pids/srcs", json("a b"))),
            json::parse(R"({"meta": {"code": "E_INVALID_FIELD_VALUE", "field": "pids/srcs", "value": "a b"}})"));
  EXPECT_EQ(content_tag(json::parse(R"({"b": 1, "a": 2})")), content_tag(json::parse(R"({"a": 2, "b": 1})")));
  EXPECT_NE(content_tag(json::parse(R"({"a": 1})")), content_tag(json::parse(R"({"a": 2})")));
}

}  // namespace
}  // namespace hubprobe::costmap
