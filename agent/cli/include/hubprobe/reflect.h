// SPDX-License-Identifier: Apache-2.0
// `hubprobe reflect`: a standalone STAMP session-reflector on one or more addresses.
#pragma once

#include <atomic>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "hubprobe/net.h"
#include "hubprobe/session_reflector.h"

namespace hubprobe {

struct ReflectOptions {
  std::vector<SocketAddress> listen;  ///< empty = 0.0.0.0:862 and [::]:862
  stamp::ReflectorOptions reflector;
  std::string interface;
  std::string backend = "kernel";
};

/// Opens the listening ports (errors returned before anything runs), then reflects until `stop`.
/// Prints the counters to `out` when it stops. Returns the exit status.
int run_reflector(const ReflectOptions& options, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop);

}  // namespace hubprobe
