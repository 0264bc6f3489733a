// SPDX-License-Identifier: Apache-2.0
// TSC readings as wall-clock time: a line through the latest paired reading of the TSC and CLOCK_REALTIME,
// with the rate measured between readings about a second apart, and an error bound that grows with the
// distance from the reading by how much the rate has been seen to wander. A wall-clock step (the rate
// between two readings far from the nominal one) re-anchors the line and keeps the rate. Pure.
#pragma once

#include <cstdint>

#include "hubprobe/clock.h"
#include "hubprobe/dataplane.h"

namespace hubprobe::dpdk {

/// CLOCK_REALTIME read between two TSC reads: `tsc` is their midpoint, `half_window_ns` half their distance.
struct TscReading {
  int64_t tsc = 0;
  WallNs wall = 0;
  int64_t half_window_ns = 0;
};

class TscCalibration {
 public:
  /// Rates further than this from the nominal one are a step of the wall clock, not the TSC's drift.
  static constexpr double kStepPpm = 500.0;
  /// The least wander assumed (a TSC against an NTP-disciplined clock).
  static constexpr double kMinDriftPpm = 1.0;

  TscCalibration(double nominal_hz, const TscReading& first);

  /// Takes a new paired reading. Returns false when it showed a wall-clock step (the line re-anchored there,
  /// the rate kept).
  bool update(const TscReading& reading);
  dp::WallStamp to_wall(int64_t tsc) const;

  double ns_per_tick() const { return ns_per_tick_; }
  double drift_ppm() const { return drift_ppm_; }
  uint64_t steps() const { return steps_; }

 private:
  double nominal_ns_per_tick_;
  double ns_per_tick_;
  double drift_ppm_;
  TscReading anchor_;  ///< the latest reading: the line goes through it
  TscReading base_;    ///< the reading the rate is measured from
  uint64_t steps_ = 0;
};

}  // namespace hubprobe::dpdk
