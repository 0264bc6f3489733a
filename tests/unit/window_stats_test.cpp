// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/window_stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "hubprobe/summary.h"

namespace hubprobe {
namespace {

using stamp::ProbeEvent;

constexpr WallNs kMs = 1'000'000;
constexpr WallNs kSecond = 1'000'000'000;
constexpr WallNs kT0 = 1'700'000'000 * kSecond;  // a realistic wall time, on a slice boundary

// The same moment on both clocks: nothing steps the wall clock in these tests.
Now both(int64_t t) { return Now{t, t}; }

ProbeEvent reply(uint32_t seq, uint32_t reflector_seq, WallNs rtt_ns, WallNs turnaround_ns = 0,
                 bool synchronized = false) {
  ProbeEvent e;
  e.kind = ProbeEvent::Kind::kReply;
  e.seq = seq;
  stamp::Sample& s = e.sample;
  s.seq = seq;
  s.reflector_seq = reflector_seq;
  s.t1 = {kT0, dp::TimestampSource::kKernelSoftware};
  s.t2 = kT0 + rtt_ns / 2;
  s.t3 = s.t2 + turnaround_ns;
  s.t4 = {kT0 + rtt_ns + turnaround_ns, dp::TimestampSource::kKernelSoftware};
  s.local_error.synchronized = synchronized;
  s.reflector_error.synchronized = synchronized;
  return e;
}

ProbeEvent event(ProbeEvent::Kind kind, uint32_t seq) {
  ProbeEvent e;
  e.kind = kind;
  e.seq = seq;
  return e;
}

ProbeEvent lost(uint32_t seq) { return event(ProbeEvent::Kind::kLost, seq); }

// ---- SequenceTracker: loss split by direction ----------------------------------------------------------

TEST(WindowLossSplit, ForwardLossShowsInReflectorNumbering) {
  // Probes 0..5; the reflector never got 1 and 3, so it numbered 0, 2, 4, 5 as 0, 1, 2, 3.
  SequenceTracker t;
  for (uint32_t s = 0; s < 6; ++s) t.on_sent(s);
  t.on_reply(0, 0, 0);
  t.on_reply(2, 1, 0);
  t.on_reply(4, 2, 0);
  t.on_reply(5, 3, 0);
  EXPECT_EQ(t.totals().total(), 0u);  // nothing declared lost yet
  EXPECT_TRUE(t.stateful_reflector());
  auto u = t.on_lost(3);  // timeouts expire in any order
  EXPECT_EQ(u.classified.total(), 0u);
  EXPECT_EQ(t.pending_lost(), 1u);
  u = t.on_lost(1);
  // Both runs settle now: (0,0)-(2,1): 2 sent, 1 reached -> 1 forward; (2,1)-(4,2): same.
  EXPECT_EQ(u.classified.forward, 2u);
  EXPECT_EQ(t.totals().forward, 2u);
  EXPECT_EQ(t.totals().backward, 0u);
  EXPECT_EQ(t.totals().unknown, 0u);
  EXPECT_EQ(t.pending_lost(), 0u);
  EXPECT_EQ(t.tracked(), 0u);
}

TEST(WindowLossSplit, BackwardLossWithAReflectorNumberingOfItsOwn) {
  // A stateful reflector that served other sessions first: its numbers start at 100. It got every probe;
  // the replies to 1 and 3 were lost on the way back.
  SequenceTracker t;
  for (uint32_t s = 0; s < 6; ++s) t.on_sent(s);
  t.on_reply(0, 100, 0);  // the run before it: virtual (-1, -1) to (0, 100) does not fit -> unknown, 0 lost
  t.on_lost(1);
  t.on_reply(2, 102, 0);
  t.on_lost(3);
  t.on_reply(4, 104, 0);
  t.on_reply(5, 105, 0);
  EXPECT_EQ(t.totals().forward, 0u);
  EXPECT_EQ(t.totals().backward, 2u);
  EXPECT_EQ(t.totals().unknown, 0u);
  EXPECT_EQ(split_loss(6, {{0, 100}, {2, 102}, {4, 104}, {5, 105}}).backward, 2u);
}

TEST(WindowLossSplit, StatelessReflectorGivesUnknown) {
  SequenceTracker t;
  for (uint32_t s = 0; s < 6; ++s) t.on_sent(s);
  for (uint32_t s : {0u, 2u, 4u, 5u}) t.on_reply(s, s, 0);
  t.on_lost(1);
  t.on_lost(3);
  EXPECT_FALSE(t.stateful_reflector());
  EXPECT_EQ(t.totals().unknown, 2u);
  EXPECT_EQ(t.totals().forward + t.totals().backward, 0u);
  const auto batch = split_loss(6, {{0, 0}, {2, 2}, {4, 4}, {5, 5}});
  EXPECT_EQ(batch.unknown, 2u);
}

TEST(WindowLossSplit, LossesAfterTheLastReplyWaitForTheNextReplyOrRestart) {
  SequenceTracker t;
  for (uint32_t s = 0; s < 5; ++s) t.on_sent(s);
  t.on_reply(0, 10, 0);
  t.on_reply(1, 11, 0);
  t.on_lost(2);
  t.on_lost(3);
  EXPECT_EQ(t.pending_lost(), 2u);
  EXPECT_EQ(t.totals().total(), 0u);
  // The reflector got 2 and 3 but not 4... we only learn that from the next reply.
  t.on_lost(4);
  t.on_sent(5);
  t.on_reply(5, 13, 0);  // (1,11)-(5,13): 4 sent, 2 reached: 2 forward, 1 backward
  EXPECT_EQ(t.totals().forward, 2u);
  EXPECT_EQ(t.totals().backward, 1u);
  t.on_sent(6);
  t.on_lost(6);
  const auto u = t.restart();  // a new sender: 6 can no longer be split
  EXPECT_EQ(u.classified.unknown, 1u);
  EXPECT_EQ(t.totals().unknown, 1u);
  EXPECT_EQ(t.pending_lost(), 0u);
}

TEST(WindowLossSplit, FailedSendsDoNotCountAsSent) {
  // 2 was never sent (send error): the reflector numbered 0, 1, 3 as 0, 1, 2 and never got 4.
  SequenceTracker t;
  for (uint32_t s : {0u, 1u, 3u, 4u, 5u}) t.on_sent(s);
  t.on_reply(0, 0, 0);
  t.on_reply(1, 1, 0);
  t.on_reply(3, 2, 0);
  t.on_lost(4);
  t.on_reply(5, 3, 0);  // (3,2)-(5,3): 2 sent, 1 reached -> 1 forward
  EXPECT_EQ(t.totals().forward, 1u);
  EXPECT_EQ(t.totals().backward, 0u);
  EXPECT_EQ(t.totals().unknown, 0u);
}

TEST(WindowLossSplit, ReflectorRestartMakesTheRunUnknown) {
  SequenceTracker t;
  for (uint32_t s = 0; s < 4; ++s) t.on_sent(s);
  t.on_reply(0, 500, 0);
  t.on_reply(1, 501, 0);
  t.on_lost(2);
  t.on_reply(3, 0, 0);  // the reflector restarted its numbering
  EXPECT_EQ(t.totals().unknown, 1u);
  EXPECT_EQ(t.totals().forward + t.totals().backward, 0u);
}

TEST(WindowLossSplit, SenderRestartIsDetectedFromTheNumbering) {
  SequenceTracker t;
  for (uint32_t s = 0; s < 3; ++s) t.on_sent(s);
  t.on_reply(0, 7, 0);
  t.on_lost(1);
  t.on_lost(2);
  const auto u = t.on_sent(0);  // a new sender starts at 0 again
  EXPECT_EQ(u.classified.unknown, 2u);
  t.on_sent(1);
  t.on_reply(0, 8, 0);
  t.on_reply(1, 9, 0);
  EXPECT_EQ(t.totals().unknown, 2u);
  EXPECT_EQ(t.totals().forward + t.totals().backward, 0u);
}

TEST(WindowLossSplit, SequenceNumbersWrap) {
  SequenceTracker t;
  const uint32_t first = 0xfffffffdu;
  for (uint32_t i = 0; i < 6; ++i) t.on_sent(first + i);
  t.on_reply(first, 50, 0);
  t.on_lost(first + 1);
  t.on_lost(first + 2);          // 0xffffffff
  t.on_reply(first + 3, 51, 0);  // 0: 3 sent, 1 reached -> 2 forward
  t.on_lost(first + 4);
  t.on_reply(first + 5, 53, 0);  // 2: 2 sent, 2 reached -> 1 backward
  EXPECT_EQ(t.totals().forward, 2u);
  EXPECT_EQ(t.totals().backward, 1u);
  EXPECT_EQ(t.totals().unknown, 0u);
}

/// A random session: forward and backward losses, replies overtaking each other, losses declared at
/// their timeout. Returns the incremental totals after restart() and the replies for split_loss().
struct Simulated {
  LossSplit incremental;
  LossSplit before_flush;
  std::vector<ReplySequence> replies;
};

Simulated simulate(uint32_t seed, uint32_t probes, uint32_t reflector_start, bool stateless) {
  std::mt19937 rng(seed);
  const auto chance = [&](uint32_t percent) { return rng() % 100 < percent; };
  const uint32_t forward_loss = 2 + rng() % 25, backward_loss = 2 + rng() % 25;
  struct Timed {
    WallNs at;
    uint32_t order;
    bool is_sent;
    bool is_reply;
    uint32_t seq;
    uint32_t reflector_seq;
  };
  std::vector<Timed> timeline;
  Simulated out;
  uint32_t reflector = reflector_start;
  uint32_t order = 0;
  for (uint32_t s = 0; s < probes; ++s) {
    const WallNs sent = static_cast<WallNs>(s) * 100 * kMs;
    timeline.push_back({sent, order++, true, false, s, 0});
    bool answered = false;
    uint32_t r = 0;
    if (!chance(forward_loss)) {
      r = stateless ? s : reflector;
      ++reflector;
      answered = !chance(backward_loss);
    }
    if (answered) {
      // 20 ms RTT plus up to 400 ms of queueing: replies overtake each other; timeout is 2 s.
      const WallNs arrival = sent + 20 * kMs + static_cast<WallNs>(rng() % 400) * kMs;
      timeline.push_back({arrival, order++, false, true, s, r});
      out.replies.push_back({s, r});
    } else {
      timeline.push_back({sent + 2 * kSecond, order++, false, false, s, 0});
    }
  }
  std::sort(timeline.begin(), timeline.end(),
            [](const Timed& a, const Timed& b) { return a.at != b.at ? a.at < b.at : a.order < b.order; });
  SequenceTracker t;
  for (const Timed& e : timeline) {
    if (e.is_sent) {
      t.on_sent(e.seq);
    } else if (e.is_reply) {
      t.on_reply(e.seq, e.reflector_seq, 0);
    } else {
      t.on_lost(e.seq);
    }
  }
  out.before_flush = t.totals();
  t.restart();
  out.incremental = t.totals();
  return out;
}

TEST(WindowLossSplit, IncrementalEqualsBatchWhenTheReflectorNumbersItsOwnWay) {
  // Property test, fixed seeds: a reflector whose numbering starts elsewhere (it served other sessions)
  // is known to be stateful from its first reply; then the incremental split equals split_loss().
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    const uint32_t probes = 1 + seed * 7 % 400;
    const auto sim = simulate(seed, probes, 1000 + seed, false);
    const auto batch = split_loss(probes, sim.replies);
    EXPECT_EQ(sim.incremental.forward, batch.forward) << "seed " << seed;
    EXPECT_EQ(sim.incremental.backward, batch.backward) << "seed " << seed;
    EXPECT_EQ(sim.incremental.unknown, batch.unknown) << "seed " << seed;
    // Settled counters only grow: before the flush, each is at most the final value.
    EXPECT_LE(sim.before_flush.unknown, sim.incremental.unknown);
    EXPECT_EQ(sim.before_flush.forward, sim.incremental.forward);
  }
}

TEST(WindowLossSplit, IncrementalMatchesBatchUpToTheAmbiguousStartForAReflectorCountingFromZero) {
  // A stateful reflector counting from 0 echoes our numbers until its first forward loss: runs settled
  // before that are unknown here, backward in split_loss(). Forward is always equal, the rest sums equal.
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    const uint32_t probes = 1 + seed * 13 % 400;
    const auto sim = simulate(seed, probes, 0, false);
    const auto batch = split_loss(probes, sim.replies);
    EXPECT_EQ(sim.incremental.forward, batch.forward) << "seed " << seed;
    EXPECT_LE(sim.incremental.backward, batch.backward) << "seed " << seed;
    EXPECT_EQ(sim.incremental.backward + sim.incremental.unknown, batch.backward + batch.unknown) << "seed " << seed;
    EXPECT_EQ(sim.incremental.total(), batch.total()) << "seed " << seed;
  }
}

