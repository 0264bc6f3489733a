// SPDX-License-Identifier: Apache-2.0
// IPv4/IPv6 prefixes ("198.18.0.0/15", "2001:db8::/32") for the reflector's allowed sources and
// per-source keys.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "hubprobe/net.h"
#include "hubprobe/result.h"

namespace hubprobe {

/// An address prefix. Immutable once parsed; thread-safe to read.
class IpPrefix {
 public:
  /// Parses "ADDR/LEN" or a bare "ADDR" (a host prefix: /32 or /128). Strict: host bits below the length
  /// must be zero ("198.18.0.1/15" is refused with a hint), no port, no brackets, no scope.
  static Result<IpPrefix> parse(std::string_view text);

  int family() const { return family_; }  ///< AF_INET or AF_INET6
  unsigned length() const { return length_; }
  /// True when the address (its port ignored) lies inside the prefix. An IPv4-mapped IPv6 address
  /// (::ffff:198.18.0.1, as a dual-stack socket reports IPv4 sources) matches IPv4 prefixes.
  bool contains(const SocketAddress& address) const;
  /// The address in network order: 16 octets for IPv6, the first 4 for IPv4 (the rest zero).
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  /// Canonical text: "198.18.0.0/15", "2001:db8::/32".
  std::string to_string() const;

  bool operator==(const IpPrefix& other) const = default;

 private:
  int family_ = 0;
  uint8_t length_ = 0;
  std::array<uint8_t, 16> bytes_{};  ///< network order; the first 4 octets for IPv4
};

}  // namespace hubprobe
