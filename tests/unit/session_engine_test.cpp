// SPDX-License-Identifier: Apache-2.0
// The sender and reflector engines together, without a kernel: packets pass through memory and every
// timestamp is chosen by the test, so RTT and turnaround are checked against hand-computed values.
#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "hubprobe/session_reflector.h"
#include "hubprobe/session_sender.h"

namespace hubprobe::stamp {
namespace {

constexpr WallNs kBase = 1'764'000'000'000'000'000;  // November 2025, in ns since 1970
constexpr WallNs kMs = 1'000'000;
constexpr WallNs kUs = 1'000;

// The same moment on both clocks: nothing steps the wall clock in these tests.
Now both(int64_t t) { return Now{t, t}; }

SocketAddress address(const char* text) { return *SocketAddress::parse(text, 862); }

struct Harness {
  explicit Harness(SenderOptions sender_options = {}, ReflectorOptions reflector_options = {})
      : sender(sender_options, reflector_address), reflector(reflector_options) {}

  SocketAddress sender_address = address("198.18.0.1:40000");
  SocketAddress reflector_address = address("198.18.0.2:862");
  SessionSender sender;
  SessionReflector reflector;
  ClockState clock{false, 0.5, 37};
  std::array<uint8_t, 2048> probe{};
  std::array<uint8_t, 2048> reply{};
  uint32_t next_tx_id = 100;

  // Sends a probe at user time t1_user; returns the tx_id the backend would give it.
  uint32_t send(WallNs t1_user) {
    auto packet = sender.build_probe(probe, both(t1_user), clock);
    EXPECT_TRUE(packet.ok());
    packet->tx_id = next_tx_id++;
    packet->sent_at = {t1_user, dp::TimestampSource::kUser};
    sender.on_sent(*packet);
    return packet->tx_id;
  }

