// SPDX-License-Identifier: Apache-2.0
// [dataplane.dpdk] and what the dpdk backend's one port asks of the rest of the file ([[path]] source,
// [reflector] listen and interface, peers' address families).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "hubprobe/config.h"

namespace hubprobe {
namespace {

// Lines 1..5; [dataplane.dpdk] is line 6, its keys from line 7.
constexpr std::string_view kHead = R"([agent]
id = "gz-edge-01"
hub = "gz"
[dataplane]
backend = "dpdk"
)";

// A port with the two keys it needs: lines 6..8, what follows from line 9.
constexpr std::string_view kPort = R"([dataplane.dpdk]
port = "net_af_packet0,iface=eth1"
addresses = ["198.18.0.1/24", "2001:db8::1/64"]
)";

std::string dpdk(std::string_view rest) { return std::string(kHead) + std::string(kPort) + std::string(rest); }

AgentConfig parse_ok(const std::string& text) {
  auto config = parse_config(text, "hubprobe.toml");
  EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message);
  return config.ok() ? *config : AgentConfig{};
}

std::string parse_error(const std::string& text) {
  auto config = parse_config(text, "hubprobe.toml");
  EXPECT_FALSE(config.ok()) << "accepted:\n" << text;
  return config.ok() ? "" : config.error().message;
}

SocketAddress host(std::string_view text) { return dp::parse_host(text).value(); }

constexpr std::string_view kFull = R"([agent]
id = "gz-edge-01"
hub = "gz"
[dataplane]
backend = "dpdk"
[dataplane.dpdk]
port = "0000:03:00.0"
addresses = ["198.18.0.1/24", "2001:db8::1/64"]
gateway = ["198.18.0.254", "2001:db8::fe"]
neighbours = { "2001:db8::2" = "02:00:00:00:00:02", "198.18.0.254" = "02:00:00:00:00:fe" }
eal_args = ["--no-huge", "-m", "256", "--file-prefix=hp1"]
lcore = 3
rx_queues = 1
tx_queues = 1
rx_descriptors = 512
tx_descriptors = 2048
[reflector]
listen = ["198.18.0.1", "::"]
allow = ["198.18.0.0/15"]
rate_limit_pps = 100
[[path]]
name = "ef"
source = "198.18.0.1"
dscp = "ef"
source_ports = [40000, "40010-40011"]
[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
)";

TEST(ConfigDpdk, EveryKeyIsReadIntoItsField) {
  const AgentConfig config = parse_ok(std::string(kFull));
  EXPECT_EQ(config.dataplane.backend, "dpdk");
  const dp::DpdkOptions& o = config.dataplane.dpdk;
  EXPECT_EQ(o.port, "0000:03:00.0");
  ASSERT_EQ(o.addresses.size(), 2u);
  EXPECT_EQ(o.addresses[0], (dp::InterfaceAddress{host("198.18.0.1"), 24}));
  EXPECT_EQ(o.addresses[1], (dp::InterfaceAddress{host("2001:db8::1"), 64}));
  EXPECT_EQ(o.gateway4, host("198.18.0.254"));
  EXPECT_EQ(o.gateway6, host("2001:db8::fe"));
  ASSERT_EQ(o.neighbours.size(), 2u);  // in file order
  EXPECT_EQ(o.neighbours[0], (dp::StaticNeighbour{host("2001:db8::2"), {0x02, 0, 0, 0, 0, 0x02}}));
  EXPECT_EQ(o.neighbours[1], (dp::StaticNeighbour{host("198.18.0.254"), {0x02, 0, 0, 0, 0, 0xfe}}));
  EXPECT_EQ(o.eal_args, (std::vector<std::string>{"--no-huge", "-m", "256", "--file-prefix=hp1"}));
  EXPECT_EQ(o.lcore, 3);
  EXPECT_EQ(o.rx_queues, 1);
  EXPECT_EQ(o.tx_queues, 1);
  EXPECT_EQ(o.rx_descriptors, 512);
  EXPECT_EQ(o.tx_descriptors, 2048);
  ASSERT_EQ(config.paths.size(), 1u);
  EXPECT_EQ(config.paths[0].source, host("198.18.0.1"));
  EXPECT_EQ(config.paths[0].dscp, 46);
  EXPECT_EQ(config.reflector.listen.size(), 2u);
}

