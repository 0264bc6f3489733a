// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/tsc_calibration.h"

#include <algorithm>
#include <cmath>

namespace hubprobe::dpdk {

namespace {
constexpr int64_t kRateBaselineNs = 1'000'000'000;  // measure the rate over at least this much wall time
// A fresh calibration's first rate is the nominal one: assume this much wander until it is measured.
constexpr double kUnmeasuredDriftPpm = 100.0;
}  // namespace

TscCalibration::TscCalibration(double nominal_hz, const TscReading& first)
    : nominal_ns_per_tick_(1e9 / nominal_hz),
      ns_per_tick_(nominal_ns_per_tick_),
      drift_ppm_(kUnmeasuredDriftPpm),
      anchor_(first),
      base_(first) {}

bool TscCalibration::update(const TscReading& reading) {
  const int64_t ticks = reading.tsc - base_.tsc;
  const int64_t wall = reading.wall - base_.wall;
  const bool step =
      ticks <= 0 || wall <= 0 ||
      std::abs(static_cast<double>(wall) / static_cast<double>(ticks) / nominal_ns_per_tick_ - 1.0) * 1e6 > kStepPpm;
  if (step) {
    ++steps_;
    anchor_ = reading;
    base_ = reading;
    return false;
  }
  if (wall >= kRateBaselineNs) {
    const double measured = static_cast<double>(wall) / static_cast<double>(ticks);
    const double wander = std::abs(measured / ns_per_tick_ - 1.0) * 1e6;
    // The window's own uncertainty limits what the measured rate can say.
    const double window_ppm = static_cast<double>(base_.half_window_ns + reading.half_window_ns) / wall * 1e6;
    drift_ppm_ = std::max({kMinDriftPpm, wander, window_ppm});
    ns_per_tick_ = measured;
    base_ = reading;
  }
  anchor_ = reading;
  return true;
}

dp::WallStamp TscCalibration::to_wall(int64_t tsc) const {
  const double since = static_cast<double>(tsc - anchor_.tsc) * ns_per_tick_;
  const auto error = static_cast<int64_t>(std::abs(since) * drift_ppm_ * 1e-6) + anchor_.half_window_ns;
  return {anchor_.wall + static_cast<WallNs>(std::llround(since)), error};
}

}  // namespace hubprobe::dpdk
