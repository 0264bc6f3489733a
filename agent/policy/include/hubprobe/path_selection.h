// SPDX-License-Identifier: Apache-2.0
// Path selection: from probe outcomes to damped, ranked path preferences.
//
// Pure logic. Nothing here reads a clock, a socket or a file: every call takes the time it happens at,
// so tests replay sample sequences (tests/unit/path_selection_test.cpp) and the agent drives it from the
// probe thread. Windows, ages, hold-down and switch_after run on the monotonic clock; the wall clock
// (evaluate()'s now.wall) only dates state changes (state_since, for the preference document). One
// PathSelector per destination hub; its candidates are the (peer, path) pairs that reach that hub.
//
// What it does, per candidate:
//   - keeps the outcomes of the last `sla.window` (replies with RTT, losses; an outcome at time t is in
//     the window at `now` when now - window < t <= now) and computes from them the RFC 9439 style costs:
//     delay-rt (median RTT; the mean of the two middle values for an even count), delay-ow (median forward
//     one-way delay, only when every reply in the window had synchronised clocks), delay-variation (mean
//     |IPDV| between consecutive replies, RFC 3393/5481; NaN below two replies), lossrate (lost / judged
//     probes) and the RTT p99 (nearest rank) the SLA judges;
//   - confidence = replies in the window / probes expected in it, capped at 1. The probes expected are
//     min(window / interval, floor(age / interval) + 1), where age is the time since the candidate was
//     first seen (its first outcome or the first evaluate() after add_candidate, whichever came first),
//     so a candidate added a moment ago is not penalised for the part of the window before it existed.
//     An interval <= 0 gives confidence 1 with any reply in the window, else 0;
//   - judges a state: down while the candidate's peer state is down (set_peer_state(): the session's
//     PeerStateTracker, down after the peer's `down_after` consecutive losses and up again after a run of
//     replies, whatever the window: fail fast; the same judgement /status shows, see probe_outcome.h),
//     else, against its SLA class, unknown (fewer than min_samples replies in the window; min_samples 0
//     acts as 1), else ok or degraded (p99 RTT, delay-variation or lossrate above its threshold). One
//     refinement: when the window already holds at least min_samples judged probes and the lossrate alone
//     exceeds the threshold, the candidate is degraded even with fewer than min_samples replies: heavy loss
//     is known, not unknown;
//   - recovers slowly: a candidate that was down or degraded is not eligible to become preferred until it
//     has been ok for `hold_down` without interruption (eligible_at = when it became ok + hold_down; a
//     candidate that was never down or degraded is eligible as soon as it is ok). set_sla() applies a new
//     hold_down to a hold-down in progress;
//   - a score (lower is better, in seconds): delay-rt + delay-variation (0 below two replies) + lossrate *
//     loss_penalty. NaN without replies in the window; reported as NaN while unknown (it still orders the
//     unknown candidates among themselves).
// Across candidates: ranked by group (eligible ok, ok in hold-down, degraded, unknown, down), then score
// (NaN last), then id, so the order is deterministic; then the preferred candidate (below) is moved to
// rank 1, so ranks carry the same damping as the preference and rank 1 is always what the agent prefers.
// The preferred candidate:
//   - none yet (start, or the preferred one was removed): the best eligible ok candidate; without one, the
//     best ranked candidate that is not down and has at least one reply in the window (the scheduler gets
//     an answer while any path answers, even degraded); empty when none answers;
//   - the current one is not eligible ok (down, degraded, unknown or in hold-down) and an eligible ok
//     candidate exists: switch to the best one at once;
//   - the current one is down and no candidate is eligible: the fallback above (possibly empty); when it
//     is degraded, unknown or in hold-down it is kept (no churn between bad options);
//   - otherwise another eligible ok candidate must have had a score below current score - margin, margin =
//     max(switch_margin, switch_margin_ratio * current score), continuously for `switch_after` (measured
//     at evaluate() times; the clock of a challenger restarts when it stops beating the margin and all
//     restart after a switch). Noise around equal paths therefore never switches.
// switches() counts the times the preferred candidate moved away from a candidate (to another or to none);
// the first pick is not a switch.
//
// Not thread-safe: the agent serialises calls (probe thread for outcomes, publisher thread for evaluate()). Outcomes
// for unknown ids are ignored; times are expected not to go backwards per candidate.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/peer_state.h"
#include "hubprobe/sla_config.h"

