// SPDX-License-Identifier: Apache-2.0
// The host clocks as STAMP needs them: wall time for the wire and documents, monotonic time for
// deadlines, intervals and windows; sync state and error bound from adjtimex(2); conversion between wall
// time and the two STAMP timestamp formats.
#pragma once

#include <cstdint>

namespace hubprobe {

/// Nanoseconds since the Unix epoch (UTC, CLOCK_REALTIME): what goes on the wire (T1..T4) and into
/// documents and metrics as a point in time. It jumps when the clock is stepped (NTP, `date -s`), so no
/// deadline, interval or window is measured with it.
using WallNs = int64_t;

/// Nanoseconds on CLOCK_MONOTONIC (since an arbitrary origin, boot): the time base of every deadline,
/// interval, timeout and window. It never jumps; it means nothing outside this host and this boot.
using MonoNs = int64_t;

/// One moment on both clocks, for code that needs both (a probe's wire timestamp and its deadline). The
/// two are read one after the other; neither is ever derived from the other.
struct Now {
  WallNs wall = 0;
  MonoNs mono = 0;
};

/// Reads CLOCK_REALTIME. Thread-safe.
WallNs wall_now();
/// Reads CLOCK_MONOTONIC. Thread-safe.
MonoNs mono_now();
/// Reads both clocks. Thread-safe.
Now read_now();

enum class TimestampFormat : uint8_t {
  kNtp,  ///< NTP 64-bit: seconds since 1900 (UTC) and 2^-32 s fraction (Z = 0)
  kPtp,  ///< PTPv2 truncated: seconds since 1970 on the TAI scale and nanoseconds (Z = 1)
};

/// What the kernel says about the clock (adjtimex), captured at one moment.
struct ClockState {
  bool synchronized = false;  ///< kernel not in TIME_ERROR and STA_UNSYNC clear
  double error_bound_s = 0;   ///< estimated error (timex.esterror), seconds; max error when unsynchronised
  int32_t tai_offset_s = 37;  ///< TAI - UTC; kernel value when set, else 37 (IERS since 2017)
};

/// Reads the clock state with adjtimex(2). Thread-safe; a system call, so callers cache it.
ClockState read_clock_state();

/// RFC 4656 section 4.1.2 Error Estimate: S, Z, Scale, Multiplier.
struct ErrorEstimate {
  bool synchronized = false;                       ///< S bit
  TimestampFormat format = TimestampFormat::kNtp;  ///< Z bit
  uint8_t scale = 0;                               ///< 6 bits
  uint8_t multiplier = 1;                          ///< never 0 on the wire

  /// Error in seconds: multiplier * 2^(scale - 32).
  double seconds() const;
  uint16_t encode() const;
  static ErrorEstimate decode(uint16_t wire);
  /// The smallest (scale, multiplier) whose value is >= error_s (rounded up, never understated).
  static ErrorEstimate from_seconds(double error_s, bool synchronized, TimestampFormat format);
  /// From the host's real clock state, for a timestamp whose reading adds `reading_error_s` of its own on
  /// top of the clock's error (a reflector's T3 taken before its reply leaves: the residual of its
  /// send-path estimate, send_path_estimator.h); 0 for a timestamp the kernel takes.
  static ErrorEstimate from_clock(const ClockState& clock, TimestampFormat format, double reading_error_s = 0);
};

/// A 64-bit STAMP timestamp as two host-order halves.
struct RawTimestamp {
  uint32_t seconds = 0;
  uint32_t fraction = 0;  ///< NTP: 2^-32 s; PTP: nanoseconds
  bool operator==(const RawTimestamp&) const = default;
};

/// Wall time to wire format. tai_offset_s applies to PTP only.
RawTimestamp encode_timestamp(WallNs t, TimestampFormat format, int32_t tai_offset_s);

/// Wire format to wall time. NTP seconds wrap every 136 years (eras); the era is chosen so the result
/// lies closest to `reference` (normally now). A PTP fraction >= 1e9 is clamped to 999999999.
WallNs decode_timestamp(RawTimestamp raw, TimestampFormat format, int32_t tai_offset_s, WallNs reference);

}  // namespace hubprobe
