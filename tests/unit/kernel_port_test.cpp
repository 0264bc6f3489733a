// SPDX-License-Identifier: Apache-2.0
// The kernel-socket backend on the loopback interface (no privileges needed): batches, ancillary data
// and the kernel timestamps that make T1 and T4 independent of process wake-ups.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <climits>
#include <cstring>
#include <thread>
#include <vector>

#include "hubprobe/dataplane.h"
#include "hubprobe/kernel_port.h"
#include "hubprobe/socket_buffer.h"

namespace hubprobe::dp {
namespace {

std::unique_ptr<Port> open_loopback(bool tx_timestamps, int dscp = -1) {
  auto dataplane = make_dataplane("kernel");
  EXPECT_TRUE(dataplane.ok());
  PortOptions options;
  options.local = *SocketAddress::parse("127.0.0.1:0", 0);
  options.tx_timestamps = tx_timestamps;
  options.dscp = dscp;
  auto port = (*dataplane)->open_port(options);
  EXPECT_TRUE(port.ok()) << (port.ok() ? "" : port.error().message);
  return port.ok() ? std::move(port.value()) : nullptr;
}

RxPacket rx_buffer(uint8_t* data, uint32_t capacity) {
  RxPacket packet;
  packet.data = data;
  packet.capacity = capacity;
  return packet;
}

TxPacket tx_to(const uint8_t* data, uint32_t length, const SocketAddress& destination) {
  TxPacket packet;
  packet.data = data;
  packet.length = length;
  packet.destination = destination;
  return packet;
}

size_t receive_within(Port& port, std::span<RxPacket> rx, size_t want, int timeout_ms) {
  size_t got = 0;
  for (int waited = 0; got < want && waited < timeout_ms; waited += 10) {
    pollfd fd{port.poll_fd(), POLLIN, 0};
    poll(&fd, 1, 10);
    auto n = port.receive(rx.subspan(got));
    EXPECT_TRUE(n.ok());
    if (n.ok()) got += *n;
  }
  return got;
}

TEST(KernelPort, ReportsKernelStampsInTheRealtimeClockAndAPollFd) {
  auto sender = open_loopback(true);
  auto reflector = open_loopback(false);
  ASSERT_TRUE(sender && reflector);
  const PortCapabilities with = sender->capabilities();
  EXPECT_EQ(with.rx_source, TimestampSource::kKernelSoftware);
  EXPECT_EQ(with.tx_source, TimestampSource::kKernelSoftware);
  EXPECT_TRUE(with.tx_timestamps());
  EXPECT_EQ(with.t3_source, TimestampSource::kUser);
  EXPECT_EQ(with.wait, WaitKind::kPollFd);
  EXPECT_GE(sender->poll_fd(), 0);
  EXPECT_EQ(with.clock, &realtime_clock());
  const PortCapabilities without = reflector->capabilities();
  EXPECT_EQ(without.tx_source, TimestampSource::kNone);
  EXPECT_FALSE(without.tx_timestamps());
  EXPECT_EQ(without.rx_source, TimestampSource::kKernelSoftware);
}

TEST(KernelPort, TheRealtimeClockIsWallTimeWithNoConversionError) {
  const ClockDomain& clock = realtime_clock();
  const WallNs before = wall_now();
  const int64_t reading = clock.now();
  EXPECT_LE(before, reading);
  EXPECT_LE(reading, wall_now());
  EXPECT_EQ(clock.to_wall(reading), (WallStamp{reading, 0}));
  const Timestamp stamp{reading, TimestampSource::kKernelSoftware};
  EXPECT_EQ(to_wall(clock, stamp).ns, reading);
  EXPECT_EQ(to_wall(clock, stamp).source, TimestampSource::kKernelSoftware);
}

TEST(KernelPort, UnknownBackendIsAnError) {
  auto dataplane = make_dataplane("quantum");
  ASSERT_FALSE(dataplane.ok());
  EXPECT_NE(dataplane.error().message.find("quantum"), std::string::npos);
}

TEST(KernelPort, BatchWithKernelTimestampsAndAncillaryData) {
  auto sender = open_loopback(true, 46);
  auto receiver = open_loopback(false);
  ASSERT_TRUE(sender && receiver);
  EXPECT_NE(receiver->local_address().port(), 0);
  // The first socket that asks for RX timestamps switches them on for the whole kernel, through a
  // deferred work item: packets in the next moments may still arrive unstamped. Give it that moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));

  std::array<std::array<uint8_t, 44>, 3> payloads{};
  std::array<TxPacket, 3> batch{};
  for (size_t i = 0; i < batch.size(); ++i) {
    payloads[i].fill(static_cast<uint8_t>(i + 1));
    batch[i].data = payloads[i].data();
    batch[i].length = static_cast<uint32_t>(payloads[i].size());
    batch[i].destination = receiver->local_address();
  }
  const WallNs before = wall_now();
  auto sent = sender->send(batch);
  ASSERT_TRUE(sent.ok());
  ASSERT_EQ(*sent, 3u);
  EXPECT_EQ(batch[0].tx_id + 1, batch[1].tx_id);
  EXPECT_EQ(batch[1].tx_id + 1, batch[2].tx_id);
  EXPECT_EQ(batch[0].sent_at.source, TimestampSource::kUser);

  std::array<std::array<uint8_t, 2048>, 8> buffers{};
  std::array<RxPacket, 8> rx{};
  for (size_t i = 0; i < rx.size(); ++i) rx[i] = rx_buffer(buffers[i].data(), 2048);
  ASSERT_EQ(receive_within(*receiver, rx, 3, 2000), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rx[i].length, 44u);
    EXPECT_EQ(rx[i].data[0], i + 1);
    EXPECT_EQ(rx[i].source, sender->local_address());
    EXPECT_EQ(rx[i].destination.host(), "127.0.0.1");
    EXPECT_EQ(rx[i].destination.port(), receiver->local_address().port());
    EXPECT_EQ(rx[i].ttl, 64);
    EXPECT_EQ(rx[i].tos, 46 << 2);
    EXPECT_EQ(rx[i].rx.source, TimestampSource::kKernelSoftware);
    EXPECT_GE(rx[i].rx.ns, before);
    EXPECT_LE(rx[i].rx.ns, wall_now());
  }

