// SPDX-License-Identifier: Apache-2.0
// `hubprobe costmap`'s resources against the JSON Schemas written from RFC 7285 / RFC 8189 / RFC 9439
// (docs/alto.schema.json) and hubprobe's own (docs/costmap-pathmap.schema.json), checked by Debian's
// python3-jsonschema; and the RFCs' own examples: they validate, parse and round-trip.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../support/costmap_fixtures.h"
#include "../support/json_schema_check.h"
#include "hubprobe/costmap.h"

namespace hubprobe::costmap {
namespace {

using nlohmann::json;

// `definition` of docs/alto.schema.json, or "" for the whole of `schema_file`.
SchemaCheck check(const json& document, const std::string& schema_file, const std::string& definition) {
  return check_json_schema(document, schema_file, definition);
}

#define EXPECT_VALID(document, file, definition)                              \
  do {                                                                        \
    const SchemaCheck hp_check_ = check(document, file, definition);          \
    ASSERT_NE(hp_check_.status, 3) << hp_check_.output;                       \
    EXPECT_EQ(hp_check_.status, 0) << definition << ": " << hp_check_.output; \
  } while (0)

#define EXPECT_INVALID(document, file, definition)                            \
  do {                                                                        \
    const SchemaCheck hp_check_ = check(document, file, definition);          \
    ASSERT_NE(hp_check_.status, 3) << hp_check_.output;                       \
    EXPECT_EQ(hp_check_.status, 2) << definition << ": " << hp_check_.output; \
  } while (0)

FleetState fleet() {
  FleetState state;
  state.documents["gz-edge-01"] =
      costmap_document("gz-edge-01", "gz", 42,
                       {{"sg",
                         {{"sg-edge-01", "uplink-a", PathState::kOk, 0.0031, true, 0.01, 0.0015},
                          {"sg-edge-01", "uplink-b", PathState::kDegraded, 0.0052}}},
                        {"bj", {{"bj-edge-01", "isp-a", PathState::kDown, 0}}}});
  state.documents["sg-edge-01"] =
      costmap_document("sg-edge-01", "sg", 3, {{"gz", {{"gz-edge-01", "default", PathState::kOk, 0.0032, true}}}});
  state.documents["bj-edge-01"] = costmap_document(
      "bj-edge-01", "bj", 9, {{"gz", {{"gz-edge-01", "default", PathState::kOk, 0.0201, true}}}}, true);
  state.documents["broken"] = "{";
  state.registrations["gz-edge-01"] = costmap_registration("gz-edge-01", "gz", "198.18.0.1");
  state.registrations["sg-edge-01"] = costmap_registration("sg-edge-01", "sg", "2001:db8::1");
  state.registrations["bj-edge-01"] = costmap_registration("bj-edge-01", "bj", "");
  return state;
}

TEST(CostmapSchema, EveryResourceValidates) {
  for (const auto& maps : {FleetMaps::build(fleet()), FleetMaps::build({})}) {
    EXPECT_VALID(json::parse(maps->directory().body), "alto.schema.json", "InfoResourceDirectory");
    EXPECT_VALID(json::parse(maps->network_map().body), "alto.schema.json", "InfoResourceNetworkMap");
    for (const std::string& metric : maps->metrics()) {
      EXPECT_VALID(json::parse(maps->cost_map(metric)->body), "alto.schema.json", "RFC9439CostMap");
    }
    EXPECT_VALID(json::parse(maps->path_map(kNow).body), "costmap-pathmap.schema.json", "");
  }
  const auto maps = FleetMaps::build(fleet());
  EXPECT_EQ(maps->metrics().size(), 5u);
  const FilterAnswer single = maps->filter(
      R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "lossrate"}, "pids": {"srcs": [], "dsts": ["sg"]}})");
  EXPECT_VALID(json::parse(single.resource.body), "alto.schema.json", "RFC9439CostMap");
  const FilterAnswer multi = maps->filter(R"({"multi-cost-types": [
      {"cost-mode": "numerical", "cost-metric": "delay-rt"}, {"cost-mode": "numerical", "cost-metric": "delay-ow"}]})");
  EXPECT_VALID(json::parse(multi.resource.body), "alto.schema.json", "InfoResourceCostMap");
  for (const char* bad : {"{", R"({"cost-type": 1})", R"({"cost-type": {"cost-mode": "numerical"}})"}) {
    EXPECT_VALID(json::parse(maps->filter(bad).resource.body), "alto.schema.json", "ErrorResponse");
  }
}

TEST(CostmapSchema, TheSchemaRefusesWhatTheRfcsDoNotAllow) {
  const auto maps = FleetMaps::build(fleet());
  json network = json::parse(maps->network_map().body);
  network["meta"].erase("vtag");
  EXPECT_INVALID(network, "alto.schema.json", "InfoResourceNetworkMap");
  json cost = json::parse(maps->cost_map("delay-rt")->body);
  cost["cost-map"]["gz"]["sg"] = "3100";
  EXPECT_INVALID(cost, "alto.schema.json", "InfoResourceCostMap");
  cost = json::parse(maps->cost_map("delay-rt")->body);
  cost["cost-map"]["gz"]["sg"] = -1;
  EXPECT_INVALID(cost, "alto.schema.json", "RFC9439CostMap");
  cost = json::parse(maps->cost_map("delay-rt")->body);
  cost["meta"]["dependent-vtags"] = json::array();
  EXPECT_INVALID(cost, "alto.schema.json", "InfoResourceCostMap");
  EXPECT_INVALID(json::parse(R"({"pids": {"srcs": [], "dsts": []}})"), "alto.schema.json", "ReqFilteredCostMap");
  EXPECT_INVALID(json::parse(R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"},
                                 "pids": {"srcs": ["a b"], "dsts": []}})"),
                 "alto.schema.json", "ReqFilteredCostMap");
  EXPECT_INVALID(json::parse(R"({"meta": {"field": "x"}})"), "alto.schema.json", "ErrorResponse");
  json path_map = json::parse(maps->path_map(kNow).body);
  path_map["path-map"]["gz"]["sg"]["preferred"]["state"] = "fine";
  EXPECT_INVALID(path_map, "costmap-pathmap.schema.json", "");
}