namespace hubprobe {

enum class PathState : uint8_t { kUnknown, kOk, kDegraded, kDown };
/// "unknown", "ok", "degraded", "down" (the JSON document's and the metrics' names).
const char* to_string(PathState state);
/// Every state, in the order above (metrics, validation).
inline constexpr PathState kPathStates[] = {PathState::kUnknown, PathState::kOk, PathState::kDegraded,
                                            PathState::kDown};

/// One candidate's view at the last evaluate().
struct CandidateView {
  std::string id;    ///< as given to add_candidate (the agent uses "PEER/PATH")
  std::string peer;  ///< informational, as given
  std::string path;  ///< informational, as given
  PathState state = PathState::kUnknown;
  bool eligible = false;   ///< state ok and hold-down over
  bool preferred = false;  ///< the one the selector currently prefers
  uint32_t rank = 0;       ///< 1 = best
  double score_s = 0;      ///< NaN when unknown or without replies in the window
  // Costs over the window, in seconds / ratio; NaN when there is nothing to say.
  double delay_rt_s = 0;
  double delay_ow_s = 0;        ///< NaN unless all samples in the window had synchronised clocks
  double delay_ow_error_s = 0;  ///< error bound of delay_ow (max over the window); NaN with it
  double delay_variation_s = 0;
  double rtt_p99_s = 0;
  double lossrate = 0;
  double confidence = 0;   ///< 0..1: replies in the window / probes expected in it (capped at 1)
  uint64_t samples = 0;    ///< replies in the window
  uint64_t judged = 0;     ///< replies + losses in the window
  WallNs state_since = 0;  ///< when the state last changed (wall clock)
  MonoNs eligible_at = 0;  ///< when the hold-down ends or ended (monotonic); 0 while the state is not ok
};

struct SelectionChange {
  bool preferred_changed = false;
  bool state_changed = false;  ///< any candidate's state (a new candidate's first judgement is not a change)
  bool rank_changed = false;   ///< the order of candidates (also: one added or removed)
  bool any() const { return preferred_changed || state_changed || rank_changed; }
};

class PathSelector {
 public:
  explicit PathSelector(SlaClass sla);
  ~PathSelector();
  PathSelector(PathSelector&&) noexcept;
  PathSelector& operator=(PathSelector&&) noexcept;

  /// A candidate. `interval_ns` is its probe interval (for the confidence). Adding an existing id is a
  /// no-op that returns false.
  bool add_candidate(const std::string& id, const std::string& peer, const std::string& path, int64_t interval_ns);
  void remove_candidate(const std::string& id);
  /// New SLA class (reload): keeps the samples, re-judges at the next evaluate().
  void set_sla(const SlaClass& sla);
  const SlaClass& sla() const { return sla_; }

  /// A reply. `forward_ns` is set only when both clocks were synchronised (with its error bound).
  void on_reply(const std::string& id, MonoNs now, int64_t rtt_ns, std::optional<int64_t> forward_ns = std::nullopt,
                double forward_error_s = 0);
  /// A probe declared lost.
  void on_lost(const std::string& id, MonoNs now);
  /// The candidate's session's peer state (PeerStateTracker::state()); the candidate is down while it is
  /// kDown. Call it after every outcome and whenever the tracker's options change (record_probe_event()
  /// in probe_outcome.h does the former). Unknown until told.
  void set_peer_state(const std::string& id, PeerState state);

  /// Recomputes costs, states, ranks and the preferred candidate at `now`. Call it regularly (the agent
  /// does once a second) and whenever a test wants to look; it is idempotent for the same `now`.
  SelectionChange evaluate(const Now& now);

  /// Ranked best first, as of the last evaluate().
  const std::vector<CandidateView>& ranked() const { return ranked_; }
  /// The preferred candidate's id, empty when there is none (no candidates, or all down).
  const std::string& preferred() const { return preferred_; }
  /// How many times the preferred candidate changed.
  uint64_t switches() const { return switches_; }

 private:
  struct Candidate;  // defined in path_selection.cpp
  Candidate* find(const std::string& id);
  /// Appends an outcome at `now` (to be filled in) to the candidate's window; null for an unknown id.
  Candidate* record(const std::string& id, MonoNs now);
  // evaluate(), step by step: measure and judge each candidate, order them, pick, publish the ranks. The
  // windows, ages and hold-down run on now.mono; judge() dates a state change with now.wall.
  void measure(Candidate& c, MonoNs now);
  double confidence(const Candidate& c, uint64_t replies, MonoNs now) const;
  bool judge(Candidate& c, const Now& now);
  void hold_down(Candidate& c, MonoNs now);
  void order_candidates();
  void pick_preferred(MonoNs now);
  bool publish_ranks();

  SlaClass sla_;
  std::vector<std::unique_ptr<Candidate>> candidates_;
  std::unordered_map<std::string, Candidate*> by_id_;  ///< candidates_ by view.id: a hub may have thousands
  std::vector<CandidateView> ranked_;
  std::string preferred_;
  uint64_t switches_ = 0;
  std::vector<Candidate*> order_;  // scratch: the ranking being built
  std::vector<int64_t> scratch_;   // scratch: sorted RTTs / forward delays of one candidate
};

}  // namespace hubprobe