  // One TX timestamp per packet, matched by id, taken after the user-space clock read.
  std::array<TxTimestamp, 8> stamps{};
  size_t collected = 0;
  for (int i = 0; i < 100 && collected < 3; ++i) {
    pollfd fd{sender->poll_fd(), 0, 0};
    poll(&fd, 1, 10);
    collected += sender->drain_tx_timestamps(std::span(stamps).subspan(collected));
  }
  ASSERT_EQ(collected, 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(stamps[i].tx_id, batch[i].tx_id);
    EXPECT_EQ(stamps[i].ts.source, TimestampSource::kKernelSoftware);
    EXPECT_GE(stamps[i].ts.ns, batch[i].sent_at.ns);
    EXPECT_LE(stamps[i].ts.ns, rx[i].rx.ns);
  }
  EXPECT_EQ(sender->counters().tx_timestamps, 3u);
}

TEST(KernelPort, TruncatedDatagramIsFlagged) {
  auto sender = open_loopback(false);
  auto receiver = open_loopback(false);
  ASSERT_TRUE(sender && receiver);
  std::array<uint8_t, 300> big{};
  std::array<TxPacket, 1> batch{};
  batch[0] = tx_to(big.data(), static_cast<uint32_t>(big.size()), receiver->local_address());
  ASSERT_EQ(*sender->send(batch), 1u);
  std::array<uint8_t, 100> small{};
  std::array<RxPacket, 1> rx{rx_buffer(small.data(), static_cast<uint32_t>(small.size()))};
  ASSERT_EQ(receive_within(*receiver, rx, 1, 2000), 1u);
  EXPECT_TRUE(rx[0].truncated);
  EXPECT_EQ(rx[0].length, 100u);
  EXPECT_EQ(receiver->counters().rx_truncated, 1u);
}

TEST(KernelPort, ReplyFromTheAddressAskedAndPerPacketTos) {
  auto a = open_loopback(false);
  auto b = open_loopback(false);
  ASSERT_TRUE(a && b);
  std::array<uint8_t, 44> payload{};
  std::array<TxPacket, 1> batch{};
  batch[0] = tx_to(payload.data(), 44, a->local_address());
  batch[0].source = *SocketAddress::parse("127.0.0.1:0", 0);
  batch[0].tos = 0xb8;
  ASSERT_EQ(*b->send(batch), 1u);
  std::array<uint8_t, 128> buffer{};
  std::array<RxPacket, 1> rx{rx_buffer(buffer.data(), 128)};
  ASSERT_EQ(receive_within(*a, rx, 1, 2000), 1u);
  EXPECT_EQ(rx[0].tos, 0xb8);
  EXPECT_EQ(rx[0].source, b->local_address());
}

TEST(KernelPort, BindErrorsAreValuesWithAReason) {
  auto first = open_loopback(false);
  ASSERT_TRUE(first);
  auto dataplane = make_dataplane("kernel");
  PortOptions options;
  options.local = first->local_address();
  auto in_use = (*dataplane)->open_port(options);
  ASSERT_FALSE(in_use.ok());
  EXPECT_EQ(in_use.error().code, EADDRINUSE);
  EXPECT_NE(in_use.error().message.find("another process holds the port"), std::string::npos);

  options.local.set_port(0);
  options.device = "hp-no-such-if";
  auto port = (*dataplane)->open_port(options);
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.error().message.find("unknown interface"), std::string::npos);
  PortOptions bad_dscp;
  bad_dscp.local = *SocketAddress::parse("127.0.0.1:0", 0);
  bad_dscp.dscp = 64;
  EXPECT_FALSE((*dataplane)->open_port(bad_dscp).ok());
}

