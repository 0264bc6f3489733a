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
      clock_state_(options_.read_clock()),
      housekeeping_at_(mono_now()) {
  buffers_.rx_data.resize(kBatch);
  buffers_.tx_data.resize(kBatch);
  buffers_.rx.resize(kBatch);
  buffers_.tx.resize(kBatch);
  buffers_.t3_read.resize(kBatch);
  buffers_.tx_stamps.resize(kBatch);
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
    // T3 goes into the packet, so it is read before sending; the TX stamps of the replies tell how long
    // before (the send path), which later replies add to their T3.
    port_options.tx_timestamps = true;
    auto port = dataplane.open_port(port_options);
    if (!port) {
      return make_error("reflector cannot listen on " + address.to_string() + ": " + port.error().message,
                        port.error().code);
    }
    const dp::PortCapabilities capabilities = (*port)->capabilities();
    service->send_paths_.push_back(
        {capabilities.t3_source == dp::TimestampSource::kUser && capabilities.tx_timestamps(), {}});
    service->ports_.push_back(std::move(port.value()));
  }
  service->publish_counters();  // every port's send path is listed from the start
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
  SendPath& path = send_path_of(port);
  drain_send_path(port, path);  // stamps of earlier replies (what a POLLERR wake-up brings)
  auto received = port.receive(buffers_.rx);
  if (!received || *received == 0) return 0;
  // Every stamp of the port becomes wall time (the identity for realtime ports): T2 from its RX stamp,
  // T3 from its clock read as late as possible plus the send path still ahead of the reply.
  const dp::ClockDomain& clock = *port.capabilities().clock;
  const stamp::SendPathEstimator::Estimate ahead = path.estimator.estimate();
  WallNs read = 0;
  // The Error Estimate carries the conversion's own bound too (a TSC's calibration and drift since it).
  const auto read_t3 = [&] {
    const dp::WallStamp wall = clock.to_wall(clock.now());
    read = wall.ns;
    return stamp::T3Reading{Now{read + ahead.latency_ns, mono_now()}, ahead.residual_ns + wall.error_ns};
  };
  size_t replies = 0;
  for (size_t i = 0; i < *received; ++i) {
    dp::RxPacket& request = buffers_.rx[i];
    if (!admit(request.source, now)) continue;
    request.rx = dp::to_wall(clock, request.rx);
    if (engine_.reflect(request, buffers_.tx_data[replies], clock_state_, read_t3, buffers_.tx[replies])) {
      buffers_.t3_read[replies++] = read;
    }
  }
  if (replies == 0) return *received;
  auto sent = port.send(std::span(buffers_.tx.data(), replies));
  send_errors_ += replies - (sent ? *sent : 0);
  sent_replies(path, replies);
  drain_send_path(port, path);  // a software TX stamp is usually taken before send() returns
  return *received;
}

ReflectorService::SendPath& ReflectorService::send_path_of(const dp::Port& port) {
  size_t index = 0;
  while (index + 1 < ports_.size() && ports_[index].get() != &port) ++index;
  return send_paths_[index];
}

void ReflectorService::sent_replies(SendPath& path, size_t replies) {
  if (!path.learns) return;
  for (size_t i = 0; i < replies; ++i) {
    if (buffers_.tx[i].error == 0) path.estimator.on_sent(buffers_.tx[i].tx_id, buffers_.t3_read[i]);
  }
}

void ReflectorService::drain_send_path(dp::Port& port, SendPath& path) {
  if (!path.learns) return;
  const dp::ClockDomain& clock = *port.capabilities().clock;
  size_t drained = 0;
  do {
    drained = port.drain_tx_timestamps(buffers_.tx_stamps);
    for (size_t i = 0; i < drained; ++i) {
      const dp::TxTimestamp& stamp = buffers_.tx_stamps[i];
      path.estimator.on_tx_stamp(stamp.tx_id, dp::to_wall(clock, stamp.ts).ns);
    }
  } while (drained == buffers_.tx_stamps.size());
}

bool ReflectorService::housekeep(MonoNs now) {
  if (now - housekeeping_at_ <= kHousekeepingNs) return false;
  clock_state_ = options_.read_clock();
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
  published_.send_path.resize(ports_.size());
  for (size_t p = 0; p < ports_.size(); ++p) {
    const stamp::SendPathEstimator& estimator = send_paths_[p].estimator;
    published_.send_path[p] = {ports_[p]->local_address(),
                               estimator.estimate().latency_ns,
                               estimator.estimate().residual_ns,
                               estimator.samples(),
                               estimator.refused(),
                               estimator.unmatched()};
  }
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

Result<void> ReflectorService::run(const std::atomic<bool>& stop, int cpu) {
  clock_state_ = options_.read_clock();
  housekeeping_at_ = mono_now();
  EngineLoopOptions options;
  options.wait = wait_kind();
  options.idle_pause_ns = 0;  // busy-polled: the RX stamp is taken when the loop polls, so it never pauses
  if (options.wait == dp::WaitKind::kBusyPoll) options.cpu = cpu;
  EngineLoop loop({this}, options);
  auto ran = loop.run(stop);
  publish_counters();
  return ran;
}

ReflectorServiceCounters ReflectorService::counters() const {
  std::lock_guard lock(counters_mutex_);
  return published_;
}

}  // namespace hubprobe
