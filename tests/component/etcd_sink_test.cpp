// SPDX-License-Identifier: Apache-2.0
// EtcdClient and the etcd sink against a real etcd (Debian's etcd-server) that each test starts on
// 127.0.0.1 with ports of its own and a temporary data folder (tests/support/etcd_process.h).
// Without /usr/bin/etcd the tests skip, or fail when HUBPROBE_REQUIRE_PRIVILEGED=1.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "../support/etcd_process.h"
#include "hubprobe/etcd_client.h"
#include "hubprobe/scheduler_sink.h"

namespace hubprobe {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long after the sink stops etcd may take to delete the keys of a lease that is no longer kept alive
// (TTL 2 s from the grant or the last keepalive, both before the stop). etcd does not delete at the TTL:
// its lessor looks for expired leases every 500 ms and revokes one with a raft write (a WAL fsync, which
// a loaded disk can stall for seconds), and a revoke that has not completed is sent again only 3 s later
// (etcd's expired-lease retry interval). So the bound is TTL + 0.5 s + 3 s + 1 s of slack. Measured: the
// keys went 2.0 to 2.5 s after the stop, idle, with busy loops, with a disk writer, and under ctest -j2.
constexpr milliseconds kExpiryBound{2000 + 500 + 3000 + 1000};

bool eventually(const std::function<bool()>& condition, milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= give_up) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_ETCD();
    const std::string error = etcd_.start();
    ASSERT_TRUE(error.empty()) << error;
  }

  EtcdClient::Options options() const {
    EtcdClient::Options options;
    options.endpoints = {etcd_.client_url()};
    options.timeout_ns = 1'000'000'000;
    return options;
  }

  using Keys = std::map<std::string, EtcdClient::KeyValue>;

  // The keys under `prefix` as key -> (value, lease); nothing when etcd cannot be read right now. For
  // polling: a read that fails (a request timeout on a loaded host) is not the state waited for, and the
  // next poll reads again.
  std::optional<Keys> try_keys(const std::string& prefix = "/hubprobe/") const {
    EtcdClient client(options());
    auto values = client.get_prefix(prefix);
    if (!values.ok()) return std::nullopt;
    Keys out;
    for (auto& kv : *values) out[kv.key] = kv;
    return out;
  }

  // The keys under `prefix`; empty when etcd cannot be read (with a failure).
  Keys keys(const std::string& prefix = "/hubprobe/") const {
    auto found = try_keys(prefix);
    EXPECT_TRUE(found.has_value()) << "etcd could not be read";
    return found.value_or(Keys{});
  }

  // Polls until there are no keys (a failed read is not "no keys").
  bool keys_gone_within(milliseconds timeout) const {
    return eventually(
        [&] {
          const auto found = try_keys();
          return found && found->empty();
        },
        timeout);
  }

  EtcdSinkConfig sink_config() const {
    EtcdSinkConfig config;
    config.endpoints = {etcd_.client_url()};
    config.ttl_ns = 2'000'000'000;
    config.timeout_ns = 1'000'000'000;
    config.backoff.initial_ns = 50'000'000;
    config.backoff.max_ns = 300'000'000;
    return config;
  }

  test::EtcdProcess etcd_;
};

std::shared_ptr<const nlohmann::json> document(uint64_t generation, bool stale = false) {
  return std::make_shared<const nlohmann::json>(nlohmann::json{{"schema", "hubprobe.preferences/v1"},
                                                               {"agent", {{"id", "hub-a-1"}, {"hub", "hub-a"}}},
                                                               {"generation", generation},
                                                               {"stale", stale}});
}

const nlohmann::json kRegistration = {{"id", "hub-a-1"}, {"hub", "hub-a"}, {"reflector", "198.18.0.1:862"}};
const std::string kPreferencesKey = "/hubprobe/preferences/hub-a-1";
const std::string kAgentKey = "/hubprobe/agents/hub-a-1";

