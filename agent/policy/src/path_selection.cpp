// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/path_selection.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <limits>
#include <utility>

namespace hubprobe {

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kNsToS = 1e-9;

// Median of sorted values, in seconds.
double median_s(const std::vector<int64_t>& sorted) {
  const size_t n = sorted.size();
  if (n == 0) return kNan;
  if (n % 2 == 1) return static_cast<double>(sorted[n / 2]) * kNsToS;
  return (static_cast<double>(sorted[n / 2 - 1]) + static_cast<double>(sorted[n / 2])) * 0.5 * kNsToS;
}

// Nearest-rank percentile of sorted values: the ceil(percent * n / 100)-th smallest (in integers, so
// 99 % of 100 samples is exactly the 99th).
int64_t nearest_rank(const std::vector<int64_t>& sorted, size_t percent) {
  const size_t n = sorted.size();
  const size_t rank = std::clamp<size_t>((percent * n + 99) / 100, 1, n);
  return sorted[rank - 1];
}

// Ranking groups, best first.
int group_of(const CandidateView& view) {
  switch (view.state) {
    case PathState::kOk: return view.eligible ? 0 : 1;
    case PathState::kDegraded: return 2;
    case PathState::kUnknown: return 3;
    case PathState::kDown: return 4;
  }
  return 5;
}

}  // namespace

const char* to_string(PathState state) {
  switch (state) {
    case PathState::kUnknown: return "unknown";
    case PathState::kOk: return "ok";
    case PathState::kDegraded: return "degraded";
    case PathState::kDown: return "down";
  }
  return "unknown";
}

struct PathSelector::Candidate {
  struct Outcome {
    MonoNs at = 0;
    int64_t rtt_ns = 0;
    int64_t forward_ns = 0;
    double forward_error_s = 0;
    bool lost = false;
    bool has_forward = false;
  };

  CandidateView view;  // as of the last evaluate()
  int64_t interval_ns = 0;
  std::deque<Outcome> outcomes;  // oldest first
  std::optional<MonoNs> first_seen;
  PeerState peer_state = PeerState::kUnknown;  // as the session's PeerStateTracker judges it
  bool evaluated = false;                      // state / state_since are meaningful
  bool needs_hold_down = false;                // was down or degraded since it was last eligible
  MonoNs ok_since = 0;                         // valid while view.state == kOk
  std::optional<MonoNs> eligible_since;        // this ok period reached eligibility (eligible_at is then fixed)
  double rank_score = kNan;                    // the score, also while unknown (orders the unknown ones)
  int64_t rtt_p99_ns = 0;                      // of the last measure(); 0 without replies
  double delay_variation_ns = 0;               // of the last measure(); 0 below two replies
  std::optional<MonoNs> beating_since;         // challenger: first evaluate() it beat the preferred by the margin

  void prune(MonoNs now, int64_t window_ns) {
    while (!outcomes.empty() && outcomes.front().at <= now - window_ns) outcomes.pop_front();
  }
  void seen(MonoNs now) {
    if (!first_seen) first_seen = now;
  }
};

PathSelector::PathSelector(SlaClass sla) : sla_(std::move(sla)) {}
PathSelector::~PathSelector() = default;
PathSelector::PathSelector(PathSelector&&) noexcept = default;
PathSelector& PathSelector::operator=(PathSelector&&) noexcept = default;

