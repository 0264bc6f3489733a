// SPDX-License-Identifier: Apache-2.0
// Unit tests of the link emulator's core: parsing, scheduling order, no-reorder mode, random loss,
// Gilbert-Elliott bursts, token bucket, the control protocol. Fixed seeds, no kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "linkemu_core.h"

namespace hubprobe::linkemu {
namespace {

constexpr int64_t kMs = 1000000;
constexpr int64_t kUs = 1000;

std::vector<uint8_t> frame(size_t len, uint8_t tag = 0) { return std::vector<uint8_t>(len, tag); }

TEST(LinkemuParse, Durations) {
  EXPECT_EQ(parse_duration_ns("10ms"), 10 * kMs);
  EXPECT_EQ(parse_duration_ns("250us"), 250 * kUs);
  EXPECT_EQ(parse_duration_ns("1.5s"), 1500 * kMs);
  EXPECT_EQ(parse_duration_ns("7ns"), 7);
  EXPECT_EQ(parse_duration_ns("3"), 3 * kMs);
  EXPECT_EQ(parse_duration_ns("0"), 0);
  EXPECT_FALSE(parse_duration_ns(""));
  EXPECT_FALSE(parse_duration_ns("-1ms"));
  EXPECT_FALSE(parse_duration_ns("10 parsecs"));
  EXPECT_FALSE(parse_duration_ns("ms"));
  EXPECT_EQ(format_duration(10 * kMs), "10ms");
  EXPECT_EQ(format_duration(1500 * kUs), "1500us");
}

TEST(LinkemuParse, ProbabilitiesRatesBytes) {
  EXPECT_DOUBLE_EQ(*parse_probability("5%"), 0.05);
  EXPECT_DOUBLE_EQ(*parse_probability("0.25"), 0.25);
  EXPECT_FALSE(parse_probability("101%"));
  EXPECT_FALSE(parse_probability("2"));
  EXPECT_FALSE(parse_probability("5x"));
  EXPECT_EQ(parse_rate_bps("10mbit"), 10000000u);
  EXPECT_EQ(parse_rate_bps("1.5gbit"), 1500000000u);
  EXPECT_EQ(parse_rate_bps("800kbit"), 800000u);
  EXPECT_EQ(parse_rate_bps("0"), 0u);
  EXPECT_FALSE(parse_rate_bps("10mb/s"));
  EXPECT_EQ(parse_bytes("64k"), 65536u);
  EXPECT_EQ(parse_bytes("1500"), 1500u);
  EXPECT_FALSE(parse_bytes("1t"));
}

TEST(LinkemuParse, ApplySetting) {
  DirParams p;
  EXPECT_FALSE(apply_setting(p, "delay", "20ms"));
  EXPECT_FALSE(apply_setting(p, "jitter", "1ms"));
  EXPECT_FALSE(apply_setting(p, "dist", "normal"));
  EXPECT_FALSE(apply_setting(p, "reorder", "yes"));
  EXPECT_FALSE(apply_setting(p, "loss", "5%"));
  EXPECT_FALSE(apply_setting(p, "burst_p", "1%"));
  EXPECT_FALSE(apply_setting(p, "burst_r", "25%"));
  EXPECT_FALSE(apply_setting(p, "rate", "10mbit"));
  EXPECT_FALSE(apply_setting(p, "limit", "64k"));
  EXPECT_EQ(p.delay_ns, 20 * kMs);
  EXPECT_EQ(p.jitter_ns, 1 * kMs);
  EXPECT_EQ(p.dist, JitterDist::kNormal);
  EXPECT_TRUE(p.reorder);
  EXPECT_DOUBLE_EQ(p.loss, 0.05);
  EXPECT_DOUBLE_EQ(p.ge_p, 0.01);
  EXPECT_DOUBLE_EQ(p.ge_r, 0.25);
  EXPECT_EQ(p.rate_bps, 10000000u);
  EXPECT_EQ(p.limit_bytes, 65536u);
  EXPECT_TRUE(apply_setting(p, "colour", "blue"));
  EXPECT_TRUE(apply_setting(p, "burst_r", "0"));
  EXPECT_TRUE(apply_setting(p, "dist", "pareto"));
  EXPECT_EQ(format_params(p),
            "delay=20ms jitter=1ms dist=normal reorder=1 loss=5% burst_p=1% burst_r=25% rate=10000000 "
            "burst=3028 limit=65536");
}

TEST(LinkemuDirection, FixedDelayKeepsOrderAndTimes) {
  Direction d;
  DirParams p;
  p.delay_ns = 10 * kMs;
  d.set_params(p);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(d.arrive(i * kUs, frame(60, static_cast<uint8_t>(i))), Verdict::kQueued);
  EXPECT_EQ(d.queued(), 5u);
  EXPECT_EQ(d.next_due(), 10 * kMs);
  EXPECT_FALSE(d.pop_due(10 * kMs - 1));
  for (int i = 0; i < 5; ++i) {
    auto s = d.pop_due(10 * kMs + 4 * kUs);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->departure_ns, 10 * kMs + i * kUs);
    EXPECT_EQ(s->frame[0], i);
  }
  EXPECT_FALSE(d.next_due());
}

TEST(LinkemuDirection, EqualDeparturesKeepArrivalOrder) {
  Direction d;
  for (int i = 0; i < 100; ++i) d.arrive(0, frame(1, static_cast<uint8_t>(i)));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(d.pop_due(0)->frame[0], i);
}

TEST(LinkemuDirection, SchedulingOrderIsDepartureOrderWithReorder) {
  Direction d(42);
  DirParams p;
  p.delay_ns = 5 * kMs;
  p.jitter_ns = 2 * kMs;
  p.reorder = true;
  d.set_params(p);
  int64_t dep[1000];
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(d.arrive(i * 10 * kUs, frame(1), &dep[i]), Verdict::kQueued);
    EXPECT_GE(dep[i], i * 10 * kUs + 3 * kMs);
    EXPECT_LE(dep[i], i * 10 * kUs + 7 * kMs);
  }
  int reordered = 0;
  for (int i = 1; i < 1000; ++i) reordered += dep[i] < dep[i - 1];
  EXPECT_GT(reordered, 100);  // with 2 ms jitter and 10 us spacing, reordering is the rule
  int64_t last = INT64_MIN;
  int n = 0;
  while (auto s = d.pop_due(INT64_MAX)) {
    EXPECT_GE(s->departure_ns, last);
    last = s->departure_ns;
    ++n;
  }
  EXPECT_EQ(n, 1000);
}

