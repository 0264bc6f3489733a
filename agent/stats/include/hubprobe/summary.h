// SPDX-License-Identifier: Apache-2.0
// Exact summaries of a finite run (the `hubprobe ping` summary): quantiles, jitter as IPDV, and loss
// split by direction. Pure functions, unit-tested against hand-computed references. The agent's
// streaming, windowed statistics are built for long-running sessions separately.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace hubprobe {

/// Summary of a set of values (microseconds in practice). Quantiles use the nearest-rank method:
/// p-quantile = the ceil(p * n)-th smallest value, so every reported value was really observed.
struct Distribution {
  size_t count = 0;
  double min = 0, mean = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, stddev = 0;
};
/// Summarises `values` (any order). Empty input gives count 0 and zeros. stddev is the population one.
Distribution summarize(std::vector<double> values);

/// Nearest-rank quantile of sorted values; q in [0, 1].
double nearest_rank(std::span<const double> sorted, double q);

/// A measured round trip identified by its sequence number.
struct SequencedDelay {
  uint32_t seq = 0;
  double delay = 0;
};

/// Jitter as IPDV (RFC 3393, RFC 5481 section 4.1): for each pair of consecutive sequence numbers that
/// were both answered, delay(i+1) - delay(i). Returns the IPDV values in sequence order.
std::vector<double> ipdv(std::vector<SequencedDelay> delays);
/// Mean absolute IPDV, 0 with fewer than two consecutive replies.
double mean_abs_ipdv(std::vector<SequencedDelay> delays);

/// A reply as the loss split sees it: our sequence number and the reflector's.
struct ReplySequence {
  uint32_t sender_seq = 0;
  uint32_t reflector_seq = 0;
};

/// Loss by direction. A stateful reflector numbers the packets it received, so between two replies
/// (s1, r1) and (s2, r2) the reflector got r2 - r1 of the s2 - s1 probes sent: the rest were lost on
/// the way there, and of those it got, the ones not answered here were lost on the way back.
struct LossSplit {
  uint64_t forward = 0;   ///< lost on the way to the reflector
  uint64_t backward = 0;  ///< lost on the way back
  uint64_t unknown = 0;   ///< lost, direction unknown (stateless reflector, after the last reply, restarts)
  uint64_t total() const { return forward + backward + unknown; }
};

/// Splits the loss of a run of `sent` probes (sequence numbers 0..sent-1) given the replies received
/// (any order, duplicates ignored). A reflector that echoes our sequence numbers (stateless) cannot tell
/// directions: when every reply has reflector_seq == sender_seq and some were lost, the loss is unknown.
LossSplit split_loss(uint64_t sent, std::vector<ReplySequence> replies);

}  // namespace hubprobe
