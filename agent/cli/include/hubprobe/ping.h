// SPDX-License-Identifier: Apache-2.0
// `hubprobe ping`: a one-shot STAMP measurement that behaves like ping(8), a one-session ProbeEngine.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>

#include "hubprobe/cli_usage.h"
#include "hubprobe/clock.h"
#include "hubprobe/net.h"
#include "hubprobe/result.h"
#include "hubprobe/stamp.h"

namespace hubprobe {

/// The flags of `hubprobe ping` as given (agent/cli/src/main.cpp binds them to the command line).
struct PingArgs : DataplaneArgs {
  std::string host;
  uint64_t count = 0;
  double interval_s = 1.0;
  uint32_t size = 0;
  std::string dscp;
  std::string interface;
  std::string source;
  uint16_t source_port = 0;
  uint32_t fwmark = 0;
  std::string key_file;
  double timeout_s = 2.0;
  bool json = false;
  bool quiet = false;
  bool ptp = false;
};

struct PingOptions {
  SocketAddress target;
  std::string target_text;              ///< as the user wrote it, for messages
  uint64_t count = 0;                   ///< 0 = until interrupted
  int64_t interval_ns = 1'000'000'000;  ///< between probes, on the monotonic clock
  uint32_t size = 0;                    ///< STAMP packet size, 0 = base length
  int dscp = -1;
  std::string interface;
  std::string source;  ///< local address, empty = any
  uint16_t source_port = 0;
  uint32_t fwmark = 0;
  std::shared_ptr<const stamp::HmacKey> key;  ///< set = authenticated mode
  TimestampFormat format = TimestampFormat::kNtp;
  int64_t timeout_ns = 2'000'000'000;  ///< a probe unanswered this long (monotonic) is lost
  bool json = false;
  bool quiet = false;
  dp::DataplaneOptions dataplane;
};

/// `hubprobe ping`: checks the flags (a bad one is a usage error: one line on `err`, exit status 2),
/// then run_ping(). Returns the exit status.
int ping_command(const PingArgs& args, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop);

/// The options the flags stand for; the error is a usage error's message (e.g. "-s: size must be ...").
Result<PingOptions> ping_options(const PingArgs& args);

/// Runs the measurement, prints reply lines and the summary (or JSON) to `out`, errors to `err`.
/// Returns the process exit status: 0 when replies came, 1 when none did, 2 when the source address does
/// not fit the target, 3 when the dataplane or its port could not start or a probe could not be built.
/// When `stop` becomes true (SIGINT) it sends no more, waits for the replies in flight (at most the
/// timeout) and still prints the summary.
int run_ping(const PingOptions& options, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop);

}  // namespace hubprobe