TEST(ConfigDpdk, DefaultsOfTheOptionalKeys) {
  const dp::DpdkOptions o = parse_ok(dpdk("")).dataplane.dpdk;
  EXPECT_EQ(o.port, "net_af_packet0,iface=eth1");
  EXPECT_FALSE(o.gateway4.valid());
  EXPECT_FALSE(o.gateway6.valid());
  EXPECT_TRUE(o.neighbours.empty());
  EXPECT_TRUE(o.eal_args.empty());
  EXPECT_EQ(o.lcore, -1);
  EXPECT_EQ(o.rx_queues, 1);
  EXPECT_EQ(o.tx_queues, 1);
  EXPECT_EQ(o.rx_descriptors, 1024);
  EXPECT_EQ(o.tx_descriptors, 1024);
  // One gateway may be a plain string; a [dataplane.dpdk.neighbours] table is the same as an inline one.
  const dp::DpdkOptions one = parse_ok(dpdk("gateway = \"2001:db8::fe\"\n[dataplane.dpdk.neighbours]\n"
                                            "\"198.18.0.9\" = \"02:00:00:00:00:09\"\n"))
                                  .dataplane.dpdk;
  EXPECT_FALSE(one.gateway4.valid());
  EXPECT_EQ(one.gateway6, host("2001:db8::fe"));
  ASSERT_EQ(one.neighbours.size(), 1u);
  EXPECT_EQ(one.neighbours[0].address, host("198.18.0.9"));
}

TEST(ConfigDpdk, PortAndAddressesAreRequired) {
  EXPECT_EQ(
      parse_error(std::string(kHead)),
      R"(hubprobe.toml:4:1: dataplane.dpdk.port: required key is missing (expected a PCI address like "0000:03:00.0" or a vdev like "net_af_packet0,iface=eth1": the port the backend drives))");
  EXPECT_EQ(
      parse_error(std::string(kHead) + "[dataplane.dpdk]\naddresses = [\"198.18.0.1/24\"]\n"),
      R"(hubprobe.toml:6:1: dataplane.dpdk.port: required key is missing (expected a PCI address like "0000:03:00.0" or a vdev like "net_af_packet0,iface=eth1": the port the backend drives))");
  EXPECT_EQ(
      parse_error(std::string(kHead) + "[dataplane.dpdk]\nport = \"\"\n"),
      R"(hubprobe.toml:7:8: dataplane.dpdk.port: expected a PCI address like "0000:03:00.0" or a vdev like "net_af_packet0,iface=eth1", got "")");
  EXPECT_EQ(
      parse_error(std::string(kHead) + "[dataplane.dpdk]\nport = \"0000:03:00.0\"\n"),
      R"(hubprobe.toml:6:1: dataplane.dpdk.addresses: required key is missing (expected an array of the port's addresses with prefix lengths like ["198.18.0.1/24", "2001:db8::1/64"]: the addresses the port answers ARP/ND for))");
  EXPECT_EQ(
      parse_error(std::string(kHead) + "[dataplane.dpdk]\nport = \"0000:03:00.0\"\naddresses = []\n"),
      R"(hubprobe.toml:8:13: dataplane.dpdk.addresses: expected an array of the port's addresses with prefix lengths like ["198.18.0.1/24", "2001:db8::1/64"], got an empty array)");
}

std::string with_addresses(std::string_view addresses) {
  return std::string(kHead) + "[dataplane.dpdk]\nport = \"0000:03:00.0\"\naddresses = " + std::string(addresses) + "\n";
}

