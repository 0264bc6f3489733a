// SPDX-License-Identifier: Apache-2.0
// ReflectorService over the kernel backend on loopback: the reflector's ports give TX stamps, every
// reply is matched to its stamp, and once the send path is learnt each reply's T3 is its clock read plus
// that estimate (so the turnaround is at least the estimate) and its Error Estimate covers the residual.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <thread>

#include "hubprobe/reflector_service.h"
#include "hubprobe/session_sender.h"

namespace hubprobe {
namespace {

constexpr int kProbes = 24;

struct Loopback {
  Loopback() {
    dataplane = std::move(dp::make_dataplane("kernel").value());
    ReflectorServiceOptions options;
    options.listen = {*SocketAddress::parse("127.0.0.1:0", 0)};
    service = std::move(ReflectorService::open(*dataplane, options).value());
    dp::PortOptions port_options;
    port_options.local = *SocketAddress::parse("127.0.0.1:0", 0);
    sender_port = std::move(dataplane->open_port(port_options).value());
  }
  SocketAddress reflector() const { return service->local_addresses().at(0); }

  /// The kernel turns RX stamping on for the whole host a moment after a socket asks for it (and off a
  /// moment after the last one closes: earlier tests of this process did): waits until a datagram from the
  /// sender's port arrives stamped, on a port of its own.
  void wait_for_rx_stamps() {
    dp::PortOptions options;
    options.local = *SocketAddress::parse("127.0.0.1:0", 0);
    auto warm = std::move(dataplane->open_port(options).value());
    const std::array<uint8_t, 44> payload{};
    for (int attempt = 0; attempt < 200; ++attempt) {
      dp::TxPacket packet;
      packet.data = payload.data();
      packet.length = payload.size();
      packet.destination = warm->local_address();
      (void)sender_port->send(std::span(&packet, 1));
      std::array<uint8_t, 64> buffer{};
      std::array<dp::RxPacket, 1> rx{};
      rx[0].data = buffer.data();
      rx[0].capacity = buffer.size();
      for (int tries = 0; tries < 20; ++tries) {
        auto received = warm->receive(rx);
        if (received && *received == 1) {
          if (rx[0].rx.valid()) return;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  /// One probe out, answered, and its reply back through `sender` (the kernel delivers on loopback
  /// before send() returns, so every step finds its datagram waiting).
  std::optional<stamp::Sample> probe(stamp::SessionSender& sender) {
    std::array<uint8_t, 256> buffer{};
    auto request = sender.build_probe(buffer, read_now(), read_clock_state());
    if (!request.ok()) return std::nullopt;
    if (auto sent = sender_port->send(std::span(&*request, 1)); !sent || *sent != 1) return std::nullopt;
    sender.on_sent(*request);
    if (service->poll_once(mono_now()) != 1) return std::nullopt;
    std::array<uint8_t, 256> reply{};
    std::array<dp::RxPacket, 1> rx{};
    rx[0].data = reply.data();
    rx[0].capacity = reply.size();
    if (auto received = sender_port->receive(rx); !received || *received != 1) return std::nullopt;
    sender.on_receive(rx[0], read_now());
    for (const auto& event : sender.poll_events()) {
      if (event.kind == stamp::ProbeEvent::Kind::kReply) return event.sample;
    }
    return std::nullopt;
  }

  std::unique_ptr<dp::Dataplane> dataplane;
  std::unique_ptr<ReflectorService> service;
  std::unique_ptr<dp::Port> sender_port;
};

TEST(ReflectorServiceSendPath, RepliesAreMatchedToTheirTxStampsAndT3AddsTheLearntSendPath) {
  Loopback loopback;
  loopback.wait_for_rx_stamps();
  stamp::SenderOptions options;
  options.tx_timestamp_grace_ns = 0;  // T1 is not under test: the send time will do
  stamp::SessionSender sender(options, loopback.reflector());
  int judged = 0;
  for (int i = 0; i < kProbes; ++i) {
    // What the reflector knows before this request: its estimate goes into this reply.
    const SendPathCounters before = loopback.service->counters().send_path.at(0);
    const auto sample = loopback.probe(sender);
    ASSERT_TRUE(sample.has_value()) << "probe " << i;
    // T3 = a clock read after T2 + the estimate: the turnaround is at least the estimate. A request the
    // kernel handed up without an RX stamp has T2 = T3 (turnaround exactly 0: the reflector has no better
    // T2; counted as rx_without_timestamp), which says nothing about the estimate: in a fresh process the
    // kernel turns RX stamping on for the host a moment after the first socket asks (a deferred static key).
    if (sample->turnaround_ns() == 0) continue;
    ++judged;
    EXPECT_GE(sample->turnaround_ns(), before.latency_ns) << "probe " << i;
    EXPECT_GE(sample->reflector_error.seconds(), static_cast<double>(before.residual_ns) * 1e-9) << "probe " << i;
  }
  EXPECT_GE(judged, kProbes / 2) << "most requests carry a kernel RX stamp";
  loopback.service->poll_once(mono_now());  // the last reply's stamp, if it came after the step that sent it
  const SendPathCounters learnt = loopback.service->counters().send_path.at(0);
  EXPECT_EQ(learnt.listen, loopback.reflector());
  EXPECT_EQ(learnt.samples, static_cast<uint64_t>(kProbes)) << "every reply matched to its own TX stamp";
  EXPECT_EQ(learnt.unmatched, 0u);
  EXPECT_EQ(learnt.refused, 0u);
  EXPECT_GT(learnt.latency_ns, 0) << "the TX stamp is taken after the clock read";
  EXPECT_LT(learnt.latency_ns, stamp::SendPathEstimator::kMaxLatencyNs);
}

}  // namespace
}  // namespace hubprobe
