// SPDX-License-Identifier: Apache-2.0
// Integration-test harness: the janitor, which removes what a test binary leaves behind when it dies
// without running its destructors (SIGINT, SIGTERM, abort, a crash, SIGKILL by a ctest timeout).
//
// Forked on first use, it holds one end of a socketpair on which the test binary announces each
// network namespace (before creating it) and each scratch directory, and withdraws them once removed.
// When the test binary dies the socket reaches EOF and the janitor removes whatever is still
// announced, then exits. It runs in its own session so a Ctrl-C reaches only the test binary.
// A forked child that announces anything gets a janitor of its own.
#pragma once

#include <sys/types.h>

#include <string>

namespace hubprobe::it {

enum class TrackedKind { kNamespace, kDirectory };

/// Announces a namespace name or an absolute directory path (only "hubprobe-it-" directories are ever
/// removed by the janitor).
void janitor_track(TrackedKind kind, const std::string& value);
/// Withdraws it once it has been removed normally.
void janitor_untrack(TrackedKind kind, const std::string& value);
/// The janitor's PID (forked on first use), for the harness self-test.
pid_t janitor_pid();

}  // namespace hubprobe::it
