// SPDX-License-Identifier: Apache-2.0
// The xdp backend in hubprobed, seen from outside: an `xdp` agent and a `kernel` agent probing each other
// over IPv4 and IPv6 on one wire protocol; requests the XDP program does not answer (authenticated ones)
// still answered by the user-space reflector behind it; nothing left on the interface after SIGTERM or
// SIGKILL; two agents' XDP reflectors on two interfaces of one host.
//
// Topology: the harness testbed (netns.h), plus a second veth pair for the two-interface case:
//   sender ns: kernel agent  hpv0 198.18.0.1 2001:db8::1   <-->  hpv1 198.18.0.2 2001:db8::2  xdp agent (XDP on hpv1)
//              (second case) hpw0 198.18.1.1               <-->  hpw1 198.18.1.2  second xdp agent (XDP on hpw1)
// The XDP programs attach in generic mode (on veth, native XDP_TX needs a program on the peer too), and the
// sender's veth has TX checksum offload off: a locally generated datagram carries only a partial UDP checksum
// otherwise, which the program hands up to user space rather than reflect (counted as bad_csum).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "agent_support.h"
#include "emulated_link.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

constexpr uint16_t kXdpMetrics = 9871, kKernelMetrics = 9872, kSecondXdpMetrics = 9873;

std::optional<std::string> xdp_unavailable_reason() {
  if (geteuid() != 0) return "XDP needs root (CAP_BPF, CAP_NET_ADMIN)";
  if (!std::filesystem::exists("/sys/kernel/btf/vmlinux")) return "this kernel has no BTF (/sys/kernel/btf/vmlinux)";
  return std::nullopt;
}

/// The `ip link` line of `interface` in `ns` names an XDP program.
bool xdp_attached(const Namespace& ns, const std::string& interface) {
  const CommandResult r = ns.exec({"ip", "link", "show", "dev", interface});
  return r.out.find("xdp") != std::string::npos;
}

class AgentXdpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE(xdp_unavailable_reason());
    HUBPROBE_REQUIRE(ethtool_missing_reason());
    bed_ = std::make_unique<Testbed>();
    bed_->sender().exec_checked({"ethtool", "-K", Testbed::kSenderIf, "tx", "off"});
  }

  /// An agent file for the `xdp` agent in the reflector namespace, XDP on `interface`.
  static AgentFile xdp_file(const std::string& id, const std::string& interface, const std::string& listen,
                            uint16_t metrics_port) {
    AgentFile f;
    f.id = id;
    f.hub = "x";
    f.metrics_listen = "127.0.0.1:" + std::to_string(metrics_port);
    f.interval = "50ms";
    f.reflector = {"listen = [\"" + listen + "\"]", "mode = \"stateful\""};
    f.tail =
        "[dataplane]\nbackend = \"xdp\"\n[dataplane.xdp]\ninterfaces = [\"" + interface + "\"]\nmode = \"generic\"\n";
    return f;
  }

  static AgentFile kernel_file(std::vector<PeerEntry> peers) {
    AgentFile f;
    f.id = "k-edge-01";
    f.hub = "k";
    f.metrics_listen = "127.0.0.1:" + std::to_string(kKernelMetrics);
    f.interval = "50ms";
    f.reflector = {"listen = [\"198.18.0.1\", \"2001:db8::1\"]"};
    f.peers = std::move(peers);
    return f;
  }

  std::unique_ptr<AgentProcess> start(const Namespace& ns, const AgentFile& f, uint16_t port, const std::string& name) {
    const auto config = dir_.write_file(name + ".toml", f.toml());
    return std::make_unique<AgentProcess>(ns, config, "127.0.0.1", port, dir_.path(), name);
  }

  /// Waits until every peer in `names` is up on `agent`.
  static void expect_up(const AgentProcess& agent, const std::vector<std::string>& names) {
    json status;
    const bool up = wait_until(
        [&] {
          status = agent.status();
          for (const auto& name : names) {
            if (peer_state(status, name) != "up") return false;
          }
          return true;
        },
        Seconds(8));
    EXPECT_TRUE(up) << status.dump(2) << agent.describe();
  }

  TempDir dir_;
  std::unique_ptr<Testbed> bed_;
};