TEST(WindowLossSplit, IncrementalEqualsBatchForStatelessReflectors) {
  for (uint32_t seed = 1; seed <= 100; ++seed) {
    const uint32_t probes = 1 + seed * 11 % 300;
    const auto sim = simulate(seed, probes, 0, true);
    const auto batch = split_loss(probes, sim.replies);
    EXPECT_EQ(sim.incremental.unknown, batch.unknown) << "seed " << seed;
    EXPECT_EQ(sim.incremental.forward + sim.incremental.backward, 0u) << "seed " << seed;
  }
}

TEST(WindowLossSplit, GivesUpOnProbesThatNeverResolve) {
  SequenceTracker t;
  t.on_sent(0);  // never resolved
  for (uint32_t s = 1; s <= SequenceTracker::kMaxTracked + 10; ++s) {
    t.on_sent(s);
    t.on_reply(s, s + 5, 0);
  }
  EXPECT_LE(t.tracked(), SequenceTracker::kMaxTracked);
  EXPECT_EQ(t.totals().total(), 0u);
  EXPECT_EQ(t.pending_lost(), 0u);
}

// ---- IPDV -----------------------------------------------------------------------------------------------

TEST(WindowJitter, IpdvOnAHandComputedSequence) {
  // RTTs by sequence number: 0:10 ms, 1:12 ms, 2:lost, 3:13 ms, 4:10 ms, 5:16 ms.
  // Pairs (0,1): +2, (3,4): -3, (4,5): +6 -> |IPDV| = 2, 3, 6 ms; mean 11/3 ms; max (and p99) 6 ms.
  // RFC 3550 smoothing in completion order: J = 2/16 = 0.125; J += (3 - J)/16 -> 0.3046875;
  // J += (6 - J)/16 -> 0.66064453125 ms.
  WindowedStats stats;
  const WallNs now = kT0;
  for (uint32_t s = 0; s < 6; ++s) stats.on_sent(s, now);
  stats.on_event(reply(0, 0, 10 * kMs), both(now));
  stats.on_event(reply(1, 1, 12 * kMs), both(now));
  stats.on_event(reply(3, 2, 13 * kMs), both(now));
  stats.on_event(reply(4, 3, 10 * kMs), both(now));
  stats.on_event(reply(5, 4, 16 * kMs), both(now));
  stats.on_event(lost(2), both(now));
  const auto snap = stats.snapshot(now);
  EXPECT_EQ(snap.jitter.pairs, 3u);
  EXPECT_NEAR(snap.jitter.mean_abs_ipdv_s, 11.0 / 3 * 1e-3, 1e-12);
  EXPECT_DOUBLE_EQ(snap.jitter.max_abs_ipdv_s, 0.006);
  EXPECT_DOUBLE_EQ(snap.jitter.p99_abs_ipdv_s, 0.006);
  EXPECT_NEAR(snap.jitter.rfc3550_s, 0.66064453125e-3, 1e-15);
  // The batch reference agrees.
  EXPECT_NEAR(mean_abs_ipdv({{0, 10}, {1, 12}, {3, 13}, {4, 10}, {5, 16}}), 11.0 / 3, 1e-12);
}

