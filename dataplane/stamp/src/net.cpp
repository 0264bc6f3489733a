// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/net.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

namespace hubprobe {
namespace {

constexpr std::string_view kExpectedForms = "expected ADDR, ADDR:PORT or [ADDR]:PORT";

Error address_error(std::string_view text, std::string_view problem) {
  return make_error(
      "bad address '" + std::string(text) + "': " + std::string(problem) + " (" + std::string(kExpectedForms) + ")",
      EINVAL);
}

// The text split into its host part and its port, before anything is looked up.
struct HostPort {
  std::string_view host;         // without brackets, with any %scope
  std::optional<uint16_t> port;  // absent: use the default port
  bool bracketed = false;        // "[...]" form: must be IPv6
};

Result<uint16_t> parse_port(std::string_view text, std::string_view port_text) {
  if (port_text.empty()) return address_error(text, "missing port after ':'");
  if (!std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return address_error(text, "port '" + std::string(port_text) + "' is not a number");
  }
  const size_t first_significant = std::min(port_text.find_first_not_of('0'), port_text.size());
  const std::string_view digits = port_text.substr(first_significant);  // leading zeros are harmless
  uint32_t port = 0;
  for (char c : digits.substr(0, 6)) port = port * 10 + static_cast<uint32_t>(c - '0');
  if (port > 65535) return address_error(text, "port " + std::string(port_text) + " out of range 0..65535");
  return static_cast<uint16_t>(port);
}

Result<HostPort> split_host_port(std::string_view text) {
  HostPort parts;
  if (text.empty()) return address_error(text, "empty");
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return address_error(text, "missing ']'");
    parts.host = text.substr(1, close - 1);
    parts.bracketed = true;
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return address_error(text, "unexpected text after ']'");
      auto port = parse_port(text, rest.substr(1));
      if (!port) return port.error();
      parts.port = *port;
    }
  } else {
    const size_t first_colon = text.find(':');
    if (first_colon == std::string_view::npos) {
      parts.host = text;
    } else if (text.find(':', first_colon + 1) == std::string_view::npos) {
      parts.host = text.substr(0, first_colon);
      auto port = parse_port(text, text.substr(first_colon + 1));
      if (!port) return port.error();
      parts.port = *port;
    } else {
      // Two or more colons without brackets: a bare IPv6 address, never with a port (it would be
      // ambiguous: is "2001:db8::1:862" a port or the last group?).
      parts.host = text;
    }
  }
  if (parts.host.empty()) return address_error(text, "missing address");
  return parts;
}

Result<uint32_t> parse_scope(std::string_view text, std::string_view scope) {
  if (scope.empty()) return address_error(text, "empty scope after '%'");
  if (std::all_of(scope.begin(), scope.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (scope.size() > 10) return address_error(text, "scope id out of range");
    const uint64_t index = std::stoull(std::string(scope));
    if (index > UINT32_MAX) return address_error(text, "scope id out of range");
    return static_cast<uint32_t>(index);
  }
  if (scope.size() >= IF_NAMESIZE) return address_error(text, "interface name too long");
  const unsigned index = if_nametoindex(std::string(scope).c_str());
  if (index == 0) return address_error(text, "unknown interface '" + std::string(scope) + "'");
  return static_cast<uint32_t>(index);
}

// A numeric IPv4 or IPv6 host (IPv6 with an optional %scope). Fails without any lookup.
Result<SocketAddress> numeric_address(std::string_view text, const HostPort& parts, uint16_t port) {
  const size_t percent = parts.host.find('%');
  const std::string bare_host(parts.host.substr(0, percent));
  if (!parts.bracketed && percent == std::string_view::npos) {
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    if (inet_pton(AF_INET, bare_host.c_str(), &v4.sin_addr) == 1) {
      return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof(v4));
    }
  }
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(port);
  if (inet_pton(AF_INET6, bare_host.c_str(), &v6.sin6_addr) != 1) {
    if (parts.bracketed) return address_error(text, "'" + bare_host + "' is not an IPv6 address");
    return address_error(text, "'" + std::string(parts.host) + "' is not a numeric IPv4 or IPv6 address");
  }
  if (percent != std::string_view::npos) {
    auto scope = parse_scope(text, parts.host.substr(percent + 1));
    if (!scope) return scope.error();
    v6.sin6_scope_id = *scope;
  }
  return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v6), sizeof(v6));
}

void hash_combine(size_t& seed, size_t value) { seed ^= value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2); }

}  // namespace

SocketAddress::SocketAddress() { storage_.ss_family = AF_UNSPEC; }

