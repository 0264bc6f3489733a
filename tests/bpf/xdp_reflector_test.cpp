// SPDX-License-Identifier: Apache-2.0
// hubprobe::xdp::XdpReflector on a real interface: a veth pair between two network namespaces that the
// test creates (names "hpxdp<PID>s" and "hpxdp<PID>r") and deletes in its teardown. A UDP socket in the
// sender namespace sends STAMP to the reflector namespace, where nothing listens on the port: only the
// XDP program can answer (the kernel alone would send ICMP port unreachable).
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hubprobe/clock.h"
#include "hubprobe/stamp.h"
#include "hubprobe/xdp_reflector.h"

extern char** environ;

namespace {

namespace stamp = hubprobe::stamp;
using hubprobe::xdp::AttachMode;
using hubprobe::xdp::XdpReflector;

constexpr const char* kSenderIf = "hpx0";
constexpr const char* kReflectorIf = "hpx1";
constexpr const char* kSenderV4 = "198.18.0.1";
constexpr const char* kReflectorV4 = "198.18.0.2";
constexpr const char* kSenderV6 = "2001:db8::1";
constexpr const char* kReflectorV6 = "2001:db8::2";
constexpr const char* kSenderMac = "02:68:70:00:00:01";
constexpr const char* kReflectorMac = "02:68:70:00:00:02";
constexpr uint16_t kPort = 862;
constexpr size_t kBaseLength = 44;  // unauthenticated STAMP base packet

bool privileged_required() {
  const char* v = std::getenv("HUBPROBE_REQUIRE_PRIVILEGED");
  return v != nullptr && std::string(v) == "1";
}

#define SKIP_OR_FAIL(message)                                                             \
  do {                                                                                    \
    if (privileged_required()) FAIL() << (message) << " (HUBPROBE_REQUIRE_PRIVILEGED=1)"; \
    GTEST_SKIP() << (message);                                                            \
  } while (0)

struct CommandResult {
  int status = -1;  // exit code, or -1 when it could not run or died from a signal
  std::string output;
};

// Runs argv (no shell), collecting stdout and stderr.
CommandResult run(const std::vector<std::string>& argv) {
  CommandResult result;
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return result;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawn_error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (spawn_error == 0) {
    char buffer[512];
    ssize_t n;
    while ((n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) result.output.append(buffer, static_cast<size_t>(n));
    int status = 0;
    if (waitpid(pid, &status, 0) == pid && WIFEXITED(status)) result.status = WEXITSTATUS(status);
  } else {
    result.output = std::string("cannot run ") + argv[0] + ": " + strerror(spawn_error);
  }
  close(pipe_fds[0]);
  return result;
}

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& arg : argv) s += (s.empty() ? "" : " ") + arg;
  return s;
}

// Enters a network namespace for the calling thread and returns to the original one when destroyed.
class NetnsScope {
 public:
  explicit NetnsScope(const std::string& netns) {
    original_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = original_ >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0;
    if (target >= 0) close(target);
  }
  ~NetnsScope() {
    if (original_ >= 0) {
      if (setns(original_, CLONE_NEWNET) != 0) std::abort();  // never run the rest of the tests elsewhere
      close(original_);
    }
  }
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;
  bool ok() const { return ok_; }

 private:
  int original_ = -1;
  bool ok_ = false;
};

// Two namespaces joined by a veth pair:
//   sender (hpx0) 198.18.0.1/24 2001:db8::1/64  <-->  reflector (hpx1) 198.18.0.2/24 2001:db8::2/64
// Deleted in the destructor (the veth goes with them), also when the test failed.
class Testbed {
 public:
  Testbed() : sender_("hpxdp" + std::to_string(getpid()) + "s"), reflector_("hpxdp" + std::to_string(getpid()) + "r") {}
  ~Testbed() {
    for (const std::string& name : created_) run({"ip", "netns", "delete", name});
  }
  Testbed(const Testbed&) = delete;
  Testbed& operator=(const Testbed&) = delete;

