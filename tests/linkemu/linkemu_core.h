// SPDX-License-Identifier: Apache-2.0
// hubprobe-linkemu, the pure-logic part: per-direction parameters, their parsing, and the scheduler that
// decides for each arriving frame whether it is dropped (random loss, Gilbert-Elliott burst loss, rate
// limiter queue full) or when it leaves (arrival + rate-limiter wait + delay + jitter, optionally never
// before the previous departure). No sockets, no clocks: times are nanoseconds given by the caller, so
// everything here is unit-tested with a fixed seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace hubprobe::linkemu {

enum class JitterDist { kUniform, kNormal };

/// Everything that shapes one direction. Times in nanoseconds.
struct DirParams {
  int64_t delay_ns = 0;
  /// Uniform: offset drawn in [-jitter, +jitter]. Normal: sigma = jitter, truncated to +-2 jitter.
  /// The total delay is never below 0 either way.
  int64_t jitter_ns = 0;
  JitterDist dist = JitterDist::kUniform;
  /// false: a frame never leaves before the one that arrived before it (departure = max(computed,
  /// previous departure)). true: jitter may reorder frames.
  bool reorder = false;
  /// Independent random loss, probability in [0, 1].
  double loss = 0.0;
  /// Gilbert-Elliott (simple Gilbert: every frame lost in the bad state, none in the good one):
  /// per-frame probability of good->bad (p) and bad->good (r). Mean burst length 1/r. p = 0: off.
  double ge_p = 0.0;
  double ge_r = 1.0;
  /// Token-bucket rate limit in bit/s (0: unlimited), bucket depth in bytes, and the most bytes that may
  /// wait for tokens (beyond it arriving frames are dropped).
  uint64_t rate_bps = 0;
  uint64_t burst_bytes = 3028;
  uint64_t limit_bytes = 1u << 20;
};

/// Counters of one direction.
struct DirCounters {
  uint64_t received = 0;
  uint64_t forwarded = 0;
  uint64_t drop_loss = 0;   // random loss
  uint64_t drop_burst = 0;  // Gilbert-Elliott bad state
  uint64_t drop_queue = 0;  // rate limiter backlog over limit_bytes
  uint64_t send_error = 0;  // the sender failed (counted by the caller)
  // How late frames were handed to the kernel (clock read after send() - departure), by the caller.
  int64_t late_max_ns = 0;
  uint64_t late_over_100us = 0;
};

/// Parses "10ms", "250us", "1.5s", "100000ns", "0" (bare number = ms). nullopt on error.
std::optional<int64_t> parse_duration_ns(const std::string& s);
/// Parses "5%", "0.5%" (percent) or "0.05" (fraction). nullopt unless in [0, 1].
std::optional<double> parse_probability(const std::string& s);
/// Parses "10mbit", "1.5gbit", "800kbit", "1000000" (bit/s), "0" (unlimited). nullopt on error.
std::optional<uint64_t> parse_rate_bps(const std::string& s);
/// Parses "64k", "1m", "1500" (bytes). nullopt on error.
std::optional<uint64_t> parse_bytes(const std::string& s);

/// Applies one "key=value" to `p` (keys: delay jitter dist reorder loss burst_p burst_r rate burst
/// limit). Returns an error message, or nullopt when applied.
std::optional<std::string> apply_setting(DirParams& p, const std::string& key, const std::string& value);

std::string format_duration(int64_t ns);
/// "delay=10ms jitter=0ns dist=uniform reorder=0 loss=0% burst_p=0% burst_r=100% rate=0 burst=3028 limit=1048576"
std::string format_params(const DirParams& p);

/// A frame waiting in a direction's queue.
struct Scheduled {
  int64_t departure_ns;
  uint64_t seq;  // arrival order, breaks ties so equal departures keep arrival order
  std::vector<uint8_t> frame;
};

enum class Verdict { kQueued, kDropLoss, kDropBurst, kDropQueue };

