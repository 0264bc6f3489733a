// SPDX-License-Identifier: Apache-2.0
// Peer discovery through etcd end to end (issue 5): three hubprobed agents on the mesh (agent_support.h)
// with no [[peer]] at all, only [[scheduler.etcd]] with register + discover + advertise, and a real etcd in
// the core namespace (198.18.0.254:2379). Each agent registers under /hubprobe/agents/ID with a 3 s lease and
// polls that prefix every second:
//   1. every agent probes the two others (up in /status, marked "source": "etcd") within 10 s;
//   2. a reload (SIGHUP) keeps the discovered peers and their statistics;
//   3. an agent killed with SIGKILL is dropped by the others once its lease expires: within
//      TTL + poll interval (+ slack), never long before the TTL;
//   4. restarted, it is found again, and finds the others;
//   5. etcd frozen (SIGSTOP): the agents keep their peers and count failed polls; after it resumes the
//      mesh is whole again;
//   6. (a test of its own) etcd stopped for a minute and started again wiped: nothing lost.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>
#include <filesystem>

#include <map>
#include <set>
#include <thread>

#include "agent_support.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

const char* const kHubs[] = {"gz", "sg", "sh"};
constexpr uint16_t kMetricsPort = 9862;
constexpr double kTtl = 3.0;
constexpr double kDiscoverInterval = 1.0;

std::string agent_id(size_t i) { return std::string(kHubs[i]) + "-edge-01"; }

class AgentDiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE(etcd_missing_reason());
    mesh_ = std::make_unique<Mesh>(3);
    etcd_ = start_etcd(mesh_->core(), Mesh::kCoreV4, dir_.path());
    for (size_t i = 0; i < 3; ++i) agents_.push_back(start_agent(i));
  }

  void TearDown() override {
    agents_.clear();
    if (etcd_) etcd_->signal(SIGCONT);  // a test that failed while etcd was frozen
    etcd_.reset();
  }

  std::string config_text(size_t i, const std::string& log_level = "info") const {
    AgentFile f;
    f.id = agent_id(i);
    f.hub = kHubs[i];
    f.metrics_listen = Mesh::address(i) + ":" + std::to_string(kMetricsPort);
    f.interval = "100ms";
    f.timeout = "1s";
    f.down_after = 3;
    f.log_level = log_level;
    // No [[peer]]: the peers come from etcd.
    return f.toml() + R"(
[scheduler]
state_dir = ")" +
           (dir_.path() / ("state-" + std::string(kHubs[i]))).string() +
           R"("
refresh = "5s"

[[scheduler.etcd]]
endpoints = ["http://198.18.0.254:2379"]
prefix = "/hubprobe"
ttl = "3s"
timeout = "1s"
backoff_initial = "200ms"
backoff_max = "1s"
advertise = ")" +
           Mesh::address(i) +
           R"("
discover = true
discover_interval = "1s"
)";
  }

  std::unique_ptr<AgentProcess> start_agent(size_t i) {
    const auto config = dir_.write_file("agent-" + std::string(kHubs[i]) + ".toml", config_text(i));
    return std::make_unique<AgentProcess>(mesh_->node(i), config, Mesh::address(i), kMetricsPort, dir_.path(),
                                          "hubprobed-" + std::string(kHubs[i]) + "-" + std::to_string(++starts_));
  }

  /// Every agent not in `except` sees each other agent not in `except` up, found in etcd.
  ::testing::AssertionResult all_up(Seconds timeout, const std::set<size_t>& except = {}) {
    json last;
    const bool ok = wait_until(
        [&] {
          for (size_t i = 0; i < 3; ++i) {
            if (except.count(i)) continue;
            last = agents_[i]->status();
            for (size_t j = 0; j < 3; ++j) {
              if (j == i || except.count(j)) continue;
              const json peer = peer_of(last, agent_id(j));
              if (!peer.is_object() || peer.value("state", "") != "up" || peer.value("source", "") != "etcd") {
                return false;
              }
            }
          }
          return true;
        },
        timeout, std::chrono::milliseconds(50));
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "peers not all up within " << timeout.count() << " s; last /status:\n"
                                         << last.dump(2);
  }

  /// The destination hubs of agent i's current preference document.
  std::set<std::string> destination_hubs(size_t i) const {
    std::set<std::string> hubs;
    const json preferences = agents_[i]->status()["preferences"];
    if (!preferences.is_object()) return hubs;
    for (const json& destination : preferences.value("destinations", json::array())) {
      hubs.insert(destination.value("hub", ""));
    }
    return hubs;
  }

  TempDir dir_;
  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<Process> etcd_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  int starts_ = 0;
};

