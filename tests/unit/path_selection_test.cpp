// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/path_selection.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace hubprobe {

// Failure messages name the state (found by argument-dependent lookup, so it lives in hubprobe).
[[maybe_unused]] static void PrintTo(PathState state, std::ostream* os) { *os << to_string(state); }

namespace {

constexpr int64_t kUs = 1'000;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;
constexpr WallNs kT0 = 1'700'000'000 * kSecond;  // a realistic wall time
constexpr int64_t kInterval = 100 * kMs;         // 10 probes/s

// The same moment on both clocks: nothing steps the wall clock in these tests.
Now both(int64_t t) { return Now{t, t}; }

const CandidateView* view_of(const PathSelector& selector, const std::string& id) {
  for (const CandidateView& v : selector.ranked()) {
    if (v.id == id) return &v;
  }
  return nullptr;
}

PathState state_of(const PathSelector& selector, const std::string& id) {
  const CandidateView* v = view_of(selector, id);
  return v == nullptr ? PathState::kUnknown : v->state;
}

std::vector<std::string> order_of(const PathSelector& selector) {
  std::vector<std::string> ids;
  for (const CandidateView& v : selector.ranked()) ids.push_back(v.id);
  return ids;
}

// ---- Outcomes as the agent gives them ---------------------------------------------------------------------

// Each outcome to the selector's window and to the session's PeerStateTracker (one per candidate, as in the
// agent's WindowedStats, with [probe]'s default down_after of 3), whose judgement the selector then takes
// as down: what record_probe_event() (probe_outcome.h) does, without building STAMP samples.
class Outcomes {
 public:
  explicit Outcomes(PathSelector& selector) : selector_(selector) {}
  // `t` is the same moment on both clocks: the selector's window takes it as monotonic, the tracker dates
  // its state changes with it as wall time.
  void reply(const std::string& id, int64_t t, int64_t rtt_ns, std::optional<int64_t> forward_ns = std::nullopt,
             double forward_error_s = 0) {
    selector_.on_reply(id, both(t).mono, rtt_ns, forward_ns, forward_error_s);
    tracker(id).on_reply(seq_[id]++, both(t).wall);
    selector_.set_peer_state(id, tracker(id).state());
  }
  void lost(const std::string& id, int64_t t) {
    selector_.on_lost(id, both(t).mono);
    tracker(id).on_lost(seq_[id]++, both(t).wall);
    selector_.set_peer_state(id, tracker(id).state());
  }
  PeerStateTracker& tracker(const std::string& id) { return trackers_.try_emplace(id).first->second; }

 private:
  PathSelector& selector_;
  std::map<std::string, PeerStateTracker> trackers_;
  std::map<std::string, uint32_t> seq_;
};

// ---- A replay driver: probes every 100 ms on every path, evaluate() as the agent calls it --------------

// The outcome of the probe sent at `t`: an RTT, or nullopt when it is lost.
using RttFunction = std::function<std::optional<int64_t>(WallNs t)>;

// 20 ms with noise of 100..300 µs whose sign alternates probe by probe; a fixed seed (mt19937_64's output
// is specified by the standard, and the mapping below is ours, so the sequence is the same everywhere).
class NoisyPath {
 public:
  NoisyPath(uint64_t seed, int64_t base_ns, bool start_positive)
      : rng_(seed), base_ns_(base_ns), positive_(start_positive) {}
  int64_t next() {
    const auto magnitude = static_cast<int64_t>(100 + rng_() % 201) * kUs;
    positive_ = !positive_;
    return base_ns_ + (positive_ ? magnitude : -magnitude);
  }
  void set_base(int64_t base_ns) { base_ns_ = base_ns; }

 private:
  std::mt19937_64 rng_;
  int64_t base_ns_;
  bool positive_;
};

class Replay {
 public:
  explicit Replay(const SlaClass& sla, int64_t evaluate_every = kSecond)
      : selector(sla), outcomes(selector), every_(evaluate_every) {}

  void add(const std::string& id, RttFunction rtt) {
    ASSERT_TRUE(selector.add_candidate(id, "peer-" + id, "uplink", kInterval));
    paths_.emplace_back(id, std::move(rtt));
  }

  // Runs for `duration`: one probe per path per interval, evaluate() every `evaluate_every`, then
  // `after(now, change)`.
  void run(int64_t duration, const std::function<void(WallNs, const SelectionChange&)>& after = {}) {
    const WallNs end = now + duration;
    while (now < end) {
      now += kInterval;
      for (auto& [id, rtt] : paths_) {
        const std::optional<int64_t> outcome = rtt(now);
        if (outcome) {
          outcomes.reply(id, now, *outcome);
        } else {
          outcomes.lost(id, now);
        }
      }
      if ((now - kT0) % every_ == 0) {
        const SelectionChange change = selector.evaluate(both(now));
        if (after) after(now, change);
      }
    }
  }

  PathSelector selector;
  Outcomes outcomes;
  WallNs now = kT0;

