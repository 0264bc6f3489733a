// SPDX-License-Identifier: Apache-2.0
// The frames a DPDK port reads and writes itself, as the kernel would for a socket: Ethernet, IPv4/IPv6,
// UDP, ARP, ICMP/ICMPv6 echo and IPv6 neighbour discovery. Pure (byte spans in, byte spans out, no DPDK),
// so every parse and build is unit-tested without an EAL (docs/architecture.md "The dpdk backend").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "hubprobe/net.h"

namespace hubprobe::dpdk {

using Mac = std::array<uint8_t, 6>;
inline constexpr Mac kBroadcastMac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
/// Ethernet 14 + IPv6 40 + UDP 8: the most any UDP frame of ours puts in front of the payload.
inline constexpr size_t kMaxUdpHeaders = 14 + 40 + 8;

/// What a received frame is, once parsed.
enum class FrameKind : uint8_t {
  kUdp,         ///< UDP to one of the port's addresses: `payload` is the datagram
  kArpRequest,  ///< ARP request (`target` the address asked for)
  kArpReply,    ///< ARP reply (`source`, `source_mac` the answer)
  kNeighbourSolicitation,
  kNeighbourAdvertisement,
  kEchoRequest,  ///< ICMP or ICMPv6 echo request: `payload` is the ICMP message
  kDropped,      ///< not for us or malformed: `drop` says why
};

/// Why a frame is dropped. The names are the metric's `reason` label.
enum class Drop : uint8_t {
  kNone,
  kTruncated,              ///< shorter than its headers say
  kOtherMac,               ///< to another station's MAC (a promiscuous vdev sees them)
  kOtherEthertype,         ///< not IPv4, IPv6 or ARP (VLAN tags included)
  kBadIpHeader,            ///< version, header length, total length or IPv4 header checksum wrong
  kFragment,               ///< an IPv4 fragment or an IPv6 extension header: not reassembled
  kOtherAddress,           ///< IP destination not one of the port's addresses
  kOtherProtocol,          ///< not UDP, ICMP echo or neighbour discovery
  kBadChecksum,            ///< UDP, ICMP or ICMPv6 checksum wrong
  kBadNeighbourDiscovery,  ///< ARP or ND that is malformed (hop limit not 255, wrong lengths)
};
inline constexpr size_t kDropCount = static_cast<size_t>(Drop::kBadNeighbourDiscovery) + 1;
std::string_view drop_name(Drop drop);

/// A parsed frame. Pointers point into the frame.
struct Frame {
  FrameKind kind = FrameKind::kDropped;
  Drop drop = Drop::kNone;
  Mac destination_mac{};
  Mac source_mac{};
  SocketAddress source;       ///< IP source (with the UDP source port for kUdp); ARP/ND: the sender
  SocketAddress destination;  ///< IP destination (with the UDP destination port for kUdp)
  SocketAddress target;       ///< ARP/ND: the address asked about or advertised
  Mac target_mac{};           ///< ARP reply / NA: the target's link-layer address
  bool has_target_mac = false;
  bool has_source_mac_option = false;  ///< NS: it carried its sender's link-layer address option
  int ttl = -1;                        ///< IPv4 TTL / IPv6 hop limit
  int tos = -1;                        ///< IPv4 TOS / IPv6 traffic class
  const uint8_t* payload = nullptr;
  uint32_t payload_length = 0;
};

/// The port's view of itself that parsing needs: its MAC and its addresses (ports ignored).
struct Station {
  Mac mac{};
  std::span<const SocketAddress> addresses;
  bool owns(const SocketAddress& address) const;
};

/// The same host (family and address; ports ignored).
bool same_host(const SocketAddress& a, const SocketAddress& b);
/// The address's octets in network order: 4 for IPv4, 16 for IPv6 (the rest zero).
std::array<uint8_t, 16> host_bytes(const SocketAddress& address);
/// True when `address` is inside `base`/`prefix_length` (same family).
bool on_link(const SocketAddress& base, unsigned prefix_length, const SocketAddress& address);

/// Parses a received frame. Never reads past `frame`.
Frame parse_frame(std::span<const uint8_t> frame, const Station& station);

/// What goes in front of a UDP payload.
struct UdpHeader {
  Mac source_mac{};
  Mac destination_mac{};
  SocketAddress source;       ///< with the UDP source port
  SocketAddress destination;  ///< with the UDP destination port
  int tos = 0;                ///< IPv4 TOS / IPv6 traffic class
  int ttl = 64;
};
/// Writes a UDP frame (headers and checksums) with `payload` into `out`; returns its length, 0 when `out`
/// is too small or the addresses are not of one family.
size_t build_udp(const UdpHeader& header, std::span<const uint8_t> payload, std::span<uint8_t> out);

/// ARP request from (own_mac, own) for `target`, broadcast.
size_t build_arp_request(const Mac& own_mac, const SocketAddress& own, const SocketAddress& target,
                         std::span<uint8_t> out);
/// ARP reply to `request` (a kArpRequest for one of our addresses) from `own_mac`.
size_t build_arp_reply(const Frame& request, const Mac& own_mac, std::span<uint8_t> out);
/// Neighbour solicitation from (own_mac, own) for `target`, to its solicited-node multicast address.
size_t build_neighbour_solicitation(const Mac& own_mac, const SocketAddress& own, const SocketAddress& target,
                                    std::span<uint8_t> out);
/// Solicited neighbour advertisement answering `solicitation` (for one of our addresses) from `own_mac`,
/// with our link-layer address option only when the solicitation carried its sender's (never larger).
size_t build_neighbour_advertisement(const Frame& solicitation, const Mac& own_mac, std::span<uint8_t> out);
/// Echo reply to `request` (kEchoRequest): the same size as the request.
size_t build_echo_reply(const Frame& request, const Mac& own_mac, std::span<uint8_t> out);

/// The Internet checksum (RFC 1071) of `data`, continuing `sum` (a partial sum not yet folded).
uint32_t checksum_add(uint32_t sum, std::span<const uint8_t> data);
uint16_t checksum_fold(uint32_t sum);

}  // namespace hubprobe::dpdk
