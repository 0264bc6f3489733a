// SPDX-License-Identifier: Apache-2.0
// Internal: what the scheduler sinks share: exponential backoff with full jitter, and the base class that
// holds the latest document for the sink's thread (publish never blocks, a newer document replaces an
// undelivered one, stop with a deadline).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "curl_post.h"
#include "hubprobe/scheduler_sink.h"

namespace hubprobe::detail {

/// The wait before retry number `failures` (1 = after the first failure): uniform in
/// [0, min(max, initial * 2^(failures - 1))] ("full jitter"), so a fleet of agents that lost the
/// scheduler at the same moment does not come back in lockstep.
inline int64_t backoff_delay_ns(const BackoffConfig& config, int failures, std::mt19937_64& random) {
  const int64_t initial = std::max<int64_t>(config.initial_ns, 1);
  const int64_t max = std::max(config.max_ns, initial);
  int64_t cap = initial;
  for (int i = 1; i < failures && cap < max; ++i) cap = cap > max / 2 ? max : cap * 2;
  return std::uniform_int_distribution<int64_t>(0, std::min(cap, max))(random);
}

inline std::chrono::steady_clock::time_point steady_time(int64_t ns) {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

/// The latest document and the sink thread's life. A derived sink starts `thread_` in its constructor,
/// calls stop(0) in its destructor, and reads and writes the members below under `mutex_`.
class LatestDocumentSink : public SchedulerSink {
 public:
  void publish(std::shared_ptr<const nlohmann::json> document, uint64_t generation) final {
    if (document == nullptr) return;
    {
      std::lock_guard lock(mutex_);
      if (document_ != nullptr && !delivered_) ++status_.superseded;
      document_ = std::move(document);
      generation_ = generation;
      delivered_ = false;
      status_.pending_generation = generation;
    }
    wake_.notify_one();
  }

  void stop(int64_t deadline_ns) final {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        stopping_ = true;
        stop_at_ = steady_now_ns() + std::max<int64_t>(deadline_ns, 0);
        on_stop_requested(stop_at_);
      }
    }
    wake_.notify_one();
    std::lock_guard join_lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
  }

 protected:
  /// Called once, under mutex_, when stop() sets the deadline: bound the requests still running.
  virtual void on_stop_requested(int64_t stop_at_ns) = 0;

  /// The sink thread's sleep (`lock` holds mutex_): until `wake_at_ns` (steady ns; INT64_MAX = no timer),
  /// the stop deadline once stopping, or a publish()/stop() wake-up, whichever comes first.
  void sleep_until(std::unique_lock<std::mutex>& lock, int64_t wake_at_ns) {
    if (stopping_) wake_at_ns = std::min(wake_at_ns, stop_at_);
    if (wake_at_ns == std::numeric_limits<int64_t>::max()) {
      wake_.wait(lock);
    } else {
      wake_.wait_until(lock, steady_time(wake_at_ns));
    }
  }

  mutable std::mutex mutex_;  // guards everything below but the thread
  std::condition_variable wake_;
  std::shared_ptr<const nlohmann::json> document_;
  uint64_t generation_ = 0;
  bool delivered_ = false;  // the target accepted document_ (this very pointer)
  bool stopping_ = false;
  int64_t stop_at_ = 0;  // steady ns
  SinkStatus status_;
  std::mutex join_mutex_;
  std::thread thread_;
};

}  // namespace hubprobe::detail