TEST_F(EtcdTest, LeaseGrantPutAndPrefixRoundTrip) {
  EtcdClient client(options());
  auto lease = client.grant_lease(5);
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_GT(*lease, 0);
  ASSERT_TRUE(client.put("/t/a/1", "one", *lease).ok());
  ASSERT_TRUE(client.put("/t/a/2", std::string("bin\0\xff", 5)).ok());
  ASSERT_TRUE(client.put("/t/a/3", "").ok());
  ASSERT_TRUE(client.put("/t/b", "outside the prefix").ok());
  ASSERT_TRUE(client.put("/t/a", "the prefix itself without its slash").ok());

  auto values = client.get_prefix("/t/a/");
  ASSERT_TRUE(values.ok()) << values.error().message;
  ASSERT_EQ(values->size(), 3u);
  EXPECT_EQ((*values)[0].key, "/t/a/1");
  EXPECT_EQ((*values)[0].value, "one");
  EXPECT_EQ((*values)[0].lease, *lease);
  EXPECT_GT((*values)[0].mod_revision, 0);
  EXPECT_EQ((*values)[1].value, std::string("bin\0\xff", 5));
  EXPECT_EQ((*values)[1].lease, 0);
  EXPECT_EQ((*values)[2].value, "");
  EXPECT_EQ(client.endpoint(), etcd_.client_url());

  auto ttl = client.keep_alive(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.error().message;
  EXPECT_EQ(*ttl, 5);
  ASSERT_TRUE(client.revoke(*lease).ok());
  auto after = client.get_prefix("/t/a/");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), 2u) << "the key with the lease goes with it";
  auto gone = client.keep_alive(*lease);
  ASSERT_TRUE(gone.ok()) << gone.error().message;
  EXPECT_EQ(*gone, 0) << "a revoked lease has no TTL left";
  auto put = client.put("/t/c", "x", *lease);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ENOENT);
  EXPECT_NE(put.error().message.find("requested lease not found"), std::string::npos) << put.error().message;

  auto everything = client.get_prefix("");
  ASSERT_TRUE(everything.ok());
  EXPECT_EQ(everything->size(), 4u);
}

// Needs no etcd: nothing listens on the port.
TEST(EtcdClientTest, UnreachableEndpointIsNamedInTheError) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(test::free_loopback_port());
  EtcdClient::Options options;
  options.endpoints = {dead, dead + "/"};
  options.timeout_ns = 500'000'000;
  EtcdClient client(options);
  auto lease = client.grant_lease(5);
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.error().message, "etcd " + dead + ": connection refused; " + dead + ": connection refused");
  EXPECT_EQ(lease.error().code, ECONNREFUSED);
  EtcdClient::Options none;
  auto values = EtcdClient(none).get_prefix("/hubprobe/");
  ASSERT_FALSE(values.ok());
  EXPECT_EQ(values.error().message, "etcd: no endpoints configured");
}

TEST_F(EtcdTest, FallsOverToTheNextEndpointAndRemembersIt) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(test::free_loopback_port());
  EtcdClient::Options both = options();
  both.endpoints = {dead, etcd_.client_url()};
  EtcdClient client(both);
  EXPECT_EQ(client.endpoint(), dead);
  ASSERT_TRUE(client.put("/t/x", "1").ok());
  EXPECT_EQ(client.endpoint(), etcd_.client_url());
  auto values = client.get_prefix("/t/");
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(values->size(), 1u);
}

TEST_F(EtcdTest, SinkWritesBothKeysUnderOneLease) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  const auto doc = document(1);
  sink->publish(doc, 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }, milliseconds(5000)))
      << sink->status().last_error;
  auto found = keys();
  ASSERT_EQ(found.count(kPreferencesKey), 1u);
  ASSERT_EQ(found.count(kAgentKey), 1u);
  EXPECT_EQ(nlohmann::json::parse(found[kPreferencesKey].value), *doc);
  EXPECT_EQ(nlohmann::json::parse(found[kAgentKey].value), kRegistration);
  EXPECT_NE(found[kPreferencesKey].lease, 0);
  EXPECT_EQ(found[kPreferencesKey].lease, found[kAgentKey].lease);

  const SinkStatus status = sink->status();
  EXPECT_EQ(status.kind, "etcd");
  EXPECT_EQ(status.name, "etcd");
  EXPECT_EQ(status.target, etcd_.client_url());
  EXPECT_EQ(status.delivered_generation, 1u);
  EXPECT_TRUE(status.healthy);
  EXPECT_EQ(status.pushes_failed, 0u);
}

