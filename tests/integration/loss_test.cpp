// SPDX-License-Identifier: Apache-2.0
// Loss per direction. nftables in the reflector's namespace drops a random 20 % of the requests on input
// (forward loss) or of the replies on output (backward loss) and counts exactly what it dropped, so the
// report is checked against the truth, not only against a statistical band.
//
// Band for the number of drops: 400 probes, p = 0.2 -> mean 80, sigma = sqrt(400 * 0.2 * 0.8) = 8;
// 4 sigma gives [48, 112] (outside it with probability ~6e-5 per run). That band checks the injection;
// the report must then match the counter: loss.total == dropped exactly (every other probe is answered
// over a veth), and the split must put the drops in the right direction.
//
// A stateful reflector numbers the replies of a session itself, so a gap between its sequence numbers
// and ours tells forward from backward loss. Only drops after the last answered probe cannot be placed
// (nothing later reveals the gap): those may be reported as unknown, hence the small slack.
#include <gtest/gtest.h>

#include <string>

#include "fixture.h"

namespace hubprobe::it {
namespace {

using nlohmann::json;

constexpr int kProbes = 400;
constexpr unsigned kDropPercent = 20;
constexpr uint64_t kBandLow = 48;
constexpr uint64_t kBandHigh = 112;
// Drops after the last reply that reaches the sender may stay unsplit; at 20 % a run of more than 5
// trailing drops has probability 0.2^6 = 6e-5.
constexpr int64_t kTrailingSlack = 5;

class LossTest : public HubprobeTest {
 protected:
  void SetUp() override {
    HubprobeTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    HUBPROBE_REQUIRE_NFT();
  }

