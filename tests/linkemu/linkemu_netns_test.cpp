// SPDX-License-Identifier: Apache-2.0
// hubprobe-linkemu in real namespaces (root):
//
//   hple<PID>l  l0 198.18.0.1/24 --veth-- bl0 [ hple<PID>b: hubprobe-linkemu --a bl0 --b br0 ] br0
//                                         --veth-- r0 198.18.0.2/24  hple<PID>r
//
// Pings through it with 10 ms each way (RTT ~ 20 ms), changes the a->b delay to 30 ms through the control
// socket mid-run (RTT ~ 40 ms), then puts 50 % loss on a->b. tcpdump on both backbone interfaces gives
// the truth: for every echo request/reply, (time out of the emulator - time into it - nominal delay) is
// the emulator's own error. The test asserts what the emulator guarantees whatever else runs on the host:
// no frame early, frames in their order, the median frame on time within a bound measured under load,
// and drop counters that add up. The error's tail (p99, max) depends on the host's load and is only
// reported (test properties emu_error_*), for benchmarks (docs/testing.md, "Timing assertions").
//
// Skips without root (fails instead under HUBPROBE_REQUIRE_PRIVILEGED=1). Namespaces and processes are
// removed by RAII; processes also get PR_SET_PDEATHSIG so they die with the test binary.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "../support/pcap_reader.h"

namespace {

bool privileged_required() {
  const char* v = std::getenv("HUBPROBE_REQUIRE_PRIVILEGED");
  return v && std::string(v) == "1";
}

#define LINKEMU_REQUIRE(cond, reason)                                                      \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      if (privileged_required()) FAIL() << (reason) << " (HUBPROBE_REQUIRE_PRIVILEGED=1)"; \
      GTEST_SKIP() << (reason);                                                            \
    }                                                                                      \
  } while (0)

struct Result {
  int status = -1;
  std::string out;
};

