// SPDX-License-Identifier: Apache-2.0
// The daemon's side of the systemd service protocol (sd_notify(3)): readiness, reload, stop, status
// text and the watchdog. Every call is a no-op that succeeds when NOTIFY_SOCKET is unset (run from a
// shell, a test, or a supervisor other than systemd). Thread-safe: each call sends one datagram.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "hubprobe/result.h"

namespace hubprobe::systemd {

/// "READY=1": start-up is complete (ports open, first config applied), and after a reload: the new
/// configuration is in effect (or the old one kept).
Result<void> notify_ready();

/// "RELOADING=1" with MONOTONIC_USEC=now: a reload started; send notify_ready() when it is done. The
/// timestamp is what systemd >= 253's Type=notify-reload expects; systemd 252 ignores it.
Result<void> notify_reloading();

/// "STOPPING=1": shutdown started (programs being detached, preferences being marked stale).
Result<void> notify_stopping();

/// "STATUS=text": one line shown by `systemctl status`. Newlines in `text` are replaced by spaces.
Result<void> notify_status(std::string_view text);

/// "WATCHDOG=1": the main loop is alive. Send it every watchdog_ping_period().
Result<void> notify_watchdog();

/// WatchdogSec= of the unit when systemd supervises this very process (WATCHDOG_USEC set and
/// WATCHDOG_PID, when set, equal to our PID); nullopt otherwise.
std::optional<std::chrono::microseconds> watchdog_interval();

/// Half the watchdog interval, the customary ping period (a late tick still arrives in time).
std::optional<std::chrono::microseconds> watchdog_ping_period();

}  // namespace hubprobe::systemd
