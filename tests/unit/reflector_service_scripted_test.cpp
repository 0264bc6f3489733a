// SPDX-License-Identifier: Apache-2.0
// ReflectorService::poll_once over a scripted port (busy-polled, in a clock of its own): a scripted
// request is answered with T2 (its RX stamp) and T3 (the port's clock) converted to wall time.
#include <gtest/gtest.h>

#include <array>

#include "hubprobe/reflector_service.h"
#include "hubprobe/session_sender.h"
#include "scripted_dataplane.h"

namespace hubprobe {
namespace {

constexpr WallNs kBase = 1'764'000'000'000'000'000;  // November 2025, in ns since 1970
constexpr WallNs kUs = 1'000;

const SocketAddress kSender = *SocketAddress::parse("198.18.0.1:40000", 862);
const SocketAddress kReflector = *SocketAddress::parse("198.18.0.2:862", 862);
const ClockState kClock{true, 1e-6, 37};

Now both(WallNs t) { return Now{t, t}; }

TEST(ReflectorServiceOverScriptedPort, PollOnceAnswersWithT2AndT3InThePortsClockAsWallTime) {
  // The reflector's clock reads 42 s behind wall time.
  test::ScriptedDataplane dataplane(dp::ScriptedClock(kBase + 42'000'000'000, 300), kReflector);
  ReflectorServiceOptions options;
  options.listen = {kReflector};
  options.reflector.format = TimestampFormat::kPtp;  // exact to the ns
  auto service = ReflectorService::open(dataplane, options);
  ASSERT_TRUE(service.ok());
  ASSERT_EQ(dataplane.ports.size(), 1u);
  dp::ScriptedPort& port = *dataplane.ports[0];
  ASSERT_EQ(port.capabilities().wait, dp::WaitKind::kBusyPoll);

  stamp::SenderOptions sender_options;
  sender_options.format = TimestampFormat::kPtp;
  sender_options.tx_timestamp_grace_ns = 0;
  stamp::SessionSender sender(sender_options, kReflector);
  std::array<uint8_t, 256> probe{};
  auto request = sender.build_probe(probe, both(kBase), kClock);
  ASSERT_TRUE(request.ok());
  request->sent_at = {kBase, dp::TimestampSource::kUser};
  sender.on_sent(*request);

  dp::ScriptedPacket scripted;
  scripted.data.assign(probe.begin(), probe.begin() + request->length);
  scripted.source = kSender;
  scripted.arrival = port.clock().at_wall(kBase + 10 * kUs);  // T2
  scripted.ttl = 63;
  port.deliver(std::move(scripted));

  port.clock().set(port.clock().at_wall(kBase));
  EXPECT_EQ((*service)->poll_once(kBase), 0u);               // the port's clock has not reached the arrival yet
  port.clock().set(port.clock().at_wall(kBase + 25 * kUs));  // T3: the clock when the reply is built
  EXPECT_EQ((*service)->poll_once(kBase + 25 * kUs), 1u);

  std::vector<dp::SentPacket> replies = port.take_sent();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].destination, kSender);
  std::vector<uint8_t> reply = replies[0].data;
  dp::RxPacket back;
  back.data = reply.data();
  back.capacity = back.length = static_cast<uint32_t>(reply.size());
  back.source = kReflector;
  back.rx = {kBase + 40 * kUs, dp::TimestampSource::kHardware};
  sender.on_receive(back, both(kBase + 40 * kUs));
  const auto events = sender.poll_events();
  ASSERT_EQ(events.size(), 1u);
  ASSERT_EQ(events[0].kind, stamp::ProbeEvent::Kind::kReply);
  EXPECT_EQ(events[0].sample.t2, kBase + 10 * kUs);
  EXPECT_EQ(events[0].sample.t3, kBase + 25 * kUs);
  EXPECT_EQ(events[0].sample.reflector_ttl, 63);
  EXPECT_EQ(events[0].sample.rtt_ns(), 25 * kUs);
  EXPECT_EQ((*service)->counters().engine.reflected, 1u);
}

TEST(ReflectorServiceOverScriptedPort, TheClockDomainsErrorBoundIsInTheErrorEstimate) {
  // A port clock known to within 50 ms only (a TSC long after its calibration, say).
  test::ScriptedDataplane dataplane(dp::ScriptedClock(0, 50'000'000), kReflector);
  ReflectorServiceOptions options;
  options.listen = {kReflector};
  options.read_clock = [] { return kClock; };  // the host clock synchronised to within 1 us
  auto service = ReflectorService::open(dataplane, options);
  ASSERT_TRUE(service.ok());
  dp::ScriptedPort& port = *dataplane.ports[0];
  stamp::SenderOptions sender_options;
  sender_options.tx_timestamp_grace_ns = 0;
  stamp::SessionSender sender(sender_options, kReflector);
  std::array<uint8_t, 256> probe{};
  auto request = sender.build_probe(probe, both(kBase), kClock);
  ASSERT_TRUE(request.ok());
  request->sent_at = {kBase, dp::TimestampSource::kUser};
  sender.on_sent(*request);
  dp::ScriptedPacket scripted;
  scripted.data.assign(probe.begin(), probe.begin() + request->length);
  scripted.source = kSender;
  scripted.arrival = kBase + 10 * kUs;
  port.deliver(std::move(scripted));
  port.clock().set(kBase + 20 * kUs);
  ASSERT_EQ((*service)->poll_once(kBase + 20 * kUs), 1u);
  std::vector<dp::SentPacket> replies = port.take_sent();
  ASSERT_EQ(replies.size(), 1u);
  dp::RxPacket back;
  back.data = replies[0].data.data();
  back.capacity = back.length = static_cast<uint32_t>(replies[0].data.size());
  back.source = kReflector;
  back.rx = {kBase + 30 * kUs, dp::TimestampSource::kHardware};
  sender.on_receive(back, both(kBase + 30 * kUs));
  const auto events = sender.poll_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_GE(events[0].sample.reflector_error.seconds(), 0.050);
  EXPECT_LT(events[0].sample.reflector_error.seconds(), 0.060);
}

}  // namespace
}  // namespace hubprobe
