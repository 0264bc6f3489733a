// SPDX-License-Identifier: Apache-2.0
// The `kernel` backend: UDP sockets with SO_TIMESTAMPING. RX timestamps come with each datagram,
// TX timestamps from the socket error queue (matched by SOF_TIMESTAMPING_OPT_ID).
#pragma once

#include <sys/socket.h>

#include <array>
#include <memory>

#include "hubprobe/dataplane.h"

namespace hubprobe::dp {

class KernelPort final : public Port {
 public:
  static Result<std::unique_ptr<KernelPort>> open(const PortOptions& options);
  ~KernelPort() override;

  Result<size_t> send(std::span<TxPacket> batch) override;
  Result<size_t> receive(std::span<RxPacket> batch) override;
  size_t drain_tx_timestamps(std::span<TxTimestamp> out) override;
  int poll_fd() const override { return fd_; }
  SocketAddress local_address() const override { return local_; }
  const PortCounters& counters() const override { return counters_; }

  /// Whether the NIC stamps this port's packets in hardware.
  bool hardware_timestamps() const { return hardware_; }

 private:
  static constexpr size_t kBatch = 64;
  static constexpr size_t kControlSize = 256;

  KernelPort(int fd, SocketAddress local, bool tx_timestamps, bool hardware)
      : fd_(fd), local_(local), tx_timestamps_(tx_timestamps), hardware_(hardware) {}

  int fd_ = -1;
  SocketAddress local_;
  bool tx_timestamps_ = false;
  bool hardware_ = false;
  bool explicit_tx_id_ = false;  ///< TX timestamp keys set per packet (SCM_TS_OPT_ID)
  uint32_t next_tx_id_ = 0;      ///< the next key: ours, or a mirror of the kernel's per-socket counter
  PortCounters counters_;
  // Scratch space for one batch, reused: no allocation per packet.
  std::array<mmsghdr, kBatch> headers_{};
  std::array<iovec, kBatch> iovecs_{};
  std::array<sockaddr_storage, kBatch> names_{};
  std::array<std::array<char, kControlSize>, kBatch> controls_{};
};

class KernelDataplane final : public Dataplane {
 public:
  std::string_view name() const override { return "kernel"; }
  Result<std::unique_ptr<Port>> open_port(const PortOptions& options) override;
};

}  // namespace hubprobe::dp
