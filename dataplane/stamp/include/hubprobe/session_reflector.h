// SPDX-License-Identifier: Apache-2.0
// The STAMP session-reflector engine (RFC 8762 section 4.3): stateless or stateful, unauthenticated or
// authenticated. Turns one received datagram into its reply; no I/O of its own, shared by every
// backend. Not thread-safe: one owner per instance (one per reflector thread).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>

#include "hubprobe/clock.h"
#include "hubprobe/packet.h"
#include "hubprobe/stamp.h"

namespace hubprobe::stamp {

struct ReflectorOptions {
  Mode mode = Mode::kUnauthenticated;
  std::shared_ptr<const HmacKey> key;  ///< required in authenticated mode (unless key_for is set)
  /// Per-source keys: when set, it gives the key for each request's source (null = drop as bad HMAC).
  std::function<std::shared_ptr<const HmacKey>(const SocketAddress& source)> key_for;
  bool stateful = false;  ///< own sequence numbers per session (lets senders split loss)
  /// Answer unauthenticated requests of 14..43 octets (TWAMP-Light senders, RFC 8762 section 4.6) with a
  /// 44-octet reply. Off by default: such a reply is larger than its request (3.1 times for 14 octets),
  /// which makes the reflector an amplifier towards whatever source address a request claims.
  bool answer_short_requests = false;
  TimestampFormat format = TimestampFormat::kNtp;
  size_t max_sessions = 65536;                ///< stateful table bound; the least recently seen is evicted
  int64_t session_idle_ns = 300'000'000'000;  ///< a stateful session idle this long (monotonic) is forgotten
};

/// T3 as a reflector reads it: the moment on both clocks, and how far its wall time may lie from the
/// reply's departure on top of the clock's own error (a send-path estimate's residual,
/// send_path_estimator.h), which the reply's Error Estimate includes.
struct T3Reading {
  Now now;
  int64_t error_ns = 0;
};

/// Why the reflector dropped a datagram; exported as reflector drop reasons.
struct ReflectorCounters {
  uint64_t received = 0;
  uint64_t reflected = 0;
  uint64_t dropped_too_short = 0;
  uint64_t dropped_short_request = 0;  ///< 14..43 octets, answer_short_requests off
  uint64_t dropped_too_long = 0;
  uint64_t dropped_truncated = 0;  ///< longer than the receive buffer
  uint64_t dropped_bad_hmac = 0;
  uint64_t dropped_no_timestamp = 0;
  uint64_t sessions_active = 0;
  uint64_t sessions_evicted = 0;
  uint64_t tlv_unrecognized = 0;
  uint64_t tlv_malformed = 0;
  uint64_t twamp_light_short = 0;  ///< requests shorter than 44 octets answered with a 44-octet reply
  uint64_t dropped() const {
    return dropped_too_short + dropped_short_request + dropped_too_long + dropped_truncated + dropped_bad_hmac +
           dropped_no_timestamp;
  }
};

class SessionReflector {
 public:
  explicit SessionReflector(ReflectorOptions options);

  /// Builds the reply to `request` into `out` (at least max(request.length, 44) octets) and fills `reply`
  /// (destination = request source, source = the address the request was sent to, same TOS). The reply is
  /// as long as the request. An unauthenticated request of 14..43 octets (a TWAMP-Light sender) is dropped,
  /// or with answer_short_requests gets a 44-octet reply (RFC 8762 section 4.6).
  /// `now_fn` (e.g. read_now) gives the time as late as possible, as a Now or a T3Reading: T3 is its wall
  /// time, its monotonic time dates the stateful session's activity. Returns false when the request is
  /// dropped (counted).
  template <class NowFn>
  bool reflect(const dp::RxPacket& request, std::span<uint8_t> out, const ClockState& clock, NowFn&& now_fn,
               dp::TxPacket& reply) {
    return reflect_impl(request, out, clock, as_reading(now_fn()), reply);
  }
  /// Same, with the time given (T3 = now.wall).
  bool reflect_at(const dp::RxPacket& request, std::span<uint8_t> out, const ClockState& clock, const Now& now,
                  dp::TxPacket& reply) {
    return reflect_impl(request, out, clock, as_reading(now), reply);
  }
  /// Forgets stateful sessions idle (monotonic) for longer than session_idle_ns.
  void expire_sessions(MonoNs now);

  const ReflectorCounters& counters() const { return counters_; }
  const ReflectorOptions& options() const { return options_; }

 private:
  struct SessionKey {
    SocketAddress source;
    SocketAddress destination;
    uint16_t ssid = 0;
    bool operator==(const SessionKey&) const = default;
  };
  struct SessionKeyHash {
    size_t operator()(const SessionKey& k) const { return k.source.hash() * 31 + k.destination.hash() * 7 + k.ssid; }
  };
  struct Session {
    uint32_t next_seq = 0;
    MonoNs last_seen = 0;
    std::list<const SessionKey*>::iterator recency;  ///< its place in recency_
  };

  static T3Reading as_reading(const Now& now) { return T3Reading{now, 0}; }
  static T3Reading as_reading(const T3Reading& reading) { return reading; }
  bool reflect_impl(const dp::RxPacket& request, std::span<uint8_t> out, const ClockState& clock,
                    const T3Reading& t3_reading, dp::TxPacket& reply);
  uint32_t next_reflector_seq(const dp::RxPacket& request, uint16_t ssid, MonoNs now);

  ReflectorOptions options_;
  std::unordered_map<SessionKey, Session, SessionKeyHash> sessions_;
  /// The sessions' keys (in their map nodes, which rehashing does not move), most recently seen first:
  /// evicting the least recently seen is O(1), so a flood of new sources costs a constant time per request
  /// once the table is full.
  std::list<const SessionKey*> recency_;
  ReflectorCounters counters_;
};

}  // namespace hubprobe::stamp
