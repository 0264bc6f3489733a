// SPDX-License-Identifier: Apache-2.0
// The public side of hubprobe_config (hubprobe/config.h): parse_config/load_config, the small methods of
// the config types, and the text parsers the CLI shares (durations, DSCP, hosts).
#include "hubprobe/config.h"

#include "file_text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <ostream>

#include "config_limits.h"
#include "loader.h"
#include "toml_report.h"
#include "value_readers.h"

namespace hubprobe {

using namespace config_detail;

// ---- Public API --------------------------------------------------------------------------------------

bool KeyFile::operator==(const KeyFile& other) const {
  if (path != other.path) return false;
  if (!key || !other.key) return !key && !other.key;
  return key->bytes == other.key->bytes;
}

bool PathConfig::applies_to(const std::string& hub, int family) const {
  if (source.valid() && source.family() != family) return false;
  return hubs.empty() || std::find(hubs.begin(), hubs.end(), hub) != hubs.end();
}

std::vector<PathConfig> default_paths_for(const std::vector<PathConfig>& paths, const std::string& hub, int family) {
  std::vector<PathConfig> applying;
  for (const PathConfig& candidate : paths) {
    if (candidate.applies_to(hub, family)) applying.push_back(candidate);
  }
  if (applying.empty()) applying.push_back(PathConfig{});
  return applying;
}

// Agent ids, hub names, peer names: label values, file names and etcd key parts alike.
bool valid_name(std::string_view text) {
  const auto allowed = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  };
  return !text.empty() && text.size() <= kMaxNameLength && std::all_of(text.begin(), text.end(), allowed) &&
         text.front() != '.' && text.front() != '_' && text.front() != '-';
}

Result<SocketAddress> parse_unicast_host(std::string_view text) {
  // Parsing with two different default ports tells whether the text carried its own.
  auto with_1 = SocketAddress::parse(text, 1);
  auto with_2 = SocketAddress::parse(text, 2);
  if (!with_1 || !with_2) return make_error("not a numeric IPv4 or IPv6 address: " + quote(text), EINVAL);
  if (with_1->port() == with_2->port()) return make_error("an address with a port: " + quote(text), EINVAL);
  if (!unicast(*with_1, false)) return make_error("not a unicast address: " + quote(text), EINVAL);
  return *with_1;
}

bool ReflectorConfig::authenticated() const { return static_cast<bool>(auth_key) || !source_keys.empty(); }

bool ReflectorConfig::allows(const SocketAddress& source) const {
  return allow.empty() ||
         std::any_of(allow.begin(), allow.end(), [&](const IpPrefix& prefix) { return prefix.contains(source); });
}

std::shared_ptr<const stamp::HmacKey> ReflectorConfig::key_for(const SocketAddress& source) const {
  const ReflectorSourceKey* best = nullptr;
  unsigned best_length = 0;
  for (const ReflectorSourceKey& entry : source_keys) {
    for (const IpPrefix& prefix : entry.sources) {
      if (prefix.contains(source) && (best == nullptr || prefix.length() > best_length)) {
        best = &entry;
        best_length = prefix.length();
      }
    }
  }
  return best != nullptr ? best->key.key : auth_key.key;
}

SocketAddress MetricsConfig::default_listen() { return SocketAddress::parse("127.0.0.1", kDefaultMetricsPort).value(); }
SocketAddress CostmapConfig::default_listen() { return SocketAddress::parse("127.0.0.1", kDefaultCostmapPort).value(); }

const char* to_string(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kCritical: return "critical";
    case LogLevel::kOff: return "off";
  }
  return "info";
}

const PeerConfig* AgentConfig::find_peer(std::string_view name) const {
  for (const PeerConfig& peer : peers) {
    if (peer.name == name) return &peer;
  }
  return nullptr;
}

Result<AgentConfig> parse_config(std::string_view text, const std::string& source_name) {
  try {
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(source_name));
    } catch (const toml::parse_error& error) {
      return make_error(format_error(source_name, position_of(error.source()), "", std::string(error.description())),
                        EINVAL);
    }
    Loader loader(std::filesystem::path(source_name).parent_path());
    AgentConfig config = loader.load(root);
    config.source = source_name;
    return config;
  } catch (const ConfigError& error) {
    return make_error(format_error(source_name, error.where, error.key_path, error.message), EINVAL);
  } catch (const std::exception& error) {
    // Nothing above should throw anything else; if it does, it is still one line and not a crash.
    return make_error(escape_controls(source_name + ": cannot read the configuration: " + error.what()), EINVAL);
  }
}

Result<AgentConfig> load_config(const std::string& path) {
  auto text = read_text_file(path, kMaxConfigOctets);
  if (!text) return make_error(escape_controls(path + ": " + text.error().message), text.error().code);
  return parse_config(*text, path);
}

