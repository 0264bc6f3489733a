// SPDX-License-Identifier: Apache-2.0
// The preference document against its JSON Schema, checked by Debian's python3-jsonschema.
#include "hubprobe/preferences.h"

#include <gtest/gtest.h>

#include "../support/json_schema_check.h"
#include "../support/preference_fixtures.h"

namespace hubprobe {
namespace {

// ---- the JSON Schema, checked by a real validator (python3-jsonschema, installed by scripts/setup.sh) ----

SchemaCheck check_against_schema(const nlohmann::json& document) {
  return check_json_schema(document, "scheduler-api.schema.json");
}

TEST(PreferenceSchema, AgentDocumentsValidate) {
  PreferenceDocumentInput empty;
  empty.agent_id = "sg-edge-01";
  empty.agent_hub = "sg";
  empty.generation = 1;
  empty.stale = true;
  for (const auto& input : {gz_input(), empty}) {
    const SchemaCheck check = check_against_schema(make_preference_document(input));
    ASSERT_NE(check.status, 3) << check.output;
    EXPECT_EQ(check.status, 0) << check.output;
  }
}

TEST(PreferenceSchema, BadMembersFailTheSchema) {
  struct Case {
    const char* pointer;
    nlohmann::json value;
    const char* expected;  // in the validator's output
  };
  const Case cases[] = {
      {"/destinations/1/paths/0/state", "flapping", "/destinations/1/paths/0/state: 'flapping'"},
      {"/generation", 0, "/generation: 0 is less than the minimum"},
      {"/destinations/1/paths/0/costs/delay-rt", -1, "/destinations/1/paths/0/costs/delay-rt: -1 is less than"},
      {"/destinations/1/paths/0/costs/delay_rt", 3100, "delay_rt"},
      {"/destinations/1/paths/0/costs/lossrate", 150, "/destinations/1/paths/0/costs/lossrate: 150 is greater"},
      {"/timestamp", "2026-11-25T10:31:00Z", "/timestamp: '2026-11-25T10:31:00Z' does not match"},
      {"/agent/region", "south", "'region' was unexpected"},
  };
  for (const Case& c : cases) {
    nlohmann::json doc = make_preference_document(gz_input());
    doc[nlohmann::json::json_pointer(c.pointer)] = c.value;
    const SchemaCheck check = check_against_schema(doc);
    ASSERT_NE(check.status, 3) << check.output;
    EXPECT_EQ(check.status, 2) << c.pointer << ": " << check.output;
    EXPECT_NE(check.output.find(c.expected), std::string::npos) << c.pointer << ": " << check.output;
  }
  // The one-way delay's error bound never comes alone.
  nlohmann::json doc = make_preference_document(gz_input());
  doc["destinations"][1]["paths"][0]["costs"].erase("delay-ow");
  const SchemaCheck check = check_against_schema(doc);
  EXPECT_EQ(check.status, 2) << check.output;
  EXPECT_NE(check.output.find("'delay-ow' is a dependency of 'delay-ow-error'"), std::string::npos) << check.output;
}

TEST(PreferenceSchema, DocumentationExampleValidates) {
  const std::string doc = read_file(std::string(HUBPROBE_SOURCE_DIR) + "/docs/scheduler-api.md");
  const std::string marker = "<!-- example document: checked against the schema by preferences_test.cpp -->";
  const size_t at = doc.find(marker);
  ASSERT_NE(at, std::string::npos) << "docs/scheduler-api.md lost its example marker";
  const size_t begin = doc.find("```json\n", at);
  ASSERT_NE(begin, std::string::npos);
  const size_t end = doc.find("```", begin + 8);
  ASSERT_NE(end, std::string::npos);
  const nlohmann::json example = nlohmann::json::parse(doc.substr(begin + 8, end - begin - 8));
  const auto ok = validate_preference_document(example);
  EXPECT_TRUE(ok) << ok.error().message;
  const SchemaCheck check = check_against_schema(example);
  ASSERT_NE(check.status, 3) << check.output;
  EXPECT_EQ(check.status, 0) << check.output;
}

}  // namespace
}  // namespace hubprobe