TEST(ConfigDpdk, BadAddresses) {
  EXPECT_EQ(
      parse_error(with_addresses(R"(["198.18.0.300/24"])")),
      R"(hubprobe.toml:8:14: dataplane.dpdk.addresses[0]: expected an address with its prefix length like "198.18.0.1/24" or "2001:db8::1/64", got "198.18.0.300/24")");
  EXPECT_EQ(
      parse_error(with_addresses(R"(["198.18.0.1"])")),
      R"(hubprobe.toml:8:14: dataplane.dpdk.addresses[0]: expected an address with its prefix length like "198.18.0.1/24" or "2001:db8::1/64" (the prefix length is required), got "198.18.0.1")");
  EXPECT_EQ(
      parse_error(with_addresses(R"(["198.18.0.1/24", "198.18.0.1/33"])")),
      R"(hubprobe.toml:8:31: dataplane.dpdk.addresses[1]: expected a prefix length 0..32 after the IPv4 address, got "198.18.0.1/33")");
  EXPECT_EQ(
      parse_error(with_addresses(R"(["2001:db8::1/129"])")),
      R"(hubprobe.toml:8:14: dataplane.dpdk.addresses[0]: expected a prefix length 0..128 after the IPv6 address, got "2001:db8::1/129")");
  EXPECT_EQ(
      parse_error(with_addresses(R"(["0.0.0.0/0"])")),
      R"(hubprobe.toml:8:14: dataplane.dpdk.addresses[0]: expected an address with its prefix length like "198.18.0.1/24" or "2001:db8::1/64", got "0.0.0.0/0")");
  EXPECT_EQ(
      parse_error(with_addresses(R"(["198.18.0.1/24", "198.18.0.1/16"])")),
      R"(hubprobe.toml:8:31: dataplane.dpdk.addresses[1]: expected an address not listed before, got "198.18.0.1/16")");
}

TEST(ConfigDpdk, Gateways) {
  EXPECT_EQ(
      parse_error(dpdk("gateway = \"198.18.1.254\"\n")),
      R"(hubprobe.toml:9:11: dataplane.dpdk.gateway: expected a gateway on-link of one of the port's IPv4 addresses (198.18.0.1/24), got "198.18.1.254")");
  EXPECT_EQ(
      parse_error(dpdk("gateway = [\"198.18.0.254\", \"198.18.0.253\"]\n")),
      R"(hubprobe.toml:9:28: dataplane.dpdk.gateway[1]: expected at most one gateway per address family (the IPv4 gateway is 198.18.0.254), got "198.18.0.253")");
  EXPECT_EQ(
      parse_error(with_addresses(R"(["198.18.0.1/24"])") + "gateway = \"2001:db8::fe\"\n"),
      R"(hubprobe.toml:9:11: dataplane.dpdk.gateway: expected a gateway of a family the port has an address of (dataplane.dpdk.addresses has no IPv6 address), got "2001:db8::fe")");
  EXPECT_EQ(
      parse_error(dpdk("gateway = \"198.18.0.1\"\n")),
      R"(hubprobe.toml:9:11: dataplane.dpdk.gateway: expected a gateway other than the port's own addresses, got "198.18.0.1")");
  EXPECT_EQ(
      parse_error(dpdk("gateway = 1\n")),
      R"(hubprobe.toml:9:11: dataplane.dpdk.gateway: expected a gateway address like "198.18.0.254", or an array of one IPv4 and one IPv6 gateway, got 1)");
}

TEST(ConfigDpdk, Neighbours) {
  EXPECT_EQ(
      parse_error(dpdk("neighbours = { \"198.18.0.2\" = \"02:00:00:00:00\" }\n")),
      R"(hubprobe.toml:9:31: dataplane.dpdk.neighbours."198.18.0.2": expected a unicast MAC address like "02:00:00:00:00:02", got "02:00:00:00:00")");
  EXPECT_EQ(
      parse_error(dpdk("neighbours = { \"198.18.0.2\" = \"01:00:5e:00:00:01\" }\n")),
      R"(hubprobe.toml:9:31: dataplane.dpdk.neighbours."198.18.0.2": expected a unicast MAC address like "02:00:00:00:00:02", got "01:00:5e:00:00:01")");
  EXPECT_EQ(
      parse_error(dpdk("neighbours = { \"router\" = \"02:00:00:00:00:02\" }\n")),
      R"(hubprobe.toml:9:16: dataplane.dpdk.neighbours.router: expected a numeric IPv4 or IPv6 neighbour address as the key, like "198.18.0.2" = "02:00:00:00:00:02", got "router")");
  EXPECT_EQ(
      parse_error(dpdk("neighbours = { \"198.18.5.2\" = \"02:00:00:00:00:02\" }\n")),
      R"(hubprobe.toml:9:16: dataplane.dpdk.neighbours."198.18.5.2": expected a neighbour on-link of one of the port's IPv4 addresses (198.18.0.1/24), got "198.18.5.2")");
  EXPECT_EQ(
      parse_error(
          dpdk("neighbours = { \"2001:db8::2\" = \"02:00:00:00:00:02\", \"2001:DB8::2\" = \"02:00:00:00:00:03\" }\n")),
      R"(hubprobe.toml:9:53: dataplane.dpdk.neighbours."2001:DB8::2": expected a neighbour not listed before, got "2001:DB8::2" (the same address as "2001:db8::2"))");
}