TEST_F(AgentXdpTest, XdpAndKernelAgentsProbeEachOtherOverIpv4AndIpv6) {
  AgentFile x = xdp_file("x-edge-01", Testbed::kReflectorIf, "198.18.0.2", kXdpMetrics);
  x.reflector = {"listen = [\"198.18.0.2\", \"2001:db8::2\"]", "mode = \"stateful\""};
  x.peers = {{"k4", "k", Testbed::kSenderV4, {}}, {"k6", "k", Testbed::kSenderV6, {}}};
  auto xdp = start(bed_->reflector(), x, kXdpMetrics, "xdp");
  auto kernel = start(bed_->sender(),
                      kernel_file({{"x4", "x", Testbed::kReflectorV4, {}}, {"x6", "x", Testbed::kReflectorV6, {}}}),
                      kKernelMetrics, "kernel");
  expect_up(*kernel, {"x4", "x6"});
  expect_up(*xdp, {"k4", "k6"});
  EXPECT_TRUE(replies_at_least(*kernel, {"x4", "x6"}, 10, Seconds(8)));
  EXPECT_TRUE(replies_at_least(*xdp, {"k4", "k6"}, 10, Seconds(8)));
  EXPECT_TRUE(xdp_attached(bed_->reflector(), Testbed::kReflectorIf));

  // The xdp agent's reflector: XDP answered the kernel agent's probes, the user-space one behind it none.
  const json status = xdp->status();
  EXPECT_EQ(status["agent"]["backend"], "xdp") << status.dump(2);
  EXPECT_EQ(status["reflector"]["in_backend"], std::string("xdp generic on ") + Testbed::kReflectorIf);
  EXPECT_EQ(metric_or_zero(*xdp, "hubprobe_dataplane_attachment_info",
                           {{"interface", Testbed::kReflectorIf}, {"mode", "generic"}}),
            1);
  const double xdp_replies = metric_or_zero(*xdp, "hubprobe_reflector_replies_total", {{"backend", "xdp"}});
  EXPECT_GE(xdp_replies, 20) << "XDP answered fewer than the kernel agent's replies";
  EXPECT_EQ(metric_or_zero(*xdp, "hubprobe_reflector_replies_total", {{"backend", "kernel"}}), 0)
      << "the user-space reflector answered what XDP should have";
  EXPECT_EQ(metric_or_zero(*xdp, "hubprobe_reflector_handed_up_total", {{"backend", "xdp"}, {"reason", "bad_csum"}}),
            0);

  // The xdp agent's own probes were answered by the kernel agent's user-space reflector, and their replies
  // stamped at XDP ingress (T4), over both families; T1 stays the kernel's TX stamp.
  EXPECT_GE(metric_or_zero(*kernel, "hubprobe_reflector_replies_total", {{"backend", "kernel"}}), 20);
  for (const char* peer : {"k4", "k6"}) {
    const double replies = metric_or_zero(*xdp, "hubprobe_replies_received_total", {{"peer", peer}});
    const double xdp_t4 =
        metric_or_zero(*xdp, "hubprobe_timestamps_total", {{"peer", peer}, {"timestamp", "t4"}, {"source", "xdp"}});
    EXPECT_GE(xdp_t4, replies - 2) << peer << ": " << xdp_t4 << " of " << replies << " replies stamped in XDP";
    EXPECT_GE(xdp_t4, 10) << peer;
    EXPECT_EQ(
        metric_or_zero(*xdp, "hubprobe_timestamps_total", {{"peer", peer}, {"timestamp", "t1"}, {"source", "xdp"}}), 0);
  }
}