TEST(LinkemuDirection, NoReorderModeHasMonotonicDepartures) {
  for (JitterDist dist : {JitterDist::kUniform, JitterDist::kNormal}) {
    Direction d(7);
    DirParams p;
    p.delay_ns = 5 * kMs;
    p.jitter_ns = 2 * kMs;
    p.dist = dist;
    p.reorder = false;
    d.set_params(p);
    int64_t prev = INT64_MIN;
    int64_t sum_extra = 0;
    for (int i = 0; i < 2000; ++i) {
      int64_t dep = 0;
      ASSERT_EQ(d.arrive(i * 100 * kUs, frame(1, static_cast<uint8_t>(i)), &dep), Verdict::kQueued);
      EXPECT_GE(dep, prev);
      EXPECT_GE(dep, i * 100 * kUs + 5 * kMs - (dist == JitterDist::kUniform ? 2 : 4) * kMs);
      prev = dep;
      sum_extra += dep - i * 100 * kUs - 5 * kMs;
    }
    // Frames also leave in arrival order.
    uint8_t expect = 0;
    while (auto s = d.pop_due(INT64_MAX)) EXPECT_EQ(s->frame[0], expect++);
    // The mean delay rises above nominal (max() only pushes later) but stays within the jitter.
    EXPECT_GT(sum_extra / 2000, 0);
    EXPECT_LT(sum_extra / 2000, (dist == JitterDist::kUniform ? 2 : 4) * kMs);
  }
}

TEST(LinkemuDirection, JitterNeverMakesDelayNegative) {
  Direction d(3);
  DirParams p;
  p.delay_ns = 1 * kMs;
  p.jitter_ns = 5 * kMs;
  p.reorder = true;
  d.set_params(p);
  for (int i = 0; i < 1000; ++i) {
    int64_t dep = 0;
    d.arrive(i * kMs, frame(1), &dep);
    EXPECT_GE(dep, i * kMs);
    EXPECT_LE(dep, i * kMs + 6 * kMs);
  }
}

TEST(LinkemuDirection, RandomLossWithinBinomialBounds) {
  Direction d(12345);
  DirParams p;
  p.loss = 0.05;
  d.set_params(p);
  const int n = 100000;
  for (int i = 0; i < n; ++i) d.arrive(i, frame(1));
  const double mean = n * 0.05;
  const double sd = std::sqrt(n * 0.05 * 0.95);  // ~69
  EXPECT_NEAR(static_cast<double>(d.counters().drop_loss), mean, 5 * sd);
  EXPECT_EQ(d.counters().received, static_cast<uint64_t>(n));
  EXPECT_EQ(d.queued() + d.counters().drop_loss, static_cast<size_t>(n));
  EXPECT_EQ(d.counters().drop_burst, 0u);
}

