// SPDX-License-Identifier: Apache-2.0
// The STAMP session-sender engine: builds probes, matches replies and TX timestamps, and turns them into
// samples. Pure logic over dataplane packets: no I/O, no clock reads of its own (callers pass the time),
// so it is shared by every backend and unit-tested without a kernel. Not thread-safe: one owner.
//
// Two clocks: the wall clock (WallNs) is what goes on the wire and what T1..T4 are; every deadline (the
// timeout, the TX-stamp grace) runs on the monotonic clock (MonoNs), so stepping the wall clock neither
// declares probes in flight lost nor keeps them forever.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/packet.h"
#include "hubprobe/stamp.h"

namespace hubprobe::stamp {

struct SenderOptions {
  Mode mode = Mode::kUnauthenticated;
  std::shared_ptr<const HmacKey> key;  ///< required in authenticated mode
  TimestampFormat format = TimestampFormat::kNtp;
  uint16_t ssid = 0;                   ///< RFC 8972 Session-Sender Identifier
  uint32_t packet_size = 0;            ///< 0 = base length of the mode
  int64_t timeout_ns = 2'000'000'000;  ///< a probe without a reply after this (monotonic) is lost
  /// A reply that arrives before its TX timestamp waits this long (monotonic) for it, then uses the
  /// user-space send time instead (and says so in the sample). 0 = the port has no TX timestamps: a reply
  /// completes at once with the send time as T1, which is then no fallback (t1_user_fallback stays).
  int64_t tx_timestamp_grace_ns = 20'000'000;
  /// Recent sequence numbers remembered to tell late and duplicate replies from strangers: rounded up to
  /// a power of two, at least 64 (5 octets each). 0 = 4096 (20 KiB; at 10 probes/s a reply up to ~7
  /// minutes late is still told from a stranger). history_for() sizes it to a session's probe rate.
  uint32_t history = 0;
};

/// A history (SenderOptions::history) that remembers the probes of 16 timeouts, at least 256 and at most
/// 4096 entries: 256 (1.3 KiB) at one probe a second with a 1 s timeout.
uint32_t history_for(int64_t interval_ns, int64_t timeout_ns);

/// One answered probe. T1 and T4 are local; T2 and T3 come from the reflector's clock.
struct Sample {
  uint32_t seq = 0;            ///< our sequence number
  uint32_t reflector_seq = 0;  ///< the reflector's (stateful: its own count; stateless: ours)
  uint32_t length = 0;
  dp::Timestamp t1, t4;
  WallNs t2 = 0, t3 = 0;
  ErrorEstimate local_error, reflector_error;
  int reflector_ttl = -1;  ///< TTL the request arrived with at the reflector
  int reply_ttl = -1;      ///< TTL the reply arrived with here
  /// The local wall clock was stepped while the probe was out: T4 - T1 does not fit in the monotonic
  /// time between sending and receiving. The probe was answered, but its delays are not measurements;
  /// statistics count the reply and leave its delays out.
  bool clock_stepped = false;

  WallNs rtt_ns() const { return (t4.ns - t1.ns) - (t3 - t2); }
  WallNs turnaround_ns() const { return t3 - t2; }
  /// One-way delays are meaningful only when both clocks say they are synchronised.
  bool one_way_valid() const { return local_error.synchronized && reflector_error.synchronized; }
  WallNs forward_ns() const { return t2 - t1.ns; }
  WallNs backward_ns() const { return t4.ns - t3; }
  /// Error bound of a one-way delay: the sum of both clocks' error estimates.
  double one_way_error_s() const { return local_error.seconds() + reflector_error.seconds(); }
};

struct SenderCounters {
  uint64_t sent = 0;
  uint64_t send_errors = 0;
  uint64_t received = 0;    ///< valid replies matched to a probe in flight
  uint64_t lost = 0;        ///< probes whose timeout expired without a reply
  uint64_t late = 0;        ///< valid replies to probes already declared lost
  uint64_t duplicates = 0;  ///< a second reply to the same probe
  uint64_t reordered = 0;   ///< replies arriving after a reply to a later probe
  uint64_t invalid = 0;     ///< datagrams refused (all reasons below)
  uint64_t unexpected = 0;  ///< well-formed replies to sequence numbers we never sent (or long forgotten)
  uint64_t invalid_too_short = 0;
  uint64_t invalid_too_long = 0;
  uint64_t invalid_bad_hmac = 0;
  uint64_t invalid_size_mismatch = 0;  ///< reply length differs from the request's
  uint64_t invalid_wrong_session = 0;  ///< SSID differs from ours
  uint64_t invalid_source = 0;         ///< not from the reflector we probe
  uint64_t tx_timestamps = 0;
  uint64_t tx_timestamp_mismatch = 0;  ///< a TX timestamp implausibly far from its send time
  uint64_t t1_user_fallback = 0;       ///< samples whose T1 is a user-space clock read
  uint64_t clock_stepped = 0;          ///< replies whose delays a wall-clock step spoilt (Sample::clock_stepped)
};

/// What became of a probe, reported by poll_events().
struct ProbeEvent {
  enum class Kind : uint8_t { kReply, kLost, kLate, kDuplicate } kind = Kind::kReply;
  uint32_t seq = 0;
  Sample sample;  ///< kReply only
};

class SessionSender {
 public:
  SessionSender(SenderOptions options, SocketAddress reflector);

