// SPDX-License-Identifier: Apache-2.0
// `hubprobe costmap`'s service (hubprobe/costmap_service.h) against a real etcd (tests/support/etcd_process.h)
// with its real HTTP server: content types and status codes, ETag / If-None-Match and the vtags, the
// filtered cost map, the long poll, two instances serving the same maps, a lease that expires, etcd
// restarted (the watch resumes) and etcd wiped (everything read again). Without /usr/bin/etcd the tests
// skip, or fail when HUBPROBE_REQUIRE_PRIVILEGED=1.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "../support/costmap_fixtures.h"
#include "../support/etcd_process.h"
#include "hubprobe/costmap_service.h"
#include "hubprobe/etcd_client.h"

namespace hubprobe::costmap {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using std::chrono::milliseconds;

// How long a change may take to reach the maps: the issue's bound.
constexpr milliseconds kChangeBound{2000};
// As tests/component/etcd_sink_test.cpp: a lease of TTL 2 s not kept alive is deleted within
// TTL + 0.5 s (lessor) + 3 s (its revoke retry) + 1 s of slack.
constexpr milliseconds kExpiryBound{2000 + 500 + 3000 + 1000};

bool eventually(const std::function<bool()>& condition, milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= give_up) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One HTTP/1.1 request to 127.0.0.1:port (Connection: close); status 0 when it failed.
Reply http(uint16_t port, const std::string& method, const std::string& path,
           const std::map<std::string, std::string>& headers = {}, const std::string& body = {}, int timeout_ms = 5000,
           bool content_length = true) {
  Reply reply;
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  if (content_length && (method == "POST" || !body.empty())) {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  const std::string answer = test::loopback_http_exchange(port, request, timeout_ms);
  const size_t end = answer.find("\r\n\r\n");
  if (answer.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return reply;
  reply.status = std::stoi(answer.substr(9, 3));
  size_t line = answer.find("\r\n") + 2;
  while (line < end) {
    const size_t next = answer.find("\r\n", line);
    const std::string text = answer.substr(line, next - line);
    const size_t colon = text.find(':');
    if (colon != std::string::npos) {
      std::string name = text.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t start = colon + 1;
      while (start < text.size() && text[start] == ' ') ++start;
      reply.headers[name] = text.substr(start);
    }
    line = next + 2;
  }
  reply.body = answer.substr(end + 4);
  return reply;
}

class CostmapServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_ETCD();
    const std::string error = etcd_.start();
    ASSERT_TRUE(error.empty()) << error;
    client_ = std::make_unique<EtcdClient>(client_options());
  }

  EtcdClient::Options client_options() const {
    EtcdClient::Options options;
    options.endpoints = {etcd_.client_url()};
    options.timeout_ns = 1'000'000'000;
    return options;
  }

  std::unique_ptr<Service> start_service() {
    ServiceOptions options;
    options.etcd = client_options();
    options.listen = "127.0.0.1:0";
    options.threads = 8;
    options.retry_initial_ns = 50'000'000;
    options.retry_max_ns = 300'000'000;
    auto service = Service::start(
        options, [](const std::string& message) { std::fprintf(stderr, "[costmap] %s\n", message.c_str()); });
    EXPECT_TRUE(service.ok()) << (service.ok() ? "" : service.error().message);
    if (!service.ok()) return nullptr;
    EXPECT_TRUE(eventually([&] { return (*service)->synced(); }, milliseconds(10000)));
    return std::move(*service);
  }

  void put(const std::string& key, const std::string& value, int64_t lease = 0) {
    auto done = client_->put(key, value, lease);
    ASSERT_TRUE(done.ok()) << done.error().message;
  }

  void put_agent(const std::string& id, const std::string& hub, const std::string& document, const std::string& address,
                 int64_t lease = 0) {
    put("/hubprobe/agents/" + id, costmap_registration(id, hub, address), lease);
    put("/hubprobe/preferences/" + id, document, lease);
  }

  void put_fleet(double gz_to_sg_s = 0.0031) {
    put_agent("gz-edge-01", "gz",
              costmap_document("gz-edge-01", "gz", 42,
                               {{"sg", {{"sg-edge-01", "uplink-a", PathState::kOk, gz_to_sg_s, true}}}}),
              "198.18.0.1");
    put_agent(
        "sg-edge-01", "sg",
        costmap_document("sg-edge-01", "sg", 3, {{"gz", {{"gz-edge-01", "default", PathState::kOk, 0.0032, true}}}}),
        "198.18.1.1");
  }

  // The delay-rt of from -> to in the service's cost map, NaN when absent or unreadable.
  static double delay(uint16_t port, const std::string& from, const std::string& to) {
    const Reply reply = http(port, "GET", "/alto/costmap/delay-rt");
    if (reply.status != 200) return kNaN;
    json map = json::parse(reply.body, nullptr, false);
    if (!map.is_object() || !map["cost-map"].contains(from) || !map["cost-map"][from].contains(to)) return kNaN;
    return map["cost-map"][from][to].get<double>();
  }

  test::EtcdProcess etcd_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(CostmapServiceTest, ServesTheAltoResourcesWithTheirMediaTypes) {
  put_fleet();
  auto service = start_service();
  ASSERT_TRUE(service);
  const uint16_t port = service->port();
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 3100.0; }, kChangeBound));

  const Reply directory = http(port, "GET", "/alto");
  EXPECT_EQ(directory.status, 200);
  EXPECT_EQ(directory.header("content-type"), "application/alto-directory+json");
  EXPECT_FALSE(directory.header("etag").empty());
  json ird = json::parse(directory.body);
  EXPECT_EQ(ird["resources"]["costmap-delay-rt"]["uri"], "/alto/costmap/delay-rt");

  const Reply network = http(port, "GET", "/alto/networkmap");
  EXPECT_EQ(network.status, 200);
  EXPECT_EQ(network.header("content-type"), "application/alto-networkmap+json");
  EXPECT_EQ(json::parse(network.body)["network-map"]["gz"]["ipv4"], json::array({"198.18.0.1/32"}));

  const Reply cost = http(port, "GET", "/alto/costmap/delay-rt", {{"Accept", "application/alto-costmap+json"}});
  EXPECT_EQ(cost.status, 200);
  EXPECT_EQ(cost.header("content-type"), "application/alto-costmap+json");
  EXPECT_EQ(cost.header("cache-control"), "no-cache");
  EXPECT_EQ(cost.header("etag"), "\"" + json::parse(cost.body)["meta"]["vtag"]["tag"].get<std::string>() + "\"");

  const Reply head = http(port, "HEAD", "/alto/costmap/delay-rt");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("etag"), cost.header("etag"));
  EXPECT_TRUE(head.body.empty());

  const Reply paths = http(port, "GET", "/alto/pathmap");
  EXPECT_EQ(paths.status, 200);
  EXPECT_EQ(paths.header("content-type"), "application/json");
  EXPECT_EQ(json::parse(paths.body)["path-map"]["gz"]["sg"]["preferred"]["path"], "uplink-a");

  EXPECT_EQ(http(port, "GET", "/alto/costmap/hopcount").status, 404);
  EXPECT_EQ(http(port, "GET", "/alto/nothing").status, 404);
  EXPECT_EQ(http(port, "GET", "/alto/costmap/delay-rt", {{"Accept", "text/html"}}).status, 406);
  const Reply post_to_map = http(port, "POST", "/alto/networkmap", {}, "{}");
  EXPECT_EQ(post_to_map.status, 405);
  EXPECT_EQ(post_to_map.header("allow"), "GET, HEAD");
  const Reply get_filter = http(port, "GET", "/alto/costmap");
  EXPECT_EQ(get_filter.status, 405);
  EXPECT_EQ(get_filter.header("allow"), "POST");
  const Reply health = http(port, "GET", "/healthz");
  EXPECT_EQ(health.status, 200);
}

