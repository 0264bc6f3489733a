// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/clock.h"

#include <gtest/gtest.h>
#include <sys/timex.h>
#include <time.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>

namespace hubprobe {
namespace {

constexpr int64_t kNs = 1'000'000'000;
constexpr int64_t kNtpToUnix = 2'208'988'800;
// 2036-02-07T06:28:16Z: NTP era 0 ends, the 32-bit seconds field wraps to 0.
constexpr int64_t kNtpEra1StartUnix = (int64_t{1} << 32) - kNtpToUnix;
constexpr double kMaxRepresentableError = 255.0 * 2147483648.0;  // 255 * 2^(63 - 32)

// ---- Error Estimate ----------------------------------------------------------------------------------

TEST(ErrorEstimateTest, WireLayoutIsSZScaleMultiplier) {
  EXPECT_EQ((ErrorEstimate{true, TimestampFormat::kPtp, 63, 255}.encode()), 0xFFFF);
  EXPECT_EQ((ErrorEstimate{false, TimestampFormat::kNtp, 0, 1}.encode()), 0x0001);
  EXPECT_EQ((ErrorEstimate{true, TimestampFormat::kNtp, 0, 1}.encode()), 0x8001);
  EXPECT_EQ((ErrorEstimate{false, TimestampFormat::kPtp, 0, 1}.encode()), 0x4001);
  EXPECT_EQ((ErrorEstimate{false, TimestampFormat::kNtp, 5, 135}.encode()), 0x0587);

  const ErrorEstimate decoded = ErrorEstimate::decode(0xDD80);
  EXPECT_TRUE(decoded.synchronized);
  EXPECT_EQ(decoded.format, TimestampFormat::kPtp);
  EXPECT_EQ(decoded.scale, 29);
  EXPECT_EQ(decoded.multiplier, 128);
  EXPECT_DOUBLE_EQ(decoded.seconds(), 16.0);
}

TEST(ErrorEstimateTest, EncodeDecodeRoundTripsEveryWireValueWithNonZeroMultiplier) {
  for (uint32_t wire = 0; wire <= 0xFFFF; ++wire) {
    if ((wire & 0xFF) == 0) continue;
    EXPECT_EQ(ErrorEstimate::decode(static_cast<uint16_t>(wire)).encode(), wire);
  }
}

TEST(ErrorEstimateTest, ZeroMultiplierIsNeverSent) {
  EXPECT_EQ((ErrorEstimate{false, TimestampFormat::kNtp, 3, 0}.encode()), 0x0301);
}

TEST(ErrorEstimateTest, OneMicrosecond) {
  const ErrorEstimate estimate = ErrorEstimate::from_seconds(1e-6, true, TimestampFormat::kNtp);
  // 1e-6 s = 4294.97 units of 2^-32 s; at scale 5 that is 134.2, rounded up to 135.
  EXPECT_EQ(estimate.scale, 5);
  EXPECT_EQ(estimate.multiplier, 135);
  EXPECT_TRUE(estimate.synchronized);
  EXPECT_EQ(estimate.encode(), 0x8587);
  EXPECT_GE(estimate.seconds(), 1e-6);
  EXPECT_LT(estimate.seconds(), 1.01e-6);
}

TEST(ErrorEstimateTest, OneMillisecond) {
  const ErrorEstimate estimate = ErrorEstimate::from_seconds(1e-3, false, TimestampFormat::kPtp);
  EXPECT_EQ(estimate.scale, 15);
  EXPECT_EQ(estimate.multiplier, 132);
  EXPECT_FALSE(estimate.synchronized);
  EXPECT_EQ(estimate.format, TimestampFormat::kPtp);
  EXPECT_GE(estimate.seconds(), 1e-3);
}

TEST(ErrorEstimateTest, SixteenSecondsIsExact) {
  const ErrorEstimate estimate = ErrorEstimate::from_seconds(16.0, false, TimestampFormat::kNtp);
  EXPECT_EQ(estimate.scale, 29);
  EXPECT_EQ(estimate.multiplier, 128);
  EXPECT_DOUBLE_EQ(estimate.seconds(), 16.0);
}

TEST(ErrorEstimateTest, ZeroAndNegativeGiveTheSmallestValue) {
  for (double error : {0.0, -1.0, -std::numeric_limits<double>::infinity()}) {
    const ErrorEstimate estimate = ErrorEstimate::from_seconds(error, true, TimestampFormat::kNtp);
    EXPECT_EQ(estimate.scale, 0) << error;
    EXPECT_EQ(estimate.multiplier, 1) << error;
  }
  // The smallest positive errors still round up to one unit of 2^-32 s.
  const ErrorEstimate tiny = ErrorEstimate::from_seconds(1e-300, true, TimestampFormat::kNtp);
  EXPECT_EQ(tiny.scale, 0);
  EXPECT_EQ(tiny.multiplier, 1);
}

TEST(ErrorEstimateTest, HugeErrorsClampAtTheLargestValue) {
  for (double error : {kMaxRepresentableError, kMaxRepresentableError * 1.0001, 1e30,
                       std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    const ErrorEstimate estimate = ErrorEstimate::from_seconds(error, false, TimestampFormat::kNtp);
    EXPECT_EQ(estimate.scale, 63) << error;
    EXPECT_EQ(estimate.multiplier, 255) << error;
  }
  EXPECT_DOUBLE_EQ(ErrorEstimate::from_seconds(1e30, false, TimestampFormat::kNtp).seconds(), kMaxRepresentableError);
}

TEST(ErrorEstimateTest, FromSecondsIsNeverBelowAndAsTightAsPossible) {
  std::mt19937_64 random(42);
  std::uniform_real_distribution<double> exponent(-35.0, 38.0);
  for (int i = 0; i < 20000; ++i) {
    const double error = std::exp2(exponent(random));
    const ErrorEstimate estimate = ErrorEstimate::from_seconds(error, false, TimestampFormat::kNtp);
    ASSERT_GE(estimate.multiplier, 1);
    ASSERT_GE(estimate.seconds(), error) << error;
    // One step less at the same scale would understate the error ...
    const ErrorEstimate one_less{false, TimestampFormat::kNtp, estimate.scale,
                                 static_cast<uint8_t>(estimate.multiplier - 1)};
    ASSERT_LT(one_less.seconds(), error) << error;
    // ... and no finer scale can hold it in eight bits.
    if (estimate.scale > 0) {
      ASSERT_GT(std::ceil(std::ldexp(error, 32 - (estimate.scale - 1))), 255.0) << error;
    }
  }
}

TEST(ErrorEstimateTest, FromClockUsesTheClockState) {
  ClockState clock;
  clock.synchronized = true;
  clock.error_bound_s = 1e-6;
  const ErrorEstimate synced = ErrorEstimate::from_clock(clock, TimestampFormat::kPtp);
  EXPECT_TRUE(synced.synchronized);
  EXPECT_EQ(synced.format, TimestampFormat::kPtp);
  EXPECT_EQ(synced.encode(), 0xC587);

  clock.synchronized = false;
  clock.error_bound_s = 16.0;
  const ErrorEstimate unsynced = ErrorEstimate::from_clock(clock, TimestampFormat::kNtp);
  EXPECT_FALSE(unsynced.synchronized);
  EXPECT_EQ(unsynced.encode(), 0x1D80);
}

TEST(ErrorEstimateTest, FromClockAddsTheReadingsOwnError) {
  ClockState clock;
  clock.synchronized = true;
  clock.error_bound_s = 1e-6;
  // 1 us of clock error and 20 us of send-path residual: the bound of 21 us, rounded up, never below.
  const ErrorEstimate grown = ErrorEstimate::from_clock(clock, TimestampFormat::kNtp, 20e-6);
  EXPECT_GE(grown.seconds(), 21e-6);
  EXPECT_EQ(grown.encode(), ErrorEstimate::from_seconds(21e-6, true, TimestampFormat::kNtp).encode());
  // A negative reading error never makes the bound smaller than the clock's.
  EXPECT_EQ(ErrorEstimate::from_clock(clock, TimestampFormat::kNtp, -5e-6).encode(),
            ErrorEstimate::from_clock(clock, TimestampFormat::kNtp).encode());
}

// ---- Timestamps --------------------------------------------------------------------------------------

TEST(TimestampTest, NtpKnownValues) {
  EXPECT_EQ(encode_timestamp(0, TimestampFormat::kNtp, 37), (RawTimestamp{0x83AA7E80, 0}));
  EXPECT_EQ(encode_timestamp(kNs + kNs / 2, TimestampFormat::kNtp, 37), (RawTimestamp{0x83AA7E81, 0x80000000}));
  // 999999999 ns is 4294967291.7 units: rounds to ...FC, no carry into the seconds.
  EXPECT_EQ(encode_timestamp(kNs - 1, TimestampFormat::kNtp, 37), (RawTimestamp{0x83AA7E80, 0xFFFFFFFC}));
  EXPECT_EQ(encode_timestamp(1, TimestampFormat::kNtp, 37), (RawTimestamp{0x83AA7E80, 4}));  // 4.29 units
  // One nanosecond before the epoch.
  EXPECT_EQ(encode_timestamp(-1, TimestampFormat::kNtp, 37), (RawTimestamp{0x83AA7E7F, 0xFFFFFFFC}));
}

TEST(TimestampTest, NtpRoundTripIsWithinOneNanosecond) {
  std::mt19937_64 random(7);
  // 1970 .. 2100, which crosses the 2036 era boundary.
  std::uniform_int_distribution<int64_t> when(0, int64_t{4'102'444'800} * kNs);
  for (int i = 0; i < 200000; ++i) {
    const WallNs t = when(random);
    const RawTimestamp raw = encode_timestamp(t, TimestampFormat::kNtp, 37);
    const WallNs back = decode_timestamp(raw, TimestampFormat::kNtp, 37, t + 1000 * kNs);
    ASSERT_LE(std::llabs(back - t), 1) << t;
  }
  for (int64_t ns = 0; ns < kNs; ns += 999'983) {
    const WallNs t = 1'700'000'000 * kNs + ns;
    ASSERT_LE(
        std::llabs(decode_timestamp(encode_timestamp(t, TimestampFormat::kNtp, 37), TimestampFormat::kNtp, 37, t) - t),
        1);
  }
}

TEST(TimestampTest, NtpFractionJustBelowOneSecondCarries) {
  // 0xFFFFFFFF units = 999999999.77 ns, which rounds to the next whole second.
  const RawTimestamp raw{0x83AA7E80, 0xFFFFFFFF};
  EXPECT_EQ(decode_timestamp(raw, TimestampFormat::kNtp, 37, 0), kNs);
}

TEST(TimestampTest, NtpEraIsChosenClosestToTheReference) {
  const WallNs after_wrap = (kNtpEra1StartUnix + 5) * kNs + 250'000'000;
  const RawTimestamp raw = encode_timestamp(after_wrap, TimestampFormat::kNtp, 37);
  EXPECT_EQ(raw.seconds, 5u);  // wrapped
  // Reference a few seconds before the wrap: still the next era.
  EXPECT_EQ(decode_timestamp(raw, TimestampFormat::kNtp, 37, (kNtpEra1StartUnix - 3) * kNs), after_wrap);
  EXPECT_EQ(decode_timestamp(raw, TimestampFormat::kNtp, 37, (kNtpEra1StartUnix + 100) * kNs), after_wrap);

  const WallNs before_wrap = (kNtpEra1StartUnix - 2) * kNs;
  const RawTimestamp old = encode_timestamp(before_wrap, TimestampFormat::kNtp, 37);
  EXPECT_EQ(old.seconds, 0xFFFFFFFEu);
  EXPECT_EQ(decode_timestamp(old, TimestampFormat::kNtp, 37, (kNtpEra1StartUnix + 3) * kNs), before_wrap);

  // Today's timestamps decode to today, not to 2160.
  const WallNs today = int64_t{1'750'000'000} * kNs;
  EXPECT_EQ(decode_timestamp(encode_timestamp(today, TimestampFormat::kNtp, 37), TimestampFormat::kNtp, 37,
                             today + 3600 * kNs),
            today);
}

TEST(TimestampTest, PtpIsTaiSecondsAndNanoseconds) {
  EXPECT_EQ(encode_timestamp(kNs + kNs / 2, TimestampFormat::kPtp, 37), (RawTimestamp{38, 500'000'000}));
  EXPECT_EQ(encode_timestamp(0, TimestampFormat::kPtp, 0), (RawTimestamp{0, 0}));
  const WallNs t = int64_t{1'700'000'000} * kNs + 123'456'789;
  const RawTimestamp raw = encode_timestamp(t, TimestampFormat::kPtp, 37);
  EXPECT_EQ(raw.seconds, 1'700'000'037u);
  EXPECT_EQ(raw.fraction, 123'456'789u);
  EXPECT_EQ(decode_timestamp(raw, TimestampFormat::kPtp, 37, t), t);
  // The offset used to decode matters: the same wire value is 37 s apart in UTC.
  EXPECT_EQ(decode_timestamp(raw, TimestampFormat::kPtp, 0, t), t + 37 * kNs);
}

TEST(TimestampTest, PtpRoundTripIsExact) {
  std::mt19937_64 random(11);
  std::uniform_int_distribution<int64_t> when(0, int64_t{4'102'444'800} * kNs);
  for (int i = 0; i < 100000; ++i) {
    const WallNs t = when(random);
    const RawTimestamp raw = encode_timestamp(t, TimestampFormat::kPtp, 37);
    ASSERT_EQ(decode_timestamp(raw, TimestampFormat::kPtp, 37, t - 500 * kNs), t);
  }
}

TEST(TimestampTest, PtpFractionAboveOneSecondIsClamped) {
  EXPECT_EQ(decode_timestamp(RawTimestamp{100, 0xFFFFFFFF}, TimestampFormat::kPtp, 0, 100 * kNs),
            100 * kNs + 999'999'999);
}

TEST(TimestampTest, PtpEraWrapsIn2106) {
  const int64_t wrap_unix = (int64_t{1} << 32) - 37;
  const WallNs after = (wrap_unix + 1) * kNs;
  const RawTimestamp raw = encode_timestamp(after, TimestampFormat::kPtp, 37);
  EXPECT_EQ(raw.seconds, 1u);
  EXPECT_EQ(decode_timestamp(raw, TimestampFormat::kPtp, 37, (wrap_unix - 10) * kNs), after);
}

TEST(TimestampTest, DecodeSaturatesInsteadOfOverflowing) {
  const WallNs max = std::numeric_limits<WallNs>::max();
  const WallNs min = std::numeric_limits<WallNs>::min();
  for (TimestampFormat format : {TimestampFormat::kNtp, TimestampFormat::kPtp}) {
    for (WallNs reference : {max, min, WallNs{0}}) {
      for (uint32_t seconds : {0u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
        const WallNs decoded = decode_timestamp(RawTimestamp{seconds, 0xFFFFFFFF}, format, 37, reference);
        (void)decoded;  // only must not trap under UBSan
      }
    }
  }
}

// ---- The host clock ----------------------------------------------------------------------------------

TEST(ClockTest, WallNowIsRealtime) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  const WallNs expected = static_cast<WallNs>(now.tv_sec) * kNs + now.tv_nsec;
  EXPECT_LT(std::llabs(wall_now() - expected), 1 * kNs);
}

TEST(ClockTest, ReadClockStateAgreesWithAdjtimex) {
  timex direct{};
  direct.modes = 0;
  const int status = adjtimex(&direct);
  const ClockState state = read_clock_state();
  if (status == -1) {
    EXPECT_FALSE(state.synchronized);
    EXPECT_GT(state.error_bound_s, 0);
    return;
  }
  const bool synchronized = status != TIME_ERROR && (direct.status & STA_UNSYNC) == 0;
  EXPECT_EQ(state.synchronized, synchronized);
  const double expected_error = (synchronized ? direct.esterror : direct.maxerror) * 1e-6;
  // maxerror grows by 500 µs per second between the two calls; allow for that.
  EXPECT_NEAR(state.error_bound_s, expected_error, 0.01);
  EXPECT_EQ(state.tai_offset_s, direct.tai > 0 ? direct.tai : 37);
}

}  // namespace
}  // namespace hubprobe
