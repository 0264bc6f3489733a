// SPDX-License-Identifier: Apache-2.0
// Self-tests of the integration harness (no hubprobe binary needed): namespaces appear and disappear,
// the veth carries IPv4 and IPv6, processes are captured, timed out and killed, the fake reflector
// answers as designed, nftables drops what it is told to, and a killed test process leaves nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "fake_peer.h"
#include "hubprobe/stamp_wire.h"
#include "janitor.h"
#include "netns.h"
#include "process.h"

namespace hubprobe::it {
namespace {

bool namespace_exists(const std::string& name) { return std::filesystem::exists("/var/run/netns/" + name); }

// Zombies count as dead: an orphan is reaped by whatever PID 1 is, which may be slow to do it.
bool pid_alive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return false;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

TEST(HarnessProcess, RunCommandCapturesOutputAndStatus) {
  CommandResult r = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_TRUE(r.exit.exited());
  EXPECT_EQ(r.exit.exit_code(), 3);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.timed_out);
}

TEST(HarnessProcess, RunCommandPassesStdinAndKillsOnTimeout) {
  CommandResult cat = run_command({"cat"}, Seconds(5), "hello\n");
  EXPECT_EQ(cat.out, "hello\n");
  CommandResult slow = run_command({"sleep", "30"}, Seconds(0.3));
  EXPECT_TRUE(slow.timed_out);
  EXPECT_EQ(slow.exit.term_signal(), SIGKILL);
  EXPECT_LT(slow.seconds, 3.0);
}

TEST(HarnessProcess, MissingProgramIsAClearError) {
  EXPECT_THROW(run_command({"/nonexistent/hubprobe-it-no-such-program"}), HarnessError);
}

TEST(HarnessProcess, ProcessWaitSignalAndDestructorKill) {
  TempDir dir;
  pid_t pid;
  {
    Process p({"sh", "-c", "echo started; exec sleep 30"}, "", dir.path(), "sleeper");
    pid = p.pid();
    EXPECT_FALSE(p.wait_for_exit(Seconds(0.2)));
    EXPECT_TRUE(p.running());
    EXPECT_EQ(p.stdout_text(), "started\n");
  }
  // Reaped by the destructor: the PID no longer names our child.
  EXPECT_FALSE(pid_alive(pid));

  Process q({"sleep", "30"}, "", dir.path(), "signalled");
  q.signal(SIGINT);
  ASSERT_TRUE(q.wait_for_exit(Seconds(5)));
  EXPECT_EQ(q.exit_info().term_signal(), SIGINT);

  // A process that ignores SIGTERM is SIGKILLed after the grace period.
  // (An ignored signal stays ignored across exec.)
  Process stubborn({"sh", "-c", "trap '' TERM; echo ready; exec sleep 30"}, "", dir.path(), "stubborn");
  for (int i = 0; i < 200 && stubborn.stdout_text().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ExitInfo info = stubborn.stop(Seconds(0.3));
  EXPECT_EQ(info.term_signal(), SIGKILL);
}

class HarnessNetns : public ::testing::Test {
 protected:
  void SetUp() override { HUBPROBE_REQUIRE_NETNS(); }
};

TEST_F(HarnessNetns, NamespaceCreatedAndRemoved) {
  std::string name;
  {
    Namespace ns("t");
    name = ns.name();
    EXPECT_EQ(name.rfind("hpit", 0), 0u);
    EXPECT_TRUE(namespace_exists(name));
    CommandResult lo = ns.exec_checked({"ip", "-o", "link", "show", "lo"});
    EXPECT_NE(lo.out.find("UP"), std::string::npos) << lo.out;
  }
  EXPECT_FALSE(namespace_exists(name));
}

TEST_F(HarnessNetns, TestbedCarriesIpv4AndIpv6AndIsRemoved) {
  std::string s, r;
  {
    Testbed bed;
    s = bed.sender().name();
    r = bed.reflector().name();
    CommandResult v4 = bed.sender().exec({"ping", "-c", "1", "-W", "2", Testbed::kReflectorV4});
    EXPECT_TRUE(v4.ok()) << v4.describe();
    CommandResult v6 = bed.sender().exec({"ping", "-6", "-c", "1", "-W", "2", Testbed::kReflectorV6});
    EXPECT_TRUE(v6.ok()) << v6.describe();
    CommandResult back = bed.reflector().exec({"ping", "-c", "1", "-W", "2", Testbed::kSenderV4});
    EXPECT_TRUE(back.ok()) << back.describe();
    // Nothing but the testbed addresses: no default route out of the namespace.
    CommandResult routes = bed.sender().exec_checked({"ip", "route", "show", "default"});
    EXPECT_EQ(routes.out, "");
  }
  EXPECT_FALSE(namespace_exists(s));
  EXPECT_FALSE(namespace_exists(r));
}

TEST_F(HarnessNetns, ProcessInsideNamespaceSeesOnlyItsInterfaces) {
  Testbed bed;
  TempDir dir;
  Process p({"ip", "-o", "addr", "show"}, bed.reflector().name(), dir.path(), "addrs");
  ASSERT_TRUE(p.wait_for_exit(Seconds(5)));
  const std::string out = p.stdout_text();
  EXPECT_NE(out.find(Testbed::kReflectorV4), std::string::npos) << out;
  EXPECT_EQ(out.find(Testbed::kSenderV4), std::string::npos) << out;
}

TEST_F(HarnessNetns, RunInNetnsJoinsTheNamespace) {
  Testbed bed;
  const ino_t want = bed.reflector().inode();
  int code = run_in_netns(bed.reflector(), [want]() -> int {
    struct stat st {};
    if (stat("/proc/self/ns/net", &st) != 0) return 2;
    return st.st_ino == want ? 0 : 1;
  });
  EXPECT_EQ(code, 0);
}

TEST_F(HarnessNetns, FakeReflectorModes) {
  Testbed bed;
  const auto request = build_test_packet(7, 60, 0x1234);
  const size_t sender_seq_at = offsetof(stamp_reflector_unauth, sender_seq);
  {
    FakeReflector fake(bed.reflector(), Misbehaviour::kValid);
    for (const char* addr : {Testbed::kReflectorV4, Testbed::kReflectorV6}) {
      auto reply = udp_exchange(bed.sender(), addr, 862, request, Seconds(2));
      ASSERT_TRUE(reply.has_value()) << addr;
      EXPECT_EQ(reply->size(), request.size());
      EXPECT_EQ(read_be32(*reply, sender_seq_at), 7u);
      EXPECT_EQ(read_be32(*reply, 0), 7u);
      // SSID copied, sender timestamp copied.
      EXPECT_EQ((*reply)[14], 0x12);
      EXPECT_EQ((*reply)[15], 0x34);
      EXPECT_TRUE(std::equal(request.begin() + 4, request.begin() + 12,
                             reply->begin() + offsetof(stamp_reflector_unauth, sender_timestamp)));
    }
    EXPECT_EQ(fake.requests(), 2u);
    EXPECT_EQ(fake.replies(), 2u);
  }
  {
    FakeReflector fake(bed.reflector(), Misbehaviour::kWrongSize);
    auto reply = udp_exchange(bed.sender(), Testbed::kReflectorV4, 862, request, Seconds(2));
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->size(), request.size() + 8);
  }
  {
    FakeReflector fake(bed.reflector(), Misbehaviour::kTruncated);
    auto reply = udp_exchange(bed.sender(), Testbed::kReflectorV4, 862, request, Seconds(2));
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->size(), 30u);
  }
  {
    FakeReflector fake(bed.reflector(), Misbehaviour::kWrongSeq);
    auto reply = udp_exchange(bed.sender(), Testbed::kReflectorV4, 862, request, Seconds(2));
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(read_be32(*reply, sender_seq_at), 100007u);
  }
  {
    FakeReflector fake(bed.reflector(), Misbehaviour::kSilent);
    auto reply = udp_exchange(bed.sender(), Testbed::kReflectorV4, 862, request, Seconds(0.3));
    EXPECT_FALSE(reply.has_value());
    EXPECT_EQ(fake.requests(), 1u);
    EXPECT_TRUE(fake.alive());
  }
}

