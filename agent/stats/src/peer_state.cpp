// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/peer_state.h"

#include <algorithm>

namespace hubprobe {

namespace {
/// a is after b in serial-number arithmetic (RFC 1982 style, 32 bits).
bool serial_after(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
}  // namespace

const char* to_string(PeerState state) {
  switch (state) {
    case PeerState::kUnknown: return "unknown";
    case PeerState::kUp: return "up";
    case PeerState::kDown: return "down";
  }
  return "unknown";
}

PeerStateTracker::PeerStateTracker(PeerStateOptions options) : options_(options) {}

bool PeerStateTracker::set_options(PeerStateOptions options, WallNs now) {
  options_ = options;
  return evaluate(now);
}

bool PeerStateTracker::on_reply(uint32_t seq, WallNs now) {
  // A reply newer than the newest counted loss ends the run of misses; an older one (events out of
  // order) is not part of the current run of replies either.
  const bool after_losses = !have_loss_ || serial_after(seq, newest_loss_);
  if (after_losses) miss_streak_ = 0;
  if (!have_reply_ || serial_after(seq, newest_reply_)) {
    newest_reply_ = seq;
    have_reply_ = true;
    if (after_losses && reply_streak_ < UINT32_MAX) ++reply_streak_;
  }
  return evaluate(now);
}

bool PeerStateTracker::on_lost(uint32_t seq, WallNs now) {
  // A loss older than an answered probe is an isolated gap in the past, not a run up to now.
  if (have_reply_ && !serial_after(seq, newest_reply_)) return false;
  if (!have_loss_ || serial_after(seq, newest_loss_)) newest_loss_ = seq;
  have_loss_ = true;
  if (miss_streak_ < UINT32_MAX) ++miss_streak_;
  reply_streak_ = 0;
  return evaluate(now);
}

void PeerStateTracker::on_sequence_restart() {
  have_reply_ = false;
  have_loss_ = false;
}

bool PeerStateTracker::evaluate(WallNs now) {
  const uint32_t down_after = std::max<uint32_t>(1, options_.down_after_lost);
  const uint32_t up_after = std::max<uint32_t>(1, options_.up_after_replies);
  if (state_ != PeerState::kDown && miss_streak_ >= down_after) {
    change(PeerState::kDown, now);
    return true;
  }
  if (state_ != PeerState::kUp && miss_streak_ == 0 && reply_streak_ >= 1 &&
      (state_ == PeerState::kUnknown || reply_streak_ >= up_after)) {
    change(PeerState::kUp, now);
    return true;
  }
  return false;
}

void PeerStateTracker::change(PeerState next, WallNs now) {
  state_ = next;
  last_change_ = now;
  ++transitions_;
  if (next == PeerState::kDown) ++down_transitions_;
}

}  // namespace hubprobe
