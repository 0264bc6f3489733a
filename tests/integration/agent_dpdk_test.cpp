// SPDX-License-Identifier: Apache-2.0
// The dpdk backend in hubprobed, seen from outside: a `dpdk` agent on a vdev (net_af_packet, net_af_xdp)
// bound to a veth whose kernel side has no address, and a `kernel` agent in the other namespace, probing
// and reflecting over IPv4 and IPv6. The DPDK port owns 198.18.0.2 and 2001:db8::2: the kernel next door
// finds it by ARP and ND, which the port answers, and it resolves the kernel agent the same way. `ping`
// reaches it too. SIGTERM ends it cleanly: port closed, the EAL's runtime directory gone.
//
// Topology: the harness testbed (netns.h) with the reflector side's addresses removed:
//   sender ns: kernel agent  hpv0 198.18.0.1 2001:db8::1   <-->  hpv1 (no address)  dpdk agent: vdev on hpv1,
//                                                                                      198.18.0.2 2001:db8::2
// The sender's veth has TX checksum offload off: a veth otherwise hands a locally generated datagram over
// with only a partial UDP checksum, which the DPDK port (like any receiver on a wire) drops as bad_checksum.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent_support.h"
#include "emulated_link.h"
#include "fake_peer.h"
#include "hubprobe/stamp_wire.h"
#include "hubprobe_cli.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

constexpr uint16_t kDpdkMetrics = 9881, kKernelMetrics = 9882;

/// The vdev kinds the test runs the port on.
struct Vdev {
  const char* name;  ///< net_af_packet, net_af_xdp
};
void PrintTo(const Vdev& vdev, std::ostream* out) { *out << vdev.name; }

/// The testbed with the reflector side given to a DPDK port: its kernel keeps no address and no IPv6 there,
/// and the sender's datagrams carry full UDP checksums.
std::unique_ptr<Testbed> dpdk_testbed() {
  auto bed = std::make_unique<Testbed>();
  bed->sender().exec_checked({"ethtool", "-K", Testbed::kSenderIf, "tx", "off"});
  bed->reflector().ip({"addr", "flush", "dev", Testbed::kReflectorIf});
  bed->reflector().exec_checked(
      {"sysctl", "-qw", std::string("net.ipv6.conf.") + Testbed::kReflectorIf + ".disable_ipv6=1"});
  return bed;
}

class AgentDpdkTest : public ::testing::TestWithParam<Vdev> {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE(ethtool_missing_reason());
    bed_ = dpdk_testbed();
  }

  std::string vdev() const { return std::string(GetParam().name) + "0,iface=" + Testbed::kReflectorIf; }

  AgentFile dpdk_file() const {
    AgentFile f;
    f.id = "d-edge-01";
    f.hub = "d";
    f.metrics_listen = "127.0.0.1:" + std::to_string(kDpdkMetrics);
    f.interval = "50ms";
    f.reflector = {"mode = \"stateful\""};
    f.peers = {{"k4", "k", Testbed::kSenderV4, {}}, {"k6", "k", Testbed::kSenderV6, {}}};
    f.tail = "[dataplane]\nbackend = \"dpdk\"\n[dataplane.dpdk]\nport = \"" + vdev() +
             "\"\naddresses = [\"198.18.0.2/24\", \"2001:db8::2/64\"]\n"
             "eal_args = [\"--no-huge\", \"-m\", \"256\", \"--no-pci\", \"--no-telemetry\"]\n";
    return f;
  }

  static AgentFile kernel_file() {
    AgentFile f;
    f.id = "k-edge-01";
    f.hub = "k";
    f.metrics_listen = "127.0.0.1:" + std::to_string(kKernelMetrics);
    f.interval = "50ms";
    f.reflector = {"listen = [\"198.18.0.1\", \"2001:db8::1\"]"};
    f.peers = {{"d4", "d", Testbed::kReflectorV4, {}}, {"d6", "d", Testbed::kReflectorV6, {}}};
    return f;
  }

  std::unique_ptr<AgentProcess> start(const Namespace& ns, const AgentFile& f, uint16_t port, const std::string& name) {
    const auto config = dir_.write_file(name + ".toml", f.toml());
    return std::make_unique<AgentProcess>(ns, config, "127.0.0.1", port, dir_.path(), name);
  }

  TempDir dir_;
  std::unique_ptr<Testbed> bed_;
};