TEST_F(CostmapServiceTest, FilteredCostMapAndItsErrors) {
  put_fleet();
  auto service = start_service();
  ASSERT_TRUE(service);
  const uint16_t port = service->port();
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 3100.0; }, kChangeBound));
  const std::map<std::string, std::string> filter_type = {
      {"Content-Type", "application/alto-costmapfilter+json"},
      {"Accept", "application/alto-costmap+json,application/alto-error+json"}};

  Reply reply = http(port, "POST", "/alto/costmap", filter_type,
                     R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"},
                         "pids": {"srcs": ["sg"], "dsts": []}})");
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.header("content-type"), "application/alto-costmap+json");
  EXPECT_EQ(json::parse(reply.body)["cost-map"], json::parse(R"({"sg": {"gz": 3200.0}})"));

  reply = http(port, "POST", "/alto/costmap", filter_type, R"({"cost-type": {"cost-mode": "ordinal",
                                                                "cost-metric": "delay-rt"}})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.header("content-type"), "application/alto-error+json");
  EXPECT_EQ(json::parse(reply.body)["meta"]["code"], "E_INVALID_FIELD_VALUE");
  EXPECT_EQ(json::parse(reply.body)["meta"]["field"], "cost-type/cost-mode");

  reply = http(port, "POST", "/alto/costmap", filter_type, "{\"cost-type\": ");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(json::parse(reply.body)["meta"]["code"], "E_SYNTAX");

  reply = http(port, "POST", "/alto/costmap", filter_type, R"({"pids": {"srcs": [], "dsts": []}})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(json::parse(reply.body)["meta"]["code"], "E_MISSING_FIELD");

  reply =
      http(port, "POST", "/alto/costmap", filter_type,
           R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}, "pids": {"srcs": 1, "dsts": []}})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(json::parse(reply.body)["meta"]["code"], "E_INVALID_FIELD_TYPE");

  EXPECT_EQ(http(port, "POST", "/alto/costmap", {{"Content-Type", "text/plain"}}, "{}").status, 415);
  EXPECT_EQ(http(port, "POST", "/alto/costmap", filter_type, std::string(70 * 1024, ' ')).status, 413);
}

