// SPDX-License-Identifier: Apache-2.0
// What [dataplane.kernel] and the reflector's short-request option do to hubprobed's sockets and
// packets, seen from outside: `ss -m` for the receive buffers, the agent's log and /metrics for the
// timestamp source when hardware timestamps are asked for on a veth (which has no PTP hardware
// clock), and replies on the wire for short requests.
//
// Topology: the harness testbed (netns.h): the agent in the sender namespace (198.18.0.1, hpv0), a
// `hubprobe reflect` in the reflector namespace (198.18.0.2) as its peer.
#include <gtest/gtest.h>
#include <linux/types.h>

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <regex>
#include <sstream>

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

/// The `rb` (receive buffer) of every UDP socket of `pid` in `ns`, from `ss -m`.
std::vector<long> receive_buffers(const Namespace& ns, pid_t pid) {
  const CommandResult r = ns.exec({"ss", "-H", "-u", "-a", "-n", "-m", "-p"});
  // One socket per record: its first line starts at column 0, `skmem:(...)` follows on the next one.
  std::vector<std::string> records;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (records.empty() || !std::isspace(static_cast<unsigned char>(line[0]))) {
      records.push_back(line);
    } else {
      records.back() += line;
    }
  }
  const std::regex rb(R"(skmem:\(r\d+,rb(\d+),)");
  const std::string owner = "pid=" + std::to_string(pid) + ",";
  std::vector<long> out;
  for (const auto& record : records) {
    std::smatch match;
    if (record.find(owner) != std::string::npos && std::regex_search(record, match, rb)) {
      out.push_back(std::stol(match[1]));
    }
  }
  return out;
}

long read_long(const std::string& path) {
  std::ifstream f(path);
  long value = 0;
  f >> value;
  return value;
}

// receive_buffer reaches SO_RCVBUF of every socket the agent opens (reflector and probe ports), also above
// net.core.rmem_max: hubprobed forces it when it may (CAP_NET_ADMIN, root here). ss shows twice the
// value: the kernel doubles it for its own bookkeeping (socket(7)).
TEST_F(AgentDataplaneTest, ReceiveBufferReachesEverySocket) {
  const long rmem_max = read_long("/proc/sys/net/core/rmem_max");
  const long wanted = std::min<long>(rmem_max + (1 << 20), 256L << 20);
  auto agent = start_agent(file(), "[dataplane.kernel]\nreceive_buffer = " + std::to_string(wanted) + "\n");
  const auto buffers = receive_buffers(bed_->sender(), agent->pid());
  // 0.0.0.0:862 and [::]:862 (the reflector), one probe port.
  ASSERT_GE(buffers.size(), 3u) << "sockets of hubprobed not found by ss\n" << agent->describe();
  for (const long rb : buffers) {
    EXPECT_EQ(rb, 2 * wanted) << "receive_buffer = " << wanted << ", net.core.rmem_max = " << rmem_max;
  }
}

// hardware_timestamps on a veth: there is no PTP hardware clock, so the agent says so once (however many
// ports it opens on hpv0: two reflector ports and a probe port) and its replies carry kernel software
// timestamps, which /metrics reports per source.
TEST_F(AgentDataplaneTest, HardwareTimestampsOnVethFallBackToSoftwareAndSaySo) {
  AgentFile f = file();
  f.reflector = {"interface = \"hpv0\""};
  auto agent = start_agent(f,
                           "[dataplane.kernel]\nhardware_timestamps = true\n\n"
                           "[[path]]\nname = \"veth\"\ninterface = \"hpv0\"\n");
  ASSERT_TRUE(wait_until(
      [&] {
        return only_value(agent->metrics(), "hubprobe_replies_received_total", {{"peer", kPeer}, {"path", "veth"}}) >=
               5;
      },
      Seconds(5)))
      << agent->metrics_text();

  const std::string log = agent->process().stderr_text() + agent->process().stdout_text();
  std::istringstream lines(log);
  std::vector<std::string> notices;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("hardware_timestamps") != std::string::npos) notices.push_back(line);
  }
  ASSERT_EQ(notices.size(), 1u) << "one line about the fallback for hpv0\n" << log;
  EXPECT_NE(notices[0].find("hpv0"), std::string::npos) << notices[0];
  EXPECT_NE(notices[0].find("PTP hardware clock"), std::string::npos) << "the reason\n" << notices[0];
  EXPECT_NE(notices[0].find("software"), std::string::npos) << "what is used instead\n" << notices[0];

  const auto metrics = agent->metrics();
  for (const char* point : {"t1", "t4"}) {
    SCOPED_TRACE(point);
    const std::map<std::string, std::string> labels = {{"peer", kPeer}, {"path", "veth"}, {"timestamp", point}};
    auto with_source = [&](const char* source) {
      auto l = labels;
      l["source"] = source;
      return only_value(metrics, "hubprobe_timestamps_total", l);
    };
    EXPECT_GE(with_source("kernel"), 5) << agent->metrics_text();
    EXPECT_EQ(with_source("hardware"), 0) << agent->metrics_text();
  }
}

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
