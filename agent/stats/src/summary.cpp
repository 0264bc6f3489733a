// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/summary.h"

#include <algorithm>
#include <cmath>

namespace hubprobe {

double nearest_rank(std::span<const double> sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  const size_t index = rank < 1 ? 0 : std::min(sorted.size(), static_cast<size_t>(rank)) - 1;
  return sorted[index];
}

Distribution summarize(std::vector<double> values) {
  Distribution d;
  d.count = values.size();
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  d.mean = sum / static_cast<double>(values.size());
  double squares = 0;
  for (double v : values) squares += (v - d.mean) * (v - d.mean);
  d.stddev = std::sqrt(squares / static_cast<double>(values.size()));
  d.min = values.front();
  d.max = values.back();
  d.p50 = nearest_rank(values, 0.50);
  d.p90 = nearest_rank(values, 0.90);
  d.p99 = nearest_rank(values, 0.99);
  d.p999 = nearest_rank(values, 0.999);
  return d;
}

std::vector<double> ipdv(std::vector<SequencedDelay> delays) {
  std::sort(delays.begin(), delays.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
  std::vector<double> out;
  for (size_t i = 1; i < delays.size(); ++i) {
    if (delays[i].seq == delays[i - 1].seq + 1) out.push_back(delays[i].delay - delays[i - 1].delay);
  }
  return out;
}

double mean_abs_ipdv(std::vector<SequencedDelay> delays) {
  const auto variations = ipdv(std::move(delays));
  if (variations.empty()) return 0;
  double sum = 0;
  for (double v : variations) sum += std::fabs(v);
  return sum / static_cast<double>(variations.size());
}

LossSplit split_loss(uint64_t sent, std::vector<ReplySequence> replies) {
  std::sort(replies.begin(), replies.end(), [](const auto& a, const auto& b) { return a.sender_seq < b.sender_seq; });
  replies.erase(std::unique(replies.begin(), replies.end(),
                            [](const auto& a, const auto& b) { return a.sender_seq == b.sender_seq; }),
                replies.end());
  std::erase_if(replies, [&](const auto& r) { return r.sender_seq >= sent; });

  LossSplit loss;
  const bool stateful =
      std::any_of(replies.begin(), replies.end(), [](const auto& r) { return r.reflector_seq != r.sender_seq; });
  // Before the first probe the reflector had seen none of ours: a virtual reply (-1, -1).
  int64_t previous_sender = -1;
  int64_t previous_reflector = -1;
  for (const auto& reply : replies) {
    const int64_t sent_between = static_cast<int64_t>(reply.sender_seq) - previous_sender;
    const int64_t reached_between = static_cast<int64_t>(reply.reflector_seq) - previous_reflector;
    if (!stateful) {
      loss.unknown += static_cast<uint64_t>(sent_between - 1);
    } else if (reached_between >= 1 && reached_between <= sent_between) {
      loss.forward += static_cast<uint64_t>(sent_between - reached_between);
      loss.backward += static_cast<uint64_t>(reached_between - 1);
    } else {
      // The reflector restarted or numbers another way: this stretch cannot be split.
      loss.unknown += static_cast<uint64_t>(sent_between - 1);
    }
    previous_sender = reply.sender_seq;
    previous_reflector = reply.reflector_seq;
  }
  // Probes after the last reply: we cannot know which way they were lost.
  loss.unknown += sent - static_cast<uint64_t>(previous_sender + 1);
  return loss;
}

}  // namespace hubprobe