  // The reflector receives the last probe at t2 and answers at t3; returns the reply as received at t4.
  std::optional<dp::RxPacket> reflect(WallNs t2, WallNs t3, WallNs t4) {
    dp::RxPacket request;
    request.data = probe.data();
    request.capacity = probe.size();
    request.length = sender.packet_size();
    request.source = sender_address;
    request.destination = reflector_address;
    request.ttl = 63;
    request.rx = {t2, dp::TimestampSource::kKernelSoftware};
    dp::TxPacket out;
    if (!reflector.reflect_at(request, reply, clock, both(t3), out)) return std::nullopt;
    EXPECT_EQ(out.destination, sender_address);
    EXPECT_EQ(out.source, reflector_address);
    EXPECT_EQ(out.length, std::max<uint32_t>(request.length, 44));
    dp::RxPacket received;
    received.data = reply.data();
    received.capacity = reply.size();
    received.length = out.length;
    received.source = reflector_address;
    received.rx = {t4, dp::TimestampSource::kKernelSoftware};
    return received;
  }
};

TEST(SessionEngines, RoundTripWithKernelTimestampsGivesExactRtt) {
  Harness h;
  const uint32_t tx_id = h.send(kBase);
  // Kernel TX stamp 7 µs after the user clock read; reflector holds the packet 40 µs; network 10 µs each way.
  const WallNs t1 = kBase + 7 * kUs;
  h.sender.on_tx_timestamp({tx_id, {t1, dp::TimestampSource::kKernelSoftware}});
  auto reply = h.reflect(t1 + 10 * kUs, t1 + 50 * kUs, t1 + 60 * kUs);
  ASSERT_TRUE(reply);
  h.sender.on_receive(*reply, both(t1 + 80 * kUs));
  const auto events = h.sender.poll_events();
  ASSERT_EQ(events.size(), 1u);
  ASSERT_EQ(events[0].kind, ProbeEvent::Kind::kReply);
  const Sample& s = events[0].sample;
  EXPECT_EQ(s.seq, 0u);
  EXPECT_EQ(s.t1.source, dp::TimestampSource::kKernelSoftware);
  EXPECT_EQ(s.t4.source, dp::TimestampSource::kKernelSoftware);
  // RTT = (T4 - T1) - (T3 - T2) = 60 - 40 = 20 µs; NTP fractions round to < 1 ns.
  EXPECT_NEAR(static_cast<double>(s.rtt_ns()), 20'000.0, 2.0);
  EXPECT_NEAR(static_cast<double>(s.turnaround_ns()), 40'000.0, 2.0);
  EXPECT_EQ(s.reflector_ttl, 63);
  EXPECT_FALSE(s.one_way_valid());  // clocks not synchronised in this harness
  EXPECT_EQ(h.sender.counters().received, 1u);
  EXPECT_EQ(h.sender.in_flight(), 0u);
}

TEST(SessionEngines, OneWayDelaysOnlyWhenBothClocksSynchronised) {
  Harness h;
  h.clock = ClockState{true, 2e-6, 37};
  const uint32_t tx_id = h.send(kBase);
  h.sender.on_tx_timestamp({tx_id, {kBase, dp::TimestampSource::kKernelSoftware}});
  auto reply = h.reflect(kBase + 3 * kMs, kBase + 3 * kMs + 20 * kUs, kBase + 5 * kMs + 20 * kUs);
  ASSERT_TRUE(reply);
  h.sender.on_receive(*reply, both(kBase + 6 * kMs));
  const auto events = h.sender.poll_events();
  ASSERT_EQ(events.size(), 1u);
  const Sample& s = events[0].sample;
  ASSERT_TRUE(s.one_way_valid());
  EXPECT_NEAR(static_cast<double>(s.forward_ns()), 3e6, 2.0);
  EXPECT_NEAR(static_cast<double>(s.backward_ns()), 2e6, 2.0);
  // Each clock claims >= 2 µs; the encoding rounds up, never down.
  EXPECT_GE(s.one_way_error_s(), 4e-6);
  EXPECT_LT(s.one_way_error_s(), 5e-6);
}

TEST(SessionEngines, ReplyBeforeTxTimestampWaitsThenFallsBackToUserTime) {
  SenderOptions options;
  options.tx_timestamp_grace_ns = 5 * kMs;
  Harness h(options);
  h.send(kBase);
  auto reply = h.reflect(kBase + 10 * kUs, kBase + 20 * kUs, kBase + 40 * kUs);
  ASSERT_TRUE(reply);
  h.sender.on_receive(*reply, both(kBase + 50 * kUs));
  EXPECT_TRUE(h.sender.poll_events().empty());  // waiting for the TX stamp
  h.sender.advance(kBase + 4 * kMs);
  EXPECT_TRUE(h.sender.poll_events().empty());
  h.sender.advance(kBase + 6 * kMs);
  const auto events = h.sender.poll_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].sample.t1.source, dp::TimestampSource::kUser);
  EXPECT_NEAR(static_cast<double>(events[0].sample.rtt_ns()), 30'000.0, 2.0);
  EXPECT_EQ(h.sender.counters().t1_user_fallback, 1u);
}

TEST(SessionEngines, TimeoutThenLateReplyThenDuplicate) {
  SenderOptions options;
  options.timeout_ns = 100 * kMs;
  Harness h(options);
  const uint32_t tx_id = h.send(kBase);
  h.sender.on_tx_timestamp({tx_id, {kBase + kUs, dp::TimestampSource::kKernelSoftware}});
  auto reply = h.reflect(kBase + 1 * kMs, kBase + 1 * kMs, kBase + 150 * kMs);
  ASSERT_TRUE(reply);
  h.sender.advance(kBase + 101 * kMs);
  auto events = h.sender.poll_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, ProbeEvent::Kind::kLost);
  h.sender.on_receive(*reply, both(kBase + 150 * kMs));
  events = h.sender.poll_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, ProbeEvent::Kind::kLate);
  EXPECT_EQ(h.sender.counters().late, 1u);
  EXPECT_EQ(h.sender.counters().lost, 1u);
  EXPECT_EQ(h.sender.counters().received, 0u);