TEST(ConfigDpdk, TheOtherKeys) {
  EXPECT_EQ(parse_error(dpdk("lcores = 3\n")),
            R"(hubprobe.toml:9:1: dataplane.dpdk.lcores: unknown key (did you mean "lcore"?))");
  EXPECT_EQ(parse_error(dpdk("rx_queues = 2\n")),
            "hubprobe.toml:9:13: dataplane.dpdk.rx_queues: expected 1 (multi-queue is not implemented: the backend "
            "polls one RX and one TX queue), got 2");
  EXPECT_EQ(parse_error(dpdk("tx_queues = 16\n")),
            "hubprobe.toml:9:13: dataplane.dpdk.tx_queues: expected 1 (multi-queue is not implemented: the backend "
            "polls one RX and one TX queue), got 16");
  EXPECT_EQ(parse_error(dpdk("rx_descriptors = 1000\n")),
            "hubprobe.toml:9:18: dataplane.dpdk.rx_descriptors: expected a ring size that is a power of two from 64 "
            "to 4096, like 1024, got 1000");
  EXPECT_EQ(parse_error(dpdk("tx_descriptors = 8192\n")),
            "hubprobe.toml:9:18: dataplane.dpdk.tx_descriptors: expected a ring size that is a power of two from 64 "
            "to 4096, like 1024, got 8192");
  EXPECT_EQ(parse_error(dpdk("lcore = -1\n")),
            "hubprobe.toml:9:9: dataplane.dpdk.lcore: expected an lcore id 0..1023 (leave lcore out for the last "
            "core), got -1");
  EXPECT_EQ(
      parse_error(dpdk("eal_args = \"--no-huge\"\n")),
      R"(hubprobe.toml:9:12: dataplane.dpdk.eal_args: expected an array of EAL arguments like ["--no-huge", "-m", "256"], got "--no-huge")");
  EXPECT_EQ(parse_error(dpdk("eal_args = [\"\"]\n")),
            R"(hubprobe.toml:9:13: dataplane.dpdk.eal_args[0]: expected an EAL argument, not an empty string, got "")");
}

TEST(ConfigDpdk, TheTableOnlyWithTheBackend) {
  EXPECT_EQ(
      parse_error("[agent]\nid = \"a\"\nhub = \"b\"\n[dataplane]\nbackend = \"kernel\"\n" + std::string(kPort)),
      R"(hubprobe.toml:6:1: dataplane.dpdk: is only read with backend = "dpdk" (the backend is "kernel"): remove the table or select the backend)");
  EXPECT_EQ(
      parse_error("[agent]\nid = \"a\"\nhub = \"b\"\n[dataplane]\nbackend = \"dpdk\"\n[dataplane.xdp]\n"),
      R"(hubprobe.toml:6:1: dataplane.xdp: is only read with backend = "xdp" (the backend is "dpdk"): remove the table or select the backend)");
}