TEST_F(CostmapServiceTest, EtagsAndVtagsChangeExactlyWhenTheContentDoes) {
  put_fleet();
  auto service = start_service();
  ASSERT_TRUE(service);
  const uint16_t port = service->port();
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 3100.0; }, kChangeBound));
  const Reply first = http(port, "GET", "/alto/costmap/delay-rt");
  const std::string etag = first.header("etag");
  ASSERT_FALSE(etag.empty());
  const std::string network_etag = http(port, "GET", "/alto/networkmap").header("etag");

  Reply again = http(port, "GET", "/alto/costmap/delay-rt", {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_EQ(again.header("etag"), etag);
  EXPECT_TRUE(again.body.empty());
  EXPECT_TRUE(again.header("content-length").empty());
  EXPECT_EQ(http(port, "GET", "/alto/costmap/delay-rt", {{"If-None-Match", "\"other\""}}).status, 200);

  // The same values written again: new etcd revisions, the same content, the same tags.
  const int64_t before = service->revision();
  put_fleet();
  ASSERT_TRUE(eventually([&] { return service->revision() > before + 3; }, kChangeBound));
  EXPECT_EQ(http(port, "GET", "/alto/costmap/delay-rt").header("etag"), etag);
  EXPECT_EQ(http(port, "GET", "/alto/costmap/delay-rt", {{"If-None-Match", etag}}).status, 304);

  // 1 ms more from gz to sg: within 2 s the cost map has it, under a new tag; the network map keeps its own.
  const auto changed_at = Clock::now();
  put_fleet(0.0041);
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 4100.0; }, kChangeBound));
  RecordProperty("change_seen_ms",
                 std::to_string(std::chrono::duration_cast<milliseconds>(Clock::now() - changed_at).count()));
  const Reply changed = http(port, "GET", "/alto/costmap/delay-rt", {{"If-None-Match", etag}});
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(changed.header("etag"), etag);
  EXPECT_EQ(http(port, "GET", "/alto/networkmap").header("etag"), network_etag);
}