TEST_F(AgentDiscoveryTest, AgentsFindEachOtherInEtcdAndDropTheDead) {
  // 1. The full mesh from etcd alone.
  const auto started = Clock::now();
  ASSERT_TRUE(all_up(Seconds(10)));
  std::cout << "[ measured ] full mesh discovered and up " << seconds_since(started) << " s after the agents started\n";
  for (size_t i = 0; i < 3; ++i) {
    const json status = agents_[i]->status();
    ASSERT_TRUE(status["discovery"].is_object()) << status.dump(2);
    EXPECT_EQ(status["discovery"]["peers"].size(), 2u) << status["discovery"].dump();
    EXPECT_EQ(status["discovery"]["ignored"], json::array()) << status["discovery"].dump();
    EXPECT_EQ(status["discovery"].value("last_error", "?"), "");
    const auto samples = agents_[i]->metrics();
    EXPECT_EQ(only_value(samples, "hubprobe_peers_discovered"), 2);
    EXPECT_EQ(only_value(samples, "hubprobe_peers"), 0) << "no [[peer]] in the file";
    EXPECT_GE(only_value(samples, "hubprobe_discovery_polls_total", {{"result", "success"}}), 1);
    EXPECT_EQ(only_value(samples, "hubprobe_discovery_polls_total", {{"result", "failure"}}), 0);
    EXPECT_EQ(only_value(samples, "hubprobe_peer_up", {{"peer", agent_id((i + 1) % 3)}, {"path", "default"}}), 1);
  }
  // The discovered peers reach the preference document: a destination per other hub.
  ASSERT_TRUE(wait_until(
      [&] {
        return destination_hubs(0) == std::set<std::string>{"sg", "sh"};
      },
      Seconds(5)))
      << agents_[0]->status()["preferences"].dump(2);

  // 2. A reload keeps the discovered peers (they are not in the file) and their statistics.
  const int64_t sent_before = peer_count(agents_[0]->status(), agent_id(1), "sent");
  dir_.write_file("agent-gz.toml", config_text(0, "debug"));
  agents_[0]->process().signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return agents_[0]->status()["config"].value("reloads_ok", 0) == 1; }, Seconds(5)))
      << agents_[0]->status()["config"].dump();
  const json reloaded = agents_[0]->status();
  EXPECT_EQ(peer_of(reloaded, agent_id(1)).value("source", ""), "etcd") << reloaded.dump(2);
  EXPECT_EQ(peer_of(reloaded, agent_id(2)).value("source", ""), "etcd") << reloaded.dump(2);
  EXPECT_GE(peer_count(reloaded, agent_id(1), "sent"), sent_before) << "the session was restarted by the reload";
  EXPECT_EQ(peer_state(reloaded, agent_id(1)), "up");

  // 3. SIGKILL sh: its lease runs out after at most the TTL, and the next poll drops it.
  agents_[2]->process().signal(SIGKILL);
  const auto killed = Clock::now();
  ASSERT_TRUE(agents_[2]->process().wait_for_exit(Seconds(5)));
  ASSERT_TRUE(wait_until(
      [&] {
        return peer_of(agents_[0]->status(), agent_id(2)).is_null() &&
               peer_of(agents_[1]->status(), agent_id(2)).is_null();
      },
      Seconds(kTtl + kDiscoverInterval + 4)))
      << "the dead agent is still probed; gz /status:\n"
      << agents_[0]->status().dump(2);
  const double dropped = seconds_since(killed);
  // Keepalives go every TTL/3: the lease has at least 2/3 of the TTL left when the agent dies.
  EXPECT_GE(dropped, kTtl * 2 / 3 - 0.5) << "dropped long before its lease could have expired";
  EXPECT_LE(dropped, kTtl + kDiscoverInterval + 2.0) << "later than TTL + poll interval + slack";
  std::cout << "[ measured ] killed agent dropped by both others " << dropped
            << " s after SIGKILL (TTL 3 s, poll 1 s)\n";
  // The next document (made within a second of the change, not at the 5 s refresh) has no sh any more.
  EXPECT_TRUE(wait_until([&] { return destination_hubs(0) == std::set<std::string>{"sg"}; }, Seconds(2)))
      << agents_[0]->status()["preferences"].dump(2);
  EXPECT_EQ(only_value(agents_[0]->metrics(), "hubprobe_peers_discovered"), 1);
  EXPECT_EQ(peer_state(agents_[0]->status(), agent_id(1)), "up") << "the live peer went with the dead one";

  // 4. Restarted: found again by both, and it finds both.
  agents_[2].reset();
  const auto restarted = Clock::now();
  agents_[2] = start_agent(2);
  ASSERT_TRUE(all_up(Seconds(10)));
  std::cout << "[ measured ] restarted agent rediscovered and up " << seconds_since(restarted) << " s after restart\n";

  // 5. etcd frozen for 5 s (longer than the TTL): polls fail, the peers found before stay.
  const double failures_before =
      only_value(agents_[0]->metrics(), "hubprobe_discovery_polls_total", {{"result", "failure"}});
  etcd_->signal(SIGSTOP);
  const auto frozen = Clock::now();
  bool kept = true;
  json during;
  while (seconds_since(frozen) < 5.0) {
    during = agents_[0]->status();
    kept = kept && peer_of(during, agent_id(1)).is_object() && peer_of(during, agent_id(2)).is_object();
    sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_TRUE(kept) << "peers dropped while etcd was unreachable:\n" << during.dump(2);
  EXPECT_GE(only_value(agents_[0]->metrics(), "hubprobe_discovery_polls_total", {{"result", "failure"}}),
            failures_before + 2);
  EXPECT_NE(during["discovery"].value("last_error", ""), "") << during["discovery"].dump();
  EXPECT_EQ(peer_state(during, agent_id(1)), "up") << "probing depends on etcd";
  etcd_->signal(SIGCONT);
  const auto resumed = Clock::now();
  // The agents' leases may have run out meanwhile: the sinks register again (under new leases if need
  // be), the polls succeed again, and the mesh is whole.
  ASSERT_TRUE(wait_until(
      [&] {
        for (size_t i = 0; i < 3; ++i) {
          const json discovery = agents_[i]->status()["discovery"];
          if (discovery.value("last_error", "?") != "" || discovery["peers"].size() != 2) return false;
        }
        return true;
      },
      Seconds(15)))
      << agents_[0]->status()["discovery"].dump(2);
  ASSERT_TRUE(all_up(Seconds(15)));
  std::cout << "[ measured ] polls succeed and the mesh is whole " << seconds_since(resumed)
            << " s after etcd resumed\n";
}

