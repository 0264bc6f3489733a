// SPDX-License-Identifier: Apache-2.0
// The send path of a user-space reflector: how long a reply takes from the clock read that becomes its
// T3 to the kernel's (or NIC's) TX stamp of it, learnt from the TX stamps of recent replies. The
// reflector writes T3 as its clock read plus this estimate, and puts the estimate's spread into its
// Error Estimate (docs/architecture.md "The socket reflector's T3 and its send path"). Pure logic: the
// reflector service tells it which reply left with which TX key and T3 clock read, and which TX stamps
// came back.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "hubprobe/clock.h"

namespace hubprobe::stamp {

class SendPathEstimator {
 public:
  /// The estimate over the window of the latest samples.
  struct Estimate {
    /// What to add to a T3 clock read: the window's 10th percentile once it holds kMinSamples, else 0. Low
    /// rather than typical, so that a T3 is almost never later than its reply left (an RTT read short):
    /// the RTT reads high by the send path's spread above p10 instead, which the residual states.
    int64_t latency_ns = 0;
    /// How far one reply's send path may lie from latency_ns: p90 - p10 of the window; before kMinSamples
    /// (nothing added yet), the longest send path seen.
    int64_t residual_ns = 0;
    bool operator==(const Estimate&) const = default;
  };

  /// Samples the estimate is taken over: at one reply per 100 ms, the last 3.2 s. The 10th percentile
  /// ignores up to 90 % of them being slow (a preempted reply, a busy moment); it follows a lasting
  /// decrease after a tenth of the window and a lasting increase once 90 % of the window is new.
  static constexpr size_t kWindow = 32;
  /// Samples before the estimate is applied.
  static constexpr size_t kMinSamples = 8;
  /// A send path longer than this (or negative) is not one: a stamp matched to the wrong reply or a
  /// clock stepped between the read and the stamp. It is refused.
  static constexpr int64_t kMaxLatencyNs = 10'000'000;
  /// Replies remembered until their TX stamp comes back; a later reply with the same key modulo this
  /// takes the place of one whose stamp never came.
  static constexpr size_t kPending = 128;

  /// A reply left with TX key `tx_id` and T3 read (before the estimate was added) as `t3_read`.
  void on_sent(uint32_t tx_id, WallNs t3_read);
  /// The TX stamp for key `tx_id` arrived: its reply's send path becomes a sample. A key with no reply
  /// remembered is counted as unmatched.
  void on_tx_stamp(uint32_t tx_id, WallNs tx_stamp);
  /// One send path (TX stamp - T3 clock read) as a sample; false when refused (out of range).
  bool add(int64_t latency_ns);

  const Estimate& estimate() const { return estimate_; }
  uint64_t samples() const { return samples_; }      ///< accepted
  uint64_t refused() const { return refused_; }      ///< out of range
  uint64_t unmatched() const { return unmatched_; }  ///< stamps with no reply remembered

 private:
  struct Pending {
    uint32_t tx_id = 0;
    WallNs t3_read = 0;
    bool waiting = false;
  };
  void update();

  std::array<int64_t, kWindow> window_{};
  size_t next_ = 0;    ///< where the next sample goes
  size_t filled_ = 0;  ///< samples in the window
  int64_t longest_ = 0;
  std::array<Pending, kPending> pending_{};
  Estimate estimate_;
  uint64_t samples_ = 0, refused_ = 0, unmatched_ = 0;
};

}  // namespace hubprobe::stamp
