// SPDX-License-Identifier: Apache-2.0
// Peer reachability (up / down) from the outcome of each probe. Pure logic driven by probe events and a
// time passed in: no I/O, no clock reads, not thread-safe (one owner). The one judgement of down: the
// path selector takes it as the path's down (hubprobe/probe_outcome.h). The time measures nothing: it
// only dates state changes (last_change(), a wall-clock time for documents).
#pragma once

#include <cstdint>

#include "hubprobe/clock.h"

namespace hubprobe {

enum class PeerState : uint8_t {
  kUnknown,  ///< no reply yet and fewer than down_after_lost consecutive losses
  kUp,
  kDown,
};
/// "unknown", "up", "down".
const char* to_string(PeerState state);

struct PeerStateOptions {
  /// Fail fast: down after this many consecutive probes lost (timed out). 0 is treated as 1.
  uint32_t down_after_lost = 3;
  /// Up again after this many consecutive replies once down. 0 is treated as 1. The first reply of a
  /// peer whose state is still unknown makes it up at once. Longer hold-downs (SLA path states,
  /// docs/design.md "Path preferences") are built on top of this reachability, not in it.
  uint32_t up_after_replies = 3;
};

/// Up/down tracker for one probe session.
///
/// "Consecutive" is in sequence-number order, robust to events that arrive out of order:
///   - a loss counts towards the miss streak only if no later probe (higher sequence number) has been
///     answered already; it resets the reply streak;
///   - a reply resets the miss streak unless it is older than the newest counted loss; it counts towards
///     the reply streak only if it is newer than every reply seen before.
/// Late replies (after the probe was declared lost) and duplicates do not change the state: the probe
/// was missed. Sequence numbers compare in serial-number arithmetic (they may wrap).
class PeerStateTracker {
 public:
  explicit PeerStateTracker(PeerStateOptions options = {});

  /// Changes the thresholds (config reload) keeping the state and the streaks; re-evaluates at `now`.
  /// Returns true when the state changed.
  bool set_options(PeerStateOptions options, WallNs now);
  const PeerStateOptions& options() const { return options_; }

  /// A reply to probe `seq`. Returns true when the state changed.
  bool on_reply(uint32_t seq, WallNs now);
  /// Probe `seq` timed out. Returns true when the state changed.
  bool on_lost(uint32_t seq, WallNs now);
  /// The sender restarted its numbering (a new session sender): forget sequence numbers, keep the state
  /// and the streak counts.
  void on_sequence_restart();

  PeerState state() const { return state_; }
  /// When the state last changed (0 = never: still unknown since creation).
  WallNs last_change() const { return last_change_; }
  /// Every state change, including the first one out of unknown.
  uint64_t transitions() const { return transitions_; }
  /// Changes to down (the number of outages seen).
  uint64_t down_transitions() const { return down_transitions_; }
  uint32_t consecutive_lost() const { return miss_streak_; }
  uint32_t consecutive_replies() const { return reply_streak_; }

 private:
  bool evaluate(WallNs now);
  void change(PeerState next, WallNs now);

  PeerStateOptions options_;
  PeerState state_ = PeerState::kUnknown;
  WallNs last_change_ = 0;
  uint64_t transitions_ = 0;
  uint64_t down_transitions_ = 0;
  uint32_t miss_streak_ = 0;
  uint32_t reply_streak_ = 0;
  bool have_reply_ = false;
  uint32_t newest_reply_ = 0;
  bool have_loss_ = false;
  uint32_t newest_loss_ = 0;
};

}  // namespace hubprobe
