// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/histogram.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace hubprobe {

// ---- Histogram ----------------------------------------------------------------------------------------

namespace {

/// dst[i] = min(dst[i] + src[i], 2^32 - 1). The main loop's trip count is a multiple of 8 so that the
/// compiler vectorises it at -O2.
void saturating_add(uint32_t* __restrict dst, const uint32_t* __restrict src, uint32_t n) {
  const uint32_t bulk = n & ~7u;
  for (uint32_t i = 0; i < bulk; ++i) {
    const uint32_t total = dst[i] + src[i];
    dst[i] = total | (0u - static_cast<uint32_t>(total < dst[i]));  // wrapped below dst[i]: saturate
  }
  for (uint32_t i = bulk; i < n; ++i) {
    const uint32_t total = dst[i] + src[i];
    dst[i] = total | (0u - static_cast<uint32_t>(total < dst[i]));
  }
}

}  // namespace

Histogram::Histogram(int precision_bits) : bits_(std::clamp(precision_bits, kMinPrecisionBits, kMaxPrecisionBits)) {
  slot_.fill(kNoSlot);
}

void Histogram::index_of(int64_t value, int& octave, uint32_t& sub) const {
  const uint64_t m = sub_buckets();
  if (value < 0) value = 0;
  const auto v = static_cast<uint64_t>(value);
  if (v < m) {
    octave = 0;
    sub = static_cast<uint32_t>(v);
    return;
  }
  const int e = 63 - std::countl_zero(v);  // v in [2^e, 2^(e+1)), e >= bits_
  octave = e - bits_ + 1;
  sub = static_cast<uint32_t>((v >> (e - bits_)) - m);
}

Histogram::Bucket Histogram::bounds(int octave, uint32_t sub) const {
  Bucket b;
  if (octave == 0) {
    b.lower = b.upper = sub;
    return b;
  }
  const int shift = octave - 1;
  const uint64_t lower = (uint64_t{sub_buckets()} + sub) << shift;
  const uint64_t width = uint64_t{1} << shift;
  b.lower = static_cast<int64_t>(lower);
  // The top octave ends at 2^63 - 1.
  b.upper = lower + (width - 1) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                ? std::numeric_limits<int64_t>::max()
                : static_cast<int64_t>(lower + (width - 1));
  return b;
}

uint32_t* Histogram::octave_counts(int octave) {
  return counts_.data() + size_t{slot_[static_cast<size_t>(octave)]} * sub_buckets();
}

const uint32_t* Histogram::octave_counts(int octave) const {
  return counts_.data() + size_t{slot_[static_cast<size_t>(octave)]} * sub_buckets();
}

uint32_t* Histogram::ensure_octave(int octave) {
  uint8_t& slot = slot_[static_cast<size_t>(octave)];
  if (slot == kNoSlot) {
    slot = static_cast<uint8_t>(counts_.size() / sub_buckets());
    counts_.resize(counts_.size() + sub_buckets(), 0);
    octaves_ |= uint64_t{1} << octave;
  }
  return counts_.data() + size_t{slot} * sub_buckets();
}

