// SPDX-License-Identifier: Apache-2.0
// `hubprobe costmap` end to end: three hubprobed agents on the mesh (agent_support.h) discovering each
// other through a real etcd in the core namespace (198.18.0.254:2379), and `hubprobe costmap` as a real
// process next to etcd serving on 198.18.0.254:9863:
//   1. the maps hold every hub and the agents' costs; a new document of an agent is in the path map
//      within 2 s of etcd having it;
//   2. an agent killed with SIGKILL is gone from the maps once its lease expires;
//   3. etcd killed and started again: the costmap's watch resumes and the maps catch up (new generations).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <set>

#include "agent_support.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

const char* const kHubs[] = {"gz", "sg", "sh"};
constexpr uint16_t kMetricsPort = 9862;
constexpr uint16_t kCostmapPort = 9863;

std::string agent_id(size_t i) { return std::string(kHubs[i]) + "-edge-01"; }

class AgentCostmapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE(etcd_missing_reason());
    mesh_ = std::make_unique<Mesh>(3);
    etcd_ = start_etcd(mesh_->core(), Mesh::kCoreV4, dir_.path());
    for (size_t i = 0; i < 3; ++i) agents_.push_back(start_agent(i));
    costmap_ = std::make_unique<Process>(
        std::vector<std::string>{hubprobe_binary(), "costmap", "--etcd", "http://198.18.0.254:2379", "--listen",
                                 std::string(Mesh::kCoreV4) + ":" + std::to_string(kCostmapPort)},
        mesh_->core().name(), dir_.path(), "hubprobe-costmap");
  }

  void TearDown() override {
    if (costmap_) costmap_->stop();
    agents_.clear();
    etcd_.reset();
  }

  std::string config_text(size_t i) const {
    AgentFile f;
    f.id = agent_id(i);
    f.hub = kHubs[i];
    f.metrics_listen = Mesh::address(i) + ":" + std::to_string(kMetricsPort);
    f.interval = "100ms";
    f.timeout = "1s";
    f.down_after = 3;
    return f.toml() + R"(
[scheduler]
state_dir = ")" +
           (dir_.path() / ("state-" + std::string(kHubs[i]))).string() + R"("
refresh = "1s"

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
                                          "hubprobed-" + std::string(kHubs[i]));
  }

  // A resource of the costmap, parsed; null when it cannot be read now.
  json costmap_get(const std::string& target) const {
    const HttpResult result = http_get(mesh_->core(), Mesh::kCoreV4, kCostmapPort, target);
    if (!result.ok || result.status != 200) return nullptr;
    json parsed = json::parse(result.body, nullptr, false);
    return parsed.is_discarded() ? json(nullptr) : parsed;
  }

  // The generation of agent i's document in the path map, 0 when absent.
  uint64_t generation_in_path_map(size_t i) const {
    json map = costmap_get("/alto/pathmap");
    if (!map.is_object() || !map["agents"].contains(agent_id(i))) return 0;
    return map["agents"][agent_id(i)].value("generation", uint64_t{0});
  }

  // Every pair of the three hubs has a delay-rt in the cost map (except `without` as source or destination).
  bool full_cost_map(const std::set<std::string>& hubs) const {
    json map = costmap_get("/alto/costmap/delay-rt");
    if (!map.is_object()) return false;
    for (const std::string& from : hubs) {
      for (const std::string& to : hubs) {
        if (from == to) continue;
        if (!map["cost-map"].contains(from) || !map["cost-map"][from].contains(to)) return false;
      }
    }
    return true;
  }

  // The generation in etcd of agent i's document (through its /status), 0 when unknown.
  uint64_t generation_in_agent(size_t i) const {
    json status = agents_[i]->status();
    json& preferences = status["preferences"];  // null when absent
    return preferences.is_object() ? preferences.value("generation", uint64_t{0}) : 0;
  }

  TempDir dir_;
  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<Process> etcd_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  std::unique_ptr<Process> costmap_;
};

TEST_F(AgentCostmapTest, TheMapsFollowTheAgentsTheirDeathAndAnEtcdRestart) {
  // 1. Every hub in the network map with its agent's address, every pair in the cost map.
  const std::set<std::string> all = {"gz", "sg", "sh"};
  ASSERT_TRUE(wait_until([&] { return full_cost_map(all); }, Seconds(30))) << costmap_->describe();
  json network = costmap_get("/alto/networkmap");
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(network["network-map"][kHubs[i]]["ipv4"], json::array({Mesh::address(i) + "/32"})) << network.dump();
  }
  // A new document (the agents refresh every second) is in the path map within 2 s.
  for (int round = 0; round < 3; ++round) {
    const uint64_t published = generation_in_agent(0);
    ASSERT_GT(published, 0u);
    const auto seen = Clock::now();
    ASSERT_TRUE(wait_until([&] { return generation_in_path_map(0) >= published; }, Seconds(2)))
        << "generation " << published << " of " << agent_id(0) << " not in the path map within 2 s";
    std::cout << "[ measured ] generation " << published << " in the path map " << seconds_since(seen)
              << " s after the agent's /status had it\n";
    sleep_for(Seconds(1));
  }

  // 2. sh's agent killed: gone from every map after its lease (3 s TTL + etcd's lessor, see etcd_sink_test).
  agents_[2]->process().signal(SIGKILL);
  const auto killed = Clock::now();
  ASSERT_TRUE(wait_until(
      [&] {
        json map = costmap_get("/alto/pathmap");
        return map.is_object() && !map["agents"].contains(agent_id(2));
      },
      Seconds(3 + 0.5 + 3 + 2)));
  std::cout << "[ measured ] the killed agent left the maps " << seconds_since(killed) << " s after SIGKILL\n";
  // The last keepalive (every TTL/3) was up to 1 s before the kill: the lease ends 2 to 3 s after it, never
  // much earlier.
  EXPECT_GE(seconds_since(killed), 1.5) << "not before its lease could expire";
  json cost = costmap_get("/alto/costmap/delay-rt");
  EXPECT_FALSE(cost["cost-map"].contains("sh")) << cost.dump();

  // 3. etcd killed and started again on the same data: the watch resumes, new generations arrive.
  etcd_->signal(SIGKILL);
  etcd_->wait_for_exit(Seconds(5));
  etcd_.reset();
  sleep_for(Seconds(1));
  etcd_ = start_etcd(mesh_->core(), Mesh::kCoreV4, dir_.path());
  const uint64_t before = generation_in_path_map(0);
  ASSERT_TRUE(wait_until(
      [&] {
        return generation_in_path_map(0) > before && full_cost_map({"gz", "sg"});
      },
      Seconds(20)))
      << costmap_->describe();
  EXPECT_TRUE(costmap_->running()) << costmap_->describe();
}

}  // namespace
}  // namespace hubprobe::it::agent
