// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/dpdk_link.h"

#include <cerrno>

namespace hubprobe::dpdk {

namespace {
constexpr size_t kMaxNeighbours = 4096;

// The sender's bound address when it is a specific one of `family`, else the prefix's.
SocketAddress source_for(const SocketAddress& preferred, const SocketAddress& fallback) {
  const bool keep = preferred.valid() && preferred.family() == fallback.family() &&
                    !same_host(preferred, SocketAddress::any(preferred.family(), 0));
  return keep ? preferred : fallback;
}
}  // namespace

LinkLayer::LinkLayer(Mac own_mac, const dp::DpdkOptions& options, LinkOptions link)
    : own_mac_(own_mac),
      prefixes_(options.addresses),
      gateway4_(options.gateway4),
      gateway6_(options.gateway6),
      options_(link) {
  for (const dp::InterfaceAddress& address : options.addresses) addresses_.push_back(address.address);
  for (const dp::StaticNeighbour& neighbour : options.neighbours) static_[key_of(neighbour.address)] = neighbour.mac;
}

LinkLayer::Key LinkLayer::key_of(const SocketAddress& address) { return {address.family(), host_bytes(address)}; }

void LinkLayer::learn(const SocketAddress& address, const Mac& mac, MonoNs now) {
  auto it = neighbours_.find(key_of(address));
  const bool asked =
      it != neighbours_.end() && it->second.requested >= 0 && now - it->second.requested <= options_.answer_window_ns;
  if (!asked) {
    ++counters_.unsolicited_ignored;
    return;
  }
  it->second.mac = mac;
  it->second.known = true;
  it->second.confirmed = now;
  it->second.requested = -1;
  ++counters_.learnt;
}

size_t LinkLayer::handle(const Frame& frame, MonoNs now, std::span<uint8_t> out) {
  switch (frame.kind) {
    case FrameKind::kArpRequest: {
      const size_t length = build_arp_reply(frame, own_mac_, out);
      if (length != 0) ++counters_.arp_replies_sent;
      return length;
    }
    case FrameKind::kNeighbourSolicitation: {
      const size_t length = build_neighbour_advertisement(frame, own_mac_, out);
      if (length != 0) ++counters_.neighbour_advertisements_sent;
      return length;
    }
    case FrameKind::kEchoRequest: {
      const size_t length = build_echo_reply(frame, own_mac_, out);
      if (length != 0) ++counters_.echo_replies_sent;
      return length;
    }
    case FrameKind::kArpReply:
    case FrameKind::kNeighbourAdvertisement:
      if (frame.has_target_mac) learn(frame.target, frame.target_mac, now);
      return 0;
    case FrameKind::kUdp:
    case FrameKind::kDropped: return 0;
  }
  return 0;
}

Result<Route> LinkLayer::route(const SocketAddress& destination, const SocketAddress& preferred) const {
  // On-link through one of our prefixes: from that address, straight to the destination.
  for (const dp::InterfaceAddress& prefix : prefixes_) {
    if (!on_link(prefix.address, prefix.prefix_length, destination)) continue;
    return Route{source_for(preferred, prefix.address), destination};
  }
  const SocketAddress& gateway = destination.is_v4() ? gateway4_ : gateway6_;
  if (!gateway.valid()) {
    return make_error(destination.host() + " is not on-link of the port and no gateway of its family is set",
                      ENETUNREACH);
  }
  for (const dp::InterfaceAddress& prefix : prefixes_) {
    if (!on_link(prefix.address, prefix.prefix_length, gateway)) continue;
    return Route{source_for(preferred, prefix.address), gateway};
  }
  return make_error("the gateway " + gateway.host() + " is not on-link of the port", ENETUNREACH);
}

std::optional<Mac> LinkLayer::resolve(const Route& route, MonoNs now, std::span<uint8_t> request_out,
                                      size_t& request_length) {
  request_length = 0;
  const Key key = key_of(route.next_hop);
  if (auto it = static_.find(key); it != static_.end()) return it->second;
  auto it = neighbours_.find(key);
  if (it == neighbours_.end()) {
    if (neighbours_.size() >= kMaxNeighbours) neighbours_.clear();  // stay bounded
    it = neighbours_.emplace(key, Neighbour{}).first;
  }
  Neighbour& neighbour = it->second;
  if (neighbour.known && now - neighbour.confirmed > options_.stale_ns) neighbour.known = false;
  const bool due = !neighbour.known || now - neighbour.confirmed > options_.reachable_ns;
  const bool may_ask = neighbour.requested < 0 || now - neighbour.requested >= options_.retry_ns;
  if (due && may_ask) {
    request_length = route.next_hop.is_v4()
                         ? build_arp_request(own_mac_, route.source, route.next_hop, request_out)
                         : build_neighbour_solicitation(own_mac_, route.source, route.next_hop, request_out);
    if (request_length != 0) {
      neighbour.requested = now;
      ++counters_.requests_sent;
    }
  }
  if (!neighbour.known) return std::nullopt;
  return neighbour.mac;
}

}  // namespace hubprobe::dpdk
