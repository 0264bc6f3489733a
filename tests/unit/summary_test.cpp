// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/summary.h"

#include <gtest/gtest.h>

namespace hubprobe {
namespace {

TEST(Summary, EmptyInputGivesZeros) {
  const Distribution d = summarize({});
  EXPECT_EQ(d.count, 0u);
  EXPECT_EQ(d.max, 0);
}

TEST(Summary, HandComputedReference) {
  // 1..10 shuffled: mean 5.5, population variance 8.25, nearest-rank p50 = 5th value, p90 = 9th.
  const Distribution d = summarize({7, 3, 10, 1, 5, 2, 9, 4, 8, 6});
  EXPECT_EQ(d.count, 10u);
  EXPECT_DOUBLE_EQ(d.min, 1);
  EXPECT_DOUBLE_EQ(d.max, 10);
  EXPECT_DOUBLE_EQ(d.mean, 5.5);
  EXPECT_DOUBLE_EQ(d.p50, 5);
  EXPECT_DOUBLE_EQ(d.p90, 9);
  EXPECT_DOUBLE_EQ(d.p99, 10);
  EXPECT_NEAR(d.stddev, 2.8722813232690143, 1e-12);
}

TEST(Summary, NearestRankOnHundredValues) {
  std::vector<double> values;
  for (int i = 100; i >= 1; --i) values.push_back(i);
  const Distribution d = summarize(values);
  EXPECT_DOUBLE_EQ(d.p50, 50);
  EXPECT_DOUBLE_EQ(d.p90, 90);
  EXPECT_DOUBLE_EQ(d.p99, 99);
  EXPECT_DOUBLE_EQ(d.p999, 100);
}

TEST(Ipdv, OnlyConsecutiveSequenceNumbersPair) {
  // seq 2 is missing: pairs (0,1) and (3,4) only. IPDV = +2 and -1.
  const auto v = ipdv({{4, 9}, {0, 10}, {1, 12}, {3, 10}});
  ASSERT_EQ(v.size(), 2u);
  EXPECT_DOUBLE_EQ(v[0], 2);
  EXPECT_DOUBLE_EQ(v[1], -1);
  EXPECT_DOUBLE_EQ(mean_abs_ipdv({{4, 9}, {0, 10}, {1, 12}, {3, 10}}), 1.5);
  EXPECT_DOUBLE_EQ(mean_abs_ipdv({{0, 10}}), 0);
}

TEST(SplitLoss, NoLoss) {
  const auto loss = split_loss(3, {{0, 0}, {1, 1}, {2, 2}});
  EXPECT_EQ(loss.total(), 0u);
}

TEST(SplitLoss, ForwardLossShowsInReflectorNumbering) {
  // Probes 0..5; the reflector never got 1 and 3, so it numbered 0,2,4,5 as 0,1,2,3.
  const auto loss = split_loss(6, {{0, 0}, {2, 1}, {4, 2}, {5, 3}});
  EXPECT_EQ(loss.forward, 2u);
  EXPECT_EQ(loss.backward, 0u);
  EXPECT_EQ(loss.unknown, 0u);
}

TEST(SplitLoss, BackwardLossKeepsReflectorNumbering) {
  // The reflector got all six (0..5) but replies 1 and 4 were lost: reflector seq jumps with ours.
  const auto loss = split_loss(6, {{0, 0}, {2, 2}, {3, 3}, {5, 5}, {1, 1}});
  // Stateful evidence is needed to split: here every reply has r == s, so the direction is unknown.
  EXPECT_EQ(loss.unknown, 1u);
  // With one forward loss first (reflector numbering offset by one), backward loss is visible.
  const auto mixed = split_loss(7, {{0, 0}, {2, 1}, {4, 3}, {5, 4}, {6, 5}});
  // 1 lost forward; 3 reached the reflector (seq 2) but its reply was lost.
  EXPECT_EQ(mixed.forward, 1u);
  EXPECT_EQ(mixed.backward, 1u);
  EXPECT_EQ(mixed.unknown, 0u);
}

TEST(SplitLoss, TailAndStatelessAreUnknown) {
  const auto tail = split_loss(10, {{0, 0}, {2, 1}});
  EXPECT_EQ(tail.forward, 1u);
  EXPECT_EQ(tail.unknown, 7u);  // 3..9 after the last reply
  const auto stateless = split_loss(5, {{0, 0}, {3, 3}});
  EXPECT_EQ(stateless.forward + stateless.backward, 0u);
  EXPECT_EQ(stateless.unknown, 3u);  // 1 and 2 between the replies, 4 after the last
  const auto none = split_loss(4, {});
  EXPECT_EQ(none.unknown, 4u);
}

TEST(SplitLoss, ReflectorRestartIsUnknownNotNegative) {
  // The reflector restarted after our seq 3: its numbering starts again at 0.
  const auto loss = split_loss(8, {{0, 0}, {1, 1}, {2, 3}, {5, 0}, {6, 1}, {7, 2}});
  EXPECT_EQ(loss.backward, 0u);
  EXPECT_EQ(loss.unknown, 2u);  // 3 and 4, across the restart
  EXPECT_EQ(loss.forward, 0u);
}

TEST(SplitLoss, DuplicatesAndOutOfRangeIgnored) {
  const auto loss = split_loss(3, {{0, 0}, {0, 0}, {2, 1}, {9, 9}});
  EXPECT_EQ(loss.forward, 1u);
  EXPECT_EQ(loss.total(), 1u);
}

}  // namespace
}  // namespace hubprobe
