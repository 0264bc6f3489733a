// SPDX-License-Identifier: Apache-2.0
// The loader's error reporting and the text helpers it uses (toml_report.h).
#include "toml_report.h"

#include <algorithm>
#include <sstream>
#include <vector>

namespace hubprobe::config_detail {
namespace {

// A control character as \xHH, so a message stays on one line and shows what the file holds.
void append_hex_escape(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 0xf];
}

}  // namespace

// A string as an operator would type it back: double-quoted, control characters escaped, long values cut.
std::string quote(std::string_view text) {
  constexpr size_t kShown = 64;
  std::string out = "\"";
  size_t characters = 0;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    const bool starts_character = (c & 0xc0) != 0x80;
    if (starts_character && characters++ == kShown) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      append_hex_escape(out, c);
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

bool is_bare_key(std::string_view key) {
  return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::string join(const std::string& path, std::string_view key) {
  const std::string part = is_bare_key(key) ? std::string(key) : quote(key);
  return path.empty() ? part : path + "." + part;
}

std::string indexed(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

// What the file holds at a node, for "got ...".
std::string describe(const toml::node& node) {
  std::ostringstream text;
  switch (node.type()) {
    case toml::node_type::string: return quote(node.as_string()->get());
    case toml::node_type::integer: return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point: text << *node.as_floating_point(); return text.str();
    case toml::node_type::boolean: return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::date: text << "a date (" << *node.as_date() << ")"; return text.str();
    case toml::node_type::time: text << "a time (" << *node.as_time() << ")"; return text.str();
    case toml::node_type::date_time: text << "a date-time (" << *node.as_date_time() << ")"; return text.str();
    case toml::node_type::array: return node.as_array()->empty() ? "an empty array" : "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::none: break;
  }
  return "nothing";
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

Position position_of(const toml::source_region& region) {
  Position position;
  if (region.begin.line > 0) {
    position.line = region.begin.line;
    position.column = std::max<uint32_t>(region.begin.column, 1);
  }
  return position;
}

[[noreturn]] void fail(const toml::source_region& where, const std::string& key_path, std::string message) {
  throw ConfigError{position_of(where), key_path, std::move(message)};
}

[[noreturn]] void expected(const toml::node& node, const std::string& key_path, std::string_view what) {
  fail(node.source(), key_path, "expected " + std::string(what) + ", got " + describe(node));
}

// A required key that is absent: reported at the table that should hold it.
[[noreturn]] void missing(const toml::node& table, const std::string& key_path, std::string_view what) {
  fail(table.source(), key_path, "required key is missing (expected " + std::string(what) + ")");
}

// Unknown keys are errors: a typo must not silently fall back to a default. Reports the first one in the file.
void check_keys(const toml::table& table, const std::string& path, std::span<const std::string_view> known) {
  const toml::key* first = nullptr;
  for (auto&& [key, value] : table) {
    (void)value;
    if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
    if (first == nullptr || position_of(key.source()) < position_of(first->source())) first = &key;
  }
  if (first == nullptr) return;
  std::string_view suggestion;
  size_t best = SIZE_MAX;
  for (std::string_view candidate : known) {
    const size_t distance = edit_distance(first->str(), candidate);
    if (distance < best) {
      best = distance;
      suggestion = candidate;
    }
  }
  std::string message = "unknown key";
  if (best <= 2 && best < suggestion.size() / 2) {
    message += " (did you mean \"" + std::string(suggestion) + "\"?)";
  } else {
    message += " (expected one of:";
    for (std::string_view candidate : known) message += " " + std::string(candidate);
    message += ")";
  }
  fail(first->source(), join(path, first->str()), message);
}

void check_keys(const toml::table& table, const std::string& path, std::initializer_list<std::string_view> known) {
  check_keys(table, path, std::span<const std::string_view>(known.begin(), known.size()));
}

// One line, always: toml++ quotes offending characters raw ("saw 't<newline>'"), and file names or
// values from the file may hold anything.
std::string escape_controls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      append_hex_escape(out, c);
    } else {
      out += ch;
    }
  }
  return out;
}

std::string format_error(const std::string& source, Position where, const std::string& key_path,
                         const std::string& message) {
  std::string text = source + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ": ";
  if (!key_path.empty()) text += key_path + ": ";
  return escape_controls(text + message);
}

}  // namespace hubprobe::config_detail
