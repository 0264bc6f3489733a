// SPDX-License-Identifier: Apache-2.0
// The parts of loading that look at the host: interfaces, key files, token and certificate files.
#include "host_checks.h"

#include <net/if.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "config_limits.h"
#include "loader.h"
#include "toml_report.h"
#include "value_readers.h"

namespace hubprobe::config_detail {

std::string read_interface(const toml::node& node, const std::string& path) {
  constexpr std::string_view kWhat = "a network interface name like \"eth0\"";
  const std::string text(read_string(node, path, kWhat));
  if (text.empty()) return text;
  if (text.size() >= IF_NAMESIZE || text.find('/') != std::string::npos) expected(node, path, kWhat);
  if (if_nametoindex(text.c_str()) == 0) {
    fail(node.source(), path,
         "expected an existing network interface, got " + describe(node) + " (no such interface on this host)");
  }
  return text;
}

KeyFile Loader::read_key_file(const toml::node& node, const std::string& path) {
  constexpr std::string_view kWhat = "a path to a file with a hex HMAC key";
  const std::string_view text = read_string(node, path, kWhat);
  if (text.empty()) return {};  // explicitly none
  if (text.find('\0') != std::string_view::npos) expected(node, path, kWhat);
  std::filesystem::path file(text);
  if (file.is_relative() && !base_directory_.empty()) file = base_directory_ / file;
  KeyFile key_file{file.string(), nullptr};
  if (auto cached = keys_.find(key_file.path); cached != keys_.end()) {
    key_file.key = cached->second;
    return key_file;
  }
  const auto unreadable = [&](const std::string& why) {
    fail(node.source(), path, "expected a readable file with a hex HMAC key, got " + describe(node) + " (" + why + ")");
  };
  // A key is a small regular file; never read a device or a FIFO (think /dev/zero).
  struct stat info {};
  if (::stat(key_file.path.c_str(), &info) != 0) {
    unreadable("cannot open key file '" + key_file.path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(info.st_mode)) unreadable("'" + key_file.path + "' is not a regular file");
  if (info.st_size > kMaxKeyFileOctets) unreadable("'" + key_file.path + "' is too large for a key file");
  auto key = stamp::load_key_file(key_file.path);
  if (!key) unreadable(key.error().message);
  key_file.key = std::make_shared<const stamp::HmacKey>(std::move(key.value()));
  keys_.emplace(key_file.path, key_file.key);
  return key_file;
}

std::string Loader::read_file_path(const toml::node& node, const std::string& path, std::string_view what) {
  const std::string_view text = read_string(node, path, what);
  if (text.empty() || text.find('\0') != std::string_view::npos) expected(node, path, what);
  std::filesystem::path file(text);
  if (file.is_relative() && !base_directory_.empty()) file = base_directory_ / file;
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) {
    fail(node.source(), path,
         "expected " + std::string(what) + ", got " + describe(node) + " (cannot open '" + file.string() +
             "': " + std::strerror(errno) + ")");
  }
  if (!S_ISREG(info.st_mode)) {
    fail(node.source(), path,
         "expected " + std::string(what) + ", got " + describe(node) + " ('" + file.string() +
             "' is not a regular file)");
  }
  return file.string();
}

}  // namespace hubprobe::config_detail
