// SPDX-License-Identifier: Apache-2.0
// Typed readers of TOML values: each checks type and range and fails with "expected ..., got ..." at the
// value's position (toml_report.h). Pure: none of them looks at the host (see host_checks.h for those).
// Internal to hubprobe_config.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "hubprobe/net.h"
#include "hubprobe/prefix.h"
#include "hubprobe/stamp.h"

namespace hubprobe::config_detail {

/// The table at parent[key], nullptr when absent; anything but a table is an error.
const toml::table* optional_table(const toml::table& parent, std::string_view key, const std::string& path,
                                  std::string_view what);
std::string_view read_string(const toml::node& node, const std::string& path, std::string_view what);
int64_t read_integer(const toml::node& node, const std::string& path, int64_t min, int64_t max, std::string_view what);
bool read_bool(const toml::node& node, const std::string& path);
/// One of a few words; returns its index.
size_t read_choice(const toml::node& node, const std::string& path, std::initializer_list<std::string_view> choices);
std::string read_name(const toml::node& node, const std::string& path, std::string_view example);
int64_t read_duration(const toml::node& node, const std::string& path, int64_t min, int64_t max);
TimestampFormat read_timestamp_format(const toml::node& node, const std::string& path);
int read_dscp(const toml::node& node, const std::string& path);
/// Not multicast; 0.0.0.0 and :: only when `allow_unspecified` (a listen address).
bool unicast(const SocketAddress& address, bool allow_unspecified);
/// An IP address without a port (the port has its own key).
SocketAddress read_host(const toml::node& node, const std::string& path, std::string_view example,
                        bool allow_unspecified);
IpPrefix read_prefix(const toml::node& node, const std::string& path);
std::vector<IpPrefix> read_prefixes(const toml::node& node, const std::string& path, bool allow_empty);
/// Ports and "A-B" ranges, at most kMaxSourcePorts in all, no port twice.
std::vector<uint16_t> read_source_ports(const toml::node& node, const std::string& path);
/// An array of names (read_name), no name twice.
std::vector<std::string> read_names(const toml::node& node, const std::string& path, std::string_view example);

}  // namespace hubprobe::config_detail