TEST_F(EtcdTest, SinkRegistersBeforeTheFirstDocument) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  ASSERT_TRUE(eventually(
      [&] {
        const auto found = try_keys();
        return found && found->count(kAgentKey) == 1;
      },
      milliseconds(5000)));
  EXPECT_EQ(keys().count(kPreferencesKey), 0u);
}

TEST_F(EtcdTest, NoRegistrationWhenDisabled) {
  EtcdSinkConfig config = sink_config();
  config.register_agent = false;
  config.prefix = "/fleet7/";
  auto sink = make_etcd_sink(config, "hub-a-1", kRegistration);
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }, milliseconds(5000)));
  auto found = keys("/fleet7/");
  EXPECT_EQ(found.size(), 1u);
  EXPECT_EQ(found.count("/fleet7/preferences/hub-a-1"), 1u);
}

TEST_F(EtcdTest, KeepAliveKeepsTheKeysBeyondTheTtl) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }, milliseconds(5000)));
  const int64_t lease = keys()[kPreferencesKey].lease;
  std::this_thread::sleep_for(milliseconds(5000));  // 2.5 TTLs
  auto found = keys();
  ASSERT_EQ(found.count(kPreferencesKey), 1u);
  ASSERT_EQ(found.count(kAgentKey), 1u);
  EXPECT_EQ(found[kPreferencesKey].lease, lease) << "the same lease, kept alive";
  EXPECT_EQ(sink->status().pushes_failed, 0u);
}

TEST_F(EtcdTest, KeysOfADeadAgentExpireWithTheLease) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }, milliseconds(5000)));
  sink->stop(0);  // no more keepalives, and nothing revoked
  sink.reset();
  const auto stopped = Clock::now();
  EXPECT_EQ(keys().count(kPreferencesKey), 1u) << "stop() must not revoke the lease";
  ASSERT_TRUE(keys_gone_within(kExpiryBound)) << "the keys should be gone one TTL (2 s) after the last keepalive\n"
                                              << etcd_.log_tail();
  const double gone_after = std::chrono::duration<double>(Clock::now() - stopped).count();
  RecordProperty("expired_after_s", std::to_string(gone_after));
}

TEST_F(EtcdTest, CleanStopPutsTheStaleDocumentAndLeavesItUntilTheTtl) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }, milliseconds(5000)));
  const auto stale = document(2, true);
  sink->publish(stale, 2);
  const auto start = Clock::now();
  sink->stop(5'000'000'000);
  // Returns once the stale document is in, not at the deadline (5 s): milliseconds, and slack for a
  // loaded host.
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 2.5);
  auto found = keys();
  ASSERT_EQ(found.count(kPreferencesKey), 1u);
  EXPECT_EQ(nlohmann::json::parse(found[kPreferencesKey].value), *stale);
  EXPECT_EQ(sink->status().delivered_generation, 2u);
  ASSERT_TRUE(keys_gone_within(kExpiryBound)) << "expires with the TTL\n" << etcd_.log_tail();
}

TEST_F(EtcdTest, ANewerDocumentReplacesTheValue) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  for (uint64_t generation = 1; generation <= 3; ++generation) {
    sink->publish(document(generation), generation);
    ASSERT_TRUE(eventually([&] { return sink->status().delivered_generation == generation; }, milliseconds(5000)));
    EXPECT_EQ(nlohmann::json::parse(keys()[kPreferencesKey].value).at("generation"), generation);
  }
  EXPECT_EQ(sink->status().pushes_ok, 3u);
}

