// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/dataplane.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstdio>

namespace hubprobe::dp {

std::string_view attach_mode_name(XdpAttachMode mode) {
  switch (mode) {
    case XdpAttachMode::kAuto: return "auto";
    case XdpAttachMode::kNative: return "native";
    case XdpAttachMode::kGeneric: return "generic";
  }
  return "auto";
}

Result<SocketAddress> parse_host(std::string_view text) {
  const std::string host(text);
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof v4);
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v6), sizeof v6);
  }
  return make_error("\"" + host + "\" is not an IPv4 or IPv6 address");
}

Result<InterfaceAddress> parse_interface_address(std::string_view text) {
  const size_t slash = text.find('/');
  auto address = parse_host(text.substr(0, slash));
  if (!address) {
    return make_error("\"" + std::string(text) + "\" is not ADDRESS/LENGTH (e.g. 198.18.0.1/24, 2001:db8::1/64)");
  }
  const unsigned max = address->is_v4() ? 32 : 128;
  unsigned length = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || length > max) {
      return make_error("\"" + std::string(text) + "\": the prefix length must be 0.." + std::to_string(max));
    }
  }
  return InterfaceAddress{address.value(), length};
}

Result<std::array<uint8_t, 6>> parse_mac(std::string_view text) {
  std::array<uint8_t, 6> mac{};
  unsigned octets[6];
  char tail = 0;
  const std::string copy(text);
  if (std::sscanf(copy.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &octets[0], &octets[1], &octets[2], &octets[3], &octets[4],
                  &octets[5], &tail) != 6 ||
      copy.size() != 17) {
    return make_error("\"" + copy + "\" is not a MAC address (e.g. 02:00:00:00:00:01)");
  }
  for (size_t i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(octets[i]);
  return mac;
}

}  // namespace hubprobe::dp
