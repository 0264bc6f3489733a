// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/dpdk_frames.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace hubprobe::dpdk {

namespace {
constexpr size_t kEthernet = 14;
constexpr size_t kIpv4 = 20;
constexpr size_t kIpv6 = 40;
constexpr size_t kUdp = 8;
constexpr size_t kArp = 28;
constexpr size_t kNdMessage = 32;  // ICMPv6 header 4 + reserved/flags 4 + target 16 + one link-layer option 8
constexpr uint16_t kTypeIpv4 = 0x0800;
constexpr uint16_t kTypeIpv6 = 0x86dd;
constexpr uint16_t kTypeArp = 0x0806;
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIcmp6 = 58;
constexpr uint8_t kEchoRequest4 = 8;
constexpr uint8_t kEchoReply4 = 0;
constexpr uint8_t kEchoRequest6 = 128;
constexpr uint8_t kEchoReply6 = 129;
constexpr uint8_t kSolicitation = 135;
constexpr uint8_t kAdvertisement = 136;
constexpr uint8_t kOptionSourceMac = 1;
constexpr uint8_t kOptionTargetMac = 2;

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}

Mac mac_at(const uint8_t* p) {
  Mac mac;
  std::memcpy(mac.data(), p, mac.size());
  return mac;
}

SocketAddress address_of(int family, const uint8_t* bytes, uint16_t port = 0) {
  if (family == AF_INET) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    std::memcpy(&sa.sin_addr, bytes, 4);
    sa.sin_port = htons(port);
    return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  }
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  std::memcpy(&sa.sin6_addr, bytes, 16);
  sa.sin6_port = htons(port);
  return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

uint8_t* put_ethernet(uint8_t* p, const Mac& destination, const Mac& source, uint16_t type) {
  std::memcpy(p, destination.data(), 6);
  std::memcpy(p + 6, source.data(), 6);
  put16(p + 12, type);
  return p + kEthernet;
}

// The pseudo-header sum of an upper-layer checksum (RFC 768, RFC 8200 section 8.1).
uint32_t pseudo_sum(const SocketAddress& source, const SocketAddress& destination, uint8_t protocol, uint32_t length) {
  const size_t n = source.is_v4() ? 4 : 16;
  const auto s = host_bytes(source);
  const auto d = host_bytes(destination);
  uint32_t sum = checksum_add(0, std::span(s.data(), n));
  sum = checksum_add(sum, std::span(d.data(), n));
  return sum + protocol + (length >> 16) + (length & 0xffff);
}

uint16_t upper_checksum(const SocketAddress& source, const SocketAddress& destination, uint8_t protocol,
                        std::span<const uint8_t> message) {
  const uint32_t sum = checksum_add(pseudo_sum(source, destination, protocol, message.size()), message);
  return checksum_fold(sum);
}

// Writes the IP header for `length` octets of `protocol` after it; returns where the payload goes.
uint8_t* put_ip(uint8_t* p, const SocketAddress& source, const SocketAddress& destination, uint8_t protocol,
                size_t length, int tos, int ttl) {
  const auto s = host_bytes(source);
  const auto d = host_bytes(destination);
  if (source.is_v4()) {
    p[0] = 0x45;
    p[1] = static_cast<uint8_t>(tos);
    put16(p + 2, static_cast<uint16_t>(kIpv4 + length));
    put16(p + 4, 0);
    put16(p + 6, 0x4000);  // don't fragment
    p[8] = static_cast<uint8_t>(ttl);
    p[9] = protocol;
    put16(p + 10, 0);
    std::memcpy(p + 12, s.data(), 4);
    std::memcpy(p + 16, d.data(), 4);
    put16(p + 10, checksum_fold(checksum_add(0, std::span<const uint8_t>(p, kIpv4))));
    return p + kIpv4;
  }
  put32(p, 0x60000000U | static_cast<uint32_t>(tos & 0xff) << 20);
  put16(p + 4, static_cast<uint16_t>(length));
  p[6] = protocol;
  p[7] = static_cast<uint8_t>(ttl);
  std::memcpy(p + 8, s.data(), 16);
  std::memcpy(p + 24, d.data(), 16);
  return p + kIpv6;
}

size_t ip_header_size(const SocketAddress& address) { return address.is_v4() ? kIpv4 : kIpv6; }