TEST_F(EtcdTest, SinkGrantsANewLeaseWhenItsLeaseIsRevoked) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }, milliseconds(5000)));
  const int64_t lease = keys()[kPreferencesKey].lease;
  EtcdClient client(options());
  ASSERT_TRUE(client.revoke(lease).ok());
  EXPECT_TRUE(keys().empty());
  // The next keepalive (every TTL/3) finds the lease gone.
  ASSERT_TRUE(eventually(
      [&] {
        const auto found = try_keys();
        return found && found->count(kPreferencesKey) == 1 && found->count(kAgentKey) == 1;
      },
      milliseconds(3000)));
  auto found = keys();
  EXPECT_NE(found[kPreferencesKey].lease, lease);
  EXPECT_EQ(found[kPreferencesKey].lease, found[kAgentKey].lease);
  EXPECT_EQ(nlohmann::json::parse(found[kPreferencesKey].value).at("generation"), 1);
}

// etcd persists leases: a member restarted on its data keeps them (and extends them by their TTL). The
// sink, having had no keepalive through for a whole TTL, takes its lease for lost, grants a new one and
// writes both keys again once etcd answers (the old lease then expires without keys).
TEST_F(EtcdTest, SinkCarriesOnAcrossAnEtcdRestart) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }, milliseconds(5000)));
  etcd_.kill();
  sink->publish(document(2), 2);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_failed >= 2; }, milliseconds(3000)));
  EXPECT_FALSE(sink->status().healthy);
  EXPECT_NE(sink->status().last_error.find("connection refused"), std::string::npos) << sink->status().last_error;
  std::this_thread::sleep_for(milliseconds(2500));  // down longer than the TTL
  const std::string error = etcd_.start();
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_TRUE(eventually([&] { return sink->status().delivered_generation == 2; }, milliseconds(5000)))
      << sink->status().last_error;
  EXPECT_TRUE(sink->status().healthy);
  std::this_thread::sleep_for(milliseconds(3000));  // longer than the TTL again: kept alive
  auto found = keys();
  ASSERT_EQ(found.count(kPreferencesKey), 1u);
  ASSERT_EQ(found.count(kAgentKey), 1u);
  EXPECT_EQ(nlohmann::json::parse(found[kPreferencesKey].value).at("generation"), 2);
}

// A member that lost its data (a new cluster on the same address) no longer knows the lease: the sink
// notices on its next keepalive, grants a new lease and writes both keys again.
TEST_F(EtcdTest, SinkRewritesItsKeysWhenEtcdLostItsData) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }, milliseconds(5000)));
  const int64_t lease = keys()[kPreferencesKey].lease;
  etcd_.kill();
  etcd_.wipe_data();
  const std::string error = etcd_.start();
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_TRUE(eventually(
      [&] {
        const auto found = try_keys();
        return found && found->count(kPreferencesKey) == 1 && found->count(kAgentKey) == 1;
      },
      milliseconds(5000)))
      << sink->status().last_error;
  auto found = keys();
  EXPECT_NE(found[kPreferencesKey].lease, lease);
  EXPECT_EQ(nlohmann::json::parse(found[kPreferencesKey].value).at("generation"), 1);
  EXPECT_EQ(nlohmann::json::parse(found[kAgentKey].value), kRegistration);
}

TEST_F(EtcdTest, SinkStopKeepsItsDeadlineWhenEtcdIsGone) {
  auto sink = make_etcd_sink(sink_config(), "hub-a-1", kRegistration);
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }, milliseconds(5000)));
  etcd_.kill();
  sink->publish(document(2, true), 2);
  const auto start = Clock::now();
  sink->stop(500'000'000);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  // Deadline + one request timeout; 0.5 s of slack for a loaded host, less than a second request (1 s).
  EXPECT_LT(elapsed, 0.5 + 1.0 + 0.5) << "deadline + one request timeout";
  EXPECT_EQ(sink->status().delivered_generation, 1u);
}

}  // namespace
}  // namespace hubprobe
