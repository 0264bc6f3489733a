// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/session_sender.h"

#include <algorithm>
#include <bit>
#include <limits>

namespace hubprobe::stamp {

namespace {
// A TX timestamp more than this far from the user-space send time belongs to another packet
// (the OPT_ID counter slipped); it is dropped rather than trusted. Both are wall-clock readings of
// moments microseconds apart, so only a step between the two could part them (the stamp is then
// dropped and the sample falls back to the user-space T1, as for any untrusted stamp).
constexpr int64_t kTxStampSanityNs = 1'000'000'000;

// How far T4 - T1 (wall clock) may stray outside the monotonic time between building the probe and
// reading its reply before the sample is taken as spoilt by a clock step. The two clocks run at the same
// rate (NTP slews both); this covers reading them one after the other and a NIC clock's drift over a
// timeout (100 ppm of 2 s). A smaller step (or, forward, one smaller than this plus the time the reply
// waited to be read) goes unnoticed and moves the samples in flight by its size.
constexpr int64_t kClockStepToleranceNs = 1'000'000;

// T4 - T1 must lie in [0, received_at - built_at]: T1 was taken after the probe was built, T4 before the
// reply was read.
bool spans_clock_step(const dp::Timestamp& t1, const dp::Timestamp& t4, MonoNs built_at, MonoNs received_at) {
  const int64_t wall_elapsed = t4.ns - t1.ns;
  const int64_t mono_elapsed = received_at - built_at;
  return wall_elapsed < -kClockStepToleranceNs || wall_elapsed > mono_elapsed + kClockStepToleranceNs;
}

constexpr uint32_t kDefaultHistory = 1 << 12;
constexpr uint32_t kMinHistory = 64;

size_t history_size(uint32_t asked) {
  return std::bit_ceil(std::max(asked == 0 ? kDefaultHistory : asked, kMinHistory));
}
}  // namespace

uint32_t history_for(int64_t interval_ns, int64_t timeout_ns) {
  const int64_t probes = 16 * (timeout_ns / std::max<int64_t>(interval_ns, 1) + 1);
  return static_cast<uint32_t>(std::clamp<int64_t>(probes, 256, kDefaultHistory));
}

SessionSender::SessionSender(SenderOptions options, SocketAddress reflector)
    : options_(std::move(options)),
      reflector_(reflector),
      packet_size_(options_.packet_size != 0 ? options_.packet_size
                                             : static_cast<uint32_t>(base_length(options_.mode))),
      history_seq_(history_size(options_.history), 0),
      history_state_(history_seq_.size(), SeqState::kUnknown) {}

Result<dp::TxPacket> SessionSender::build_probe(std::span<uint8_t> buffer, const Now& now, const ClockState& clock) {
  if (buffer.size() < packet_size_) return make_error("probe buffer smaller than the packet size");
  const ErrorEstimate local_error = ErrorEstimate::from_clock(clock, options_.format);
  tai_offset_s_ = clock.tai_offset_s;
  TestPacket fields;
  fields.seq = next_seq_;
  fields.timestamp = encode_timestamp(now.wall, options_.format, clock.tai_offset_s);
  fields.error_estimate = local_error.encode();
  fields.ssid = options_.ssid;
  auto written = encode_test_packet(fields, options_.mode, options_.key.get(), buffer.first(packet_size_));
  if (!written) return written.error();

  InFlight probe;
  probe.seq = next_seq_;
  probe.built_at = now.mono;
  probe.deadline = now.mono + options_.timeout_ns;
  probe.t1 = dp::Timestamp{now.wall, dp::TimestampSource::kUser};
  probe.local_error = local_error;
  pending_ = probe;

  dp::TxPacket packet;
  packet.data = buffer.data();
  packet.length = packet_size_;
  packet.destination = reflector_;
  return packet;
}

void SessionSender::on_sent(const dp::TxPacket& sent) {
  if (!pending_) return;
  InFlight probe = *pending_;
  pending_.reset();
  probe.sent = true;
  probe.tx_id = sent.tx_id;
  // The deadline stays as build_probe() set it: the probe leaves right after it is built.
  if (sent.sent_at.valid()) probe.t1 = sent.sent_at;
  seq_by_tx_id_[probe.tx_id] = probe.seq;
  in_flight_[probe.seq] = probe;
  ++next_seq_;
  ++counters_.sent;
}

void SessionSender::on_send_failed() {
  // The sequence number is consumed, as a sent-and-lost probe would; the reflector never saw it.
  pending_.reset();
  ++next_seq_;
  ++counters_.send_errors;
}

void SessionSender::on_tx_timestamp(const dp::TxTimestamp& stamp) {
  auto by_id = seq_by_tx_id_.find(stamp.tx_id);
  if (by_id == seq_by_tx_id_.end()) return;
  const uint32_t seq = by_id->second;
  seq_by_tx_id_.erase(by_id);
  auto it = in_flight_.find(seq);
  if (it == in_flight_.end()) return;
  InFlight& probe = it->second;
  if (std::llabs(stamp.ts.ns - probe.t1.ns) > kTxStampSanityNs) {
    ++counters_.tx_timestamp_mismatch;
    return;
  }
  ++counters_.tx_timestamps;
  probe.t1 = stamp.ts;
  if (probe.reply) {
    complete(probe, false);
    in_flight_.erase(it);
  }
}

void SessionSender::on_receive(const dp::RxPacket& packet, const Now& now) {
  if (!(packet.source == reflector_)) {
    ++counters_.invalid_source;
    ++counters_.invalid;
    return;
  }
  const auto decoded =
      decode_reflected_packet(std::span<const uint8_t>(packet.data, packet.length), options_.mode, options_.key.get());
  if (!decoded.ok || packet.truncated) {
    ++counters_.invalid;
    switch (packet.truncated ? ParseError::kTooLong : decoded.error) {
      case ParseError::kTooShort: ++counters_.invalid_too_short; break;
      case ParseError::kTooLong: ++counters_.invalid_too_long; break;
      case ParseError::kBadHmac: ++counters_.invalid_bad_hmac; break;
      case ParseError::kMalformedTlv: break;
    }
    return;
  }
  const ReflectedPacket& reply = decoded.parsed.packet;
  if (packet.length != packet_size_) {
    ++counters_.invalid;
    ++counters_.invalid_size_mismatch;
    return;
  }
  // A reflector without RFC 8972 (RFC 8762 only, TWAMP-Light) leaves the SSID field zero (MBZ).
  if (reply.ssid != options_.ssid && reply.ssid != 0) {
    ++counters_.invalid;
    ++counters_.invalid_wrong_session;
    return;
  }

  auto it = in_flight_.find(reply.sender_seq);
  if (it == in_flight_.end() || it->second.reply) {
    const SeqState state = (it != in_flight_.end()) ? SeqState::kAnswered : recall(reply.sender_seq);
    if (state == SeqState::kAnswered) {
      ++counters_.duplicates;
      events_.push_back({ProbeEvent::Kind::kDuplicate, reply.sender_seq, {}});
    } else if (state == SeqState::kLost) {
      ++counters_.late;
      events_.push_back({ProbeEvent::Kind::kLate, reply.sender_seq, {}});
    } else {
      // A well-formed reply to a probe we never sent (or forgot long ago): not ours to measure.
      ++counters_.unexpected;
      ++counters_.invalid;
    }
    return;
  }

  InFlight& probe = it->second;
  const ErrorEstimate reflector_error = ErrorEstimate::decode(reply.error_estimate);
  // T2 and T3 are in the reflector's format (its Z bit); the TAI offset is ours, the best we know.
  const int32_t tai = tai_offset_s_;
  Sample sample;
  sample.seq = reply.sender_seq;
  sample.reflector_seq = reply.seq;
  sample.length = packet.length;
  sample.t2 = decode_timestamp(reply.receive_timestamp, reflector_error.format, tai, now.wall);
  sample.t3 = decode_timestamp(reply.timestamp, reflector_error.format, tai, now.wall);
  sample.t4 = packet.rx.valid() ? packet.rx : dp::Timestamp{now.wall, dp::TimestampSource::kUser};
  sample.local_error = probe.local_error;
  sample.reflector_error = reflector_error;
  sample.reflector_ttl = reply.sender_ttl;
  sample.reply_ttl = packet.ttl;
  probe.reply = sample;
  probe.received_at = now.mono;
  probe.reply_deadline = now.mono + options_.tx_timestamp_grace_ns;

  if (!any_answered_ || reply.sender_seq > highest_answered_) {
    highest_answered_ = reply.sender_seq;
    any_answered_ = true;
  } else {
    ++counters_.reordered;
  }
  // With TX timestamps off (or already received) the sample is complete now; without TX timestamps the
  // send time is T1 by design, not a fallback.
  if (!options_.tx_timestamp_grace_ns || probe.t1.source != dp::TimestampSource::kUser) {
    complete(probe, options_.tx_timestamp_grace_ns != 0 && probe.t1.source == dp::TimestampSource::kUser);
    in_flight_.erase(it);
  }
}

void SessionSender::complete(InFlight& probe, bool used_fallback) {
  Sample sample = *probe.reply;
  sample.t1 = probe.t1;
  sample.clock_stepped = spans_clock_step(sample.t1, sample.t4, probe.built_at, probe.received_at);
  if (sample.clock_stepped) ++counters_.clock_stepped;
  if (used_fallback) ++counters_.t1_user_fallback;
  seq_by_tx_id_.erase(probe.tx_id);
  remember(probe.seq, SeqState::kAnswered);
  ++counters_.received;
  events_.push_back({ProbeEvent::Kind::kReply, probe.seq, sample});
}

void SessionSender::advance(MonoNs now) {
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    InFlight& probe = it->second;
    if (probe.reply && now >= probe.reply_deadline) {
      complete(probe, probe.t1.source == dp::TimestampSource::kUser);
      it = in_flight_.erase(it);
    } else if (!probe.reply && now >= probe.deadline) {
      seq_by_tx_id_.erase(probe.tx_id);
      remember(probe.seq, SeqState::kLost);
      ++counters_.lost;
      events_.push_back({ProbeEvent::Kind::kLost, probe.seq, {}});
      it = in_flight_.erase(it);
    } else {
      ++it;
    }
  }
}