TEST_P(AgentDpdkTest, DpdkAndKernelAgentsProbeEachOtherOverIpv4AndIpv6) {
  auto dpdk = start(bed_->reflector(), dpdk_file(), kDpdkMetrics, "dpdk");
  auto kernel = start(bed_->sender(), kernel_file(), kKernelMetrics, "kernel");
  EXPECT_TRUE(replies_at_least(*kernel, {"d4", "d6"}, 20, Seconds(10)));
  EXPECT_TRUE(replies_at_least(*dpdk, {"k4", "k6"}, 20, Seconds(10)));

  const json status = dpdk->status();
  EXPECT_EQ(status["agent"]["backend"], "dpdk") << status.dump(2);
  EXPECT_EQ(metric_or_zero(*dpdk, "hubprobe_dataplane_attachment_info",
                           {{"interface", std::string(GetParam().name) + "0"}, {"mode", "poll"}}),
            1);
  // The dpdk agent's reflector answered the kernel agent (the user-space reflector on the lcore loop).
  EXPECT_GE(metric_or_zero(*dpdk, "hubprobe_reflector_replies_total", {{"backend", "dpdk"}}), 40);
  // Its own probes: T4 from the TSC at RX burst, T1 from the TSC just before the TX burst.
  for (const char* peer : {"k4", "k6"}) {
    const double replies = metric_or_zero(*dpdk, "hubprobe_replies_received_total", {{"peer", peer}});
    EXPECT_GE(
        metric_or_zero(*dpdk, "hubprobe_timestamps_total", {{"peer", peer}, {"timestamp", "t4"}, {"source", "tsc"}}),
        replies - 1)
        << peer;
    EXPECT_GE(
        metric_or_zero(*dpdk, "hubprobe_timestamps_total", {{"peer", peer}, {"timestamp", "t1"}, {"source", "tsc"}}),
        replies - 1)
        << peer;
  }
  // The port did its own link layer: it learnt the kernel agent's MAC by asking (the kernel next door learnt
  // the port's from those requests).
  const auto link = [&](const char* kind) {
    return metric_or_zero(*dpdk, "hubprobe_dataplane_link_frames_total", {{"kind", kind}});
  };
  EXPECT_GE(link("resolution_learnt"), 2) << "an IPv4 and an IPv6 neighbour";
  EXPECT_EQ(metric_or_zero(*dpdk, "hubprobe_dataplane_dropped_frames_total", {{"reason", "bad_checksum"}}), 0);
  const CommandResult neigh = bed_->sender().exec({"ip", "neigh", "show", "dev", Testbed::kSenderIf});
  EXPECT_NE(neigh.out.find(Testbed::kReflectorV4), std::string::npos) << neigh.out;
  // With the kernel's neighbour cache flushed, `ping` finds the port by ARP and ND, which it answers.
  bed_->sender().ip({"neigh", "flush", "dev", Testbed::kSenderIf});
  EXPECT_TRUE(bed_->sender().exec({"ping", "-c", "3", "-i", "0.2", "-W", "1", Testbed::kReflectorV4}).ok());
  EXPECT_TRUE(bed_->sender().exec({"ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", Testbed::kReflectorV6}).ok());
  EXPECT_GE(link("echo_reply_sent"), 6);
  EXPECT_GE(link("arp_reply_sent"), 1);
  EXPECT_GE(link("neighbour_advertisement_sent"), 1);
}

TEST_P(AgentDpdkTest, SigtermClosesThePortAndRemovesTheEalDirectory) {
  auto dpdk = start(bed_->reflector(), dpdk_file(), kDpdkMetrics, "dpdk");
  const std::filesystem::path runtime = "/var/run/dpdk/hubprobe-" + std::to_string(dpdk->pid());
  EXPECT_TRUE(std::filesystem::exists(runtime)) << runtime;
  const ExitInfo exit = dpdk->process().stop(Seconds(5));
  EXPECT_TRUE(exit.exited() && exit.exit_code() == 0) << dpdk->describe();
  EXPECT_FALSE(std::filesystem::exists(runtime)) << "the EAL's runtime directory is left behind";
  const CommandResult link = bed_->reflector().exec({"ip", "link", "show", "dev", Testbed::kReflectorIf});
  EXPECT_EQ(link.out.find("xdp"), std::string::npos) << "an XDP program stays attached:\n" << link.out;
}

INSTANTIATE_TEST_SUITE_P(Vdevs, AgentDpdkTest, ::testing::Values(Vdev{"net_af_packet"}, Vdev{"net_af_xdp"}),
                         [](const auto& vdev) { return std::string(vdev.param.name); });

