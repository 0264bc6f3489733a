// SPDX-License-Identifier: Apache-2.0
// hubprobe-linkemu: a userspace link emulator for kernels without netem. Joins two interfaces of the
// namespace it runs in and forwards every frame A->B ("ab") and B->A ("ba") after a per-direction delay,
// jitter, loss and rate limit (linkemu_core.h), changeable at run time through a unix stream socket.
//
// One thread. Arrival time = the kernel's receive timestamp of the frame (SO_TIMESTAMPNS, the same
// stamp tcpdump shows), converted to CLOCK_MONOTONIC. Waiting: poll() on both packet sockets, the control
// socket and a timerfd armed (TIMER_ABSTIME, CLOCK_MONOTONIC) --spin (200 us) before the earliest departure;
// that last stretch is spun (still receiving): waking from poll() costs ~50 us on a VM, so a shorter
// spin makes frames late. With empty queues it blocks in poll() and uses no CPU.
//
//   hubprobe-linkemu --a IF --b IF [--delay 10ms] [--delay-ab X] [--delay-ba Y] [--jitter 1ms]
//                    [--dist uniform|normal] [--reorder 0|1] [--loss 5%] [--burst-p 1%] [--burst-r 30%]
//                    [--rate 10mbit] [--burst 3028] [--limit 1m] [--seed N] [--spin 200us] [--rt]
//                    [--control /path/sock]
//   hubprobe-linkemu --ctl /path/sock "set ab delay=20ms loss=5%"      (client: prints the reply)
// Every shaping option also exists as --KEY-ab / --KEY-ba for one direction only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "hubprobe/socket_buffer.h"
#include "linkemu_core.h"

using hubprobe::linkemu::Direction;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

int64_t now_ns(clockid_t c) {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t read_clock(hubprobe::linkemu::ClockId id) {
  return now_ns(id == hubprobe::linkemu::ClockId::kRealtime ? CLOCK_REALTIME : CLOCK_MONOTONIC);
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "hubprobe-linkemu: %s\n", msg.c_str());
  std::exit(2);
}

[[noreturn]] void die_errno(const std::string& what) { die(what + ": " + std::strerror(errno)); }

int open_packet_socket(const std::string& ifname) {
  const unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) die("no interface '" + ifname + "' in this namespace");
  // Protocol 0 until bound, so no frame of another interface is queued before bind().
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) die_errno("socket(AF_PACKET)");
  const int one = 1;
  // Frames we send must not come back to us (belt: PACKET_IGNORE_OUTGOING; braces: sll_pkttype check).
  (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0) die_errno("SO_TIMESTAMPNS");
  // Best effort: a smaller buffer only drops bursts sooner.
  (void)hubprobe::dp::set_socket_buffer(fd, hubprobe::dp::SocketBuffer::kReceive, 8 << 20);
  (void)hubprobe::dp::set_socket_buffer(fd, hubprobe::dp::SocketBuffer::kSend, 8 << 20);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(idx);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) die_errno("bind " + ifname);
  packet_mreq mr{};
  mr.mr_ifindex = static_cast<int>(idx);
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) die_errno("promiscuous " + ifname);
  return fd;
}

int open_control(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) die_errno("socket(AF_UNIX)");
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) die("control path too long");
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) die_errno("bind " + path);
  if (listen(fd, 8) != 0) die_errno("listen");
  return fd;
}

/// One request per connection: reads lines until EOF or a short timeout, answers each.
void serve_control(int lfd, Direction& ab, Direction& ba) {
  for (;;) {
    const int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    timeval tv{0, 200000};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string in;
    char buf[1024];
    for (;;) {
      const ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      if (in.find('\n') != std::string::npos || in.size() > 8192) break;
    }
    std::string reply;
    size_t pos = 0;
    while (pos < in.size()) {
      size_t nl = in.find('\n', pos);
      if (nl == std::string::npos) nl = in.size();
      const std::string line = in.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string r = hubprobe::linkemu::control_reply(line, ab, ba);
      if (line.rfind("show", 0) != 0) std::fprintf(stderr, "hubprobe-linkemu: %s -> %s", line.c_str(), r.c_str());
      reply += r;
    }
    if (reply.empty()) reply = "error: empty request\n";
    (void)!send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
    close(c);
  }
}

