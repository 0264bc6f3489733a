// SPDX-License-Identifier: Apache-2.0
// Streaming histograms for the agent's statistics. Pure logic: no I/O, no clock reads, not thread-safe
// (one owner).
//
// `Histogram` is a log-linear (HDR-style) histogram of integer values (nanoseconds in the agent) used
// for windowed quantiles. `ExportLayout` / `ExportHistogram` are the fixed-boundary histograms exported
// to Prometheus (`le` buckets in seconds), designed to resolve a 1 ms change at 20 ms.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

namespace hubprobe {

/// Log-linear histogram of int64 values (the agent records nanoseconds).
///
/// Layout, with P = precision bits and M = 2^P sub-buckets per power of two:
///   - values in [0, M) have buckets of width 1 (exact);
///   - values in [2^e, 2^(e+1)), e >= P, have M buckets of width 2^(e-P).
/// So a bucket is never wider than 2^-P of its lower edge. With P = 7 (the default) and nanoseconds:
/// exact below 128 ns, 1 µs wide or less below 262 µs, 156 µs wide at 20 ms.
///
/// Quantile error bound: quantile() reports the midpoint of the bucket holding the nearest-rank
/// value, clamped to [min, max]; the rank-1 and rank-n values are min and max exactly. The reported value
/// differs from the true nearest-rank value by at most half a bucket: |error| <= 2^-(P+1) of the true
/// value (0.39 % for P = 7, 0.78 % for P = 6, 1.6 % for P = 5), and 0 below M.
///
/// count, sum, min and max are exact. Negative values (a one-way delay under a clock offset) are counted
/// in the lowest bucket; min/max/sum keep their real values. Values at or above 2^62 land in the top bucket.
///
/// Memory: buckets are allocated one power of two ("octave") at a time, on first use, as M 32-bit counts
/// (512 bytes per octave for P = 7), so a histogram holds only the octaves its values touched (at most
/// 63 - P + 1). record() is O(1) (amortised: allocation happens once per new octave, never on the
/// steady path); reset() keeps the allocated octaves. A bucket count saturates at 2^32 - 1.
class Histogram {
 public:
  static constexpr int kMinPrecisionBits = 1;
  static constexpr int kMaxPrecisionBits = 12;
  static constexpr int kDefaultPrecisionBits = 7;

  /// precision_bits is clamped to [kMinPrecisionBits, kMaxPrecisionBits].
  explicit Histogram(int precision_bits = kDefaultPrecisionBits);

  void record(int64_t value) { record_n(value, 1); }
  void record_n(int64_t value, uint64_t n);
  /// Adds every value of `other`. Both must have the same precision; otherwise each of other's buckets is
  /// re-recorded at its midpoint (still correct within the coarser of the two bounds).
  void merge(const Histogram& other);
  /// Forgets all values, keeps the allocated octaves.
  void reset();
  /// Forgets all values and releases memory.
  void clear();

  uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  /// Exact; 0 when empty.
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return count_ ? max_ : 0; }
  /// Exact sum (wraps only beyond 2^63 in total, e.g. 292 years of nanoseconds).
  int64_t sum() const { return sum_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0; }

  /// Nearest-rank quantile (the ceil(q * n)-th smallest value, q in [0, 1]) within the bound above;
  /// 0 when empty.
  int64_t quantile(double q) const;
  /// Several quantiles in one pass; `out` must be as long as `qs`. qs need not be sorted.
  void quantiles(std::span<const double> qs, std::span<int64_t> out) const;

  int precision_bits() const { return bits_; }
  /// Relative bound of quantile(): 2^-(precision_bits + 1).
  double relative_error() const;
  /// The bucket [lower, upper] (inclusive) that `value` falls into.
  struct Bucket {
    int64_t lower = 0;
    int64_t upper = 0;
    uint64_t count = 0;
  };
  Bucket bucket_of(int64_t value) const;
  /// Calls f(const Bucket&) for every non-empty bucket in increasing value order.
  template <typename F>
  void for_each_bucket(F&& f) const {
    const uint32_t m = sub_buckets();
    for (uint64_t left = octaves_; left != 0; left &= left - 1) {
      const int octave = std::countr_zero(left);
      const uint32_t* counts = octave_counts(octave);
      for (uint32_t sub = 0; sub < m; ++sub) {
        if (counts[sub] == 0) continue;
        Bucket b = bounds(octave, sub);
        b.count = counts[sub];
        f(b);
      }
    }
  }

  /// Heap and object bytes in use.
  size_t memory_bytes() const;

 private:
  static constexpr int kOctaves = 64;
  static constexpr uint8_t kNoSlot = 0xff;

  uint32_t sub_buckets() const { return uint32_t{1} << bits_; }
  void index_of(int64_t value, int& octave, uint32_t& sub) const;
  Bucket bounds(int octave, uint32_t sub) const;
  uint32_t* octave_counts(int octave);
  const uint32_t* octave_counts(int octave) const;
  uint32_t* ensure_octave(int octave);

  int bits_;
  std::array<uint8_t, kOctaves> slot_;  ///< octave -> slot in counts_, kNoSlot when not allocated
  uint64_t octaves_ = 0;                ///< bit i set: octave i allocated
  std::vector<uint32_t> counts_;        ///< slots of 2^bits_ counts each, in allocation order
  uint64_t count_ = 0;
  int64_t sum_ = 0;
  int64_t min_ = std::numeric_limits<int64_t>::max();
  int64_t max_ = std::numeric_limits<int64_t>::min();
};

