// SPDX-License-Identifier: Apache-2.0
// Streaming statistics of one probe session (one peer, one path) for the long-running daemon: windowed
// delay quantiles, jitter as IPDV, loss split by direction, reordering, duplicates, late replies and peer
// reachability. Pure logic: no I/O, no clock reads (every call takes the time), not thread-safe (one owner;
// the daemon hands snapshots to the exporter). The object is independent of any config object and is
// movable, so it survives a config reload by moving it to the new session object.
//
// The exact, batch counterparts used by `hubprobe ping` are in summary.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/histogram.h"
#include "hubprobe/peer_state.h"
#include "hubprobe/session_sender.h"
#include "hubprobe/summary.h"

namespace hubprobe {

/// What a SequenceTracker call learnt.
struct SequenceUpdate {
  /// Losses whose direction was settled by this call (forward / backward / unknown).
  LossSplit classified;
  /// New IPDV values (RFC 3393: delay(i+1) - delay(i), consecutive sequence numbers both answered), ns.
  std::array<int64_t, 2> ipdv{};
  uint8_t ipdv_count = 0;
};

/// The incremental form of split_loss() plus IPDV pairing, over sequence numbers as the sender reports
/// them: replies and losses may come in any order, a loss is known only when the sender declares it
/// (ProbeEvent::Kind::kLost, after the probe's timeout).
///
/// Probes are settled in sequence order: a run of lost probes between two replies (s1, r1) and (s2, r2)
/// gets its direction when both replies are known and every probe in between is lost. With k probes sent
/// in between (sequence numbers never reported by on_sent(), i.e. failed sends, do not count) the
/// reflector received r2 - r1 - 1 of them: (k + 1) - (r2 - r1) were lost forward and r2 - r1 - 1
/// backward. The run before the first reply counts from a virtual reply (first - 1, -1), as in
/// split_loss(). A run whose reflector numbers do not fit (reflector restarted, numbering of its own)
/// is unknown. Losses after the newest reply stay pending (pending_lost()) until the next reply, or until
/// restart(), which settles them as unknown, like split_loss() does for probes after the last reply.
///
/// Stateless reflectors echo our sequence number, so direction is unknown. Until a reply arrives whose
/// reflector sequence number differs from ours, a stateless reflector cannot be told from a stateful one
/// that has lost nothing forward: runs settled before that are unknown. split_loss(), seeing the whole run
/// at once, calls those runs backward loss instead; counters that never go down cannot reclassify them.
/// So: forward counts always equal split_loss(); backward + unknown equal split_loss()'s; and everything
/// is equal when the reflector's numbering differs from ours from its first reply (e.g. it served other
/// sessions) or its first forward loss precedes any backward loss.
///
/// Sequence numbers compare in serial arithmetic (they may wrap). on_sent() with a number before the
/// last one means the sender restarted: the tracker restarts by itself (the same number twice is ignored).
class SequenceTracker {
 public:
  /// At most this many sent-but-unsettled probes are tracked (1 MiB); beyond, the oldest unresolved one is
  /// given up and the run around it is settled as unknown.
  static constexpr size_t kMaxTracked = size_t{1} << 16;

  SequenceTracker();

  SequenceUpdate on_sent(uint32_t seq);
  /// A reply to `seq` numbered `reflector_seq` by the reflector, with the delay used for IPDV (none: the
  /// reply pairs with no neighbour for IPDV, e.g. its delay was spoilt by a clock step).
  SequenceUpdate on_reply(uint32_t seq, uint32_t reflector_seq, std::optional<int64_t> delay_ns);
  SequenceUpdate on_lost(uint32_t seq);
  /// Settles pending losses as unknown and forgets every sequence number (a new sender).
  SequenceUpdate restart();

