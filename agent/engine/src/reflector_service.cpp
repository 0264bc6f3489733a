// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/reflector_service.h"

#include <poll.h>

#include <array>

namespace hubprobe {

namespace {
constexpr size_t kBatch = 32;
constexpr uint32_t kBufferSize = 9216;
constexpr int64_t kHousekeepingNs = 1'000'000'000;
constexpr size_t kMaxBuckets = 65536;
}  // namespace

ReflectorService::ReflectorService(ReflectorServiceOptions options)
    : options_(std::move(options)), engine_(options_.reflector) {}

Result<std::unique_ptr<ReflectorService>> ReflectorService::open(dp::Dataplane& dataplane,
                                                                 ReflectorServiceOptions options) {
  std::unique_ptr<ReflectorService> service(new ReflectorService(std::move(options)));
  for (const auto& address : service->options_.listen) {
    dp::PortOptions port_options;
    port_options.local = address;
    port_options.device = service->options_.interface;
    port_options.tx_timestamps = false;  // T3 goes into the packet, so it is read before sending
    auto port = dataplane.open_port(port_options);
    if (!port) {
      return make_error("reflector cannot listen on " + address.to_string() + ": " + port.error().message,
                        port.error().code);
    }
    service->ports_.push_back(std::move(port.value()));
  }
  return service;
}

std::vector<SocketAddress> ReflectorService::local_addresses() const {
  std::vector<SocketAddress> out;
  for (const auto& port : ports_) out.push_back(port->local_address());
  return out;
}

bool ReflectorService::admit(const SocketAddress& source, MonoNs now) {
  if (options_.allow && !options_.allow(source)) {
    ++not_allowed_;
    return false;
  }
  if (options_.rate_limit_pps == 0) return true;
  const double rate = options_.rate_limit_pps;
  if (buckets_.size() >= kMaxBuckets) buckets_.clear();  // a flood of sources: start over, stay bounded
  auto [it, inserted] = buckets_.try_emplace(source.host(), Bucket{rate, now});
  Bucket& bucket = it->second;
  if (!inserted) {
    bucket.tokens = std::min(rate, bucket.tokens + rate * static_cast<double>(now - bucket.updated) / 1e9);
    bucket.updated = now;
  }
  if (bucket.tokens < 1.0) {
    ++rate_limited_;
    return false;
  }
  bucket.tokens -= 1.0;
  return true;
}

void ReflectorService::run(const std::atomic<bool>& stop) {
  std::vector<std::array<uint8_t, kBufferSize>> rx_buffers(kBatch), tx_buffers(kBatch);
  std::array<dp::RxPacket, kBatch> rx{};
  std::array<dp::TxPacket, kBatch> tx{};
  for (size_t i = 0; i < kBatch; ++i) {
    rx[i].data = rx_buffers[i].data();
    rx[i].capacity = kBufferSize;
  }
  std::vector<pollfd> descriptors;
  for (const auto& port : ports_) descriptors.push_back({port->poll_fd(), POLLIN, 0});

  ClockState clock = read_clock_state();
  MonoNs housekeeping_at = mono_now();
  while (!stop.load(std::memory_order_relaxed)) {
    const int ready = poll(descriptors.data(), descriptors.size(), 200);
    const MonoNs now = mono_now();
    if (now - housekeeping_at > kHousekeepingNs) {
      clock = read_clock_state();
      engine_.expire_sessions(now);
      std::erase_if(buckets_, [&](const auto& entry) { return now - entry.second.updated > 10'000'000'000; });
      housekeeping_at = now;
    }
    if (ready > 0) {
      for (size_t p = 0; p < ports_.size(); ++p) {
        if (!(descriptors[p].revents & (POLLIN | POLLERR))) continue;
        dp::Port& port = *ports_[p];
        auto received = port.receive(rx);
        if (!received || *received == 0) continue;
        size_t replies = 0;
        for (size_t i = 0; i < *received; ++i) {
          if (!admit(rx[i].source, now)) continue;
          if (engine_.reflect(rx[i], tx_buffers[replies], clock, read_now, tx[replies])) ++replies;
        }
        if (replies == 0) continue;
        auto sent = port.send(std::span(tx.data(), replies));
        send_errors_ += replies - (sent ? *sent : 0);
      }
    }
    std::lock_guard lock(counters_mutex_);
    published_.engine = engine_.counters();
    published_.dropped_not_allowed = not_allowed_;
    published_.dropped_rate_limited = rate_limited_;
    published_.send_errors = send_errors_;
  }
}

ReflectorServiceCounters ReflectorService::counters() const {
  std::lock_guard lock(counters_mutex_);
  return published_;
}

}  // namespace hubprobe
