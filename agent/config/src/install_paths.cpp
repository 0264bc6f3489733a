// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/install_paths.h"

#include <filesystem>
#include <system_error>

#include "hubprobe_version.h"

namespace hubprobe {
namespace {

std::string_view without_trailing_slashes(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return path;
}

// The folder part of a path ("" for "/x", the whole path without a slash).
std::string_view parent_of(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
}

std::string_view name_of(std::string_view path) { return path.substr(path.rfind('/') + 1); }

}  // namespace

std::string sysconfdir_of(std::string_view prefix) {
  prefix = without_trailing_slashes(prefix);
  if (prefix.empty() || prefix == "/usr") return "/etc";
  if (prefix.starts_with("/opt/") && !prefix.starts_with("/opt/homebrew/")) return "/etc" + std::string(prefix);
  return std::string(prefix) + "/etc";
}

std::string default_config_for(std::string_view executable, std::string_view fallback) {
  const std::string_view folder = parent_of(executable);
  const std::string_view name = name_of(folder);
  if (!executable.starts_with('/') || (name != "bin" && name != "sbin")) return std::string(fallback);
  return sysconfdir_of(parent_of(folder)) + "/hubprobe/hubprobe.toml";
}

std::string default_config_file() {
  if (HUBPROBE_SYSCONFDIR_IS_ABSOLUTE) return HUBPROBE_DEFAULT_CONFIG;
  std::error_code error;
  const std::filesystem::path executable = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return HUBPROBE_DEFAULT_CONFIG;
  return default_config_for(executable.native(), HUBPROBE_DEFAULT_CONFIG);
}

}  // namespace hubprobe
