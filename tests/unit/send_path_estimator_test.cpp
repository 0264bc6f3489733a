// SPDX-License-Identifier: Apache-2.0
// SendPathEstimator: a user-space reflector's send path (TX stamp - T3 clock read) learnt from its
// replies: matched by TX key, a windowed median that slow replies do not move, its spread as the
// residual, and what it refuses.
#include "hubprobe/send_path_estimator.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace hubprobe::stamp {
namespace {

constexpr int64_t kUs = 1'000;
using Estimator = SendPathEstimator;

void add_many(Estimator& estimator, int64_t latency_ns, size_t count) {
  for (size_t i = 0; i < count; ++i) ASSERT_TRUE(estimator.add(latency_ns));
}

TEST(SendPathEstimatorTest, NothingIsAddedBeforeEnoughSamplesButTheLongestIsTheResidual) {
  Estimator estimator;
  EXPECT_EQ(estimator.estimate(), (Estimator::Estimate{0, 0}));
  for (size_t i = 0; i + 1 < Estimator::kMinSamples; ++i) estimator.add(static_cast<int64_t>(10 + i) * kUs);
  // T3 stays the clock read, which is early by up to the longest send path seen.
  EXPECT_EQ(estimator.estimate().latency_ns, 0);
  EXPECT_EQ(estimator.estimate().residual_ns, static_cast<int64_t>(10 + Estimator::kMinSamples - 2) * kUs);
  estimator.add(20 * kUs);
  EXPECT_GT(estimator.estimate().latency_ns, 0);
}

TEST(SendPathEstimatorTest, ALowQuantileIgnoresSlowRepliesAndTheResidualIsTheSpread) {
  Estimator estimator;
  // 20 us typically, every fourth reply preempted for a millisecond.
  for (size_t i = 0; i < Estimator::kWindow; ++i) estimator.add(i % 4 == 3 ? 1'000 * kUs : 20 * kUs);
  EXPECT_EQ(estimator.estimate().latency_ns, 20 * kUs);
  // p90 is a preempted one: the residual says how far a reply may lie from the estimate.
  EXPECT_EQ(estimator.estimate().residual_ns, 980 * kUs);

  Estimator steady;
  for (size_t i = 0; i < Estimator::kWindow; ++i) steady.add((18 + static_cast<int64_t>(i % 5)) * kUs);  // 18..22
  // The 10th percentile (sorted[3] of 32), and p90 (sorted[28]) above it.
  EXPECT_EQ(steady.estimate().latency_ns, 18 * kUs);
  EXPECT_EQ(steady.estimate().residual_ns, 4 * kUs);
}

TEST(SendPathEstimatorTest, ALastingChangeIsFollowedDownAtOnceAndUpOnceTheWindowIsNew) {
  Estimator estimator;
  add_many(estimator, 10 * kUs, Estimator::kWindow);
  // Longer: followed once at most 3 of the 32 are old (sorted[3] is then new), i.e. after 29.
  add_many(estimator, 30 * kUs, Estimator::kWindow - 4);
  EXPECT_EQ(estimator.estimate().latency_ns, 10 * kUs);
  add_many(estimator, 30 * kUs, 1);
  EXPECT_EQ(estimator.estimate().latency_ns, 30 * kUs);
  add_many(estimator, 30 * kUs, Estimator::kWindow);
  EXPECT_EQ(estimator.estimate(), (Estimator::Estimate{30 * kUs, 0}));
  // Shorter: followed after 4 (a tenth of the window), so T3 stays before the replies leave.
  add_many(estimator, 12 * kUs, 3);
  EXPECT_EQ(estimator.estimate().latency_ns, 30 * kUs);
  add_many(estimator, 12 * kUs, 1);
  EXPECT_EQ(estimator.estimate().latency_ns, 12 * kUs);
}

TEST(SendPathEstimatorTest, OutOfRangeSendPathsAreRefused) {
  Estimator estimator;
  add_many(estimator, 20 * kUs, Estimator::kWindow);
  const Estimator::Estimate before = estimator.estimate();
  EXPECT_FALSE(estimator.add(-1));                            // a stamp before the read: a clock step back
  EXPECT_FALSE(estimator.add(Estimator::kMaxLatencyNs + 1));  // a step forward, or the wrong reply
  EXPECT_TRUE(estimator.add(Estimator::kMaxLatencyNs));
  EXPECT_EQ(estimator.refused(), 2u);
  EXPECT_EQ(estimator.samples(), Estimator::kWindow + 1);
  EXPECT_EQ(estimator.estimate().latency_ns, before.latency_ns);
}

TEST(SendPathEstimatorTest, StampsAreMatchedToTheirRepliesByTxKey) {
  Estimator estimator;
  const WallNs base = 1'764'000'000'000'000'000;
  // Keys 7, 8, 9 left 10 us apart; their stamps come back out of order, 15 us after each read.
  for (uint32_t key = 7; key <= 9; ++key) estimator.on_sent(key, base + key * 10 * kUs);
  estimator.on_tx_stamp(9, base + 9 * 10 * kUs + 15 * kUs);
  estimator.on_tx_stamp(7, base + 7 * 10 * kUs + 15 * kUs);
  estimator.on_tx_stamp(8, base + 8 * 10 * kUs + 15 * kUs);
  EXPECT_EQ(estimator.samples(), 3u);
  EXPECT_EQ(estimator.estimate().residual_ns, 15 * kUs);  // the longest, before kMinSamples
  // A second stamp for the same key, and one for a key never sent: counted, not learnt.
  estimator.on_tx_stamp(8, base + 8 * 10 * kUs + 500 * kUs);
  estimator.on_tx_stamp(1000, base);
  EXPECT_EQ(estimator.unmatched(), 2u);
  EXPECT_EQ(estimator.samples(), 3u);
}

TEST(SendPathEstimatorTest, AReplyWhoseStampNeverCameIsForgottenWhenItsSlotIsReused) {
  Estimator estimator;
  estimator.on_sent(3, 1000);  // its stamp is lost
  estimator.on_sent(3 + Estimator::kPending, 5000);
  estimator.on_tx_stamp(3, 1200);  // late: its reply is no longer remembered
  EXPECT_EQ(estimator.unmatched(), 1u);
  estimator.on_tx_stamp(3 + Estimator::kPending, 5000 + 20 * kUs);
  EXPECT_EQ(estimator.samples(), 1u);
  EXPECT_EQ(estimator.estimate().residual_ns, 20 * kUs);
}

}  // namespace
}  // namespace hubprobe::stamp