void Histogram::record_n(int64_t value, uint64_t n) {
  if (n == 0) return;
  int octave = 0;
  uint32_t sub = 0;
  index_of(value, octave, sub);
  uint32_t& c = ensure_octave(octave)[sub];
  const uint64_t total = uint64_t{c} + n;
  c = total > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                   : static_cast<uint32_t>(total);
  count_ += n;
  // Wrapping (not UB) beyond 2^63 in total.
  sum_ = static_cast<int64_t>(static_cast<uint64_t>(sum_) + static_cast<uint64_t>(value) * n);
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void Histogram::merge(const Histogram& other) {
  if (other.count_ == 0) return;
  if (other.bits_ != bits_) {
    const int64_t saved_min = std::min(min_, other.min_);
    const int64_t saved_max = std::max(max_, other.max_);
    const int64_t saved_sum = static_cast<int64_t>(static_cast<uint64_t>(sum_) + static_cast<uint64_t>(other.sum_));
    other.for_each_bucket([this](const Bucket& b) { record_n(b.lower + (b.upper - b.lower) / 2, b.count); });
    min_ = saved_min;
    max_ = saved_max;
    sum_ = saved_sum;
    return;
  }
  if (&other == this) {
    const Histogram copy = other;
    merge(copy);
    return;
  }
  // Allocate every missing octave first (one reallocation at most), then add.
  const uint64_t missing = other.octaves_ & ~octaves_;
  counts_.reserve(counts_.size() + static_cast<size_t>(std::popcount(missing)) * sub_buckets());
  for (uint64_t left = missing; left != 0; left &= left - 1) ensure_octave(std::countr_zero(left));
  for (uint64_t left = other.octaves_; left != 0; left &= left - 1) {
    const int octave = std::countr_zero(left);
    saturating_add(octave_counts(octave), other.octave_counts(octave), sub_buckets());
  }
  count_ += other.count_;
  sum_ = static_cast<int64_t>(static_cast<uint64_t>(sum_) + static_cast<uint64_t>(other.sum_));
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  sum_ = 0;
  min_ = std::numeric_limits<int64_t>::max();
  max_ = std::numeric_limits<int64_t>::min();
}

void Histogram::clear() {
  reset();
  slot_.fill(kNoSlot);
  octaves_ = 0;
  counts_.clear();
  counts_.shrink_to_fit();
}

double Histogram::relative_error() const { return std::ldexp(1.0, -(bits_ + 1)); }

Histogram::Bucket Histogram::bucket_of(int64_t value) const {
  int octave = 0;
  uint32_t sub = 0;
  index_of(value, octave, sub);
  Bucket b = bounds(octave, sub);
  if (slot_[static_cast<size_t>(octave)] != kNoSlot) b.count = octave_counts(octave)[sub];
  return b;
}

int64_t Histogram::quantile(double q) const {
  int64_t out = 0;
  quantiles(std::span<const double>(&q, 1), std::span<int64_t>(&out, 1));
  return out;
}

void Histogram::quantiles(std::span<const double> qs, std::span<int64_t> out) const {
  const size_t n = std::min(qs.size(), out.size());
  if (count_ == 0) {
    std::fill(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), 0);
    return;
  }
  // Nearest rank of each quantile, then one walk over the buckets in rank order.
  // No allocation for the usual handful of quantiles.
  constexpr size_t kInline = 16;
  std::array<uint64_t, kInline> rank_buffer{};
  std::array<size_t, kInline> order_buffer{};
  std::vector<uint64_t> rank_heap;
  std::vector<size_t> order_heap;
  if (n > kInline) {
    rank_heap.resize(n);
    order_heap.resize(n);
  }
  const std::span<uint64_t> ranks = n > kInline ? std::span<uint64_t>(rank_heap) : std::span(rank_buffer).first(n);
  const std::span<size_t> order = n > kInline ? std::span<size_t>(order_heap) : std::span(order_buffer).first(n);
  for (size_t i = 0; i < n; ++i) {
    const double q = std::isnan(qs[i]) ? 0.0 : std::clamp(qs[i], 0.0, 1.0);
    const double r = std::ceil(q * static_cast<double>(count_));
    ranks[i] = r < 1 ? 1 : std::min(count_, static_cast<uint64_t>(r));
  }
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranks[a] < ranks[b]; });

  size_t next = 0;
  // Ranks 1 and n are the exact min and max.
  while (next < n && ranks[order[next]] == 1) out[order[next++]] = min_;
  uint64_t seen = 0;
  const uint32_t m = sub_buckets();
  for (uint64_t left = octaves_; left != 0 && next < n; left &= left - 1) {
    const int octave = std::countr_zero(left);
    const uint32_t* counts = octave_counts(octave);
    for (uint32_t sub = 0; sub < m && next < n; ++sub) {
      if (counts[sub] == 0) continue;
      seen += counts[sub];
      while (next < n && ranks[order[next]] <= seen) {
        const uint64_t rank = ranks[order[next]];
        int64_t value = max_;
        if (rank < count_) {
          const Bucket b = bounds(octave, sub);
          value = std::clamp(b.lower + (b.upper - b.lower) / 2, min_, max_);
        }
        out[order[next++]] = value;
      }
    }
  }
  // Saturated bucket counts can leave ranks unreached: those are at the top.
  while (next < n) out[order[next++]] = max_;
}

size_t Histogram::memory_bytes() const { return sizeof(*this) + counts_.capacity() * sizeof(uint32_t); }

// ---- Export layout ------------------------------------------------------------------------------------

namespace {

constexpr double kNsPerMs = 1e6;
constexpr double kEpsilon = 1e-9;

int floor_log2_ms(double seconds) { return static_cast<int>(std::floor(std::log2(seconds * 1e3) + kEpsilon)); }
int ceil_log2_ms(double seconds) { return static_cast<int>(std::ceil(std::log2(seconds * 1e3) - kEpsilon)); }

}  // namespace

