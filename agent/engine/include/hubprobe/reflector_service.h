// SPDX-License-Identifier: Apache-2.0
// A STAMP reflector on one or more listening ports, with the operator's guards in front of the
// session-reflector engine: allowed source prefixes and a per-source rate limit. Used by
// `hubprobe reflect` and by the agent. Replies leave as soon as requests arrive (T3 - T2 stays small).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "hubprobe/dataplane.h"
#include "hubprobe/session_reflector.h"

namespace hubprobe {

struct ReflectorServiceOptions {
  std::vector<SocketAddress> listen;  ///< each with its port
  std::string interface;              ///< SO_BINDTODEVICE, empty = all
  stamp::ReflectorOptions reflector;
  /// Sources answered; empty = every source.
  std::function<bool(const SocketAddress& source)> allow;
  uint32_t rate_limit_pps = 0;  ///< per source address (one-second token bucket); 0 = unlimited
};

/// Counters of the service: the engine's plus the guards'.
struct ReflectorServiceCounters {
  stamp::ReflectorCounters engine;
  uint64_t dropped_not_allowed = 0;
  uint64_t dropped_rate_limited = 0;
  uint64_t send_errors = 0;
};

class ReflectorService {
 public:
  /// Opens every listening port; the first failure is returned and nothing stays open.
  static Result<std::unique_ptr<ReflectorService>> open(dp::Dataplane& dataplane, ReflectorServiceOptions options);

  /// Serves until `stop` becomes true (checked at least every 200 ms). Call from one thread.
  void run(const std::atomic<bool>& stop);

  /// A consistent copy, safe from any thread.
  ReflectorServiceCounters counters() const;
  std::vector<SocketAddress> local_addresses() const;
  const ReflectorServiceOptions& options() const { return options_; }

 private:
  explicit ReflectorService(ReflectorServiceOptions options);
  /// The allow list and the rate limit (token bucket refilled on the monotonic clock).
  bool admit(const SocketAddress& source, MonoNs now);

  struct Bucket {
    double tokens = 0;
    MonoNs updated = 0;
  };

  ReflectorServiceOptions options_;
  std::vector<std::unique_ptr<dp::Port>> ports_;
  stamp::SessionReflector engine_;
  std::unordered_map<std::string, Bucket> buckets_;  ///< by source host
  mutable std::mutex counters_mutex_;
  ReflectorServiceCounters published_;
  uint64_t not_allowed_ = 0, rate_limited_ = 0, send_errors_ = 0;
};

}  // namespace hubprobe
