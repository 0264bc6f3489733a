// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include "hubprobe/summary.h"

namespace hubprobe {
namespace {

TEST(Histogram, EmptyGivesZeros) {
  const Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.quantile(0.5), 0);
  EXPECT_EQ(h.mean(), 0);
}

TEST(Histogram, ExactBelowSubBucketCount) {
  // Precision 7: values 0..127 have buckets of width 1, so every quantile is exact.
  Histogram h(7);
  for (int64_t v = 127; v >= 0; --v) h.record(v);
  EXPECT_EQ(h.count(), 128u);
  EXPECT_EQ(h.sum(), 127 * 128 / 2);
  EXPECT_EQ(h.quantile(0.5), 63);   // ceil(0.5 * 128) = 64th smallest = 63
  EXPECT_EQ(h.quantile(0.9), 115);  // ceil(115.2) = 116th = 115
  EXPECT_EQ(h.quantile(0.0), 0);
  EXPECT_EQ(h.quantile(1.0), 127);
}

TEST(Histogram, HandComputedBucketMidpoint) {
  // 1 µs .. 1000 µs in nanoseconds. p50 is the 500th value, 500000 ns. With precision 7 it lies in
  // octave [2^18, 2^19) whose buckets are 2^(18-7) = 2048 ns wide: floor(500000 / 2048) = 244, bucket
  // [499712, 501759], midpoint 499712 + 1023 = 500735 (error 735 ns = 0.147 % <= 0.39 %).
  Histogram h(7);
  for (int64_t us = 1; us <= 1000; ++us) h.record(us * 1000);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_EQ(h.min(), 1000);
  EXPECT_EQ(h.max(), 1'000'000);
  EXPECT_EQ(h.sum(), 500'500'000);
  EXPECT_DOUBLE_EQ(h.mean(), 500'500);
  const auto b = h.bucket_of(500'000);
  EXPECT_EQ(b.lower, 499'712);
  EXPECT_EQ(b.upper, 501'759);
  EXPECT_EQ(b.count, 2u);  // 500000 and 501000; 499000 is in the bucket below
  EXPECT_EQ(h.quantile(0.5), 500'735);
  // p999 = 999th value = 999000 ns: octave [2^19, 2^20), width 4096: floor(999000/4096) = 243,
  // bucket [995328, 999423], midpoint 997375.
  EXPECT_EQ(h.quantile(0.999), 997'375);
  // Rank n is the exact max, rank 1 the exact min.
  EXPECT_EQ(h.quantile(1.0), 1'000'000);
  EXPECT_EQ(h.quantile(0.0001), 1000);
}

TEST(Histogram, QuantilesWithinDocumentedBound) {
  // Log-uniform values between 1 µs and 10 s: every quantile within 2^-(P+1) of the exact nearest rank.
  for (int bits : {5, 6, 7, 10}) {
    std::mt19937_64 rng(42);
    Histogram h(bits);
    std::vector<double> exact;
    for (int i = 0; i < 20000; ++i) {
      const double exponent = 3.0 + 7.0 * static_cast<double>(rng() >> 11) / 9007199254740992.0;
      const auto v = static_cast<int64_t>(std::pow(10.0, exponent));
      h.record(v);
      exact.push_back(static_cast<double>(v));
    }
    std::sort(exact.begin(), exact.end());
    const double bound = h.relative_error();
    EXPECT_DOUBLE_EQ(bound, std::ldexp(1.0, -(bits + 1)));
    for (double q : {0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999}) {
      const double truth = nearest_rank(exact, q);
      const double got = static_cast<double>(h.quantile(q));
      EXPECT_LE(std::fabs(got - truth), truth * bound) << "bits " << bits << " q " << q;
    }
  }
}

TEST(Histogram, RelativeErrorOfPrecisionSevenResolvesOneMillisecondAtTwentyMilliseconds) {
  Histogram a, b;
  for (int i = 0; i < 100; ++i) {
    a.record(20'000'000 + i * 1000);  // 20.000 .. 20.099 ms
    b.record(21'000'000 + i * 1000);  // 21.000 .. 21.099 ms
  }
  const double pa = static_cast<double>(a.quantile(0.5));
  const double pb = static_cast<double>(b.quantile(0.5));
  EXPECT_NEAR(pa, 20'049'000, 20'049'000 * a.relative_error());
  EXPECT_NEAR(pb - pa, 1'000'000, 200'000);
}

TEST(Histogram, MultipleQuantilesInOnePassMatchSingleCalls) {
  Histogram h;
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; ++i) h.record(static_cast<int64_t>(rng() % 50'000'000));
  const std::vector<double> qs = {0.99, 0.5, 0.9, 0.999, 0.0, 1.0};
  std::vector<int64_t> out(qs.size());
  h.quantiles(qs, out);
  for (size_t i = 0; i < qs.size(); ++i) EXPECT_EQ(out[i], h.quantile(qs[i])) << qs[i];
}

TEST(Histogram, MergeEqualsRecordingEverything) {
  Histogram all, a, b;
  std::mt19937 rng(3);
  for (int i = 0; i < 3000; ++i) {
    const auto v = static_cast<int64_t>(rng() % 100'000'000);
    all.record(v);
    (i % 3 == 0 ? a : b).record(v);
  }
  Histogram merged;
  merged.merge(a);
  merged.merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.sum(), all.sum());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  for (double q : {0.1, 0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(merged.quantile(q), all.quantile(q));
}

TEST(Histogram, MergeWithItselfAndWithTinyPrecisions) {
  for (int bits : {1, 2, 3, 7}) {
    Histogram h(bits), twice(bits);
    for (int64_t v : {0, 1, 3, 17, 1000, 123'456, 20'000'000}) {
      h.record(v);
      twice.record_n(v, 2);
    }
    h.merge(h);
    EXPECT_EQ(h.count(), twice.count()) << bits;
    EXPECT_EQ(h.sum(), twice.sum()) << bits;
    for (double q : {0.2, 0.5, 0.8}) EXPECT_EQ(h.quantile(q), twice.quantile(q)) << bits << " " << q;
  }
}

TEST(Histogram, BucketCountsSaturateInsteadOfWrapping) {
  Histogram a, b;
  a.record_n(1000, 0xffffffffULL);
  b.record_n(1000, 5);
  a.merge(b);
  EXPECT_EQ(a.bucket_of(1000).count, 0xffffffffULL);
  EXPECT_EQ(a.count(), 0xffffffffULL + 5);
}

TEST(Histogram, MergeAcrossPrecisionsKeepsExactStatistics) {
  Histogram fine(7), coarse(4);
  coarse.record(1'000'000);
  coarse.record(3'000'000);
  fine.record(2'000'000);
  fine.merge(coarse);
  EXPECT_EQ(fine.count(), 3u);
  EXPECT_EQ(fine.min(), 1'000'000);
  EXPECT_EQ(fine.max(), 3'000'000);
  EXPECT_EQ(fine.sum(), 6'000'000);
  EXPECT_NEAR(static_cast<double>(fine.quantile(0.5)), 2'000'000, 2'000'000 * fine.relative_error());
}

TEST(Histogram, NegativeValuesCountInTheLowestBucketWithExactMinMaxSum) {
  Histogram h;
  h.record(-5000);
  h.record(-1000);
  h.record(2000);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.min(), -5000);
  EXPECT_EQ(h.max(), 2000);
  EXPECT_EQ(h.sum(), -4000);
  EXPECT_EQ(h.quantile(0), -5000);
  EXPECT_EQ(h.quantile(0.5), 0);  // the lowest bucket, clamped into [min, max]
  EXPECT_EQ(h.quantile(1), 2000);
}

TEST(Histogram, HugeValuesLandInTheTopOctave) {
  Histogram h;
  h.record(std::numeric_limits<int64_t>::max());
  h.record(int64_t{1} << 62);
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.max(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(h.quantile(1), std::numeric_limits<int64_t>::max());
  EXPECT_GE(h.quantile(0.5), int64_t{1} << 62);
}

TEST(Histogram, MemoryGrowsOneOctaveAtATimeAndResetKeepsIt) {
  Histogram h(7);
  const size_t empty = h.memory_bytes();
  for (int i = 0; i < 1000; ++i) h.record(17'000'000 + i * 1000);  // one octave: [2^24, 2^25) ns
  EXPECT_EQ(h.memory_bytes(), empty + 128 * sizeof(uint32_t));
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.memory_bytes(), empty + 128 * sizeof(uint32_t));
  h.record(5);
  EXPECT_EQ(h.quantile(0.5), 5);
  h.clear();
  EXPECT_EQ(h.memory_bytes(), empty);
}

TEST(Histogram, ForEachBucketVisitsInValueOrder) {
  Histogram h(3);  // 8 sub-buckets
  h.record(3);
  h.record(100);
  h.record(100);
  h.record(9);
  std::vector<Histogram::Bucket> seen;
  h.for_each_bucket([&](const Histogram::Bucket& b) { seen.push_back(b); });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].lower, 3);
  EXPECT_EQ(seen[0].count, 1u);
  // 9 in octave [8, 16) of width 1 (precision 3): exact.
  EXPECT_EQ(seen[1].lower, 9);
  EXPECT_EQ(seen[1].upper, 9);
  // 100 in [64, 128), width 2^(6-3) = 8: bucket [96, 103].
  EXPECT_EQ(seen[2].lower, 96);
  EXPECT_EQ(seen[2].upper, 103);
  EXPECT_EQ(seen[2].count, 2u);
}

// ---- Export layout -------------------------------------------------------------------------------------

TEST(HistogramExportLayout, DefaultLayoutAndSeriesCount) {
  const ExportLayout layout;
  const auto& b = layout.bounds_s();
  // 5 coarse (15.625, 31.25, 62.5, 125, 250 µs) + 8 doublings x 16 fine (0.5 .. 128 ms) + 6 coarse
  // (128 ms .. 4.096 s) = 139 finite bounds; + Inf = 140 buckets; + _sum + _count = 142 series.
  EXPECT_EQ(b.size(), 139u);
  EXPECT_EQ(layout.bucket_count(), 140u);
  EXPECT_EQ(layout.series_count(), 142u);
  EXPECT_DOUBLE_EQ(b.front(), 15.625e-6);
  EXPECT_DOUBLE_EQ(b[4], 250e-6);
  EXPECT_DOUBLE_EQ(b[5], 0.0005);
  EXPECT_DOUBLE_EQ(b[6], 0.00053125);  // 0.5 ms * 17/16
  EXPECT_DOUBLE_EQ(b.back(), 4.096);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  EXPECT_EQ(std::adjacent_find(b.begin(), b.end()), b.end());
  // Between 16 and 32 ms every millisecond is a boundary (exact decimal values for the `le` label).
  for (int ms = 16; ms <= 32; ++ms) {
    EXPECT_NE(std::find(b.begin(), b.end(), ms / 1000.0), b.end()) << ms;
  }
  EXPECT_EQ(export_bucket_bounds(), b);
}

TEST(HistogramExportLayout, TwentyAndTwentyOneMillisecondsFallInDifferentBuckets) {
  const ExportLayout layout;
  const size_t at20 = layout.bucket_index(20'000'000);
  const size_t at21 = layout.bucket_index(21'000'000);
  EXPECT_NE(at20, at21);
  EXPECT_DOUBLE_EQ(layout.bounds_s()[at20], 0.020);  // le is inclusive: 20.000 ms counts in le="0.02"
  EXPECT_DOUBLE_EQ(layout.bounds_s()[at21], 0.021);
  // Any 1 ms change between 16 and 31 ms crosses a boundary.
  for (int64_t v = 16'000'000; v <= 31'000'000; v += 50'000) {
    EXPECT_NE(layout.bucket_index(v), layout.bucket_index(v + 1'000'000)) << v;
  }
}

TEST(HistogramExportLayout, BucketIndexMatchesLinearSearch) {
  for (uint32_t n : {1u, 3u, 4u, 8u, 16u, 64u}) {
    ExportBucketOptions options;
    options.buckets_per_doubling = n;
    const ExportLayout layout(options);
    std::vector<int64_t> probes = {std::numeric_limits<int64_t>::min(),
                                   -1,
                                   0,
                                   1,
                                   15'625,
                                   15'626,
                                   499'999,
                                   500'000,
                                   500'001,
                                   20'000'000,
                                   128'000'000,
                                   4'096'000'000,
                                   4'096'000'001,
                                   std::numeric_limits<int64_t>::max()};
    for (double bound : layout.bounds_s()) {
      const auto ns = static_cast<int64_t>(std::llround(bound * 1e9));
      for (int64_t d = -2; d <= 2; ++d) probes.push_back(ns + d);
    }
    std::mt19937_64 rng(11);
    for (int i = 0; i < 5000; ++i) probes.push_back(static_cast<int64_t>(rng() % 6'000'000'000ULL));
    for (int64_t v : probes) {
      const size_t index = layout.bucket_index(v);
      // Prometheus semantics: the first bound >= value.
      size_t expected = 0;
      while (expected < layout.bounds_s().size() &&
             static_cast<double>(v) > layout.bounds_s()[expected] * 1e9 * (1 + 1e-12)) {
        ++expected;
      }
      EXPECT_EQ(index, expected) << "n=" << n << " v=" << v;
    }
  }
}

TEST(HistogramExportLayout, ExactBoundaryValuesAreInclusive) {
  const ExportLayout layout;
  const auto& b = layout.bounds_s();
  // Boundaries that are whole nanoseconds: the value equal to the bound is in that bucket, one more is not.
  for (size_t i = 0; i < b.size(); ++i) {
    const double ns = b[i] * 1e9;
    const double rounded = std::round(ns);
    if (std::fabs(ns - rounded) > 1e-6) continue;
    const auto v = static_cast<int64_t>(rounded);
    EXPECT_EQ(layout.bucket_index(v), i) << v;
    EXPECT_EQ(layout.bucket_index(v + 1), i + 1) << v;
  }
}

TEST(HistogramExportLayout, SeriesCountPerBucketsPerDoubling) {
  ExportBucketOptions options;
  options.buckets_per_doubling = 8;
  EXPECT_EQ(ExportLayout(options).series_count(), 78u);
  options.buckets_per_doubling = 4;
  EXPECT_EQ(ExportLayout(options).series_count(), 46u);
  // A narrower fine range: 1 ms .. 64 ms at N = 16: 6 coarse below (15.625 µs .. 0.5 ms) + 6 x 16 +
  // 7 coarse above (64 ms .. 4.096 s) = 109 bounds -> 112 series.
  options.buckets_per_doubling = 16;
  options.fine_min_s = 0.001;
  options.fine_max_s = 0.064;
  EXPECT_EQ(ExportLayout(options).bounds_s().size(), 109u);
  EXPECT_EQ(ExportLayout(options).series_count(), 112u);
}

TEST(HistogramExportLayout, LimitsRoundOutwardsToPowersOfTwoOfAMillisecond) {
  ExportBucketOptions options;
  options.buckets_per_doubling = 1;
  options.min_s = 0.0003;  // -> 0.25 ms
  options.fine_min_s = 0.0003;
  options.fine_max_s = 0.003;  // -> 4 ms
  options.max_s = 0.003;
  EXPECT_EQ(ExportLayout(options).bounds_s(), (std::vector<double>{0.00025, 0.0005, 0.001, 0.002, 0.004}));
}

TEST(HistogramExportLayout, RejectsBadOptions) {
  ExportBucketOptions options;
  options.buckets_per_doubling = 0;
  EXPECT_THROW(ExportLayout{options}, std::invalid_argument);
  options = {};
  options.buckets_per_doubling = 65;
  EXPECT_THROW(ExportLayout{options}, std::invalid_argument);
  options = {};
  options.fine_min_s = 0.2;  // above fine_max
  EXPECT_THROW(ExportLayout{options}, std::invalid_argument);
  options = {};
  options.min_s = -1;
  EXPECT_THROW(ExportLayout{options}, std::invalid_argument);
  options = {};
  options.max_s = std::nan("");
  EXPECT_THROW(ExportLayout{options}, std::invalid_argument);
}

TEST(HistogramExport, CumulativeCountsSumAndCount) {
  ExportHistogram h(std::make_shared<const ExportLayout>());
  h.record_ns(20'000'000);
  h.record_ns(20'400'000);
  h.record_ns(21'000'000);
  h.record_ns(10'000'000'000);  // +Inf
  EXPECT_EQ(h.count(), 4u);
  EXPECT_DOUBLE_EQ(h.sum_s(), 10.0614);
  const auto& bounds = h.layout().bounds_s();
  const auto cumulative = h.cumulative_counts();
  ASSERT_EQ(cumulative.size(), bounds.size() + 1);
  const auto index_of = [&](double le) {
    return static_cast<size_t>(std::find(bounds.begin(), bounds.end(), le) - bounds.begin());
  };
  EXPECT_EQ(cumulative[index_of(0.019)], 0u);
  EXPECT_EQ(cumulative[index_of(0.020)], 1u);
  EXPECT_EQ(cumulative[index_of(0.021)], 3u);
  EXPECT_EQ(cumulative[bounds.size() - 1], 3u);
  EXPECT_EQ(cumulative.back(), 4u);
  EXPECT_EQ(h.counts().back(), 1u);
}

}  // namespace
}  // namespace hubprobe