// ---- Prometheus export buckets ------------------------------------------------------------------------

/// Bucket boundaries for the exported RTT histogram. All boundaries lie on a grid anchored at 1 ms:
///   - coarse below: one bucket per doubling, 2^e ms for e in [log2(min_s/1ms), log2(fine_min_s/1ms));
///   - fine: `buckets_per_doubling` (N) equal-width buckets per doubling, 2^e * (1 + i/N) ms, between
///     fine_min_s and fine_max_s;
///   - coarse above: one bucket per doubling from fine_max_s up to and including max_s;
///   - then +Inf.
/// Limits are rounded outwards to powers of two of 1 ms (min and fine_min down, fine_max and max up).
///
/// With the defaults (N = 16, fine 0.5 ms .. 128 ms, coarse 15.625 µs .. 4.096 s) the fine buckets are
/// 1/16 of a doubling wide: 1 ms wide between 16 ms and 32 ms (boundaries at 16, 17, ..., 32 ms), so a
/// 1 ms change at 20 ms always crosses a boundary; 31.25 µs at 0.5 ms, 8 ms at 128 ms.
///
/// Series per (peer, path) for one exported histogram = finite bounds + 1 (+Inf) + 2 (_sum, _count):
///   N = 16 (default): 5 coarse + 128 fine + 6 coarse = 139 bounds -> 142 series
///   N =  8:           5 + 64 + 6 = 75 bounds -> 78 series (2 ms wide at 20 ms: tells 20 from 21 ms
///                     only because 20 ms is a boundary; does not resolve every 1 ms change)
///   N =  4:           5 + 32 + 6 = 43 bounds -> 46 series (4 ms wide at 20 ms)
/// A narrower fine range saves N series per doubling removed.
struct ExportBucketOptions {
  uint32_t buckets_per_doubling = 16;  ///< N, 1..64
  double min_s = 15.625e-6;            ///< lowest boundary (2^-6 ms)
  double fine_min_s = 0.0005;          ///< fine resolution from here (2^-1 ms)
  double fine_max_s = 0.128;           ///< ... up to here (2^7 ms)
  double max_s = 4.096;                ///< highest finite boundary (2^12 ms)
};

/// Immutable bucket layout, shared by every histogram that uses it.
class ExportLayout {
 public:
  /// Throws std::invalid_argument when the options are out of range (N not in 1..64, limits not
  /// positive and ordered min <= fine_min <= fine_max <= max, or more than 4096 buckets).
  explicit ExportLayout(const ExportBucketOptions& options = {});

  /// Finite upper bounds (Prometheus `le`) in seconds, strictly increasing; +Inf is implicit.
  const std::vector<double>& bounds_s() const { return bounds_s_; }
  /// Number of buckets including +Inf = bounds_s().size() + 1.
  size_t bucket_count() const { return bounds_s_.size() + 1; }
  /// Prometheus series per exported histogram: buckets (including +Inf) + _sum + _count.
  size_t series_count() const { return bucket_count() + 2; }
  /// Index of the bucket that counts `value_ns`: the first i with value <= bounds[i], or bounds.size()
  /// (+Inf). O(1): computed from the grid, then checked against the bounds.
  size_t bucket_index(int64_t value_ns) const;
  const ExportBucketOptions& options() const { return options_; }

 private:
  ExportBucketOptions options_;
  int e_min_ = 0, e_lo_ = 0, e_hi_ = 0, e_max_ = 0;  ///< grid exponents (powers of two of 1 ms)
  std::vector<double> bounds_s_;
  std::vector<double> bounds_ns_;
};

/// The boundaries export_layout(options).bounds_s() without keeping a layout.
std::vector<double> export_bucket_bounds(const ExportBucketOptions& options = {});

/// A cumulative (never reset) histogram over an ExportLayout, as a Prometheus histogram wants it.
/// Counters only grow, as Prometheus requires.
class ExportHistogram {
 public:
  explicit ExportHistogram(std::shared_ptr<const ExportLayout> layout);

  void record_ns(int64_t value_ns);
  const ExportLayout& layout() const { return *layout_; }
  std::shared_ptr<const ExportLayout> shared_layout() const { return layout_; }
  /// Per-bucket (non-cumulative) counts, bucket_count() long, the last one is +Inf.
  const std::vector<uint64_t>& counts() const { return counts_; }
  /// Cumulative counts (Prometheus `le` semantics), bucket_count() long; the last equals count().
  std::vector<uint64_t> cumulative_counts() const;
  uint64_t count() const { return count_; }
  /// Sum of the recorded values in seconds (kept exactly in nanoseconds).
  double sum_s() const { return static_cast<double>(sum_ns_) * 1e-9; }
  int64_t sum_ns() const { return sum_ns_; }
  size_t memory_bytes() const { return sizeof(*this) + counts_.capacity() * sizeof(uint64_t); }

 private:
  std::shared_ptr<const ExportLayout> layout_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  int64_t sum_ns_ = 0;
};

}  // namespace hubprobe
