// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/config.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace hubprobe {
namespace {

constexpr int64_t kMicrosecond = 1'000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kMaxDuration = 1'000'000'000'000'000'000;  // ~31 years: far beyond any sane setting
constexpr size_t kMaxConfigOctets = 16u << 20;
constexpr off_t kMaxKeyFileOctets = 64 << 10;
constexpr size_t kMaxNameLength = 63;
constexpr int64_t kMaxRateLimitPps = 10'000'000;
constexpr int64_t kMinReceiveBuffer = 64 << 10;
constexpr int64_t kMaxReceiveBuffer = 1 << 30;
constexpr uint32_t kMaxPacketSize = 9000;
constexpr int64_t kMaxDownAfter = 1000;

// ---- Text helpers --------------------------------------------------------------------------------

// A control character as \xHH, so a message stays on one line and shows what the file holds.
void append_hex_escape(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 0xf];
}

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

// ---- The one error --------------------------------------------------------------------------------

struct Position {
  uint32_t line = 1;
  uint32_t column = 1;
  bool operator<(const Position& other) const { return line != other.line ? line < other.line : column < other.column; }
};

Position position_of(const toml::source_region& region) {
  Position position;
  if (region.begin.line > 0) {
    position.line = region.begin.line;
    position.column = std::max<uint32_t>(region.begin.column, 1);
  }
  return position;
}

// Thrown inside the loader only; parse_config turns it into the Error it returns.
struct ConfigError {
  Position where;
  std::string key_path;
  std::string message;
};

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

// ---- Typed readers: each one checks type and range, and fails with "expected ..., got ..." ------------

const toml::table* optional_table(const toml::table& parent, std::string_view key, const std::string& path,
                                  std::string_view what) {
  const toml::node* node = parent.get(key);
  if (node == nullptr) return nullptr;
  if (!node->is_table()) expected(*node, path, what);
  return node->as_table();
}

std::string_view read_string(const toml::node& node, const std::string& path, std::string_view what) {
  if (!node.is_string()) expected(node, path, what);
  return node.as_string()->get();
}

int64_t read_integer(const toml::node& node, const std::string& path, int64_t min, int64_t max, std::string_view what) {
  if (!node.is_integer()) expected(node, path, what);
  const int64_t value = node.as_integer()->get();
  if (value < min || value > max) expected(node, path, what);
  return value;
}

bool read_bool(const toml::node& node, const std::string& path) {
  if (!node.is_boolean()) expected(node, path, "true or false");
  return node.as_boolean()->get();
}

// One of a few words; returns its index.
size_t read_choice(const toml::node& node, const std::string& path, std::initializer_list<std::string_view> choices) {
  std::string what;
  size_t index = 0;
  for (std::string_view choice : choices) {
    if (index > 0) what += index + 1 == choices.size() ? " or " : ", ";
    what += "\"" + std::string(choice) + "\"";
    ++index;
  }
  const std::string_view text = read_string(node, path, what);
  const auto it = std::find(choices.begin(), choices.end(), text);
  if (it == choices.end()) expected(node, path, what);
  return static_cast<size_t>(it - choices.begin());
}

std::string read_name(const toml::node& node, const std::string& path, std::string_view example) {
  const std::string what = "a name of letters, digits, '.', '_' or '-' (at most " + std::to_string(kMaxNameLength) +
                           ", starting with a letter or digit) like \"" + std::string(example) + "\"";
  const std::string_view text = read_string(node, path, what);
  if (!valid_name(text)) expected(node, path, what);
  return std::string(text);
}

int64_t read_duration(const toml::node& node, const std::string& path, int64_t min, int64_t max) {
  const std::string_view text = read_string(node, path, "a duration like \"100ms\"");
  auto duration = parse_duration(text);
  if (!duration) expected(node, path, "a duration like \"100ms\" (units ns, us, ms, s, m, h)");
  if (*duration < min || *duration > max) {
    expected(node, path, "a duration from " + format_duration(min) + " to " + format_duration(max));
  }
  return *duration;
}

TimestampFormat read_timestamp_format(const toml::node& node, const std::string& path) {
  return read_choice(node, path, {"ntp", "ptp"}) == 0 ? TimestampFormat::kNtp : TimestampFormat::kPtp;
}

int read_dscp(const toml::node& node, const std::string& path) {
  constexpr std::string_view kWhat = "a DSCP 0..63 or a PHB name such as \"ef\" or \"af41\"";
  if (node.is_integer()) return static_cast<int>(read_integer(node, path, 0, 63, kWhat));
  auto dscp = parse_dscp(read_string(node, path, kWhat));
  if (!dscp) expected(node, path, kWhat);
  return *dscp;
}

// Not multicast; 0.0.0.0 and :: only when `allow_unspecified` (a listen address).
bool unicast(const SocketAddress& address, bool allow_unspecified) {
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(address.sockaddr_ptr());
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddr_ptr());
  const bool unspecified =
      address.is_v4() ? v4->sin_addr.s_addr == htonl(INADDR_ANY) : IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr);
  const bool multicast =
      address.is_v4() ? IN_MULTICAST(ntohl(v4->sin_addr.s_addr)) : IN6_IS_ADDR_MULTICAST(&v6->sin6_addr);
  return !multicast && (allow_unspecified || !unspecified);
}

// An IP address without a port (the port has its own key).
SocketAddress read_host(const toml::node& node, const std::string& path, std::string_view example,
                        bool allow_unspecified) {
  const std::string what = "a numeric IPv4 or IPv6 address like \"" + std::string(example) + "\"";
  const std::string_view text = read_string(node, path, what);
  // Parsing with two different default ports tells whether the text carried its own.
  auto with_1 = SocketAddress::parse(text, 1);
  auto with_2 = SocketAddress::parse(text, 2);
  if (!with_1 || !with_2) expected(node, path, what);
  if (with_1->port() == with_2->port()) expected(node, path, what + " without a port (the port has its own key)");
  const SocketAddress address = *with_1;
  if (!unicast(address, allow_unspecified)) expected(node, path, "a unicast " + what.substr(2));
  return address;
}

