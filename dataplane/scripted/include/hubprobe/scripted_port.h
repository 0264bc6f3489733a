// SPDX-License-Identifier: Apache-2.0
// The `scripted` backend, for tests only: an in-memory port whose received packets, their timestamps and
// its clock come from the test. It is shaped like a busy-polled port in a clock of its own (a DPDK port
// with a NIC clock): poll_fd() is -1, no TX timestamps, every stamp in a fake clock offset from wall
// time. Tests run the STAMP engines and new backends' logic over it (docs/architecture.md).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <vector>

#include "hubprobe/dataplane.h"

namespace hubprobe::dp {

/// A clock that only the test moves. A reading plus `offset_ns` is wall time, known to within `error_ns`.
class ScriptedClock final : public ClockDomain {
 public:
  ScriptedClock(WallNs offset_ns, int64_t error_ns) : offset_ns_(offset_ns), error_ns_(error_ns) {}
  int64_t now() const override { return now_; }
  WallStamp to_wall(int64_t raw) const override { return {raw + offset_ns_, error_ns_}; }
  /// The reading at wall time `wall`: the inverse of to_wall(), to write a script on a wall timeline.
  int64_t at_wall(WallNs wall) const { return wall - offset_ns_; }
  void set(int64_t raw) { now_ = raw; }

 private:
  WallNs offset_ns_;
  int64_t error_ns_;
  int64_t now_ = 0;
};

/// One datagram of the script: what receive() hands out once the port's clock reaches `arrival`.
struct ScriptedPacket {
  std::vector<uint8_t> data;
  SocketAddress source;
  SocketAddress destination;  ///< the local address it was sent to; unset = the port's
  int64_t arrival = 0;        ///< reading of the port's clock when it arrived: its RX stamp
  bool stamped = true;        ///< false: it comes without an RX stamp
  int ttl = -1;
  int tos = -1;
};

/// What send() took: a copy of the packet, the key it got and the clock reading it left at.
struct SentPacket {
  std::vector<uint8_t> data;
  SocketAddress destination;
  SocketAddress source;
  int tos = -1;
  uint32_t tx_id = 0;
  int64_t sent_at = 0;
};

class ScriptedPort final : public Port {
 public:
  ScriptedPort(SocketAddress local, ScriptedClock clock) : local_(local), clock_(clock) {}

  // The script's side.
  /// Queues a datagram; receive() hands them out in arrival order (equal arrivals: in the order queued).
  void deliver(ScriptedPacket packet);
  /// How many more packets send() takes before it refuses the rest with EAGAIN, as a full TX ring does.
  void set_send_capacity(size_t packets) { send_capacity_ = packets; }
  /// Moves out what send() took since the last call.
  std::vector<SentPacket> take_sent();
  ScriptedClock& clock() { return clock_; }
  /// Datagrams queued that receive() has not handed out yet.
  size_t queued() const { return queue_.size(); }

  // The Port interface.
  /// Takes each packet (sent_at: the clock's reading, source kUser). A packet without a valid destination
  /// gets EDESTADDRREQ and the rest still go.
  Result<size_t> send(std::span<TxPacket> batch) override;
  /// Hands out the queued datagrams that have arrived by the clock's reading, RX stamp kHardware.
  Result<size_t> receive(std::span<RxPacket> batch) override;
  /// None: this port has no TX timestamps.
  size_t drain_tx_timestamps(std::span<TxTimestamp> out) override;
  int poll_fd() const override { return -1; }
  PortCapabilities capabilities() const override;
  SocketAddress local_address() const override { return local_; }
  const PortCounters& counters() const override { return counters_; }

 private:
  void receive_one(ScriptedPacket& scripted, RxPacket& packet);

  SocketAddress local_;
  ScriptedClock clock_;
  std::multimap<int64_t, ScriptedPacket> queue_;  ///< by arrival; equal keys keep their order
  std::vector<SentPacket> sent_;
  size_t send_capacity_ = std::numeric_limits<size_t>::max();
  uint32_t next_tx_id_ = 0;
  PortCounters counters_;
};

}  // namespace hubprobe::dp
