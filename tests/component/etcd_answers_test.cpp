// SPDX-License-Identifier: Apache-2.0
// What the etcd gateway answers, read without a server (etcd_answers.h; the client against a real etcd is
// etcd_sink_test.cpp), and the documents `hubprobe prefs` reads (prefs_documents.h). The regression cases
// come from tests/fuzz/ (fuzz_etcd_answer, fuzz_prefs).
#include "hubprobe/etcd_answers.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <sstream>
#include <string>
#include <vector>

#include "hubprobe/prefs_documents.h"

namespace hubprobe {
namespace {

using namespace etcd_gateway;

const std::string kEndpoint = "http://198.18.0.254:2379";

TEST(EtcdAnswers, RangeDecodesKeysValuesLeasesAndRevisions) {
  const auto answer = parse_answer(kEndpoint, 200,
                                   R"({"header":{"revision":"12"},"count":"2","kvs":[)"
                                   R"({"key":"L2EvYg==","value":"eyJpZCI6MX0=","lease":"7587869786596421000",)"
                                   R"("mod_revision":"12"},{"key":"L2EvYw==","mod_revision":3}]})");
  ASSERT_TRUE(answer.ok()) << answer.error().message;
  const auto kvs = range_key_values(*answer, kEndpoint);
  ASSERT_TRUE(kvs.ok()) << kvs.error().message;
  ASSERT_EQ(kvs->size(), 2u);
  EXPECT_EQ((*kvs)[0].key, "/a/b");
  EXPECT_EQ((*kvs)[0].value, R"({"id":1})");
  EXPECT_EQ((*kvs)[0].lease, 7587869786596421000);
  EXPECT_EQ((*kvs)[0].mod_revision, 12);
  EXPECT_EQ((*kvs)[1].key, "/a/c");
  EXPECT_EQ((*kvs)[1].value, "");  // an empty value is left out of the answer
  EXPECT_EQ((*kvs)[1].lease, 0);
  EXPECT_EQ((*kvs)[1].mod_revision, 3);
  EXPECT_TRUE(range_key_values(nlohmann::json::object(), kEndpoint)->empty());  // no key: no "kvs"
}

TEST(EtcdAnswers, ErrorsNameTheEndpointAndMapNotFound) {
  const auto unary =
      parse_answer(kEndpoint, 404, R"({"error":"lease not found","code":5,"message":"lease not found"})");
  ASSERT_FALSE(unary.ok());
  EXPECT_EQ(unary.error().message, "etcd " + kEndpoint + ": lease not found (HTTP 404)");
  EXPECT_EQ(unary.error().code, ENOENT);
  const auto streaming = parse_answer(kEndpoint, 200, "{\"error\":{\"grpc_code\":5,\"message\":\"gone\"}}\n{}");
  ASSERT_FALSE(streaming.ok());
  EXPECT_EQ(streaming.error().message, "etcd " + kEndpoint + ": gone (HTTP 200)");
  EXPECT_EQ(streaming.error().code, ENOENT);
  const auto other = parse_answer(kEndpoint, 500, R"({"error":"etcdserver: too many requests","code":8})");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, EPROTO);
  const auto html = parse_answer(kEndpoint, 200, "<html>\n<body>proxy</body></html>");
  ASSERT_FALSE(html.ok());
  EXPECT_EQ(html.error().message,
            "etcd " + kEndpoint + ": not an etcd v3 JSON gateway answer (HTTP 200): <html> <body>proxy</body></html>");
}

// Found reading the code behind fuzz_etcd_answer (the fuzzer had not reached them in 1M inputs; the seeds
// regression_* in tests/fuzz/corpus/etcd_answer/ are these answers): members of the wrong type threw
// nlohmann::json's type_error out of the client, which ended the agent (discovery, the etcd sink) or
// `hubprobe prefs --etcd`.
TEST(EtcdAnswers, MembersOfTheWrongTypeAreErrorsNotExceptions) {
  const auto message = parse_answer(kEndpoint, 200, R"({"error":"lease not found","message":1,"code":5})");
  ASSERT_FALSE(message.ok());
  EXPECT_EQ(message.error().message, "etcd " + kEndpoint + ": lease not found (HTTP 200)");
  EXPECT_EQ(message.error().code, ENOENT);
  const auto key = range_key_values(nlohmann::json::parse(R"({"kvs":[{"key":1}]})"), kEndpoint);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().message, "etcd " + kEndpoint + ": range: member \"key\" is not a string: 1");
  EXPECT_EQ(key.error().code, EPROTO);
  const auto value = range_key_values(nlohmann::json::parse(R"({"kvs":[{"key":"YQ==","value":[]}]})"), kEndpoint);
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.error().message, "etcd " + kEndpoint + ": range: member \"value\" is not a string: []");
  const auto null_value =
      range_key_values(nlohmann::json::parse(R"({"kvs":[{"key":"YQ==","value":null}]})"), kEndpoint);
  ASSERT_TRUE(null_value.ok());
  EXPECT_EQ((*null_value)[0].value, "");
}