int run_client(const std::string& path, const std::string& cmd) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) die("control path too long");
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) die_errno("connect " + path);
  const std::string line = cmd + "\n";
  if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) < 0) die_errno("send");
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<size_t>(n));
  close(fd);
  std::fputs(reply.c_str(), stdout);
  return reply.rfind("error", 0) == 0 ? 1 : 0;
}

struct Port {
  int fd;
  Direction* dir;  // frames received here go into this direction
  int out_fd;      // ...and leave through this socket
};

/// Receives up to `budget` frames from `p` without blocking.
void drain(Port& p, std::vector<uint8_t>& buf, int budget) {
  for (int i = 0; i < budget; ++i) {
    sockaddr_ll from{};
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char ctrl[256];
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    const ssize_t n = recvmsg(p.fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) die_errno("recvmsg");
      return;
    }
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    if (static_cast<size_t>(n) > buf.size()) {  // truncated (a GSO frame bigger than the buffer)
      ++p.dir->counters().received;
      ++p.dir->counters().send_error;
      continue;
    }
    // The offset is a lower bound (realtime read before the last monotonic read), so the converted
    // arrival is never earlier than the true one and the frame never leaves early; a preemption between
    // the reads makes it late instead (linkemu_core.h, realtime_offset_floor).
    const hubprobe::linkemu::ClockOffset off = hubprobe::linkemu::realtime_offset_floor(read_clock);
    const int64_t mono = off.mono_ns;
    int64_t arrival = mono;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        const int64_t k = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
        const int64_t conv = k - off.offset_ns;
        if (conv <= mono && conv > mono - 1000000000) arrival = conv;  // ignore a clock step
      }
    }
    p.dir->arrive(arrival, std::vector<uint8_t>(buf.begin(), buf.begin() + n));
  }
}

void send_due(Port& p, int64_t now) {
  while (auto s = p.dir->pop_due(now)) {
    auto& c = p.dir->counters();
    if (send(p.out_fd, s->frame.data(), s->frame.size(), 0) < 0) {
      ++c.send_error;
      continue;
    }
    ++c.forwarded;
    const int64_t late = now_ns(CLOCK_MONOTONIC) - s->departure_ns;
    c.late_max_ns = std::max(c.late_max_ns, late);
    if (late > 100000) ++c.late_over_100us;
  }
}

void usage() {
  std::fputs(
      "usage: hubprobe-linkemu --a IF --b IF [--delay D] [--jitter D] [--dist uniform|normal]\n"
      "         [--reorder 0|1] [--loss P] [--burst-p P] [--burst-r P] [--rate R] [--burst BYTES]\n"
      "         [--limit BYTES] [--seed N] [--spin D] [--rt] [--control PATH]\n"
      "       (each shaping option also as --KEY-ab / --KEY-ba)\n"
      "       hubprobe-linkemu --ctl PATH 'set ab|ba|both key=value...' | 'show'\n",
      stderr);
}

}  // namespace

