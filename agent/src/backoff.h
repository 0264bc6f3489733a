// SPDX-License-Identifier: Apache-2.0
// Internal: exponential backoff with full jitter for the scheduler sinks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

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

}  // namespace hubprobe::detail