IpPrefix read_prefix(const toml::node& node, const std::string& path) {
  constexpr std::string_view kWhat = "a prefix like \"198.18.0.0/15\" or \"2001:db8::/32\"";
  const std::string_view text = read_string(node, path, kWhat);
  auto prefix = IpPrefix::parse(text);
  if (!prefix) {
    // IpPrefix says "bad prefix 'TEXT': why"; the file position and value already name the text.
    std::string why = prefix.error().message;
    const std::string lead = "bad prefix '" + std::string(text) + "': ";
    if (why.compare(0, lead.size(), lead) == 0) why.erase(0, lead.size());
    fail(node.source(), path, "expected " + std::string(kWhat) + ", got " + describe(node) + " (" + why + ")");
  }
  return *prefix;
}

std::vector<IpPrefix> read_prefixes(const toml::node& node, const std::string& path, bool allow_empty) {
  constexpr std::string_view kWhat = "an array of prefixes like [\"198.18.0.0/15\"]";
  if (!node.is_array()) expected(node, path, kWhat);
  const toml::array& array = *node.as_array();
  if (array.empty() && !allow_empty) expected(node, path, kWhat);
  std::vector<IpPrefix> prefixes;
  for (size_t i = 0; i < array.size(); ++i) prefixes.push_back(read_prefix(*array.get(i), indexed(path, i)));
  return prefixes;
}

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

// ---- The loader ------------------------------------------------------------------------------------

constexpr std::array<std::string_view, 8> kProbeKeys = {
    "interval", "size", "dscp", "timeout", "window", "down_after", "timestamp_format", "auth_key_file"};
constexpr std::array<std::string_view, 14> kPeerKeys = {
    "name",   "hub",        "address",          "port",          "interval", "size", "dscp", "timeout",
    "window", "down_after", "timestamp_format", "auth_key_file", "paths",    "sla"};
constexpr size_t kMaxSourcePorts = 64;

// Where a peer's effective probe settings were written in the table being read (null = inherited).
struct ProbeNodes {
  const toml::node* interval = nullptr;
  const toml::node* size = nullptr;
  const toml::node* timeout = nullptr;
  const toml::node* window = nullptr;
};

class Loader {
 public:
  explicit Loader(std::filesystem::path base_directory) : base_directory_(std::move(base_directory)) {}

  AgentConfig load(const toml::table& root);

 private:
  KeyFile read_key_file(const toml::node& node, const std::string& path);
  void read_agent(const toml::table& root, AgentConfig& config);
  void read_dataplane(const toml::table& root, AgentConfig& config);
  void read_reflector(const toml::table& root, AgentConfig& config);
  ProbeNodes read_probe_settings(const toml::table& table, const std::string& path, ProbeSettings& settings);
  void check_probe_settings(const toml::table& table, const std::string& path, const ProbeSettings& settings,
                            const ProbeNodes& nodes, bool inherits_from_probe);
  void read_paths(const toml::table& root, AgentConfig& config);
  void read_sla(const toml::table& root, AgentConfig& config);
  void check_sla_down_after(const AgentConfig& config) const;
  void resolve_peer_paths(const toml::table& table, const std::string& path, const AgentConfig& config,
                          PeerConfig& peer);
  void read_scheduler(const toml::table& root, AgentConfig& config);
  std::string read_file_path(const toml::node& node, const std::string& path, std::string_view what);
  BackoffConfig read_backoff(const toml::table& table, const std::string& path);
  void read_peers(const toml::table& root, AgentConfig& config);
  void read_metrics(const toml::table& root, AgentConfig& config);
  void read_logging(const toml::table& root, AgentConfig& config);

  std::filesystem::path base_directory_;
  std::map<std::string, std::shared_ptr<const stamp::HmacKey>> keys_;  // by resolved path: read once
  std::map<std::string, const toml::node*> sla_down_after_;            // [sla.NAME].down_after, by NAME
};