TEST_F(CostmapServiceTest, ALongPollReturnsWithTheChange) {
  put_fleet();
  auto service = start_service();
  ASSERT_TRUE(service);
  const uint16_t port = service->port();
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 3100.0; }, kChangeBound));
  const std::string etag = http(port, "GET", "/alto/costmap/delay-rt").header("etag");

  // No change: 304 after the wait, never before it.
  auto started = Clock::now();
  Reply idle = http(port, "GET", "/alto/costmap/delay-rt", {{"If-None-Match", etag}, {"Prefer", "wait=1"}});
  EXPECT_EQ(idle.status, 304);
  EXPECT_GE(Clock::now() - started, milliseconds(1000));

  // A change while the client waits: it gets the new map at once.
  auto waiting = std::async(std::launch::async, [&] {
    return http(port, "GET", "/alto/costmap/delay-rt", {{"If-None-Match", etag}, {"Prefer", "wait=20"}}, {}, 25000);
  });
  std::this_thread::sleep_for(milliseconds(300));
  started = Clock::now();
  put_fleet(0.0051);
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const Reply reply = waiting.get();
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(10));
  EXPECT_EQ(reply.status, 200);
  EXPECT_NE(reply.header("etag"), etag);
  EXPECT_EQ(json::parse(reply.body)["cost-map"]["gz"]["sg"], 5100.0);
}

TEST_F(CostmapServiceTest, TwoInstancesServeTheSameMaps) {
  put_fleet();
  auto one = start_service();
  auto two = start_service();
  ASSERT_TRUE(one && two);
  ASSERT_TRUE(eventually([&] { return delay(one->port(), "gz", "sg") == 3100.0; }, kChangeBound));
  ASSERT_TRUE(eventually([&] { return delay(two->port(), "gz", "sg") == 3100.0; }, kChangeBound));
  for (const char* path : {"/alto", "/alto/networkmap", "/alto/costmap/delay-rt", "/alto/costmap/lossrate",
                           "/alto/costmap/delay-rt:p99", "/alto/costmap/delay-variation"}) {
    const Reply a = http(one->port(), "GET", path);
    const Reply b = http(two->port(), "GET", path);
    EXPECT_EQ(a.status, 200) << path;
    EXPECT_EQ(a.body, b.body) << path;
    EXPECT_EQ(a.header("etag"), b.header("etag")) << path;
    // A client's tag from one instance is good at the other (behind a load balancer).
    EXPECT_EQ(http(two->port(), "GET", path, {{"If-None-Match", a.header("etag")}}).status, 304) << path;
  }
  EXPECT_EQ(http(one->port(), "GET", "/alto/pathmap").header("etag"),
            http(two->port(), "GET", "/alto/pathmap").header("etag"));
  const std::string filter = R"({"cost-type": {"cost-mode": "numerical", "cost-metric": "delay-rt"}})";
  EXPECT_EQ(http(one->port(), "POST", "/alto/costmap", {}, filter).body,
            http(two->port(), "POST", "/alto/costmap", {}, filter).body);
}

TEST_F(CostmapServiceTest, AnAgentWhoseLeaseExpiredDisappears) {
  put_fleet();
  auto lease = client_->grant_lease(2);
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  put_agent(
      "bj-edge-01", "bj",
      costmap_document("bj-edge-01", "bj", 5, {{"gz", {{"gz-edge-01", "default", PathState::kOk, 0.0201, true}}}}),
      "198.18.2.1", *lease);
  auto service = start_service();
  ASSERT_TRUE(service);
  const uint16_t port = service->port();
  ASSERT_TRUE(eventually([&] { return delay(port, "bj", "gz") == 20100.0; }, kChangeBound));
  // Nobody keeps the lease alive (the agent was killed): its keys expire, and with them its entries.
  const auto expires = Clock::now();
  ASSERT_TRUE(eventually([&] { return std::isnan(delay(port, "bj", "gz")); }, kExpiryBound));
  RecordProperty("gone_after_ms",
                 std::to_string(std::chrono::duration_cast<milliseconds>(Clock::now() - expires).count()));
  json network = json::parse(http(port, "GET", "/alto/networkmap").body);
  EXPECT_FALSE(network["network-map"].contains("bj"));
  json paths = json::parse(http(port, "GET", "/alto/pathmap").body);
  EXPECT_FALSE(paths["agents"].contains("bj-edge-01"));
  EXPECT_EQ(delay(port, "gz", "sg"), 3100.0) << "the others stay";
}