MonoNs SessionSender::next_deadline() const {
  MonoNs next = std::numeric_limits<MonoNs>::max();
  for (const auto& [seq, probe] : in_flight_)
    next = std::min(next, probe.reply ? probe.reply_deadline : probe.deadline);
  return next;
}

std::vector<ProbeEvent> SessionSender::poll_events() {
  std::vector<ProbeEvent> out;
  take_events(out);
  return out;
}

size_t SessionSender::take_events(std::vector<ProbeEvent>& out) {
  const size_t first = out.size();
  out.insert(out.end(), events_.begin(), events_.end());
  events_.clear();
  // Replies are completed in arrival order, losses in table order: report in sequence order.
  std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                   [](const ProbeEvent& a, const ProbeEvent& b) { return a.seq < b.seq; });
  return out.size() - first;
}

void SessionSender::remember(uint32_t seq, SeqState state) {
  const size_t slot = seq & (history_seq_.size() - 1);
  history_seq_[slot] = seq;
  history_state_[slot] = state;
}

SessionSender::SeqState SessionSender::recall(uint32_t seq) const {
  const size_t slot = seq & (history_seq_.size() - 1);
  if (history_seq_[slot] != seq) return SeqState::kUnknown;
  return history_state_[slot];
}

}  // namespace hubprobe::stamp
