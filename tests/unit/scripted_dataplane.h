// SPDX-License-Identifier: Apache-2.0
// A test Dataplane whose ports are ScriptedPorts, all in copies of one ScriptedClock. It keeps a handle
// on every port it opens, so a test can carry packets between the engine's ports and a reflector.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "hubprobe/scripted_port.h"

namespace hubprobe::test {

class ScriptedDataplane final : public dp::Dataplane {
 public:
  /// Ports bound to an unset or wildcard address get `fallback_local` (the same for each).
  ScriptedDataplane(dp::ScriptedClock clock, SocketAddress fallback_local)
      : clock_(clock), fallback_local_(fallback_local) {}

  std::string_view name() const override { return "scripted"; }
  Result<std::unique_ptr<dp::Port>> open_port(const dp::PortOptions& options) override {
    const bool bound =
        options.local.valid() && options.local.host() != SocketAddress::any(options.local.family(), 0).host();
    auto port = std::make_unique<dp::ScriptedPort>(bound ? options.local : fallback_local_, clock_);
    ports.push_back(port.get());
    return std::unique_ptr<dp::Port>(std::move(port));
  }

  /// Every port opened, in order; owned by whoever opened it (valid while it is open).
  std::vector<dp::ScriptedPort*> ports;

 private:
  dp::ScriptedClock clock_;
  SocketAddress fallback_local_;
};

}  // namespace hubprobe::test