// ---- `hubprobe reflect --backend dpdk` as an independent sender sees it ------------------------------

class DpdkReflectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE(ethtool_missing_reason());
    bed_ = dpdk_testbed();
  }

  /// Starts the reflector on an af_packet vdev and waits for its "reflecting STAMP on" lines.
  std::unique_ptr<Process> start(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {
        hubprobe_binary(),     "reflect",
        "--backend",           "dpdk",
        "--dpdk-port",         std::string("net_af_packet0,iface=") + Testbed::kReflectorIf,
        "--dpdk-address",      "198.18.0.2/24",
        "--dpdk-address",      "2001:db8::2/64",
        "--eal-arg=--no-huge", "--eal-arg=-m",
        "--eal-arg=256",       "--eal-arg=--no-pci"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto process = std::make_unique<Process>(argv, bed_->reflector().name(), dir_.path(), "dpdk-reflect");
    const bool ready = wait_until(
        [&] { return !process->running() || process->stdout_text().find("reflecting STAMP on") != std::string::npos; },
        Seconds(10), std::chrono::milliseconds(20));
    EXPECT_TRUE(ready && process->running()) << process->describe();
    return process;
  }

  TempDir dir_;
  std::unique_ptr<Testbed> bed_;
};

TEST_F(DpdkReflectTest, ReflectionsAreWhatAnIndependentSenderExpects) {
  using R = stamp_reflector_unauth;
  auto reflector = start({"--stateful"});
  for (const char* address : {Testbed::kReflectorV4, Testbed::kReflectorV6}) {
    SCOPED_TRACE(address);
    std::vector<std::vector<uint8_t>> requests;
    for (uint32_t seq : {10u, 11u, 15u}) requests.push_back(build_test_packet(seq, 44, 0x0042));
    requests.push_back(build_test_packet(16, 200, 0x0042));  // TWAMP-Light style zero padding
    const auto replies = udp_exchange_many(bed_->sender(), address, 862, requests, Seconds(2));
    ASSERT_EQ(replies.size(), requests.size());
    for (size_t i = 0; i < replies.size(); ++i) {
      ASSERT_EQ(replies[i].size(), requests[i].size()) << "reply " << i << "\n" << reflector->describe();
      EXPECT_EQ(read_be32(replies[i], offsetof(R, sender_seq)), read_be32(requests[i], 0));
      EXPECT_EQ(read_be32(replies[i], 0), i) << "stateful: the reflector numbers the session's packets";
      EXPECT_EQ(std::memcmp(&replies[i][offsetof(R, sender_timestamp)], &requests[i][4], 8), 0);
      EXPECT_EQ(std::memcmp(&replies[i][offsetof(R, ssid)], &requests[i][14], 2), 0);
      EXPECT_EQ(replies[i][offsetof(R, sender_ttl)], 64) << "the TTL the request arrived with";
    }
  }
  // RFC 8972: an unknown TLV comes back flagged U.
  auto request = build_test_packet(3, 44);
  const uint8_t unknown_tlv[] = {0x00, 200, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef};
  request.insert(request.end(), std::begin(unknown_tlv), std::end(unknown_tlv));
  const auto reply = udp_exchange(bed_->sender(), Testbed::kReflectorV4, 862, request, Seconds(2));
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->size(), request.size());
  EXPECT_EQ((*reply)[44] & STAMP_TLV_FLAG_U, STAMP_TLV_FLAG_U);
  // Hostile datagrams (short, garbage, oversized) do not stop it answering, and a 14-octet TWAMP-Light
  // request is not answered with a larger reply.
  send_datagrams(bed_->sender(), Testbed::kReflectorV4, 862,
                 {std::vector<uint8_t>(1, 0xff), std::vector<uint8_t>(14, 0), std::vector<uint8_t>(1400, 0xa5)});
  EXPECT_FALSE(udp_exchange(bed_->sender(), Testbed::kReflectorV4, 862, std::vector<uint8_t>(14, 0), Seconds(1)));
  EXPECT_TRUE(udp_exchange(bed_->sender(), Testbed::kReflectorV4, 862, build_test_packet(99, 44), Seconds(2)));
  const ExitInfo exit = reflector->stop(Seconds(5));
  EXPECT_TRUE(exit.exited() && exit.exit_code() == 0) << reflector->describe();
}