int receive_buffer_of(const Port& port) {
  int size = 0;
  socklen_t length = sizeof(size);
  EXPECT_EQ(getsockopt(port.poll_fd(), SOL_SOCKET, SO_RCVBUF, &size, &length), 0);
  return size;
}

// [dataplane.kernel] receive_buffer reaches every port the backend opens: getsockopt reports twice the
// size, as `ss -m` does (the kernel's bookkeeping, socket(7)). 64 KiB is below net.core.rmem_max everywhere.
TEST(KernelPort, ReceiveBufferReachesTheSocket) {
  DataplaneOptions options;
  options.kernel.receive_buffer = 64 << 10;
  std::vector<std::string> notices;
  options.notice = [&](const std::string& message) { notices.push_back(message); };
  auto dataplane = make_dataplane(options);
  ASSERT_TRUE(dataplane.ok());
  PortOptions port_options;
  port_options.local = *SocketAddress::parse("127.0.0.1:0", 0);
  auto port = (*dataplane)->open_port(port_options);
  ASSERT_TRUE(port.ok()) << port.error().message;
  EXPECT_EQ(receive_buffer_of(**port), 2 * (64 << 10));
  EXPECT_TRUE(notices.empty()) << notices.front();
}

TEST(SocketBuffer, CappedComparesWhatTheKernelKeptWithWhatWasAsked) {
  EXPECT_FALSE(socket_buffer_capped(2 << 20, 1 << 20));
  EXPECT_TRUE(socket_buffer_capped(425984, 1 << 20));        // net.core.rmem_max = 212992
  EXPECT_FALSE(socket_buffer_capped(INT_MAX - 1, 1 << 30));  // the kernel's own ceiling, INT_MAX / 2
}

// Loopback has no PTP hardware clock: hardware timestamps fall back to the kernel's software stamps, and the
// backend says why once per reason, however many ports it opens.
TEST(KernelPort, HardwareTimestampsFallBackToSoftwareAndSayWhyOnce) {
  std::vector<std::string> notices;
  KernelDataplane dataplane({.hardware_timestamps = true},
                            [&](const std::string& message) { notices.push_back(message); });
  PortOptions on_lo;
  on_lo.local = *SocketAddress::parse("127.0.0.1:0", 0);
  on_lo.device = "lo";
  auto a = dataplane.open_port(on_lo);
  auto b = dataplane.open_port(on_lo);
  ASSERT_TRUE(a.ok() && b.ok()) << (a.ok() ? b.error().message : a.error().message);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].rfind("hardware_timestamps: ", 0), 0u) << notices[0];
  EXPECT_NE(notices[0].find("lo has no hardware timestamping (no PTP hardware clock"), std::string::npos) << notices[0];
  EXPECT_NE(notices[0].find("kernel software timestamps instead"), std::string::npos) << notices[0];

  PortOptions unbound;
  unbound.local = *SocketAddress::parse("127.0.0.1:0", 0);
  ASSERT_TRUE(dataplane.open_port(unbound).ok());
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_NE(notices[1].find("bound to no interface"), std::string::npos) << notices[1];

  auto direct = KernelPort::open(on_lo, {.hardware_timestamps = true});
  ASSERT_TRUE(direct.ok());
  EXPECT_FALSE((*direct)->hardware_timestamps());

  // The samples say which stamps they got: software, never hardware. The kernel turns RX stamping on
  // for the whole host a moment after the first socket asks (a deferred static key), so in a fresh
  // process on a host where no socket had asked yet, the first datagrams may come without any stamp.
  const std::array<uint8_t, 44> payload{};
  TimestampSource source = TimestampSource::kNone;
  for (int attempt = 0; attempt < 20 && source == TimestampSource::kNone; ++attempt) {
    std::array<TxPacket, 1> batch = {tx_to(payload.data(), payload.size(), (*b)->local_address())};
    ASSERT_EQ((*a)->send(batch).value(), 1u);
    std::array<uint8_t, 64> buffer{};
    std::array<RxPacket, 1> rx = {rx_buffer(buffer.data(), buffer.size())};
    ASSERT_EQ(receive_within(**b, rx, 1, 2000), 1u);
    source = rx[0].rx.source;
    if (source == TimestampSource::kNone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(source, TimestampSource::kKernelSoftware);
}

}  // namespace
}  // namespace hubprobe::dp
