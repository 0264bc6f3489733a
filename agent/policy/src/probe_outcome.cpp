// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/probe_outcome.h"

namespace hubprobe {

void record_probe_event(WindowedStats& stats, PathSelector* selector, const std::string& id,
                        const stamp::ProbeEvent& event, const Now& now) {
  stats.on_event(event, now);
  if (selector == nullptr) return;
  if (event.kind == stamp::ProbeEvent::Kind::kReply && !event.sample.clock_stepped) {
    const stamp::Sample& sample = event.sample;
    if (sample.one_way_valid()) {
      selector->on_reply(id, now.mono, sample.rtt_ns(), sample.forward_ns(), sample.one_way_error_s());
    } else {
      selector->on_reply(id, now.mono, sample.rtt_ns());
    }
  } else if (event.kind == stamp::ProbeEvent::Kind::kLost) {
    selector->on_lost(id, now.mono);
  }
  selector->set_peer_state(id, stats.peer_state().state());
}

}  // namespace hubprobe
