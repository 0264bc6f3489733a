// SPDX-License-Identifier: Apache-2.0
// One probe outcome, to the two places that judge it: the session's statistics (WindowedStats, whose
// PeerStateTracker gives /status its peer state and hubprobe_peer_up) and its hub's path selector (whose
// path state goes into the preference document). The tracker is the one judge of down and up; the selector
// takes its judgement, so the two never disagree about the same outcomes. Pure logic.
#pragma once

#include <string>

#include "hubprobe/path_selection.h"
#include "hubprobe/session_sender.h"
#include "hubprobe/window_stats.h"

namespace hubprobe {

/// Session `id`'s probe `event`, learnt at `now`: recorded in `stats` (windows on now.mono, the reply and
/// state changes dated with now.wall), then, for a reply or a loss, in `selector` (its hub's; null = none;
/// on now.mono), which then gets the peer state `stats` judged. A reply whose delays a clock step spoilt
/// (Sample::clock_stepped) is no outcome for the selector's SLA window; it still counts for the peer state.
void record_probe_event(WindowedStats& stats, PathSelector* selector, const std::string& id,
                        const stamp::ProbeEvent& event, const Now& now);

}  // namespace hubprobe