// The solicited-node multicast address of `target` (RFC 4291 section 2.7.1) and its MAC (RFC 2464).
SocketAddress solicited_node(const SocketAddress& target) {
  std::array<uint8_t, 16> bytes{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0};
  const auto t = host_bytes(target);
  std::copy(t.begin() + 13, t.end(), bytes.begin() + 13);
  return address_of(AF_INET6, bytes.data());
}
Mac multicast_mac(const SocketAddress& group) {
  const auto g = host_bytes(group);
  return {0x33, 0x33, g[12], g[13], g[14], g[15]};
}

bool is_solicited_node_of_ours(const uint8_t* destination, const Station& station) {
  static constexpr uint8_t kPrefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
  if (std::memcmp(destination, kPrefix, sizeof kPrefix) != 0) return false;
  return std::any_of(station.addresses.begin(), station.addresses.end(), [&](const SocketAddress& own) {
    const auto bytes = host_bytes(own);
    return own.is_v6() && std::memcmp(bytes.data() + 13, destination + 13, 3) == 0;
  });
}

Frame dropped(Frame frame, Drop drop) {
  frame.kind = FrameKind::kDropped;
  frame.drop = drop;
  return frame;
}

Frame parse_arp(Frame frame, std::span<const uint8_t> arp, const Station& station) {
  if (arp.size() < kArp) return dropped(frame, Drop::kTruncated);
  const uint8_t* a = arp.data();
  if (be16(a) != 1 || be16(a + 2) != kTypeIpv4 || a[4] != 6 || a[5] != 4) {
    return dropped(frame, Drop::kBadNeighbourDiscovery);
  }
  const uint16_t op = be16(a + 6);
  frame.source = address_of(AF_INET, a + 14);
  frame.target = address_of(AF_INET, a + 24);
  frame.source_mac = mac_at(a + 8);
  if (op != 1 && op != 2) return dropped(frame, Drop::kBadNeighbourDiscovery);
  if (!station.owns(frame.target)) return dropped(frame, Drop::kOtherAddress);
  if (op == 1) {
    frame.kind = FrameKind::kArpRequest;
    return frame;
  }
  frame.kind = FrameKind::kArpReply;
  frame.target = frame.source;  // the address answered for
  frame.target_mac = frame.source_mac;
  frame.has_target_mac = true;
  return frame;
}

// The link-layer address option of type `type` among the ND options after the fixed part.
bool find_mac_option(std::span<const uint8_t> options, uint8_t type, Mac& mac) {
  while (options.size() >= 8) {
    const size_t length = options[1] * size_t{8};
    if (length == 0 || length > options.size()) return false;
    if (options[0] == type && length >= 8) {
      mac = mac_at(options.data() + 2);
      return true;
    }
    options = options.subspan(length);
  }
  return false;
}

Frame parse_icmp6(Frame frame, std::span<const uint8_t> message) {
  if (message.size() < 4) return dropped(frame, Drop::kTruncated);
  if (upper_checksum(frame.source, frame.destination, kProtoIcmp6, message) != 0) {
    return dropped(frame, Drop::kBadChecksum);
  }
  const uint8_t type = message[0];
  if (type == kEchoRequest6) {
    frame.kind = FrameKind::kEchoRequest;
    frame.payload = message.data();
    frame.payload_length = static_cast<uint32_t>(message.size());
    return frame;
  }
  if (type != kSolicitation && type != kAdvertisement) return dropped(frame, Drop::kOtherProtocol);
  if (frame.ttl != 255 || message[1] != 0 || message.size() < 24) return dropped(frame, Drop::kBadNeighbourDiscovery);
  frame.target = address_of(AF_INET6, message.data() + 8);
  const auto options = message.subspan(24);
  if (type == kSolicitation) {
    frame.kind = FrameKind::kNeighbourSolicitation;
    Mac mac;
    frame.has_source_mac_option = find_mac_option(options, kOptionSourceMac, mac);
    if (frame.has_source_mac_option) frame.source_mac = mac;
    return frame;
  }
  frame.kind = FrameKind::kNeighbourAdvertisement;
  frame.has_target_mac = find_mac_option(options, kOptionTargetMac, frame.target_mac);
  return frame;
}

