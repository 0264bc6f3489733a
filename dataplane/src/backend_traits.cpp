// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/backend_traits.h"

namespace hubprobe::dp {
namespace {

constexpr Support kYes{true, {}};

// The kernel backend: the user-space reflector (ReflectorService over SessionReflector) does every
// reflector option; a path is pinned with socket options, and the routing table does the rest.
BackendTraits kernel_traits() {
  BackendTraits traits;
  traits.name = "kernel";
  traits.reflector = {kYes, kYes, kYes, kYes, kYes, kYes};
  traits.path.interface = kYes;
  traits.path.source_address = kYes;
  traits.path.fwmark = kYes;
  traits.path.dscp = kYes;
  traits.path.source_ports = kYes;
  traits.path.vlan = {false,
                      "cannot tag a VLAN per socket: put a VLAN interface on the link (ip link add link IF name "
                      "IF.VID type vlan id VID) and give the path interface = \"IF.VID\", see docs/configuration.md"};
  traits.path.next_hop = {false,
                          "cannot pin a next hop per socket: give the path a fwmark and route that mark via the next "
                          "hop with policy routing (ip rule add fwmark MARK table T; ip route add PEER via NEXT_HOP "
                          "table T), see docs/configuration.md"};
  return traits;
}

// The xdp backend: its probe ports are kernel sockets (pinned as the kernel backend pins them), and its
// reflector answers unauthenticated STAMP in the kernel with every [reflector] option, handing authenticated
// requests, TLVs and short requests to the user-space reflector behind it.
BackendTraits xdp_traits() {
  BackendTraits traits = kernel_traits();
  traits.name = "xdp";
  return traits;
}

// The dpdk backend: one port it owns (its addresses, ARP/ND, its own next-hop resolution), polled by one
// loop; the reflector on it is the user-space ReflectorService on that loop, so every reflector option holds
// except binding it to an interface (it answers on the port). A path's frame is built whole, so its source
// address, DSCP and source ports are written as asked; there is no routing table for a mark, and per-path
// VLANs and next hops are not implemented (the port has one gateway per family, [dataplane.dpdk] gateway).
BackendTraits dpdk_traits() {
  BackendTraits traits;
  traits.name = "dpdk";
  traits.reflector = {kYes, kYes, kYes, kYes, kYes, {}};
  traits.reflector.interface = {false,
                                "answers on its port ([dataplane.dpdk] port), which is no kernel interface: leave "
                                "reflector.interface unset (reflector.listen picks the port's addresses)"};
  traits.path.interface = {false, "has one port, which is every path's egress: leave interface unset"};
  traits.path.source_address = kYes;
  traits.path.fwmark = {false,
                        "has no routing table to turn a mark into a next hop: pin the path with source, dscp or "
                        "source_ports instead"};
  traits.path.dscp = kYes;
  traits.path.source_ports = kYes;
  traits.path.vlan = {false,
                      "does not tag VLANs per path (not implemented): connect the port to an access port of the "
                      "VLAN, see docs/configuration.md"};
  traits.path.next_hop = {false,
                          "does not pin a next hop per path (not implemented): off-link peers go to the port's "
                          "gateway ([dataplane.dpdk] gateway), whose MAC [dataplane.dpdk] neighbours can fix"};
  return traits;
}

}  // namespace

BackendTraits backend_traits(std::string_view name) {
  if (name == "kernel") return kernel_traits();
  if (name == "xdp") return xdp_traits();
  if (name == "dpdk") return dpdk_traits();
  BackendTraits none;
  none.name = std::string(name);
  return none;
}

}  // namespace hubprobe::dp
