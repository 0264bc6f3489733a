// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/window_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

namespace hubprobe {

namespace {

bool serial_after(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

uint64_t magnitude(int64_t v) {
  return v < 0 ? static_cast<uint64_t>(0) - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
}

int64_t clamp_to_int64(uint64_t v) {
  return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                        : static_cast<int64_t>(v);
}

double ratio(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

constexpr double kNsToS = 1e-9;
constexpr int64_t kNoEpoch = std::numeric_limits<int64_t>::min();

}  // namespace

// ---- SequenceTracker ----------------------------------------------------------------------------------

SequenceTracker::SequenceTracker() : ring_(64) {}

size_t SequenceTracker::memory_bytes() const { return sizeof(*this) + ring_.capacity() * sizeof(Entry); }

void SequenceTracker::begin_sequence() {
  // Before the first probe the reflector had seen none of ours: a virtual reply (first - 1, -1).
  previous_valid_ = true;
  previous_reflector_seq_ = std::numeric_limits<uint32_t>::max();
  previous_has_delay_ = false;
  run_lost_ = 0;
}

size_t SequenceTracker::find(uint32_t seq) const {
  if (size_ == 0) return kNotFound;
  const uint32_t front = at(0).seq;
  const uint32_t distance = seq - front;
  if (distance > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) return kNotFound;  // before front
  // Without failed sends the probe is at its distance from the front.
  if (distance < size_ && at(distance).seq == seq) return distance;
  // Failed sends leave gaps in the numbering: binary search on the distance from the front.
  size_t lo = 0, hi = std::min<size_t>(size_, size_t{distance} + 1);
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (at(mid).seq - front < distance) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return (lo < size_ && at(lo).seq == seq) ? lo : kNotFound;
}

size_t SequenceTracker::find_or_track(uint32_t seq, SequenceUpdate& update) {
  const size_t index = find(seq);
  if (index != kNotFound) return index;
  if (have_sent_ && !serial_after(seq, last_sent_)) return kNotFound;  // settled long ago, or unknown
  if (!have_sent_) begin_sequence();
  push(seq, update);
  have_sent_ = true;
  last_sent_ = seq;
  return size_ - 1;
}

void SequenceTracker::push(uint32_t seq, SequenceUpdate& update) {
  if (size_ == ring_.size()) {
    if (ring_.size() < kMaxTracked) {
      std::vector<Entry> grown(ring_.size() * 2);
      for (size_t i = 0; i < size_; ++i) grown[i] = at(i);
      ring_.swap(grown);
      head_ = 0;
    } else {
      // The oldest probe never resolved (the sender lost track of it): give it up. The runs around it
      // cannot be split.
      add(update, 0, 0, run_lost_);
      pending_lost_ -= run_lost_;
      run_lost_ = 0;
      previous_valid_ = false;
      previous_has_delay_ = false;
      pop_front();
      settle(update);
    }
  }
  Entry& entry = ring_[(head_ + size_) & (ring_.size() - 1)];
  entry = Entry{};
  entry.seq = seq;
  ++size_;
}

SequenceUpdate SequenceTracker::on_sent(uint32_t seq) {
  SequenceUpdate update;
  if (have_sent_ && seq == last_sent_) return update;  // reported twice
  if (have_sent_ && !serial_after(seq, last_sent_)) update = restart();
  if (!have_sent_) begin_sequence();
  push(seq, update);
  have_sent_ = true;
  last_sent_ = seq;
  return update;
}

SequenceUpdate SequenceTracker::on_reply(uint32_t seq, uint32_t reflector_seq, std::optional<int64_t> delay_ns) {
  SequenceUpdate update;
  if (reflector_seq != seq) stateful_ = true;
  const size_t index = find_or_track(seq, update);
  if (index == kNotFound || at(index).state != State::kPending) return update;
  Entry& entry = at(index);
  entry.state = State::kReplied;
  entry.reflector_seq = reflector_seq;
  entry.has_delay = delay_ns.has_value();
  entry.delay_ns = delay_ns.value_or(0);
  if (!delay_ns) {
    settle(update);
    return update;
  }

  // IPDV with the neighbours that are already answered (each pair once, when its second reply comes).
  const auto add_ipdv = [&](int64_t later, int64_t earlier) {
    update.ipdv[update.ipdv_count++] =
        static_cast<int64_t>(static_cast<uint64_t>(later) - static_cast<uint64_t>(earlier));
  };
  const auto with_delay = [&](size_t neighbour) {
    return neighbour != kNotFound && at(neighbour).state == State::kReplied && at(neighbour).has_delay;
  };
  const size_t before = find(seq - 1);
  if (before != kNotFound) {
    if (with_delay(before)) add_ipdv(*delay_ns, at(before).delay_ns);
  } else if (previous_has_delay_ && previous_seq_ == seq - 1) {
    add_ipdv(*delay_ns, previous_delay_ns_);
  }
  const size_t after = find(seq + 1);
  if (with_delay(after)) add_ipdv(at(after).delay_ns, *delay_ns);

  settle(update);
  return update;
}

SequenceUpdate SequenceTracker::on_lost(uint32_t seq) {
  SequenceUpdate update;
  const size_t index = find_or_track(seq, update);
  if (index == kNotFound || at(index).state != State::kPending) return update;
  at(index).state = State::kLost;
  ++pending_lost_;
  settle(update);
  return update;
}

SequenceUpdate SequenceTracker::restart() {
  SequenceUpdate update;
  // Lost probes after the last reply: which way they went cannot be known any more.
  uint64_t unsettled = run_lost_;
  for (size_t i = 0; i < size_; ++i) {
    if (at(i).state == State::kLost) ++unsettled;
  }
  add(update, 0, 0, unsettled);
  pending_lost_ = 0;
  run_lost_ = 0;
  size_ = 0;
  head_ = 0;
  have_sent_ = false;
  previous_valid_ = false;
  previous_has_delay_ = false;
  return update;
}

void SequenceTracker::settle(SequenceUpdate& update) {
  while (size_ > 0 && at(0).state != State::kPending) {
    const Entry entry = at(0);
    pop_front();
    if (entry.state == State::kLost) {
      ++run_lost_;
    } else {
      close_run(entry, update);
    }
  }
}

void SequenceTracker::close_run(const Entry& reply, SequenceUpdate& update) {
  const auto reached = static_cast<int64_t>(static_cast<int32_t>(reply.reflector_seq - previous_reflector_seq_));
  const auto sent_between = static_cast<int64_t>(run_lost_) + 1;
  if (previous_valid_ && stateful_ && reached >= 1 && reached <= sent_between) {
    add(update, static_cast<uint64_t>(sent_between - reached), static_cast<uint64_t>(reached - 1), 0);
  } else {
    // Stateless (or not yet known to be stateful), or the reflector's numbering jumped.
    add(update, 0, 0, run_lost_);
  }
  pending_lost_ -= run_lost_;
  run_lost_ = 0;
  previous_valid_ = true;
  previous_seq_ = reply.seq;
  previous_reflector_seq_ = reply.reflector_seq;
  previous_has_delay_ = reply.has_delay;
  previous_delay_ns_ = reply.delay_ns;
}

void SequenceTracker::add(SequenceUpdate& update, uint64_t forward, uint64_t backward, uint64_t unknown) {
  update.classified.forward += forward;
  update.classified.backward += backward;
  update.classified.unknown += unknown;
  totals_.forward += forward;
  totals_.backward += backward;
  totals_.unknown += unknown;
}

// ---- WindowedStats ------------------------------------------------------------------------------------

namespace {

WindowOptions normalized(WindowOptions options) {
  options.slices = std::clamp<uint32_t>(options.slices, 1, 1000);
  if (options.window_ns < static_cast<int64_t>(options.slices)) options.window_ns = WindowOptions{}.window_ns;
  if (!options.rtt_layout) {
    static const std::shared_ptr<const ExportLayout> kDefault = std::make_shared<const ExportLayout>();
    options.rtt_layout = kDefault;
  }
  return options;
}

DelayStats delay_stats(const Histogram& h) {
  DelayStats d;
  d.count = h.count();
  if (d.count == 0) return d;
  static constexpr std::array<double, 4> kQuantiles = {0.50, 0.90, 0.99, 0.999};
  std::array<int64_t, 4> values{};
  h.quantiles(kQuantiles, values);
  d.min_s = static_cast<double>(h.min()) * kNsToS;
  d.max_s = static_cast<double>(h.max()) * kNsToS;
  d.mean_s = h.mean() * kNsToS;
  d.p50_s = static_cast<double>(values[0]) * kNsToS;
  d.p90_s = static_cast<double>(values[1]) * kNsToS;
  d.p99_s = static_cast<double>(values[2]) * kNsToS;
  d.p999_s = static_cast<double>(values[3]) * kNsToS;
  return d;
}

void add_counts(ProbeCounts& into, const ProbeCounts& from) {
  into.sent += from.sent;
  into.received += from.received;
  into.lost += from.lost;
  into.lost_forward += from.lost_forward;
  into.lost_backward += from.lost_backward;
  into.lost_unknown += from.lost_unknown;
  into.late += from.late;
  into.duplicates += from.duplicates;
  into.reordered += from.reordered;
}

uint64_t increase(uint64_t now_value, uint64_t& baseline) {
  // A smaller value is a new sender counting from zero.
  const uint64_t delta = now_value >= baseline ? now_value - baseline : now_value;
  baseline = now_value;
  return delta;
}

}  // namespace

WindowedStats::Slice::Slice(const WindowOptions& options)
    : epoch(kNoEpoch),
      rtt(options.delay_precision_bits),
      forward(options.delay_precision_bits),
      backward(options.delay_precision_bits),
      turnaround(options.turnaround_precision_bits),
      ipdv(options.jitter_precision_bits) {}

void WindowedStats::Slice::reset() {
  rtt.reset();
  forward.reset();
  backward.reset();
  turnaround.reset();
  ipdv.reset();
  counts = ProbeCounts{};
}

WindowedStats::WindowedStats(WindowOptions options)
    : options_(normalized(std::move(options))),
      slice_ns_(options_.window_ns / static_cast<int64_t>(options_.slices)),
      slices_(options_.slices, Slice(options_)),
      peer_(options_.peer_state),
      rtt_export_(options_.rtt_layout) {}

WindowedStats::Slice& WindowedStats::current(MonoNs now) {
  const auto k = static_cast<int64_t>(slices_.size());
  int64_t epoch = floor_div(now, slice_ns_);
  if (!have_epoch_ || epoch > newest_epoch_) {
    newest_epoch_ = epoch;
    have_epoch_ = true;
  } else if (epoch < newest_epoch_) {
    if (newest_epoch_ - epoch < k) {
      epoch = newest_epoch_;  // a small step back: keep counting in the newest slice
    } else {
      for (Slice& s : slices_) {  // far back: start the window afresh
        s.reset();
        s.epoch = kNoEpoch;
      }
      newest_epoch_ = epoch;
    }
  }
  Slice& slice = slices_[static_cast<size_t>(((epoch % k) + k) % k)];
  if (slice.epoch != epoch) {
    slice.reset();
    slice.epoch = epoch;
  }
  return slice;
}

bool WindowedStats::window_end(MonoNs now, int64_t& epoch) const {
  if (!have_epoch_) return false;
  epoch = floor_div(now, slice_ns_);
  if (epoch < newest_epoch_) {
    if (newest_epoch_ - epoch >= static_cast<int64_t>(slices_.size())) return false;
    epoch = newest_epoch_;
  }
  return true;
}

void WindowedStats::apply(const SequenceUpdate& update, Slice& slice) {
  slice.counts.lost_forward += update.classified.forward;
  slice.counts.lost_backward += update.classified.backward;
  slice.counts.lost_unknown += update.classified.unknown;
  totals_.lost_forward += update.classified.forward;
  totals_.lost_backward += update.classified.backward;
  totals_.lost_unknown += update.classified.unknown;
  for (uint8_t i = 0; i < update.ipdv_count; ++i) {
    const int64_t abs_ipdv = clamp_to_int64(magnitude(update.ipdv[i]));
    slice.ipdv.record(abs_ipdv);
    rfc3550_jitter_ns_ += (static_cast<double>(abs_ipdv) - rfc3550_jitter_ns_) / 16.0;
  }
}

void WindowedStats::on_sent(uint32_t seq, MonoNs now) {
  Slice& slice = current(now);
  ++slice.counts.sent;
  ++totals_.sent;
  apply(sequence_.on_sent(seq), slice);
}

void WindowedStats::record_delays(const stamp::Sample& s, Slice& slice) {
  const int64_t rtt = s.rtt_ns();
  slice.rtt.record(rtt);
  slice.turnaround.record(s.turnaround_ns());
  rtt_export_.record_ns(rtt);
  one_way_valid_ = s.one_way_valid();
  if (one_way_valid_) {
    slice.forward.record(s.forward_ns());
    slice.backward.record(s.backward_ns());
    one_way_error_s_ = s.one_way_error_s();
    ++totals_.one_way_samples;
  }
  last_rtt_ns_ = rtt;
}

void WindowedStats::on_event(const stamp::ProbeEvent& event, const Now& now) {
  Slice& slice = current(now.mono);
  switch (event.kind) {
    case stamp::ProbeEvent::Kind::kReply: {
      const stamp::Sample& s = event.sample;
      ++slice.counts.received;
      ++totals_.received;
      ++totals_.t1_sources[static_cast<size_t>(s.t1.source)];
      ++totals_.t4_sources[static_cast<size_t>(s.t4.source)];
      if (!s.clock_stepped) record_delays(s, slice);
      last_reply_at_ = now.wall;
      const std::optional<int64_t> delay = s.clock_stepped ? std::nullopt : std::optional<int64_t>(s.rtt_ns());
      apply(sequence_.on_reply(event.seq, s.reflector_seq, delay), slice);
      peer_.on_reply(event.seq, now.wall);
      break;
    }
    case stamp::ProbeEvent::Kind::kLost:
      ++slice.counts.lost;
      ++totals_.lost;
      apply(sequence_.on_lost(event.seq), slice);
      peer_.on_lost(event.seq, now.wall);
      break;
    case stamp::ProbeEvent::Kind::kLate:
      ++slice.counts.late;
      ++totals_.late;
      break;
    case stamp::ProbeEvent::Kind::kDuplicate:
      ++slice.counts.duplicates;
      ++totals_.duplicates;
      break;
  }
}

void WindowedStats::on_events(std::span<const stamp::ProbeEvent> events, const Now& now) {
  for (const auto& event : events) on_event(event, now);
}

void WindowedStats::on_sender_counters(const stamp::SenderCounters& counters, MonoNs now) {
  const uint64_t reordered = increase(counters.reordered, baseline_.reordered);
  totals_.send_errors += increase(counters.send_errors, baseline_.send_errors);
  totals_.unexpected += increase(counters.unexpected, baseline_.unexpected);
  totals_.invalid += increase(counters.invalid, baseline_.invalid);
  if (reordered != 0) {
    current(now).counts.reordered += reordered;
    totals_.reordered += reordered;
  }
}

void WindowedStats::on_sender_restart(MonoNs now) {
  apply(sequence_.restart(), current(now));
  peer_.on_sequence_restart();
  baseline_ = SenderBaseline{};
}

void WindowedStats::set_window(int64_t window_ns) {
  WindowOptions options = options_;
  options.window_ns = window_ns;
  options_ = normalized(std::move(options));
  slice_ns_ = options_.window_ns / static_cast<int64_t>(options_.slices);
  // Samples were filed by the old slice length: the window starts empty, everything cumulative stays.
  slices_.assign(options_.slices, Slice(options_));
  have_epoch_ = false;
  newest_epoch_ = 0;
}

void WindowedStats::set_peer_state_options(PeerStateOptions options, WallNs now) {
  options_.peer_state = options;
  peer_.set_options(options, now);
}

StatsSnapshot WindowedStats::snapshot(MonoNs now) const {
  StatsSnapshot snap;
  snap.at = now;
  snap.slice_ns = slice_ns_;
  snap.window_ns = slice_ns_ * static_cast<int64_t>(slices_.size());

  int64_t end = 0;
  if (window_end(now, end)) {
    const int64_t begin = end - static_cast<int64_t>(slices_.size());  // exclusive
    Histogram rtt(options_.delay_precision_bits), forward(options_.delay_precision_bits),
        backward(options_.delay_precision_bits), turnaround(options_.turnaround_precision_bits),
        ipdv(options_.jitter_precision_bits);
    for (const Slice& slice : slices_) {
      if (slice.epoch <= begin || slice.epoch > end) continue;
      rtt.merge(slice.rtt);
      forward.merge(slice.forward);
      backward.merge(slice.backward);
      turnaround.merge(slice.turnaround);
      ipdv.merge(slice.ipdv);
      add_counts(snap.window, slice.counts);
    }
    snap.rtt = delay_stats(rtt);
    snap.forward = delay_stats(forward);
    snap.backward = delay_stats(backward);
    snap.turnaround = delay_stats(turnaround);
    snap.jitter.pairs = ipdv.count();
    if (!ipdv.empty()) {
      snap.jitter.mean_abs_ipdv_s = ipdv.mean() * kNsToS;
      snap.jitter.p99_abs_ipdv_s = static_cast<double>(ipdv.quantile(0.99)) * kNsToS;
      snap.jitter.max_abs_ipdv_s = static_cast<double>(ipdv.max()) * kNsToS;
    }
  }
  snap.jitter.rfc3550_s = rfc3550_jitter_ns_ * kNsToS;

  const ProbeCounts& w = snap.window;
  snap.loss.total = ratio(w.lost, w.received + w.lost);
  snap.loss.forward = ratio(w.lost_forward, w.received + w.lost_forward + w.lost_backward);
  snap.loss.backward = ratio(w.lost_backward, w.received + w.lost_backward);
  snap.loss.unknown = ratio(w.lost_unknown, w.received + w.lost);
  snap.loss.direction_known = sequence_.stateful_reflector();

  snap.totals = totals_;
  snap.totals.lost_direction_pending = sequence_.pending_lost();

  snap.one_way_valid = one_way_valid_;
  snap.one_way_error_s = one_way_error_s_;
  snap.state = peer_.state();
  snap.state_since = peer_.last_change();
  snap.state_transitions = peer_.transitions();
  snap.down_transitions = peer_.down_transitions();
  snap.consecutive_lost = peer_.consecutive_lost();
  snap.last_reply_at = last_reply_at_;
  snap.last_rtt_s = static_cast<double>(last_rtt_ns_) * kNsToS;
  return snap;
}

size_t WindowedStats::memory_bytes() const {
  size_t bytes = sizeof(*this) + slices_.capacity() * sizeof(Slice);
  for (const Slice& s : slices_) {
    bytes += s.rtt.memory_bytes() + s.forward.memory_bytes() + s.backward.memory_bytes() + s.turnaround.memory_bytes() +
             s.ipdv.memory_bytes() - 5 * sizeof(Histogram);
  }
  bytes += sequence_.memory_bytes() - sizeof(SequenceTracker);
  bytes += rtt_export_.memory_bytes() - sizeof(ExportHistogram);
  return bytes;
}

}  // namespace hubprobe