TEST_F(HarnessNetns, NftDropsAndCounts) {
  HUBPROBE_REQUIRE_NFT();
  Testbed bed;
  FakeReflector fake(bed.reflector(), Misbehaviour::kValid);
  Nft nft(bed.reflector());
  nft.drop_random("input", 50, 862, "fwd_drop");
  // 400 probes at 50 %: mean 200 drops, sigma 10; 5 sigma is 150..250.
  ExchangeCount c = udp_burst(bed.sender(), Testbed::kReflectorV4, 862, 400, 44, 200, Seconds(0.3));
  const uint64_t dropped = nft.packets("fwd_drop");
  EXPECT_EQ(c.sent, 400u);
  EXPECT_GE(dropped, 150u) << nft.ruleset();
  EXPECT_LE(dropped, 250u) << nft.ruleset();
  EXPECT_EQ(c.replies + dropped, 400u);
  EXPECT_EQ(fake.requests(), 400u - dropped);
}

TEST_F(HarnessNetns, NftOutputDropIsBackwardLoss) {
  HUBPROBE_REQUIRE_NFT();
  Testbed bed;
  FakeReflector fake(bed.reflector(), Misbehaviour::kValid);
  Nft nft(bed.reflector());
  nft.drop_random("output", 100, 862, "bwd_drop");
  ExchangeCount c = udp_burst(bed.sender(), Testbed::kReflectorV4, 862, 20, 44, 200, Seconds(0.2));
  EXPECT_EQ(c.replies, 0u);
  EXPECT_EQ(fake.requests(), 20u);
  EXPECT_EQ(nft.packets("bwd_drop"), 20u);
}