/// One direction: decides on each arriving frame and holds the frames until they are due.
class Direction {
 public:
  explicit Direction(uint64_t seed = 1) : rng_(seed) {}

  const DirParams& params() const { return params_; }
  /// New parameters apply to frames arriving afterwards; queued frames keep their departure times.
  void set_params(const DirParams& p);

  /// Decides on a frame that arrived at `arrival_ns`; when queued, returns its departure time through
  /// `departure_ns` (if not null).
  Verdict arrive(int64_t arrival_ns, std::vector<uint8_t> frame, int64_t* departure_ns = nullptr);
  /// Departure time of the earliest queued frame, nullopt when empty.
  std::optional<int64_t> next_due() const;
  /// Removes and returns the earliest frame if it is due at `now_ns`.
  std::optional<Scheduled> pop_due(int64_t now_ns);
  size_t queued() const { return heap_.size(); }

  DirCounters& counters() { return counters_; }
  const DirCounters& counters() const { return counters_; }

 private:
  int64_t rate_departure(int64_t arrival_ns, size_t len, bool* over_limit);
  int64_t jitter_sample();

  struct Later {
    bool operator()(const Scheduled& a, const Scheduled& b) const {
      return a.departure_ns != b.departure_ns ? a.departure_ns > b.departure_ns : a.seq > b.seq;
    }
  };

  DirParams params_;
  DirCounters counters_;
  std::mt19937_64 rng_;
  bool ge_bad_ = false;
  int64_t last_departure_ = INT64_MIN;
  uint64_t seq_ = 0;
  // Token bucket: tokens (bytes, fractional) as of tb_time_; the FIFO leaving the bucket (departure from
  // the rate stage, length) to compute the backlog.
  double tokens_ = 0.0;
  int64_t tb_time_ = INT64_MIN;
  int64_t tb_last_out_ = INT64_MIN;
  std::deque<std::pair<int64_t, size_t>> tb_backlog_;
  uint64_t tb_backlog_bytes_ = 0;
  std::vector<Scheduled> heap_;  // std::push_heap/pop_heap with Later: earliest on top
};

enum class ClockId { kMonotonic, kRealtime };

/// CLOCK_REALTIME - CLOCK_MONOTONIC as a lower bound: never above the true offset.
struct ClockOffset {
  int64_t offset_ns = 0;       ///< realtime - monotonic, at most the true offset
  int64_t mono_ns = 0;         ///< the last monotonic read (a "now" taken after the realtime read)
  int64_t uncertainty_ns = 0;  ///< the true offset is in [offset_ns, offset_ns + uncertainty_ns]
};

/// Reads the realtime clock between two monotonic reads m1 <= m2 and takes `real - m2`: the realtime
/// read happened at or before m2, so the difference can only come out too small (by the time between
/// the reads), never too large. A realtime stamp converted with it (stamp - offset) is then never
/// earlier than the true monotonic time of that stamp: a frame scheduled from it is never sent early,
/// only late by at most the gap (a preemption between the reads makes the gap long). Up to `tries`
/// samples, keeping the largest (tightest) bound; stops once one had its reads at most `tight_ns` apart.
ClockOffset realtime_offset_floor(const std::function<int64_t(ClockId)>& read, int tries = 4, int64_t tight_ns = 2000);

/// "received=.. forwarded=.. drop_loss=.. drop_burst=.. drop_queue=.. send_error=.. queued=..
/// late_max_us=.. late_over_100us=.."
std::string format_counters(const Direction& d);

/// Executes one control line and returns the reply (newline-terminated):
///   set ab|ba|both key=value...   -> "ok" (all settings or none are applied) or "error: ..."
///   show                          -> "ab <params> <counters>" and "ba <params> <counters>"
std::string control_reply(const std::string& line, Direction& ab, Direction& ba);

}  // namespace hubprobe::linkemu