TEST(ConfigDpdk, PathsArePinnedWithinThePort) {
  EXPECT_EQ(parse_error(dpdk("[[path]]\nname = \"b\"\nfwmark = 2\n")),
            "hubprobe.toml:11:10: path[0].fwmark: the dpdk dataplane has no routing table to turn a mark into a "
            "next hop: pin the path with source, dscp or source_ports instead");
  // Not looked up on the host: the port is no kernel interface.
  EXPECT_EQ(parse_error(dpdk("[[path]]\nname = \"b\"\ninterface = \"hpnosuch0\"\n")),
            "hubprobe.toml:11:13: path[0].interface: the dpdk dataplane has one port, which is every path's "
            "egress: leave interface unset");
  EXPECT_EQ(
      parse_error(dpdk("[[path]]\nname = \"b\"\nsource = \"198.18.0.2\"\n")),
      R"(hubprobe.toml:11:10: path[0].source: expected one of the dpdk port's addresses (dataplane.dpdk.addresses: 198.18.0.1/24, 2001:db8::1/64), got "198.18.0.2")");
  EXPECT_EQ(parse_error(dpdk("[[path]]\nname = \"b\"\nvlan = 100\n")).substr(0, 69),
            "hubprobe.toml:11:8: path[0].vlan: the dpdk dataplane does not tag VLA");
  EXPECT_EQ(parse_ok(dpdk("[[path]]\nname = \"b\"\nsource = \"2001:db8::1\"\n")).paths[0].source, host("2001:db8::1"));
}

TEST(ConfigDpdk, TheReflectorAnswersOnThePort) {
  EXPECT_EQ(parse_error(dpdk("[reflector]\ninterface = \"eth1\"\n")),
            "hubprobe.toml:10:13: reflector.interface: the dpdk dataplane answers on its port ([dataplane.dpdk] "
            "port), which is no kernel interface: leave reflector.interface unset (reflector.listen picks the "
            "port's addresses)");
  EXPECT_EQ(
      parse_error(dpdk("[reflector]\nlisten = [\"198.18.0.1\", \"198.18.0.7\"]\n")),
      R"(hubprobe.toml:10:25: reflector.listen[1]: expected a wildcard ("0.0.0.0", "::") or one of the dpdk port's addresses (dataplane.dpdk.addresses: 198.18.0.1/24, 2001:db8::1/64), got "198.18.0.7")");
  // A reflector that does not run asks nothing.
  EXPECT_FALSE(parse_ok(dpdk("[reflector]\nenabled = false\nlisten = [\"198.18.0.7\"]\ninterface = \"eth1\"\n"))
                   .reflector.enabled);
  EXPECT_EQ(parse_ok(dpdk("[reflector]\nlisten = [\"0.0.0.0\", \"2001:db8::1\"]\n")).reflector.listen.size(), 2u);
}

TEST(ConfigDpdk, PeersOfAFamilyThePortHas) {
  EXPECT_EQ(
      parse_error(with_addresses(R"(["198.18.0.1/24"])") +
                  "[[peer]]\nname = \"sg\"\nhub = \"sg\"\naddress = \"2001:db8:1::1\"\n"),
      R"(hubprobe.toml:12:11: peer[0].address: expected an address of a family the dpdk port has an address of (dataplane.dpdk.addresses has no IPv6 address), got "2001:db8:1::1")");
}

TEST(ConfigDpdk, AChangeOfTheTableIsADataplaneChange) {
  const AgentConfig before = parse_ok(dpdk(""));
  const AgentConfig after = parse_ok(dpdk("lcore = 1\n"));
  const ConfigDiff diff = diff_configs(before, after);
  EXPECT_TRUE(diff.dataplane_changed);  // the agent refuses the reload: restart hubprobed
  EXPECT_FALSE(diff.reflector_changed);
  EXPECT_TRUE(diff_configs(before, parse_ok(dpdk(""))).empty());
}

TEST(ConfigDpdk, CheckConfigAcceptsAValidFile) {
  char pattern[] = "/tmp/hubprobe-config-dpdk-test-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string path = std::string(pattern) + "/hubprobe.toml";
  std::ofstream(path) << kFull;
  std::ostringstream out, err;
  EXPECT_EQ(check_config_command(path, out, err), 0);
  EXPECT_EQ(out.str(), path + ": ok, 1 peer\n");
  EXPECT_EQ(err.str(), "");
  std::filesystem::remove_all(pattern);
}

}  // namespace
}  // namespace hubprobe