PathSelector::Candidate* PathSelector::find(const std::string& id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

bool PathSelector::add_candidate(const std::string& id, const std::string& peer, const std::string& path,
                                 int64_t interval_ns) {
  if (find(id) != nullptr) return false;
  auto candidate = std::make_unique<Candidate>();
  candidate->view.id = id;
  candidate->view.peer = peer;
  candidate->view.path = path;
  candidate->interval_ns = interval_ns;
  by_id_.emplace(id, candidate.get());
  candidates_.push_back(std::move(candidate));
  return true;
}

void PathSelector::remove_candidate(const std::string& id) {
  if (by_id_.erase(id) == 0) return;
  std::erase_if(candidates_, [&](const std::unique_ptr<Candidate>& c) { return c->view.id == id; });
}

void PathSelector::set_sla(const SlaClass& sla) { sla_ = sla; }

PathSelector::Candidate* PathSelector::record(const std::string& id, MonoNs now) {
  Candidate* c = find(id);
  if (c == nullptr) return nullptr;
  c->seen(now);
  c->prune(now, sla_.window_ns);
  c->outcomes.push_back(Candidate::Outcome{.at = now});
  return c;
}

void PathSelector::on_reply(const std::string& id, MonoNs now, int64_t rtt_ns, std::optional<int64_t> forward_ns,
                            double forward_error_s) {
  Candidate* c = record(id, now);
  if (c == nullptr) return;
  Candidate::Outcome& outcome = c->outcomes.back();
  outcome.rtt_ns = rtt_ns;
  outcome.has_forward = forward_ns.has_value();
  outcome.forward_ns = forward_ns.value_or(0);
  outcome.forward_error_s = forward_error_s;
}

void PathSelector::on_lost(const std::string& id, MonoNs now) {
  Candidate* c = record(id, now);
  if (c == nullptr) return;
  c->outcomes.back().lost = true;
}

void PathSelector::set_peer_state(const std::string& id, PeerState state) {
  if (Candidate* c = find(id)) c->peer_state = state;
}

// The window's costs of one candidate: delay-rt, p99, delay-variation, lossrate, delay-ow, confidence and
// the score that orders it.
void PathSelector::measure(Candidate& c, MonoNs now) {
  CandidateView& v = c.view;
  uint64_t replies = 0;
  uint64_t lost = 0;
  bool all_forward = true;
  double forward_error_s = 0;
  double ipdv_sum_ns = 0;
  const Candidate::Outcome* previous_reply = nullptr;
  scratch_.clear();
  for (const Candidate::Outcome& o : c.outcomes) {
    if (o.lost) {
      ++lost;
      continue;
    }
    ++replies;
    scratch_.push_back(o.rtt_ns);
    if (previous_reply != nullptr) ipdv_sum_ns += std::abs(static_cast<double>(o.rtt_ns - previous_reply->rtt_ns));
    previous_reply = &o;
    all_forward = all_forward && o.has_forward;
    if (o.has_forward) forward_error_s = std::max(forward_error_s, o.forward_error_s);
  }
  std::sort(scratch_.begin(), scratch_.end());
  v.samples = replies;
  v.judged = replies + lost;
  v.delay_rt_s = median_s(scratch_);
  c.rtt_p99_ns = replies > 0 ? nearest_rank(scratch_, 99) : 0;
  v.rtt_p99_s = replies > 0 ? static_cast<double>(c.rtt_p99_ns) * kNsToS : kNan;
  c.delay_variation_ns = replies >= 2 ? ipdv_sum_ns / static_cast<double>(replies - 1) : 0.0;
  v.delay_variation_s = replies >= 2 ? c.delay_variation_ns * kNsToS : kNan;
  v.lossrate = v.judged == 0 ? kNan : static_cast<double>(lost) / static_cast<double>(v.judged);
  v.delay_ow_s = kNan;
  v.delay_ow_error_s = kNan;
  if (replies > 0 && all_forward) {
    scratch_.clear();
    for (const Candidate::Outcome& o : c.outcomes) {
      if (!o.lost) scratch_.push_back(o.forward_ns);
    }
    std::sort(scratch_.begin(), scratch_.end());
    v.delay_ow_s = median_s(scratch_);
    v.delay_ow_error_s = forward_error_s;
  }
  v.confidence = confidence(c, replies, now);
  c.rank_score = replies == 0 ? kNan
                              : v.delay_rt_s + c.delay_variation_ns * kNsToS +
                                    v.lossrate * static_cast<double>(sla_.loss_penalty_ns) * kNsToS;
}

// Replies against the probes expected since the candidate was first seen, at most a window's worth.
double PathSelector::confidence(const Candidate& c, uint64_t replies, MonoNs now) const {
  if (c.interval_ns <= 0) return replies > 0 ? 1.0 : 0.0;
  const double age_ns = static_cast<double>(std::max<int64_t>(0, now - *c.first_seen));
  const double interval = static_cast<double>(c.interval_ns);
  const double expected = std::min(static_cast<double>(sla_.window_ns) / interval, std::floor(age_ns / interval) + 1.0);
  return expected > 0 ? std::min(1.0, static_cast<double>(replies) / expected) : 0.0;
}

// The SLA judgement of one measured candidate; true when its state changed (not counting the first one).
bool PathSelector::judge(Candidate& c, const Now& now) {
  CandidateView& v = c.view;
  const uint32_t min_samples = std::max<uint32_t>(1, sla_.min_samples);
  const bool loss_exceeded = sla_.loss_ratio >= 0 && v.judged > 0 && v.lossrate > sla_.loss_ratio;
  PathState state = PathState::kOk;
  if (c.peer_state == PeerState::kDown) {
    state = PathState::kDown;
  } else if (v.samples < min_samples) {
    state = loss_exceeded && v.judged >= min_samples ? PathState::kDegraded : PathState::kUnknown;
  } else if (loss_exceeded || (sla_.rtt_p99_ns > 0 && c.rtt_p99_ns > sla_.rtt_p99_ns) ||
             (sla_.jitter_ns > 0 && c.delay_variation_ns > static_cast<double>(sla_.jitter_ns))) {
    state = PathState::kDegraded;
  }
  bool changed = false;
  if (!c.evaluated || state != v.state) {
    changed = c.evaluated;
    v.state = state;
    v.state_since = now.wall;
    if (state == PathState::kOk) c.ok_since = now.mono;
    c.eligible_since.reset();
    c.evaluated = true;
  }
  if (state == PathState::kDown || state == PathState::kDegraded) c.needs_hold_down = true;
  hold_down(c, now.mono);
  v.score_s = state == PathState::kUnknown ? kNan : c.rank_score;
  return changed;
}

// Eligibility: an ok candidate that was down or degraded waits for the hold-down.
void PathSelector::hold_down(Candidate& c, MonoNs now) {
  CandidateView& v = c.view;
  if (v.state != PathState::kOk) {
    v.eligible_at = 0;
    v.eligible = false;
    return;
  }
  if (!c.eligible_since) {
    const MonoNs eligible_at = c.needs_hold_down ? c.ok_since + sla_.hold_down_ns : c.ok_since;
    if (now >= eligible_at) {
      c.eligible_since = eligible_at;
      c.needs_hold_down = false;
    }
    v.eligible_at = eligible_at;
  } else {
    v.eligible_at = *c.eligible_since;
  }
  v.eligible = c.eligible_since.has_value();
}

// order_: by group (eligible ok, ok in hold-down, degraded, unknown, down), then score (NaN last), then id.
void PathSelector::order_candidates() {
  order_.clear();
  for (auto& owned : candidates_) order_.push_back(owned.get());
  std::sort(order_.begin(), order_.end(), [](const Candidate* a, const Candidate* b) {
    const int ga = group_of(a->view);
    const int gb = group_of(b->view);
    if (ga != gb) return ga < gb;
    const bool a_nan = std::isnan(a->rank_score);
    const bool b_nan = std::isnan(b->rank_score);
    if (a_nan != b_nan) return b_nan;
    if (!a_nan && a->rank_score != b->rank_score) return a->rank_score < b->rank_score;
    return a->view.id < b->view.id;
  });
}

// The preferred candidate is rank 1 even while a challenger's better score has not yet held the margin
// for switch_after: ranks carry the same damping as the preference, and a scheduler reading only ranks
// sees what the agent prefers. The others keep their order. Returns whether the ranking changed.
bool PathSelector::publish_ranks() {
  if (!preferred_.empty()) {
    const auto it =
        std::find_if(order_.begin(), order_.end(), [&](const Candidate* c) { return c->view.id == preferred_; });
    if (it != order_.end()) std::rotate(order_.begin(), it, it + 1);
  }
  bool same_order = ranked_.size() == order_.size();
  for (size_t i = 0; same_order && i < order_.size(); ++i) same_order = ranked_[i].id == order_[i]->view.id;
  ranked_.clear();
  ranked_.reserve(order_.size());
  for (size_t i = 0; i < order_.size(); ++i) {
    CandidateView& v = order_[i]->view;
    v.rank = static_cast<uint32_t>(i + 1);
    v.preferred = v.id == preferred_;
    ranked_.push_back(v);
  }
  return !same_order;
}

SelectionChange PathSelector::evaluate(const Now& now) {
  SelectionChange change;
  for (auto& owned : candidates_) {
    Candidate& c = *owned;
    c.seen(now.mono);
    c.prune(now.mono, sla_.window_ns);
    measure(c, now.mono);
    if (judge(c, now)) change.state_changed = true;
  }
  order_candidates();
  const std::string previous_preferred = preferred_;
  pick_preferred(now.mono);
  change.preferred_changed = preferred_ != previous_preferred;
  if (change.preferred_changed && !previous_preferred.empty()) ++switches_;
  change.rank_changed = publish_ranks();
  return change;
}

void PathSelector::pick_preferred(MonoNs now) {
  // order_ is ranked: the eligible ok candidates, best first, come first.
  Candidate* best_eligible = !order_.empty() && order_.front()->view.eligible ? order_.front() : nullptr;
  auto fallback = [&]() -> Candidate* {
    if (best_eligible != nullptr) return best_eligible;
    for (Candidate* c : order_) {
      if (c->view.state != PathState::kDown && c->view.samples > 0) return c;
    }
    return nullptr;
  };
  auto choose = [&](Candidate* c) {
    for (Candidate* other : order_) other->beating_since.reset();
    preferred_ = c == nullptr ? std::string() : c->view.id;
  };

  Candidate* current = preferred_.empty() ? nullptr : find(preferred_);
  if (current == nullptr) {
    choose(fallback());
    return;
  }
  if (!current->view.eligible) {
    if (best_eligible != nullptr) {
      choose(best_eligible);
    } else if (current->view.state == PathState::kDown) {
      choose(fallback());
    } else {
      for (Candidate* other : order_) other->beating_since.reset();
    }
    return;
  }

  // The current one is eligible ok (so it has replies and a score): challengers need the margin for a time.
  const double current_score = current->rank_score;
  const double margin =
      std::max(static_cast<double>(sla_.switch_margin_ns) * kNsToS, sla_.switch_margin_ratio * current_score);
  Candidate* winner = nullptr;
  for (Candidate* c : order_) {
    if (c == current) {
      c->beating_since.reset();
      continue;
    }
    if (c->view.eligible && c->rank_score < current_score - margin) {
      if (!c->beating_since) c->beating_since = now;
      if (winner == nullptr && now - *c->beating_since >= sla_.switch_after_ns) winner = c;
    } else {
      c->beating_since.reset();
    }
  }
  if (winner != nullptr) choose(winner);
}

}  // namespace hubprobe