  // Builds the testbed; returns why it could not, or nullopt.
  std::optional<std::string> setup() {
    for (const std::string& name : {sender_, reflector_}) {
      run({"ip", "netns", "delete", name});  // a leftover of a crashed run with the same PID
      if (auto error = checked({"ip", "netns", "add", name})) return error;
      created_.push_back(name);
    }
    // Fixed MACs and permanent neighbour entries: no ARP or neighbour discovery in the exchanges
    // (right after link-up, IPv6 neighbour discovery alone can take a second).
    const std::vector<std::vector<std::string>> commands = {
        {"ip", "link", "add", kSenderIf, "address", kSenderMac, "netns", sender_, "type", "veth", "peer", "name",
         kReflectorIf, "address", kReflectorMac, "netns", reflector_},
        {"ip", "-n", sender_, "addr", "add", std::string(kSenderV4) + "/24", "dev", kSenderIf},
        {"ip", "-n", reflector_, "addr", "add", std::string(kReflectorV4) + "/24", "dev", kReflectorIf},
        {"ip", "-n", sender_, "-6", "addr", "add", std::string(kSenderV6) + "/64", "dev", kSenderIf, "nodad"},
        {"ip", "-n", reflector_, "-6", "addr", "add", std::string(kReflectorV6) + "/64", "dev", kReflectorIf, "nodad"},
        {"ip", "-n", sender_, "link", "set", "lo", "up"},
        {"ip", "-n", reflector_, "link", "set", "lo", "up"},
        {"ip", "-n", sender_, "link", "set", kSenderIf, "up"},
        {"ip", "-n", reflector_, "link", "set", kReflectorIf, "up"},
        {"ip", "-n", sender_, "neigh", "replace", kReflectorV4, "lladdr", kReflectorMac, "dev", kSenderIf, "nud",
         "permanent"},
        {"ip", "-n", sender_, "neigh", "replace", kReflectorV6, "lladdr", kReflectorMac, "dev", kSenderIf, "nud",
         "permanent"},
        {"ip", "-n", reflector_, "neigh", "replace", kSenderV4, "lladdr", kSenderMac, "dev", kReflectorIf, "nud",
         "permanent"},
        {"ip", "-n", reflector_, "neigh", "replace", kSenderV6, "lladdr", kSenderMac, "dev", kReflectorIf, "nud",
         "permanent"},
    };
    for (const auto& command : commands) {
      if (auto error = checked(command)) return error;
    }
    return std::nullopt;
  }

  // TX checksum offload on the sender's veth: on, a local sender's UDP checksum stays partial
  // (CHECKSUM_PARTIAL) when the frame reaches the peer's XDP program.
  std::optional<std::string> set_sender_tx_checksum_offload(bool on) {
    return checked({"ip", "netns", "exec", sender_, "ethtool", "-K", kSenderIf, "tx", on ? "on" : "off"});
  }

  const std::string& sender() const { return sender_; }
  const std::string& reflector() const { return reflector_; }

 private:
  static std::optional<std::string> checked(const std::vector<std::string>& argv) {
    const CommandResult result = run(argv);
    if (result.status == 0) return std::nullopt;
    return "`" + joined(argv) + "` failed (" + std::to_string(result.status) + "): " + result.output;
  }

  std::string sender_;
  std::string reflector_;
  std::vector<std::string> created_;
};

// Loads a reflector and attaches it to `ifname` inside `netns`.
hubprobe::Result<std::unique_ptr<XdpReflector>> attached_reflector(const std::string& netns, const char* ifname,
                                                                   AttachMode mode, bool reflect) {
  auto reflector = XdpReflector::load({.port = kPort, .reflect_unauthenticated = reflect});
  if (!reflector) return reflector.error();
  if (reflect) {
    if (auto published = (*reflector)->publish_clock(hubprobe::read_clock_state()); !published) {
      return published.error();
    }
  }
  NetnsScope scope(netns);
  if (!scope.ok()) return hubprobe::make_error("cannot enter network namespace " + netns, errno);
  const unsigned ifindex = if_nametoindex(ifname);
  if (ifindex == 0) return hubprobe::make_error(std::string("no interface ") + ifname + " in " + netns, errno);
  if (auto attached = (*reflector)->attach(static_cast<int>(ifindex), mode); !attached) return attached.error();
  return reflector;
}

