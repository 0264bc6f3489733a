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
  traits.reflector = {kYes, kYes, kYes, kYes, kYes};
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

}  // namespace

BackendTraits backend_traits(std::string_view name) {
  if (name == "kernel") return kernel_traits();
  if (name == "xdp") return xdp_traits();
  BackendTraits none;
  none.name = std::string(name);
  return none;
}

}  // namespace hubprobe::dp
