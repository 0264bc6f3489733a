// SPDX-License-Identifier: Apache-2.0
// Test support: walks the IPv4 frames of a nanosecond-resolution Ethernet pcap (tcpdump
// --time-stamp-precision=nano -w FILE), the capture truth accuracy tests compare against.
// Header-only, so test executables in different folders share it without a library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

namespace hubprobe::test {

/// Big-endian 16 and 32-bit reads at `offset` (the caller checks the bounds).
inline uint32_t be16_at(const uint8_t* data, size_t offset) {
  return static_cast<uint32_t>(data[offset]) << 8 | data[offset + 1];
}
inline uint32_t be32_at(const uint8_t* data, size_t offset) {
  return be16_at(data, offset) << 16 | be16_at(data, offset + 2);
}

/// Calls visit(time_ns, ip, captured) for every IPv4 frame of at least 20 + 8 captured octets after its
/// Ethernet header: `ip` points at the IPv4 header, `captured` counts the octets from there. Other
/// frames, records running past the end of the file, and files that are not nanosecond pcaps in host
/// byte order are skipped. Returns false when the file cannot be read or is not such a pcap.
template <class Visit>
bool for_each_ipv4_frame(const std::string& path, Visit&& visit) {
  std::ifstream file(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  auto u32 = [&](size_t offset) {
    uint32_t value;
    std::memcpy(&value, bytes + offset, 4);
    return value;
  };
  constexpr uint32_t kNanosecondMagic = 0xa1b23c4d;
  constexpr size_t kEthernet = 14;
  if (data.size() < 24 || u32(0) != kNanosecondMagic) return false;
  size_t offset = 24;
  while (offset + 16 <= data.size()) {
    const int64_t time_ns = static_cast<int64_t>(u32(offset)) * 1'000'000'000 + u32(offset + 4);
    const uint32_t captured = u32(offset + 8);
    const size_t frame = offset + 16;
    offset = frame + captured;
    if (offset > data.size() || captured < kEthernet + 20 + 8) continue;
    if (be16_at(bytes, frame + 12) != 0x0800) continue;  // IPv4 only
    visit(time_ns, bytes + frame + kEthernet, static_cast<size_t>(captured - kEthernet));
  }
  return true;
}

}  // namespace hubprobe::test
