// SPDX-License-Identifier: Apache-2.0
// An SLA class ([sla.NAME]) as the config loader gives it; the path selector judges paths by it.
#pragma once

#include <cstdint>
#include <string>

namespace hubprobe {

/// [sla.NAME]: how the paths of the peers that name this class are judged and chosen between. Down is not
/// judged here: a path is down when its session's peer state is (the peer's `down_after`).
struct SlaClass {
  std::string name = "default";
  int64_t rtt_p99_ns = 0;                   ///< p99 RTT above this -> degraded; 0 = not judged
  int64_t jitter_ns = 0;                    ///< delay-variation above this -> degraded; 0 = not judged
  double loss_ratio = 0.05;                 ///< lossrate above this -> degraded; < 0 = not judged
  uint32_t min_samples = 10;                ///< replies in the window before a candidate is judged
  int64_t window_ns = 10'000'000'000;       ///< the evaluation window
  int64_t hold_down_ns = 30'000'000'000;    ///< ok this long after down/degraded before eligible again
  int64_t switch_margin_ns = 250'000;       ///< absolute part of the margin
  double switch_margin_ratio = 0.02;        ///< relative part of the margin (of the current score)
  int64_t switch_after_ns = 5'000'000'000;  ///< the margin must hold this long
  int64_t loss_penalty_ns = 100'000'000;    ///< score cost of 100 % loss (1 % costs 1 ms by default)
  bool operator==(const SlaClass&) const = default;
};

}  // namespace hubprobe