AgentConfig Loader::load(const toml::table& root) {
  check_keys(root, "",
             {"agent", "dataplane", "reflector", "probe", "peer", "path", "sla", "scheduler", "metrics", "logging"});
  AgentConfig config;
  read_agent(root, config);
  read_dataplane(root, config);
  read_reflector(root, config);
  if (const toml::table* probe = optional_table(root, "probe", "probe", "a table [probe]")) {
    check_keys(*probe, "probe", kProbeKeys);
    const ProbeNodes nodes = read_probe_settings(*probe, "probe", config.probe);
    check_probe_settings(*probe, "probe", config.probe, nodes, false);
  }
  read_paths(root, config);
  read_sla(root, config);
  read_peers(root, config);
  check_sla_down_after(config);
  read_scheduler(root, config);
  read_metrics(root, config);
  read_logging(root, config);
  return config;
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

void Loader::read_agent(const toml::table& root, AgentConfig& config) {
  constexpr std::string_view kIdExample = "gz-edge-01";
  constexpr std::string_view kHubExample = "gz";
  const toml::table* agent = optional_table(root, "agent", "agent", "a table [agent] with id and hub");
  if (agent == nullptr) missing(root, "agent.id", "a name like \"gz-edge-01\"");
  check_keys(*agent, "agent", {"id", "hub"});
  const toml::node* id = agent->get("id");
  if (id == nullptr) missing(*agent, "agent.id", "a name like \"gz-edge-01\"");
  config.agent.id = read_name(*id, "agent.id", kIdExample);
  const toml::node* hub = agent->get("hub");
  if (hub == nullptr) missing(*agent, "agent.hub", "a hub name like \"gz\"");
  config.agent.hub = read_name(*hub, "agent.hub", kHubExample);
}

void Loader::read_dataplane(const toml::table& root, AgentConfig& config) {
  const toml::table* dataplane = optional_table(root, "dataplane", "dataplane", "a table [dataplane]");
  if (dataplane == nullptr) return;
  check_keys(*dataplane, "dataplane", {"backend", "kernel"});
  if (const toml::node* backend = dataplane->get("backend")) {
    // Only the kernel backend exists in this build; xdp and dpdk join this list with their option tables.
    read_choice(*backend, "dataplane.backend", {"kernel"});
    config.dataplane.backend = "kernel";
  }
  const toml::table* kernel = optional_table(*dataplane, "kernel", "dataplane.kernel", "a table [dataplane.kernel]");
  if (kernel == nullptr) return;
  check_keys(*kernel, "dataplane.kernel", {"hardware_timestamps", "receive_buffer"});
  if (const toml::node* node = kernel->get("hardware_timestamps")) {
    config.dataplane.kernel.hardware_timestamps = read_bool(*node, "dataplane.kernel.hardware_timestamps");
  }
  if (const toml::node* node = kernel->get("receive_buffer")) {
    config.dataplane.kernel.receive_buffer = static_cast<int>(read_integer(
        *node, "dataplane.kernel.receive_buffer", kMinReceiveBuffer, kMaxReceiveBuffer,
        "a size in octets from " + std::to_string(kMinReceiveBuffer) + " to " + std::to_string(kMaxReceiveBuffer)));
  }
}

void Loader::read_reflector(const toml::table& root, AgentConfig& config) {
  ReflectorConfig& reflector = config.reflector;
  std::vector<SocketAddress> hosts = {SocketAddress::any(AF_INET, 0), SocketAddress::any(AF_INET6, 0)};
  const toml::table* table = optional_table(root, "reflector", "reflector", "a table [reflector]");
  if (table != nullptr) {
    check_keys(*table, "reflector",
               {"enabled", "listen", "port", "mode", "allow", "rate_limit_pps", "interface", "timestamp_format",
                "auth_key_file", "auth"});
    if (const toml::node* node = table->get("enabled")) reflector.enabled = read_bool(*node, "reflector.enabled");
    if (const toml::node* node = table->get("listen")) {
      constexpr std::string_view kWhat = "an array of addresses like [\"0.0.0.0\", \"::\"]";
      if (!node->is_array() || node->as_array()->empty()) expected(*node, "reflector.listen", kWhat);
      const toml::array& array = *node->as_array();
      hosts.clear();
      for (size_t i = 0; i < array.size(); ++i) {
        const std::string path = indexed("reflector.listen", i);
        SocketAddress host = read_host(*array.get(i), path, "198.18.0.1", true);
        if (std::find(hosts.begin(), hosts.end(), host) != hosts.end()) {
          expected(*array.get(i), path, "an address not listed before");
        }
        hosts.push_back(host);
      }
    }
    if (const toml::node* node = table->get("port")) {
      reflector.port = static_cast<uint16_t>(read_integer(*node, "reflector.port", 1, 65535, "a port 1..65535"));
    }
    if (const toml::node* node = table->get("mode")) {
      reflector.stateful = read_choice(*node, "reflector.mode", {"stateful", "stateless"}) == 0;
    }
    if (const toml::node* node = table->get("allow")) reflector.allow = read_prefixes(*node, "reflector.allow", true);
    if (const toml::node* node = table->get("rate_limit_pps")) {
      reflector.rate_limit_pps = static_cast<uint32_t>(
          read_integer(*node, "reflector.rate_limit_pps", 0, kMaxRateLimitPps,
                       "packets per second per source 0.." + std::to_string(kMaxRateLimitPps) + " (0 = unlimited)"));
    }
    if (const toml::node* node = table->get("interface")) {
      reflector.interface = read_interface(*node, "reflector.interface");
    }
    if (const toml::node* node = table->get("timestamp_format")) {
      reflector.timestamp_format = read_timestamp_format(*node, "reflector.timestamp_format");
    }
    if (const toml::node* node = table->get("auth_key_file")) {
      reflector.auth_key = read_key_file(*node, "reflector.auth_key_file");
    }
    if (const toml::node* node = table->get("auth")) {
      constexpr std::string_view kWhat = "[[reflector.auth]] entries (an array of tables)";
      if (!node->is_array()) expected(*node, "reflector.auth", kWhat);
      const toml::array& array = *node->as_array();
      for (size_t i = 0; i < array.size(); ++i) {
        const std::string path = indexed("reflector.auth", i);
        const toml::node& element = *array.get(i);
        if (!element.is_table()) expected(element, path, "a table with sources and key_file");
        const toml::table& entry = *element.as_table();
        check_keys(entry, path, {"sources", "key_file"});
        ReflectorSourceKey source_key;
        const toml::node* sources = entry.get("sources");
        if (sources == nullptr) missing(entry, path + ".sources", "an array of prefixes like [\"198.18.1.0/24\"]");
        source_key.sources = read_prefixes(*sources, path + ".sources", false);
        const toml::node* key_file = entry.get("key_file");
        if (key_file == nullptr) missing(entry, path + ".key_file", "a path to a file with a hex HMAC key");
        source_key.key = read_key_file(*key_file, path + ".key_file");
        if (!source_key.key) expected(*key_file, path + ".key_file", "a path to a file with a hex HMAC key");
        reflector.source_keys.push_back(std::move(source_key));
      }
    }
  }
  for (SocketAddress& host : hosts) host.set_port(reflector.port);
  reflector.listen = std::move(hosts);
}

ProbeNodes Loader::read_probe_settings(const toml::table& table, const std::string& path, ProbeSettings& settings) {
  ProbeNodes nodes;
  if (const toml::node* node = table.get("interval")) {
    settings.interval_ns = read_duration(*node, join(path, "interval"), kMillisecond, kHour);
    nodes.interval = node;
  }
  if (const toml::node* node = table.get("window")) {
    settings.window_ns = read_duration(*node, join(path, "window"), kSecond, kHour);
    nodes.window = node;
  }
  if (const toml::node* node = table.get("timeout")) {
    settings.timeout_ns = read_duration(*node, join(path, "timeout"), kMillisecond, kHour);
    nodes.timeout = node;
  }
  if (const toml::node* node = table.get("dscp")) settings.dscp = read_dscp(*node, join(path, "dscp"));
  if (const toml::node* node = table.get("down_after")) {
    settings.down_after =
        static_cast<uint32_t>(read_integer(*node, join(path, "down_after"), 1, kMaxDownAfter,
                                           "a count of lost probes 1.." + std::to_string(kMaxDownAfter)));
  }
  if (const toml::node* node = table.get("timestamp_format")) {
    settings.timestamp_format = read_timestamp_format(*node, join(path, "timestamp_format"));
  }
  if (const toml::node* node = table.get("auth_key_file")) {
    settings.auth_key = read_key_file(*node, join(path, "auth_key_file"));
  }
  if (const toml::node* node = table.get("size")) {
    settings.size = static_cast<uint32_t>(
        read_integer(*node, join(path, "size"), 44, kMaxPacketSize, "a packet size of 44..9000 octets"));
    nodes.size = node;
  }
  return nodes;
}

// Rules between fields. A value written in `table` is blamed where it is written; an inherited one (from
// [probe]) is blamed on the table that inherits it.
void Loader::check_probe_settings(const toml::table& table, const std::string& path, const ProbeSettings& settings,
                                  const ProbeNodes& nodes, bool inherits_from_probe) {
  const auto inherited = [&](std::string_view key) {
    return inherits_from_probe
               ? " (inherited from probe." + std::string(key) + "; set " + std::string(key) + " in this table)"
               : std::string();
  };
  const auto at_most_window = [&](const toml::node* node, std::string_view key, int64_t value) {
    if (value <= settings.window_ns) return;
    const std::string limit = "at most the window (" + format_duration(settings.window_ns) + ")";
    if (node != nullptr) expected(*node, join(path, key), "a duration " + limit);
    if (nodes.window != nullptr) {
      expected(*nodes.window, join(path, "window"),
               "a duration of at least the " + std::string(key) + " (" + format_duration(value) + ")");
    }
    fail(table.source(), join(path, key),
         "expected a duration " + limit + ", got " + quote(format_duration(value)) + inherited(key));
  };
  at_most_window(nodes.interval, "interval", settings.interval_ns);
  at_most_window(nodes.timeout, "timeout", settings.timeout_ns);

  const uint32_t base = static_cast<uint32_t>(stamp::base_length(settings.mode()));
  if (settings.size != 0 && settings.size < base) {
    const std::string what = "a packet size of " + std::to_string(base) + "..9000 octets (authenticated)";
    if (nodes.size != nullptr) expected(*nodes.size, join(path, "size"), what);
    fail(table.source(), join(path, "size"),
         "expected " + what + ", got " + std::to_string(settings.size) + inherited("size"));
  }
}

// ---- Paths, SLA classes, the scheduler ---------------------------------------------------------------

std::vector<uint16_t> read_source_ports(const toml::node& node, const std::string& path) {
  constexpr std::string_view kWhat =
      "an array of UDP ports and ranges like [40000, \"40010-40017\"] (at most 64 ports, 1..65535)";
  if (!node.is_array() || node.as_array()->empty()) expected(node, path, kWhat);
  const toml::array& array = *node.as_array();
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < array.size(); ++i) {
    const toml::node& element = *array.get(i);
    const std::string element_path = indexed(path, i);
    uint32_t first = 0;
    uint32_t last = 0;
    if (element.is_integer()) {
      first = last = static_cast<uint32_t>(read_integer(element, element_path, 1, 65535, kWhat));
    } else {
      const std::string text(read_string(element, element_path, kWhat));
      const size_t dash = text.find('-');
      const auto number = [&](std::string_view digits) -> uint32_t {
        if (digits.empty() || digits.size() > 5 ||
            !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          expected(element, element_path, kWhat);
        }
        const uint32_t value = static_cast<uint32_t>(std::stoul(std::string(digits)));
        if (value < 1 || value > 65535) expected(element, element_path, kWhat);
        return value;
      };
      if (dash == std::string::npos) {
        first = last = number(text);
      } else {
        first = number(std::string_view(text).substr(0, dash));
        last = number(std::string_view(text).substr(dash + 1));
      }
      if (last < first) expected(element, element_path, "a range whose first port is not above its last");
    }
    for (uint32_t port = first; port <= last; ++port) {
      if (std::find(ports.begin(), ports.end(), port) != ports.end()) {
        expected(element, element_path, "ports not listed before (port " + std::to_string(port) + " repeats)");
      }
      ports.push_back(static_cast<uint16_t>(port));
      if (ports.size() > kMaxSourcePorts) expected(element, element_path, kWhat);
    }
  }
  return ports;
}