  // A second probe answered twice: one sample, one duplicate.
  const uint32_t tx2 = h.send(kBase + 200 * kMs);
  h.sender.on_tx_timestamp({tx2, {kBase + 200 * kMs, dp::TimestampSource::kKernelSoftware}});
  auto reply2 = h.reflect(kBase + 201 * kMs, kBase + 201 * kMs, kBase + 202 * kMs);
  ASSERT_TRUE(reply2);
  h.sender.on_receive(*reply2, both(kBase + 202 * kMs));
  h.sender.on_receive(*reply2, both(kBase + 203 * kMs));
  events = h.sender.poll_events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, ProbeEvent::Kind::kReply);
  EXPECT_EQ(events[1].kind, ProbeEvent::Kind::kDuplicate);
  EXPECT_EQ(h.sender.counters().duplicates, 1u);
}

TEST(SessionEngines, TheHistoryTellsLateRepliesFromStrangersOverItsLength) {
  EXPECT_EQ(history_for(1000 * kMs, 1000 * kMs), 256u);   // the least
  EXPECT_EQ(history_for(10 * kMs, 60'000 * kMs), 4096u);  // the most
  for (const uint32_t history : {64u, 128u}) {
    SenderOptions options;
    options.timeout_ns = kMs;
    options.history = history;
    Harness h(options);
    h.send(kBase);
    auto reply = h.reflect(kBase + kMs / 4, kBase + kMs / 4, kBase + kMs / 2);
    ASSERT_TRUE(reply);
    std::vector<uint8_t> kept(h.reply.begin(), h.reply.begin() + reply->length);
    reply->data = kept.data();
    reply->capacity = static_cast<uint32_t>(kept.size());
    for (int i = 1; i <= 64; ++i) {  // each lost in turn; seq 64 takes the slot of seq 0 in 64 entries
      h.sender.advance(kBase + i * 10 * kMs);
      h.send(kBase + i * 10 * kMs);
    }
    h.sender.advance(kBase + 700 * kMs);
    EXPECT_EQ(h.sender.counters().lost, 65u);
    h.sender.on_receive(*reply, both(kBase + 701 * kMs));
    EXPECT_EQ(h.sender.counters().late, history == 64 ? 0u : 1u) << history;
    EXPECT_EQ(h.sender.counters().unexpected, history == 64 ? 1u : 0u) << history;
  }
}

TEST(SessionEngines, ForeignRepliesAreCountedAndDropped) {
  Harness h;
  const uint32_t tx_id = h.send(kBase);
  h.sender.on_tx_timestamp({tx_id, {kBase, dp::TimestampSource::kKernelSoftware}});
  auto reply = h.reflect(kBase + kUs, kBase + 2 * kUs, kBase + 3 * kUs);
  ASSERT_TRUE(reply);

  dp::RxPacket wrong_source = *reply;
  wrong_source.source = address("198.18.0.9:862");
  h.sender.on_receive(wrong_source, both(kBase));
  EXPECT_EQ(h.sender.counters().invalid_source, 1u);

  dp::RxPacket wrong_size = *reply;
  wrong_size.length = 60;  // a reflector that pads its answer
  h.sender.on_receive(wrong_size, both(kBase));
  EXPECT_EQ(h.sender.counters().invalid_size_mismatch, 1u);

  dp::RxPacket short_reply = *reply;
  short_reply.length = 20;
  h.sender.on_receive(short_reply, both(kBase));
  EXPECT_EQ(h.sender.counters().invalid_too_short, 1u);

  std::array<uint8_t, 2048> other_session = h.reply;
  other_session[15] ^= 0x01;  // SSID (octets 14-15)
  dp::RxPacket wrong_ssid = *reply;
  wrong_ssid.data = other_session.data();
  h.sender.on_receive(wrong_ssid, both(kBase));
  EXPECT_EQ(h.sender.counters().invalid_wrong_session, 1u);

  EXPECT_EQ(h.sender.counters().invalid, 4u);
  EXPECT_TRUE(h.sender.poll_events().empty());
  // The genuine reply still completes the probe.
  h.sender.on_receive(*reply, both(kBase + 3 * kUs));
  EXPECT_EQ(h.sender.poll_events().size(), 1u);
}

TEST(SessionEngines, ReorderedRepliesAreCounted) {
  Harness h;
  std::vector<dp::RxPacket> replies;
  std::vector<std::array<uint8_t, 2048>> storage(2);
  for (int i = 0; i < 2; ++i) {
    const WallNs t = kBase + i * kMs;
    h.sender.on_tx_timestamp({h.send(t), {t, dp::TimestampSource::kKernelSoftware}});
    auto reply = h.reflect(t + kUs, t + 2 * kUs, t + 3 * kUs);
    ASSERT_TRUE(reply);
    storage[static_cast<size_t>(i)] = h.reply;
    reply->data = storage[static_cast<size_t>(i)].data();
    replies.push_back(*reply);
  }
  h.sender.on_receive(replies[1], both(kBase + 2 * kMs));
  h.sender.on_receive(replies[0], both(kBase + 2 * kMs));
  EXPECT_EQ(h.sender.counters().reordered, 1u);
  EXPECT_EQ(h.sender.counters().received, 2u);
}

TEST(SessionEngines, AuthenticatedRoundTripAndWrongKey) {
  auto key = std::make_shared<const HmacKey>(HmacKey{std::vector<uint8_t>(32, 0x5a)});
  auto other = std::make_shared<const HmacKey>(HmacKey{std::vector<uint8_t>(32, 0xa5)});
  SenderOptions sender_options;
  sender_options.mode = Mode::kAuthenticated;
  sender_options.key = key;
  ReflectorOptions reflector_options;
  reflector_options.mode = Mode::kAuthenticated;
  reflector_options.key = key;
  Harness h(sender_options, reflector_options);
  EXPECT_EQ(h.sender.packet_size(), 112u);
  h.sender.on_tx_timestamp({h.send(kBase), {kBase, dp::TimestampSource::kKernelSoftware}});
  auto reply = h.reflect(kBase + kUs, kBase + 2 * kUs, kBase + 3 * kUs);
  ASSERT_TRUE(reply);
  h.sender.on_receive(*reply, both(kBase + 3 * kUs));
  EXPECT_EQ(h.sender.counters().received, 1u);

  // A reflector with another key refuses the probe and counts it.
  reflector_options.key = other;
  Harness wrong(sender_options, reflector_options);
  wrong.send(kBase);
  EXPECT_FALSE(wrong.reflect(kBase + kUs, kBase + 2 * kUs, kBase + 3 * kUs));
  EXPECT_EQ(wrong.reflector.counters().dropped_bad_hmac, 1u);
  EXPECT_EQ(wrong.reflector.counters().reflected, 0u);
}

TEST(SessionReflector, StatefulNumbersEachSessionFromZero) {
  ReflectorOptions options;
  options.stateful = true;
  SessionReflector reflector(options);
  const ClockState clock{};
  std::array<uint8_t, 44> request{};
  std::array<uint8_t, 44> reply{};
  TestPacket fields;
  auto reflect_from = [&](const char* source, uint32_t seq) {
    fields.seq = seq;
    EXPECT_TRUE(encode_test_packet(fields, Mode::kUnauthenticated, nullptr, request).ok());
    dp::RxPacket rx;
    rx.data = request.data();
    rx.capacity = request.size();
    rx.length = request.size();
    rx.source = address(source);
    rx.destination = address("198.18.0.2:862");
    dp::TxPacket tx;
    EXPECT_TRUE(reflector.reflect_at(rx, reply, clock, both(kBase), tx));
    auto decoded = decode_reflected_packet(reply, Mode::kUnauthenticated, nullptr);
    EXPECT_TRUE(decoded.ok);
    EXPECT_EQ(decoded.parsed.packet.sender_seq, seq);
    return decoded.parsed.packet.seq;
  };
  // Session A skips sender seq 1 (lost forward): the reflector's numbering shows the gap.
  EXPECT_EQ(reflect_from("198.18.0.1:4000", 0), 0u);
  EXPECT_EQ(reflect_from("198.18.0.1:4000", 2), 1u);
  // Session B (another source port) has its own count.
  EXPECT_EQ(reflect_from("198.18.0.1:4001", 7), 0u);
  EXPECT_EQ(reflect_from("198.18.0.1:4000", 3), 2u);
  EXPECT_EQ(reflector.counters().sessions_active, 2u);
  reflector.expire_sessions(kBase + options.session_idle_ns + 1);
  EXPECT_EQ(reflector.counters().sessions_active, 0u);
}

TEST(SessionReflector, StatelessEchoesAndBoundsItsTable) {
  ReflectorOptions options;
  options.stateful = true;
  options.max_sessions = 2;
  SessionReflector reflector(options);
  std::array<uint8_t, 44> request{};
  std::array<uint8_t, 44> reply{};
  ASSERT_TRUE(encode_test_packet(TestPacket{}, Mode::kUnauthenticated, nullptr, request).ok());
  for (int port = 5000; port < 5005; ++port) {
    dp::RxPacket rx;
    rx.data = request.data();
    rx.capacity = request.size();
    rx.length = request.size();
    rx.source = address(("198.18.0.1:" + std::to_string(port)).c_str());
    rx.destination = address("198.18.0.2:862");
    dp::TxPacket tx;
    EXPECT_TRUE(reflector.reflect_at(rx, reply, ClockState{}, both(kBase + port), tx));
  }
  EXPECT_EQ(reflector.counters().sessions_active, 2u);
  EXPECT_EQ(reflector.counters().sessions_evicted, 3u);

  SessionReflector stateless(ReflectorOptions{});
  TestPacket fields;
  fields.seq = 41;
  ASSERT_TRUE(encode_test_packet(fields, Mode::kUnauthenticated, nullptr, request).ok());
  dp::RxPacket rx;
  rx.data = request.data();
  rx.capacity = request.size();
  rx.length = request.size();
  rx.source = address("198.18.0.1:5000");
  dp::TxPacket tx;
  ASSERT_TRUE(stateless.reflect_at(rx, reply, ClockState{}, both(kBase), tx));
  EXPECT_EQ(decode_reflected_packet(reply, Mode::kUnauthenticated, nullptr).parsed.packet.seq, 41u);
}

TEST(SessionReflector, DropsAreCountedByReason) {
  SessionReflector reflector(ReflectorOptions{});
  std::array<uint8_t, 128> buffer{};
  std::array<uint8_t, 128> reply{};
  dp::TxPacket tx;
  dp::RxPacket rx;
  rx.data = buffer.data();
  rx.capacity = buffer.size();
  rx.source = address("198.18.0.1:5000");
  rx.length = 13;
  EXPECT_FALSE(reflector.reflect_at(rx, reply, ClockState{}, both(kBase), tx));
  rx.length = 0;
  EXPECT_FALSE(reflector.reflect_at(rx, reply, ClockState{}, both(kBase), tx));
  rx.length = 100;
  rx.truncated = true;
  EXPECT_FALSE(reflector.reflect_at(rx, reply, ClockState{}, both(kBase), tx));
  EXPECT_EQ(reflector.counters().dropped_too_short, 2u);
  EXPECT_EQ(reflector.counters().dropped_truncated, 1u);
  EXPECT_EQ(reflector.counters().dropped(), 3u);
  EXPECT_EQ(reflector.counters().reflected, 0u);
}

}  // namespace
}  // namespace hubprobe::stamp

