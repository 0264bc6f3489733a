// SPDX-License-Identifier: Apache-2.0
// What the reflector's short-request option does to hubprobed's packets, seen from outside: replies
// on the wire and the drop counters in /metrics.
//
// Topology: the harness testbed (netns.h): the agent in the sender namespace (198.18.0.1, hpv0), a
// `hubprobe reflect` in the reflector namespace (198.18.0.2) as its peer.
#include <gtest/gtest.h>
#include <linux/types.h>

#include <cstddef>

#include "agent_support.h"
#include "fake_peer.h"
#include "hubprobe/stamp_wire.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

constexpr const char* kPeer = "sg-edge-01";

class AgentDataplaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE_BINARY();
    bed_ = std::make_unique<Testbed>();
    refl_ = std::make_unique<Reflector>(
        bed_->reflector(), std::vector<std::string>{"--listen", std::string(Testbed::kReflectorV4) + ":862"},
        dir_.path(), "reflect");
  }

  static AgentFile file() {
    AgentFile f;
    f.id = "gz-edge-01";
    f.hub = "gz";
    f.metrics_listen = "127.0.0.1:9862";
    f.interval = "50ms";
    f.peers = {{kPeer, "sg", Testbed::kReflectorV4, {}}};
    return f;
  }

  /// Starts hubprobed with `f` followed by `extra` (more tables) and waits until the peer is up.
  std::unique_ptr<AgentProcess> start_agent(const AgentFile& f, const std::string& extra = "") {
    const auto config = dir_.write_file("hubprobe.toml", f.toml() + "\n" + extra);
    auto agent = std::make_unique<AgentProcess>(bed_->sender(), config, "127.0.0.1", 9862, dir_.path(), "hubprobed");
    json status;
    const bool up = wait_until([&] { return peer_state(status = agent->status(), kPeer) == "up"; }, Seconds(5));
    EXPECT_TRUE(up) << status.dump(2) << agent->describe();
    return agent;
  }

  TempDir dir_;
  std::unique_ptr<Testbed> bed_;
  std::unique_ptr<Reflector> refl_;
};

// The agent's reflector drops a 14-octet request by default (a 44-octet reply would be 3.1 times as
// large) and counts it; with answer_short_requests = true it gives the base-size reply.
TEST_F(AgentDataplaneTest, ReflectorAnswersShortRequestsOnlyWhenConfigured) {
  auto request = build_test_packet(9, STAMP_UNAUTH_BASE_LEN);
  request.resize(14);
  {
    auto agent = start_agent(file());
    EXPECT_FALSE(udp_exchange(bed_->reflector(), Testbed::kSenderV4, STAMP_DEFAULT_PORT, request, Seconds(0.5)))
        << "answered by default\n"
        << agent->describe();
    ASSERT_TRUE(wait_until(
        [&] {
          return only_value(agent->metrics(), "hubprobe_reflector_drops_total", {{"reason", "short_request"}}) == 1;
        },
        Seconds(3)))
        << agent->metrics_text();
  }
  AgentFile f = file();
  f.reflector = {"answer_short_requests = true"};
  auto agent = start_agent(f);
  auto reply = udp_exchange(bed_->reflector(), Testbed::kSenderV4, STAMP_DEFAULT_PORT, request, Seconds(2));
  ASSERT_TRUE(reply.has_value()) << agent->describe();
  EXPECT_EQ(reply->size(), size_t{STAMP_UNAUTH_BASE_LEN});
  EXPECT_EQ(read_be32(*reply, offsetof(stamp_reflector_unauth, sender_seq)), 9u);
}

}  // namespace
}  // namespace hubprobe::it::agent