std::vector<std::string> read_names(const toml::node& node, const std::string& path, std::string_view example) {
  const std::string what = "an array of names like [\"" + std::string(example) + "\"]";
  if (!node.is_array()) expected(node, path, what);
  const toml::array& array = *node.as_array();
  std::vector<std::string> names;
  for (size_t i = 0; i < array.size(); ++i) {
    std::string name = read_name(*array.get(i), indexed(path, i), example);
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      expected(*array.get(i), indexed(path, i), "a name not listed before");
    }
    names.push_back(std::move(name));
  }
  return names;
}

void Loader::read_paths(const toml::table& root, AgentConfig& config) {
  const toml::node* paths = root.get("path");
  if (paths == nullptr) return;
  if (!paths->is_array()) expected(*paths, "path", "[[path]] entries (an array of tables)");
  const toml::array& array = *paths->as_array();
  for (size_t i = 0; i < array.size(); ++i) {
    const std::string path = indexed("path", i);
    const toml::node& element = *array.get(i);
    if (!element.is_table()) expected(element, path, "a table with a name and how probes are pinned to the path");
    const toml::table& table = *element.as_table();
    check_keys(table, path, {"name", "interface", "source", "fwmark", "dscp", "source_ports", "hubs", "next_hop"});
    PathConfig entry;
    const toml::node* name = table.get("name");
    if (name == nullptr) missing(table, path + ".name", "a name like \"backbone-a\"");
    entry.name = read_name(*name, path + ".name", "backbone-a");
    for (const PathConfig& other : config.paths) {
      if (other.name == entry.name) expected(*name, path + ".name", "a name no other path uses");
    }
    if (const toml::node* node = table.get("next_hop")) {
      fail(node->source(), path + ".next_hop",
           "the kernel dataplane cannot pin a next hop per socket: give the path a fwmark and route that mark "
           "via the next hop with policy routing (ip rule add fwmark MARK table T; ip route add PEER via NEXT_HOP "
           "table T), see docs/configuration.md");
    }
    if (const toml::node* node = table.get("interface")) entry.interface = read_interface(*node, path + ".interface");
    if (const toml::node* node = table.get("source")) {
      entry.source = read_host(*node, path + ".source", "198.18.1.1", false);
      entry.source.set_port(0);
    }
    if (const toml::node* node = table.get("fwmark")) {
      entry.fwmark = static_cast<uint32_t>(
          read_integer(*node, path + ".fwmark", 0, UINT32_MAX, "a firewall mark 0..4294967295 (0 = none)"));
    }
    if (const toml::node* node = table.get("dscp")) entry.dscp = read_dscp(*node, path + ".dscp");
    if (const toml::node* node = table.get("source_ports")) {
      entry.source_ports = read_source_ports(*node, path + ".source_ports");
    }
    if (const toml::node* node = table.get("hubs")) entry.hubs = read_names(*node, path + ".hubs", "sh");
    config.paths.push_back(std::move(entry));
  }
}