TEST_F(AgentXdpTest, AuthenticatedRequestsAreAnsweredByUserSpace) {
  const auto key = dir_.write_file("key.hex", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
  AgentFile x = xdp_file("x-edge-01", Testbed::kReflectorIf, "198.18.0.2", kXdpMetrics);
  x.reflector.push_back("auth_key_file = \"" + key.string() + "\"");
  auto xdp = start(bed_->reflector(), x, kXdpMetrics, "xdp");
  auto kernel = start(bed_->sender(),
                      kernel_file({{"x4", "x", Testbed::kReflectorV4, {"auth_key_file = \"" + key.string() + "\""}}}),
                      kKernelMetrics, "kernel");
  expect_up(*kernel, {"x4"});
  EXPECT_TRUE(replies_at_least(*kernel, {"x4"}, 10, Seconds(8)));
  EXPECT_GE(metric_or_zero(*xdp, "hubprobe_reflector_replies_total", {{"backend", "kernel"}}), 10);
  EXPECT_EQ(metric_or_zero(*xdp, "hubprobe_reflector_replies_total", {{"backend", "xdp"}}), 0);
  EXPECT_GE(metric_or_zero(*xdp, "hubprobe_reflector_handed_up_total", {{"backend", "xdp"}, {"reason", "auth"}}), 10);
}

TEST_F(AgentXdpTest, TheReflectorsAllowListAndRateLimitApplyInXdp) {
  AgentFile x = xdp_file("x-edge-01", Testbed::kReflectorIf, "198.18.0.2", kXdpMetrics);
  x.reflector = {"listen = [\"198.18.0.2\", \"2001:db8::2\"]", "allow = [\"198.18.0.0/24\"]", "rate_limit_pps = 5"};
  auto xdp = start(bed_->reflector(), x, kXdpMetrics, "xdp");
  // Two peers at 20 probes a second each: IPv4 allowed but limited to 5 a second, IPv6 not allowed.
  auto kernel = start(bed_->sender(),
                      kernel_file({{"x4", "x", Testbed::kReflectorV4, {}}, {"x6", "x", Testbed::kReflectorV6, {}}}),
                      kKernelMetrics, "kernel");
  EXPECT_TRUE(replies_at_least(*kernel, {"x4"}, 10, Seconds(8)));
  EXPECT_TRUE(wait_until(
      [&] {
        return metric_or_zero(*xdp, "hubprobe_reflector_drops_total",
                              {{"backend", "xdp"}, {"reason", "not_allowed"}}) >= 10;
      },
      Seconds(5)));
  EXPECT_TRUE(wait_until(
      [&] {
        return metric_or_zero(*xdp, "hubprobe_reflector_drops_total",
                              {{"backend", "xdp"}, {"reason", "rate_limited"}}) >= 10;
      },
      Seconds(5)));
  EXPECT_EQ(metric_or_zero(*kernel, "hubprobe_replies_received_total", {{"peer", "x6"}}), 0);
  // Nothing of it reached user space: the drops are XDP's.
  EXPECT_EQ(metric_or_zero(*xdp, "hubprobe_reflector_requests_total", {{"backend", "kernel"}}), 0);
}

TEST_F(AgentXdpTest, XdpAnswersOnlyTheListenAddresses) {
  // Listening on the IPv4 address only: a request to the IPv6 one is left to the stack, where no reflector
  // listens either, as with the kernel backend.
  auto xdp = start(bed_->reflector(), xdp_file("x-edge-01", Testbed::kReflectorIf, "198.18.0.2", kXdpMetrics),
                   kXdpMetrics, "xdp");
  auto kernel = start(bed_->sender(),
                      kernel_file({{"x4", "x", Testbed::kReflectorV4, {}}, {"x6", "x", Testbed::kReflectorV6, {}}}),
                      kKernelMetrics, "kernel");
  EXPECT_TRUE(replies_at_least(*kernel, {"x4"}, 10, Seconds(8)));
  EXPECT_EQ(metric_or_zero(*kernel, "hubprobe_replies_received_total", {{"peer", "x6"}}), 0);
  EXPECT_GE(metric_or_zero(*xdp, "hubprobe_reflector_replies_total", {{"backend", "xdp"}}), 10);
  EXPECT_EQ(metric_or_zero(*xdp, "hubprobe_reflector_requests_total", {{"backend", "kernel"}}), 0);
}

TEST_F(AgentXdpTest, NothingStaysAttachedAfterSigtermOrSigkill) {
  for (const int signal : {SIGTERM, SIGKILL}) {
    auto xdp = start(bed_->reflector(), xdp_file("x-edge-01", Testbed::kReflectorIf, "198.18.0.2", kXdpMetrics),
                     kXdpMetrics, "xdp");
    ASSERT_TRUE(xdp_attached(bed_->reflector(), Testbed::kReflectorIf));
    ASSERT_EQ(kill(xdp->pid(), signal), 0);
    ASSERT_TRUE(xdp->process().wait_for_exit(Seconds(5))) << strsignal(signal);
    // A BPF link dies with its last file descriptor: the kernel detaches as the process's files close.
    EXPECT_TRUE(wait_until([&] { return !xdp_attached(bed_->reflector(), Testbed::kReflectorIf); }, Seconds(2)))
        << "a program is still attached after " << strsignal(signal) << ":\n"
        << bed_->reflector().exec({"ip", "link", "show", "dev", Testbed::kReflectorIf}).out;
  }
}

TEST_F(AgentXdpTest, TwoAgentsReflectOnTwoInterfacesOfOneHost) {
  bed_->sender().ip({"link", "add", "hpw0", "type", "veth", "peer", "name", "hpw1", "netns", bed_->reflector().name()});
  bed_->sender().ip({"addr", "add", "198.18.1.1/24", "dev", "hpw0"});
  bed_->reflector().ip({"addr", "add", "198.18.1.2/24", "dev", "hpw1"});
  bed_->sender().ip({"link", "set", "hpw0", "up"});
  bed_->reflector().ip({"link", "set", "hpw1", "up"});
  bed_->sender().exec_checked({"ethtool", "-K", "hpw0", "tx", "off"});

  auto first = start(bed_->reflector(), xdp_file("x-edge-01", Testbed::kReflectorIf, "198.18.0.2", kXdpMetrics),
                     kXdpMetrics, "xdp1");
  auto second = start(bed_->reflector(), xdp_file("x-edge-02", "hpw1", "198.18.1.2", kSecondXdpMetrics),
                      kSecondXdpMetrics, "xdp2");
  auto kernel =
      start(bed_->sender(), kernel_file({{"x1", "x", Testbed::kReflectorV4, {}}, {"x2", "x", "198.18.1.2", {}}}),
            kKernelMetrics, "kernel");
  expect_up(*kernel, {"x1", "x2"});
  EXPECT_TRUE(replies_at_least(*kernel, {"x1", "x2"}, 10, Seconds(8)));
  EXPECT_TRUE(xdp_attached(bed_->reflector(), Testbed::kReflectorIf));
  EXPECT_TRUE(xdp_attached(bed_->reflector(), "hpw1"));
  EXPECT_GE(metric_or_zero(*first, "hubprobe_reflector_replies_total", {{"backend", "xdp"}}), 10);
  EXPECT_GE(metric_or_zero(*second, "hubprobe_reflector_replies_total", {{"backend", "xdp"}}), 10);
  EXPECT_EQ(metric_or_zero(*first, "hubprobe_reflector_replies_total", {{"backend", "kernel"}}), 0);
  EXPECT_EQ(metric_or_zero(*second, "hubprobe_reflector_replies_total", {{"backend", "kernel"}}), 0);
}

/// The capabilities a unit file's CapabilityBoundingSet= lines name ("CAP_BPF" -> "bpf"), in order.
std::vector<std::string> bounding_set(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::vector<std::string> capabilities;
  const std::string key = "CapabilityBoundingSet=";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) != 0) continue;
    std::istringstream words(line.substr(key.size()));
    for (std::string word; words >> word;) {
      std::string name = word.substr(4);  // after "CAP_"
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      capabilities.push_back(name);
    }
  }
  return capabilities;
}

