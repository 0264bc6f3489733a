// SPDX-License-Identifier: Apache-2.0
// Typed readers of TOML values (value_readers.h).
#include "value_readers.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include "config_limits.h"
#include "hubprobe/config.h"
#include "toml_report.h"

namespace hubprobe::config_detail {

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

}  // namespace hubprobe::config_detail