void Loader::read_sla(const toml::table& root, AgentConfig& config) {
  SlaClass defaults;
  config.sla["default"] = defaults;
  const toml::table* classes = optional_table(root, "sla", "sla", "[sla.NAME] tables");
  if (classes == nullptr) return;
  for (auto&& [key, value] : *classes) {
    const std::string path = join("sla", key.str());
    if (!value.is_table()) expected(value, path, "a table [" + path + "] of SLA thresholds");
    if (!valid_name(key.str())) {
      fail(key.source(), path,
           "expected an SLA class name of letters, digits, '.', '_' or '-' (at most " + std::to_string(kMaxNameLength) +
               ", starting with a letter or digit) like \"gold\"");
    }
    const toml::table& table = *value.as_table();
    check_keys(table, path,
               {"rtt_p99", "jitter", "loss", "min_samples", "down_after", "window", "hold_down", "switch_margin",
                "switch_margin_ratio", "switch_after", "loss_penalty"});
    SlaClass sla = defaults;
    sla.name = std::string(key.str());
    if (const toml::node* node = table.get("rtt_p99")) {
      sla.rtt_p99_ns = read_duration(*node, path + ".rtt_p99", 0, kHour);
    }
    if (const toml::node* node = table.get("jitter")) sla.jitter_ns = read_duration(*node, path + ".jitter", 0, kHour);
    if (const toml::node* node = table.get("loss")) {
      constexpr std::string_view kWhat = "a loss ratio 0..1 like 0.01 or a percentage like \"1%\"";
      double ratio = -1;
      if (node->is_floating_point() || node->is_integer()) {
        ratio = node->is_integer() ? static_cast<double>(node->as_integer()->get()) : node->as_floating_point()->get();
      } else if (node->is_string()) {
        const std::string text = node->as_string()->get();
        if (text.size() >= 2 && text.back() == '%') {
          try {
            size_t used = 0;
            ratio = std::stod(text.substr(0, text.size() - 1), &used) / 100.0;
            if (used != text.size() - 1) ratio = -1;
          } catch (const std::exception&) {
            ratio = -1;
          }
        }
      }
      if (!(ratio >= 0 && ratio <= 1)) expected(*node, path + ".loss", kWhat);
      sla.loss_ratio = ratio;
    }
    if (const toml::node* node = table.get("min_samples")) {
      sla.min_samples =
          static_cast<uint32_t>(read_integer(*node, path + ".min_samples", 1, 1'000'000, "a count 1..1000000"));
    }
    if (const toml::node* node = table.get("down_after")) {
      (void)read_integer(*node, path + ".down_after", 1, kMaxDownAfter,
                         "a count of lost probes 1.." + std::to_string(kMaxDownAfter));
      sla_down_after_[sla.name] = node;
    }
    if (const toml::node* node = table.get("window"))
      sla.window_ns = read_duration(*node, path + ".window", kSecond, kHour);
    if (const toml::node* node = table.get("hold_down")) {
      sla.hold_down_ns = read_duration(*node, path + ".hold_down", 0, kHour);
    }
    if (const toml::node* node = table.get("switch_margin")) {
      sla.switch_margin_ns = read_duration(*node, path + ".switch_margin", 0, kSecond);
    }
    if (const toml::node* node = table.get("switch_margin_ratio")) {
      constexpr std::string_view kWhat = "a ratio 0..1 like 0.02";
      double ratio = -1;
      if (node->is_floating_point()) ratio = node->as_floating_point()->get();
      if (node->is_integer()) ratio = static_cast<double>(node->as_integer()->get());
      if (!(ratio >= 0 && ratio <= 1)) expected(*node, path + ".switch_margin_ratio", kWhat);
      sla.switch_margin_ratio = ratio;
    }
    if (const toml::node* node = table.get("switch_after")) {
      sla.switch_after_ns = read_duration(*node, path + ".switch_after", 0, kHour);
    }
    if (const toml::node* node = table.get("loss_penalty")) {
      sla.loss_penalty_ns = read_duration(*node, path + ".loss_penalty", 0, kHour);
    }
    config.sla[sla.name] = sla;
  }
}

// [sla.NAME].down_after is where the path's threshold once was. A path is down when its peer is (one
// judgement, by the peer's down_after), so the key is accepted only when it says what the peers of the class
// say: each [[peer]] that names it, or [probe] when none does (peers found in etcd take [probe]'s).
void Loader::check_sla_down_after(const AgentConfig& config) const {
  for (const auto& [name, node] : sla_down_after_) {
    const int64_t value = node->as_integer()->get();
    std::string other;
    bool named = false;
    for (const PeerConfig& peer : config.peers) {
      if (peer.sla != name) continue;
      named = true;
      if (peer.probe.down_after != value && other.empty()) {
        other = "peer \"" + peer.name + "\" has " + std::to_string(peer.probe.down_after);
      }
    }
    if (!named && config.probe.down_after != value) other = "[probe] has " + std::to_string(config.probe.down_after);
    if (other.empty()) continue;
    fail(node->source(), join(join("sla", name), "down_after"),
         "expected the down_after of the peers this class judges (" + other + "), got " + std::to_string(value) +
             " (a path is down when its peer is: set down_after in [probe] or [[peer]], and leave it out here)");
  }
}

bool same_family_or_unset(const SocketAddress& source, int family) {
  return !source.valid() || source.family() == family;
}

