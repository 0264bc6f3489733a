// SPDX-License-Identifier: Apache-2.0
// The link layer a DPDK port runs for itself, since no kernel does it: it answers ARP, IPv6 neighbour
// solicitations and echo requests for its own addresses, picks the source address and next hop of what
// it sends, and resolves next hops. It learns a MAC only from an answer to a request of its own made in
// the last few seconds (no cache poisoning by unsolicited replies or advertisements), keeps an entry for
// `reachable_ns` and then asks again while still using it. Pure: frames in, frames out, time passed in.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/dataplane.h"
#include "hubprobe/dpdk_frames.h"

namespace hubprobe::dpdk {

struct LinkOptions {
  int64_t reachable_ns = 30'000'000'000;     ///< how long a learnt MAC is used without asking again
  int64_t stale_ns = 60'000'000'000;         ///< after this without an answer, the entry is gone
  int64_t retry_ns = 1'000'000'000;          ///< the least time between two requests for one address
  int64_t answer_window_ns = 3'000'000'000;  ///< an answer counts only this long after our request
};

/// Counters of the link layer (written by the loop's thread).
struct LinkCounters {
  uint64_t arp_replies_sent = 0;
  uint64_t neighbour_advertisements_sent = 0;
  uint64_t echo_replies_sent = 0;
  uint64_t requests_sent = 0;        ///< ARP requests and neighbour solicitations
  uint64_t learnt = 0;               ///< answers to our requests taken
  uint64_t unsolicited_ignored = 0;  ///< ARP replies / advertisements we had not asked for
};

/// Where a datagram goes on the link.
struct Route {
  SocketAddress source;  ///< our address it leaves from
  SocketAddress next_hop;
};

class LinkLayer {
 public:
  LinkLayer(Mac own_mac, const dp::DpdkOptions& options, LinkOptions link = {});

  const Mac& mac() const { return own_mac_; }
  /// The parser's view of the port (valid as long as this object).
  Station station() const { return Station{own_mac_, addresses_}; }
  const std::vector<SocketAddress>& addresses() const { return addresses_; }

  /// Handles a parsed ARP, ND or echo frame at `now`: learns from solicited answers, and writes the answer
  /// to a request into `out`. Returns the answer's length, 0 for none.
  size_t handle(const Frame& frame, MonoNs now, std::span<uint8_t> out);

  /// The source address and next hop for `destination` (`preferred` = the sender's bound address, if
  /// any); an error (EADDRNOTAVAIL, ENETUNREACH) when there is none.
  Result<Route> route(const SocketAddress& destination, const SocketAddress& preferred) const;

  /// The MAC of `next_hop`: static, or learnt and not stale. When none is known, or the entry is due a
  /// refresh, a request may be written to `request_out` (its length in `request_length`; once per
  /// retry_ns). Returns nullopt when no MAC can be used yet.
  std::optional<Mac> resolve(const Route& route, MonoNs now, std::span<uint8_t> request_out, size_t& request_length);

  const LinkCounters& counters() const { return counters_; }

 private:
  struct Neighbour {
    Mac mac{};
    bool known = false;
    MonoNs confirmed = 0;   ///< when an answer last came
    MonoNs requested = -1;  ///< when we last asked (-1 = never)
  };
  using Key = std::pair<int, std::array<uint8_t, 16>>;
  static Key key_of(const SocketAddress& address);
  void learn(const SocketAddress& address, const Mac& mac, MonoNs now);

  Mac own_mac_;
  std::vector<SocketAddress> addresses_;
  std::vector<dp::InterfaceAddress> prefixes_;
  SocketAddress gateway4_;
  SocketAddress gateway6_;
  std::map<Key, Mac> static_;
  std::map<Key, Neighbour> neighbours_;
  LinkOptions options_;
  LinkCounters counters_;
};

}  // namespace hubprobe::dpdk
