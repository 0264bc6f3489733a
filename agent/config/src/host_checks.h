// SPDX-License-Identifier: Apache-2.0
// The readers that look at the host: an interface must exist. (Key files, token files and certificate
// paths are read by Loader::read_key_file / read_file_path in host_checks.cpp, relative to the file's
// folder.) Internal to hubprobe_config.
#pragma once

#include <toml++/toml.h>

#include <string>

namespace hubprobe::config_detail {

/// A network interface name that exists on this host ("" = none).
std::string read_interface(const toml::node& node, const std::string& path);

}  // namespace hubprobe::config_detail
