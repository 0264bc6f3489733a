// SPDX-License-Identifier: Apache-2.0
// `hubprobe reflect`: a standalone STAMP session-reflector on one or more addresses.
#pragma once

#include <atomic>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "hubprobe/cli_usage.h"
#include "hubprobe/net.h"
#include "hubprobe/result.h"
#include "hubprobe/session_reflector.h"

namespace hubprobe {

/// The flags of `hubprobe reflect` as given (agent/cli/src/main.cpp binds them to the command line).
struct ReflectArgs : DataplaneArgs {
  std::vector<std::string> listen;  ///< ADDR[:PORT] each
  bool stateful = false;
  bool answer_short_requests = false;
  std::string key_file;
  std::string interface;
  bool ptp = false;
};

struct ReflectOptions {
  std::vector<SocketAddress> listen;  ///< empty = 0.0.0.0 and [::] on kDefaultStampPort
  stamp::ReflectorOptions reflector;
  std::string interface;
  dp::DataplaneOptions dataplane;
};

/// `hubprobe reflect`: checks the flags (a bad one is a usage error: one line on `err`, exit status 2),
/// then run_reflector(). Returns the exit status.
int reflect_command(const ReflectArgs& args, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop);

/// The options the flags stand for; the error is a usage error's message.
Result<ReflectOptions> reflect_options(const ReflectArgs& args);

/// Opens the listening ports (errors returned before anything runs), then reflects until `stop`.
/// Prints the counters to `out` when it stops. Returns the exit status.
int run_reflector(const ReflectOptions& options, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop);

}  // namespace hubprobe
