// SPDX-License-Identifier: Apache-2.0
// What the commands of `hubprobe` share about their flags: how a usage error is reported, and the
// --auth-key-file flag.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>

#include "hubprobe/result.h"
#include "hubprobe/stamp.h"

namespace hubprobe {

/// Exit status for usage errors, as ping(8) does.
constexpr int kUsageError = 2;

/// Prints "hubprobe: MESSAGE" on one line of `err` (the full help is one --help away); returns kUsageError.
int usage_error(std::ostream& err, const std::string& message);

/// The HMAC key in the file of --auth-key-file; null when `path` is empty (unauthenticated).
Result<std::shared_ptr<const stamp::HmacKey>> load_key_flag(const std::string& path);

}  // namespace hubprobe