TEST(WindowJitter, IpdvPairsDoNotDependOnArrivalOrder) {
  std::mt19937 rng(5);
  std::vector<SequencedDelay> reference;
  std::vector<ProbeEvent> events;
  for (uint32_t s = 0; s < 300; ++s) {
    if (rng() % 10 == 0) {
      events.push_back(lost(s));
      continue;
    }
    const WallNs rtt = 20 * kMs + static_cast<WallNs>(rng() % 2000) * 1000;
    events.push_back(reply(s, s + 1, rtt));
    reference.push_back({s, static_cast<double>(rtt)});
  }
  std::shuffle(events.begin(), events.end(), rng);
  WindowedStats stats;
  for (uint32_t s = 0; s < 300; ++s) stats.on_sent(s, kT0);
  stats.on_events(events, both(kT0));
  const auto snap = stats.snapshot(kT0);
  const auto ipdv_values = ipdv(reference);
  EXPECT_EQ(snap.jitter.pairs, ipdv_values.size());
  EXPECT_NEAR(snap.jitter.mean_abs_ipdv_s, mean_abs_ipdv(reference) * 1e-9, 1e-12);
  double max_abs = 0;
  for (double v : ipdv_values) max_abs = std::max(max_abs, std::fabs(v));
  EXPECT_DOUBLE_EQ(snap.jitter.max_abs_ipdv_s, max_abs * 1e-9);
}

