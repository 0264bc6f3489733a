// SPDX-License-Identifier: Apache-2.0
// What every dataplane backend moves and the STAMP engines consume: datagrams in batches, and timestamps
// that say where they were taken. Pure data; the Port interface that moves them is hubprobe/dataplane.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "hubprobe/clock.h"
#include "hubprobe/net.h"

namespace hubprobe::dp {

/// Where a timestamp was taken, from farthest to closest to the wire.
enum class TimestampSource : uint8_t {
  kNone,            ///< not available
  kUser,            ///< user-space clock read around the system call
  kKernelSoftware,  ///< kernel software stamp (SO_TIMESTAMPING software RX/TX)
  kXdp,             ///< taken by an XDP/TC program (bpf_ktime)
  kTsc,             ///< the CPU's time-stamp counter read by a poll-mode loop at RX burst / before TX burst
  kHardware,        ///< NIC hardware clock
};
const char* to_string(TimestampSource source);
/// How many TimestampSource values there are (kHardware is the last), for tables indexed by source.
inline constexpr size_t kTimestampSourceCount = static_cast<size_t>(TimestampSource::kHardware) + 1;

/// An Ethernet address, for backends that build their frames themselves (dpdk); unset elsewhere.
struct LinkAddress {
  std::array<uint8_t, 6> octets{};
  bool valid = false;
  bool operator==(const LinkAddress&) const = default;
};

struct Timestamp {
  WallNs ns = 0;  ///< a reading of the port's clock (dataplane.h ClockDomain): wall time on realtime ports
  TimestampSource source = TimestampSource::kNone;
  bool valid() const { return source != TimestampSource::kNone; }
};

/// A received datagram. `data`/`capacity` are provided by the caller; the backend fills the rest.
struct RxPacket {
  uint8_t* data = nullptr;
  uint32_t capacity = 0;
  uint32_t length = 0;
  bool truncated = false;     ///< the datagram was longer than capacity
  SocketAddress source;       ///< remote endpoint
  SocketAddress destination;  ///< local address the datagram was sent to (port = the port's)
  int ifindex = 0;
  int ttl = -1;             ///< IPv4 TTL / IPv6 hop limit, -1 when unknown
  int tos = -1;             ///< IPv4 TOS / IPv6 traffic class, -1 when unknown
  Timestamp rx;             ///< receive time, as close to the wire as the backend can
  LinkAddress link_source;  ///< the frame's source MAC, where the backend reads frames (dpdk)
};

/// A datagram to send. The backend fills `tx_id` (to match a later TX timestamp), `sent_at` (user clock
/// right before the system call) and `error` (0 when the packet left, else an errno value).
struct TxPacket {
  const uint8_t* data = nullptr;
  uint32_t length = 0;
  SocketAddress destination;
  SocketAddress source;  ///< optional local address (a reflector answers from the address asked)
  int tos = -1;          ///< per-packet TOS/traffic class, -1 = the port's setting
  /// The frame's destination MAC where the backend builds frames: a reply goes back the way its request
  /// came. Unset = the backend resolves the next hop.
  LinkAddress link_destination;
  uint32_t tx_id = 0;
  Timestamp sent_at;
  int error = 0;
};

/// A transmit timestamp delivered after the packet left (kernel error queue, NIC completion).
struct TxTimestamp {
  uint32_t tx_id = 0;
  Timestamp ts;
};

}  // namespace hubprobe::dp