/// env(1) runs setpriv(1), which execs hubprobed as nobody with only `capabilities` (bounding, inheritable and
/// ambient), as systemd does with User=, CapabilityBoundingSet= and AmbientCapabilities=.
std::vector<std::string> as_nobody_with(const std::vector<std::string>& capabilities) {
  std::string list = "-all";
  for (const auto& c : capabilities) list += ",+" + c;
  return {"HUBPROBE_UNIT_TEST=1",   "setpriv",
          "--reuid=65534",          "--regid=65534",
          "--clear-groups",         "--inh-caps=" + list,
          "--ambient-caps=" + list, "--bounding-set=" + list};
}

TEST_F(AgentXdpTest, TheUnitsCapabilitiesAreEnough) {
  const std::filesystem::path source(HUBPROBE_SOURCE_DIR);
  std::vector<std::string> unit = bounding_set(source / "config/hubprobed.service.in");
  const std::vector<std::string> drop_in = bounding_set(source / "config/systemd/xdp.conf");
  ASSERT_FALSE(unit.empty());
  ASSERT_FALSE(drop_in.empty());
  std::filesystem::permissions(dir_.path(), std::filesystem::perms::others_read | std::filesystem::perms::others_exec,
                               std::filesystem::perm_options::add);  // nobody reads the config
  AgentFile f = xdp_file("x-edge-01", Testbed::kReflectorIf, "198.18.0.2", kXdpMetrics);
  const auto config = dir_.write_file("nobody.toml", f.toml());
  std::filesystem::permissions(config, std::filesystem::perms::others_read, std::filesystem::perm_options::add);

  std::vector<std::string> all = unit;
  all.insert(all.end(), drop_in.begin(), drop_in.end());
  {
    AgentProcess xdp(bed_->reflector(), config, "127.0.0.1", kXdpMetrics, dir_.path(), "nobody", as_nobody_with(all));
    EXPECT_TRUE(xdp_attached(bed_->reflector(), Testbed::kReflectorIf));
    auto kernel =
        start(bed_->sender(), kernel_file({{"x4", "x", Testbed::kReflectorV4, {}}}), kKernelMetrics, "kernel");
    EXPECT_TRUE(replies_at_least(*kernel, {"x4"}, 10, Seconds(8)));
    EXPECT_GE(metric_or_zero(xdp, "hubprobe_reflector_replies_total", {{"backend", "xdp"}}), 10);
  }
  // Each capability of the drop-in is needed: without it the agent does not start, and says why.
  for (const std::string& missing : drop_in) {
    std::vector<std::string> fewer = unit;
    for (const auto& c : drop_in) {
      if (c != missing) fewer.push_back(c);
    }
    AgentProcess xdp(bed_->reflector(), config, "127.0.0.1", kXdpMetrics, dir_.path(), "without-" + missing,
                     as_nobody_with(fewer), /*wait_ready=*/false);
    ASSERT_TRUE(xdp.process().wait_for_exit(Seconds(10))) << "started without CAP_" << missing;
    EXPECT_NE(xdp.process().exit_info().exit_code(), 0);
    EXPECT_NE(xdp.describe().find("hubprobed: loading the XDP STAMP reflector"), std::string::npos) << xdp.describe();
    EXPECT_NE(xdp.describe().find("CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN"), std::string::npos) << xdp.describe();
    EXPECT_FALSE(xdp_attached(bed_->reflector(), Testbed::kReflectorIf));
  }
}

}  // namespace
}  // namespace hubprobe::it::agent
