// SPDX-License-Identifier: Apache-2.0
// `hubprobe ping` when the other side fails or lies: the reflector dies mid-run, there is none, or a
// fake reflector (fake_peer.h, built from stamp_wire.h, not from the product's codec) answers with
// packets of the wrong size, garbage, truncated packets, replies to sequence numbers never sent,
// duplicates, reordered and late replies. The ping must end in bounded time, never crash, and count
// each case where the --json report says it belongs.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "fake_peer.h"
#include "fixture.h"

namespace hubprobe::it {
namespace {

using nlohmann::json;

class RobustnessTest : public HubprobeTest {};

TEST_F(RobustnessTest, ReflectorKilledMidRun) {
  auto refl = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":862"});
  // 300 probes 10 ms apart: 3 s; the reflector dies after ~1 s.
  auto run = start_ping({"-c", "300", "-i", "0.01", "--timeout", "1", "--json", Testbed::kReflectorV4});
  std::this_thread::sleep_for(std::chrono::seconds(1));
  refl->process().signal(SIGKILL);
  ASSERT_TRUE(refl->process().wait_for_exit(Seconds(5)));
  // count * interval + timeout + 4 s of margin for a loaded 2-vCPU VM.
  const bool finished = run->wait_for_exit(Seconds(300 * 0.01 + 1 + 4));
  ASSERT_TRUE(finished) << "ping hangs after its reflector died\n" << run->describe();
  EXPECT_EQ(run->exit_info().exit_code(), 0) << "some replies came, so exit 0\n" << run->describe();
  json r;
  ASSERT_NO_FATAL_FAILURE(ParseReport(*run, &r));
  EXPECT_EQ(counter(r, "sent"), 300) << r.dump();
  // ~100 replies before the kill; wide bounds for a slow start or a slow kill.
  EXPECT_GE(counter(r, "received"), 20) << r.dump();
  EXPECT_LE(counter(r, "received"), 280) << r.dump();

  // A new reflector on the same port serves a new ping.
  auto again = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":862"});
  CommandResult r2 = ping({"-c", "5", "-i", "0.01", "--timeout", "1", "--json", Testbed::kReflectorV4}, Seconds(10));
  EXPECT_EQ(r2.exit.exit_code(), 0) << r2.describe();
  json report2;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r2, &report2));
  EXPECT_EQ(counter(report2, "received"), 5);
}

// Nobody listens: ICMP port unreachable comes back for every probe (ECONNREFUSED on the socket).
TEST_F(RobustnessTest, NoReflector) {
  CommandResult r = ping({"-c", "3", "-i", "0.2", "--timeout", "1", "--json", Testbed::kReflectorV4}, Seconds(15));
  EXPECT_EQ(r.exit.exit_code(), 1) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "sent"), 3) << report.dump();
  EXPECT_EQ(counter(report, "received"), 0);
  EXPECT_EQ(counter(report, "loss.total"), 3);
  EXPECT_LT(r.seconds, 3 * 0.2 + 1 + 3) << r.describe();

  // Text mode ends the same way.
  CommandResult text =
      ping({"-c", "2", "-i", "0.1", "--timeout", "0.5", std::string("[") + Testbed::kReflectorV6 + "]"}, Seconds(15));
  EXPECT_EQ(text.exit.exit_code(), 1) << text.describe();
  EXPECT_TRUE(parse_reply_lines(text.out).empty()) << text.out;
}

// Nobody at that address at all (no neighbour answers): sends may fail with EHOSTUNREACH.
TEST_F(RobustnessTest, NoHost) {
  CommandResult r = ping({"-c", "3", "-i", "0.2", "--timeout", "1", "--json", "198.18.0.99"}, Seconds(20));
  EXPECT_TRUE(r.exit.exited()) << r.describe();
  EXPECT_EQ(r.exit.exit_code(), 1) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "received"), 0);
  // Neighbour resolution gives up after ~3 s; the probes themselves end after 0.4 s + 1 s.
  EXPECT_LT(r.seconds, 3 * 0.2 + 1 + 5) << r.describe();
}

// ---- misbehaving reflectors ------------------------------------------------------------------------

struct BadCase {
  Misbehaviour mode;
  /// The sender may classify it as "unexpected" (a well-formed reply to a sequence number it never sent)
  /// rather than "invalid", if its report has such a key.
  bool may_be_unexpected;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << to_string(c.mode); }

class MisbehavingReflectorTest : public HubprobeTest, public ::testing::WithParamInterface<BadCase> {};

