// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/engine_loop.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

namespace hubprobe {

namespace {
Result<void> pin_to(int cpu) {
  if (cpu >= CPU_SETSIZE) return make_error("cannot pin the engine loop to cpu " + std::to_string(cpu), EINVAL);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (const int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); rc != 0) {
    return errno_error("cannot pin the engine loop to cpu " + std::to_string(cpu), rc);
  }
  return {};
}
}  // namespace

dp::WaitKind loop_kind(const std::vector<dp::WaitKind>& kinds) {
  const bool busy = std::find(kinds.begin(), kinds.end(), dp::WaitKind::kBusyPoll) != kinds.end();
  return busy ? dp::WaitKind::kBusyPoll : dp::WaitKind::kPollFd;
}

EngineLoop::EngineLoop(std::vector<LoopStep*> steps, EngineLoopOptions options)
    : steps_(std::move(steps)),
      options_(options),
      // Due at once: the first pass steps every step.
      deadlines_(steps_.size(), std::numeric_limits<MonoNs>::min()),
      ready_(steps_.size(), false) {}

StepResult EngineLoop::run_once(const Now& now) {
  const bool busy = options_.wait == dp::WaitKind::kBusyPoll;
  StepResult total;
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (busy || ready_[i] || deadlines_[i] <= now.mono) {
      const StepResult result = steps_[i]->step(now);
      deadlines_[i] = result.next_deadline;
      ready_[i] = false;
      total.work += result.work;
    }
    total.next_deadline = std::min(total.next_deadline, deadlines_[i]);
  }
  return total;
}

void EngineLoop::wait(MonoNs deadline) {
  std::vector<pollfd> descriptors;
  std::vector<size_t> owner;  // the step of each descriptor
  for (size_t i = 0; i < steps_.size(); ++i) {
    for (const int fd : steps_[i]->wake_fds()) {
      if (fd < 0) continue;
      descriptors.push_back({fd, POLLIN, 0});
      owner.push_back(i);
    }
  }
  const MonoNs now = mono_now();
  const int64_t sleep_ns = deadline <= now ? 0 : std::min<int64_t>(deadline - now, options_.max_wait_ns);
  const timespec timeout{static_cast<time_t>(sleep_ns / 1'000'000'000), static_cast<long>(sleep_ns % 1'000'000'000)};
  if (ppoll(descriptors.data(), descriptors.size(), &timeout, nullptr) <= 0) return;
  for (size_t d = 0; d < descriptors.size(); ++d) {
    if (descriptors[d].revents & (POLLIN | POLLERR)) ready_[owner[d]] = true;
  }
}

Result<void> EngineLoop::run(const std::atomic<bool>& stop) {
  const bool busy = options_.wait == dp::WaitKind::kBusyPoll;
  if (busy && options_.cpu >= 0) {
    if (auto pinned = pin_to(options_.cpu); !pinned) return pinned.error();
  }
  while (!stop.load(std::memory_order_relaxed)) {
    const StepResult pass = run_once(read_now());
    if (!busy) {
      wait(pass.next_deadline);
    } else if (pass.work == 0 && options_.idle_pause_ns > 0) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(options_.idle_pause_ns));
    }
  }
  return {};
}

}  // namespace hubprobe