Frame parse_transport(Frame frame, uint8_t protocol, std::span<const uint8_t> message) {
  if (protocol == kProtoUdp) {
    if (message.size() < kUdp) return dropped(frame, Drop::kTruncated);
    const uint16_t length = be16(message.data() + 4);
    if (length < kUdp || length > message.size()) return dropped(frame, Drop::kTruncated);
    message = message.first(length);
    const uint16_t sum = be16(message.data() + 6);
    const bool must = frame.source.is_v6();
    if ((sum != 0 || must) && upper_checksum(frame.source, frame.destination, kProtoUdp, message) != 0) {
      return dropped(frame, Drop::kBadChecksum);
    }
    frame.source.set_port(be16(message.data()));
    frame.destination.set_port(be16(message.data() + 2));
    frame.kind = FrameKind::kUdp;
    frame.payload = message.data() + kUdp;
    frame.payload_length = length - kUdp;
    return frame;
  }
  if (protocol == kProtoIcmp && frame.source.is_v4()) {
    if (message.size() < 8) return dropped(frame, Drop::kTruncated);
    if (checksum_fold(checksum_add(0, message)) != 0) return dropped(frame, Drop::kBadChecksum);
    if (message[0] != kEchoRequest4) return dropped(frame, Drop::kOtherProtocol);
    frame.kind = FrameKind::kEchoRequest;
    frame.payload = message.data();
    frame.payload_length = static_cast<uint32_t>(message.size());
    return frame;
  }
  if (protocol == kProtoIcmp6 && frame.source.is_v6()) return parse_icmp6(frame, message);
  return dropped(frame, Drop::kOtherProtocol);
}

Frame parse_ipv4(Frame frame, std::span<const uint8_t> ip, const Station& station) {
  if (ip.size() < kIpv4) return dropped(frame, Drop::kTruncated);
  const uint8_t* h = ip.data();
  const size_t header = (h[0] & 0x0f) * size_t{4};
  const size_t total = be16(h + 2);
  if (h[0] >> 4 != 4 || header < kIpv4 || total < header) return dropped(frame, Drop::kBadIpHeader);
  if (total > ip.size()) return dropped(frame, Drop::kTruncated);
  if (checksum_fold(checksum_add(0, ip.first(header))) != 0) return dropped(frame, Drop::kBadIpHeader);
  if ((be16(h + 6) & 0x3fff) != 0) return dropped(frame, Drop::kFragment);
  frame.tos = h[1];
  frame.ttl = h[8];
  frame.source = address_of(AF_INET, h + 12);
  frame.destination = address_of(AF_INET, h + 16);
  if (!station.owns(frame.destination)) return dropped(frame, Drop::kOtherAddress);
  return parse_transport(frame, h[9], ip.subspan(header, total - header));
}

Frame parse_ipv6(Frame frame, std::span<const uint8_t> ip, const Station& station) {
  if (ip.size() < kIpv6) return dropped(frame, Drop::kTruncated);
  const uint8_t* h = ip.data();
  if (h[0] >> 4 != 6) return dropped(frame, Drop::kBadIpHeader);
  const size_t length = be16(h + 4);
  if (kIpv6 + length > ip.size()) return dropped(frame, Drop::kTruncated);
  frame.tos = (be16(h) >> 4) & 0xff;
  frame.ttl = h[7];
  frame.source = address_of(AF_INET6, h + 8);
  frame.destination = address_of(AF_INET6, h + 24);
  const uint8_t next = h[6];
  if (next != kProtoUdp && next != kProtoIcmp6) {
    static constexpr uint8_t kExtensions[] = {0, 43, 44, 50, 51, 60, 135, 139, 140};
    const bool extension = std::find(std::begin(kExtensions), std::end(kExtensions), next) != std::end(kExtensions);
    return dropped(frame, extension ? Drop::kFragment : Drop::kOtherProtocol);
  }
  const bool ours =
      station.owns(frame.destination) || (next == kProtoIcmp6 && is_solicited_node_of_ours(h + 24, station));
  if (!ours) return dropped(frame, Drop::kOtherAddress);
  Frame parsed = parse_transport(frame, next, ip.subspan(kIpv6, length));
  // A solicitation to a solicited-node group must ask for one of our addresses; a datagram to it is not ours.
  if (parsed.kind == FrameKind::kNeighbourSolicitation && !station.owns(parsed.target)) {
    return dropped(parsed, Drop::kOtherAddress);
  }
  if (parsed.kind != FrameKind::kNeighbourSolicitation && parsed.kind != FrameKind::kDropped &&
      !station.owns(frame.destination)) {
    return dropped(parsed, Drop::kOtherAddress);
  }
  return parsed;
}
}  // namespace

