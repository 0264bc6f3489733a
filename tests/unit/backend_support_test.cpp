// SPDX-License-Identifier: Apache-2.0
// What a backend can honour (its traits) and how the configuration refuses what it cannot: the pure
// checks with traits tables of the test's own, and the loader with the kernel backend's.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "hubprobe/backend_support.h"
#include "hubprobe/backend_traits.h"
#include "hubprobe/config.h"

namespace hubprobe {
namespace {

constexpr dp::Support kYes{true, {}};
constexpr dp::Support kNo{false, {}};

// A backend that honours everything but what a test takes away.
dp::BackendTraits everything(std::string name = "test") {
  dp::BackendTraits traits;
  traits.name = std::move(name);
  traits.reflector = {kYes, kYes, kYes, kYes, kYes, kYes};
  traits.path = {kYes, kYes, kYes, kYes, kYes, kYes, kYes};
  return traits;
}

PathConfig path_with_fwmark(uint32_t fwmark) {
  PathConfig path;
  path.name = "backbone-b";
  path.fwmark = fwmark;
  return path;
}

KeyFile key_file() {
  return KeyFile{"/etc/hubprobe/key.hex", std::make_shared<const stamp::HmacKey>(stamp::HmacKey{{1, 2, 3}})};
}

TEST(BackendTraits, KernelHonoursTheReflectorAndSocketOptionsButNoVlanOrNextHop) {
  const dp::BackendTraits kernel = dp::backend_traits("kernel");
  EXPECT_EQ(kernel.name, "kernel");
  for (const dp::Support* support :
       {&kernel.reflector.stateful, &kernel.reflector.allow_list, &kernel.reflector.rate_limit,
        &kernel.reflector.authenticated, &kernel.reflector.short_requests, &kernel.reflector.interface,
        &kernel.path.interface, &kernel.path.source_address, &kernel.path.fwmark, &kernel.path.dscp,
        &kernel.path.source_ports}) {
    EXPECT_TRUE(support->honoured);
  }
  // The loader keeps no field for these two: a backend that honours them must add one (loader_paths.cpp).
  EXPECT_FALSE(kernel.path.vlan.honoured);
  EXPECT_FALSE(kernel.path.next_hop.honoured);
}

TEST(BackendTraits, ABackendThisBuildDoesNotHaveHonoursNothing) {
  const dp::BackendTraits none = dp::backend_traits("netmap");
  EXPECT_EQ(none.name, "netmap");
  EXPECT_EQ(refuse_path(none, path_with_fwmark(2), {}),
            (Refusal{"fwmark", "the netmap dataplane cannot mark probes for policy routing"}));
  EXPECT_EQ(refuse_reflector(none, ReflectorConfig{})->key, "mode");
}

TEST(BackendTraits, DpdkReflectsWithEveryOptionAndPinsPathsBySourceDscpAndSourcePorts) {
  const dp::BackendTraits dpdk = dp::backend_traits("dpdk");
  EXPECT_EQ(dpdk.name, "dpdk");
  // The reflector on a dpdk port is the user-space ReflectorService on the port's poll loop.
  for (const dp::Support* support :
       {&dpdk.reflector.stateful, &dpdk.reflector.allow_list, &dpdk.reflector.rate_limit, &dpdk.reflector.authenticated,
        &dpdk.reflector.short_requests, &dpdk.path.source_address, &dpdk.path.dscp, &dpdk.path.source_ports}) {
    EXPECT_TRUE(support->honoured);
  }
  // Everything refused says why, in the backend's own words.
  for (const dp::Support* support :
       {&dpdk.reflector.interface, &dpdk.path.interface, &dpdk.path.fwmark, &dpdk.path.vlan, &dpdk.path.next_hop}) {
    EXPECT_FALSE(support->honoured);
    EXPECT_FALSE(support->why_not.empty());
  }
  EXPECT_EQ(refuse_path(dpdk, path_with_fwmark(2), {}),
            (Refusal{"fwmark",
                     "the dpdk dataplane has no routing table to turn a mark into a next hop: pin the path with "
                     "source, dscp or source_ports instead"}));
  PathConfig path;
  path.interface = "eth1";
  EXPECT_EQ(refuse_path(dpdk, path, {}),
            (Refusal{"interface",
                     "the dpdk dataplane has one port, which is every path's egress: leave interface "
                     "unset"}));
  path = {};
  path.source = *SocketAddress::parse("198.18.0.1", 0);
  path.dscp = 46;
  path.source_ports = {40000, 40001};
  EXPECT_EQ(refuse_path(dpdk, path, {}), std::nullopt);
  EXPECT_EQ(refuse_path(dpdk, path, {.vlan = true})->key, "vlan");
  EXPECT_EQ(refuse_path(dpdk, path, {.next_hop = true})->key, "next_hop");

  ReflectorConfig reflector;
  reflector.allow = {*IpPrefix::parse("198.18.0.0/15")};
  reflector.rate_limit_pps = 100;
  reflector.auth_key = key_file();
  reflector.answer_short_requests = true;
  EXPECT_EQ(refuse_reflector(dpdk, reflector), std::nullopt);
  reflector.interface = "eth1";
  EXPECT_EQ(refuse_reflector(dpdk, reflector)->key, "interface");
}

TEST(BackendSupport, PathOptionsTheBackendCannotPinAreRefusedByKey) {
  dp::BackendTraits traits = everything();
  traits.path.fwmark = kNo;
  EXPECT_EQ(refuse_path(traits, path_with_fwmark(2), {}),
            (Refusal{"fwmark", "the test dataplane cannot mark probes for policy routing"}));
  // fwmark 0 is "none": it asks for nothing.
  EXPECT_EQ(refuse_path(traits, path_with_fwmark(0), {}), std::nullopt);

  traits = dp::BackendTraits{"bare", {}, {}};
  PathConfig path;
  EXPECT_EQ(refuse_path(traits, path, {}), std::nullopt);  // pins nothing: any backend takes it
  path.interface = "eth1";
  EXPECT_EQ(refuse_path(traits, path, {})->reason, "the bare dataplane cannot pin probes to an interface");
  path = {};
  path.source = *SocketAddress::parse("198.18.1.1", 0);
  EXPECT_EQ(refuse_path(traits, path, {})->reason, "the bare dataplane cannot choose the source address");
  path = {};
  path.dscp = 46;
  EXPECT_EQ(refuse_path(traits, path, {})->reason, "the bare dataplane cannot set the DSCP of probes");
  path = {};
  path.source_ports = {40000, 40001};
  EXPECT_EQ(refuse_path(traits, path, {})->reason, "the bare dataplane cannot send from chosen source ports");
  EXPECT_EQ(refuse_path(traits, PathConfig{}, {.vlan = true}),
            (Refusal{"vlan", "the bare dataplane cannot tag probes with a VLAN"}));
  EXPECT_EQ(refuse_path(traits, PathConfig{}, {.next_hop = true}),
            (Refusal{"next_hop", "the bare dataplane cannot pin a next hop"}));
}

TEST(BackendSupport, TheFirstRefusedPathOptionInTraitsOrderIsReported) {
  dp::BackendTraits traits = everything();
  traits.path.dscp = kNo;
  traits.path.next_hop = {false, "cannot pin a next hop: route it"};
  PathConfig path = path_with_fwmark(2);
  path.dscp = 46;
  EXPECT_EQ(refuse_path(traits, path, {.next_hop = true})->key, "dscp");
  path.dscp = -1;
  // The backend's own reason replaces the generic one.
  EXPECT_EQ(refuse_path(traits, path, {.next_hop = true}),
            (Refusal{"next_hop", "the test dataplane cannot pin a next hop: route it"}));
}

TEST(BackendSupport, ReflectorOptionsTheBackendCannotHonourAreRefusedByKey) {
  dp::BackendTraits traits = everything();
  traits.reflector.stateful = kNo;
  // Stateful is the default, so a file that does not mention the mode is refused too.
  EXPECT_EQ(refuse_reflector(traits, ReflectorConfig{}),
            (Refusal{"mode",
                     "the test dataplane cannot reflect statefully (mode = \"stateful\" is the default): set mode "
                     "= \"stateless\""}));
  ReflectorConfig reflector;
  reflector.stateful = false;
  EXPECT_EQ(refuse_reflector(traits, reflector), std::nullopt);
  ReflectorConfig disabled;
  disabled.enabled = false;
  EXPECT_EQ(refuse_reflector(traits, disabled), std::nullopt);  // a reflector that does not run asks nothing

  traits = everything("xdp");
  traits.reflector = {};
  traits.reflector.stateful = kYes;
  reflector = {};
  reflector.allow = {*IpPrefix::parse("198.18.0.0/15")};
  EXPECT_EQ(refuse_reflector(traits, reflector),
            (Refusal{"allow", "the xdp dataplane cannot answer only the sources of an allow list"}));
  reflector = {};
  reflector.rate_limit_pps = 1000;
  EXPECT_EQ(refuse_reflector(traits, reflector),
            (Refusal{"rate_limit_pps", "the xdp dataplane cannot limit the rate per source"}));
  reflector = {};
  reflector.auth_key = key_file();
  EXPECT_EQ(refuse_reflector(traits, reflector),
            (Refusal{"auth_key_file", "the xdp dataplane cannot reflect in authenticated mode"}));
  reflector = {};
  reflector.source_keys = {ReflectorSourceKey{{*IpPrefix::parse("198.18.1.0/24")}, key_file()}};
  EXPECT_EQ(refuse_reflector(traits, reflector)->key, "auth");
  reflector = {};
  reflector.answer_short_requests = true;
  EXPECT_EQ(refuse_reflector(traits, reflector),
            (Refusal{"answer_short_requests", "the xdp dataplane cannot answer short TWAMP-Light requests"}));
  reflector = {};
  reflector.interface = "eth1";
  EXPECT_EQ(refuse_reflector(traits, reflector),
            (Refusal{"interface", "the xdp dataplane cannot answer on one interface only"}));
}

constexpr std::string_view kAgent = R"([agent]
id = "gz-edge-01"
hub = "gz"
)";

std::string parse_error(const std::string& text) {
  auto config = parse_config(std::string(kAgent) + text, "hubprobe.toml");
  EXPECT_FALSE(config.ok()) << "accepted:\n" << text;
  return config.ok() ? "" : config.error().message;
}

TEST(BackendSupport, TheLoaderRefusesAtTheKeyWithTheKernelBackendsReason) {
  EXPECT_EQ(parse_error("[dataplane]\nbackend = \"kernel\"\n[[path]]\nname = \"a\"\nvlan = 100\n"),
            "hubprobe.toml:8:8: path[0].vlan: the kernel dataplane cannot tag a VLAN per socket: put a VLAN "
            "interface on the link (ip link add link IF name IF.VID type vlan id VID) and give the path interface = "
            "\"IF.VID\", see docs/configuration.md");
  // Everything else a path and the reflector can ask for, the kernel backend honours.
  auto config = parse_config(std::string(kAgent) + R"(
[reflector]
mode = "stateful"
allow = ["198.18.0.0/15"]
rate_limit_pps = 100
answer_short_requests = true

[[path]]
name = "a"
interface = "lo"
source = "198.18.1.1"
fwmark = 2
dscp = "ef"
source_ports = [40000]
)",
                             "hubprobe.toml");
  EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message);
}

}  // namespace
}  // namespace hubprobe