TEST(LinkemuDirection, GilbertElliottBurstLengths) {
  Direction d(99);
  DirParams p;
  p.ge_p = 0.01;
  p.ge_r = 0.25;  // mean burst 4 frames; stationary loss p/(p+r) = 3.85 %
  d.set_params(p);
  const int n = 200000;
  std::vector<int> lens;
  int run = 0;
  for (int i = 0; i < n; ++i) {
    if (d.arrive(i, frame(1)) == Verdict::kDropBurst) {
      ++run;
    } else if (run > 0) {
      lens.push_back(run);
      run = 0;
    }
  }
  ASSERT_GT(lens.size(), 1000u);
  double sum = 0;
  int max_len = 0;
  for (int l : lens) {
    sum += l;
    max_len = std::max(max_len, l);
  }
  const double mean_len = sum / static_cast<double>(lens.size());
  EXPECT_NEAR(mean_len, 4.0, 0.3);
  EXPECT_GT(max_len, 10);  // geometric: long bursts happen
  const double rate = static_cast<double>(d.counters().drop_burst) / n;
  EXPECT_NEAR(rate, 0.01 / 0.26, 0.005);
  // Turning it off ends a burst at once.
  p.ge_p = 0;
  d.set_params(p);
  EXPECT_EQ(d.arrive(n, frame(1)), Verdict::kQueued);
}

TEST(LinkemuDirection, TokenBucketPacesAndDropsOverLimit) {
  Direction d;
  DirParams p;
  p.rate_bps = 8000000;  // 1 byte/us
  p.burst_bytes = 2000;
  p.limit_bytes = 10000;
  p.delay_ns = 0;
  d.set_params(p);
  // 20 frames of 1000 bytes at t = 0: two go at once (the bucket holds 2000), then one per 1000 us;
  // the backlog limit (10000 bytes waiting) drops the rest.
  std::vector<int64_t> deps;
  int dropped = 0;
  for (int i = 0; i < 20; ++i) {
    int64_t dep = -1;
    const Verdict v = d.arrive(0, frame(1000), &dep);
    if (v == Verdict::kQueued)
      deps.push_back(dep);
    else {
      EXPECT_EQ(v, Verdict::kDropQueue);
      ++dropped;
    }
  }
  ASSERT_EQ(deps.size(), 12u);  // 2 immediate + 10 waiting (10000 bytes)
  EXPECT_EQ(dropped, 8);
  EXPECT_EQ(d.counters().drop_queue, 8u);
  EXPECT_EQ(deps[0], 0);
  EXPECT_EQ(deps[1], 0);
  for (size_t i = 2; i < deps.size(); ++i) EXPECT_EQ(deps[i], static_cast<int64_t>(i - 1) * 1000 * kUs);
  // Once the backlog has drained (at 10 ms all 12 have left the bucket) frames are accepted again.
  EXPECT_EQ(d.arrive(11 * kMs, frame(1000)), Verdict::kQueued);
}

TEST(LinkemuDirection, TokenBucketLongRunRate) {
  Direction d;
  DirParams p;
  p.rate_bps = 10000000;  // 10 Mbit/s
  p.burst_bytes = 1500;
  p.limit_bytes = 1u << 30;
  d.set_params(p);
  int64_t dep = 0;
  const int n = 10000;
  for (int i = 0; i < n; ++i) d.arrive(0, frame(1250), &dep);  // 10 kbit each
  // n frames of 10 kbit at 10 Mbit/s: 1 ms each, the first one free from the full bucket.
  EXPECT_NEAR(static_cast<double>(dep), (n - 1) * 1e6, 2e6);
}

TEST(LinkemuDirection, ChangesApplyToLaterArrivalsOnly) {
  Direction d;
  DirParams p;
  p.delay_ns = 10 * kMs;
  d.set_params(p);
  int64_t a = 0, b = 0;
  d.arrive(0, frame(1), &a);
  p.delay_ns = 30 * kMs;
  d.set_params(p);
  d.arrive(1 * kMs, frame(1), &b);
  EXPECT_EQ(a, 10 * kMs);
  EXPECT_EQ(b, 31 * kMs);
  EXPECT_EQ(d.next_due(), 10 * kMs);
  // Shrinking the delay without reorder: later frames wait for the earlier ones.
  p.delay_ns = 1 * kMs;
  d.set_params(p);
  int64_t c = 0;
  d.arrive(2 * kMs, frame(1), &c);
  EXPECT_EQ(c, 31 * kMs);
}

