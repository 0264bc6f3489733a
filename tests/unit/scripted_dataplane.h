// SPDX-License-Identifier: Apache-2.0
// A test Dataplane whose ports are ScriptedPorts, all in copies of one ScriptedClock. It keeps a handle
// on every port while it is open, so a test can carry packets between the engine's ports and a reflector,
// and it binds as the kernel does: a fixed UDP port another open port holds on the same host is refused
// (EADDRINUSE), and port 0 gets one no open port has.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <string_view>
#include <vector>

#include "hubprobe/scripted_port.h"

namespace hubprobe::test {

class ScriptedDataplane final : public dp::Dataplane {
 public:
  /// Ports bound to an unset or wildcard address get the host of `fallback_local`; port 0 gets the port of
  /// `fallback_local` while no open port has it, else the next free one from 49152.
  ScriptedDataplane(dp::ScriptedClock clock, SocketAddress fallback_local)
      : registry_(std::make_shared<Registry>(clock)), ports(registry_->ports), fallback_local_(fallback_local) {}

  std::string_view name() const override { return "scripted"; }
  Result<std::unique_ptr<dp::Port>> open_port(const dp::PortOptions& options) override {
    SocketAddress local = fallback_local_;
    if (options.local.valid() && options.local.host() != SocketAddress::any(options.local.family(), 0).host()) {
      local = options.local;
    }
    local.set_port(options.local.valid() ? options.local.port() : 0);
    if (local.port() == 0) {
      local.set_port(fallback_local_.port());
      for (uint16_t next = 49152; in_use(local); ++next) local.set_port(next);
    } else if (in_use(local)) {
      return make_error("cannot bind " + local.to_string() + ": " + std::strerror(EADDRINUSE), EADDRINUSE);
    }
    auto port = std::make_unique<dp::ScriptedPort>(local, registry_->clock);
    port->set_send_capacity(registry_->send_capacity);
    return std::unique_ptr<dp::Port>(std::make_unique<Tracked>(registry_, std::move(port)));
  }

  /// Sets every port's clock (and the clock of ports opened from now on) to the reading `raw`.
  void set_clock(int64_t raw) {
    registry_->clock.set(raw);
    for (dp::ScriptedPort* port : ports) port->clock().set(raw);
  }
  const dp::ScriptedClock& clock() const { return registry_->clock; }
  /// Every open port, and those opened from now on, refuses sends after `packets` more (a full ring).
  void set_send_capacity(size_t packets) {
    registry_->send_capacity = packets;
    for (dp::ScriptedPort* port : ports) port->set_send_capacity(packets);
  }

 private:
  struct Registry {
    explicit Registry(dp::ScriptedClock c) : clock(c) {}
    dp::ScriptedClock clock;
    size_t send_capacity = std::numeric_limits<size_t>::max();
    std::vector<dp::ScriptedPort*> ports;  ///< open, in the order they were opened
  };
  /// A ScriptedPort that leaves the registry when it closes.
  class Tracked final : public dp::Port {
   public:
    Tracked(std::shared_ptr<Registry> registry, std::unique_ptr<dp::ScriptedPort> port)
        : registry_(std::move(registry)), port_(std::move(port)) {
      registry_->ports.push_back(port_.get());
    }
    ~Tracked() override { std::erase(registry_->ports, port_.get()); }
    Result<size_t> send(std::span<dp::TxPacket> batch) override { return port_->send(batch); }
    Result<size_t> receive(std::span<dp::RxPacket> batch) override { return port_->receive(batch); }
    size_t drain_tx_timestamps(std::span<dp::TxTimestamp> out) override { return port_->drain_tx_timestamps(out); }
    int poll_fd() const override { return port_->poll_fd(); }
    dp::PortCapabilities capabilities() const override { return port_->capabilities(); }
    SocketAddress local_address() const override { return port_->local_address(); }
    const dp::PortCounters& counters() const override { return port_->counters(); }

   private:
    std::shared_ptr<Registry> registry_;
    std::unique_ptr<dp::ScriptedPort> port_;
  };

  bool in_use(const SocketAddress& local) const {
    return std::any_of(ports.begin(), ports.end(),
                       [&](const dp::ScriptedPort* port) { return port->local_address() == local; });
  }

  std::shared_ptr<Registry> registry_;

 public:
  /// Every open port, in the order they were opened (owned by whoever opened it).
  std::vector<dp::ScriptedPort*>& ports;

 private:
  SocketAddress fallback_local_;
};

}  // namespace hubprobe::test