/// Runs a shell command to completion, stdout+stderr captured.
Result sh(const std::string& cmd) {
  Result r;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  const int st = pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A child process (argv), stdout+stderr to `log`; SIGINT, then SIGKILL, on stop()/destruction.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> a;
      for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      execvp(a[0], a.data());
      _exit(127);
    }
  }
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  bool running() {
    if (pid_ <= 0) return false;
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);
    for (int i = 0; i < 300; ++i) {
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

bool wait_for(const std::function<bool()>& cond, int ms) {
  for (int i = 0; i < ms / 10; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

/// Three namespaces: left, backbone, right, as in the header comment. Removed on destruction.
class Testbed {
 public:
  Testbed() : prefix_("hple" + std::to_string(getpid())) {}
  ~Testbed() {
    for (const char* s : {"l", "b", "r"}) sh("ip netns del " + prefix_ + s);
  }
  /// Empty string on success, else what failed.
  std::string build() {
    for (const char* s : {"l", "b", "r"}) {
      const Result r = sh("ip netns add " + prefix_ + s + " && ip -n " + prefix_ + s + " link set dev lo up");
      if (r.status != 0) return "ip netns add failed: " + r.out;
    }
    const std::vector<std::string> cmds = {
        "ip link add l0 netns " + L() + " type veth peer name bl0 netns " + B(),
        "ip link add r0 netns " + R() + " type veth peer name br0 netns " + B(),
        "ip -n " + L() + " addr add 198.18.0.1/24 dev l0",
        "ip -n " + R() + " addr add 198.18.0.2/24 dev r0",
    };
    for (const auto& c : cmds) {
      const Result r = sh(c);
      if (r.status != 0) return c + ": " + r.out;
    }
    for (const std::string& ns : {L(), B(), R()})  // no IPv6 chatter (RS, MLD) on the link
      sh("ip netns exec " + ns + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
    const std::vector<std::pair<std::string, std::string>> ifs = {{L(), "l0"}, {B(), "bl0"}, {B(), "br0"}, {R(), "r0"}};
    for (const auto& [ns, dev] : ifs) {
      // Frames must reach the emulator at wire size with complete checksums (see README).
      sh("ip netns exec " + ns + " ethtool -K " + dev + " tso off gso off gro off tx off");
      const Result r = sh("ip -n " + ns + " link set dev " + dev + " up");
      if (r.status != 0) return "link up " + dev + ": " + r.out;
    }
    return {};
  }
  std::string L() const { return prefix_ + "l"; }
  std::string B() const { return prefix_ + "b"; }
  std::string R() const { return prefix_ + "r"; }

 private:
  std::string prefix_;
};

struct Ping {
  int sent = 0, received = 0;
  double min_ms = 0, avg_ms = 0, max_ms = 0;
};

std::optional<Ping> ping(const Testbed& tb, int count, const std::string& interval, int size) {
  const Result r = sh("ip netns exec " + tb.L() + " ping -n -q -c " + std::to_string(count) + " -i " + interval +
                      " -s " + std::to_string(size) + " -W 1 198.18.0.2");
  Ping p;
  const char* t = std::strstr(r.out.c_str(), "packets transmitted");
  if (!t) return std::nullopt;
  const char* line = t;
  while (line > r.out.c_str() && line[-1] != '\n') --line;
  if (std::sscanf(line, "%d packets transmitted, %d received", &p.sent, &p.received) != 2) return std::nullopt;
  if (const char* m = std::strstr(r.out.c_str(), "rtt min/avg/max/mdev = "))
    std::sscanf(m, "rtt min/avg/max/mdev = %lf/%lf/%lf", &p.min_ms, &p.avg_ms, &p.max_ms);
  return p;
}

/// One ICMP echo frame seen by tcpdump.
struct Seen {
  int64_t t_ns;
  int type;  // 8 request, 0 reply
  int id, seq, ip_len;
};

/// Reads a nanosecond pcap (Ethernet) and returns the IPv4 ICMP echo frames.
std::vector<Seen> read_pcap(const std::string& path) {
  std::vector<Seen> out;
  using hubprobe::test::be16_at;
  hubprobe::test::for_each_ipv4_frame(path, [&](int64_t t, const uint8_t* ip, size_t captured) {
    const size_t ihl = (ip[0] & 0xf) * 4u;
    if (ip[9] != 1 || captured < ihl + 8) return;  // ICMP
    const size_t icmp = ihl;
    const int type = ip[icmp];
    if (type != 0 && type != 8) return;
    out.push_back(Seen{t, type, static_cast<int>(be16_at(ip, icmp + 4)), static_cast<int>(be16_at(ip, icmp + 6)),
                       static_cast<int>(be16_at(ip, 2))});
  });
  return out;
}

struct ErrStats {
  size_t n = 0;
  double mean_us = 0, p50_us = 0, p99_us = 0, max_us = 0, min_us = 0;
};

ErrStats stats(std::vector<double> v) {
  ErrStats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean_us = sum / static_cast<double>(v.size());
  auto q = [&](double f) { return v[std::min(v.size() - 1, static_cast<size_t>(f * static_cast<double>(v.size())))]; };
  s.p50_us = q(0.5);
  s.p99_us = q(0.99);
  s.max_us = v.back();
  s.min_us = v.front();
  return s;
}

/// A counter of one direction ("ab" or "ba") from the emulator's `show` output; -1 when missing.
long show_counter(const std::string& show, const std::string& direction, const std::string& name) {
  const size_t line = show.rfind(direction + " ", 0) == 0 ? 0 : show.find("\n" + direction + " ");
  if (line == std::string::npos) return -1;
  const size_t end = show.find('\n', line + 1);
  const size_t at = show.find(" " + name + "=", line);
  if (at == std::string::npos || (end != std::string::npos && at > end)) return -1;
  return std::strtol(show.c_str() + at + name.size() + 2, nullptr, 10);
}

/// Frames that left in another order than they arrived: out_times[i] is when the i-th frame to arrive
/// left. Counts inversions of neighbours.
size_t out_of_order(const std::vector<std::pair<int64_t, int64_t>>& in_out) {
  std::vector<std::pair<int64_t, int64_t>> sorted = in_out;
  std::sort(sorted.begin(), sorted.end());
  size_t inversions = 0;
  for (size_t i = 1; i < sorted.size(); ++i) inversions += sorted[i].second < sorted[i - 1].second;
  return inversions;
}

std::string describe(const char* what, const ErrStats& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%s: n=%zu error (out - in - nominal) min %.1f mean %.1f p50 %.1f p99 %.1f max %.1f us", what, s.n,
                s.min_us, s.mean_us, s.p50_us, s.p99_us, s.max_us);
  return buf;
}

TEST(LinkemuNetns, DelayControlLossAndOwnError) {
  LINKEMU_REQUIRE(geteuid() == 0, "needs root (network namespaces, AF_PACKET)");
  LINKEMU_REQUIRE(sh("command -v tcpdump").status == 0, "tcpdump is not installed");
  Testbed tb;
  const std::string err = tb.build();
  LINKEMU_REQUIRE(err.empty(), "cannot build the namespace testbed: " + err);

  char tmpl[] = "/tmp/hple-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  struct RemoveDir {
    std::string d;
    ~RemoveDir() { sh("rm -rf '" + d + "'"); }
  } remove_dir{dir};  // also on a failed ASSERT (declared before the processes: removed after they stop)
  const std::string sock = dir + "/ctl.sock";
  const std::string emu = HUBPROBE_LINKEMU_BINARY;
  auto ctl = [&](const std::string& cmd) { return sh(emu + " --ctl " + sock + " '" + cmd + "'"); };

  std::vector<std::string> emu_argv{"ip",  "netns", "exec",    tb.B(), emu,         "--a", "bl0",
                                    "--b", "br0",   "--delay", "10ms", "--control", sock};
  // Extra emulator options for measurements (e.g. "--spin 200us --rt"), whitespace-separated.
  if (const char* extra = std::getenv("HUBPROBE_LINKEMU_ARGS")) {
    std::istringstream in(extra);
    for (std::string w; in >> w;) emu_argv.push_back(w);
  }
  std::optional<Child> emulator(std::in_place, emu_argv, dir + "/emu.log");
  ASSERT_TRUE(wait_for([&] { return access(sock.c_str(), F_OK) == 0; }, 3000)) << slurp(dir + "/emu.log");

  auto tcpdump = [&](const std::string& dev) {
    return std::make_unique<Child>(
        std::vector<std::string>{"ip", "netns", "exec", tb.B(), "tcpdump", "-i", dev, "-n", "-s", "128", "-U", "-Z",
                                 "root", "--immediate-mode", "--time-stamp-precision=nano", "-w",
                                 dir + "/" + dev + ".pcap", "icmp"},
        dir + "/" + dev + ".log");
  };
  auto cap_l = tcpdump("bl0");
  auto cap_r = tcpdump("br0");
  ASSERT_TRUE(wait_for(
      [&] {
        return slurp(dir + "/bl0.log").find("listening on") != std::string::npos &&
               slurp(dir + "/br0.log").find("listening on") != std::string::npos;
      },
      5000))
      << slurp(dir + "/bl0.log") << slurp(dir + "/br0.log");

  // Phase 1: 10 ms each way. The first ping also carries ARP through the emulator.
  ASSERT_TRUE(ping(tb, 1, "0.2", 56));
  const auto p1 = ping(tb, 100, "0.02", 56);
  ASSERT_TRUE(p1);
  EXPECT_EQ(p1->received, 100);
  // Never early. The best of 100 round trips within 1 ms of the nominal: one ping in 100 that is not
  // delayed by the host is enough (the mean and the max, which the host's load drives, are not judged).
  EXPECT_GE(p1->min_ms, 20.0);
  EXPECT_LT(p1->min_ms, 21.0);

  // Phase 2: a->b to 30 ms while it runs.
  const Result set = ctl("set ab delay=30ms");
  EXPECT_EQ(set.out, "ok\n");
  const auto p2 = ping(tb, 100, "0.02", 100);
  ASSERT_TRUE(p2);
  EXPECT_EQ(p2->received, 100);
  EXPECT_GE(p2->min_ms, 40.0);
  EXPECT_LT(p2->min_ms, 41.0);

  // Phase 3: 50 % random loss a->b, 1 ms each way.
  EXPECT_EQ(ctl("set both delay=1ms").out, "ok\n");
  EXPECT_EQ(ctl("set ab loss=50%").out, "ok\n");
  const auto p3 = ping(tb, 400, "0.005", 200);
  ASSERT_TRUE(p3);
  EXPECT_GT(p3->received, 400 / 2 - 50);  // binomial(400, 0.5): sd 10
  EXPECT_LT(p3->received, 400 / 2 + 50);
  const std::string show = ctl("show").out;
  EXPECT_NE(show.find("ab delay=1ms jitter=0 dist=uniform reorder=0 loss=50%"), std::string::npos) << show;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // nothing queued any more
  const std::string show_end = ctl("show").out;
  const long ab_drop = show_counter(show_end, "ab", "drop_loss");
  const long ba_fwd = show_counter(show_end, "ba", "forwarded");
  ASSERT_GE(ab_drop, 0) << show_end;
  ASSERT_GE(ba_fwd, 0) << show_end;
  // The counters add up exactly: every frame the emulator received was forwarded or dropped for one
  // reason; no loss was configured on b->a.
  for (const char* direction : {"ab", "ba"}) {
    long accounted = 0;
    for (const char* name : {"forwarded", "drop_loss", "drop_burst", "drop_queue", "send_error", "queued"}) {
      const long value = show_counter(show_end, direction, name);
      ASSERT_GE(value, 0) << direction << " " << name << "\n" << show_end;
      accounted += value;
    }
    EXPECT_EQ(show_counter(show_end, direction, "received"), accounted) << direction << "\n" << show_end;
    EXPECT_EQ(show_counter(show_end, direction, "queued"), 0) << direction << "\n" << show_end;
  }
  EXPECT_EQ(show_counter(show_end, "ba", "drop_loss"), 0) << show_end;
  // Every echo request lost on a->b is a missing reply; loss also hits the odd ARP frame, hence the slack.
  EXPECT_GE(ab_drop, 400 - p3->received) << show_end;
  EXPECT_LE(ab_drop, 400 - p3->received + 5) << show_end;
  EXPECT_GE(ba_fwd, 1 + 100 + 100 + p3->received) << show_end;
  std::printf("%s", show_end.c_str());

  cap_l->stop();
  cap_r->stop();
  emulator->stop();
  const std::string emu_log = slurp(dir + "/emu.log");
  EXPECT_NE(emu_log.find("set ab delay=30ms -> ok"), std::string::npos) << emu_log;

  // Capture truth: in and out stamps per echo frame.
  const std::vector<Seen> on_l = read_pcap(dir + "/bl0.pcap");
  const std::vector<Seen> on_r = read_pcap(dir + "/br0.pcap");
  using Key = std::tuple<int, int, int>;  // type, id, seq (ids differ per ping run)
  std::map<Key, Seen> l_by, r_by;
  for (const Seen& s : on_l) l_by.emplace(Key{s.type, s.id, s.seq}, s);
  for (const Seen& s : on_r) r_by.emplace(Key{s.type, s.id, s.seq}, s);
  // Nominal delay by ICMP payload size (phase): IP length = 28 + payload.
  auto nominal_ms = [](int type, int ip_len) -> int {
    if (ip_len == 28 + 56) return 10;
    if (ip_len == 28 + 100) return type == 8 ? 30 : 10;
    if (ip_len == 28 + 200) return 1;
    return -1;
  };
  std::vector<double> err_ab, err_ba, err_all;
  std::vector<std::pair<int64_t, int64_t>> in_out_ab, in_out_ba;  // (in, out) capture times
  size_t phase3_requests_in = 0, phase3_requests_dropped = 0;
  for (const auto& [k, in] : l_by) {  // requests: in on bl0, out on br0
    if (std::get<0>(k) != 8) continue;
    const bool phase3 = in.ip_len == 28 + 200;
    phase3_requests_in += phase3;
    auto it = r_by.find(k);
    if (it == r_by.end()) {
      phase3_requests_dropped += phase3;
      continue;
    }
    in_out_ab.emplace_back(in.t_ns, it->second.t_ns);
    const int nom = nominal_ms(8, in.ip_len);
    if (nom < 0) continue;
    err_ab.push_back(static_cast<double>(it->second.t_ns - in.t_ns - nom * 1000000LL) / 1000.0);
  }
  for (const auto& [k, in] : r_by) {  // replies: in on br0, out on bl0
    if (std::get<0>(k) != 0) continue;
    auto it = l_by.find(k);
    if (it == l_by.end()) continue;
    in_out_ba.emplace_back(in.t_ns, it->second.t_ns);
    const int nom = nominal_ms(0, in.ip_len);
    if (nom < 0) continue;
    err_ba.push_back(static_cast<double>(it->second.t_ns - in.t_ns - nom * 1000000LL) / 1000.0);
  }
  // The drops the captures show are the requests without a reply (b->a loses nothing).
  EXPECT_EQ(phase3_requests_in, 400u);
  EXPECT_EQ(phase3_requests_dropped, static_cast<size_t>(400 - p3->received));
  // reorder=0: frames leave each way in the order they came, also when a lower delay makes new frames
  // wait for old ones.
  EXPECT_EQ(out_of_order(in_out_ab), 0u);
  EXPECT_EQ(out_of_order(in_out_ba), 0u);
  err_all = err_ab;
  err_all.insert(err_all.end(), err_ba.begin(), err_ba.end());
  const ErrStats sab = stats(err_ab), sba = stats(err_ba), sall = stats(err_all);
  std::printf("%s\n%s\n%s\n", describe("a->b", sab).c_str(), describe("b->a", sba).c_str(),
              describe("all ", sall).c_str());
  ::testing::Test::RecordProperty("emu_error_mean_us", std::to_string(sall.mean_us));
  ::testing::Test::RecordProperty("emu_error_p99_us", std::to_string(sall.p99_us));
  ::testing::Test::RecordProperty("emu_error_max_us", std::to_string(sall.max_us));
  // Every delivered request/reply was captured on both sides.
  EXPECT_GE(sab.n, static_cast<size_t>(200 + p3->received));
  EXPECT_GE(sba.n, static_cast<size_t>(200 + p3->received));
  // Never early: both stamps come from the same clock, and the emulator converts the in-stamp to its
  // monotonic clock with a lower bound of the offset (realtime_offset_floor), so a preemption makes a
  // frame late, never early. This holds for every frame.
  EXPECT_GE(sall.min_us, 0.0);
  // The median frame is on time: its error is the emulator's wake-up and spin, about 7 us idle. With two
  // busy loops beside it (three runs) the median was 3 to 6 us while the p99 was 6 to 9 ms and the maximum
  // up to 14 ms: tails follow the host's load, not the emulator, so they are reported above, not judged.
  // The bound is 1 ms: far above the measured median, and a tenth of the 10 ms delay of phase 1.
  EXPECT_LT(sall.p50_us, 1000.0);

  if (::testing::Test::HasFailure()) {
    std::map<int, int> lcount, rcount;
    for (const Seen& x : on_l) ++lcount[x.type * 10000 + x.ip_len];
    for (const Seen& x : on_r) ++rcount[x.type * 10000 + x.ip_len];
    for (auto& [k, v] : lcount) std::printf("bl0 type %d len %d: %d\n", k / 10000, k % 10000, v);
    for (auto& [k, v] : rcount) std::printf("br0 type %d len %d: %d\n", k / 10000, k % 10000, v);
    std::printf("tcpdump: %s %s\n", slurp(dir + "/bl0.log").c_str(), slurp(dir + "/br0.log").c_str());
  }
}

}  // namespace
