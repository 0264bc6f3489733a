// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/send_path_estimator.h"

#include <algorithm>

namespace hubprobe::stamp {

void SendPathEstimator::on_sent(uint32_t tx_id, WallNs t3_read) {
  pending_[tx_id % kPending] = Pending{tx_id, t3_read, true};
}

void SendPathEstimator::on_tx_stamp(uint32_t tx_id, WallNs tx_stamp) {
  Pending& pending = pending_[tx_id % kPending];
  if (!pending.waiting || pending.tx_id != tx_id) {
    ++unmatched_;
    return;
  }
  pending.waiting = false;
  add(tx_stamp - pending.t3_read);
}

bool SendPathEstimator::add(int64_t latency_ns) {
  if (latency_ns < 0 || latency_ns > kMaxLatencyNs) {
    ++refused_;
    return false;
  }
  ++samples_;
  window_[next_] = latency_ns;
  next_ = (next_ + 1) % kWindow;
  filled_ = std::min(filled_ + 1, kWindow);
  longest_ = std::max(longest_, latency_ns);
  update();
  return true;
}

void SendPathEstimator::update() {
  if (filled_ < kMinSamples) {
    estimate_ = Estimate{0, longest_};
    return;
  }
  std::array<int64_t, kWindow> sorted = window_;
  const auto end = sorted.begin() + static_cast<std::ptrdiff_t>(filled_);
  std::sort(sorted.begin(), end);
  // The 10th percentile, not the median: a reply that left faster than the estimate would get a T3 after it
  // left, and the sender an RTT too short (negative on a short link). Below p10 the send path is tight.
  const int64_t p10 = sorted[filled_ / 10];
  const int64_t p90 = sorted[filled_ * 9 / 10];
  estimate_ = Estimate{p10, p90 - p10};
}

}  // namespace hubprobe::stamp