  /// Builds the next probe into `buffer` (at least packet_size octets). Call on_sent() once it left,
  /// right after. `clock` is the current clock state (cached by the caller); `now.wall` goes into the
  /// packet, the timeout counts from `now.mono`.
  Result<dp::TxPacket> build_probe(std::span<uint8_t> buffer, const Now& now, const ClockState& clock);
  /// Records that the probe built last left with the backend's tx_id and user-space send time.
  void on_sent(const dp::TxPacket& sent);
  void on_send_failed();
  void on_tx_timestamp(const dp::TxTimestamp& stamp);
  /// Handles one received datagram, read at `now` (at or after its arrival).
  void on_receive(const dp::RxPacket& packet, const Now& now);
  /// Declares probes lost whose timeout passed and releases replies that waited for their TX stamp.
  void advance(MonoNs now);
  /// When advance() next has something to do (a timeout, a reply's wait for its TX stamp ending);
  /// the largest MonoNs when no probe is in flight.
  MonoNs next_deadline() const;
  /// Moves out what happened since the last call.
  std::vector<ProbeEvent> poll_events();
  /// The same, appended to `out` (whose capacity the caller reuses); returns how many were appended.
  size_t take_events(std::vector<ProbeEvent>& out);
  /// True when take_events() would append something.
  bool has_events() const { return !events_.empty(); }

  uint32_t next_seq() const { return next_seq_; }
  size_t in_flight() const { return in_flight_.size(); }
  const SenderCounters& counters() const { return counters_; }
  const SenderOptions& options() const { return options_; }
  uint32_t packet_size() const { return packet_size_; }

 private:
  struct InFlight {
    uint32_t seq = 0;
    uint32_t tx_id = 0;
    bool sent = false;
    MonoNs built_at = 0;
    MonoNs deadline = 0;
    dp::Timestamp t1;  ///< user time, upgraded by the TX timestamp
    ErrorEstimate local_error;
    std::optional<Sample> reply;  ///< answered, waiting for the TX timestamp
    MonoNs received_at = 0;
    MonoNs reply_deadline = 0;
  };
  enum class SeqState : uint8_t { kUnknown, kAnswered, kLost };

  void complete(InFlight& probe, bool used_fallback);
  void remember(uint32_t seq, SeqState state);
  SeqState recall(uint32_t seq) const;

  SenderOptions options_;
  SocketAddress reflector_;
  uint32_t packet_size_;
  uint32_t next_seq_ = 0;
  int32_t tai_offset_s_ = 37;
  uint32_t highest_answered_ = 0;
  bool any_answered_ = false;
  std::optional<InFlight> pending_;                   ///< built but not yet reported sent
  std::unordered_map<uint32_t, InFlight> in_flight_;  ///< by seq
  std::unordered_map<uint32_t, uint32_t> seq_by_tx_id_;
  // What happened to recent sequence numbers (SenderOptions::history of them; indexed by seq modulo
  // their number, a power of two), to tell late and duplicate replies from strangers.
  std::vector<uint32_t> history_seq_;
  std::vector<SeqState> history_state_;
  std::vector<ProbeEvent> events_;
  SenderCounters counters_;
};

}  // namespace hubprobe::stamp
