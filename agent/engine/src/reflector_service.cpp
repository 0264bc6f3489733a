// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/reflector_service.h"

#include <algorithm>
#include <array>

namespace hubprobe {

namespace {
constexpr size_t kBatch = 32;
constexpr int64_t kHousekeepingNs = 1'000'000'000;
constexpr size_t kMaxBuckets = 65536;
}  // namespace

ReflectorService::ReflectorService(ReflectorServiceOptions options)
    : options_(std::move(options)),
      engine_(options_.reflector),
      clock_state_(read_clock_state()),
      housekeeping_at_(mono_now()) {
  buffers_.rx_data.resize(kBatch);
  buffers_.tx_data.resize(kBatch);
  buffers_.rx.resize(kBatch);
  buffers_.tx.resize(kBatch);
  for (size_t i = 0; i < kBatch; ++i) {
    buffers_.rx[i].data = buffers_.rx_data[i].data();
    buffers_.rx[i].capacity = kBufferSize;
  }
}

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

size_t ReflectorService::serve(dp::Port& port, MonoNs now) {
  auto received = port.receive(buffers_.rx);
  if (!received || *received == 0) return 0;
  // Every stamp of the port becomes wall time (the identity for realtime ports): T2 from its RX stamp,
  // T3 from its clock read as late as possible.
  const dp::ClockDomain& clock = *port.capabilities().clock;
  const auto read_t3 = [&clock] { return Now{clock.to_wall(clock.now()).ns, mono_now()}; };
  size_t replies = 0;
  for (size_t i = 0; i < *received; ++i) {
    dp::RxPacket& request = buffers_.rx[i];
    if (!admit(request.source, now)) continue;
    request.rx = dp::to_wall(clock, request.rx);
    if (engine_.reflect(request, buffers_.tx_data[replies], clock_state_, read_t3, buffers_.tx[replies])) ++replies;
  }
  if (replies == 0) return *received;
  auto sent = port.send(std::span(buffers_.tx.data(), replies));
  send_errors_ += replies - (sent ? *sent : 0);
  return *received;
}

bool ReflectorService::housekeep(MonoNs now) {
  if (now - housekeeping_at_ <= kHousekeepingNs) return false;
  clock_state_ = read_clock_state();
  engine_.expire_sessions(now);
  std::erase_if(buckets_, [&](const auto& entry) { return now - entry.second.updated > 10'000'000'000; });
  housekeeping_at_ = now;
  return true;
}

void ReflectorService::publish_counters() {
  std::lock_guard lock(counters_mutex_);
  published_.engine = engine_.counters();
  published_.dropped_not_allowed = not_allowed_;
  published_.dropped_rate_limited = rate_limited_;
  published_.send_errors = send_errors_;
}

size_t ReflectorService::poll_once(MonoNs now) {
  size_t received = 0;
  for (const auto& port : ports_) received += serve(*port, now);
  if (received > 0) publish_counters();
  return received;
}

StepResult ReflectorService::step(const Now& now) {
  const bool housekept = housekeep(now.mono);
  const size_t received = poll_once(now.mono);
  if (housekept && received == 0) publish_counters();  // poll_once() publishes when it received
  return {received, housekeeping_at_ + kHousekeepingNs + 1};
}

std::vector<int> ReflectorService::wake_fds() const {
  std::vector<int> fds;
  for (const auto& port : ports_) {
    if (const int fd = port->poll_fd(); fd >= 0) fds.push_back(fd);
  }
  return fds;
}

dp::WaitKind ReflectorService::wait_kind() const {
  std::vector<dp::WaitKind> kinds;
  for (const auto& port : ports_) kinds.push_back(port->capabilities().wait);
  return loop_kind(kinds);
}

void ReflectorService::run(const std::atomic<bool>& stop) {
  clock_state_ = read_clock_state();
  housekeeping_at_ = mono_now();
  EngineLoopOptions options;
  options.wait = wait_kind();
  EngineLoop loop({this}, options);
  (void)loop.run(stop);  // fails only when asked to pin, which this loop is not
  publish_counters();
}

ReflectorServiceCounters ReflectorService::counters() const {
  std::lock_guard lock(counters_mutex_);
  return published_;
}

}  // namespace hubprobe
