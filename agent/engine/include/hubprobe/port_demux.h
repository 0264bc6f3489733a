// SPDX-License-Identifier: Apache-2.0
// One port under several engines, as a busy-polled backend's port is: one NIC queue on which a reflector's
// requests and the replies to the probe sessions arrive together. PortDemux is a Dataplane over that one
// port: each engine opens its own view of it (a dp::Port), and the views share the port's receive
// (docs/architecture.md "How to write a backend").
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "hubprobe/dataplane.h"

namespace hubprobe {

/// Views of one port, told apart by UDP destination port. open_port() with a fixed UDP port (the
/// reflector's listening port) gives the view of the datagrams sent to that port; with port 0, or the
/// port's own, it gives the default view, of the datagrams sent to the port's own UDP port (the sessions'
/// replies). Each
/// view opens once at a time (else EADDRINUSE). receive() on any view receives one batch from the port and
/// queues each datagram for the view it is for, so whichever engine a loop steps first receives for all of
/// them. Views send through the port from their own UDP port (TxPacket::source, when the packet sets
/// none); only the default view drains TX stamps (a reflector reads its T3 itself). Datagrams to a UDP port
/// without a view are dropped and counted (unclaimed()).
///
/// For backends that write the whole frame, the UDP source port too (the scripted one; DPDK): a kernel
/// socket sends from its own port whatever the view. Not thread-safe: the thread that drives the engines
/// drives every view.
class PortDemux final : public dp::Dataplane {
 public:
  explicit PortDemux(std::unique_ptr<dp::Port> port);
  ~PortDemux() override;

  std::string_view name() const override { return "demux"; }
  /// A view. Of `options`, the local address picks it (its host: wildcard or the port's own, else
  /// EADDRNOTAVAIL); the rest are the port's, fixed when it was opened.
  Result<std::unique_ptr<dp::Port>> open_port(const dp::PortOptions& options) override;
  /// The shared port itself (for its counters and the script of a test).
  dp::Port& port();
  /// Datagrams that arrived for a UDP port no view was open for.
  uint64_t unclaimed() const;

 private:
  struct Core;
  class View;
  std::shared_ptr<Core> core_;  ///< shared with the views, which may outlive the Dataplane
};

}  // namespace hubprobe