TEST(LinkemuControl, SetAndShow) {
  Direction ab, ba;
  EXPECT_EQ(control_reply("set ab delay=20ms jitter=0 loss=5%", ab, ba), "ok\n");
  EXPECT_EQ(ab.params().delay_ns, 20 * kMs);
  EXPECT_DOUBLE_EQ(ab.params().loss, 0.05);
  EXPECT_EQ(ba.params().delay_ns, 0);
  EXPECT_EQ(control_reply("set both delay=7ms", ab, ba), "ok\n");
  EXPECT_EQ(ab.params().delay_ns, 7 * kMs);
  EXPECT_EQ(ba.params().delay_ns, 7 * kMs);
  // All or nothing.
  EXPECT_EQ(control_reply("set ba delay=9ms loss=300%", ab, ba).rfind("error: ", 0), 0u);
  EXPECT_EQ(ba.params().delay_ns, 7 * kMs);
  EXPECT_EQ(control_reply("set xy delay=1ms", ab, ba).rfind("error: ", 0), 0u);
  EXPECT_EQ(control_reply("set ab", ab, ba).rfind("error: ", 0), 0u);
  EXPECT_EQ(control_reply("set ab delay", ab, ba).rfind("error: ", 0), 0u);
  EXPECT_EQ(control_reply("frobnicate", ab, ba).rfind("error: ", 0), 0u);
  ab.arrive(0, frame(1));
  const std::string s = control_reply("show", ab, ba);
  EXPECT_NE(s.find("ab delay=7ms jitter=0 dist=uniform reorder=0 loss=5%"), std::string::npos) << s;
  EXPECT_NE(s.find("received=1 "), std::string::npos) << s;
  EXPECT_NE(s.find("\nba delay=7ms"), std::string::npos) << s;
}

// A fake pair of clocks: realtime = monotonic + kOffset. Each read advances time by 50 ns; `stalls[i]`
// adds a preemption of that many ns just before read number i.
struct FakeClocks {
  static constexpr int64_t kOffset = 1'700'000'000'000'000'000;
  int64_t mono = 5 * kMs;
  std::vector<int64_t> stalls;
  size_t reads = 0;
  int64_t read(ClockId id) {
    if (reads < stalls.size()) mono += stalls[reads];
    ++reads;
    mono += 50;
    return id == ClockId::kRealtime ? mono + kOffset : mono;
  }
};

TEST(LinkemuClock, OffsetNeverAboveTheTrueOne) {
  // No preemption: one sample, off by the 50 ns between the realtime read and the second monotonic read.
  FakeClocks quiet;
  ClockOffset o = realtime_offset_floor([&](ClockId id) { return quiet.read(id); });
  EXPECT_EQ(quiet.reads, 3u);
  EXPECT_EQ(o.offset_ns, FakeClocks::kOffset - 50);
  EXPECT_EQ(o.mono_ns, quiet.mono);
  EXPECT_EQ(o.uncertainty_ns, 100);

  // Preempted for 20 us between the realtime read and the monotonic read after it (the case that made
  // the old "monotonic, then realtime" conversion 20 us early, the other way round): the bound is 20 us
  // too small, never too large, so the sample is retried and the tight one wins.
  FakeClocks preempted;
  preempted.stalls = {0, 0, 20 * kUs};
  o = realtime_offset_floor([&](ClockId id) { return preempted.read(id); });
  EXPECT_EQ(preempted.reads, 6u);
  EXPECT_EQ(o.offset_ns, FakeClocks::kOffset - 50);
  EXPECT_EQ(o.uncertainty_ns, 100);

  // Preempted on every try: still a lower bound, with the uncertainty saying by how much at most.
  FakeClocks busy;
  busy.stalls = {0, 0, 30 * kUs, 0, 0, 25 * kUs, 0, 0, 40 * kUs, 0, 0, 50 * kUs};
  o = realtime_offset_floor([&](ClockId id) { return busy.read(id); }, 4);
  EXPECT_EQ(busy.reads, 12u);
  EXPECT_LE(o.offset_ns, FakeClocks::kOffset);
  EXPECT_EQ(o.offset_ns, FakeClocks::kOffset - 25 * kUs - 50);  // the tightest of the four
  EXPECT_GE(o.offset_ns + o.uncertainty_ns, FakeClocks::kOffset);

  // Preempted between the first monotonic read and the realtime read: the bound stays exact, only the
  // uncertainty grows (and the sample is retried).
  FakeClocks early;
  early.stalls = {0, 30 * kUs};
  o = realtime_offset_floor([&](ClockId id) { return early.read(id); });
  EXPECT_EQ(o.offset_ns, FakeClocks::kOffset - 50);
  EXPECT_LE(o.offset_ns, FakeClocks::kOffset);

  // A realtime stamp converted with the bound never lands before its true monotonic time.
  const int64_t true_mono = 3 * kMs;
  EXPECT_GE(true_mono + FakeClocks::kOffset - o.offset_ns, true_mono);
}

}  // namespace
}  // namespace hubprobe::linkemu
