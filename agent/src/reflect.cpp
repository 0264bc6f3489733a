// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/reflect.h"

#include <poll.h>

#include <array>
#include <ostream>
#include <vector>

#include "hubprobe/dataplane.h"

namespace hubprobe {

namespace {
constexpr size_t kBatch = 32;
constexpr uint32_t kBufferSize = 9216;
constexpr WallNs kHousekeepingNs = 1'000'000'000;
}  // namespace

int run_reflector(const ReflectOptions& options, std::ostream& out, std::ostream& err,
                  const std::atomic<bool>& stop) {
  auto dataplane = dp::make_dataplane(options.backend);
  if (!dataplane) {
    err << "hubprobe reflect: " << dataplane.error().message << "\n";
    return 3;
  }
  std::vector<SocketAddress> listen = options.listen;
  if (listen.empty()) {
    listen = {SocketAddress::any(AF_INET, 862), SocketAddress::any(AF_INET6, 862)};
  }
  std::vector<std::unique_ptr<dp::Port>> ports;
  for (const auto& address : listen) {
    dp::PortOptions port_options;
    port_options.local = address;
    port_options.device = options.interface;
    port_options.tx_timestamps = false;  // T3 goes into the packet, so it is read before sending
    auto port = (*dataplane)->open_port(port_options);
    if (!port) {
      err << "hubprobe reflect: cannot listen on " << address.to_string() << ": " << port.error().message << "\n";
      return 3;
    }
    ports.push_back(std::move(port.value()));
  }
  for (const auto& port : ports) out << "reflecting STAMP on " << port->local_address().to_string() << "\n";
  out << "mode " << (options.reflector.key ? "authenticated" : "unauthenticated") << ", "
      << (options.reflector.stateful ? "stateful" : "stateless") << "\n";
  out.flush();

  stamp::SessionReflector reflector(options.reflector);
  std::vector<std::array<uint8_t, kBufferSize>> rx_buffers(kBatch), tx_buffers(kBatch);
  std::array<dp::RxPacket, kBatch> rx{};
  std::array<dp::TxPacket, kBatch> tx{};
  for (size_t i = 0; i < kBatch; ++i) {
    rx[i].data = rx_buffers[i].data();
    rx[i].capacity = kBufferSize;
  }
  std::vector<pollfd> descriptors;
  for (const auto& port : ports) descriptors.push_back({port->poll_fd(), POLLIN, 0});

  ClockState clock = read_clock_state();
  WallNs housekeeping_at = wall_now();
  uint64_t send_errors = 0;
  while (!stop.load()) {
    const int ready = poll(descriptors.data(), descriptors.size(), 200);
    const WallNs now = wall_now();
    if (now - housekeeping_at > kHousekeepingNs) {
      clock = read_clock_state();
      reflector.expire_sessions(now);
      housekeeping_at = now;
    }
    if (ready <= 0) continue;
    for (size_t p = 0; p < ports.size(); ++p) {
      if (!(descriptors[p].revents & (POLLIN | POLLERR))) continue;
      dp::Port& port = *ports[p];
      auto received = port.receive(rx);
      if (!received || *received == 0) continue;
      size_t replies = 0;
      for (size_t i = 0; i < *received; ++i) {
        if (reflector.reflect(rx[i], tx_buffers[replies], clock, wall_now, tx[replies])) ++replies;
      }
      if (replies == 0) continue;
      auto sent = port.send(std::span(tx.data(), replies));
      if (!sent || *sent < replies) send_errors += replies - (sent ? *sent : 0);
    }
  }

  const auto& c = reflector.counters();
  out << "received " << c.received << ", reflected " << c.reflected << ", dropped " << c.dropped()
      << " (too short " << c.dropped_too_short << ", too long " << c.dropped_too_long << ", truncated "
      << c.dropped_truncated << ", bad HMAC " << c.dropped_bad_hmac << "), send errors " << send_errors
      << ", TLVs unrecognized " << c.tlv_unrecognized << ", malformed " << c.tlv_malformed << "\n";
  out.flush();
  return 0;
}

}  // namespace hubprobe
