// SPDX-License-Identifier: Apache-2.0
// The scripted backend: an in-memory, busy-polled port in a fake clock. What it reports, what it hands out
// and what it takes, exactly as the test scripts it.
#include "hubprobe/scripted_port.h"

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <vector>

namespace hubprobe::dp {
namespace {

constexpr WallNs kOffset = 1'764'000'000'000'000'000;  // the fake clock reads 0 at this wall time
constexpr int64_t kError = 250;

SocketAddress address(const char* text) { return *SocketAddress::parse(text, 862); }

ScriptedPort make_port() { return ScriptedPort(address("198.18.0.2:862"), ScriptedClock(kOffset, kError)); }

ScriptedPacket packet(std::vector<uint8_t> data, int64_t arrival) {
  ScriptedPacket scripted;
  scripted.data = std::move(data);
  scripted.source = address("198.18.0.1:40000");
  scripted.arrival = arrival;
  return scripted;
}

struct RxBuffers {
  std::array<std::array<uint8_t, 64>, 4> data{};
  std::array<RxPacket, 4> packets{};
  explicit RxBuffers(uint32_t capacity = 64) {
    for (size_t i = 0; i < packets.size(); ++i) {
      packets[i].data = data[i].data();
      packets[i].capacity = capacity;
    }
  }
};

TEST(ScriptedPort, ReportsABusyPolledPortInItsOwnClockWithoutTxStamps) {
  ScriptedPort port = make_port();
  EXPECT_EQ(port.poll_fd(), -1);
  const PortCapabilities capabilities = port.capabilities();
  EXPECT_EQ(capabilities.wait, WaitKind::kBusyPoll);
  EXPECT_FALSE(capabilities.tx_timestamps());
  EXPECT_EQ(capabilities.tx_source, TimestampSource::kNone);
  EXPECT_EQ(capabilities.rx_source, TimestampSource::kHardware);
  EXPECT_EQ(capabilities.t3_source, TimestampSource::kUser);
  ASSERT_EQ(capabilities.clock, &port.clock());
  EXPECT_EQ(port.local_address(), address("198.18.0.2:862"));

  port.clock().set(1'500);
  EXPECT_EQ(capabilities.clock->now(), 1'500);
  EXPECT_EQ(capabilities.clock->to_wall(1'500), (WallStamp{kOffset + 1'500, kError}));
  EXPECT_EQ(port.clock().at_wall(kOffset + 1'500), 1'500);
  EXPECT_EQ(to_wall(*capabilities.clock, Timestamp{1'500, TimestampSource::kHardware}).ns, kOffset + 1'500);
  EXPECT_FALSE(to_wall(*capabilities.clock, Timestamp{}).valid());
}

TEST(ScriptedPort, HandsOutScriptedPacketsOnceTheyArriveInArrivalOrder) {
  ScriptedPort port = make_port();
  ScriptedPacket late = packet({3, 3, 3}, 300);
  ScriptedPacket first = packet({1}, 100);
  first.ttl = 63;
  first.tos = 0xb8;
  ScriptedPacket second = packet({2, 2}, 100);
  second.destination = address("198.18.0.3:862");
  port.deliver(late);
  port.deliver(first);
  port.deliver(second);
  RxBuffers rx;

  port.clock().set(99);
  EXPECT_EQ(*port.receive(rx.packets), 0u);
  port.clock().set(100);
  ASSERT_EQ(*port.receive(rx.packets), 2u);
  EXPECT_EQ(rx.packets[0].length, 1u);
  EXPECT_EQ(rx.data[0][0], 1);
  EXPECT_EQ(rx.packets[0].source, address("198.18.0.1:40000"));
  EXPECT_EQ(rx.packets[0].destination, port.local_address());
  EXPECT_EQ(rx.packets[0].ttl, 63);
  EXPECT_EQ(rx.packets[0].tos, 0xb8);
  EXPECT_EQ(rx.packets[0].rx.ns, 100);
  EXPECT_EQ(rx.packets[0].rx.source, TimestampSource::kHardware);
  EXPECT_FALSE(rx.packets[0].truncated);
  EXPECT_EQ(rx.packets[1].length, 2u);
  EXPECT_EQ(rx.packets[1].destination, address("198.18.0.3:862"));
  EXPECT_EQ(port.queued(), 1u);

  port.clock().set(1'000);
  ASSERT_EQ(*port.receive(rx.packets), 1u);
  EXPECT_EQ(rx.packets[0].length, 3u);
  EXPECT_EQ(rx.packets[0].rx.ns, 300);  // its arrival, not when it was polled
  EXPECT_EQ(port.counters().rx_packets, 3u);
  EXPECT_EQ(port.queued(), 0u);
}

TEST(ScriptedPort, TruncatesToTheBufferAndCountsMissingStampsAndKeepsWhatDoesNotFit) {
  ScriptedPort port = make_port();
  port.deliver(packet(std::vector<uint8_t>(10, 7), 0));
  ScriptedPacket unstamped = packet({1}, 0);
  unstamped.stamped = false;
  port.deliver(unstamped);
  port.deliver(packet({2}, 0));
  RxBuffers rx(4);

  ASSERT_EQ(*port.receive(std::span(rx.packets).first(2)), 2u);
  EXPECT_TRUE(rx.packets[0].truncated);
  EXPECT_EQ(rx.packets[0].length, 4u);
  EXPECT_FALSE(rx.packets[1].rx.valid());
  EXPECT_EQ(port.counters().rx_truncated, 1u);
  EXPECT_EQ(port.counters().rx_without_timestamp, 1u);
  EXPECT_EQ(port.queued(), 1u);  // the batch was full: the third waits for the next call
  EXPECT_EQ(*port.receive(rx.packets), 1u);
}

TEST(ScriptedPort, SendRecordsWhatLeftAndAFullRingRefusesTheRest) {
  ScriptedPort port = make_port();
  port.clock().set(5'000);
  const std::array<uint8_t, 3> payload{9, 8, 7};
  std::array<TxPacket, 4> batch{};
  for (TxPacket& tx : batch) {
    tx.data = payload.data();
    tx.length = 3;
    tx.destination = address("198.18.0.1:40000");
  }
  batch[0].source = address("198.18.0.2:862");
  batch[0].tos = 0xb8;
  batch[1].destination = SocketAddress();  // no destination: this one fails, the rest still go
  port.set_send_capacity(2);

  EXPECT_EQ(*port.send(batch), 2u);
  EXPECT_EQ(batch[0].error, 0);
  EXPECT_EQ(batch[1].error, EDESTADDRREQ);
  EXPECT_EQ(batch[2].error, 0);
  EXPECT_EQ(batch[3].error, EAGAIN);
  EXPECT_EQ(batch[0].tx_id, 0u);
  EXPECT_EQ(batch[2].tx_id, 1u);
  EXPECT_EQ(batch[0].sent_at.ns, 5'000);
  EXPECT_EQ(batch[0].sent_at.source, TimestampSource::kUser);
  EXPECT_EQ(port.counters().tx_packets, 2u);
  EXPECT_EQ(port.counters().tx_errors, 2u);

  const std::vector<SentPacket> sent = port.take_sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].data, (std::vector<uint8_t>{9, 8, 7}));
  EXPECT_EQ(sent[0].destination, address("198.18.0.1:40000"));
  EXPECT_EQ(sent[0].source, address("198.18.0.2:862"));
  EXPECT_EQ(sent[0].tos, 0xb8);
  EXPECT_EQ(sent[0].sent_at, 5'000);
  EXPECT_EQ(sent[1].tx_id, 1u);
  EXPECT_TRUE(port.take_sent().empty());

  std::array<TxTimestamp, 4> stamps{};
  EXPECT_EQ(port.drain_tx_timestamps(stamps), 0u);
  EXPECT_EQ(port.counters().tx_timestamps, 0u);
}

}  // namespace
}  // namespace hubprobe::dp
