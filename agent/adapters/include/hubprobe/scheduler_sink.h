// SPDX-License-Identifier: Apache-2.0
// Where preference documents go: the scheduler's HTTP(S) endpoint and etcd v3.
//
// Every sink runs its own thread. publish() only swaps in the latest document and wakes that thread, so
// probing never waits on the scheduler, and a sink that cannot deliver never builds a backlog: when it
// can deliver again it sends the newest document only. Failures are retried with exponential backoff and
// full jitter; a periodic refresh re-sends the current document even when nothing changed (HTTP) or keeps
// the lease alive (etcd).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/result.h"
#include "hubprobe/sink_config.h"

namespace hubprobe {

/// What a sink reports for /metrics and /status.
struct SinkStatus {
  std::string name;
  std::string kind;    ///< "http" or "etcd"
  std::string target;  ///< the URL or the endpoint currently in use
  uint64_t pushes_ok = 0;
  uint64_t pushes_failed = 0;  ///< attempts that did not deliver (each retry counts)
  uint64_t superseded = 0;     ///< documents replaced by a newer one before they were delivered
  WallNs last_attempt = 0;
  WallNs last_success = 0;            ///< 0 = never
  uint64_t delivered_generation = 0;  ///< the generation of the last document the target accepted
  uint64_t pending_generation = 0;    ///< the newest generation handed to publish()
  std::string last_error;             ///< empty after a success
  bool healthy = false;               ///< the last attempt succeeded
};

class SchedulerSink {
 public:
  virtual ~SchedulerSink() = default;
  /// Hands over the newest document (never blocks on the network). Thread-safe.
  virtual void publish(std::shared_ptr<const nlohmann::json> document, uint64_t generation) = 0;
  /// Delivers the last document (marked stale by the caller) within `deadline_ns`, then stops the
  /// thread (docs/operations.md: the last preferences are marked stale on shutdown). The etcd sink revokes nothing: its
  /// key expires with the lease.
  virtual void stop(int64_t deadline_ns) = 0;
  virtual SinkStatus status() const = 0;
};

/// Both sinks use libcurl; the thread starts at once.
std::unique_ptr<SchedulerSink> make_http_sink(const HttpSinkConfig& config);
/// `agent_id`, `registration` (the JSON written under PREFIX/agents/AGENT_ID when register_agent).
std::unique_ptr<SchedulerSink> make_etcd_sink(const EtcdSinkConfig& config, const std::string& agent_id,
                                              nlohmann::json registration);

}  // namespace hubprobe
