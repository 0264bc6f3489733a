// SPDX-License-Identifier: Apache-2.0
// The `dpdk` backend: one poll-mode port (a PCI NIC or a vdev) that owns its addresses. Its ports are UDP
// endpoints on that one NIC queue, told apart by family and UDP port; receive() on any of them takes one
// RX burst for all (stamped with the TSC as the burst returns), answers ARP, neighbour solicitations and
// echo requests itself, and queues each datagram for its endpoint; send() builds the frames, resolves the
// next hop and stamps the TSC just before the TX burst. Busy-polled: one thread drives every endpoint
// (the agent's loop, pinned to the lcore). Not thread-safe: open endpoints from the driving thread or
// under the lock it takes (docs/architecture.md "The dpdk backend").
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "hubprobe/dataplane.h"

namespace hubprobe::dpdk {

class DpdkDataplane final : public dp::Dataplane {
 public:
  /// Starts the EAL (once per process; a second call in the same process fails with the reason), probes
  /// the port and starts it. Errors in plain words: no hugepages, port not found, permission, a prefix in use.
  static Result<std::unique_ptr<DpdkDataplane>> open(const dp::DpdkOptions& options,
                                                     std::function<void(const std::string&)> notice = {});
  ~DpdkDataplane() override;

  std::string_view name() const override { return "dpdk"; }
  std::vector<dp::Attachment> attachments() const override;
  std::vector<dp::LinkCounter> link_counters() const override;
  /// An endpoint: `local` must be a wildcard or one of the port's addresses; port 0 = an ephemeral one.
  /// device and fwmark mean nothing here (EINVAL); dscp applies to what it sends.
  Result<std::unique_ptr<dp::Port>> open_port(const dp::PortOptions& options) override;

  struct Device;

 private:
  explicit DpdkDataplane(std::shared_ptr<Device> device);
  std::shared_ptr<Device> device_;  ///< shared with the endpoints, which may outlive the Dataplane
};

}  // namespace hubprobe::dpdk
