// SPDX-License-Identifier: Apache-2.0
// One loop for the engines above the dataplane. The probe engine and the reflector service are steps: a
// step does the work that is waiting without blocking (receive, answer, send what is due, settle
// timeouts) and says when it next has timed work. EngineLoop drives a set of steps in one of the two
// loop kinds of the ports (docs/architecture.md "Two loop kinds"): asleep in poll(2) on the steps'
// descriptors until one is ready or a step's deadline comes (kPollFd), or stepping them all in turn on a
// core of its own (kBusyPoll, what a DPDK lcore runs).
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/dataplane.h"
#include "hubprobe/result.h"

namespace hubprobe {

/// What one step did.
struct StepResult {
  static constexpr MonoNs kNever = std::numeric_limits<MonoNs>::max();
  size_t work = 0;                ///< datagrams received, probes sent, TX stamps matched
  MonoNs next_deadline = kNever;  ///< monotonic time of its next timed work; kNever = none until a datagram
};

/// Something an EngineLoop drives. Steps are not thread-safe: the loop's thread is the only caller.
class LoopStep {
 public:
  virtual ~LoopStep() = default;
  /// Does the work waiting at `now` without blocking.
  virtual StepResult step(const Now& now) = 0;
  /// Descriptors whose readiness (POLLIN, POLLERR) means work for step(); read again before every wait.
  /// None for busy-polled ports, or for a step that runs on its deadlines alone.
  virtual std::vector<int> wake_fds() const = 0;
};

struct EngineLoopOptions {
  dp::WaitKind wait = dp::WaitKind::kPollFd;
  /// kBusyPoll: the core the thread that runs the loop is pinned to; -1 = not pinned.
  int cpu = -1;
  /// kBusyPoll: the pause after a pass in which no step did anything, so an idle loop does not spin a core
  /// at full speed; 0 = none.
  int64_t idle_pause_ns = 20'000;
  /// kPollFd: the longest sleep, so the stop flag is seen within it.
  int64_t max_wait_ns = 200'000'000;
};

class EngineLoop {
 public:
  /// The steps stay the caller's and must outlive the loop.
  EngineLoop(std::vector<LoopStep*> steps, EngineLoopOptions options);

  /// Runs the steps until `stop` is true. Call from the thread that owns the steps' ports. Returns an error,
  /// without running, only when the thread cannot be pinned to `cpu`.
  Result<void> run(const std::atomic<bool>& stop);
  /// One pass at `now`: kBusyPoll steps every step; kPollFd the steps whose deadline has come or whose
  /// descriptor was ready in the last wait (all of them on the first pass). Returns the sum of their work
  /// and the earliest deadline of all steps.
  StepResult run_once(const Now& now);

 private:
  /// kPollFd: sleeps in poll(2) until a step's descriptor is ready or the earliest deadline, and marks the
  /// steps that have work.
  void wait(MonoNs deadline);

  std::vector<LoopStep*> steps_;
  EngineLoopOptions options_;
  std::vector<MonoNs> deadlines_;  ///< per step, from its last step()
  std::vector<bool> ready_;        ///< per step: a descriptor of it was ready in the last wait
};

/// The loop kind for ports of these kinds: kBusyPoll when any of them is busy-polled (nothing would wake
/// it), else kPollFd.
dp::WaitKind loop_kind(const std::vector<dp::WaitKind>& kinds);

}  // namespace hubprobe
