// SPDX-License-Identifier: Apache-2.0
// The dataplane flags ping and reflect share (cli_usage.h): --backend dpdk and its --dpdk-* flags, --eal-arg and
// --lcore become DataplaneOptions::dpdk, with the rules of [dataplane.dpdk]. No dataplane is opened.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hubprobe/cli_usage.h"
#include "hubprobe/ping.h"
#include "hubprobe/reflect.h"

namespace hubprobe {
namespace {

SocketAddress host(std::string_view text) { return dp::parse_host(text).value(); }

PingArgs dpdk_ping() {
  PingArgs args;
  args.host = "198.18.0.2";
  args.backend = "dpdk";
  args.dpdk_port = "net_af_packet0,iface=eth1";
  args.dpdk_addresses = {"198.18.0.1/24", "2001:db8::1/64"};
  return args;
}

std::string ping_error(const PingArgs& args) {
  auto options = ping_options(args);
  EXPECT_FALSE(options.ok());
  return options.ok() ? "" : options.error().message;
}

TEST(DataplaneFlags, DpdkFlagsFillTheOptionsMakeDataplaneGets) {
  PingArgs args = dpdk_ping();
  args.dpdk_gateways = {"198.18.0.254", "2001:db8::fe"};
  args.dpdk_neighbours = {"198.18.0.254=02:00:00:00:00:fe"};
  args.eal_args = {"--no-huge", "-m", "256"};
  args.lcore = 2;
  args.source = "198.18.0.1";
  auto options = ping_options(args);
  ASSERT_TRUE(options.ok()) << options.error().message;
  EXPECT_EQ(options->dataplane.backend, "dpdk");
  const dp::DpdkOptions& dpdk = options->dataplane.dpdk;
  EXPECT_EQ(dpdk.port, "net_af_packet0,iface=eth1");
  EXPECT_EQ(dpdk.addresses, (std::vector<dp::InterfaceAddress>{{host("198.18.0.1"), 24}, {host("2001:db8::1"), 64}}));
  EXPECT_EQ(dpdk.gateway4, host("198.18.0.254"));
  EXPECT_EQ(dpdk.gateway6, host("2001:db8::fe"));
  EXPECT_EQ(dpdk.neighbours, (std::vector<dp::StaticNeighbour>{{host("198.18.0.254"), {2, 0, 0, 0, 0, 0xfe}}}));
  EXPECT_EQ(dpdk.eal_args, (std::vector<std::string>{"--no-huge", "-m", "256"}));
  EXPECT_EQ(dpdk.lcore, 2);
  EXPECT_EQ(dpdk.rx_queues, 1);

  // The defaults: no gateway, no neighbours, no EAL arguments, the backend's lcore.
  auto plain = ping_options(dpdk_ping());
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_FALSE(plain->dataplane.dpdk.gateway4.valid());
  EXPECT_EQ(plain->dataplane.dpdk.lcore, -1);
}

TEST(DataplaneFlags, DpdkFlagErrors) {
  PingArgs args = dpdk_ping();
  args.dpdk_port.clear();
  EXPECT_EQ(ping_error(args).rfind("--backend dpdk: give the port with --dpdk-port", 0), 0u);
  args = dpdk_ping();
  args.dpdk_addresses = {"198.18.0.1"};
  EXPECT_EQ(ping_error(args),
            "--dpdk-address 198.18.0.1: expected ADDR/LEN with the prefix length, e.g. 198.18.0.1/24 or "
            "2001:db8::1/64");
  args = dpdk_ping();
  args.dpdk_gateways = {"198.18.1.254"};
  EXPECT_EQ(ping_error(args),
            "--dpdk-gateway 198.18.1.254: expected a gateway on-link of one of the port's IPv4 addresses "
            "(198.18.0.1/24)");
  args.dpdk_gateways = {"198.18.0.253", "198.18.0.254"};
  EXPECT_EQ(ping_error(args),
            "--dpdk-gateway 198.18.0.254: at most one gateway per address family (the other is 198.18.0.253)");
  args = dpdk_ping();
  args.dpdk_neighbours = {"198.18.0.2=02:00:00:00:00"};
  EXPECT_EQ(ping_error(args),
            "--dpdk-neighbour 198.18.0.2=02:00:00:00:00: \"02:00:00:00:00\" is not a MAC address (e.g. "
            "02:00:00:00:00:01)");
  args = dpdk_ping();
  args.source = "198.18.0.9";
  EXPECT_EQ(ping_error(args),
            "-S 198.18.0.9: expected one of the port's addresses (--dpdk-address 198.18.0.1, "
            "2001:db8::1)");
  args = dpdk_ping();
  args.fwmark = 2;
  EXPECT_EQ(ping_error(args).rfind("-m: --backend dpdk has no routing table", 0), 0u);
  args = dpdk_ping();
  args.interface = "eth1";
  EXPECT_EQ(ping_error(args),
            "-I: --backend dpdk has one port (--dpdk-port), which is no kernel interface: leave -I unset");

  PingArgs kernel;
  kernel.host = "198.18.0.2";
  kernel.eal_args = {"--no-huge"};
  EXPECT_EQ(ping_error(kernel), "--eal-arg: only with --backend dpdk");
}

TEST(DataplaneFlags, ReflectTakesTheSameFlags) {
  ReflectArgs args;
  args.backend = "dpdk";
  args.dpdk_port = "0000:03:00.0";
  args.dpdk_addresses = {"198.18.0.1/24"};
  args.eal_args = {"--no-huge"};
  args.listen = {"198.18.0.1", "0.0.0.0"};
  auto options = reflect_options(args);
  ASSERT_TRUE(options.ok()) << options.error().message;
  EXPECT_EQ(options->dataplane.dpdk.port, "0000:03:00.0");
  EXPECT_EQ(options->dataplane.dpdk.eal_args, std::vector<std::string>{"--no-huge"});
  args.listen = {"198.18.0.5"};
  auto other = reflect_options(args);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().message,
            "--listen 198.18.0.5: expected a wildcard (0.0.0.0, ::) or one of the port's addresses (--dpdk-address "
            "198.18.0.1)");
}

}  // namespace
}  // namespace hubprobe
