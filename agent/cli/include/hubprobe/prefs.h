// SPDX-License-Identifier: Apache-2.0
// `hubprobe prefs`: the fleet's path preferences, hub by hub, read from etcd or from files.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "hubprobe/etcd_client.h"

namespace hubprobe {

/// The flags of `hubprobe prefs` as given (agent/cli/src/main.cpp binds them to the command line).
struct PrefsArgs {
  std::string etcd;  ///< endpoints URL[,URL...]; empty = read `files`
  std::string prefix = "/hubprobe";
  std::vector<std::string> files;  ///< JSON files, or directories of *.json files
  EtcdClient::Options tls;         ///< CA and client certificate for https endpoints
};

/// Prints the preference table of every document found. Returns the exit status: 0 when at least one
/// valid document was shown, 1 when none was, 2 on a usage error (one line on `err`), 3 when etcd could
/// not be read.
int prefs_command(const PrefsArgs& args, std::ostream& out, std::ostream& err);

}  // namespace hubprobe