TEST(EtcdAnswers, LeaseGrantAndKeepalive) {
  EXPECT_EQ(*lease_grant_id(nlohmann::json::parse(R"({"ID":"42","TTL":"10"})"), kEndpoint), 42);
  const auto no_id = lease_grant_id(nlohmann::json::parse(R"({"TTL":"10"})"), kEndpoint);
  ASSERT_FALSE(no_id.ok());
  EXPECT_EQ(no_id.error().message, "etcd " + kEndpoint + ": lease grant answered without a lease ID");
  const auto bad_id = lease_grant_id(nlohmann::json::parse(R"({"ID":"4x2"})"), kEndpoint);
  ASSERT_FALSE(bad_id.ok());
  EXPECT_EQ(bad_id.error().message, "etcd " + kEndpoint + ": lease grant: member \"ID\" is not an int64: \"4x2\"");
  EXPECT_EQ(*keep_alive_ttl(nlohmann::json::parse(R"({"result":{"ID":"42","TTL":"7"}})"), kEndpoint), 7);
  EXPECT_EQ(*keep_alive_ttl(nlohmann::json::parse(R"({"result":{"ID":"42"}})"), kEndpoint), 0);
  EXPECT_EQ(*keep_alive_ttl(nlohmann::json::parse(R"({"result":{"TTL":"-3"}})"), kEndpoint), 0);
}

TEST(EtcdAnswers, Base64AndRangeEnd) {
  for (const std::string& text : std::vector<std::string>{"", "a", "ab", "abc", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(*base64_decode(base64_encode(text)), text);
  }
  EXPECT_FALSE(base64_decode("abc").ok());
  EXPECT_FALSE(base64_decode("ab!d").ok());
  EXPECT_EQ(prefix_range_end("/fleet/agents/"), "/fleet/agents0");
  EXPECT_EQ(prefix_range_end(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(prefix_range_end(std::string("\xff", 1)), std::string(1, '\0'));
}

// The /v3/watch stream's messages (hubprobe costmap's watch): the created message, PUT (the enum's zero, left
// out by the gateway) and DELETE events, a compacted start revision, errors.
TEST(EtcdAnswers, WatchMessages) {
  auto created = watch_message(R"({"result":{"header":{"revision":"41"},"created":true}})", kEndpoint);
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_TRUE(created->created);
  EXPECT_EQ(created->header_revision, 41);
  EXPECT_TRUE(created->events.empty());

  auto events = watch_message(R"({"result":{"header":{"revision":"43"},"events":[)"
                              R"({"kv":{"key":"L2EvMQ==","value":"b25l","mod_revision":"42","lease":"7"}},)"
                              R"({"type":"DELETE","kv":{"key":"L2EvMg==","mod_revision":"43"}}]}})",
                              kEndpoint);
  ASSERT_TRUE(events.ok()) << events.error().message;
  ASSERT_EQ(events->events.size(), 2u);
  EXPECT_EQ(events->events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events->events[0].kv.key, "/a/1");
  EXPECT_EQ(events->events[0].kv.value, "one");
  EXPECT_EQ(events->events[0].kv.lease, 7);
  EXPECT_EQ(events->events[0].kv.mod_revision, 42);
  EXPECT_EQ(events->events[1].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events->events[1].kv.key, "/a/2");
  EXPECT_EQ(events->events[1].kv.mod_revision, 43);

  auto compacted = watch_message(
      R"({"result":{"header":{"revision":"90"},"canceled":true,"compact_revision":"50","cancel_reason":"mvcc: required revision has been compacted"}})",
      kEndpoint);
  ASSERT_TRUE(compacted.ok());
  EXPECT_TRUE(compacted->canceled);
  EXPECT_EQ(compacted->compact_revision, 50);
  EXPECT_EQ(compacted->cancel_reason, "mvcc: required revision has been compacted");

  auto error =
      watch_message(R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}})", kEndpoint);
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.error().message, "etcd " + std::string(kEndpoint) + ": watch: etcdserver: no leader");
  for (const char* bad : {"not json", "[1]", R"({"result":{"events":{}}})", R"({"result":{"events":[{"type":"PUT"}]}})",
                          R"({"result":{"events":[{"type":"TOUCH","kv":{}}]}})",
                          R"({"result":{"events":[{"kv":{"key":7}}]}})", R"({"result":{"header":{"revision":[]}}})"}) {
    EXPECT_FALSE(watch_message(bad, kEndpoint).ok()) << bad;
  }
  EXPECT_EQ(*header_revision(nlohmann::json::parse(R"({"header":{"revision":"12"},"kvs":[]})"), kEndpoint), 12);
  EXPECT_EQ(*header_revision(nlohmann::json::parse("{}"), kEndpoint), 0);
}

TEST(PrefsDocuments, KeepsEveryJsonDocumentAndCountsTheValidOnes) {
  PreferenceDocuments found;
  std::ostringstream err;
  add_preference_document(found, "/fleet/preferences/a", R"({"schema":"hubprobe.preferences/v0"})", err);
  add_preference_document(found, "b.json", "{\"agent\":", err);
  add_preference_document(found, "c.json",
                          R"({"schema":"hubprobe.preferences/v1","agent":{"id":"a","hub":"h"},"generation":1,)"
                          R"("timestamp":"2026-11-25T10:31:00Z","stale":false,"destinations":[]})",
                          err);
  EXPECT_EQ(found.documents.size(), 2u);
  EXPECT_EQ(found.valid, 1u);
  EXPECT_EQ(err.str(), "hubprobe prefs: b.json: not JSON\n");
}

}  // namespace
}  // namespace hubprobe
