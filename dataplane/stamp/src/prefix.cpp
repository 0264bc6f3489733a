// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/prefix.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace hubprobe {
namespace {

Error prefix_error(std::string_view text, const std::string& problem) {
  return make_error("bad prefix '" + std::string(text) + "': " + problem, EINVAL);
}

// Clears the bits below `length`; returns true when any was set.
bool clear_host_bits(std::array<uint8_t, 16>& bytes, unsigned length, unsigned total_bits) {
  bool had_host_bits = false;
  for (unsigned bit = length; bit < total_bits; ++bit) {
    const uint8_t mask = static_cast<uint8_t>(0x80u >> (bit % 8));
    if (bytes[bit / 8] & mask) {
      had_host_bits = true;
      bytes[bit / 8] = static_cast<uint8_t>(bytes[bit / 8] & ~mask);
    }
  }
  return had_host_bits;
}

bool match_bits(const uint8_t* a, const uint8_t* b, unsigned length) {
  const unsigned whole = length / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  const unsigned rest = length % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xffu << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  if (text.empty()) return prefix_error(text, "empty (expected ADDR/LEN such as 198.18.0.0/15)");
  const size_t slash = text.find('/');
  const std::string address_text(text.substr(0, slash));
  IpPrefix prefix;
  unsigned total_bits = 0;
  if (inet_pton(AF_INET, address_text.c_str(), prefix.bytes_.data()) == 1) {
    prefix.family_ = AF_INET;
    total_bits = 32;
  } else if (inet_pton(AF_INET6, address_text.c_str(), prefix.bytes_.data()) == 1) {
    prefix.family_ = AF_INET6;
    total_bits = 128;
  } else {
    return prefix_error(text, "'" + address_text + "' is not a numeric IPv4 or IPv6 address");
  }
  unsigned length = total_bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return prefix_error(text, "length must be a number 0.." + std::to_string(total_bits));
    }
    length = 0;
    for (char c : digits) length = length * 10 + static_cast<unsigned>(c - '0');
    if (length > total_bits) {
      return prefix_error(text, "length " + std::to_string(length) + " out of range 0.." + std::to_string(total_bits));
    }
  }
  prefix.length_ = static_cast<uint8_t>(length);
  if (clear_host_bits(prefix.bytes_, length, total_bits)) {
    return prefix_error(text, "host bits set (did you mean " + prefix.to_string() + "?)");
  }
  return prefix;
}

bool IpPrefix::contains(const SocketAddress& address) const {
  if (family_ == AF_INET) {
    if (address.is_v4()) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(address.sockaddr_ptr());
      return match_bits(reinterpret_cast<const uint8_t*>(&v4->sin_addr), bytes_.data(), length_);
    }
    if (address.is_v6()) {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddr_ptr());
      if (!IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return false;
      return match_bits(reinterpret_cast<const uint8_t*>(&v6->sin6_addr) + 12, bytes_.data(), length_);
    }
    return false;
  }
  if (family_ == AF_INET6 && address.is_v6()) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddr_ptr());
    return match_bits(reinterpret_cast<const uint8_t*>(&v6->sin6_addr), bytes_.data(), length_);
  }
  return false;
}

std::string IpPrefix::to_string() const {
  if (family_ != AF_INET && family_ != AF_INET6) return "";
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(family_, bytes_.data(), buffer, sizeof(buffer));
  return std::string(buffer) + "/" + std::to_string(length_);
}

}  // namespace hubprobe