TEST_F(CostmapServiceTest, TheWatchResumesAfterEtcdRestarts) {
  put_fleet();
  auto service = start_service();
  ASSERT_TRUE(service);
  const uint16_t port = service->port();
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 3100.0; }, kChangeBound));
  EXPECT_EQ(service->full_reads(), 1);

  etcd_.kill();
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(delay(port, "gz", "sg"), 3100.0) << "the last maps are served while etcd is away";
  const std::string error = etcd_.start();
  ASSERT_TRUE(error.empty()) << error;
  put_fleet(0.0061);
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 6100.0; }, milliseconds(5000)));
  EXPECT_EQ(service->full_reads(), 1) << "resumed from the last revision, not read again";
  EXPECT_EQ(http(port, "GET", "/healthz").status, 200);
}

TEST_F(CostmapServiceTest, AWipedEtcdIsReadAgain) {
  put_fleet();
  auto service = start_service();
  ASSERT_TRUE(service);
  const uint16_t port = service->port();
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 3100.0; }, kChangeBound));
  for (int i = 0; i < 5; ++i) put_fleet();  // the old store's revision well ahead of the new one's

  etcd_.kill();
  etcd_.wipe_data();
  const std::string error = etcd_.start();
  ASSERT_TRUE(error.empty()) << error;
  // A new cluster at revision 1: the service notices the store went back and reads it (empty) again.
  ASSERT_TRUE(eventually([&] { return service->full_reads() >= 2; }, milliseconds(10000)));
  ASSERT_TRUE(eventually([&] { return http(port, "GET", "/alto/costmap/delay-rt").status == 404; }, kChangeBound));
  put_fleet(0.0071);
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 7100.0; }, kChangeBound));
}

// The revision the watch would resume from was compacted while it was away: etcd says so, and the service
// reads everything again (and misses nothing that changed meanwhile).
TEST_F(CostmapServiceTest, ACompactedRevisionIsReadAgain) {
  put_fleet();
  ServiceOptions options;
  options.etcd = client_options();
  options.listen = "127.0.0.1:0";
  options.threads = 4;
  // A long first pause after the disconnect: etcd is back and compacted before the watch retries.
  options.retry_initial_ns = 4'000'000'000;
  options.retry_max_ns = 4'000'000'000;
  auto started = Service::start(
      options, [](const std::string& message) { std::fprintf(stderr, "[costmap] %s\n", message.c_str()); });
  ASSERT_TRUE(started.ok()) << started.error().message;
  auto service = std::move(*started);
  const uint16_t port = service->port();
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 3100.0; }, milliseconds(10000)));
  ASSERT_EQ(service->full_reads(), 1);

  etcd_.kill();
  const auto killed = Clock::now();
  const std::string error = etcd_.start();
  ASSERT_TRUE(error.empty()) << error;
  for (int i = 0; i < 3; ++i) put_fleet(0.0081);
  auto range = client_->get_prefix_with_revision("/hubprobe/");
  ASSERT_TRUE(range.ok()) << range.error().message;
  const Reply compacted = http(etcd_.client_port(), "POST", "/v3/kv/compaction", {{"Content-Type", "application/json"}},
                               "{\"revision\": \"" + std::to_string(range->revision) + "\", \"physical\": true}");
  ASSERT_EQ(compacted.status, 200) << compacted.body;
  ASSERT_LT(Clock::now() - killed, milliseconds(3500)) << "etcd took too long to come back for this test's window";
  ASSERT_TRUE(eventually([&] { return service->full_reads() == 2; }, milliseconds(15000)));
  ASSERT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 8100.0; }, kChangeBound));
  // And the watch goes on from the new read.
  put_fleet(0.0091);
  EXPECT_TRUE(eventually([&] { return delay(port, "gz", "sg") == 9100.0; }, kChangeBound));
}

}  // namespace
}  // namespace hubprobe::costmap