void Loader::resolve_peer_paths(const toml::table& table, const std::string& path, const AgentConfig& config,
                                PeerConfig& peer) {
  const int family = peer.address.family();
  if (const toml::node* node = table.get("paths")) {
    const std::vector<std::string> names = read_names(*node, path + ".paths", "backbone-a");
    if (names.empty()) expected(*node, path + ".paths", "at least one path name (or leave paths out)");
    for (size_t i = 0; i < names.size(); ++i) {
      const auto it = std::find_if(config.paths.begin(), config.paths.end(),
                                   [&](const PathConfig& candidate) { return candidate.name == names[i]; });
      const toml::node& element = *node->as_array()->get(i);
      if (it == config.paths.end()) {
        if (names[i] == "default") {
          peer.paths.push_back(PathConfig{});
          continue;
        }
        expected(element, indexed(path + ".paths", i), "the name of a [[path]] (or \"default\")");
      }
      if (!same_family_or_unset(it->source, family)) {
        expected(element, indexed(path + ".paths", i),
                 "a path whose source address has the peer's address family (path \"" + it->name + "\" has " +
                     it->source.host() + ")");
      }
      peer.paths.push_back(*it);
    }
  } else {
    peer.paths = default_paths_for(config.paths, peer.hub, family);
  }
  if (const toml::node* node = table.get("sla")) {
    peer.sla = read_name(*node, path + ".sla", "gold");
    if (config.sla.count(peer.sla) == 0) expected(*node, path + ".sla", "the name of an [sla.NAME] table");
  }
  // One selector per destination hub: its peers share one SLA class.
  for (const PeerConfig& other : config.peers) {
    if (other.hub == peer.hub && other.sla != peer.sla) {
      fail(table.source(), path + ".sla",
           "expected the SLA class of the other peers of hub \"" + peer.hub + "\" (\"" + other.sla + "\", peer \"" +
               other.name + "\"), got \"" + peer.sla + "\"");
    }
  }
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

BackoffConfig Loader::read_backoff(const toml::table& table, const std::string& path) {
  BackoffConfig backoff;
  if (const toml::node* node = table.get("backoff_initial")) {
    backoff.initial_ns = read_duration(*node, path + ".backoff_initial", kMillisecond, kHour);
  }
  if (const toml::node* node = table.get("backoff_max")) {
    backoff.max_ns = read_duration(*node, path + ".backoff_max", kMillisecond, kHour);
    if (backoff.max_ns < backoff.initial_ns) {
      expected(*node, path + ".backoff_max",
               "a duration of at least backoff_initial (" + format_duration(backoff.initial_ns) + ")");
    }
  }
  return backoff;
}

void Loader::read_scheduler(const toml::table& root, AgentConfig& config) {
  SchedulerConfig& scheduler = config.scheduler;
  const toml::table* table = optional_table(root, "scheduler", "scheduler", "a table [scheduler]");
  if (table == nullptr) return;
  check_keys(*table, "scheduler", {"state_dir", "refresh", "http", "etcd"});
  if (const toml::node* node = table->get("state_dir")) {
    constexpr std::string_view kWhat = "an absolute directory path like \"/var/lib/hubprobe\"";
    const std::string_view text = read_string(*node, "scheduler.state_dir", kWhat);
    if (text.empty() || text.front() != '/' || text.find('\0') != std::string_view::npos) {
      expected(*node, "scheduler.state_dir", kWhat);
    }
    scheduler.state_dir = std::string(text);
  }
  if (const toml::node* node = table->get("refresh")) {
    scheduler.refresh_ns = read_duration(*node, "scheduler.refresh", kSecond, kHour);
  }
  std::vector<std::string> names;
  const auto unique_name = [&](const toml::table& entry, const std::string& path, std::string fallback) {
    std::string name = std::move(fallback);
    const toml::node* node = entry.get("name");
    if (node != nullptr) name = read_name(*node, path + ".name", "scheduler-a");
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      if (node != nullptr) expected(*node, path + ".name", "a name no other sink uses");
      fail(entry.source(), path + ".name", "two sinks would both be called \"" + name + "\": give them names");
    }
    names.push_back(name);
    return name;
  };
  const auto tables = [&](std::string_view key) {
    std::vector<const toml::table*> entries;
    const toml::node* node = table->get(key);
    if (node == nullptr) return entries;
    const std::string path = "scheduler." + std::string(key);
    if (!node->is_array()) expected(*node, path, "[[" + path + "]] entries (an array of tables)");
    for (size_t i = 0; i < node->as_array()->size(); ++i) {
      const toml::node& element = *node->as_array()->get(i);
      if (!element.is_table()) expected(element, indexed(path, i), "a table");
      entries.push_back(element.as_table());
    }
    return entries;
  };
  const auto tls_files = [&](const toml::table& entry, const std::string& path, std::string& ca, std::string& cert,
                             std::string& key) {
    if (const toml::node* node = entry.get("ca_file")) {
      ca = read_file_path(*node, path + ".ca_file", "a readable CA bundle file (PEM)");
    }
    if (const toml::node* node = entry.get("client_cert_file")) {
      cert = read_file_path(*node, path + ".client_cert_file", "a readable client certificate file (PEM)");
    }
    if (const toml::node* node = entry.get("client_key_file")) {
      key = read_file_path(*node, path + ".client_key_file", "a readable client key file (PEM)");
    }
    if (cert.empty() != key.empty()) {
      fail(entry.source(), path + (cert.empty() ? ".client_cert_file" : ".client_key_file"),
           "required key is missing (client_cert_file and client_key_file go together)");
    }
  };
  const auto http_url = [](std::string_view text) {
    return text.rfind("http://", 0) == 0 || text.rfind("https://", 0) == 0;
  };

  const auto http_entries = tables("http");
  for (size_t i = 0; i < http_entries.size(); ++i) {
    const toml::table& entry = *http_entries[i];
    const std::string path = indexed("scheduler.http", i);
    check_keys(entry, path,
               {"name", "url", "timeout", "connect_timeout", "backoff_initial", "backoff_max", "bearer_token_file",
                "ca_file", "client_cert_file", "client_key_file"});
    HttpSinkConfig sink;
    sink.name = unique_name(entry, path, http_entries.size() == 1 ? "http" : "http" + std::to_string(i));
    const toml::node* url = entry.get("url");
    constexpr std::string_view kUrl = "an http:// or https:// URL like \"https://scheduler.example/v1/preferences\"";
    if (url == nullptr) missing(entry, path + ".url", kUrl);
    sink.url = std::string(read_string(*url, path + ".url", kUrl));
    if (!http_url(sink.url) || sink.url.find_first_of(" \t\r\n") != std::string::npos) {
      expected(*url, path + ".url", kUrl);
    }
    if (const toml::node* node = entry.get("timeout")) {
      sink.timeout_ns = read_duration(*node, path + ".timeout", kMillisecond, kMinute);
    }
    if (const toml::node* node = entry.get("connect_timeout")) {
      sink.connect_timeout_ns = read_duration(*node, path + ".connect_timeout", kMillisecond, kMinute);
    }
    sink.backoff = read_backoff(entry, path);
    sink.refresh_ns = scheduler.refresh_ns;
    if (const toml::node* node = entry.get("bearer_token_file")) {
      sink.bearer_token_file = read_file_path(*node, path + ".bearer_token_file", "a readable file holding a token");
      std::ifstream in(sink.bearer_token_file);
      std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
      while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(0, 1);
      const bool printable = std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
      if (!in.good() && !in.eof()) {
        fail(node->source(), path + ".bearer_token_file", "cannot read '" + sink.bearer_token_file + "'");
      }
      if (token.empty() || token.size() > 8192 || !printable) {
        fail(node->source(), path + ".bearer_token_file",
             "expected a file holding one token of printable characters, '" + sink.bearer_token_file +
                 "' holds something else");
      }
      sink.bearer_token = token;
    }
    tls_files(entry, path, sink.ca_file, sink.client_cert_file, sink.client_key_file);
    scheduler.http.push_back(std::move(sink));
  }

  const auto etcd_entries = tables("etcd");
  std::optional<size_t> discovering;  // the [[scheduler.etcd]] entry with discover = true
  for (size_t i = 0; i < etcd_entries.size(); ++i) {
    const toml::table& entry = *etcd_entries[i];
    const std::string path = indexed("scheduler.etcd", i);
    check_keys(entry, path,
               {"name", "endpoints", "prefix", "ttl", "timeout", "backoff_initial", "backoff_max", "register",
                "advertise", "discover", "discover_interval", "ca_file", "client_cert_file", "client_key_file"});
    EtcdSinkConfig sink;
    sink.name = unique_name(entry, path, etcd_entries.size() == 1 ? "etcd" : "etcd" + std::to_string(i));
    constexpr std::string_view kEndpoints = "an array of etcd client URLs like [\"http://198.18.0.254:2379\"]";
    const toml::node* endpoints = entry.get("endpoints");
    if (endpoints == nullptr) missing(entry, path + ".endpoints", kEndpoints);
    if (!endpoints->is_array() || endpoints->as_array()->empty()) expected(*endpoints, path + ".endpoints", kEndpoints);
    for (size_t j = 0; j < endpoints->as_array()->size(); ++j) {
      const toml::node& element = *endpoints->as_array()->get(j);
      std::string url(read_string(element, indexed(path + ".endpoints", j), kEndpoints));
      if (!http_url(url) || url.find_first_of(" \t\r\n") != std::string::npos) {
        expected(element, indexed(path + ".endpoints", j),
                 "an http:// or https:// URL like \"http://198.18.0.254:2379\"");
      }
      while (!url.empty() && url.back() == '/') url.pop_back();
      sink.endpoints.push_back(url);
    }
    if (const toml::node* node = entry.get("prefix")) {
      constexpr std::string_view kWhat = "a key prefix starting with '/' like \"/hubprobe\"";
      std::string prefix(read_string(*node, path + ".prefix", kWhat));
      while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
      if (prefix.empty() || prefix.front() != '/' || prefix.find('\0') != std::string::npos) {
        expected(*node, path + ".prefix", kWhat);
      }
      sink.prefix = prefix;
    }
    if (const toml::node* node = entry.get("ttl")) {
      sink.ttl_ns = read_duration(*node, path + ".ttl", 2 * kSecond, kHour);
      if (sink.ttl_ns % kSecond != 0) expected(*node, path + ".ttl", "whole seconds (etcd leases count seconds)");
    }
    if (const toml::node* node = entry.get("timeout")) {
      sink.timeout_ns = read_duration(*node, path + ".timeout", kMillisecond, kMinute);
    }
    sink.backoff = read_backoff(entry, path);
    if (const toml::node* node = entry.get("register")) sink.register_agent = read_bool(*node, path + ".register");
    const toml::node* advertise = entry.get("advertise");
    if (advertise != nullptr) {
      sink.advertise = read_host(*advertise, path + ".advertise", "198.18.0.1", false).host();
      if (!sink.register_agent) {
        expected(*advertise, path + ".advertise",
                 "no advertise with register = false (the address is written in the registration only)");
      }
    }
    if (const toml::node* node = entry.get("discover")) {
      sink.discover = read_bool(*node, path + ".discover");
      if (sink.discover && discovering.has_value()) {
        expected(
            *node, path + ".discover",
            "discover = true in one [[scheduler.etcd]] only (also " + indexed("scheduler.etcd", *discovering) + ")");
      }
      if (sink.discover) discovering = i;
    }
    if (const toml::node* node = entry.get("discover_interval")) {
      sink.discover_interval_ns = read_duration(*node, path + ".discover_interval", kSecond, kHour);
    }
    // An agent that discovers its peers and registers itself is in a discovering fleet: without an address,
    // its registration would be ignored by every other agent.
    if (sink.discover && sink.register_agent && advertise == nullptr) {
      missing(entry, path + ".advertise",
              "the numeric address other agents probe, like \"198.18.0.1\" (register = true with discover = true)");
    }
    tls_files(entry, path, sink.ca_file, sink.client_cert_file, sink.client_key_file);
    scheduler.etcd.push_back(std::move(sink));
  }
}

