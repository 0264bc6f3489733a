// SPDX-License-Identifier: Apache-2.0
// A STAMP reflector on one or more listening ports, with the operator's guards in front of the
// session-reflector engine: allowed source prefixes and a per-source rate limit. Used by
// `hubprobe reflect` and by the agent. Replies leave as soon as requests arrive (T3 - T2 stays small).
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "hubprobe/dataplane.h"
#include "hubprobe/engine_loop.h"
#include "hubprobe/send_path_estimator.h"
#include "hubprobe/session_reflector.h"

namespace hubprobe {

struct ReflectorServiceOptions {
  std::vector<SocketAddress> listen;  ///< each with its port
  std::string interface;              ///< SO_BINDTODEVICE, empty = all
  stamp::ReflectorOptions reflector;
  /// Sources answered; empty = every source.
  std::function<bool(const SocketAddress& source)> allow;
  uint32_t rate_limit_pps = 0;  ///< per source address (one-second token bucket); 0 = unlimited
  /// The host clock's state for the Error Estimate, read at start and once a second (tests give their own).
  std::function<ClockState()> read_clock = read_clock_state;
};

/// What one listening port learnt about its send path from the TX stamps of its replies
/// (send_path_estimator.h). All zero for a port whose backend writes T3 itself or gives no TX stamps.
struct SendPathCounters {
  SocketAddress listen;
  int64_t latency_ns = 0;   ///< added to every T3 clock read
  int64_t residual_ns = 0;  ///< added to every reply's Error Estimate
  uint64_t samples = 0;     ///< replies matched to their TX stamp
  uint64_t refused = 0;     ///< matched, but out of range (a clock step)
  uint64_t unmatched = 0;   ///< TX stamps whose reply was no longer remembered
};

/// Counters of the service: the engine's plus the guards', and each port's send path.
struct ReflectorServiceCounters {
  stamp::ReflectorCounters engine;
  uint64_t dropped_not_allowed = 0;
  uint64_t dropped_rate_limited = 0;
  uint64_t send_errors = 0;
  std::vector<SendPathCounters> send_path;  ///< one per listening port, in the order of `listen`
};

/// A step of an EngineLoop (engine_loop.h): run() drives it on a loop of its own, or another loop drives
/// it together with other engines (the probe engine, on a busy-polled core).
class ReflectorService final : public LoopStep {
 public:
  /// Opens every listening port; the first failure is returned and nothing stays open.
  static Result<std::unique_ptr<ReflectorService>> open(dp::Dataplane& dataplane, ReflectorServiceOptions options);

  /// Serves until `stop` becomes true (checked at least every 200 ms) on a loop of its own: an EngineLoop
  /// of the ports' kind (wait_kind()). Call from one thread.
  /// Busy-polled ports: the loop pinned to `cpu` (-1 = not pinned); an error when it cannot be.
  Result<void> run(const std::atomic<bool>& stop, int cpu = -1);
  /// The loop kind of the service's ports: kBusyPoll when any is busy-polled.
  dp::WaitKind wait_kind() const;
  /// One step at `now`: the once-a-second housekeeping when due, then poll_once(now.mono). Its deadline is
  /// the next housekeeping. Call from the thread that runs the service.
  StepResult step(const Now& now) override;
  /// The descriptors of the ports that have one (kPollFd).
  std::vector<int> wake_fds() const override;
  /// One step that any loop can drive: receives one batch on every port, answers the requests the guards
  /// admit and sends the replies. `now` (monotonic) is for the rate limit; T2 is each request's RX stamp
  /// and T3 a reading of its port's clock just before the reply goes plus the port's send-path estimate
  /// (learnt from the TX stamps of earlier replies where the port gives them), both as wall time. Returns
  /// how many datagrams it received. Call from the thread that runs the service (or instead of run()).
  size_t poll_once(MonoNs now);

  /// A consistent copy, safe from any thread.
  ReflectorServiceCounters counters() const;
  std::vector<SocketAddress> local_addresses() const;
  const ReflectorServiceOptions& options() const { return options_; }

 private:
  explicit ReflectorService(ReflectorServiceOptions options);
  /// The allow list and the rate limit (token bucket refilled on the monotonic clock).
  bool admit(const SocketAddress& source, MonoNs now);
  /// One batch on one port: received, answered, sent. Returns how many datagrams it received.
  size_t serve(dp::Port& port, MonoNs now);
  /// The send path of a port: learnt where T3 is read in user space and the port gives TX stamps, else
  /// zero.
  struct SendPath {
    bool learns = false;
    stamp::SendPathEstimator estimator;
  };
  SendPath& send_path_of(const dp::Port& port);
  /// Remembers the replies that left, with their T3 clock reads.
  void sent_replies(SendPath& path, size_t replies);
  /// Feeds the TX stamps waiting on `port` to its estimator.
  void drain_send_path(dp::Port& port, SendPath& path);
  /// Once a second: the clock state, stateful sessions and rate-limit buckets. Returns whether it was due.
  bool housekeep(MonoNs now);
  void publish_counters();

  static constexpr uint32_t kBufferSize = 9216;
  /// Scratch of one batch.
  struct Buffers {
    std::vector<std::array<uint8_t, kBufferSize>> rx_data, tx_data;
    std::vector<dp::RxPacket> rx;
    std::vector<dp::TxPacket> tx;
    std::vector<WallNs> t3_read;  ///< each reply's T3 clock read, before the send-path estimate
    std::vector<dp::TxTimestamp> tx_stamps;
  };

  struct Bucket {
    double tokens = 0;
    MonoNs updated = 0;
  };

  ReflectorServiceOptions options_;
  std::vector<std::unique_ptr<dp::Port>> ports_;
  std::vector<SendPath> send_paths_;  ///< one per port, same order
  stamp::SessionReflector engine_;
  std::unordered_map<std::string, Bucket> buckets_;  ///< by source host
  Buffers buffers_;
  ClockState clock_state_;
  MonoNs housekeeping_at_ = 0;
  mutable std::mutex counters_mutex_;
  ReflectorServiceCounters published_;
  uint64_t not_allowed_ = 0, rate_limited_ = 0, send_errors_ = 0;
};

}  // namespace hubprobe