TEST_P(MisbehavingReflectorTest, NoValidReplyEveryOneCounted) {
  const BadCase c = GetParam();
  FakeReflector fake(reflector_ns(), c.mode);
  CommandResult r = ping({"-c", "5", "-i", "0.05", "--timeout", "0.5", "--json", Testbed::kReflectorV4}, Seconds(15));
  ASSERT_TRUE(fake.alive());
  EXPECT_TRUE(r.exit.exited()) << "crashed\n" << r.describe();
  EXPECT_EQ(r.exit.exit_code(), 1) << "no valid reply came\n" << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "sent"), 5);
  EXPECT_EQ(counter(report, "received"), 0) << report.dump();
  EXPECT_EQ(counter(report, "loss.total"), 5) << report.dump();
  EXPECT_EQ(fake.requests(), 5u);
  // Each bad reply is counted once (all arrive long before the last timeout).
  const auto bad = static_cast<int64_t>(fake.replies());
  int64_t counted = counter(report, "invalid");
  if (c.may_be_unexpected && counter(report, "unexpected") >= 0) counted += counter(report, "unexpected");
  EXPECT_EQ(counted, bad) << to_string(c.mode) << " replies: " << bad << "\n" << report.dump();
  EXPECT_EQ(counter(report, "duplicates"), 0) << report.dump();
  EXPECT_EQ(counter(report, "late"), 0) << report.dump();
}

INSTANTIATE_TEST_SUITE_P(Modes, MisbehavingReflectorTest,
                         ::testing::Values(BadCase{Misbehaviour::kWrongSize, false},
                                           BadCase{Misbehaviour::kTruncated, false},
                                           BadCase{Misbehaviour::kGarbage, true},
                                           BadCase{Misbehaviour::kWrongSeq, true},
                                           BadCase{Misbehaviour::kWrongSsid, false}),
                         [](const ::testing::TestParamInfo<BadCase>& param_info) {
                           std::string name = to_string(param_info.param.mode);
                           for (auto& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

// Bad replies around good ones must neither hide nor spoil the good ones.
TEST_F(RobustnessTest, BadRepliesNextToGoodOnes) {
  FakeReflector fake(reflector_ns(), Misbehaviour::kBadThenValid);
  CommandResult r = ping({"-c", "5", "-i", "0.02", "--timeout", "0.5", "--json", Testbed::kReflectorV4}, Seconds(15));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "received"), 5) << report.dump();
  EXPECT_EQ(counter(report, "invalid"), 15) << "3 bad replies per probe\n" << report.dump();
  EXPECT_EQ(counter(report, "duplicates"), 0) << report.dump();
}

TEST_F(RobustnessTest, DuplicateReplies) {
  FakeReflector fake(reflector_ns(), Misbehaviour::kDuplicate);
  CommandResult r = ping({"-c", "5", "-i", "0.02", "--timeout", "0.5", "--json", Testbed::kReflectorV4}, Seconds(15));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "received"), 5) << report.dump();
  // The run may end as soon as the last probe is answered, before its duplicate is read.
  EXPECT_GE(counter(report, "duplicates"), 4) << report.dump();
  EXPECT_LE(counter(report, "duplicates"), 5) << report.dump();
  EXPECT_EQ(counter(report, "invalid"), 0) << report.dump();
  EXPECT_EQ(counter(report, "loss.total"), 0) << report.dump();
}

TEST_F(RobustnessTest, ReorderedReplies) {
  FakeReflector fake(reflector_ns(), Misbehaviour::kSwapPairs);
  CommandResult r = ping({"-c", "10", "-i", "0.02", "--timeout", "0.5", "--json", Testbed::kReflectorV4}, Seconds(15));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "received"), 10) << report.dump();
  // Seqs 0..9: the replies to 0, 2, 4, 6, 8 each arrive after the next one's.
  EXPECT_EQ(counter(report, "reordered"), 5) << report.dump();
  EXPECT_EQ(counter(report, "loss.total"), 0) << report.dump();
}

TEST_F(RobustnessTest, LateReplies) {
  // Odd seqs answered 600 ms late, past the 300 ms timeout: lost, then late.
  FakeReflector fake(reflector_ns(), Misbehaviour::kDelayOdd, 862, 600);
  CommandResult r = ping({"-c", "10", "-i", "0.1", "--timeout", "0.3", "--json", Testbed::kReflectorV4}, Seconds(15));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "received"), 5) << report.dump();
  EXPECT_EQ(counter(report, "loss.total"), 5) << "a late reply is still a lost probe\n" << report.dump();
  // Probes 1, 3, 5 (sent at 0.1, 0.3, 0.5 s) are answered at 0.7, 0.9, 1.1 s, before the run ends at
  // 0.9 + 0.3 s; 7 and 9 may come after the end.
  EXPECT_GE(counter(report, "late"), 2) << report.dump();
  EXPECT_LE(counter(report, "late"), 5) << report.dump();
}

}  // namespace
}  // namespace hubprobe::it