// A test process that dies by SIGKILL (no destructors, no atexit) leaves no namespace behind: its
// janitor removes them, and its children die with it.
TEST_F(HarnessNetns, JanitorCleansUpAfterSigkill) {
  // The orphans (the child's janitor and sleeper) are reparented to us, so we can reap them; PID 1 in a
  // container may never do it.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  struct SubreaperOff {
    ~SubreaperOff() { prctl(PR_SET_CHILD_SUBREAPER, 0); }
  } subreaper_off;
  int names_pipe[2];
  ASSERT_EQ(pipe(names_pipe), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(names_pipe[0]);
    try {
      // Never destroyed, on purpose.
      auto* bed = new Testbed();
      auto* dir = new TempDir();
      auto* sleeper = new Process({"sleep", "60"}, bed->reflector().name(), dir->path(), "orphan");
      std::string msg = bed->sender().name() + " " + bed->reflector().name() + " " + std::to_string(sleeper->pid()) +
                        " " + std::to_string(janitor_pid()) + " " + dir->path().string() + "\n";
      (void)!write(names_pipe[1], msg.data(), msg.size());
    } catch (...) {
      _exit(3);
    }
    raise(SIGKILL);
    _exit(4);
  }
  close(names_pipe[1]);
  std::string msg;
  char buf[256];
  ssize_t n;
  while ((n = read(names_pipe[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  close(names_pipe[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child failed to set up: status " << status;
  std::istringstream s(msg);
  std::string sender, reflector, scratch;
  pid_t sleeper = 0, janitor = 0;
  s >> sender >> reflector >> sleeper >> janitor >> scratch;
  ASSERT_FALSE(scratch.empty()) << msg;
  ASSERT_NE(janitor, getpid());
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = !namespace_exists(sender) && !namespace_exists(reflector) && !pid_alive(sleeper) && !pid_alive(janitor) &&
           !std::filesystem::exists(scratch);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << sender << " " << reflector << " pid " << sleeper << " janitor " << janitor << " " << scratch;
  // Both were SIGKILLed (sleeper) or exited (janitor) by now; reap them unless PID 1 already did.
  for (pid_t orphan : {sleeper, janitor}) {
    if (orphan > 0) waitpid(orphan, nullptr, WNOHANG);
  }
}

}  // namespace
}  // namespace hubprobe::it