 private:
  int64_t every_;
  std::vector<std::pair<std::string, RttFunction>> paths_;
};

RttFunction noisy(uint64_t seed, int64_t base_ns, bool start_positive) {
  auto path = std::make_shared<NoisyPath>(seed, base_ns, start_positive);
  return [path](WallNs) -> std::optional<int64_t> { return path->next(); };
}

// ---- 1. Equal paths with noise never switch ---------------------------------------------------------------

uint64_t switches_between_equal_noisy_paths(const SlaClass& sla) {
  Replay replay(sla);
  replay.add("a/uplink", noisy(1, 20 * kMs, true));
  replay.add("b/uplink", noisy(2, 20 * kMs, false));
  replay.run(10 * 60 * kSecond, [&](WallNs now, const SelectionChange&) {
    if (now - kT0 >= 2 * kSecond) {
      EXPECT_FALSE(replay.selector.preferred().empty()) << (now - kT0) / kSecond << " s";
    }
  });
  return replay.selector.switches();
}

TEST(PathSelectionReplay, EqualPathsWithNoiseNeverSwitch) {
  EXPECT_EQ(switches_between_equal_noisy_paths(SlaClass{}), 0u);
}

TEST(PathSelectionReplay, TheSameNoiseFlapsWithoutMarginOrTime) {
  // Control: the noise of the test above is real. Without margin and without time, it switches often.
  SlaClass sla;
  sla.switch_margin_ns = 0;
  sla.switch_margin_ratio = 0;
  sla.switch_after_ns = 0;
  EXPECT_GT(switches_between_equal_noisy_paths(sla), 10u);
}

// ---- 2. A real step switches, within the configured time --------------------------------------------------

TEST(PathSelectionReplay, StepOfOneMillisecondSwitchesInTime) {
  const SlaClass sla;  // window 10 s, switch_after 5 s, margin max(250 µs, 2 %)
  Replay replay(sla);
  auto a = std::make_shared<NoisyPath>(11, 20 * kMs, true);
  auto b = std::make_shared<NoisyPath>(12, 20 * kMs, false);
  replay.add("a/uplink", [a](WallNs) -> std::optional<int64_t> { return a->next(); });
  replay.add("b/uplink", [b](WallNs) -> std::optional<int64_t> { return b->next(); });
  replay.run(5 * 60 * kSecond);
  ASSERT_EQ(replay.selector.switches(), 0u) << "switched before the step";
  const std::string before = replay.selector.preferred();
  ASSERT_FALSE(before.empty());
  const std::string other = before == "a/uplink" ? "b/uplink" : "a/uplink";

  // The step: every probe sent after `step` on the preferred path takes 1 ms longer.
  const WallNs step = replay.now;
  (before == "a/uplink" ? a : b)->set_base(21 * kMs);
  std::optional<WallNs> switched_at;
  std::optional<WallNs> beating_since;  // when the other path started to beat the margin (as of evaluate())
  replay.run(2 * 60 * kSecond, [&](WallNs now, const SelectionChange& change) {
    if (change.preferred_changed && !switched_at) switched_at = now;
    if (switched_at) return;
    const double current = view_of(replay.selector, before)->score_s;
    const double margin = std::max(static_cast<double>(sla.switch_margin_ns) * 1e-9, sla.switch_margin_ratio * current);
    if (view_of(replay.selector, other)->score_s < current - margin) {
      if (!beating_since) beating_since = now;
    } else {
      beating_since.reset();
    }
  });
  ASSERT_TRUE(switched_at.has_value()) << "never switched";
  EXPECT_EQ(replay.selector.preferred(), other);
  EXPECT_EQ(replay.selector.switches(), 1u) << "switched back and forth";
  EXPECT_GE(*switched_at - step, sla.switch_after_ns);
  EXPECT_LE(*switched_at - step, sla.window_ns / 2 + sla.switch_after_ns + kSecond);
  // The median moved after about half a window; from then on the margin held for exactly switch_after.
  ASSERT_TRUE(beating_since.has_value());
  EXPECT_GE(*beating_since - step, sla.window_ns / 2 - kSecond);
  EXPECT_EQ(*switched_at - *beating_since, sla.switch_after_ns);
}

TEST(PathSelectionReplay, MarginIsTheLargerOfAbsoluteAndRatio) {
  // Steady RTTs (no variation) so the scores are exactly the RTTs. "a" is preferred first; then "b"
  // improves in steps. Returns the switches after each step.
  auto replay_steps = [](SlaClass sla, int64_t a_rtt, const std::vector<int64_t>& b_rtts) {
    int64_t b_rtt = a_rtt + 1 * kMs;
    Replay replay(sla);
    replay.add("a", [a_rtt](WallNs) -> std::optional<int64_t> { return a_rtt; });
    replay.add("b", [&b_rtt](WallNs) -> std::optional<int64_t> { return b_rtt; });
    replay.run(20 * kSecond);
    EXPECT_EQ(replay.selector.preferred(), "a");
    std::vector<uint64_t> switches;
    for (int64_t rtt : b_rtts) {
      b_rtt = rtt;
      replay.run(60 * kSecond);
      switches.push_back(replay.selector.switches());
    }
    return switches;
  };
  SlaClass sla;  // margin max(250 µs, 2 %)
  // At 100 ms the ratio rules: 2 ms. 1.5 ms better is not enough, 2.1 ms is.
  EXPECT_EQ(replay_steps(sla, 100 * kMs, {98'500 * kUs, 97'900 * kUs}), (std::vector<uint64_t>{0, 1}));
  // At 5 ms the absolute part rules: 250 µs (2 % would be 100 µs).
  EXPECT_EQ(replay_steps(sla, 5 * kMs, {4'800 * kUs, 4'700 * kUs}), (std::vector<uint64_t>{0, 1}));
}

// ---- 3. Total loss: down after exactly down_after probes, preference moves at once --------------------------

TEST(PathSelectionReplay, TotalLossIsDownAfterExactlyDownAfterProbes) {
  const SlaClass sla;
  const uint32_t down_after = PeerStateOptions{}.down_after_lost;  // the peer's threshold decides
  auto a = std::make_shared<NoisyPath>(21, 20 * kMs, true);
  auto b = std::make_shared<NoisyPath>(22, 20 * kMs, false);
  bool a_lost = false;
  bool b_lost = false;
  Replay replay(sla, kInterval);  // evaluate after every probe
  replay.add("a/uplink", [&, a](WallNs) -> std::optional<int64_t> {
    const int64_t rtt = a->next();
    return a_lost ? std::nullopt : std::optional<int64_t>(rtt);
  });
  replay.add("b/uplink", [&, b](WallNs) -> std::optional<int64_t> {
    const int64_t rtt = b->next();
    return b_lost ? std::nullopt : std::optional<int64_t>(rtt);
  });
  replay.run(60 * kSecond);
  const std::string preferred = replay.selector.preferred();
  ASSERT_FALSE(preferred.empty());
  const std::string other = preferred == "a/uplink" ? "b/uplink" : "a/uplink";
  (preferred == "a/uplink" ? a_lost : b_lost) = true;

  for (uint32_t lost = 1; lost < down_after; ++lost) {
    replay.run(kInterval);
    ASSERT_EQ(replay.outcomes.tracker(preferred).consecutive_lost(), lost);
    EXPECT_EQ(state_of(replay.selector, preferred), PathState::kOk) << "after " << lost << " lost";
    EXPECT_EQ(replay.selector.preferred(), preferred);
  }
  SelectionChange change;
  replay.run(kInterval, [&](WallNs, const SelectionChange& c) { change = c; });
  EXPECT_EQ(replay.outcomes.tracker(preferred).consecutive_lost(), down_after);
  EXPECT_EQ(state_of(replay.selector, preferred), PathState::kDown);
  EXPECT_EQ(view_of(replay.selector, preferred)->state_since, replay.now);
  EXPECT_EQ(replay.selector.preferred(), other);
  EXPECT_TRUE(change.preferred_changed);
  EXPECT_TRUE(change.state_changed);
  EXPECT_EQ(replay.selector.switches(), 1u);
  EXPECT_EQ(replay.selector.ranked().back().id, preferred);  // down ranks last

  // Both down: no preference at all.
  (other == "a/uplink" ? a_lost : b_lost) = true;
  replay.run(down_after * kInterval);
  EXPECT_EQ(state_of(replay.selector, other), PathState::kDown);
  EXPECT_EQ(replay.selector.preferred(), "");
  EXPECT_EQ(replay.selector.switches(), 2u);
}

// ---- 4. Recovery waits for the hold-down, and then for the margin -------------------------------------------

struct RecoveryResult {
  WallNs ok_at = 0;               // first evaluate() at which the recovered path was ok again
  WallNs eligible_at = 0;         // as reported
  std::optional<WallNs> back_at;  // when it became preferred again
  uint64_t switches = 0;
};

// "a" (18 ms, preferred) loses everything for 5 s, then answers again at `a_rtt_after`; "b" is at 20 ms.
RecoveryResult recover(int64_t a_rtt_after) {
  const SlaClass sla;
  bool a_lost = false;
  auto a = std::make_shared<NoisyPath>(31, 18 * kMs, true);
  Replay replay(sla);
  replay.add("a/uplink", [&, a](WallNs) -> std::optional<int64_t> {
    const int64_t rtt = a->next();
    return a_lost ? std::nullopt : std::optional<int64_t>(rtt);
  });
  replay.add("b/uplink", noisy(32, 20 * kMs, false));
  replay.run(60 * kSecond);
  EXPECT_EQ(replay.selector.preferred(), "a/uplink");

  a_lost = true;
  replay.run(5 * kSecond);
  EXPECT_EQ(state_of(replay.selector, "a/uplink"), PathState::kDown);
  EXPECT_EQ(replay.selector.preferred(), "b/uplink");

  a_lost = false;
  a->set_base(a_rtt_after);
  RecoveryResult result;
  std::vector<PathState> states;
  replay.run(3 * 60 * kSecond, [&](WallNs now, const SelectionChange&) {
    const CandidateView& v = *view_of(replay.selector, "a/uplink");
    if (states.empty() || states.back() != v.state) states.push_back(v.state);
    if (v.state == PathState::kOk && result.ok_at == 0) {
      result.ok_at = now;
      result.eligible_at = v.eligible_at;
    }
    if (result.ok_at == 0 || now < result.ok_at + sla.hold_down_ns) {
      EXPECT_FALSE(v.eligible) << (now - kT0) / kSecond << " s";
      EXPECT_EQ(replay.selector.preferred(), "b/uplink") << (now - kT0) / kSecond << " s";
    } else {
      EXPECT_TRUE(v.eligible) << (now - kT0) / kSecond << " s";
    }
    if (replay.selector.preferred() == "a/uplink" && !result.back_at) result.back_at = now;
  });
  // Down, then degraded while the lost probes are in the window, then ok.
  EXPECT_EQ(states, (std::vector<PathState>{PathState::kDegraded, PathState::kOk}));
  EXPECT_EQ(result.eligible_at, result.ok_at + sla.hold_down_ns);
  result.switches = replay.selector.switches();
  return result;
}

TEST(PathSelectionReplay, RecoveredPathClearlyBetterReturnsAfterHoldDownAndSwitchAfter) {
  const SlaClass sla;
  const RecoveryResult r = recover(18 * kMs);
  ASSERT_NE(r.ok_at, 0);
  ASSERT_TRUE(r.back_at.has_value()) << "never came back";
  // Eligible at eligible_at (the first evaluate() at or after it), then beats b by the margin for
  // switch_after.
  EXPECT_GE(*r.back_at, r.eligible_at + sla.switch_after_ns);
  EXPECT_LE(*r.back_at, r.eligible_at + sla.switch_after_ns + kSecond);
  EXPECT_EQ(r.switches, 2u);
}

TEST(PathSelectionReplay, RecoveredPathNoBetterDoesNotReturn) {
  const RecoveryResult r = recover(20 * kMs);
  ASSERT_NE(r.ok_at, 0);
  EXPECT_FALSE(r.back_at.has_value());
  EXPECT_EQ(r.switches, 1u);
}

TEST(PathSelectionReplay, DegradedToOkAlsoWaitsForHoldDown) {
  SlaClass sla;
  sla.jitter_ns = 1 * kMs;
  sla.hold_down_ns = 20 * kSecond;
  bool jittery = false;
  int64_t probe = 0;
  Replay replay(sla);
  replay.add("a/uplink", [&](WallNs) -> std::optional<int64_t> {
    ++probe;
    return 18 * kMs + (jittery && probe % 2 == 0 ? 3 * kMs : 0);
  });
  replay.add("b/uplink", [](WallNs) -> std::optional<int64_t> { return 20 * kMs; });
  replay.run(30 * kSecond);
  ASSERT_EQ(replay.selector.preferred(), "a/uplink");
  jittery = true;
  std::optional<WallNs> degraded_at;
  replay.run(20 * kSecond, [&](WallNs now, const SelectionChange&) {
    if (!degraded_at && state_of(replay.selector, "a/uplink") == PathState::kDegraded) {
      degraded_at = now;
      EXPECT_EQ(replay.selector.preferred(), "b/uplink") << "degraded preferred: switch at once";
    }
  });
  ASSERT_TRUE(degraded_at.has_value());
  jittery = false;
  std::optional<WallNs> ok_at;
  replay.run(60 * kSecond, [&](WallNs now, const SelectionChange&) {
    const CandidateView& v = *view_of(replay.selector, "a/uplink");
    if (!ok_at && v.state == PathState::kOk) ok_at = now;
    if (ok_at) {
      EXPECT_EQ(v.eligible_at, *ok_at + sla.hold_down_ns);
      EXPECT_EQ(v.eligible, now >= *ok_at + sla.hold_down_ns);
      if (!v.eligible) {
        EXPECT_EQ(v.rank, 2u);  // ok in hold-down, after the eligible "b"
      }
    }
  });
  ASSERT_TRUE(ok_at.has_value());
  EXPECT_EQ(replay.selector.preferred(), "a/uplink");  // 2 ms better, held for switch_after
}

// ---- 5. Costs, states, confidence, ranking, candidates and SLA changes -------------------------------------

SlaClass lenient() {
  SlaClass sla;
  sla.min_samples = 1;
  sla.loss_ratio = -1;  // not judged
  return sla;
}

TEST(PathSelectionCosts, HandComputed) {
  PathSelector s(lenient());
  ASSERT_TRUE(s.add_candidate("a", "peer-a", "uplink", kInterval));
  // RTTs 10, 12, 11, (lost), 15, 13 ms.
  s.on_reply("a", kT0 + 100 * kMs, 10 * kMs);
  s.on_reply("a", kT0 + 200 * kMs, 12 * kMs);
  s.on_reply("a", kT0 + 300 * kMs, 11 * kMs);
  s.on_lost("a", kT0 + 400 * kMs);
  s.on_reply("a", kT0 + 500 * kMs, 15 * kMs);
  s.on_reply("a", kT0 + 600 * kMs, 13 * kMs);
  s.evaluate(both(kT0 + 600 * kMs));
  const CandidateView& v = s.ranked().at(0);
  EXPECT_EQ(v.id, "a");
  EXPECT_EQ(v.peer, "peer-a");
  EXPECT_EQ(v.path, "uplink");
  EXPECT_EQ(v.samples, 5u);
  EXPECT_EQ(v.judged, 6u);
  EXPECT_DOUBLE_EQ(v.delay_rt_s, 0.012);           // median of 10 11 12 13 15
  EXPECT_DOUBLE_EQ(v.delay_variation_s, 0.00225);  // (2 + 1 + 4 + 2) / 4 ms: the loss is skipped
  EXPECT_DOUBLE_EQ(v.rtt_p99_s, 0.015);            // nearest rank ceil(0.99 * 5) = 5
  EXPECT_DOUBLE_EQ(v.lossrate, 1.0 / 6.0);
  EXPECT_TRUE(std::isnan(v.delay_ow_s));  // no synchronised clocks
  EXPECT_TRUE(std::isnan(v.delay_ow_error_s));
  EXPECT_DOUBLE_EQ(v.score_s, 0.012 + 0.00225 + 0.1 / 6.0);  // loss_penalty 100 ms
  // First seen at +100 ms; at +600 ms: floor(500 / 100) + 1 = 6 probes expected, 5 replies.
  EXPECT_DOUBLE_EQ(v.confidence, 5.0 / 6.0);
  EXPECT_EQ(v.state, PathState::kOk);
  EXPECT_TRUE(v.eligible);
  EXPECT_TRUE(v.preferred);
  EXPECT_EQ(v.rank, 1u);
  EXPECT_EQ(v.state_since, kT0 + 600 * kMs);
  EXPECT_EQ(v.eligible_at, kT0 + 600 * kMs);
  EXPECT_EQ(s.preferred(), "a");
  EXPECT_EQ(s.switches(), 0u);

  // An even count: the mean of the two middle values; p99 still the largest.
  s.on_reply("a", kT0 + 700 * kMs, 14 * kMs);
  s.evaluate(both(kT0 + 700 * kMs));
  EXPECT_DOUBLE_EQ(s.ranked()[0].delay_rt_s, 0.0125);  // 10 11 12 | 13 14 15
  EXPECT_DOUBLE_EQ(s.ranked()[0].delay_variation_s, (2.0 + 1 + 4 + 2 + 1) / 5 * 1e-3);
  EXPECT_DOUBLE_EQ(s.ranked()[0].rtt_p99_s, 0.015);
}

TEST(PathSelectionCosts, NothingToSayIsNaN) {
  PathSelector s(SlaClass{});
  ASSERT_TRUE(s.add_candidate("a", "p", "x", kInterval));
  s.evaluate(both(kT0));
  const CandidateView& v = s.ranked().at(0);
  EXPECT_EQ(v.state, PathState::kUnknown);
  EXPECT_TRUE(std::isnan(v.delay_rt_s));
  EXPECT_TRUE(std::isnan(v.delay_variation_s));
  EXPECT_TRUE(std::isnan(v.rtt_p99_s));
  EXPECT_TRUE(std::isnan(v.lossrate));
  EXPECT_TRUE(std::isnan(v.delay_ow_s));
  EXPECT_TRUE(std::isnan(v.score_s));
  EXPECT_EQ(v.confidence, 0.0);
  EXPECT_EQ(s.preferred(), "");  // nothing answers

  s.on_reply("a", kT0 + 100 * kMs, 20 * kMs);
  s.evaluate(both(kT0 + 100 * kMs));
  EXPECT_DOUBLE_EQ(s.ranked()[0].delay_rt_s, 0.02);
  EXPECT_TRUE(std::isnan(s.ranked()[0].delay_variation_s));  // one reply: no variation yet
  EXPECT_TRUE(std::isnan(s.ranked()[0].score_s));            // unknown
  EXPECT_EQ(s.preferred(), "a");                             // but it answers: the scheduler gets it
}

TEST(PathSelectionCosts, OneWayDelayOnlyWhenEveryReplyInTheWindowIsSynchronised) {
  SlaClass sla = lenient();
  sla.window_ns = 1 * kSecond;
  PathSelector s(sla);
  ASSERT_TRUE(s.add_candidate("a", "p", "x", kInterval));
  s.on_reply("a", kT0 + 100 * kMs, 20 * kMs, 9 * kMs, 0.0001);
  s.on_reply("a", kT0 + 200 * kMs, 20 * kMs, 12 * kMs, 0.0003);
  s.on_reply("a", kT0 + 300 * kMs, 20 * kMs, 10 * kMs, 0.0002);
  s.on_lost("a", kT0 + 400 * kMs);  // a loss carries no delay and does not spoil the median
  s.evaluate(both(kT0 + 400 * kMs));
  EXPECT_DOUBLE_EQ(s.ranked()[0].delay_ow_s, 0.010);
  EXPECT_DOUBLE_EQ(s.ranked()[0].delay_ow_error_s, 0.0003);

  s.on_reply("a", kT0 + 500 * kMs, 20 * kMs);  // clocks not synchronised for this one
  s.evaluate(both(kT0 + 500 * kMs));
  EXPECT_TRUE(std::isnan(s.ranked()[0].delay_ow_s));

  // Once the unsynchronised reply has left the window (now - window < t), delay-ow is back.
  s.on_reply("a", kT0 + 1400 * kMs, 20 * kMs, 11 * kMs, 0.0001);
  s.evaluate(both(kT0 + 1499 * kMs));
  EXPECT_TRUE(std::isnan(s.ranked()[0].delay_ow_s));
  s.evaluate(both(kT0 + 1500 * kMs));
  EXPECT_DOUBLE_EQ(s.ranked()[0].delay_ow_s, 0.011);
  EXPECT_EQ(s.ranked()[0].samples, 1u);
  EXPECT_EQ(s.ranked()[0].judged, 1u);
}

TEST(PathSelectionCosts, Confidence) {
  SlaClass sla = lenient();  // window 10 s
  PathSelector s(sla);
  ASSERT_TRUE(s.add_candidate("lossy", "p", "x", kInterval));
  ASSERT_TRUE(s.add_candidate("new", "p", "y", kInterval));
  ASSERT_TRUE(s.add_candidate("unpaced", "p", "z", 0));
  // 20 % loss over two full windows.
  for (int i = 1; i <= 200; ++i) {
    const WallNs t = kT0 + i * kInterval;
    if (i % 5 == 0) {
      s.on_lost("lossy", t);
    } else {
      s.on_reply("lossy", t, 20 * kMs);
    }
  }
  // "new" starts 2 s before the end and answers every probe.
  for (int i = 181; i <= 200; ++i) s.on_reply("new", kT0 + i * kInterval, 20 * kMs);
  s.on_reply("unpaced", kT0 + 200 * kInterval, 20 * kMs);
  s.evaluate(both(kT0 + 200 * kInterval));
  EXPECT_DOUBLE_EQ(view_of(s, "lossy")->confidence, 0.8);    // 80 replies / 100 expected
  EXPECT_DOUBLE_EQ(view_of(s, "new")->confidence, 1.0);      // 20 / 20: not penalised for being new
  EXPECT_DOUBLE_EQ(view_of(s, "unpaced")->confidence, 1.0);  // no interval: any reply
  // "new" stops answering: the window empties, confidence follows.
  s.evaluate(both(kT0 + 205 * kInterval));
  EXPECT_DOUBLE_EQ(view_of(s, "new")->confidence, 20.0 / 25.0);
}

// Feeds `rtts` (nullopt = lost), one per 100 ms from kT0 + 100 ms, and evaluates after the last.
PathState judge(const SlaClass& sla, const std::vector<std::optional<int64_t>>& rtts) {
  PathSelector s(sla);
  Outcomes outcomes(s);
  s.add_candidate("a", "p", "x", kInterval);
  WallNs t = kT0;
  for (const std::optional<int64_t>& rtt : rtts) {
    t += kInterval;
    if (rtt) {
      outcomes.reply("a", t, *rtt);
    } else {
      outcomes.lost("a", t);
    }
  }
  s.evaluate(both(t));
  return s.ranked().at(0).state;
}

std::vector<std::optional<int64_t>> constant(size_t n, int64_t rtt) {
  return std::vector<std::optional<int64_t>>(n, rtt);
}

TEST(PathSelectionState, DegradedByRttP99) {
  SlaClass sla;
  sla.rtt_p99_ns = 25 * kMs;
  auto rtts = constant(100, 20 * kMs);  // exactly one window
  EXPECT_EQ(judge(sla, rtts), PathState::kOk);
  rtts[10] = 30 * kMs;  // one outlier in 100: p99 (rank 99) still 20 ms
  EXPECT_EQ(judge(sla, rtts), PathState::kOk);
  rtts[50] = 30 * kMs;  // two: rank 99 is an outlier
  EXPECT_EQ(judge(sla, rtts), PathState::kDegraded);
  sla.rtt_p99_ns = 0;  // not judged
  EXPECT_EQ(judge(sla, rtts), PathState::kOk);
}

TEST(PathSelectionState, DegradedByJitter) {
  SlaClass sla;
  sla.jitter_ns = 1 * kMs;
  std::vector<std::optional<int64_t>> rtts;
  for (int i = 0; i < 100; ++i) rtts.emplace_back(20 * kMs + (i % 2) * 1500 * kUs);
  EXPECT_EQ(judge(sla, rtts), PathState::kDegraded);  // 1.5 ms > 1 ms
  rtts.clear();
  for (int i = 0; i < 100; ++i) rtts.emplace_back(20 * kMs + (i % 2) * 1000 * kUs);
  EXPECT_EQ(judge(sla, rtts), PathState::kOk);  // 1 ms is not above 1 ms
  sla.jitter_ns = 0;
  rtts.clear();
  for (int i = 0; i < 100; ++i) rtts.emplace_back(20 * kMs + (i % 2) * 50 * kMs);
  EXPECT_EQ(judge(sla, rtts), PathState::kOk);  // not judged
}

TEST(PathSelectionState, DegradedByLoss) {
  SlaClass sla;  // loss_ratio 0.05
  auto rtts = constant(100, 20 * kMs);
  for (int i = 0; i < 5; ++i) rtts[static_cast<size_t>(10 + 20 * i)] = std::nullopt;
  EXPECT_EQ(judge(sla, rtts), PathState::kOk);  // 5 / 100 is not above 5 %
  rtts[15] = std::nullopt;
  EXPECT_EQ(judge(sla, rtts), PathState::kDegraded);  // 6 / 100
  sla.loss_ratio = -1;
  EXPECT_EQ(judge(sla, rtts), PathState::kOk);
}

TEST(PathSelectionState, FewRepliesAreUnknownUnlessLossAloneIsKnownTooHigh) {
  SlaClass sla;  // min_samples 10
  EXPECT_EQ(judge(sla, constant(9, 20 * kMs)), PathState::kUnknown);
  EXPECT_EQ(judge(sla, constant(10, 20 * kMs)), PathState::kOk);
  // 5 replies, 10 losses, never 3 in a row: 15 judged probes, 67 % lost: degraded, not unknown.
  std::vector<std::optional<int64_t>> rtts;
  for (int i = 0; i < 5; ++i) {
    rtts.emplace_back(std::nullopt);
    rtts.emplace_back(std::nullopt);
    rtts.emplace_back(20 * kMs);
  }
  EXPECT_EQ(judge(sla, rtts), PathState::kDegraded);
  // The same with fewer judged probes than min_samples: still unknown.
  rtts.resize(6);
  EXPECT_EQ(judge(sla, rtts), PathState::kUnknown);
}

TEST(PathSelectionState, DownWhileThePeerStateIsDownWhateverTheWindow) {
  SlaClass sla;
  auto rtts = constant(50, 20 * kMs);
  rtts.emplace_back(std::nullopt);
  rtts.emplace_back(std::nullopt);
  EXPECT_EQ(judge(sla, rtts), PathState::kOk);
  rtts.emplace_back(std::nullopt);  // the peer's down_after (3)
  EXPECT_EQ(judge(sla, rtts), PathState::kDown);
  rtts.emplace_back(20 * kMs);  // the peer is up again after three replies in a row, and so is the path
  rtts.emplace_back(20 * kMs);
  EXPECT_EQ(judge(sla, rtts), PathState::kDown);
  rtts.emplace_back(20 * kMs);  // 3 / 56 lost in the window
  EXPECT_EQ(judge(sla, rtts), PathState::kDegraded);
  sla.loss_ratio = 0.1;
  EXPECT_EQ(judge(sla, rtts), PathState::kOk);
  // Losses never seen by a reply stay consecutive even after they left the window.
  sla.window_ns = 1 * kSecond;
  EXPECT_EQ(judge(sla, std::vector<std::optional<int64_t>>(40, std::nullopt)), PathState::kDown);
}

TEST(PathSelectionRanking, OrderIsGroupThenScoreThenId) {
  SlaClass sla;
  sla.jitter_ns = 1 * kMs;
  sla.hold_down_ns = 60 * kSecond;
  PathSelector s(sla);
  Outcomes o(s);
  for (const char* id : {"down", "unknown", "degraded", "holddown", "ok-slow", "ok-fast-b", "ok-fast-a"}) {
    ASSERT_TRUE(s.add_candidate(id, "p", id, kInterval));
  }
  WallNs t = kT0;
  for (int i = 1; i <= 100; ++i) {
    t = kT0 + i * kInterval;
    o.reply("ok-fast-a", t, 10 * kMs);
    o.reply("ok-fast-b", t, 10 * kMs);
    o.reply("ok-slow", t, 30 * kMs);
    // "holddown" was jittery in the first half, then steady (and fastest of all)
    o.reply("holddown", t, 5 * kMs + (i < 50 && i % 2 == 0 ? 5 * kMs : 0));
    o.reply("degraded", t, 1 * kMs + (i % 2) * 2 * kMs);
    if (i > 95) o.reply("unknown", t, 1 * kMs);
    if (i < 90) {
      o.reply("down", t, 1 * kMs);
    } else {
      o.lost("down", t);
    }
    if (i == 20) s.evaluate(both(t));  // "holddown" is seen degraded here
  }
  s.evaluate(both(t + 6 * kSecond));  // the jitter of "holddown" has left the window
  EXPECT_EQ(order_of(s),
            (std::vector<std::string>{"ok-fast-a", "ok-fast-b", "ok-slow", "holddown", "degraded", "unknown", "down"}));
  for (size_t i = 0; i < s.ranked().size(); ++i) EXPECT_EQ(s.ranked()[i].rank, i + 1);
  EXPECT_EQ(view_of(s, "holddown")->state, PathState::kOk);
  EXPECT_FALSE(view_of(s, "holddown")->eligible);
  EXPECT_TRUE(view_of(s, "ok-slow")->eligible);
  EXPECT_EQ(view_of(s, "degraded")->state, PathState::kDegraded);
  EXPECT_EQ(view_of(s, "unknown")->state, PathState::kUnknown);
  EXPECT_EQ(view_of(s, "down")->state, PathState::kDown);
  EXPECT_EQ(s.preferred(), "ok-fast-a");
  EXPECT_TRUE(view_of(s, "ok-fast-a")->preferred);
  EXPECT_FALSE(view_of(s, "ok-fast-b")->preferred);
}

TEST(PathSelectionPreferred, FallsBackToTheBestAnsweringCandidateWhenNoneIsEligible) {
  SlaClass sla;
  sla.rtt_p99_ns = 5 * kMs;  // every path below is degraded
  PathSelector s(sla);
  Outcomes o(s);
  s.add_candidate("slow", "p", "x", kInterval);
  s.add_candidate("slower", "p", "y", kInterval);
  s.add_candidate("silent", "p", "z", kInterval);
  WallNs t = kT0;
  for (int i = 1; i <= 20; ++i) {
    t = kT0 + i * kInterval;
    o.reply("slow", t, 10 * kMs);
    o.reply("slower", t, 12 * kMs);
  }
  s.evaluate(both(t));
  EXPECT_EQ(view_of(s, "slow")->state, PathState::kDegraded);
  EXPECT_EQ(s.preferred(), "slow");
  // A degraded preferred path is kept among bad options, even when another one becomes better ...
  for (int i = 21; i <= 150; ++i) {
    t = kT0 + i * kInterval;
    o.reply("slow", t, 10 * kMs);
    o.reply("slower", t, 8 * kMs);
  }
  s.evaluate(both(t));
  // Ranks carry the damping: the kept preferred path is rank 1, the better-scoring one rank 2.
  EXPECT_EQ(order_of(s).at(0), "slow");
  EXPECT_EQ(order_of(s).at(1), "slower");
  EXPECT_EQ(s.preferred(), "slow");
  // ... but not when it goes down.
  for (int i = 151; i <= 153; ++i) o.lost("slow", kT0 + i * kInterval);
  s.evaluate(both(kT0 + 153 * kInterval));
  EXPECT_EQ(s.preferred(), "slower");
  EXPECT_EQ(s.switches(), 1u);
}

TEST(PathSelectionPreferred, PreferredIsRankOneUntilTheChallengerHasHeldTheMargin) {
  SlaClass sla;
  sla.window_ns = 2 * kSecond;
  sla.min_samples = 5;
  sla.switch_after_ns = 3 * kSecond;
  PathSelector s(sla);
  s.add_candidate("a", "p", "a", kInterval);
  s.add_candidate("b", "p", "b", kInterval);
  WallNs t = kT0;
  int i = 0;
  const auto run = [&](double seconds, int64_t rtt_a, int64_t rtt_b) {
    const int n = static_cast<int>(seconds * kSecond / kInterval);
    for (int k = 0; k < n; ++k) {
      t = kT0 + (++i) * kInterval;
      s.on_reply("a", t, rtt_a);
      s.on_reply("b", t, rtt_b);
      if (t % kSecond == 0) s.evaluate(both(t));
    }
  };
  run(5, 20 * kMs, 21 * kMs);
  ASSERT_EQ(s.preferred(), "a");
  ASSERT_EQ(order_of(s), (std::vector<std::string>{"a", "b"}));
  // b is now 2 ms better: its score wins at once, but a stays rank 1 until the margin held switch_after.
  run(2.5, 23 * kMs, 21 * kMs);
  EXPECT_EQ(s.preferred(), "a");
  EXPECT_EQ(order_of(s), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(view_of(s, "a")->preferred);
  EXPECT_EQ(view_of(s, "a")->rank, 1u);
  run(3, 23 * kMs, 21 * kMs);
  EXPECT_EQ(s.preferred(), "b");
  EXPECT_EQ(order_of(s), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(view_of(s, "b")->rank, 1u);
}

TEST(PathSelectionPreferred, UnknownPreferredGivesWayToAnEligibleOne) {
  PathSelector s(SlaClass{});  // min_samples 10
  s.add_candidate("a", "p", "x", kInterval);
  s.add_candidate("b", "p", "y", kInterval);
  for (int i = 1; i <= 5; ++i) s.on_reply("a", kT0 + i * kInterval, 10 * kMs);
  s.evaluate(both(kT0 + 5 * kInterval));
  EXPECT_EQ(view_of(s, "a")->state, PathState::kUnknown);
  EXPECT_EQ(s.preferred(), "a");  // the only one that answers
  EXPECT_EQ(s.switches(), 0u);    // a first pick is not a switch
  // "a" falls silent; "b" answers enough to be judged ok.
  for (int i = 6; i <= 15; ++i) s.on_reply("b", kT0 + i * kInterval, 30 * kMs);
  s.evaluate(both(kT0 + 15 * kInterval));
  EXPECT_EQ(view_of(s, "a")->state, PathState::kUnknown);
  EXPECT_TRUE(view_of(s, "b")->eligible);
  EXPECT_EQ(s.preferred(), "b");
  EXPECT_EQ(s.switches(), 1u);
}

TEST(PathSelectionCandidates, AddRemoveAndUnknownIds) {
  PathSelector s(lenient());
  EXPECT_TRUE(s.add_candidate("a", "p", "x", kInterval));
  EXPECT_FALSE(s.add_candidate("a", "other", "other", kInterval));
  EXPECT_TRUE(s.add_candidate("b", "p", "y", kInterval));
  s.on_reply("nobody", kT0, 1 * kMs);  // ignored
  s.on_lost("nobody", kT0);
  s.on_reply("a", kT0 + 100 * kMs, 10 * kMs);
  s.on_reply("b", kT0 + 100 * kMs, 20 * kMs);
  SelectionChange c = s.evaluate(both(kT0 + 100 * kMs));
  EXPECT_TRUE(c.preferred_changed);
  EXPECT_TRUE(c.rank_changed);
  EXPECT_FALSE(c.state_changed);  // first judgements are not changes
  EXPECT_EQ(s.preferred(), "a");
  EXPECT_EQ(view_of(s, "a")->peer, "p");  // the duplicate add changed nothing

  // Idempotent for the same time.
  c = s.evaluate(both(kT0 + 100 * kMs));
  EXPECT_FALSE(c.any());

  s.remove_candidate("a");
  s.remove_candidate("a");        // again: nothing
  EXPECT_EQ(s.preferred(), "a");  // as of the last evaluate()
  c = s.evaluate(both(kT0 + 200 * kMs));
  EXPECT_TRUE(c.preferred_changed);
  EXPECT_TRUE(c.rank_changed);
  EXPECT_EQ(s.preferred(), "b");
  EXPECT_EQ(s.switches(), 1u);
  EXPECT_EQ(order_of(s), std::vector<std::string>{"b"});
  s.on_reply("a", kT0 + 300 * kMs, 1 * kMs);  // removed: ignored

  EXPECT_TRUE(s.add_candidate("a", "p", "x", kInterval));  // back, without its past
  c = s.evaluate(both(kT0 + 300 * kMs));
  EXPECT_TRUE(c.rank_changed);
  EXPECT_FALSE(c.preferred_changed);
  EXPECT_EQ(order_of(s), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(view_of(s, "a")->state, PathState::kUnknown);
  EXPECT_EQ(view_of(s, "a")->samples, 0u);

  s.remove_candidate("b");
  s.remove_candidate("a");
  c = s.evaluate(both(kT0 + 400 * kMs));
  EXPECT_TRUE(s.ranked().empty());
  EXPECT_EQ(s.preferred(), "");
  EXPECT_EQ(s.switches(), 2u);
}

TEST(PathSelectionSla, SetSlaKeepsSamplesAndReJudges) {
  PathSelector s(SlaClass{});
  s.add_candidate("a", "p", "x", kInterval);
  s.add_candidate("b", "p", "y", kInterval);
  WallNs t = kT0;
  for (int i = 1; i <= 50; ++i) {
    t = kT0 + i * kInterval;
    s.on_reply("a", t, 10 * kMs);
    s.on_reply("b", t, 20 * kMs);
  }
  s.evaluate(both(t));
  ASSERT_EQ(s.preferred(), "a");
  const double a_score = view_of(s, "a")->score_s;

  SlaClass strict;
  strict.name = "strict";
  strict.rtt_p99_ns = 5 * kMs;
  s.set_sla(strict);
  EXPECT_EQ(s.sla(), strict);
  SelectionChange c = s.evaluate(both(t));  // the same time: only the SLA changed
  EXPECT_TRUE(c.state_changed);
  EXPECT_EQ(view_of(s, "a")->state, PathState::kDegraded);
  EXPECT_EQ(view_of(s, "a")->samples, 50u);  // samples kept
  EXPECT_DOUBLE_EQ(view_of(s, "a")->score_s, a_score);
  EXPECT_EQ(s.preferred(), "a");  // nothing eligible: kept

  SlaClass relaxed = strict;
  relaxed.rtt_p99_ns = 15 * kMs;  // "a" ok again (after its hold-down), "b" still degraded
  s.set_sla(relaxed);
  c = s.evaluate(both(t + 100 * kMs));
  EXPECT_TRUE(c.state_changed);
  EXPECT_EQ(view_of(s, "a")->state, PathState::kOk);
  EXPECT_FALSE(view_of(s, "a")->eligible);
  EXPECT_EQ(view_of(s, "a")->eligible_at, t + 100 * kMs + relaxed.hold_down_ns);
  // A shorter hold-down applies to the one in progress.
  relaxed.hold_down_ns = 0;
  s.set_sla(relaxed);
  s.evaluate(both(t + 200 * kMs));
  EXPECT_TRUE(view_of(s, "a")->eligible);
  EXPECT_EQ(view_of(s, "a")->eligible_at, t + 100 * kMs);
}

TEST(PathSelectionSla, ToString) {
  EXPECT_STREQ(to_string(PathState::kUnknown), "unknown");
  EXPECT_STREQ(to_string(PathState::kOk), "ok");
  EXPECT_STREQ(to_string(PathState::kDegraded), "degraded");
  EXPECT_STREQ(to_string(PathState::kDown), "down");
}

}  // namespace
}  // namespace hubprobe