// etcd stopped for a minute, then started again with its data directory wiped (a member rebuilt): the
// agents keep probing the peers they found, count the failed polls, and once etcd is back register again
// under new leases and republish, so that every agent finds every other one again.
// The probe plan: with plan_per_hub = 2, gz probes 2 of the 6 agents registered in sg and 2 of the 6 in
// sh (each hub: the real agent and 5 registrations of agents that do not run), and says how many it was
// offered. The choice stays the same from poll to poll.
TEST_F(AgentDiscoveryTest, TheProbePlanProbesKAgentsOfEachOtherHub) {
  for (const char* hub : {"sg", "sh"}) {
    for (int a = 1; a <= 5; ++a) {
      const std::string id = std::string(hub) + "-ghost-0" + std::to_string(a);
      const std::string address = "198.18.200." + std::to_string((hub[1] == 'g' ? 0 : 10) + a);
      const json registration = {{"id", id}, {"hub", hub}, {"address", address}, {"reflector_port", 862}};
      mesh_->core().exec_checked(
          {"etcdctl", "--endpoints=http://198.18.0.254:2379", "put", "/hubprobe/agents/" + id, registration.dump()});
    }
  }
  agents_[0].reset();
  const auto config = dir_.write_file("agent-gz-plan.toml", config_text(0) + "plan_per_hub = 2\n");
  agents_[0] = std::make_unique<AgentProcess>(mesh_->node(0), config, Mesh::address(0), kMetricsPort, dir_.path(),
                                              "hubprobed-gz-plan");
  const auto planned = [&] {
    std::map<std::string, std::set<std::string>> by_hub;
    const json status = agents_[0]->status();
    for (const json& peer : status["peers"]) {
      if (peer.value("source", "") == "etcd") by_hub[peer.value("hub", "")].insert(peer.value("name", ""));
    }
    return by_hub;
  };
  json status;
  ASSERT_TRUE(wait_until(
      [&] {
        status = agents_[0]->status();
        return status["discovery"].is_object() && status["discovery"].value("candidates", 0) == 12;
      },
      Seconds(10)))
      << status.dump(2);
  const auto first = planned();
  ASSERT_EQ(first.size(), 2u) << status.dump(2);
  EXPECT_EQ(first.at("sg").size(), 2u) << status.dump(2);
  EXPECT_EQ(first.at("sh").size(), 2u) << status.dump(2);
  EXPECT_EQ(only_value(agents_[0]->metrics(), "hubprobe_discovery_candidates"), 12);
  EXPECT_EQ(only_value(agents_[0]->metrics(), "hubprobe_peers_discovered"), 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // two more polls
  EXPECT_EQ(planned(), first) << "the same registrations give the same plan";
}

TEST_F(AgentDiscoveryTest, EtcdStoppedForAMinuteAndWipedLosesNothing) {
  ASSERT_TRUE(all_up(Seconds(10)));
  const auto sent = [&](size_t i, size_t j) { return peer_count(agents_[i]->status(), agent_id(j), "sent"); };
  const int64_t sent_before = sent(0, 1);
  etcd_->stop(Seconds(5));
  const auto stopped = Clock::now();
  bool kept = true;
  json during;
  while (seconds_since(stopped) < 60.0) {
    for (size_t i = 0; i < 3 && kept; ++i) {
      during = agents_[i]->status();
      for (size_t j = 0; j < 3; ++j) {
        if (j != i) kept = kept && peer_state(during, agent_id(j)) == "up";
      }
    }
    sleep_for(std::chrono::seconds(2));
  }
  EXPECT_TRUE(kept) << "a discovered peer was dropped or went down while etcd was away:\n" << during.dump(2);
  EXPECT_GE(sent(0, 1) - sent_before, 500) << "probing slowed while etcd was away";
  EXPECT_GE(only_value(agents_[0]->metrics(), "hubprobe_discovery_polls_total", {{"result", "failure"}}), 30);
  std::error_code ignored;
  std::filesystem::remove_all(dir_.path() / "etcd", ignored);
  etcd_ = start_etcd(mesh_->core(), Mesh::kCoreV4, dir_.path());
  const auto restarted = Clock::now();
  std::vector<int64_t> delivered_before;
  for (size_t i = 0; i < 3; ++i) {
    delivered_before.push_back(agents_[i]->status()["sinks"][0].value("delivered_generation", int64_t{0}));
  }
  // Every agent registers again in the empty etcd (the others find it there) and republishes its document.
  ASSERT_TRUE(wait_until(
      [&] {
        for (size_t i = 0; i < 3; ++i) {
          const json status = agents_[i]->status();
          const json discovery = status["discovery"];
          if (discovery.value("last_error", "?") != "" || discovery["peers"].size() != 2) return false;
          if (!status["sinks"][0].value("healthy", false)) return false;
          if (status["sinks"][0].value("delivered_generation", int64_t{0}) <= delivered_before[i]) return false;
        }
        return true;
      },
      Seconds(20)))
      << agents_[0]->status().dump(2);
  ASSERT_TRUE(all_up(Seconds(10)));
  std::cout << "[ measured ] etcd away 60 s, then wiped: every agent registered, republished and found again "
            << seconds_since(restarted) << " s after it came back\n";
}

}  // namespace
}  // namespace hubprobe::it::agent