int main(int argc, char** argv) {
  std::string if_a, if_b, control;
  hubprobe::linkemu::DirParams pab, pba;
  uint64_t seed = 1;
  int64_t spin_ns = 200000;
  bool rt = false;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto value = [&](size_t& i) -> std::string {
    if (i + 1 >= args.size()) die("missing value for " + args[i]);
    return args[++i];
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      usage();
      return 0;
    }
    if (a == "--ctl") {
      const std::string path = value(i);
      std::string cmd;
      for (size_t j = i + 1; j < args.size(); ++j) cmd += (cmd.empty() ? "" : " ") + args[j];
      return run_client(path, cmd.empty() ? "show" : cmd);
    }
    if (a == "--a")
      if_a = value(i);
    else if (a == "--b")
      if_b = value(i);
    else if (a == "--control")
      control = value(i);
    else if (a == "--seed")
      seed = std::strtoull(value(i).c_str(), nullptr, 10);
    else if (a == "--rt")
      rt = true;
    else if (a == "--spin") {
      const auto v = hubprobe::linkemu::parse_duration_ns(value(i));
      if (!v) die("bad --spin");
      spin_ns = *v;
    } else if (a.rfind("--", 0) == 0) {
      std::string key = a.substr(2);
      bool do_ab = true, do_ba = true;
      if (key.size() > 3 && key.compare(key.size() - 3, 3, "-ab") == 0) {
        do_ba = false;
        key.resize(key.size() - 3);
      } else if (key.size() > 3 && key.compare(key.size() - 3, 3, "-ba") == 0) {
        do_ab = false;
        key.resize(key.size() - 3);
      }
      for (char& c : key)
        if (c == '-') c = '_';
      const std::string v = value(i);
      if (do_ab)
        if (auto err = hubprobe::linkemu::apply_setting(pab, key, v)) die(*err);
      if (do_ba)
        if (auto err = hubprobe::linkemu::apply_setting(pba, key, v)) die(*err);
    } else {
      usage();
      die("unexpected argument '" + a + "'");
    }
  }
  if (if_a.empty() || if_b.empty()) {
    usage();
    die("--a and --b are required");
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: poll() returns EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  if (rt) {
    sched_param sp{};
    sp.sched_priority = 10;
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) die_errno("SCHED_FIFO");
    (void)mlockall(MCL_CURRENT | MCL_FUTURE);
  }

  Direction ab(seed), ba(seed * 0x9E3779B97F4A7C15ULL + 1);
  ab.set_params(pab);
  ba.set_params(pba);
  const int fa = open_packet_socket(if_a);
  const int fb = open_packet_socket(if_b);
  const int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (tfd < 0) die_errno("timerfd_create");
  const int cfd = control.empty() ? -1 : open_control(control);
  Port ports[2] = {{fa, &ab, fb}, {fb, &ba, fa}};
  std::vector<uint8_t> buf(256 * 1024);
  std::fprintf(stderr, "hubprobe-linkemu: %s <-> %s ready; ab %s; ba %s\n", if_a.c_str(), if_b.c_str(),
               hubprobe::linkemu::format_params(ab.params()).c_str(),
               hubprobe::linkemu::format_params(ba.params()).c_str());

  int64_t armed = -1;
  while (!g_stop) {
    int64_t now = now_ns(CLOCK_MONOTONIC);
    send_due(ports[0], now);
    send_due(ports[1], now);
    int64_t next = INT64_MAX;
    for (const Port& p : ports)
      if (auto d = p.dir->next_due()) next = std::min(next, *d);
    if (next != INT64_MAX && next - now <= spin_ns) {
      // Close to a departure: spin, still taking in frames (they carry kernel stamps anyway).
      drain(ports[0], buf, 64);
      drain(ports[1], buf, 64);
      continue;
    }
    const int64_t wake = next == INT64_MAX ? 0 : next - spin_ns;
    if (wake != armed) {
      itimerspec its{};
      if (wake > 0) {
        its.it_value.tv_sec = wake / 1000000000;
        its.it_value.tv_nsec = wake % 1000000000;
      }
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, nullptr);  // zero disarms
      armed = wake;
    }
    pollfd pfd[4] = {{fa, POLLIN, 0}, {fb, POLLIN, 0}, {tfd, POLLIN, 0}, {cfd, POLLIN, 0}};
    const int n = poll(pfd, cfd >= 0 ? 4 : 3, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die_errno("poll");
    }
    if (pfd[0].revents) drain(ports[0], buf, 256);
    if (pfd[1].revents) drain(ports[1], buf, 256);
    if (pfd[2].revents) {
      uint64_t exp;
      (void)!read(tfd, &exp, sizeof exp);
      armed = -1;
    }
    if (cfd >= 0 && pfd[3].revents) serve_control(cfd, ab, ba);
  }
  std::fprintf(stderr, "hubprobe-linkemu: stopping\nab %s\nba %s\n", hubprobe::linkemu::format_counters(ab).c_str(),
               hubprobe::linkemu::format_counters(ba).c_str());
  if (!control.empty()) unlink(control.c_str());
  return 0;
}