std::string_view drop_name(Drop drop) {
  switch (drop) {
    case Drop::kNone: return "none";
    case Drop::kTruncated: return "truncated";
    case Drop::kOtherMac: return "other_mac";
    case Drop::kOtherEthertype: return "other_ethertype";
    case Drop::kBadIpHeader: return "bad_ip_header";
    case Drop::kFragment: return "fragment_or_extension";
    case Drop::kOtherAddress: return "other_address";
    case Drop::kOtherProtocol: return "other_protocol";
    case Drop::kBadChecksum: return "bad_checksum";
    case Drop::kBadNeighbourDiscovery: return "bad_neighbour_discovery";
  }
  return "none";
}

std::array<uint8_t, 16> host_bytes(const SocketAddress& address) {
  std::array<uint8_t, 16> bytes{};
  if (address.is_v4()) {
    std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in*>(address.sockaddr_ptr())->sin_addr, 4);
  } else if (address.is_v6()) {
    std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in6*>(address.sockaddr_ptr())->sin6_addr, 16);
  }
  return bytes;
}

bool same_host(const SocketAddress& a, const SocketAddress& b) {
  return a.family() == b.family() && a.valid() && host_bytes(a) == host_bytes(b);
}

bool on_link(const SocketAddress& base, unsigned prefix_length, const SocketAddress& address) {
  if (base.family() != address.family() || !base.valid()) return false;
  const auto a = host_bytes(base);
  const auto b = host_bytes(address);
  const unsigned full = prefix_length / 8;
  if (std::memcmp(a.data(), b.data(), full) != 0) return false;
  const unsigned rest = prefix_length % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

bool Station::owns(const SocketAddress& address) const {
  return std::any_of(addresses.begin(), addresses.end(),
                     [&](const SocketAddress& own) { return same_host(own, address); });
}

uint32_t checksum_add(uint32_t sum, std::span<const uint8_t> data) {
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) sum += be16(data.data() + i);
  if (i < data.size()) sum += static_cast<uint32_t>(data[i]) << 8;
  return sum;
}