uint64_t counter(const XdpReflector& reflector, std::string_view name) {
  auto counters = reflector.counters();
  EXPECT_TRUE(counters.ok()) << counters.error().message;
  if (!counters) return 0;
  for (const auto& c : *counters) {
    if (c.name == name) return c.value;
  }
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

struct Exchange {
  int error = 0;  // errno of send/recv, 0 on a reply
  std::vector<uint8_t> reply;
  hubprobe::WallNs t1 = 0;
  hubprobe::WallNs t4 = 0;  // after recv() returned
  uint16_t local_port = 0;
};

constexpr uint16_t kSsid = 0x4242;

// Sends one 44-octet STAMP test packet from the sender namespace and waits for the reply.
// `before_send` gets the socket's local port once it is bound.
Exchange exchange(const std::string& sender_netns, int family, uint32_t seq,
                  const std::function<void(uint16_t local_port)>& before_send = {}) {
  Exchange result;
  int fd = -1;
  {
    NetnsScope scope(sender_netns);  // a socket stays in the namespace it was created in
    if (!scope.ok()) {
      result.error = errno;
      return result;
    }
    fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) {
    result.error = errno;
    return result;
  }
  timeval timeout{.tv_sec = 2, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  int rc;
  if (family == AF_INET) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(kPort);
    inet_pton(AF_INET, kReflectorV4, &to.sin_addr);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  } else {
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(kPort);
    inet_pton(AF_INET6, kReflectorV6, &to.sin6_addr);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  }
  if (rc != 0) {
    result.error = errno;
    close(fd);
    return result;
  }
  sockaddr_storage local{};
  socklen_t local_length = sizeof(local);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length);
  result.local_port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&local)->sin_port
                                              : reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
  if (before_send) before_send(result.local_port);

  std::array<uint8_t, kBaseLength> request{};
  stamp::TestPacket fields;
  fields.seq = seq;
  fields.ssid = kSsid;
  result.t1 = hubprobe::wall_now();
  fields.timestamp = hubprobe::encode_timestamp(result.t1, hubprobe::TimestampFormat::kNtp, 37);
  fields.error_estimate =
      hubprobe::ErrorEstimate::from_clock(hubprobe::read_clock_state(), hubprobe::TimestampFormat::kNtp).encode();
  if (auto encoded = stamp::encode_test_packet(fields, stamp::Mode::kUnauthenticated, nullptr, request); !encoded) {
    ADD_FAILURE() << encoded.error().message;
  }
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    result.error = errno;
    close(fd);
    return result;
  }
  std::array<uint8_t, 2048> buffer{};
  const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
  result.t4 = hubprobe::wall_now();
  if (n < 0) {
    result.error = errno;
  } else {
    result.reply.assign(buffer.begin(), buffer.begin() + n);
  }
  close(fd);
  return result;
}

void expect_reply(const Exchange& x, uint32_t seq) {
  ASSERT_EQ(x.error, 0) << "no reply: " << strerror(x.error)
                        << (x.error == ECONNREFUSED ? " (ICMP port unreachable: XDP did not reflect)" : "");
  ASSERT_EQ(x.reply.size(), static_cast<size_t>(kBaseLength));
  const auto decoded = stamp::decode_reflected_packet(x.reply, stamp::Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok);
  const stamp::ReflectedPacket& r = decoded.parsed.packet;
  EXPECT_EQ(r.seq, seq);
  EXPECT_EQ(r.sender_seq, seq);
  EXPECT_EQ(r.ssid, kSsid);
  EXPECT_EQ(r.sender_ttl, 64) << "a Linux sender's TTL/hop limit, one hop away";
  const hubprobe::WallNs t2 =
      hubprobe::decode_timestamp(r.receive_timestamp, hubprobe::TimestampFormat::kNtp, 37, x.t1);
  const hubprobe::WallNs t3 = hubprobe::decode_timestamp(r.timestamp, hubprobe::TimestampFormat::kNtp, 37, x.t1);
  EXPECT_LE(x.t1, t2 + 1);
  EXPECT_LE(t2, t3);
  EXPECT_LE(t3, x.t4 + 1);
  std::cout << "[ measure  ] user-space RTT " << (x.t4 - x.t1) << " ns, XDP turnaround T3-T2 " << (t3 - t2) << " ns\n";
}

