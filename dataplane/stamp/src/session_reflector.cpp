// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/session_reflector.h"

#include <algorithm>
#include <array>

#include <linux/types.h>

#include "hubprobe/stamp_wire.h"

namespace hubprobe::stamp {

namespace {
// Sequence number, timestamp and error estimate: the smallest packet that can be reflected.
constexpr uint32_t kTwampLightMinimum = 14;
}  // namespace

SessionReflector::SessionReflector(ReflectorOptions options) : options_(std::move(options)) {}

bool SessionReflector::reflect_impl(const dp::RxPacket& request, std::span<uint8_t> out, const ClockState& clock,
                                    const T3Reading& t3_reading, dp::TxPacket& reply) {
  const Now& now = t3_reading.now;
  const WallNs t3 = now.wall;
  ++counters_.received;
  if (request.truncated) {
    ++counters_.dropped_truncated;
    return false;
  }
  std::span<const uint8_t> bytes(request.data, request.length);
  // RFC 8762 section 4.6: a TWAMP-Light sender may send less than the STAMP base packet (at least its
  // sequence number, timestamp and error estimate). Its base-size reply is larger than the request, so
  // it is sent only when the operator asked for it (ReflectorOptions::answer_short_requests).
  std::array<uint8_t, STAMP_UNAUTH_BASE_LEN> widened{};
  if (options_.mode == Mode::kUnauthenticated && request.length >= kTwampLightMinimum &&
      request.length < STAMP_UNAUTH_BASE_LEN) {
    if (!options_.answer_short_requests) {
      ++counters_.dropped_short_request;
      return false;
    }
    std::copy_n(request.data, request.length, widened.begin());
    bytes = widened;
    ++counters_.twamp_light_short;
  }
  const std::shared_ptr<const HmacKey> key = options_.key_for ? options_.key_for(request.source) : options_.key;
  const auto decoded = decode_test_packet(bytes, options_.mode, key.get());
  if (!decoded.ok) {
    switch (decoded.error) {
      case ParseError::kTooShort: ++counters_.dropped_too_short; break;
      case ParseError::kTooLong: ++counters_.dropped_too_long; break;
      case ParseError::kBadHmac: ++counters_.dropped_bad_hmac; break;
      case ParseError::kMalformedTlv: ++counters_.dropped_too_short; break;
    }
    return false;
  }
  if (out.size() < bytes.size()) {
    ++counters_.dropped_too_long;
    return false;
  }
  // T2 is the backend's receive timestamp; without one, T3's clock read is the closest we have.
  const WallNs t2 = request.rx.valid() ? request.rx.ns : t3;

  ReflectionFields fields;
  fields.seq =
      options_.stateful ? next_reflector_seq(request, decoded.parsed.packet.ssid, now.mono) : decoded.parsed.packet.seq;
  fields.receive_timestamp = encode_timestamp(t2, options_.format, clock.tai_offset_s);
  fields.timestamp = encode_timestamp(t3, options_.format, clock.tai_offset_s);
  fields.error_estimate =
      ErrorEstimate::from_clock(clock, options_.format, static_cast<double>(t3_reading.error_ns) * 1e-9).encode();
  fields.sender_ttl = request.ttl >= 0 ? static_cast<uint8_t>(request.ttl) : 0;

  auto report = encode_reflection(decoded.parsed, bytes, fields, options_.mode, key.get(), out.first(bytes.size()));
  if (!report) {
    ++counters_.dropped_too_long;
    return false;
  }
  counters_.tlv_unrecognized += report->unrecognized;
  counters_.tlv_malformed += report->malformed;

  reply.data = out.data();
  reply.length = static_cast<uint32_t>(bytes.size());
  reply.destination = request.source;
  reply.source = request.destination;
  reply.link_destination = request.link_source;  // back to the MAC it came from (backends that build frames)
  reply.tos = request.tos;
  ++counters_.reflected;
  return true;
}

uint32_t SessionReflector::next_reflector_seq(const dp::RxPacket& request, uint16_t ssid, MonoNs now) {
  SessionKey key{request.source, request.destination, ssid};
  auto it = sessions_.find(key);
  if (it == sessions_.end()) {
    if (sessions_.size() >= options_.max_sessions && !recency_.empty()) {
      // Table full: forget the session seen least recently (the back of recency_).
      const SessionKey oldest = *recency_.back();
      recency_.pop_back();
      sessions_.erase(oldest);
      ++counters_.sessions_evicted;
    }
    it = sessions_.emplace(key, Session{}).first;
    recency_.push_front(&it->first);
    it->second.recency = recency_.begin();
  } else {
    recency_.splice(recency_.begin(), recency_, it->second.recency);
  }
  it->second.last_seen = now;
  counters_.sessions_active = sessions_.size();
  return it->second.next_seq++;
}

void SessionReflector::expire_sessions(MonoNs now) {
  // The idle ones are at the back of recency_.
  while (!recency_.empty()) {
    const auto oldest = sessions_.find(*recency_.back());
    if (oldest == sessions_.end() || now - oldest->second.last_seen <= options_.session_idle_ns) break;
    sessions_.erase(oldest);
    recency_.pop_back();
  }
  counters_.sessions_active = sessions_.size();
}

}  // namespace hubprobe::stamp
