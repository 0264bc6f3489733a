// SPDX-License-Identifier: Apache-2.0
// Reading a whole configuration file (the TOML file, the web configuration file): bounded, and with the
// errors the loader reports after the file's name.
#pragma once

#include <cstddef>
#include <string>

#include "hubprobe/result.h"

namespace hubprobe {

/// The whole regular file at `path`, at most `max_octets`. Errors read "cannot open: REASON" or
/// "cannot read: REASON" ("is a directory", "larger than N MiB", strerror), with errno as the code.
Result<std::string> read_text_file(const std::string& path, size_t max_octets);

}  // namespace hubprobe