ExportLayout::ExportLayout(const ExportBucketOptions& options) : options_(options) {
  const uint32_t n = options.buckets_per_doubling;
  if (n < 1 || n > 64) throw std::invalid_argument("buckets_per_doubling must be between 1 and 64");
  const auto positive = [](double v) { return std::isfinite(v) && v > 0; };
  if (!positive(options.min_s) || !positive(options.fine_min_s) || !positive(options.fine_max_s) ||
      !positive(options.max_s)) {
    throw std::invalid_argument("histogram bucket limits must be positive and finite");
  }
  if (!(options.min_s <= options.fine_min_s && options.fine_min_s <= options.fine_max_s &&
        options.fine_max_s <= options.max_s)) {
    throw std::invalid_argument("histogram bucket limits must satisfy min <= fine_min <= fine_max <= max");
  }
  if (options.min_s < 1e-9 || options.max_s > 1e6) {
    throw std::invalid_argument("histogram bucket limits must lie between 1 ns and 1e6 s");
  }
  e_min_ = floor_log2_ms(options.min_s);
  e_lo_ = std::max(e_min_, floor_log2_ms(options.fine_min_s));
  e_hi_ = std::max(e_lo_, ceil_log2_ms(options.fine_max_s));
  e_max_ = std::max(e_hi_, ceil_log2_ms(options.max_s));
  const size_t total = static_cast<size_t>(e_lo_ - e_min_) + size_t{n} * static_cast<size_t>(e_hi_ - e_lo_) +
                       static_cast<size_t>(e_max_ - e_hi_ + 1);
  if (total > 4096) throw std::invalid_argument("histogram layout has more than 4096 buckets");

  std::vector<double> ms;
  ms.reserve(total);
  for (int e = e_min_; e < e_lo_; ++e) ms.push_back(std::ldexp(1.0, e));
  for (int e = e_lo_; e < e_hi_; ++e) {
    for (uint32_t i = 0; i < n; ++i) ms.push_back(std::ldexp(static_cast<double>(n + i), e) / n);
  }
  for (int e = e_hi_; e <= e_max_; ++e) ms.push_back(std::ldexp(1.0, e));
  bounds_s_.reserve(ms.size());
  bounds_ns_.reserve(ms.size());
  for (double v : ms) {
    bounds_s_.push_back(v / 1e3);
    bounds_ns_.push_back(v * kNsPerMs);
  }
}

size_t ExportLayout::bucket_index(int64_t value_ns) const {
  const size_t count = bounds_ns_.size();
  const auto lo_buckets = static_cast<size_t>(e_lo_ - e_min_);
  const size_t fine_buckets = size_t{options_.buckets_per_doubling} * static_cast<size_t>(e_hi_ - e_lo_);
  size_t guess = 0;
  if (value_ns > 0) {
    int p = 0;
    const double mantissa = std::frexp(static_cast<double>(value_ns) / kNsPerMs, &p);  // [0.5, 1)
    const int e = p - 1;                                                               // value in [2^e, 2^(e+1)) ms
    if (e < e_min_) {
      guess = 0;
    } else if (e < e_lo_) {
      guess = static_cast<size_t>(e + 1 - e_min_);
    } else if (e < e_hi_) {
      const double fraction = 2 * mantissa - 1;  // [0, 1)
      guess = lo_buckets + size_t{options_.buckets_per_doubling} * static_cast<size_t>(e - e_lo_) +
              static_cast<size_t>(std::ceil(fraction * options_.buckets_per_doubling));
    } else {
      guess = lo_buckets + fine_buckets + static_cast<size_t>(e + 1 - e_hi_);
    }
  }
  guess = std::min(guess, count);
  // The grid gives the right bucket or its neighbour (rounding at a boundary): settle exactly.
  const auto v = static_cast<double>(value_ns);
  while (guess > 0 && v <= bounds_ns_[guess - 1]) --guess;
  while (guess < count && v > bounds_ns_[guess]) ++guess;
  return guess;
}

std::vector<double> export_bucket_bounds(const ExportBucketOptions& options) {
  return ExportLayout(options).bounds_s();
}

ExportHistogram::ExportHistogram(std::shared_ptr<const ExportLayout> layout)
    : layout_(layout ? std::move(layout) : std::make_shared<const ExportLayout>()),
      counts_(layout_->bucket_count(), 0) {}

void ExportHistogram::record_ns(int64_t value_ns) {
  ++counts_[layout_->bucket_index(value_ns)];
  ++count_;
  sum_ns_ = static_cast<int64_t>(static_cast<uint64_t>(sum_ns_) + static_cast<uint64_t>(value_ns));
}

std::vector<uint64_t> ExportHistogram::cumulative_counts() const {
  std::vector<uint64_t> out(counts_.size());
  std::partial_sum(counts_.begin(), counts_.end(), out.begin());
  return out;
}

}  // namespace hubprobe
