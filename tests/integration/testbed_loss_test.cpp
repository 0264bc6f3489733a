// SPDX-License-Identifier: Apache-2.0
// Loss on one direction of an emulated WAN link, split by direction by hubprobe.
//
//   hpit<PID>-<N>s  hpv0 198.18.0.1 --veth-- [ linkemu, 1 ms each way ] --veth-- hpv1 198.18.0.2  hpit<PID>-<N>r
//
// The emulator drops 5 % of the frames at random on ONE direction (`set ab loss=5%`: sender ->
// reflector, then `set ba loss=5%`: the way back). `hubprobe ping -c 3000 -i 0.002 --json` against
// `hubprobe reflect --stateful` must report the loss on that direction and none on the other:
//  * the ratio of the lossy direction is 5 % within 4 binomial standard errors for 3000 probes:
//    sigma = sqrt(0.05 x 0.95 / 3000) = 0.40 %, so 3.4 % .. 6.6 % (a false alarm once in ~16000 runs;
//    the emulator's seed is new each run and printed, `--seed` replays it);
//  * exactness against the emulator's own drop counters (`drop_loss` of `show`, read before and after):
//    the neighbours are static, so only probes and replies cross the link and every frame the emulator
//    dropped is a probe (ab) or a reply (ba). hubprobe's forward count may miss only the probes whose
//    direction it cannot settle (lost after the last reply: `unknown`), so
//    forward <= drops(ab) <= forward + unknown, and the same for backward / ba;
//  * the other direction: 0 lost (its emulator direction dropped nothing).
// With loss on the way back only, a stateful reflector's numbers equal ours (it saw every request):
// exactly what a stateless reflector sends, so no sender can tell the direction (hubprobe says
// "unknown", docs/cli.md). As in loss_test.cpp, nftables in the sender's namespace therefore drops the
// very first request (sequence number 0) in the backward run: one known forward loss that shows the
// reflector numbers on its own. Forward must then be exactly 1.
// Takes ~ 15 s.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "emulated_link.h"
#include "hubprobe_cli.h"
#include "netns.h"
#include "process.h"

namespace hubprobe::it {
namespace {

constexpr int kProbes = 3000;
constexpr double kLoss = 0.05;
constexpr double kSigmas = 4.0;

class TestbedLossTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_BINARY();
    HUBPROBE_REQUIRE(ethtool_missing_reason());
    HUBPROBE_REQUIRE_NFT();
    ASSERT_EQ(access(linkemu_binary().c_str(), X_OK), 0)
        << linkemu_binary() << " is missing: build the hubprobe-linkemu target";
    // A new seed each run (printed): the bound is tested against fresh draws, and a failure can be
    // replayed with the same seed.
    seed_ = std::to_string(std::random_device{}() % 1000000 + 1);
    link_ = std::make_unique<EmulatedLink>(dir_.path(), std::vector<std::string>{"--delay", "1ms", "--seed", seed_},
                                           /*static_neighbours=*/true);
    reflector_ = std::make_unique<Reflector>(link_->reflector(),
                                             std::vector<std::string>{"--listen", "198.18.0.2:862", "--stateful"},
                                             dir_.path(), "reflector");
    // A first short run: the path works and nothing is lost without loss configured.
    const CommandResult warm =
        run_hubprobe(link_->sender(), {"ping", "-c", "5", "-i", "0.01", "-q", "--json", "198.18.0.2"}, Seconds(10));
    ASSERT_TRUE(warm.ok()) << warm.describe();
    const JsonReport parsed = parse_report(warm.out);
    ASSERT_TRUE(parsed.ok) << parsed.error << "\n" << warm.describe();
    ASSERT_EQ(counter(parsed.json, "received"), 5) << warm.describe();
  }

  void TearDown() override {
    reflector_.reset();
    link_.reset();
  }

