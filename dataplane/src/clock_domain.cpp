// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/dataplane.h"

namespace hubprobe::dp {
namespace {

class RealtimeClock final : public ClockDomain {
 public:
  int64_t now() const override { return wall_now(); }
  WallStamp to_wall(int64_t raw) const override { return {raw, 0}; }
};

}  // namespace

const ClockDomain& realtime_clock() {
  static const RealtimeClock clock;
  return clock;
}

Timestamp to_wall(const ClockDomain& clock, Timestamp stamp) {
  if (!stamp.valid()) return stamp;
  return {clock.to_wall(stamp.ns).ns, stamp.source};
}

}  // namespace hubprobe::dp