void Loader::read_peers(const toml::table& root, AgentConfig& config) {
  const toml::node* peers = root.get("peer");
  if (peers == nullptr) return;
  if (!peers->is_array()) expected(*peers, "peer", "[[peer]] entries (an array of tables)");
  const toml::array& array = *peers->as_array();

  struct Seen {
    size_t index;
    uint32_t line;
  };
  std::unordered_map<std::string, Seen> names;
  std::unordered_map<SocketAddress, Seen> addresses;
  const auto where = [&](const Seen& seen) {
    return indexed("peer", seen.index) + " \"" + config.peers[seen.index].name + "\", line " +
           std::to_string(seen.line);
  };

  for (size_t i = 0; i < array.size(); ++i) {
    const std::string path = indexed("peer", i);
    const toml::node& element = *array.get(i);
    if (!element.is_table()) expected(element, path, "a table with name, hub and address");
    const toml::table& table = *element.as_table();
    check_keys(table, path, kPeerKeys);

    PeerConfig peer;
    const toml::node* name = table.get("name");
    if (name == nullptr) missing(table, path + ".name", "a name like \"sg-edge-01\"");
    peer.name = read_name(*name, path + ".name", "sg-edge-01");
    if (auto it = names.find(peer.name); it != names.end()) {
      fail(name->source(), path + ".name",
           "expected a name no other peer uses, got " + describe(*name) + " (also " + where(it->second) + ")");
    }

    const toml::node* hub = table.get("hub");
    if (hub == nullptr) missing(table, path + ".hub", "a hub name like \"sg\"");
    peer.hub = read_name(*hub, path + ".hub", "sg");

    const toml::node* address = table.get("address");
    if (address == nullptr) missing(table, path + ".address", "a numeric IPv4 or IPv6 address like \"198.18.1.1\"");
    peer.address = read_host(*address, path + ".address", "198.18.1.1", false);
    uint16_t port = kDefaultStampPort;
    if (const toml::node* node = table.get("port")) {
      port = static_cast<uint16_t>(read_integer(*node, path + ".port", 1, 65535, "a port 1..65535"));
    }
    peer.address.set_port(port);

    peer.probe = config.probe;
    const ProbeNodes nodes = read_probe_settings(table, path, peer.probe);
    check_probe_settings(table, path, peer.probe, nodes, true);
    if (peer.probe.size == 0) peer.probe.size = static_cast<uint32_t>(stamp::base_length(peer.probe.mode()));
    resolve_peer_paths(table, path, config, peer);

    if (auto it = addresses.find(peer.address); it != addresses.end()) {
      fail(address->source(), path + ".address",
           "expected an address and port no other peer uses, got " + peer.address.to_string() + " (also " +
               where(it->second) + ")");
    }
    const uint32_t line = position_of(table.source()).line;
    names.emplace(peer.name, Seen{i, line});
    addresses.emplace(peer.address, Seen{i, line});
    config.peers.push_back(std::move(peer));
  }
}