struct ModeCase {
  const char* name;
  AttachMode mode;
};

class VethTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) SKIP_OR_FAIL("needs root: creates network namespaces and attaches XDP programs");
    if (auto error = testbed_.setup()) SKIP_OR_FAIL("cannot build the veth testbed: " + *error);
    if (auto error = testbed_.set_sender_tx_checksum_offload(false)) FAIL() << *error;
  }

  Testbed testbed_;
};

class XdpReflectorVeth : public VethTest, public ::testing::WithParamInterface<ModeCase> {};

TEST_P(XdpReflectorVeth, ReflectsIpv4AndIpv6) {
  const AttachMode mode = GetParam().mode;
  std::unique_ptr<XdpReflector> peer_program;
  if (mode == AttachMode::kNative) {
    // Native XDP_TX on veth delivers only into a peer that runs an XDP program itself: a second
    // instance that reflects nothing (XDP_PASS for everything) serves as one.
    auto peer = attached_reflector(testbed_.sender(), kSenderIf, AttachMode::kNative, false);
    ASSERT_TRUE(peer.ok()) << peer.error().message;
    peer_program = std::move(*peer);
  }
  auto reflector = attached_reflector(testbed_.reflector(), kReflectorIf, mode, true);
  if (!reflector && reflector.error().code == EPERM) SKIP_OR_FAIL(reflector.error().message);
  ASSERT_TRUE(reflector.ok()) << reflector.error().message;

  expect_reply(exchange(testbed_.sender(), AF_INET, 1), 1);
  expect_reply(exchange(testbed_.sender(), AF_INET6, 2), 2);
  EXPECT_EQ(counter(**reflector, "reflected"), 2u);
  EXPECT_EQ(counter(**reflector, "passed_bad_csum"), 0u);
}

// The sender side runs the program too, as RX stamper: its socket's replies get T4 at XDP ingress,
// between the reflector's T3 and the moment recv() returned.
TEST_P(XdpReflectorVeth, SenderSocketGetsItsRxStamp) {
  const AttachMode mode = GetParam().mode;
  // Native mode: the stamper is also the XDP program the peer's native XDP_TX needs.
  auto stamper = attached_reflector(testbed_.sender(), kSenderIf, mode, false);
  if (!stamper && stamper.error().code == EPERM) SKIP_OR_FAIL(stamper.error().message);
  ASSERT_TRUE(stamper.ok()) << stamper.error().message;
  auto reflector = attached_reflector(testbed_.reflector(), kReflectorIf, mode, true);
  ASSERT_TRUE(reflector.ok()) << reflector.error().message;

  for (const int family : {AF_INET, AF_INET6}) {
    const uint32_t seq = family == AF_INET ? 11 : 12;
    const Exchange x = exchange(testbed_.sender(), family, seq,
                                [&](uint16_t port) { EXPECT_TRUE((*stamper)->register_sender_port(port).ok()); });
    expect_reply(x, seq);
    if (x.reply.size() != kBaseLength) continue;
    const auto t4 = (*stamper)->take_rx_stamp({.local_port = x.local_port, .ssid = kSsid, .sender_seq = seq});
    ASSERT_TRUE(t4.has_value()) << "no RX stamp for port " << x.local_port << ", sequence number " << seq;
    const auto decoded = stamp::decode_reflected_packet(x.reply, stamp::Mode::kUnauthenticated, nullptr);
    const hubprobe::WallNs t3 =
        hubprobe::decode_timestamp(decoded.parsed.packet.timestamp, hubprobe::TimestampFormat::kNtp, 37, x.t1);
    EXPECT_LE(t3, *t4 + 1) << "T4 after the reflector's T3 (one host clock; NTP rounding)";
    EXPECT_LE(*t4, x.t4) << "T4 before recv() returned";
    std::cout << "[ measure  ] XDP T4 to recv() return " << (x.t4 - *t4) << " ns\n";
    (*stamper)->unregister_sender_port(x.local_port);
  }
  EXPECT_EQ(counter(**stamper, "stamped_rx"), 2u);
  EXPECT_EQ(counter(**reflector, "reflected"), 2u);
}