  /// Everything settled so far (never decreases).
  const LossSplit& totals() const { return totals_; }
  /// Losses reported but not yet settled.
  uint64_t pending_lost() const { return pending_lost_; }
  /// A reply whose reflector sequence number differs from ours was seen: directions can be told.
  bool stateful_reflector() const { return stateful_; }
  size_t tracked() const { return size_; }
  size_t memory_bytes() const;

 private:
  enum class State : uint8_t { kPending, kReplied, kLost };
  struct Entry {
    uint32_t seq = 0;
    uint32_t reflector_seq = 0;
    int64_t delay_ns = 0;
    bool has_delay = false;
    State state = State::kPending;
  };
  static constexpr size_t kNotFound = static_cast<size_t>(-1);

  Entry& at(size_t i) { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  const Entry& at(size_t i) const { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  size_t find(uint32_t seq) const;
  /// Finds `seq`, tracking it as sent first when it is newer than anything sent (no on_sent() call).
  size_t find_or_track(uint32_t seq, SequenceUpdate& update);
  void push(uint32_t seq, SequenceUpdate& update);
  void pop_front() {
    head_ = (head_ + 1) & (ring_.size() - 1);
    --size_;
  }
  void settle(SequenceUpdate& update);
  void close_run(const Entry& reply, SequenceUpdate& update);
  void add(SequenceUpdate& update, uint64_t forward, uint64_t backward, uint64_t unknown);
  void begin_sequence();

  std::vector<Entry> ring_;  ///< power-of-two ring of sent, unsettled probes in sequence order
  size_t head_ = 0;
  size_t size_ = 0;
  bool have_sent_ = false;
  uint32_t last_sent_ = 0;
  // The newest settled reply (or the virtual one before the first probe).
  bool previous_valid_ = false;
  uint32_t previous_seq_ = 0;
  uint32_t previous_reflector_seq_ = 0;
  bool previous_has_delay_ = false;
  int64_t previous_delay_ns_ = 0;
  uint64_t run_lost_ = 0;  ///< lost probes settled in order since the previous reply
  uint64_t pending_lost_ = 0;
  bool stateful_ = false;
  LossSplit totals_;
};

struct WindowOptions {
  /// Length of the sliding window. It is a ring of `slices` sub-windows of window_ns / slices each: a
  /// value stays in the window for at least window - window/slices and less than window after it was
  /// recorded (55 s to 60 s with the defaults).
  int64_t window_ns = 60'000'000'000;
  uint32_t slices = 12;  ///< 1..1000
  /// Precision of the RTT and one-way delay histograms: 2^-(bits+1) relative quantile error (7: 0.39 %,
  /// 78 µs at 20 ms).
  int delay_precision_bits = 7;
  /// Precision of the reflector turnaround histogram (5: 1.6 %); turnaround spans several octaves
  /// (microseconds to tens of microseconds), so a coarser precision saves most of its memory.
  int turnaround_precision_bits = 5;
  /// Precision of the |IPDV| histogram (5: 1.6 %).
  int jitter_precision_bits = 5;
  PeerStateOptions peer_state;
  /// Buckets of the cumulative RTT histogram for Prometheus; null = ExportLayout's defaults (shared).
  /// Window, precision and layout are fixed for the life of the object: changing them means a new
  /// WindowedStats (and, for the layout, a new histogram series set in Prometheus).
  std::shared_ptr<const ExportLayout> rtt_layout;
};

/// Windowed distribution of a delay, in seconds. Quantiles are nearest-rank within the histogram bound;
/// min, max and mean are exact. All zero when count == 0.
struct DelayStats {
  uint64_t count = 0;
  double min_s = 0, mean_s = 0, p50_s = 0, p90_s = 0, p99_s = 0, p999_s = 0, max_s = 0;
};

/// Jitter as IPDV (RFC 3393, RFC 5481 section 4.1) of the round-trip delay: for each pair of consecutive
/// sequence numbers both answered, |delay(i+1) - delay(i)|.
struct JitterStats {
  uint64_t pairs = 0;          ///< IPDV values in the window
  double mean_abs_ipdv_s = 0;  ///< windowed mean |IPDV| (exact)
  double p99_abs_ipdv_s = 0;   ///< windowed p99 |IPDV| (histogram bound)
  double max_abs_ipdv_s = 0;   ///< windowed max |IPDV| (exact)
  /// RFC 3550 section 6.4.1 style smoothed jitter, J += (|IPDV| - J) / 16 in the order pairs complete;
  /// not windowed (its memory is ~16 pairs).
  double rfc3550_s = 0;
};

/// Probe outcomes, in the window or in total.
struct ProbeCounts {
  uint64_t sent = 0;
  uint64_t received = 0;       ///< replies before the timeout
  uint64_t lost = 0;           ///< timed out (late replies stay lost)
  uint64_t lost_forward = 0;   ///< settled as lost on the way to the reflector
  uint64_t lost_backward = 0;  ///< settled as lost on the way back
  uint64_t lost_unknown = 0;   ///< settled, direction unknown
  uint64_t late = 0;           ///< replies after the probe was declared lost
  uint64_t duplicates = 0;
  uint64_t reordered = 0;  ///< replies after a reply to a later probe (from the sender's counters)
};

struct StatsTotals : ProbeCounts {
  uint64_t send_errors = 0;      ///< from the sender's counters
  uint64_t unexpected = 0;       ///< replies to unknown sequence numbers (sender's counters)
  uint64_t invalid = 0;          ///< datagrams refused by the codec (sender's counters)
  uint64_t one_way_samples = 0;  ///< replies with both clocks synchronised
  /// Replies by where their T1 (send) and T4 (receive) timestamps were taken, indexed by dp::TimestampSource.
  std::array<uint64_t, dp::kTimestampSourceCount> t1_sources{}, t4_sources{};
  /// Lost but direction not yet settled (lost - forward - backward - unknown); a gauge, not a counter.
  uint64_t lost_direction_pending = 0;
};

/// Windowed loss ratios, 0 when the window has no settled probe.
struct LossRatios {
  /// lost / (received + lost): every probe whose fate is known.
  double total = 0;
  /// Forward path loss rate: forward / (received + forward + backward).
  double forward = 0;
  /// Backward path loss rate among probes that reached the reflector: backward / (received + backward).
  double backward = 0;
  /// unknown / (received + lost).
  double unknown = 0;
  /// The reflector's numbering tells directions (stateful reflector seen). When false, forward and
  /// backward are 0 for want of knowledge, not for want of loss.
  bool direction_known = false;
};

/// Everything the exporter, the SLA logic and `hubprobe status` need, as plain values.
struct StatsSnapshot {
  MonoNs at = 0;          ///< the `now` it was taken at
  int64_t window_ns = 0;  ///< nominal window (slices * slice length)
  int64_t slice_ns = 0;
  DelayStats rtt, forward, backward, turnaround;
  bool one_way_valid = false;  ///< the newest reply had both clocks synchronised
  double one_way_error_s = 0;  ///< error bound of the newest valid one-way delays
  JitterStats jitter;
  ProbeCounts window;  ///< counts in the window
  LossRatios loss;
  StatsTotals totals;  ///< cumulative, never decrease (except lost_direction_pending)
  PeerState state = PeerState::kUnknown;
  WallNs state_since = 0;  ///< wall time of the last state change, 0 = never
  uint64_t state_transitions = 0;
  uint64_t down_transitions = 0;
  uint32_t consecutive_lost = 0;
  WallNs last_reply_at = 0;  ///< wall time the newest reply was read at, 0 = none
  double last_rtt_s = 0;
};

/// Statistics of one probe session.
///
/// Feed it what the SessionSender says: on_sent() after each probe left, on_event() for every event of
/// poll_events() (any order), on_sender_counters() now and then (before snapshots) for what only the
/// sender counts (reordering, invalid datagrams, send errors), on_sender_restart() when a new
/// SessionSender replaces the old one. The windows run on the monotonic clock: events are accounted in the
/// sub-window of the monotonic `now` they are fed with, so a step of the wall clock moves nothing. A `now`
/// older than the newest seen by less than a window is taken as the newest; further back empties the
/// window (counters and the exported histogram stay). The wall clock only dates the newest reply and the
/// peer's state changes, for documents. A reply whose delays a clock step spoilt
/// (Sample::clock_stepped) counts as received and leaves its delays out.
///
/// Cost (defaults; 20 ms +- 1 ms RTT, 5..50 µs turnaround, 10 probes/s, one-way valid): memory ~12 KB
/// empty and ~52 KB once the window is full (the MemoryPerSession test prints it), i.e. ~5 MB for 100
/// peers; most of it is the per-slice histograms, whose octaves are allocated only where values fall.
/// on_sent()/on_event() are O(1), ~250 ns with 300 sessions interleaved; snapshot() merges the window's
/// sub-histograms: ~7 µs per session with hot caches, ~27 µs cold (8 ms for 300 sessions).
class WindowedStats {
 public:
  explicit WindowedStats(WindowOptions options = {});

  void on_sent(uint32_t seq, MonoNs now);
  void on_event(const stamp::ProbeEvent& event, const Now& now);
  void on_events(std::span<const stamp::ProbeEvent> events, const Now& now);
  /// Takes the increase of the sender's cumulative counters since the last call (a decrease means a new
  /// sender whose counters started from zero).
  void on_sender_counters(const stamp::SenderCounters& counters, MonoNs now);
  /// A new SessionSender (numbering from 0 again, counters from 0) feeds this object from now on. Pending
  /// losses are settled as unknown; statistics and counters stay.
  void on_sender_restart(MonoNs now);
  /// A new window length (config reload): the windowed quantiles and ratios start empty; counters, the
  /// exported histogram, loss tracking and the peer state stay.
  void set_window(int64_t window_ns);
  /// New reachability thresholds (config reload) without losing anything; a state change it causes is
  /// dated `now`.
  void set_peer_state_options(PeerStateOptions options, WallNs now);

  StatsSnapshot snapshot(MonoNs now) const;

  /// Cumulative RTT histogram for the Prometheus export (never reset).
  const ExportHistogram& rtt_histogram() const { return rtt_export_; }
  const PeerStateTracker& peer_state() const { return peer_; }
  const SequenceTracker& sequence() const { return sequence_; }
  const WindowOptions& options() const { return options_; }
  int64_t slice_ns() const { return slice_ns_; }
  /// Heap and object bytes in use.
  size_t memory_bytes() const;

 private:
  struct Slice {
    explicit Slice(const WindowOptions& options);
    void reset();
    int64_t epoch;
    Histogram rtt, forward, backward, turnaround, ipdv;
    ProbeCounts counts;
  };
  struct SenderBaseline {
    uint64_t reordered = 0, send_errors = 0, unexpected = 0, invalid = 0;
  };

  Slice& current(MonoNs now);
  /// The newest epoch a snapshot at `now` covers; false when the window is empty.
  bool window_end(MonoNs now, int64_t& epoch) const;
  void record_delays(const stamp::Sample& sample, Slice& slice);
  void apply(const SequenceUpdate& update, Slice& slice);

  WindowOptions options_;
  int64_t slice_ns_;
  std::vector<Slice> slices_;
  bool have_epoch_ = false;
  int64_t newest_epoch_ = 0;
  SequenceTracker sequence_;
  PeerStateTracker peer_;
  ExportHistogram rtt_export_;
  StatsTotals totals_;
  SenderBaseline baseline_;
  double rfc3550_jitter_ns_ = 0;
  bool one_way_valid_ = false;
  double one_way_error_s_ = 0;
  WallNs last_reply_at_ = 0;
  int64_t last_rtt_ns_ = 0;
};

}  // namespace hubprobe
