// SPDX-License-Identifier: Apache-2.0
// The one dataplane interface. Every backend (kernel sockets now; XDP and DPDK later) moves STAMP
// datagrams in batches and says where each timestamp was taken; the STAMP engines above it are shared.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "hubprobe/net.h"
#include "hubprobe/packet.h"
#include "hubprobe/result.h"

namespace hubprobe::dp {

/// How a port is pinned to a path (docs/design.md "Dataplanes").
struct PortOptions {
  SocketAddress local;        ///< bind address and port; port 0 = ephemeral
  std::string device;         ///< SO_BINDTODEVICE, empty = any
  uint32_t fwmark = 0;        ///< SO_MARK, 0 = none
  int dscp = -1;              ///< DSCP 0..63 for every packet, -1 = leave the default
  bool tx_timestamps = true;  ///< request TX timestamps (sender ports)
  bool reuse_port = false;
};

/// Settings of the kernel backend ([dataplane.kernel]), applied to every port it opens.
struct KernelOptions {
  /// SO_RCVBUF in octets, forced past net.core.rmem_max where the process may (socket_buffer.h); 0 = the
  /// kernel's default (net.core.rmem_default).
  int receive_buffer = 0;
  /// NIC hardware timestamps (SIOCSHWTSTAMP) on ports bound to an interface that has a PTP hardware
  /// clock; every other port keeps kernel software timestamps, and each sample says which it got.
  bool hardware_timestamps = false;
};

/// What make_dataplane() builds.
struct DataplaneOptions {
  std::string backend = "kernel";
  KernelOptions kernel;
  /// Told, once per distinct message, what the backend could not apply as asked and why (a setting
  /// named as in KernelOptions, e.g. "hardware_timestamps: ..."). May be called from any thread that
  /// opens ports. Empty = not told.
  std::function<void(const std::string& message)> notice;
};

/// Per-port counters. Written by the owning thread only; read for metrics.
struct PortCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_truncated = 0;
  uint64_t rx_errors = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_errors = 0;
  uint64_t tx_timestamps = 0;
  uint64_t rx_without_timestamp = 0;
};

/// A bound endpoint. Not thread-safe: one owner thread drives it.
class Port {
 public:
  virtual ~Port() = default;
  Port() = default;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  /// Sends a batch; returns how many left. A packet that fails (a firewall's EPERM, an unreachable
  /// destination) gets its `error` set and the rest of the batch still goes; when the socket is full, the
  /// packets from there on get EAGAIN. Never blocks.
  virtual Result<size_t> send(std::span<TxPacket> batch) = 0;
  /// Receives up to batch.size() datagrams without blocking; 0 when none are waiting.
  virtual Result<size_t> receive(std::span<RxPacket> batch) = 0;
  /// Collects TX timestamps that have arrived since the last call.
  virtual size_t drain_tx_timestamps(std::span<TxTimestamp> out) = 0;
  /// A file descriptor that becomes readable when receive() or drain_tx_timestamps() has work
  /// (POLLIN for data, POLLERR for TX timestamps); -1 for busy-polled backends.
  virtual int poll_fd() const = 0;
  virtual SocketAddress local_address() const = 0;
  virtual const PortCounters& counters() const = 0;
};

/// A backend. Opening ports is a start-up action; the ports then run without the backend object.
class Dataplane {
 public:
  virtual ~Dataplane() = default;
  virtual std::string_view name() const = 0;
  virtual Result<std::unique_ptr<Port>> open_port(const PortOptions& options) = 0;
};

/// The backends this build knows: "kernel".
Result<std::unique_ptr<Dataplane>> make_dataplane(const DataplaneOptions& options);
/// The backend with its default settings.
Result<std::unique_ptr<Dataplane>> make_dataplane(std::string_view backend);

}  // namespace hubprobe::dp
