// SPDX-License-Identifier: Apache-2.0
// What the commands of `hubprobe` share about their flags: how a usage error is reported, and the
// --auth-key-file flag and the dataplane flags.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>

#include "hubprobe/dataplane.h"
#include "hubprobe/result.h"
#include "hubprobe/stamp.h"

namespace hubprobe {

/// Exit status for usage errors, as ping(8) does.
constexpr int kUsageError = 2;

/// Prints "hubprobe: MESSAGE" on one line of `err` (the full help is one --help away); returns kUsageError.
int usage_error(std::ostream& err, const std::string& message);

/// The HMAC key in the file of --auth-key-file; null when `path` is empty (unauthenticated).
Result<std::shared_ptr<const stamp::HmacKey>> load_key_flag(const std::string& path);

/// --backend and --xdp-mode as given; the interface is -I (the xdp backend attaches there, and needs it).
struct DataplaneArgs {
  std::string backend = "kernel";
  std::string xdp_mode = "auto";
};

/// The dataplane the flags ask for; the error is a usage error's message.
Result<dp::DataplaneOptions> dataplane_flags(const DataplaneArgs& args, const std::string& interface);

}  // namespace hubprobe