  /// Loss on `lossy` ("ab" or "ba") only; checks hubprobe's split against it.
  void measure(const std::string& lossy) {
    const std::string other = lossy == "ab" ? "ba" : "ab";
    const std::string lossy_key = lossy == "ab" ? "loss.forward" : "loss.backward";
    const std::string other_key = lossy == "ab" ? "loss.backward" : "loss.forward";
    link_->set("both loss=0");
    link_->set(lossy + " loss=5%");
    const uint64_t drops_before_lossy = link_->counter(lossy, "drop_loss");
    const uint64_t drops_before_other = link_->counter(other, "drop_loss");
    // Backward run: the first request is dropped on its way out (see the top of the file).
    std::unique_ptr<Nft> nft;
    int64_t marked = 0;
    if (lossy == "ba") {
      nft = std::make_unique<Nft>(link_->sender());
      nft->add_counter("first");
      // @th,64,32: the first 32 bits after the 8-octet UDP header, the sender's sequence number.
      nft->add_rule("output", "udp dport 862 @th,64,32 0 counter name \"first\" drop");
    }

    const CommandResult ping = run_hubprobe(
        link_->sender(),
        {"ping", "-c", std::to_string(kProbes), "-i", "0.002", "-W", "0.5", "-q", "--json", "198.18.0.2"}, Seconds(60));
    link_->set("both loss=0");
    if (nft) {
      marked = static_cast<int64_t>(nft->packets("first"));
      ASSERT_EQ(marked, 1) << "the first probe must carry sequence number 0\n" << nft->ruleset();
    }
    ASSERT_TRUE(ping.ok()) << ping.describe();
    const JsonReport parsed = parse_report(ping.out);
    ASSERT_TRUE(parsed.ok) << parsed.error << "\n" << ping.describe();
    ASSERT_TRUE(report_well_formed(parsed.json)) << ping.describe();
    const nlohmann::json& rep = parsed.json;

    const int64_t drops_lossy = static_cast<int64_t>(link_->counter(lossy, "drop_loss") - drops_before_lossy);
    const int64_t drops_other = static_cast<int64_t>(link_->counter(other, "drop_loss") - drops_before_other);
    const int64_t sent = counter(rep, "sent");
    const int64_t lost_lossy = counter(rep, lossy_key);
    const int64_t lost_other = counter(rep, other_key);
    const int64_t unknown = counter(rep, "loss.unknown");
    const double ratio = static_cast<double>(lost_lossy) / static_cast<double>(sent);
    const double sigma = std::sqrt(kLoss * (1 - kLoss) / static_cast<double>(kProbes));
    char line[512];
    std::snprintf(line, sizeof line,
                  "loss 5%% on %s: %lld probes, hubprobe %s %lld (%.2f %%), %s %lld, unknown %lld | emulator "
                  "dropped %lld on %s, %lld on %s | bound 5 %% +- %.0f sigma = %.2f .. %.2f %% | seed %s",
                  lossy.c_str(), static_cast<long long>(sent), lossy_key.c_str(), static_cast<long long>(lost_lossy),
                  ratio * 100, other_key.c_str(), static_cast<long long>(lost_other), static_cast<long long>(unknown),
                  static_cast<long long>(drops_lossy), lossy.c_str(), static_cast<long long>(drops_other),
                  other.c_str(), kSigmas, (kLoss - kSigmas * sigma) * 100, (kLoss + kSigmas * sigma) * 100,
                  seed_.c_str());
    std::printf("[ measured ] %s\n", line);
    RecordProperty("loss_" + lossy, line);

    ASSERT_EQ(sent, kProbes) << line;
    // Statistics: the lossy direction within 4 sigma of 5 %.
    EXPECT_NEAR(ratio, kLoss, kSigmas * sigma) << line;
    // Exactness against the emulator, up to the probes hubprobe could not settle.
    EXPECT_LE(lost_lossy, drops_lossy) << line;
    EXPECT_LE(drops_lossy, lost_lossy + unknown) << line;
    EXPECT_LE(unknown, 5) << "only the tail after the last reply is unknown\n" << line;
    // The other direction lost nothing (but the one marking request of the backward run).
    EXPECT_EQ(drops_other, 0) << line;
    EXPECT_EQ(lost_other, marked) << line;
    EXPECT_EQ(counter(rep, "received") + lost_lossy + lost_other + unknown, sent) << line;
  }

  TempDir dir_;
  std::string seed_;
  std::unique_ptr<EmulatedLink> link_;
  std::unique_ptr<Reflector> reflector_;
};

TEST_F(TestbedLossTest, FivePercentOnOneDirectionIsReportedOnThatDirection) {
  ASSERT_NO_FATAL_FAILURE(measure("ab"));  // forward
  ASSERT_NO_FATAL_FAILURE(measure("ba"));  // backward
}

}  // namespace
}  // namespace hubprobe::it
