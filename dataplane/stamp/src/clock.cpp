// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/clock.h"

#include <linux/types.h>
#include <sys/timex.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "hubprobe/stamp_wire.h"

namespace hubprobe {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
// Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch).
constexpr int64_t kNtpToUnixSeconds = 2'208'988'800;
constexpr int64_t kEraSeconds = int64_t{1} << 32;
constexpr int32_t kDefaultTaiOffsetSeconds = 37;
// What the kernel reports as maxerror for a clock nobody disciplines (NTP_PHASE_LIMIT << 5 µs
// saturates at 16 s); used when adjtimex itself fails, so the error is never understated.
constexpr double kUnknownErrorSeconds = 16.0;

constexpr uint8_t kMaxScale = 63;
constexpr uint8_t kMaxMultiplier = 255;

int64_t floor_div(int64_t value, int64_t divisor) {
  int64_t quotient = value / divisor;
  if ((value % divisor != 0) && ((value < 0) != (divisor < 0))) --quotient;
  return quotient;
}

// seconds * 1e9 + nanoseconds, saturated to the WallNs range (only absurd references get there).
WallNs to_wall_ns(__int128 seconds, int64_t nanoseconds) {
  const __int128 total = seconds * kNsPerSecond + nanoseconds;
  if (total > std::numeric_limits<WallNs>::max()) return std::numeric_limits<WallNs>::max();
  if (total < std::numeric_limits<WallNs>::min()) return std::numeric_limits<WallNs>::min();
  return static_cast<WallNs>(total);
}

// The full seconds count, congruent to `wire_seconds` modulo 2^32, that lies closest to `reference_seconds`.
__int128 unwrap_era(uint32_t wire_seconds, int64_t reference_seconds) {
  const int64_t reference_era = floor_div(reference_seconds, kEraSeconds);
  __int128 best = 0;
  __int128 best_distance = -1;
  for (int64_t era = reference_era - 1; era <= reference_era + 1; ++era) {
    const __int128 candidate = static_cast<__int128>(era) * kEraSeconds + wire_seconds;
    const __int128 distance =
        candidate > reference_seconds ? candidate - reference_seconds : reference_seconds - candidate;
    if (best_distance < 0 || distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

int64_t clock_ns(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<int64_t>(now.tv_sec) * kNsPerSecond + now.tv_nsec;
}

}  // namespace

WallNs wall_now() { return clock_ns(CLOCK_REALTIME); }

MonoNs mono_now() { return clock_ns(CLOCK_MONOTONIC); }

Now read_now() { return Now{wall_now(), mono_now()}; }

ClockState read_clock_state() {
  ClockState state;
  timex kernel_clock{};
  kernel_clock.modes = 0;  // read only
  const int clock_status = adjtimex(&kernel_clock);
  if (clock_status == -1) {
    state.synchronized = false;
    state.error_bound_s = kUnknownErrorSeconds;
    return state;
  }
  state.synchronized = clock_status != TIME_ERROR && (kernel_clock.status & STA_UNSYNC) == 0;
  // esterror is the synchronisation daemon's estimate of the current error; maxerror is the kernel's
  // worst-case bound, which it grows by 500 ppm while nobody disciplines the clock. A synchronised
  // clock reports its estimate, an unsynchronised one the bound: honest in both cases. Both in µs.
  const long error_us = state.synchronized ? kernel_clock.esterror : kernel_clock.maxerror;
  state.error_bound_s = static_cast<double>(std::max(error_us, 0L)) * 1e-6;
  state.tai_offset_s = kernel_clock.tai > 0 ? kernel_clock.tai : kDefaultTaiOffsetSeconds;
  return state;
}

double ErrorEstimate::seconds() const { return std::ldexp(static_cast<double>(multiplier), scale - 32); }

uint16_t ErrorEstimate::encode() const {
  uint16_t wire = 0;
  if (synchronized) wire |= STAMP_EE_S_BIT;
  if (format == TimestampFormat::kPtp) wire |= STAMP_EE_Z_BIT;
  wire |= static_cast<uint16_t>((scale << STAMP_EE_SCALE_SHIFT) & STAMP_EE_SCALE_MASK);
  wire |= std::max<uint8_t>(multiplier, 1);  // RFC 4656: the multiplier MUST NOT be zero
  return wire;
}

ErrorEstimate ErrorEstimate::decode(uint16_t wire) {
  ErrorEstimate estimate;
  estimate.synchronized = (wire & STAMP_EE_S_BIT) != 0;
  estimate.format = (wire & STAMP_EE_Z_BIT) != 0 ? TimestampFormat::kPtp : TimestampFormat::kNtp;
  estimate.scale = static_cast<uint8_t>((wire & STAMP_EE_SCALE_MASK) >> STAMP_EE_SCALE_SHIFT);
  estimate.multiplier = static_cast<uint8_t>(wire & STAMP_EE_MULT_MASK);
  return estimate;
}

ErrorEstimate ErrorEstimate::from_seconds(double error_s, bool synchronized, TimestampFormat format) {
  ErrorEstimate estimate;
  estimate.synchronized = synchronized;
  estimate.format = format;
  // An unknown (NaN) error is reported as the largest one, never as small.
  if (std::isnan(error_s)) error_s = std::numeric_limits<double>::infinity();
  if (error_s <= 0) {
    estimate.scale = 0;
    estimate.multiplier = 1;
    return estimate;
  }
  // The value is multiplier * 2^(scale - 32). The smallest scale whose rounded-up multiplier fits in
  // eight bits gives the tightest bound: a coarser scale can only round further up.
  for (uint8_t scale = 0; scale <= kMaxScale; ++scale) {
    const double multiplier = std::ceil(std::ldexp(error_s, 32 - scale));
    if (multiplier <= kMaxMultiplier) {
      estimate.scale = scale;
      estimate.multiplier = static_cast<uint8_t>(std::max(multiplier, 1.0));
      return estimate;
    }
  }
  estimate.scale = kMaxScale;
  estimate.multiplier = kMaxMultiplier;
  return estimate;
}

ErrorEstimate ErrorEstimate::from_clock(const ClockState& clock, TimestampFormat format, double reading_error_s) {
  return from_seconds(clock.error_bound_s + std::max(reading_error_s, 0.0), clock.synchronized, format);
}

RawTimestamp encode_timestamp(WallNs t, TimestampFormat format, int32_t tai_offset_s) {
  int64_t seconds = floor_div(t, kNsPerSecond);
  const int64_t nanoseconds = t - seconds * kNsPerSecond;  // [0, 1e9)
  RawTimestamp raw;
  if (format == TimestampFormat::kPtp) {
    // PTP counts TAI seconds since 1970; the 48-bit seconds are truncated to their low 32 bits.
    raw.seconds = static_cast<uint32_t>(static_cast<uint64_t>(seconds + tai_offset_s));
    raw.fraction = static_cast<uint32_t>(nanoseconds);
    return raw;
  }
  // fraction = round(ns * 2^32 / 1e9); ns * 2^32 < 4.3e18 fits in 64 bits.
  uint64_t fraction =
      ((static_cast<uint64_t>(nanoseconds) << 32) + static_cast<uint64_t>(kNsPerSecond / 2)) / kNsPerSecond;
  if (fraction > std::numeric_limits<uint32_t>::max()) {  // rounded up to a whole second
    fraction = 0;
    ++seconds;
  }
  raw.seconds = static_cast<uint32_t>(static_cast<uint64_t>(seconds + kNtpToUnixSeconds));
  raw.fraction = static_cast<uint32_t>(fraction);
  return raw;
}

WallNs decode_timestamp(RawTimestamp raw, TimestampFormat format, int32_t tai_offset_s, WallNs reference) {
  const int64_t reference_unix_seconds = floor_div(reference, kNsPerSecond);
  if (format == TimestampFormat::kPtp) {
    const int64_t nanoseconds = std::min<int64_t>(raw.fraction, kNsPerSecond - 1);
    const __int128 tai_seconds = unwrap_era(raw.seconds, reference_unix_seconds + tai_offset_s);
    return to_wall_ns(tai_seconds - tai_offset_s, nanoseconds);
  }
  // ns = round(fraction * 1e9 / 2^32); fraction * 1e9 < 4.3e18 fits in 64 bits. A fraction just below
  // 2^32 rounds to 1e9 ns, i.e. the next second, which to_wall_ns carries naturally.
  const auto nanoseconds =
      static_cast<int64_t>((static_cast<uint64_t>(raw.fraction) * kNsPerSecond + (uint64_t{1} << 31)) >> 32);
  const __int128 ntp_seconds = unwrap_era(raw.seconds, reference_unix_seconds + kNtpToUnixSeconds);
  return to_wall_ns(ntp_seconds - kNtpToUnixSeconds, nanoseconds);
}

}  // namespace hubprobe