namespace hubprobe::stamp {
namespace {

// A 44-octet reply to a 14-octet request would send 3.1 times the octets to whatever source the request
// claims: by default the reflector never answers with more than it received.
TEST(SessionReflector, ShortRequestIsDroppedByDefault) {
  SessionReflector reflector(ReflectorOptions{});
  std::array<uint8_t, 14> request = {0, 0, 0, 7, 0xe9, 0, 0, 0, 0x80, 0, 0, 0, 0x00, 0x01};
  std::array<uint8_t, 64> reply{};
  dp::RxPacket rx;
  rx.data = request.data();
  rx.capacity = request.size();
  rx.length = request.size();
  rx.source = *SocketAddress::parse("198.18.0.1:5000", 0);
  dp::TxPacket tx;
  EXPECT_FALSE(reflector.reflect_at(rx, reply, ClockState{}, both(kBase), tx)) << "a 44-octet reply to 14 octets";
  rx.length = 43;
  EXPECT_FALSE(reflector.reflect_at(rx, reply, ClockState{}, both(kBase), tx));
  EXPECT_EQ(reflector.counters().reflected, 0u);
  EXPECT_EQ(reflector.counters().dropped_short_request, 2u);
  EXPECT_EQ(reflector.counters().dropped(), 2u);
  EXPECT_EQ(reflector.counters().twamp_light_short, 0u);
}

TEST(SessionReflector, ShortTwampLightRequestGetsBaseSizeReplyWhenAsked) {
  ReflectorOptions options;
  options.answer_short_requests = true;
  SessionReflector reflector(options);
  // A TWAMP-Light sender's minimal packet: sequence 7, a timestamp, an error estimate (14 octets).
  std::array<uint8_t, 14> request = {0, 0, 0, 7, 0xe9, 0, 0, 0, 0x80, 0, 0, 0, 0x00, 0x01};
  std::array<uint8_t, 64> reply{};
  dp::RxPacket rx;
  rx.data = request.data();
  rx.capacity = request.size();
  rx.length = request.size();
  rx.source = *SocketAddress::parse("198.18.0.1:5000", 0);
  dp::TxPacket tx;
  ASSERT_TRUE(reflector.reflect_at(rx, reply, ClockState{}, both(kBase), tx));
  EXPECT_EQ(tx.length, 44u);
  const auto decoded = decode_reflected_packet(std::span(reply).first(44), Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok);
  EXPECT_EQ(decoded.parsed.packet.sender_seq, 7u);
  EXPECT_EQ(decoded.parsed.packet.sender_timestamp.seconds, 0xe9000000u);
  EXPECT_EQ(decoded.parsed.packet.sender_error_estimate, 1u);
  EXPECT_EQ(reflector.counters().twamp_light_short, 1u);
  // 13 octets cannot carry the error estimate: refused.
  rx.length = 13;
  EXPECT_FALSE(reflector.reflect_at(rx, reply, ClockState{}, both(kBase), tx));
  EXPECT_EQ(reflector.counters().dropped_too_short, 1u);
}

TEST(SessionEngines, ReplyWithZeroSsidFromAPlainRfc8762ReflectorIsAccepted) {
  SenderOptions options;
  options.ssid = 0x1234;
  Harness h(options);
  h.sender.on_tx_timestamp({h.send(kBase), {kBase, dp::TimestampSource::kKernelSoftware}});
  auto reply = h.reflect(kBase + kUs, kBase + 2 * kUs, kBase + 3 * kUs);
  ASSERT_TRUE(reply);
  h.reply[14] = 0;  // a reflector without RFC 8972 leaves the SSID octets zero
  h.reply[15] = 0;
  h.sender.on_receive(*reply, both(kBase + 3 * kUs));
  EXPECT_EQ(h.sender.counters().received, 1u);
  EXPECT_EQ(h.sender.counters().invalid_wrong_session, 0u);
}

}  // namespace
}  // namespace hubprobe::stamp
