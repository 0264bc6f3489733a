// SPDX-License-Identifier: Apache-2.0
// IPv4/IPv6 socket addresses: parsing "ADDR:PORT" / "[ADDR]:PORT", printing, comparing.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "hubprobe/result.h"

namespace hubprobe {

class SocketAddress {
 public:
  SocketAddress();

  /// Parses "198.18.0.1", "198.18.0.1:862", "2001:db8::1", "[2001:db8::1]:862". No name lookup.
  /// `default_port` applies when the text has none.
  static Result<SocketAddress> parse(std::string_view text, uint16_t default_port);
  /// Like parse, but also resolves a host name (getaddrinfo, numeric port). For the command line only.
  static Result<SocketAddress> resolve(std::string_view text, uint16_t default_port);
  static SocketAddress from_sockaddr(const sockaddr* sa, socklen_t len);
  static SocketAddress any(int family, uint16_t port);

  int family() const { return storage_.ss_family; }
  bool is_v4() const { return family() == AF_INET; }
  bool is_v6() const { return family() == AF_INET6; }
  bool valid() const { return family() == AF_INET || family() == AF_INET6; }
  uint16_t port() const;
  void set_port(uint16_t port);
  /// Address without port, e.g. "2001:db8::1".
  std::string host() const;
  /// "198.18.0.1:862" or "[2001:db8::1]:862".
  std::string to_string() const;

  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* sockaddr_ptr() { return reinterpret_cast<sockaddr*>(&storage_); }
  /// sizeof(sockaddr_in) or sizeof(sockaddr_in6); sizeof(sockaddr_storage) when unspecified, so an empty
  /// address can serve as a receive buffer.
  socklen_t length() const;

  bool operator==(const SocketAddress& other) const;
  size_t hash() const;

 private:
  sockaddr_storage storage_{};
};

}  // namespace hubprobe

template <>
struct std::hash<hubprobe::SocketAddress> {
  size_t operator()(const hubprobe::SocketAddress& a) const noexcept { return a.hash(); }
};
