// SPDX-License-Identifier: Apache-2.0
// The `kernel` backend: UDP sockets with SO_TIMESTAMPING. RX timestamps come with each datagram,
// TX timestamps from the socket error queue (matched by SOF_TIMESTAMPING_OPT_ID).
#pragma once

#include <sys/socket.h>

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "hubprobe/dataplane.h"

namespace hubprobe::dp {

class KernelPort final : public Port {
 public:
  static Result<std::unique_ptr<KernelPort>> open(const PortOptions& options, const KernelOptions& kernel = {});
  ~KernelPort() override;

  Result<size_t> send(std::span<TxPacket> batch) override;
  Result<size_t> receive(std::span<RxPacket> batch) override;
  size_t drain_tx_timestamps(std::span<TxTimestamp> out) override;
  int poll_fd() const override { return fd_; }
  /// Kernel software stamps, or the NIC's when hardware_timestamps(); TX stamps when asked; T3 read in user
  /// space; woken through poll_fd(); all read as CLOCK_REALTIME (a NIC's clock is expected to be kept on it
  /// with phc2sys, docs/configuration.md).
  PortCapabilities capabilities() const override;
  SocketAddress local_address() const override { return local_; }
  const PortCounters& counters() const override { return counters_; }

  /// Whether the NIC stamps this port's packets in hardware.
  bool hardware_timestamps() const { return hardware_; }
  /// The settings of KernelOptions this port did not get as asked, each with the reason.
  const std::vector<std::string>& notices() const { return notices_; }

 private:
  void prepare(size_t slot, TxPacket& packet);

  static constexpr size_t kBatch = 64;
  static constexpr size_t kControlSize = 256;

  void set_receive_buffer(int octets);
  /// The SO_TIMESTAMPING flags: software always, hardware when asked and the device can.
  unsigned timestamping_flags(const PortOptions& options, const KernelOptions& kernel);

  KernelPort(int fd, SocketAddress local, bool tx_timestamps, bool hardware)
      : fd_(fd), local_(local), tx_timestamps_(tx_timestamps), hardware_(hardware) {}

  int fd_ = -1;
  SocketAddress local_;
  bool tx_timestamps_ = false;
  bool hardware_ = false;
  std::vector<std::string> notices_;
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
  explicit KernelDataplane(KernelOptions options = {}, std::function<void(const std::string&)> notice = {})
      : options_(options), notice_(std::move(notice)) {}
  std::string_view name() const override { return "kernel"; }
  /// Opens a port with the backend's KernelOptions; passes each of its notices on once.
  Result<std::unique_ptr<Port>> open_port(const PortOptions& options) override;

 private:
  void tell_once(const std::string& message);

  KernelOptions options_;
  std::function<void(const std::string&)> notice_;
  std::mutex told_mutex_;
  std::set<std::string> told_;
};

}  // namespace hubprobe::dp
