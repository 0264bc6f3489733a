// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/systemd.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace hubprobe::systemd {
namespace {

// sd_notify returns > 0 when sent, 0 when NOTIFY_SOCKET is unset, and -errno on failure.
Result<void> send(const std::string& state) {
  const int rc = sd_notify(0, state.c_str());
  if (rc < 0) {
    std::string first_line = state.substr(0, state.find('\n'));
    return make_error("sd_notify(" + first_line + ") failed: " + std::strerror(-rc), -rc);
  }
  return {};
}

uint64_t monotonic_usec() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1'000;
}

}  // namespace

Result<void> notify_ready() { return send("READY=1"); }

Result<void> notify_reloading() { return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec())); }

Result<void> notify_stopping() { return send("STOPPING=1"); }

Result<void> notify_status(std::string_view text) {
  std::string line(text);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return send("STATUS=" + line);
}

Result<void> notify_watchdog() { return send("WATCHDOG=1"); }

std::optional<std::chrono::microseconds> watchdog_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec);
}

std::optional<std::chrono::microseconds> watchdog_ping_period() {
  auto interval = watchdog_interval();
  if (!interval) return std::nullopt;
  return *interval / 2;
}

}  // namespace hubprobe::systemd