Result<int64_t> parse_duration(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return make_error("bad duration " + quote(text) + ": " + std::string(why) +
                          " (expected a number and a unit like \"100ms\", \"2.5s\" or \"1m30s\"; units ns, us, ms, "
                          "s, m, h)",
                      EINVAL);
  };
  if (text.empty()) return bad("empty");
  if (text.front() == '-' || text.front() == '+') return bad("no sign allowed");
  struct Unit {
    std::string_view name;
    int64_t ns;
  };
  // Longest names first, so "ms" is not read as "m" followed by "s".
  static constexpr std::array<Unit, 8> kUnits = {{{"ns", 1},
                                                  {"us", kMicrosecond},
                                                  {"\xc2\xb5s", kMicrosecond},  // µs (micro sign)
                                                  {"\xce\xbcs", kMicrosecond},  // μs (Greek mu)
                                                  {"ms", kMillisecond},
                                                  {"s", kSecond},
                                                  {"m", kMinute},
                                                  {"h", kHour}}};
  constexpr int kMaxDigits = 18;
  __int128 total = 0;
  size_t i = 0;
  while (i < text.size()) {
    __int128 whole = 0;
    int whole_digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (++whole_digits > kMaxDigits) return bad("too long");
      whole = whole * 10 + (text[i++] - '0');
    }
    __int128 fraction = 0;
    __int128 fraction_scale = 1;
    int fraction_digits = 0;
    if (i < text.size() && text[i] == '.') {
      ++i;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        if (fraction_digits < kMaxDigits) {  // digits beyond a nanosecond of an hour do not matter
          fraction = fraction * 10 + (text[i] - '0');
          fraction_scale *= 10;
        }
        ++fraction_digits;
        ++i;
      }
    }
    if (whole_digits == 0 && fraction_digits == 0) return bad("expected a number");
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (text.substr(i, candidate.name.size()) == candidate.name) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr) return bad(i < text.size() ? "unknown unit" : "missing unit");
    i += unit->name.size();
    total += whole * unit->ns + fraction * unit->ns / fraction_scale;
    if (total > kMaxDuration) return bad("too long");
  }
  return static_cast<int64_t>(total);
}

std::string format_duration(int64_t ns) {
  if (ns == 0) return "0s";
  if (ns < 0) {
    if (ns == INT64_MIN) return "-" + format_duration(INT64_MAX);
    return "-" + format_duration(-ns);
  }
  if (ns % kHour == 0) return std::to_string(ns / kHour) + "h";
  if (ns % kMinute == 0) return std::to_string(ns / kMinute) + "m";
  int64_t unit = 1;
  int digits = 0;
  std::string_view name = "ns";
  if (ns >= kSecond) {
    unit = kSecond, digits = 9, name = "s";
  } else if (ns >= kMillisecond) {
    unit = kMillisecond, digits = 6, name = "ms";
  } else if (ns >= kMicrosecond) {
    unit = kMicrosecond, digits = 3, name = "us";
  }
  std::string text = std::to_string(ns / unit);
  if (const int64_t rest = ns % unit; rest != 0) {
    std::string fraction = std::to_string(rest);
    fraction.insert(0, static_cast<size_t>(digits) - fraction.size(), '0');
    while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
    text += "." + fraction;
  }
  return text + std::string(name);
}

Result<int> parse_dscp(std::string_view text) {
  static const std::map<std::string, int, std::less<>> kNames = {
      {"be", 0},    {"cs0", 0},   {"cs1", 8},   {"cs2", 16},  {"cs3", 24},  {"cs4", 32},  {"cs5", 40},  {"cs6", 48},
      {"cs7", 56},  {"af11", 10}, {"af12", 12}, {"af13", 14}, {"af21", 18}, {"af22", 20}, {"af23", 22}, {"af31", 26},
      {"af32", 28}, {"af33", 30}, {"af41", 34}, {"af42", 36}, {"af43", 38}, {"ef", 46},   {"va", 44},   {"le", 1}};
  std::string lower;
  for (const char c : text) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (const auto it = kNames.find(lower); it != kNames.end()) return it->second;
  if (!text.empty() && text.size() <= 2 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    const int value = std::stoi(std::string(text));
    if (value <= 63) return value;
  }
  return make_error("bad DSCP " + quote(text) + ": expected 0..63 or a PHB name such as ef, af41 or cs5", EINVAL);
}

int check_config_command(const std::string& path, std::ostream& out, std::ostream& err) {
  const auto config = load_config(path);
  if (!config) {
    err << config.error().message << "\n";
    return kExitConfigError;
  }
  const size_t peers = config->peers.size();
  out << path << ": ok, " << peers << (peers == 1 ? " peer" : " peers") << "\n";
  return 0;
}

}  // namespace hubprobe