uint16_t checksum_fold(uint32_t sum) {
  while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

Frame parse_frame(std::span<const uint8_t> bytes, const Station& station) {
  Frame frame;
  if (bytes.size() < kEthernet) return dropped(frame, Drop::kTruncated);
  frame.destination_mac = mac_at(bytes.data());
  frame.source_mac = mac_at(bytes.data() + 6);
  const bool multicast = (frame.destination_mac[0] & 1) != 0;
  if (!multicast && frame.destination_mac != station.mac) return dropped(frame, Drop::kOtherMac);
  const uint16_t type = be16(bytes.data() + 12);
  const auto rest = bytes.subspan(kEthernet);
  if (type == kTypeArp) return parse_arp(frame, rest, station);
  if (multicast && type == kTypeIpv4) return dropped(frame, Drop::kOtherMac);
  if (type == kTypeIpv4) return parse_ipv4(frame, rest, station);
  if (type == kTypeIpv6) return parse_ipv6(frame, rest, station);
  return dropped(frame, Drop::kOtherEthertype);
}

size_t build_udp(const UdpHeader& header, std::span<const uint8_t> payload, std::span<uint8_t> out) {
  if (header.source.family() != header.destination.family() || !header.source.valid()) return 0;
  const size_t udp_length = kUdp + payload.size();
  const size_t total = kEthernet + ip_header_size(header.source) + udp_length;
  if (total > out.size() || udp_length > 0xffff) return 0;
  uint8_t* p = put_ethernet(out.data(), header.destination_mac, header.source_mac,
                            header.source.is_v4() ? kTypeIpv4 : kTypeIpv6);
  p = put_ip(p, header.source, header.destination, kProtoUdp, udp_length, header.tos, header.ttl);
  put16(p, header.source.port());
  put16(p + 2, header.destination.port());
  put16(p + 4, static_cast<uint16_t>(udp_length));
  put16(p + 6, 0);
  if (!payload.empty()) std::memcpy(p + kUdp, payload.data(), payload.size());
  uint16_t sum = upper_checksum(header.source, header.destination, kProtoUdp, std::span(p, udp_length));
  put16(p + 6, sum == 0 ? 0xffff : sum);
  return total;
}

namespace {
size_t put_arp(uint16_t op, const Mac& destination_mac, const Mac& sender_mac, const SocketAddress& sender,
               const Mac& target_mac, const SocketAddress& target, std::span<uint8_t> out) {
  if (out.size() < kEthernet + kArp || !sender.is_v4() || !target.is_v4()) return 0;
  uint8_t* a = put_ethernet(out.data(), destination_mac, sender_mac, kTypeArp);
  put16(a, 1);
  put16(a + 2, kTypeIpv4);
  a[4] = 6;
  a[5] = 4;
  put16(a + 6, op);
  std::memcpy(a + 8, sender_mac.data(), 6);
  std::memcpy(a + 14, host_bytes(sender).data(), 4);
  std::memcpy(a + 18, target_mac.data(), 6);
  std::memcpy(a + 24, host_bytes(target).data(), 4);
  return kEthernet + kArp;
}

// An ND message: `type`, `flags` (byte 4), `target`, and (`with_option`) our link-layer address option,
// from `source` to `destination`.
size_t put_nd(uint8_t type, uint8_t flags, const Mac& destination_mac, const Mac& own_mac, const SocketAddress& source,
              const SocketAddress& destination, const SocketAddress& target, bool with_option, std::span<uint8_t> out) {
  const size_t message = with_option ? kNdMessage : kNdMessage - 8;
  if (out.size() < kEthernet + kIpv6 + message || !source.is_v6() || !destination.is_v6()) return 0;
  uint8_t* p = put_ethernet(out.data(), destination_mac, own_mac, kTypeIpv6);
  p = put_ip(p, source, destination, kProtoIcmp6, message, 0, 255);
  std::memset(p, 0, message);
  p[0] = type;
  p[4] = flags;
  std::memcpy(p + 8, host_bytes(target).data(), 16);
  if (with_option) {
    p[24] = type == kSolicitation ? kOptionSourceMac : kOptionTargetMac;
    p[25] = 1;
    std::memcpy(p + 26, own_mac.data(), 6);
  }
  put16(p + 2, upper_checksum(source, destination, kProtoIcmp6, std::span<const uint8_t>(p, message)));
  return kEthernet + kIpv6 + message;
}
}  // namespace

size_t build_arp_request(const Mac& own_mac, const SocketAddress& own, const SocketAddress& target,
                         std::span<uint8_t> out) {
  return put_arp(1, kBroadcastMac, own_mac, own, Mac{}, target, out);
}

size_t build_arp_reply(const Frame& request, const Mac& own_mac, std::span<uint8_t> out) {
  if (request.kind != FrameKind::kArpRequest) return 0;
  return put_arp(2, request.source_mac, own_mac, request.target, request.source_mac, request.source, out);
}

size_t build_neighbour_solicitation(const Mac& own_mac, const SocketAddress& own, const SocketAddress& target,
                                    std::span<uint8_t> out) {
  const SocketAddress group = solicited_node(target);
  return put_nd(kSolicitation, 0, multicast_mac(group), own_mac, own, group, target, true, out);
}

size_t build_neighbour_advertisement(const Frame& solicitation, const Mac& own_mac, std::span<uint8_t> out) {
  if (solicitation.kind != FrameKind::kNeighbourSolicitation) return 0;
  static const SocketAddress kUnspecified = SocketAddress::any(AF_INET6, 0);
  if (same_host(solicitation.source, kUnspecified)) return 0;  // duplicate address detection: not answered
  constexpr uint8_t kSolicitedOverride = 0x60;
  // A solicitation without its sender's link-layer option is a unicast one, sent to our MAC: the answer
  // leaves ours out too (RFC 4861 7.2.4 allows it), so it is never larger than what asked.
  return put_nd(kAdvertisement, kSolicitedOverride, solicitation.source_mac, own_mac, solicitation.target,
                solicitation.source, solicitation.target, solicitation.has_source_mac_option, out);
}

size_t build_echo_reply(const Frame& request, const Mac& own_mac, std::span<uint8_t> out) {
  if (request.kind != FrameKind::kEchoRequest || request.payload_length < 4) return 0;
  const size_t total = kEthernet + ip_header_size(request.source) + request.payload_length;
  if (total > out.size()) return 0;
  const bool v4 = request.source.is_v4();
  const uint8_t protocol = v4 ? kProtoIcmp : kProtoIcmp6;
  uint8_t* p = put_ethernet(out.data(), request.source_mac, own_mac, v4 ? kTypeIpv4 : kTypeIpv6);
  p = put_ip(p, request.destination, request.source, protocol, request.payload_length, request.tos, 64);
  std::memcpy(p, request.payload, request.payload_length);
  p[0] = v4 ? kEchoReply4 : kEchoReply6;
  put16(p + 2, 0);
  const std::span<const uint8_t> message(p, request.payload_length);
  put16(p + 2, v4 ? checksum_fold(checksum_add(0, message))
                  : upper_checksum(request.destination, request.source, protocol, message));
  return total;
}

}  // namespace hubprobe::dpdk