Result<SocketAddress> SocketAddress::parse(std::string_view text, uint16_t default_port) {
  auto parts = split_host_port(text);
  if (!parts) return parts.error();
  return numeric_address(text, *parts, parts->port.value_or(default_port));
}

Result<SocketAddress> SocketAddress::resolve(std::string_view text, uint16_t default_port) {
  auto parts = split_host_port(text);
  if (!parts) return parts.error();
  const uint16_t port = parts->port.value_or(default_port);
  auto numeric = numeric_address(text, *parts, port);
  if (numeric || parts->bracketed || parts->host.find_first_of(":%") != std::string_view::npos) {
    return numeric;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string host(parts->host);
  const std::string service = std::to_string(port);
  const int status = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (status != 0) {
    return make_error("cannot resolve '" + host + "': " + gai_strerror(status), status == EAI_SYSTEM ? errno : 0);
  }
  SocketAddress address;
  for (const addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    address = from_sockaddr(entry->ai_addr, entry->ai_addrlen);
    if (address.valid()) break;
  }
  freeaddrinfo(found);
  if (!address.valid()) return make_error("cannot resolve '" + host + "': no IPv4 or IPv6 address");
  return address;
}

SocketAddress SocketAddress::from_sockaddr(const sockaddr* sa, socklen_t len) {
  SocketAddress address;
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return address;
  sa_family_t family = AF_UNSPEC;
  std::memcpy(&family, reinterpret_cast<const char*>(sa) + offsetof(sockaddr, sa_family), sizeof(family));
  if (family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&address.storage_, sa, sizeof(sockaddr_in));
  } else if (family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&address.storage_, sa, sizeof(sockaddr_in6));
  }
  return address;
}

SocketAddress SocketAddress::any(int family, uint16_t port) {
  SocketAddress address;
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage_);
    v4->sin_family = AF_INET;
    v4->sin_addr.s_addr = htonl(INADDR_ANY);
    v4->sin_port = htons(port);
  } else if (family == AF_INET6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage_);
    v6->sin6_family = AF_INET6;
    v6->sin6_addr = in6addr_any;
    v6->sin6_port = htons(port);
  }
  return address;
}

uint16_t SocketAddress::port() const {
  if (is_v4()) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (is_v6()) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (is_v4()) reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  if (is_v6()) reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
}

std::string SocketAddress::host() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, text, sizeof(text));
    return text;
  }
  if (is_v6()) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    std::string result = text;
    if (v6->sin6_scope_id != 0) {
      char interface_name[IF_NAMESIZE] = {};
      result += '%';
      result += if_indextoname(v6->sin6_scope_id, interface_name) != nullptr ? std::string(interface_name)
                                                                             : std::to_string(v6->sin6_scope_id);
    }
    return result;
  }
  return "unspecified";
}

std::string SocketAddress::to_string() const {
  if (is_v4()) return host() + ":" + std::to_string(port());
  if (is_v6()) return "[" + host() + "]:" + std::to_string(port());
  return "unspecified";
}

socklen_t SocketAddress::length() const {
  if (is_v4()) return sizeof(sockaddr_in);
  if (is_v6()) return sizeof(sockaddr_in6);
  return sizeof(sockaddr_storage);
}

bool SocketAddress::operator==(const SocketAddress& other) const {
  if (family() != other.family()) return false;
  if (is_v4()) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&storage_);
    const auto* b = reinterpret_cast<const sockaddr_in*>(&other.storage_);
    return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
  }
  if (is_v6()) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage_);
    const auto* b = reinterpret_cast<const sockaddr_in6*>(&other.storage_);
    return std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(in6_addr)) == 0 && a->sin6_port == b->sin6_port &&
           a->sin6_scope_id == b->sin6_scope_id;
  }
  return true;  // two unspecified addresses
}

size_t SocketAddress::hash() const {
  size_t seed = std::hash<int>()(family());
  if (is_v4()) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage_);
    hash_combine(seed, std::hash<uint32_t>()(v4->sin_addr.s_addr));
    hash_combine(seed, std::hash<uint16_t>()(v4->sin_port));
  } else if (is_v6()) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    const std::string_view address_bytes(reinterpret_cast<const char*>(&v6->sin6_addr), sizeof(in6_addr));
    hash_combine(seed, std::hash<std::string_view>()(address_bytes));
    hash_combine(seed, std::hash<uint16_t>()(v6->sin6_port));
    hash_combine(seed, std::hash<uint32_t>()(v6->sin6_scope_id));
  }
  return seed;
}

}  // namespace hubprobe
