// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/peer_state.h"

#include <gtest/gtest.h>

#include <string>

namespace hubprobe {
namespace {

constexpr WallNs kSecond = 1'000'000'000;

TEST(PeerState, UnknownUntilTheFirstReply) {
  PeerStateTracker t;
  EXPECT_EQ(t.state(), PeerState::kUnknown);
  EXPECT_EQ(t.last_change(), 0);
  EXPECT_EQ(t.transitions(), 0u);
  EXPECT_TRUE(t.on_reply(0, 10 * kSecond));
  EXPECT_EQ(t.state(), PeerState::kUp);  // the first reply is enough out of unknown
  EXPECT_EQ(t.last_change(), 10 * kSecond);
  EXPECT_EQ(t.transitions(), 1u);
  EXPECT_EQ(t.down_transitions(), 0u);
  EXPECT_EQ(std::string(to_string(t.state())), "up");
}

TEST(PeerState, UnknownToDownAfterNLossesWithoutAnyReply) {
  PeerStateTracker t({.down_after_lost = 3, .up_after_replies = 3});
  EXPECT_FALSE(t.on_lost(0, 1));
  EXPECT_FALSE(t.on_lost(1, 2));
  EXPECT_EQ(t.state(), PeerState::kUnknown);
  EXPECT_TRUE(t.on_lost(2, 3));
  EXPECT_EQ(t.state(), PeerState::kDown);
  EXPECT_EQ(t.last_change(), 3);
  EXPECT_EQ(t.transitions(), 1u);
  EXPECT_EQ(t.down_transitions(), 1u);
}

TEST(PeerState, DownAfterExactlyNConsecutiveLossesUpAfterMConsecutiveReplies) {
  PeerStateTracker t({.down_after_lost = 3, .up_after_replies = 2});
  uint32_t seq = 0;
  WallNs now = 0;
  const auto reply = [&] { return t.on_reply(seq++, now += kSecond / 10); };
  const auto lost = [&] { return t.on_lost(seq++, now += kSecond / 10); };
  reply();  // up
  // Two losses, a reply, two losses: never three in a row.
  lost();
  lost();
  reply();
  lost();
  lost();
  EXPECT_EQ(t.state(), PeerState::kUp);
  EXPECT_EQ(t.consecutive_lost(), 2u);
  EXPECT_TRUE(lost());  // third in a row
  EXPECT_EQ(t.state(), PeerState::kDown);
  const WallNs went_down = now;
  EXPECT_EQ(t.last_change(), went_down);
  lost();
  lost();
  EXPECT_EQ(t.transitions(), 2u);  // unknown->up, up->down
  // One reply, then a loss: the reply streak starts over.
  EXPECT_FALSE(reply());
  lost();
  EXPECT_EQ(t.state(), PeerState::kDown);
  EXPECT_FALSE(reply());
  EXPECT_EQ(t.consecutive_replies(), 1u);
  EXPECT_TRUE(reply());
  EXPECT_EQ(t.state(), PeerState::kUp);
  EXPECT_EQ(t.last_change(), now);
  EXPECT_EQ(t.transitions(), 3u);
  EXPECT_EQ(t.down_transitions(), 1u);
}

TEST(PeerState, OneMissedProbeCanBeEnough) {
  PeerStateTracker t({.down_after_lost = 1, .up_after_replies = 1});
  t.on_reply(0, 1);
  EXPECT_TRUE(t.on_lost(1, 2));
  EXPECT_EQ(t.state(), PeerState::kDown);
  EXPECT_TRUE(t.on_reply(2, 3));
  EXPECT_EQ(t.state(), PeerState::kUp);
  EXPECT_EQ(t.transitions(), 3u);
}

TEST(PeerState, ZeroThresholdsMeanOne) {
  PeerStateTracker t({.down_after_lost = 0, .up_after_replies = 0});
  EXPECT_TRUE(t.on_lost(0, 1));
  EXPECT_EQ(t.state(), PeerState::kDown);
  EXPECT_TRUE(t.on_reply(1, 2));
  EXPECT_EQ(t.state(), PeerState::kUp);
}

TEST(PeerState, LossOlderThanAnAnsweredProbeDoesNotCount) {
  // Probe 5 answered, then the timeouts of 2, 3, 4 expire (they were sent before 5): no run up to now.
  PeerStateTracker t({.down_after_lost = 3, .up_after_replies = 1});
  t.on_reply(5, 1);
  EXPECT_FALSE(t.on_lost(2, 2));
  EXPECT_FALSE(t.on_lost(3, 3));
  EXPECT_FALSE(t.on_lost(4, 4));
  EXPECT_EQ(t.state(), PeerState::kUp);
  EXPECT_EQ(t.consecutive_lost(), 0u);
}

TEST(PeerState, ReplyOlderThanTheNewestLossDoesNotEndTheRun) {
  PeerStateTracker t({.down_after_lost = 3, .up_after_replies = 1});
  t.on_reply(0, 1);
  t.on_lost(2, 2);
  t.on_lost(3, 3);
  t.on_reply(1, 4);  // an old reply processed late
  EXPECT_EQ(t.consecutive_lost(), 2u);
  EXPECT_TRUE(t.on_lost(4, 5));
  EXPECT_EQ(t.state(), PeerState::kDown);
  // Only a reply newer than the newest loss brings it back.
  EXPECT_FALSE(t.on_reply(3, 6));
  EXPECT_TRUE(t.on_reply(5, 7));
  EXPECT_EQ(t.state(), PeerState::kUp);
}

TEST(PeerState, SerialArithmeticAcrossWrap) {
  PeerStateTracker t({.down_after_lost = 2, .up_after_replies = 1});
  t.on_reply(0xfffffffeu, 1);
  t.on_lost(0xffffffffu, 2);
  EXPECT_TRUE(t.on_lost(0, 3));  // 0 follows 0xffffffff
  EXPECT_EQ(t.state(), PeerState::kDown);
  EXPECT_TRUE(t.on_reply(1, 4));
  EXPECT_EQ(t.state(), PeerState::kUp);
}

TEST(PeerState, SetOptionsReevaluatesWithoutLosingState) {
  PeerStateTracker t({.down_after_lost = 5, .up_after_replies = 1});
  t.on_reply(0, 1);
  t.on_lost(1, 2);
  t.on_lost(2, 3);
  EXPECT_EQ(t.state(), PeerState::kUp);
  EXPECT_TRUE(t.set_options({.down_after_lost = 2, .up_after_replies = 1}, 4));
  EXPECT_EQ(t.state(), PeerState::kDown);
  EXPECT_EQ(t.last_change(), 4);
  EXPECT_EQ(t.options().down_after_lost, 2u);
}

TEST(PeerState, SequenceRestartKeepsStateAndAcceptsLowNumbers) {
  PeerStateTracker t({.down_after_lost = 2, .up_after_replies = 1});
  t.on_reply(1000, 1);
  t.on_sequence_restart();
  EXPECT_EQ(t.state(), PeerState::kUp);
  t.on_lost(0, 2);
  EXPECT_TRUE(t.on_lost(1, 3));  // would be "older than 1000" without the restart
  EXPECT_EQ(t.state(), PeerState::kDown);
}

TEST(PeerState, Names) {
  EXPECT_EQ(std::string(to_string(PeerState::kUnknown)), "unknown");
  EXPECT_EQ(std::string(to_string(PeerState::kDown)), "down");
}

}  // namespace
}  // namespace hubprobe