INSTANTIATE_TEST_SUITE_P(Modes, XdpReflectorVeth,
                         ::testing::Values(ModeCase{"generic", AttachMode::kGeneric},
                                           ModeCase{"native", AttachMode::kNative}),
                         [](const ::testing::TestParamInfo<ModeCase>& param_info) {
                           return std::string(param_info.param.name);
                         });

using XdpReflectorVethGeneric = VethTest;

// With TX checksum offload on, a local sender's frames carry only a partial UDP checksum. The program
// must not answer them with a fresh checksum of its own; it passes them to the stack (here: nobody
// listens, so ICMP port unreachable) and counts them.
TEST_F(XdpReflectorVethGeneric, PartialChecksumGoesToTheStack) {
  if (auto error = testbed_.set_sender_tx_checksum_offload(true)) FAIL() << *error;
  auto reflector = attached_reflector(testbed_.reflector(), kReflectorIf, AttachMode::kGeneric, true);
  if (!reflector && reflector.error().code == EPERM) SKIP_OR_FAIL(reflector.error().message);
  ASSERT_TRUE(reflector.ok()) << reflector.error().message;
  const Exchange x = exchange(testbed_.sender(), AF_INET, 3);
  EXPECT_EQ(x.error, ECONNREFUSED) << "expected ICMP port unreachable from the stack";
  EXPECT_EQ(counter(**reflector, "passed_bad_csum"), 1u);
  EXPECT_EQ(counter(**reflector, "reflected"), 0u);
}

TEST_F(XdpReflectorVethGeneric, RefusesSecondProgramAndDetaches) {
  auto first = attached_reflector(testbed_.reflector(), kReflectorIf, AttachMode::kGeneric, true);
  if (!first && first.error().code == EPERM) SKIP_OR_FAIL(first.error().message);
  ASSERT_TRUE(first.ok()) << first.error().message;

  auto second = attached_reflector(testbed_.reflector(), kReflectorIf, AttachMode::kGeneric, true);
  ASSERT_FALSE(second.ok()) << "a second XDP program must not replace the first";
  EXPECT_EQ(second.error().code, EBUSY) << second.error().message;
  // The kernel truncates program names to 15 characters.
  EXPECT_NE(second.error().message.find("XDP program \"stamp_reflect_x\" (id "), std::string::npos)
      << "names the program in the way: " << second.error().message;
  EXPECT_NE(second.error().message.find("generic mode"), std::string::npos) << second.error().message;

  // Once the first is destroyed (detached), the interface is free again and ip link shows no XDP.
  first->reset();
  const CommandResult link = run({"ip", "-n", testbed_.reflector(), "link", "show", "dev", kReflectorIf});
  EXPECT_EQ(link.output.find("prog/xdp"), std::string::npos) << link.output;
  auto third = attached_reflector(testbed_.reflector(), kReflectorIf, AttachMode::kGeneric, true);
  EXPECT_TRUE(third.ok()) << third.error().message;
  expect_reply(exchange(testbed_.sender(), AF_INET, 4), 4);
}

// Mode auto: veth runs XDP in its driver, so native is chosen; with a program already attached it
// reports that rather than falling back to generic mode.
TEST_F(XdpReflectorVethGeneric, AttachAutoPrefersNative) {
  auto first = XdpReflector::load({.port = kPort});
  if (!first && first.error().code == EPERM) SKIP_OR_FAIL(first.error().message);
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = XdpReflector::load({.port = kPort});
  ASSERT_TRUE(second.ok()) << second.error().message;
  NetnsScope scope(testbed_.reflector());
  ASSERT_TRUE(scope.ok());
  const int ifindex = static_cast<int>(if_nametoindex(kReflectorIf));
  ASSERT_GT(ifindex, 0);

  EXPECT_EQ((*first)->attach_mode(), std::nullopt);
  auto chosen = (*first)->attach_auto(ifindex);
  ASSERT_TRUE(chosen.ok()) << chosen.error().message;
  EXPECT_EQ(*chosen, AttachMode::kNative);
  EXPECT_EQ((*first)->attach_mode(), AttachMode::kNative);

  auto refused = (*second)->attach_auto(ifindex);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, EBUSY) << refused.error().message;
  EXPECT_FALSE((*second)->attached());
}

}  // namespace
