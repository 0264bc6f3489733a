// SPDX-License-Identifier: Apache-2.0
// Where an installed hubprobed or hubprobe finds its configuration: SYSCONFDIR/hubprobe/hubprobe.toml
// of the prefix the program is installed in, found at run time from the program's own path, so that one
// build serves every prefix it is installed to (`cmake --install --prefix P`, the .deb's /usr).
#pragma once

#include <string>
#include <string_view>

namespace hubprobe {

/// SYSCONFDIR of an install prefix by GNUInstallDirs' rules (trailing slashes ignored): /etc for / and
/// /usr, /etc/opt/NAME for /opt/NAME (except under /opt/homebrew/), PREFIX/etc for any other.
std::string sysconfdir_of(std::string_view prefix);

/// The default configuration file of the program at `executable` (an absolute path): when it lies in a
/// folder named bin or sbin, its prefix is that folder's parent and the file is
/// sysconfdir_of(prefix)/hubprobe/hubprobe.toml; anywhere else (a build tree) `fallback`.
std::string default_config_for(std::string_view executable, std::string_view fallback);

/// default_config_for(this program, /proc/self/exe) with the build's configured default as fallback
/// (HUBPROBE_DEFAULT_CONFIG), which is also the answer when /proc/self/exe cannot be read or when the
/// build was configured with an absolute CMAKE_INSTALL_SYSCONFDIR (the same for every prefix).
std::string default_config_file();

}  // namespace hubprobe