  // 400 probes 2 ms apart (0.8 s); returns the report.
  void RunProbes(json* report) {
    CommandResult r = ping(
        {"-c", std::to_string(kProbes), "-i", "0.002", "--timeout", "1", "--json", Testbed::kReflectorV4}, Seconds(30));
    EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
    ASSERT_NO_FATAL_FAILURE(ParseReport(r, report));
    EXPECT_EQ(counter(*report, "sent"), kProbes);
    EXPECT_LT(r.seconds, kProbes * 0.002 + 1 + 5) << r.describe();
  }
};

TEST_F(LossTest, ForwardLossWithStatefulReflector) {
  Nft nft(reflector_ns());
  nft.drop_random("input", kDropPercent, 862, "dropped");
  auto refl = start_reflector({"--stateful", "--listen", std::string(Testbed::kReflectorV4) + ":862"});
  json r;
  ASSERT_NO_FATAL_FAILURE(RunProbes(&r));
  const auto dropped = static_cast<int64_t>(nft.packets("dropped"));
  ASSERT_GE(dropped, static_cast<int64_t>(kBandLow)) << nft.ruleset();
  ASSERT_LE(dropped, static_cast<int64_t>(kBandHigh)) << nft.ruleset();
  EXPECT_EQ(counter(r, "loss.total"), dropped) << r.dump();
  EXPECT_EQ(counter(r, "received"), kProbes - dropped) << r.dump();
  EXPECT_LE(counter(r, "loss.forward"), dropped) << r.dump();
  EXPECT_GE(counter(r, "loss.forward"), dropped - kTrailingSlack) << r.dump();
  EXPECT_LE(counter(r, "loss.backward"), 2) << "no reply was dropped\n" << r.dump();
  EXPECT_NEAR(number(r, "loss_percent.forward"), 100.0 * counter(r, "loss.forward") / kProbes, 0.51) << r.dump();
}

// With only backward loss a stateful reflector's numbers equal ours (it saw every request), which is
// exactly what a stateless reflector sends: the direction could not be known. Dropping the very first
// request (sender seq 0, RFC 8762 4.2.1) on the way there shows the reflector is stateful.
TEST_F(LossTest, BackwardLossWithStatefulReflector) {
  Nft nft(reflector_ns());
  nft.add_counter("first");
  // @th,64,32: the first 32 bits after the 8-octet UDP header, the sender's sequence number.
  nft.add_rule("input", "udp dport 862 @th,64,32 0 counter name \"first\" drop");
  nft.drop_random("output", kDropPercent, 862, "dropped");
  auto refl = start_reflector({"--stateful", "--listen", std::string(Testbed::kReflectorV4) + ":862"});
  json r;
  ASSERT_NO_FATAL_FAILURE(RunProbes(&r));
  ASSERT_EQ(nft.packets("first"), 1u) << "the first probe must carry sequence number 0\n" << nft.ruleset();
  const auto dropped = static_cast<int64_t>(nft.packets("dropped"));
  ASSERT_GE(dropped, static_cast<int64_t>(kBandLow)) << nft.ruleset();
  ASSERT_LE(dropped, static_cast<int64_t>(kBandHigh)) << nft.ruleset();
  EXPECT_EQ(counter(r, "loss.total"), dropped + 1) << r.dump();
  EXPECT_EQ(counter(r, "received"), kProbes - dropped - 1) << r.dump();
  EXPECT_EQ(counter(r, "loss.forward"), 1) << "only the first request was dropped\n" << r.dump();
  EXPECT_LE(counter(r, "loss.backward"), dropped) << r.dump();
  EXPECT_GE(counter(r, "loss.backward"), dropped - kTrailingSlack) << r.dump();
  EXPECT_NEAR(number(r, "loss_percent.backward"), 100.0 * counter(r, "loss.backward") / kProbes, 0.51) << r.dump();
}

// 10 % each way at once: each direction gets its own drops.
TEST_F(LossTest, BothDirectionsWithStatefulReflector) {
  Nft nft(reflector_ns());
  nft.drop_random("input", 10, 862, "fwd_drops");
  nft.drop_random("output", 10, 862, "bwd_drops");
  auto refl = start_reflector({"--stateful", "--listen", std::string(Testbed::kReflectorV4) + ":862"});
  json r;
  ASSERT_NO_FATAL_FAILURE(RunProbes(&r));
  const auto fwd = static_cast<int64_t>(nft.packets("fwd_drops"));
  const auto bwd = static_cast<int64_t>(nft.packets("bwd_drops"));
  // 400 at 10 %: mean 40, sigma 6; 4 sigma [16, 64] (bwd applies to the ~360 that got through).
  ASSERT_GE(fwd, 16) << nft.ruleset();
  ASSERT_LE(fwd, 64) << nft.ruleset();
  ASSERT_GE(bwd, 12) << nft.ruleset();
  ASSERT_LE(bwd, 64) << nft.ruleset();
  EXPECT_EQ(counter(r, "loss.total"), fwd + bwd) << r.dump();
  EXPECT_LE(counter(r, "loss.forward"), fwd) << r.dump();
  EXPECT_GE(counter(r, "loss.forward"), fwd - kTrailingSlack) << r.dump();
  EXPECT_LE(counter(r, "loss.backward"), bwd) << r.dump();
  EXPECT_GE(counter(r, "loss.backward"), bwd - kTrailingSlack) << r.dump();
  EXPECT_LE(counter(r, "loss.unknown"), kTrailingSlack) << r.dump();
}

// A stateless reflector echoes our sequence numbers: the direction of a loss cannot be known, and the
// report must not pretend it does.
TEST_F(LossTest, StatelessReflectorLeavesLossUnsplit) {
  Nft nft(reflector_ns());
  nft.drop_random("input", kDropPercent, 862, "dropped");
  auto refl = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":862"});
  json r;
  ASSERT_NO_FATAL_FAILURE(RunProbes(&r));
  const auto dropped = static_cast<int64_t>(nft.packets("dropped"));
  ASSERT_GE(dropped, static_cast<int64_t>(kBandLow)) << nft.ruleset();
  ASSERT_LE(dropped, static_cast<int64_t>(kBandHigh)) << nft.ruleset();
  EXPECT_EQ(counter(r, "loss.total"), dropped) << r.dump();
  EXPECT_EQ(counter(r, "loss.unknown"), dropped) << r.dump();
  EXPECT_EQ(counter(r, "loss.forward"), 0) << r.dump();
  EXPECT_EQ(counter(r, "loss.backward"), 0) << r.dump();
}

}  // namespace
}  // namespace hubprobe::it
