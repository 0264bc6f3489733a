// SPDX-License-Identifier: Apache-2.0
// Integration-test harness: running the hubprobe CLI in a namespace and checking what it prints.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "netns.h"
#include "process.h"

namespace hubprobe::it {

/// The hubprobe CLI under test. $HUBPROBE_BIN_DIR, when set, names the directory holding the binaries
/// (HUBPROBE_BIN_DIR/hubprobe, e.g. /usr/bin for an installed package) or a build tree
/// (HUBPROBE_BIN_DIR/agent/cli/hubprobe); otherwise the build tree this test was compiled in.
std::string hubprobe_binary();
/// Why the binary cannot be run (missing, not executable), or nullopt.
std::optional<std::string> hubprobe_missing_reason();

/// The binary is a build dependency of the tests, so a missing one is a failure, never a skip.
#define HUBPROBE_REQUIRE_BINARY()                                             \
  do {                                                                        \
    if (const auto hp_missing_ = ::hubprobe::it::hubprobe_missing_reason()) { \
      FAIL() << *hp_missing_;                                                 \
    }                                                                         \
  } while (0)

/// `hubprobe args...` inside `ns`, to completion (killed past `timeout`).
CommandResult run_hubprobe(const Namespace& ns, const std::vector<std::string>& args, Seconds timeout);

/// Whether process `pid` has a UDP socket bound to `port` in the network namespace it lives in.
bool udp_port_bound(pid_t pid, uint16_t port);

/// `hubprobe reflect args...` running in `ns`; the constructor returns once it has entered the
/// namespace and bound UDP `port` (throws HarnessError with its output if it exits or times out).
class Reflector {
 public:
  Reflector(const Namespace& ns, const std::vector<std::string>& args, const std::filesystem::path& log_dir,
            const std::string& label, uint16_t port = 862);
  Process& process() { return *process_; }
  bool running() { return process_->running(); }
  std::string describe() const { return process_->describe(); }

 private:
  std::unique_ptr<Process> process_;
};

/// stdout of `hubprobe ping --json`: exactly one JSON object, nothing else but whitespace.
struct JsonReport {
  bool ok = false;
  nlohmann::json json;
  std::string error;
};
JsonReport parse_report(const std::string& out);

/// Checks every documented key of the --json report: types, counters that add up
/// (loss.total = forward + backward + unknown, received + loss.total = sent), loss_percent consistent
/// with the counts, and each of rtt_us / turnaround_us ordered min <= p50 <= p90 <= p99 <= max,
/// min <= mean <= max, stddev >= 0 (these may be null only when nothing was received).
::testing::AssertionResult report_well_formed(const nlohmann::json& report);
/// One statistics block (rtt_us, turnaround_us, owd_us): keys present, numeric and ordered.
::testing::AssertionResult stats_block_well_formed(const nlohmann::json& report, const std::string& key);

/// A counter of the report as an integer ("loss.forward" style paths); -1 when absent or not an integer.
int64_t counter(const nlohmann::json& report, const std::string& path);
/// A number of the report ("rtt_us.p50" style paths); NaN when absent or not a number.
double number(const nlohmann::json& report, const std::string& path);

/// One per-reply line: "44 bytes from 198.18.0.2:862: seq=3 rtt=0.045 ms turnaround=0.012 ms", possibly
/// followed by more " key=value" fields (as ping(8) adds ttl=).
struct ReplyLine {
  unsigned bytes = 0;
  std::string from;
  uint64_t seq = 0;
  double rtt_ms = 0;
  double turnaround_ms = 0;
};
/// The lines of `out` that look like per-reply lines ("N bytes from ..."). Lines that start like one
/// but do not parse are returned in `malformed`.
std::vector<ReplyLine> parse_reply_lines(const std::string& out, std::vector<std::string>* malformed = nullptr);

/// The number of non-empty lines of `text` (a single-line error message gives 1).
size_t count_lines(const std::string& text);

}  // namespace hubprobe::it