TEST_F(DpdkReflectTest, TwoReflectorsOnOneHostWithTheirOwnPrefixes) {
  // A second veth pair between the namespaces, its reflector side also given to a DPDK port.
  bed_->sender().ip({"link", "add", "hpw0", "type", "veth", "peer", "name", "hpw1", "netns", bed_->reflector().name()});
  bed_->sender().ip({"addr", "add", "198.18.1.1/24", "dev", "hpw0"});
  bed_->sender().ip({"link", "set", "hpw0", "up"});
  bed_->reflector().ip({"link", "set", "hpw1", "up"});
  bed_->sender().exec_checked({"ethtool", "-K", "hpw0", "tx", "off"});
  auto first = start({});
  Process second(
      {hubprobe_binary(), "reflect", "--backend", "dpdk", "--dpdk-port", "net_af_packet1,iface=hpw1", "--dpdk-address",
       "198.18.1.2/24", "--eal-arg=--no-huge", "--eal-arg=-m", "--eal-arg=256", "--eal-arg=--no-pci"},
      bed_->reflector().name(), dir_.path(), "dpdk-reflect-2");
  ASSERT_TRUE(wait_until([&] { return second.stdout_text().find("reflecting STAMP on") != std::string::npos; },
                         Seconds(10), std::chrono::milliseconds(20)))
      << second.describe();
  EXPECT_TRUE(std::filesystem::exists("/var/run/dpdk/hubprobe-" + std::to_string(first->pid())));
  EXPECT_TRUE(std::filesystem::exists("/var/run/dpdk/hubprobe-" + std::to_string(second.pid())));
  EXPECT_TRUE(udp_exchange(bed_->sender(), Testbed::kReflectorV4, 862, build_test_packet(1, 44), Seconds(2)));
  EXPECT_TRUE(udp_exchange(bed_->sender(), "198.18.1.2", 862, build_test_packet(2, 44), Seconds(2)));
  EXPECT_TRUE(first->running() && second.running());
}

TEST_F(DpdkReflectTest, EalAndPortErrorsInPlainWords) {
  const auto run = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {hubprobe_binary(), "reflect",      "--backend", "dpdk",
                                     "--dpdk-address",  "198.18.0.2/24"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return bed_->reflector().exec(argv, Seconds(20));
  };
  const CommandResult missing = run({"--dpdk-port", "net_af_packet0,iface=hpnothere", "--eal-arg=--no-huge",
                                     "--eal-arg=-m", "--eal-arg=256", "--eal-arg=--no-pci"});
  EXPECT_EQ(missing.exit.exit_code(), 3) << missing.describe();
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.describe();
  EXPECT_NE(missing.err.find("does the vdev's interface exist"), std::string::npos) << missing.describe();
  // Without --no-huge on a host without free hugepages, the message says how to run without them.
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  long value = -1;
  while (meminfo >> key >> value && key != "HugePages_Free:") meminfo.ignore(256, '\n');
  if (key == "HugePages_Free:" && value == 0) {
    const CommandResult huge = run({"--dpdk-port", std::string("net_af_packet0,iface=") + Testbed::kReflectorIf});
    EXPECT_EQ(huge.exit.exit_code(), 3) << huge.describe();
    EXPECT_NE(huge.err.find("--no-huge"), std::string::npos) << huge.describe();
  }
}

TEST_F(DpdkReflectTest, PingOverTheDpdkBackendAgainstAKernelReflector) {
  // The roles the other way round: the DPDK port pings the kernel's reflector in the other namespace.
  Process kernel_reflector({hubprobe_binary(), "reflect", "--listen", std::string(Testbed::kSenderV4) + ":862"},
                           bed_->sender().name(), dir_.path(), "kernel-reflect");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const CommandResult r =
      bed_->reflector().exec({hubprobe_binary(), "ping", "--backend", "dpdk", "--dpdk-port",
                              std::string("net_af_packet0,iface=") + Testbed::kReflectorIf, "--dpdk-address",
                              "198.18.0.2/24", "--eal-arg=--no-huge", "--eal-arg=-m", "--eal-arg=256",
                              "--eal-arg=--no-pci", "-c", "20", "-i", "0.01", "--json", Testbed::kSenderV4},
                             Seconds(20));
  ASSERT_TRUE(r.ok()) << r.describe();
  const json report = json::parse(r.out);
  EXPECT_GE(report["received"].get<int>(), 19) << report.dump(2);
}

}  // namespace
}  // namespace hubprobe::it::agent
