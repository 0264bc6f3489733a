// SPDX-License-Identifier: Apache-2.0
// The STAMP engines over scripted ports, end to end: a probe leaves one scripted port, is delivered to a
// second (the reflector's, in another fake clock), is answered by SessionReflector, comes back and is
// completed by SessionSender. Every stamp goes through its port's clock domain, and the sample must be the
// one the same timeline gives the engines on exact wall-clock timestamps.
#include <gtest/gtest.h>

#include <array>
#include <optional>

#include "hubprobe/scripted_port.h"
#include "hubprobe/session_reflector.h"
#include "hubprobe/session_sender.h"

namespace hubprobe {
namespace {

constexpr WallNs kBase = 1'764'000'000'000'000'000;  // November 2025, in ns since 1970
constexpr WallNs kUs = 1'000;

SocketAddress address(const char* text) { return *SocketAddress::parse(text, 862); }

// One probe's timeline, in wall time: sent, at the reflector (T2), polled there, answered (T3), back
// (T4), polled here.
struct Timeline {
  WallNs send = kBase;
  WallNs t2 = kBase + 10 * kUs;
  WallNs reflector_poll = kBase + 12 * kUs;
  WallNs t3 = kBase + 50 * kUs;
  WallNs t4 = kBase + 60 * kUs;
  WallNs sender_poll = kBase + 70 * kUs;
  int request_ttl = 64;
  int reply_ttl = 61;
};

const SocketAddress kSender = address("198.18.0.1:40000");
const SocketAddress kReflector = address("198.18.0.2:862");
const ClockState kClock{true, 1e-6, 37};

stamp::SenderOptions sender_options(bool tx_timestamps) {
  stamp::SenderOptions options;
  options.ssid = 0x1234;
  // Without TX stamps the send time is T1: no reason to wait for a stamp that never comes.
  options.tx_timestamp_grace_ns = tx_timestamps ? options.tx_timestamp_grace_ns : 0;
  return options;
}

stamp::ReflectorOptions reflector_options() {
  stamp::ReflectorOptions options;
  options.stateful = true;
  return options;
}

std::optional<stamp::Sample> only_reply(stamp::SessionSender& sender) {
  const auto events = sender.poll_events();
  if (events.size() != 1 || events[0].kind != stamp::ProbeEvent::Kind::kReply) return std::nullopt;
  return events[0].sample;
}

// The engines' time: the test's timeline has no clock step, so one value serves as wall and monotonic time.
Now both(WallNs t) { return Now{t, t}; }

dp::RxPacket rx_buffer(std::span<uint8_t> buffer, uint32_t length = 0) {
  dp::RxPacket packet;
  packet.data = buffer.data();
  packet.capacity = static_cast<uint32_t>(buffer.size());
  packet.length = length;
  return packet;
}

// The engines alone, handed exact wall-clock stamps.
std::optional<stamp::Sample> on_exact_timestamps(const Timeline& at) {
  stamp::SessionSender sender(sender_options(false), kReflector);
  stamp::SessionReflector reflector(reflector_options());
  std::array<uint8_t, 256> probe{}, reply{};
  auto packet = sender.build_probe(probe, both(at.send), kClock);
  if (!packet) return std::nullopt;
  packet->sent_at = {at.send, dp::TimestampSource::kUser};
  sender.on_sent(*packet);

  dp::RxPacket request = rx_buffer(probe, packet->length);
  request.source = kSender;
  request.destination = kReflector;
  request.ttl = at.request_ttl;
  request.rx = {at.t2, dp::TimestampSource::kHardware};
  dp::TxPacket answer;
  if (!reflector.reflect_at(request, reply, kClock, both(at.t3), answer)) return std::nullopt;

  dp::RxPacket back = rx_buffer(reply, answer.length);
  back.source = kReflector;
  back.ttl = at.reply_ttl;
  back.rx = {at.t4, dp::TimestampSource::kHardware};
  sender.on_receive(back, both(at.sender_poll));
  return only_reply(sender);
}

// What `from` sent, delivered to `to` at wall time `arrival`.
void carry(dp::ScriptedPort& from, dp::ScriptedPort& to, WallNs arrival, int ttl) {
  for (const dp::SentPacket& sent : from.take_sent()) {
    EXPECT_EQ(sent.destination, to.local_address());
    dp::ScriptedPacket packet;
    packet.data = sent.data;
    packet.source = from.local_address();
    packet.destination = sent.destination;
    packet.arrival = to.clock().at_wall(arrival);
    packet.ttl = ttl;
    packet.tos = sent.tos;
    to.deliver(std::move(packet));
  }
}

WallNs wall_now_of(const dp::ClockDomain& clock) { return clock.to_wall(clock.now()).ns; }

// Receives the one datagram waiting at `port`, its RX stamp converted to wall time.
std::optional<dp::RxPacket> receive_one(dp::Port& port, std::span<uint8_t> buffer) {
  std::array<dp::RxPacket, 1> rx{rx_buffer(buffer)};
  auto received = port.receive(rx);
  if (!received || *received != 1) return std::nullopt;
  rx[0].rx = dp::to_wall(*port.capabilities().clock, rx[0].rx);
  return rx[0];
}

// The same engines, each behind a scripted port with a clock of its own.
std::optional<stamp::Sample> through_scripted_ports(const Timeline& at) {
  dp::ScriptedPort sender_port(kSender, dp::ScriptedClock(kBase - 7'000'000, 100));
  dp::ScriptedPort reflector_port(kReflector, dp::ScriptedClock(kBase + 42'000'000'000, 300));
  const dp::ClockDomain& sender_clock = *sender_port.capabilities().clock;
  const dp::ClockDomain& reflector_clock = *reflector_port.capabilities().clock;
  stamp::SessionSender sender(sender_options(sender_port.capabilities().tx_timestamps()), kReflector);
  stamp::SessionReflector reflector(reflector_options());
  std::array<uint8_t, 256> probe{}, request_buffer{}, reply{}, reply_buffer{};

  sender_port.clock().set(sender_port.clock().at_wall(at.send));
  auto packet = sender.build_probe(probe, both(wall_now_of(sender_clock)), kClock);
  if (!packet) return std::nullopt;
  std::array<dp::TxPacket, 1> batch{*packet};
  if (!sender_port.send(batch).ok() || batch[0].error != 0) return std::nullopt;
  batch[0].sent_at = dp::to_wall(sender_clock, batch[0].sent_at);
  sender.on_sent(batch[0]);
  carry(sender_port, reflector_port, at.t2, at.request_ttl);

  reflector_port.clock().set(reflector_port.clock().at_wall(at.reflector_poll));
  auto request = receive_one(reflector_port, request_buffer);
  if (!request) return std::nullopt;
  reflector_port.clock().set(reflector_port.clock().at_wall(at.t3));
  std::array<dp::TxPacket, 1> answer{};
  if (!reflector.reflect(
          *request, reply, kClock, [&] { return both(wall_now_of(reflector_clock)); }, answer[0])) {
    return std::nullopt;
  }
  if (!reflector_port.send(answer).ok() || answer[0].error != 0) return std::nullopt;
  carry(reflector_port, sender_port, at.t4, at.reply_ttl);

  sender_port.clock().set(sender_port.clock().at_wall(at.sender_poll));
  auto back = receive_one(sender_port, reply_buffer);
  if (!back) return std::nullopt;
  sender.on_receive(*back, both(wall_now_of(sender_clock)));
  return only_reply(sender);
}

TEST(ScriptedRoundTrip, EnginesOverScriptedPortsGiveTheSampleOfExactTimestamps) {
  const Timeline at;
  const auto exact = on_exact_timestamps(at);
  const auto scripted = through_scripted_ports(at);
  ASSERT_TRUE(exact);
  ASSERT_TRUE(scripted);

  EXPECT_EQ(scripted->seq, exact->seq);
  EXPECT_EQ(scripted->reflector_seq, exact->reflector_seq);
  EXPECT_EQ(scripted->length, exact->length);
  EXPECT_EQ(scripted->t1.ns, exact->t1.ns);
  EXPECT_EQ(scripted->t1.source, exact->t1.source);
  EXPECT_EQ(scripted->t2, exact->t2);
  EXPECT_EQ(scripted->t3, exact->t3);
  EXPECT_EQ(scripted->t4.ns, exact->t4.ns);
  EXPECT_EQ(scripted->t4.source, exact->t4.source);
  EXPECT_EQ(scripted->local_error.encode(), exact->local_error.encode());
  EXPECT_EQ(scripted->reflector_error.encode(), exact->reflector_error.encode());
  EXPECT_EQ(scripted->reflector_ttl, exact->reflector_ttl);
  EXPECT_EQ(scripted->reply_ttl, exact->reply_ttl);

  // And both are the timeline: T1 and T4 exact, T2 and T3 within the NTP format's rounding.
  EXPECT_EQ(scripted->t1.ns, at.send);
  EXPECT_EQ(scripted->t1.source, dp::TimestampSource::kUser);  // no TX stamps: T1 is the send time
  EXPECT_EQ(scripted->t4.ns, at.t4);
  EXPECT_EQ(scripted->t4.source, dp::TimestampSource::kHardware);
  EXPECT_NEAR(static_cast<double>(scripted->rtt_ns()), 20'000.0, 2.0);
  EXPECT_NEAR(static_cast<double>(scripted->turnaround_ns()), 40'000.0, 2.0);
  EXPECT_NEAR(static_cast<double>(scripted->forward_ns()), 10'000.0, 2.0);
  EXPECT_EQ(scripted->reflector_ttl, at.request_ttl);
  EXPECT_EQ(scripted->reply_ttl, at.reply_ttl);
}

}  // namespace
}  // namespace hubprobe
