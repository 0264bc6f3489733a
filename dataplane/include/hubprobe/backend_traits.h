// SPDX-License-Identifier: Apache-2.0
// What each backend of this build can honour, as data: the reflector's options and the ways a path is
// pinned. Pure (no I/O, nothing opened), so the config loader refuses what the selected backend cannot do
// before anything starts (docs/architecture.md "How to write a backend").
#pragma once

#include <string>
#include <string_view>

namespace hubprobe::dp {

/// Whether a backend honours one option, and if not, why.
struct Support {
  bool honoured = false;
  /// When not honoured: the reason and what to do instead, as it completes "the NAME dataplane ...", e.g.
  /// "cannot pin a next hop per socket: ...". Empty = the config's generic reason for the option.
  std::string_view why_not;
};

/// The [reflector] options a backend's reflector honours.
struct ReflectorTraits {
  Support stateful;        ///< mode = "stateful": its own sequence numbers per session
  Support allow_list;      ///< allow: answer only some source prefixes
  Support rate_limit;      ///< rate_limit_pps: a token bucket per source address
  Support authenticated;   ///< auth_key_file, [[reflector.auth]]: HMAC-SHA-256, 112-octet packets
  Support short_requests;  ///< answer_short_requests: 44-octet replies to 14..43-octet TWAMP-Light requests
  Support interface;       ///< interface: answer only on one interface (SO_BINDTODEVICE)
};

/// How a backend pins a [[path]]'s probes (docs/architecture.md "Pinning a path").
struct PathTraits {
  Support interface;       ///< interface: the egress port (SO_BINDTODEVICE; a DPDK port: the port itself)
  Support source_address;  ///< source: the probes' source address
  Support fwmark;          ///< fwmark: a mark that policy routing turns into a next hop
  Support dscp;            ///< dscp: the probes' traffic class
  Support source_ports;    ///< source_ports: UDP source ports used in turn (ECMP spread)
  Support vlan;            ///< vlan: the 802.1Q tag the probes leave with
  Support next_hop;        ///< next_hop: the neighbour the probes are sent to (its MAC resolved or configured)
};

struct BackendTraits {
  std::string name;
  ReflectorTraits reflector;
  PathTraits path;
};

/// The traits of the backend `name`: "kernel", "xdp", "dpdk" (the config knows it before the factory of a build
/// has it). Any other name honours nothing.
BackendTraits backend_traits(std::string_view name);

}  // namespace hubprobe::dp