void Loader::read_metrics(const toml::table& root, AgentConfig& config) {
  const toml::table* metrics = optional_table(root, "metrics", "metrics", "a table [metrics]");
  if (metrics == nullptr) return;
  check_keys(*metrics, "metrics", {"listen"});
  if (const toml::node* node = metrics->get("listen")) {
    // Debian 12's civetweb, which serves /metrics, is built without IPv6: an IPv4 address it is.
    constexpr std::string_view kWhat = "an IPv4 address and port like \"127.0.0.1:9862\"";
    auto listen = SocketAddress::parse(read_string(*node, "metrics.listen", kWhat), kDefaultMetricsPort);
    if (!listen || listen->port() == 0 || !listen->is_v4()) expected(*node, "metrics.listen", kWhat);
    config.metrics.listen = *listen;
  }
}

void Loader::read_logging(const toml::table& root, AgentConfig& config) {
  const toml::table* logging = optional_table(root, "logging", "logging", "a table [logging]");
  if (logging == nullptr) return;
  check_keys(*logging, "logging", {"level"});
  if (const toml::node* node = logging->get("level")) {
    config.logging.level = static_cast<LogLevel>(
        read_choice(*node, "logging.level", {"trace", "debug", "info", "warn", "error", "critical", "off"}));
  }
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

}  // namespace

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
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(escape_controls(path + ": cannot open: " + std::strerror(errno)), errno);
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode)) {
    ::close(fd);
    return make_error(escape_controls(path + ": cannot read: is a directory"), EISDIR);
  }
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      return make_error(escape_controls(path + ": cannot read: " + std::strerror(error)), error);
    }
    if (got == 0) break;
    text.append(buffer, static_cast<size_t>(got));
    if (text.size() > kMaxConfigOctets) {
      ::close(fd);
      return make_error(
          escape_controls(path + ": cannot read: larger than " + std::to_string(kMaxConfigOctets >> 20) + " MiB"),
          EFBIG);
    }
  }
  ::close(fd);
  return parse_config(text, path);
}

bool same_session(const PeerConfig& before, const PeerConfig& after) {
  const ProbeSettings& a = before.probe;
  const ProbeSettings& b = after.probe;
  const bool same_key = (!a.auth_key.key && !b.auth_key.key) ||
                        (a.auth_key.key && b.auth_key.key && a.auth_key.key->bytes == b.auth_key.key->bytes);
  return before.name == after.name && before.hub == after.hub && before.address == after.address && same_key &&
         a.interval_ns == b.interval_ns && a.size == b.size && a.dscp == b.dscp && a.timeout_ns == b.timeout_ns &&
         a.timestamp_format == b.timestamp_format && before.paths == after.paths;
}

bool ConfigDiff::empty() const {
  return peers_added.empty() && peers_removed.empty() && peers_restarted.empty() && peers_updated.empty() &&
         !agent_changed && !dataplane_changed && !reflector_changed && !probe_defaults_changed && !metrics_changed &&
         !logging_changed && !sla_changed && !scheduler_changed;
}

ConfigDiff diff_configs(const AgentConfig& before, const AgentConfig& after) {
  ConfigDiff diff;
  diff.agent_changed = !(before.agent == after.agent);
  diff.dataplane_changed = !(before.dataplane == after.dataplane);
  diff.reflector_changed = !(before.reflector == after.reflector);
  diff.probe_defaults_changed = !(before.probe == after.probe);
  diff.metrics_changed = !(before.metrics == after.metrics);
  diff.logging_changed = !(before.logging == after.logging);
  diff.sla_changed = before.sla != after.sla;
  diff.scheduler_changed = !(before.scheduler == after.scheduler);
  for (const PeerConfig& peer : after.peers) {
    const PeerConfig* old = before.find_peer(peer.name);
    if (old == nullptr) {
      diff.peers_added.push_back(peer.name);
    } else if (!same_session(*old, peer)) {
      diff.peers_restarted.push_back(peer.name);
    } else if (!(*old == peer)) {
      diff.peers_updated.push_back(peer.name);
    } else {
      diff.peers_unchanged.push_back(peer.name);
    }
  }
  for (const PeerConfig& peer : before.peers) {
    if (after.find_peer(peer.name) == nullptr) diff.peers_removed.push_back(peer.name);
  }
  return diff;
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