// ---- Windowed delays, expiry, counters -------------------------------------------------------------------

TEST(WindowStats, QuantilesOfRttOneWayAndTurnaround) {
  WindowedStats stats;
  // RTT 1..100 ms, turnaround 10 µs, half of them with synchronised clocks.
  for (uint32_t s = 0; s < 100; ++s) {
    stats.on_sent(s, kT0);
    stats.on_event(reply(s, s, (s + 1) * kMs, 10'000, s % 2 == 0), both(kT0));
  }
  const auto snap = stats.snapshot(kT0);
  EXPECT_EQ(snap.rtt.count, 100u);
  EXPECT_DOUBLE_EQ(snap.rtt.min_s, 0.001);
  EXPECT_DOUBLE_EQ(snap.rtt.max_s, 0.100);
  EXPECT_DOUBLE_EQ(snap.rtt.mean_s, 0.0505);
  const double bound = 1.0 / 256;  // precision 7
  EXPECT_NEAR(snap.rtt.p50_s, 0.050, 0.050 * bound);
  EXPECT_NEAR(snap.rtt.p90_s, 0.090, 0.090 * bound);
  EXPECT_NEAR(snap.rtt.p99_s, 0.099, 0.099 * bound);
  EXPECT_DOUBLE_EQ(snap.rtt.p999_s, 0.100);  // rank 100 = max
  EXPECT_EQ(snap.turnaround.count, 100u);
  EXPECT_DOUBLE_EQ(snap.turnaround.p50_s, 10e-6);  // all equal: clamped to [min, max]
  // One-way delays only from the 50 synchronised samples (RTT 1, 3, ..., 99 ms; forward = RTT/2).
  EXPECT_EQ(snap.forward.count, 50u);
  EXPECT_EQ(snap.backward.count, 50u);
  EXPECT_DOUBLE_EQ(snap.forward.min_s, 0.0005);
  EXPECT_DOUBLE_EQ(snap.forward.max_s, 0.0495);
  EXPECT_EQ(snap.totals.one_way_samples, 50u);
  EXPECT_FALSE(snap.one_way_valid);  // the newest sample (seq 99) was not synchronised
  EXPECT_DOUBLE_EQ(snap.last_rtt_s, 0.100);
  EXPECT_EQ(snap.last_reply_at, kT0);
  EXPECT_EQ(stats.rtt_histogram().count(), 100u);
}

TEST(WindowStats, SamplesLeaveTheWindowAtSliceGranularity) {
  // 60 s window of 12 slices of 5 s. A sample recorded at t stays while epoch(now) - epoch(t) < 12:
  // at least 55 s, less than 60 s.
  WindowedStats stats;
  EXPECT_EQ(stats.slice_ns(), 5 * kSecond);
  const WallNs t_early = kT0 + 100 * kSecond;     // start of a slice
  const WallNs t_late = kT0 + 105 * kSecond - 1;  // end of the same slice
  stats.on_sent(0, t_early);
  stats.on_event(reply(0, 0, 20 * kMs), both(t_early));
  stats.on_sent(1, t_late);
  stats.on_event(reply(1, 1, 30 * kMs), both(t_late));
  EXPECT_EQ(stats.snapshot(t_late).rtt.count, 2u);
  EXPECT_EQ(stats.snapshot(t_early + 60 * kSecond - 1).rtt.count, 2u);  // 55 s after t_late: still in
  const auto gone = stats.snapshot(t_early + 60 * kSecond);             // the slice left the window
  EXPECT_EQ(gone.rtt.count, 0u);
  EXPECT_EQ(gone.window.received, 0u);
  EXPECT_EQ(gone.window.sent, 0u);
  EXPECT_DOUBLE_EQ(gone.rtt.p99_s, 0);
  // Cumulative counters and the exported histogram stay.
  EXPECT_EQ(gone.totals.received, 2u);
  EXPECT_EQ(gone.totals.sent, 2u);
  EXPECT_EQ(stats.rtt_histogram().count(), 2u);
  EXPECT_EQ(gone.window_ns, 60 * kSecond);
}

TEST(WindowStats, SlidingWindowKeepsOnlyTheNewestSlices) {
  WindowOptions options;
  options.window_ns = 10 * kSecond;
  options.slices = 10;  // 1 s slices
  WindowedStats stats(options);
  // One reply per second with RTT = 10 ms + second index (ms).
  for (uint32_t s = 0; s < 30; ++s) {
    const WallNs now = kT0 + s * kSecond;
    stats.on_sent(s, now);
    stats.on_event(reply(s, s, (10 + s) * kMs), both(now));
  }
  const auto snap = stats.snapshot(kT0 + 29 * kSecond);
  EXPECT_EQ(snap.rtt.count, 10u);  // seconds 20..29
  EXPECT_DOUBLE_EQ(snap.rtt.min_s, 0.030);
  EXPECT_DOUBLE_EQ(snap.rtt.max_s, 0.039);
  EXPECT_EQ(snap.jitter.pairs, 10u);  // pairs completing in seconds 20..29
  EXPECT_NEAR(snap.jitter.mean_abs_ipdv_s, 0.001, 1e-12);
  // Long idle: everything expires.
  EXPECT_EQ(stats.snapshot(kT0 + 100 * kSecond).rtt.count, 0u);
}

TEST(WindowStats, ClockSteppingBackStaysInTheNewestSliceOrRestartsTheWindow) {
  WindowedStats stats;
  stats.on_sent(0, kT0 + 30 * kSecond);
  stats.on_event(reply(0, 0, 20 * kMs), both(kT0 + 30 * kSecond));
  // 10 s back: counted in the newest slice, still visible.
  stats.on_sent(1, kT0 + 20 * kSecond);
  stats.on_event(reply(1, 1, 21 * kMs), both(kT0 + 20 * kSecond));
  EXPECT_EQ(stats.snapshot(kT0 + 20 * kSecond).rtt.count, 2u);
  EXPECT_EQ(stats.snapshot(kT0 + 30 * kSecond).rtt.count, 2u);
  // An hour back: the window starts over, totals stay.
  const WallNs back = kT0 - 3600 * kSecond;
  stats.on_sent(2, back);
  stats.on_event(reply(2, 2, 22 * kMs), both(back));
  const auto snap = stats.snapshot(back);
  EXPECT_EQ(snap.rtt.count, 1u);
  EXPECT_DOUBLE_EQ(snap.rtt.max_s, 0.022);
  EXPECT_EQ(snap.totals.received, 3u);
}

TEST(WindowStats, LossRatiosAndDirectionCounters) {
  // 10 probes to a stateful reflector (numbers from 0): it never got 3 and 7 (forward); the reply to 5 was
  // lost on the way back. The reflector numbered what it got: 0..2 -> 0..2, 4 -> 3, 5 -> 4 (reply lost),
  // 6 -> 5, 8 -> 6, 9 -> 7.
  WindowedStats stats;
  const WallNs now = kT0;
  for (uint32_t s = 0; s < 10; ++s) stats.on_sent(s, now);
  const std::vector<std::pair<uint32_t, uint32_t>> replies = {{0, 0}, {1, 1}, {2, 2}, {4, 3}, {6, 5}, {8, 6}, {9, 7}};
  for (auto [s, r] : replies) stats.on_event(reply(s, r, 20 * kMs), both(now));
  stats.on_event(lost(3), both(now));
  stats.on_event(lost(5), both(now));
  stats.on_event(lost(7), both(now));
  const auto snap = stats.snapshot(now);
  EXPECT_EQ(snap.totals.lost, 3u);
  EXPECT_EQ(snap.totals.lost_forward, 2u);
  EXPECT_EQ(snap.totals.lost_backward, 1u);
  EXPECT_EQ(snap.totals.lost_unknown, 0u);
  EXPECT_EQ(snap.totals.lost_direction_pending, 0u);
  EXPECT_TRUE(snap.loss.direction_known);
  EXPECT_DOUBLE_EQ(snap.loss.total, 3.0 / 10);    // 3 of 10 settled probes
  EXPECT_DOUBLE_EQ(snap.loss.forward, 2.0 / 10);  // 2 of 10 sent never arrived
  EXPECT_DOUBLE_EQ(snap.loss.backward, 1.0 / 8);  // 1 of the 8 that arrived never came back
  EXPECT_DOUBLE_EQ(snap.loss.unknown, 0);
  EXPECT_EQ(snap.window.lost_forward, 2u);
  // Same batch reference.
  std::vector<ReplySequence> batch_replies;
  for (auto [s, r] : replies) batch_replies.push_back({s, r});
  const auto batch = split_loss(10, batch_replies);
  EXPECT_EQ(batch.forward, 2u);
  EXPECT_EQ(batch.backward, 1u);
}

TEST(WindowStats, StatelessReflectorLossIsUnknownAndSaysSo) {
  WindowedStats stats;
  for (uint32_t s = 0; s < 4; ++s) stats.on_sent(s, kT0);
  stats.on_event(reply(0, 0, kMs), both(kT0));
  stats.on_event(lost(1), both(kT0));
  stats.on_event(reply(2, 2, kMs), both(kT0));
  stats.on_event(reply(3, 3, kMs), both(kT0));
  const auto snap = stats.snapshot(kT0);
  EXPECT_FALSE(snap.loss.direction_known);
  EXPECT_EQ(snap.totals.lost_unknown, 1u);
  EXPECT_DOUBLE_EQ(snap.loss.total, 0.25);
  EXPECT_DOUBLE_EQ(snap.loss.unknown, 0.25);
  EXPECT_DOUBLE_EQ(snap.loss.forward, 0);
  EXPECT_DOUBLE_EQ(snap.loss.backward, 0);
}

TEST(WindowStats, PendingDirectionIsReportedAndSettledOnSenderRestart) {
  WindowedStats stats;
  for (uint32_t s = 0; s < 3; ++s) stats.on_sent(s, kT0);
  stats.on_event(reply(0, 9, kMs), both(kT0));
  stats.on_event(lost(1), both(kT0));
  stats.on_event(lost(2), both(kT0));
  auto snap = stats.snapshot(kT0);
  EXPECT_EQ(snap.totals.lost, 2u);
  EXPECT_EQ(snap.totals.lost_direction_pending, 2u);
  EXPECT_EQ(snap.totals.lost_forward + snap.totals.lost_backward + snap.totals.lost_unknown, 0u);
  stats.on_sender_restart(kT0 + kSecond);
  snap = stats.snapshot(kT0 + kSecond);
  EXPECT_EQ(snap.totals.lost_direction_pending, 0u);
  EXPECT_EQ(snap.totals.lost_unknown, 2u);
}

TEST(WindowStats, LateDuplicateAndReorderedAreCounted) {
  WindowedStats stats;
  stats.on_sent(0, kT0);
  stats.on_sent(1, kT0);
  stats.on_event(lost(0), both(kT0));
  stats.on_event(event(ProbeEvent::Kind::kLate, 0), both(kT0));
  stats.on_event(reply(1, 1, kMs), both(kT0));
  stats.on_event(event(ProbeEvent::Kind::kDuplicate, 1), both(kT0));
  stats.on_event(event(ProbeEvent::Kind::kDuplicate, 1), both(kT0));
  stamp::SenderCounters counters;
  counters.reordered = 3;
  counters.invalid = 4;
  counters.unexpected = 1;
  counters.send_errors = 2;
  stats.on_sender_counters(counters, kT0);
  counters.reordered = 5;
  stats.on_sender_counters(counters, kT0 + 10 * kSecond);
  auto snap = stats.snapshot(kT0 + 10 * kSecond);
  EXPECT_EQ(snap.totals.late, 1u);
  EXPECT_EQ(snap.totals.duplicates, 2u);
  EXPECT_EQ(snap.totals.reordered, 5u);
  EXPECT_EQ(snap.totals.invalid, 4u);
  EXPECT_EQ(snap.totals.unexpected, 1u);
  EXPECT_EQ(snap.totals.send_errors, 2u);
  EXPECT_EQ(snap.totals.lost, 1u);  // the late reply does not undo the loss
  EXPECT_EQ(snap.window.late, 1u);
  EXPECT_EQ(snap.window.duplicates, 2u);
  EXPECT_EQ(snap.window.reordered, 5u);
  // A new sender whose counters start from zero: totals keep growing.
  stamp::SenderCounters fresh;
  fresh.reordered = 1;
  stats.on_sender_counters(fresh, kT0 + 11 * kSecond);
  snap = stats.snapshot(kT0 + 11 * kSecond);
  EXPECT_EQ(snap.totals.reordered, 6u);
  EXPECT_EQ(snap.totals.invalid, 4u);
  // The reordering 70 s ago left the window; the total did not.
  snap = stats.snapshot(kT0 + 80 * kSecond);
  EXPECT_EQ(snap.window.reordered, 0u);
  EXPECT_EQ(snap.totals.reordered, 6u);
}

TEST(WindowStats, SenderRestartKeepsStatisticsAndZeroesTheCounterBaseline) {
  WindowedStats stats;
  stamp::SenderCounters counters;
  counters.reordered = 10;
  stats.on_sender_counters(counters, kT0);
  stats.on_sender_restart(kT0);
  counters.reordered = 12;  // the new sender already counted 12 (not 2 more than the old one)
  stats.on_sender_counters(counters, kT0);
  EXPECT_EQ(stats.snapshot(kT0).totals.reordered, 22u);
}

TEST(WindowStats, PeerStateFollowsTheEvents) {
  WindowOptions options;
  options.peer_state = {.down_after_lost = 2, .up_after_replies = 2};
  WindowedStats stats(options);
  for (uint32_t s = 0; s < 8; ++s) stats.on_sent(s, kT0);
  stats.on_event(reply(0, 0, kMs), both(kT0 + 1));
  EXPECT_EQ(stats.snapshot(kT0 + 1).state, PeerState::kUp);
  stats.on_event(lost(1), both(kT0 + 2));
  stats.on_event(lost(2), both(kT0 + 3));
  auto snap = stats.snapshot(kT0 + 3);
  EXPECT_EQ(snap.state, PeerState::kDown);
  EXPECT_EQ(snap.state_since, kT0 + 3);
  EXPECT_EQ(snap.state_transitions, 2u);
  EXPECT_EQ(snap.down_transitions, 1u);
  EXPECT_EQ(snap.consecutive_lost, 2u);
  stats.on_event(reply(3, 3, kMs), both(kT0 + 4));
  EXPECT_EQ(stats.snapshot(kT0 + 4).state, PeerState::kDown);
  // A config reload raising the recovery threshold keeps state and statistics.
  stats.set_peer_state_options({.down_after_lost = 2, .up_after_replies = 3}, kT0 + 5);
  stats.on_event(reply(4, 4, kMs), both(kT0 + 6));
  EXPECT_EQ(stats.snapshot(kT0 + 6).state, PeerState::kDown);
  stats.on_event(reply(5, 5, kMs), both(kT0 + 7));
  snap = stats.snapshot(kT0 + 7);
  EXPECT_EQ(snap.state, PeerState::kUp);
  EXPECT_EQ(snap.state_since, kT0 + 7);
  EXPECT_EQ(snap.totals.received, 4u);
}

TEST(WindowStats, MovesToANewOwnerIntact) {
  WindowedStats stats;
  for (uint32_t s = 0; s < 5; ++s) {
    stats.on_sent(s, kT0);
    stats.on_event(reply(s, s, (20 + s) * kMs), both(kT0));
  }
  const auto before = stats.snapshot(kT0);
  WindowedStats moved = std::move(stats);
  const auto after = moved.snapshot(kT0);
  EXPECT_EQ(after.rtt.count, before.rtt.count);
  EXPECT_DOUBLE_EQ(after.rtt.p50_s, before.rtt.p50_s);
  EXPECT_EQ(after.totals.received, 5u);
  EXPECT_EQ(moved.rtt_histogram().count(), 5u);
  moved.on_sent(5, kT0);
  moved.on_event(reply(5, 5, 25 * kMs), both(kT0));
  EXPECT_EQ(moved.snapshot(kT0).jitter.pairs, 5u);  // the IPDV chain continues
}

TEST(WindowStats, OneMillisecondChangeAtTwentyMillisecondsIsVisible) {
  WindowOptions options;
  options.window_ns = 10 * kSecond;
  options.slices = 10;
  WindowedStats stats(options);
  std::mt19937 rng(9);
  uint32_t seq = 0;
  // 20 ms +- 0.2 ms for a window, then 21 ms +- 0.2 ms for a window.
  for (int phase = 0; phase < 2; ++phase) {
    for (int i = 0; i < 100; ++i) {
      const WallNs now = kT0 + (phase * 100 + i) * 100 * kMs;
      const WallNs rtt = (20 + phase) * kMs + static_cast<WallNs>(rng() % 400'000) - 200'000;
      stats.on_sent(seq, now);
      stats.on_event(reply(seq, seq, rtt), both(now));
      ++seq;
    }
    const auto snap = stats.snapshot(kT0 + (phase * 100 + 99) * 100 * kMs);
    EXPECT_NEAR(snap.rtt.p50_s, 0.020 + phase * 0.001, 0.00025) << phase;
  }
}

TEST(WindowStats, MemoryPerSession) {
  // 10 probes/s for two windows: RTT 20 ms +- 1 ms, one-way valid, turnaround 5..50 µs, 1 % loss.
  WindowedStats stats;
  std::mt19937 rng(1);
  const size_t initial = stats.memory_bytes();
  for (uint32_t s = 0; s < 1200; ++s) {
    const WallNs now = kT0 + s * 100 * kMs;
    stats.on_sent(s, now);
    if (rng() % 100 == 0) {
      stats.on_event(lost(s), both(now));
      continue;
    }
    const WallNs rtt = 20 * kMs + static_cast<WallNs>(rng() % 2'000'000) - 1'000'000;
    const WallNs turnaround = 5'000 + static_cast<WallNs>(rng() % 45'000);
    stats.on_event(reply(s, s + 3, rtt, turnaround, true), both(now));
  }
  const size_t bytes = stats.memory_bytes();
  std::printf("[ memory   ] WindowedStats: %zu bytes empty, %zu bytes after 2 windows at 10 probes/s\n", initial,
              bytes);
  EXPECT_LT(bytes, 64u * 1024);
  const auto snap = stats.snapshot(kT0 + 1199 * 100 * kMs);
  EXPECT_NEAR(snap.rtt.p50_s, 0.020, 0.0002);
  EXPECT_EQ(snap.rtt.count + snap.window.lost, snap.window.sent);
}

}  // namespace
}  // namespace hubprobe
