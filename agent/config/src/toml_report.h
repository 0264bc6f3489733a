// SPDX-License-Identifier: Apache-2.0
// How the config loader reports: one error per file, FILE:LINE:COLUMN: key: expected ..., got ..., on one
// line. Internal to hubprobe_config.
#pragma once

#include <toml++/toml.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace hubprobe::config_detail {

/// A string as an operator would type it back: double-quoted, control characters escaped, long values cut.
std::string quote(std::string_view text);
/// "a.b" for a key under a path (quoted when it is not a bare TOML key); "a[3]" for an array element.
std::string join(const std::string& path, std::string_view key);
std::string indexed(const std::string& path, size_t index);
/// What the file holds at a node, for "got ...".
std::string describe(const toml::node& node);
size_t edit_distance(std::string_view a, std::string_view b);
/// One line, always: newlines, tabs and other control characters escaped.
std::string escape_controls(std::string_view text);

struct Position {
  uint32_t line = 1;
  uint32_t column = 1;
  bool operator<(const Position& other) const { return line != other.line ? line < other.line : column < other.column; }
};
Position position_of(const toml::source_region& region);

/// Thrown inside the loader only; parse_config turns it into the Error it returns.
struct ConfigError {
  Position where;
  std::string key_path;
  std::string message;
};

[[noreturn]] void fail(const toml::source_region& where, const std::string& key_path, std::string message);
/// "expected WHAT, got WHAT_THE_FILE_HOLDS".
[[noreturn]] void expected(const toml::node& node, const std::string& key_path, std::string_view what);
/// A required key that is absent: reported at the table that should hold it.
[[noreturn]] void missing(const toml::node& table, const std::string& key_path, std::string_view what);
/// Unknown keys are errors: a typo must not silently fall back to a default. Reports the first one in the
/// file, with a suggestion when one known key is close.
void check_keys(const toml::table& table, const std::string& path, std::span<const std::string_view> known);
void check_keys(const toml::table& table, const std::string& path, std::initializer_list<std::string_view> known);

std::string format_error(const std::string& source, Position where, const std::string& key_path,
                         const std::string& message);

}  // namespace hubprobe::config_detail