// The examples of RFC 7285 (sections 9.7, 11.2.1.7, 11.2.3.7, 11.3.2.7, 8.5.2) and RFC 9439 (a directory
// with cost-context, section 3.1): each validates against the schema, parses and comes back the same.
TEST(CostmapSchema, TheRfcExamplesValidateAndRoundTrip) {
  struct Example {
    const char* definition;
    const char* text;
  };
  const Example examples[] = {
      {"InfoResourceDirectory", R"({
        "meta" : {
          "cost-types": {
            "num-routing": {"cost-mode" : "numerical", "cost-metric": "routingcost", "description": "My default"},
            "num-hop":     {"cost-mode" : "numerical", "cost-metric": "hopcount"},
            "ord-routing": {"cost-mode" : "ordinal", "cost-metric": "routingcost"},
            "ord-hop":     {"cost-mode" : "ordinal", "cost-metric": "hopcount"}
          },
          "default-alto-network-map" : "my-default-network-map"
        },
        "resources" : {
          "my-default-network-map" : {
            "uri" : "http://alto.example.com/networkmap",
            "media-type" : "application/alto-networkmap+json"
          },
          "numerical-routing-cost-map" : {
            "uri" : "http://alto.example.com/costmap/num/routingcost",
            "media-type" : "application/alto-costmap+json",
            "capabilities" : {"cost-type-names" : [ "num-routing" ]},
            "uses": [ "my-default-network-map" ]
          },
          "filtered-cost-map" : {
            "uri" : "http://alto.example.com/costmap/filtered/constraints",
            "media-type" : "application/alto-costmap+json",
            "accepts" : "application/alto-costmapfilter+json",
            "capabilities" : {"cost-constraints" : true, "cost-type-names" : [ "num-routing", "num-hop" ]},
            "uses": [ "my-default-network-map" ]
          },
          "custom-maps-resources" : {
            "uri" : "http://custom.alto.example.com/maps",
            "media-type" : "application/alto-directory+json"
          }
        }
      })"},
      {"InfoResourceNetworkMap", R"({
        "meta" : {
          "vtag": {"resource-id": "my-default-network-map", "tag": "da65eca2eb7a10ce8b059740b0b2e3f8eb1d4785"}
        },
        "network-map" : {
          "PID1" : {"ipv4" : ["192.0.2.0/24", "198.51.100.0/25"]},
          "PID2" : {"ipv4" : ["198.51.100.128/25"]},
          "PID3" : {"ipv4" : ["0.0.0.0/0"], "ipv6" : ["::/0"]}
        }
      })"},
      {"InfoResourceCostMap", R"({
        "meta" : {
          "dependent-vtags" : [
            {"resource-id": "my-default-network-map", "tag": "3ee2cb7e8d63d9fab71b9b34cbf764436315542e"}
          ],
          "cost-type" : {"cost-mode" : "numerical", "cost-metric": "routingcost"}
        },
        "cost-map" : {
          "PID1": { "PID1": 1,  "PID2": 5,  "PID3": 10 },
          "PID2": { "PID1": 5,  "PID2": 1,  "PID3": 15 },
          "PID3": { "PID1": 20, "PID2": 15  }
        }
      })"},
      {"ReqFilteredCostMap", R"({
        "cost-type" : {"cost-mode" : "numerical", "cost-metric" : "routingcost"},
        "pids" : {"srcs" : [ "PID1" ], "dsts" : [ "PID1", "PID2", "PID3" ]}
      })"},
      {"ErrorResponse", R"({"meta" : {"code" : "E_INVALID_FIELD_VALUE", "field" : "cost-type/cost-mode",
                                      "value" : "ordinal"}})"},
      {"InfoResourceDirectory", R"({
        "meta": {
          "cost-types": {
            "delay-ow": {"cost-mode": "numerical", "cost-metric": "delay-ow",
                         "cost-context": {"cost-source": "estimation"}},
            "delay-ow-sla": {"cost-mode": "numerical", "cost-metric": "delay-ow:p99",
                             "cost-context": {"cost-source": "sla", "parameters": {"link": "https://sla.example"}}}
          }
        },
        "resources": {
          "cost-map-pv": {
            "uri": "https://alto.example.com/costmap/delay",
            "media-type": "application/alto-costmap+json",
            "capabilities": {"cost-type-names": ["delay-ow", "delay-ow-sla"]}
          }
        }
      })"},
  };
  for (const Example& example : examples) {
    json parsed = json::parse(example.text);
    EXPECT_VALID(parsed, "alto.schema.json", example.definition);
    EXPECT_EQ(json::parse(parsed.dump()), parsed) << example.definition;
    EXPECT_EQ(json::parse(parsed.dump(2)), parsed) << example.definition;
  }
}

}  // namespace
}  // namespace hubprobe::costmap
