// SPDX-License-Identifier: Apache-2.0
// `hubprobe status`: what a running agent sees, read from its /status endpoint.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

namespace hubprobe {

/// Fetches http://ADDRESS/status (libcurl, short timeouts) and prints it as a table (or the JSON itself).
/// Returns 0, or 1 when the agent cannot be reached or answers with something else than its status.
int status_command(const std::string& address, bool json, std::ostream& out, std::ostream& err);

/// The table for a /status document (exposed for tests).
std::string format_status(const nlohmann::json& status);

}  // namespace hubprobe
