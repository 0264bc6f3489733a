// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/port_demux.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <vector>

namespace hubprobe {

namespace {
constexpr size_t kBatch = 32;
constexpr uint32_t kBufferSize = 9216;

/// A received datagram waiting for its view: the packet's fields, its data owned here.
struct Datagram {
  dp::RxPacket packet;  ///< data and capacity unset
  std::vector<uint8_t> data;
};
}  // namespace

struct PortDemux::Core {
  std::unique_ptr<dp::Port> port;
  dp::PortCapabilities capabilities;
  /// The open views' queues by their UDP port (0 = the default view).
  std::map<uint16_t, std::deque<Datagram>> queues;
  uint64_t unclaimed = 0;
  std::vector<std::array<uint8_t, kBufferSize>> rx_data = std::vector<std::array<uint8_t, kBufferSize>>(kBatch);
  std::vector<dp::RxPacket> rx = std::vector<dp::RxPacket>(kBatch);

  /// The view a datagram to `udp_port` is for (the port's own UDP port: the default view); null when that
  /// view is not open.
  std::deque<Datagram>* queue_for(uint16_t udp_port) {
    const auto it = queues.find(udp_port == port->local_address().port() ? 0 : udp_port);
    return it == queues.end() ? nullptr : &it->second;
  }

  /// One batch from the port, each datagram queued for its view. Returns how many it received.
  size_t pump() {
    for (size_t i = 0; i < kBatch; ++i) {
      rx[i].data = rx_data[i].data();
      rx[i].capacity = kBufferSize;
    }
    auto received = port->receive(rx);
    if (!received) return 0;
    for (size_t i = 0; i < *received; ++i) {
      std::deque<Datagram>* queue = queue_for(rx[i].destination.port());
      if (queue == nullptr) {
        ++unclaimed;
        continue;
      }
      Datagram datagram{rx[i], std::vector<uint8_t>(rx[i].data, rx[i].data + rx[i].length)};
      datagram.packet.data = nullptr;
      datagram.packet.capacity = 0;
      queue->push_back(std::move(datagram));
    }
    return *received;
  }
};

class PortDemux::View final : public dp::Port {
 public:
  View(std::shared_ptr<Core> core, uint16_t udp_port) : core_(std::move(core)), udp_port_(udp_port) {
    core_->queues[udp_port_];
  }
  ~View() override { core_->queues.erase(udp_port_); }

  Result<size_t> send(std::span<dp::TxPacket> batch) override {
    if (udp_port_ != 0) {
      for (dp::TxPacket& packet : batch) {
        if (!packet.source.valid()) packet.source = local_address();
      }
    }
    auto sent = core_->port->send(batch);
    for (const dp::TxPacket& packet : batch) {
      ++(packet.error == 0 && sent ? counters_.tx_packets : counters_.tx_errors);
    }
    return sent;
  }

  Result<size_t> receive(std::span<dp::RxPacket> batch) override {
    std::deque<Datagram>& queue = core_->queues.at(udp_port_);
    if (queue.empty()) core_->pump();
    size_t handed = 0;
    for (; handed < batch.size() && !queue.empty(); ++handed) {
      hand_out(queue.front(), batch[handed]);
      queue.pop_front();
    }
    return handed;
  }

  size_t drain_tx_timestamps(std::span<dp::TxTimestamp> out) override {
    return udp_port_ == 0 ? core_->port->drain_tx_timestamps(out) : 0;
  }
  int poll_fd() const override { return core_->port->poll_fd(); }
  dp::PortCapabilities capabilities() const override {
    dp::PortCapabilities capabilities = core_->capabilities;
    if (udp_port_ != 0) capabilities.tx_source = dp::TimestampSource::kNone;
    return capabilities;
  }
  SocketAddress local_address() const override {
    SocketAddress local = core_->port->local_address();
    if (udp_port_ != 0) local.set_port(udp_port_);
    return local;
  }
  const dp::PortCounters& counters() const override { return counters_; }

 private:
  void hand_out(const Datagram& datagram, dp::RxPacket& packet) {
    uint8_t* const data = packet.data;
    const uint32_t capacity = packet.capacity;
    packet = datagram.packet;
    packet.data = data;
    packet.capacity = capacity;
    packet.length = std::min<uint32_t>(datagram.packet.length, capacity);
    packet.truncated = datagram.packet.truncated || datagram.packet.length > capacity;
    if (packet.length > 0) std::memcpy(packet.data, datagram.data.data(), packet.length);
    ++counters_.rx_packets;
    if (packet.truncated) ++counters_.rx_truncated;
    if (!packet.rx.valid()) ++counters_.rx_without_timestamp;
  }

  std::shared_ptr<Core> core_;
  uint16_t udp_port_;
  dp::PortCounters counters_;
};

PortDemux::PortDemux(std::unique_ptr<dp::Port> port) : core_(std::make_shared<Core>()) {
  core_->capabilities = port->capabilities();
  core_->port = std::move(port);
}

PortDemux::~PortDemux() = default;

dp::Port& PortDemux::port() { return *core_->port; }

uint64_t PortDemux::unclaimed() const { return core_->unclaimed; }

Result<std::unique_ptr<dp::Port>> PortDemux::open_port(const dp::PortOptions& options) {
  const SocketAddress own = core_->port->local_address();
  const SocketAddress& asked = options.local;
  if (asked.valid() && asked.host() != SocketAddress::any(asked.family(), 0).host() && asked.host() != own.host()) {
    return make_error("cannot open " + asked.to_string() + ": the shared port is " + own.to_string(), EADDRNOTAVAIL);
  }
  const uint16_t udp_port = !asked.valid() || asked.port() == own.port() ? 0 : asked.port();
  if (core_->queues.count(udp_port) != 0) {
    SocketAddress taken = own;
    if (udp_port != 0) taken.set_port(udp_port);
    return make_error("cannot open " + taken.to_string() + ": " + std::strerror(EADDRINUSE), EADDRINUSE);
  }
  return std::unique_ptr<dp::Port>(std::make_unique<View>(core_, udp_port));
}

}  // namespace hubprobe
