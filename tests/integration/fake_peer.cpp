// SPDX-License-Identifier: Apache-2.0
#include "fake_peer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/types.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <deque>
#include <random>
#include <thread>

#include "hubprobe/socket_buffer.h"
#include "hubprobe/stamp_wire.h"

namespace hubprobe::it {

struct FakeReflector::Shared {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> replies{0};
};

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kNtpUnixOffset = 2208988800u;

stamp_timestamp ntp_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  stamp_timestamp t{};
  t.seconds = htonl(static_cast<uint32_t>(ts.tv_sec + kNtpUnixOffset));
  t.fraction = htonl(static_cast<uint32_t>((static_cast<uint64_t>(ts.tv_nsec) << 32) / 1'000'000'000ull));
  return t;
}

// A socket address from a literal; IPv4 literals become v4-mapped IPv6 so one AF_INET6 socket serves both.
sockaddr_in6 parse_address(const std::string& address, uint16_t port) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    sa.sin6_addr.s6_addr[10] = 0xff;
    sa.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&sa.sin6_addr.s6_addr[12], &v4, 4);
  } else if (inet_pton(AF_INET6, address.c_str(), &sa.sin6_addr) != 1) {
    throw HarnessError("not an IP address literal: " + address);
  }
  return sa;
}

int dual_stack_socket() {
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int off = 0;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  return fd;
}

struct Queued {
  Clock::time_point due;
  sockaddr_in6 to;
  std::vector<uint8_t> bytes;
};

[[noreturn]] void fake_reflector_main(Misbehaviour mode, uint16_t port, int delay_ms, int ready_fd,
                                      FakeReflector::Shared* shared) {
  int fd = dual_stack_socket();
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_port = htons(port);
  any.sin6_addr = in6addr_any;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) _exit(3);
  char ok = 1;
  (void)!write(ready_fd, &ok, 1);
  close(ready_fd);

  std::mt19937 rng(12345);
  std::deque<Queued> queue;
  std::vector<uint8_t> buf(65536);
  auto send_to = [&](const sockaddr_in6& to, const std::vector<uint8_t>& bytes) {
    // Counted before sending: the peer may read the reply (and the test the counter) before sendto()
    // has even returned here.
    shared->replies.fetch_add(1);
    if (sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0) {
      shared->replies.fetch_sub(1);
    }
  };
  auto flush_due = [&](bool all) {
    const auto now = Clock::now();
    for (auto it = queue.begin(); it != queue.end();) {
      if (all || it->due <= now) {
        send_to(it->to, it->bytes);
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
  };
  for (;;) {
    int timeout_ms = -1;
    if (!queue.empty()) {
      auto next = queue.front().due;
      for (const auto& q : queue) next = std::min(next, q.due);
      timeout_ms = static_cast<int>(
          std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count()));
    }
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, timeout_ms);
    flush_due(false);
    if (n <= 0) continue;
    sockaddr_in6 from{};
    socklen_t from_len = sizeof from;
    ssize_t got = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (got < 0) continue;
    shared->requests.fetch_add(1);
    std::vector<uint8_t> request(buf.begin(), buf.begin() + got);
    if (request.size() < STAMP_UNAUTH_BASE_LEN || mode == Misbehaviour::kSilent) continue;
    const uint32_t seq = read_be32(request, 0);
    const std::vector<uint8_t> good = build_reflection(request, seq);
    switch (mode) {
      case Misbehaviour::kValid: send_to(from, good); break;
      case Misbehaviour::kWrongSize: {
        auto longer = good;
        longer.resize(good.size() + 8, 0);
        send_to(from, longer);
        break;
      }
      case Misbehaviour::kTruncated: send_to(from, std::vector<uint8_t>(good.begin(), good.begin() + 30)); break;
      case Misbehaviour::kGarbage: {
        std::vector<uint8_t> junk(request.size());
        for (auto& b : junk) b = static_cast<uint8_t>(rng());
        send_to(from, junk);
        break;
      }
      case Misbehaviour::kWrongSeq: send_to(from, build_reflection(request, seq + 100000)); break;
      case Misbehaviour::kWrongSsid: {
        auto other = good;
        auto* r = reinterpret_cast<stamp_reflector_unauth*>(other.data());
        r->ssid = htons(static_cast<uint16_t>(ntohs(r->ssid) ^ 0x5a5a));
        send_to(from, other);
        break;
      }
      case Misbehaviour::kDuplicate:
        send_to(from, good);
        send_to(from, good);
        break;
      case Misbehaviour::kBadThenValid: {
        send_to(from, std::vector<uint8_t>(good.begin(), good.begin() + 30));
        auto longer = good;
        longer.resize(good.size() + 8, 0);
        send_to(from, longer);
        send_to(from, std::vector<uint8_t>{0xde, 0xad, 0xbe, 0xef});
        send_to(from, good);
        break;
      }
      case Misbehaviour::kSwapPairs:
        if (seq % 2 == 0) {
          // Held until the next reply has gone out (or 100 ms, so the last one is not lost).
          queue.push_back({Clock::now() + std::chrono::milliseconds(100), from, good});
        } else {
          send_to(from, good);
          flush_due(true);
        }
        break;
      case Misbehaviour::kDelayOdd:
        if (seq % 2 == 1) {
          queue.push_back({Clock::now() + std::chrono::milliseconds(delay_ms), from, good});
        } else {
          send_to(from, good);
        }
        break;
      case Misbehaviour::kSilent: break;
    }
  }
}

}  // namespace

const char* to_string(Misbehaviour mode) {
  switch (mode) {
    case Misbehaviour::kValid: return "valid";
    case Misbehaviour::kWrongSize: return "wrong-size";
    case Misbehaviour::kTruncated: return "truncated";
    case Misbehaviour::kGarbage: return "garbage";
    case Misbehaviour::kWrongSeq: return "wrong-seq";
    case Misbehaviour::kWrongSsid: return "wrong-ssid";
    case Misbehaviour::kDuplicate: return "duplicate";
    case Misbehaviour::kBadThenValid: return "bad-then-valid";
    case Misbehaviour::kSwapPairs: return "swap-pairs";
    case Misbehaviour::kDelayOdd: return "delay-odd";
    case Misbehaviour::kSilent: return "silent";
  }
  return "?";
}

uint32_t read_be32(const std::vector<uint8_t>& bytes, size_t offset) {
  if (bytes.size() < offset + 4) return 0;
  uint32_t v;
  memcpy(&v, bytes.data() + offset, 4);
  return ntohl(v);
}

std::vector<uint8_t> build_reflection(const std::vector<uint8_t>& request, uint32_t sender_seq) {
  // Copy everything after the base packet as is (padding / TLVs), then fill in the base fields.
  std::vector<uint8_t> out(request);
  const auto* req = reinterpret_cast<const stamp_sender_unauth*>(request.data());
  stamp_reflector_unauth r{};
  r.seq = htonl(sender_seq);  // stateless: the reflector's seq is the sender's
  r.receive_timestamp = ntp_now();
  r.error_estimate = htons(0x0001);  // S=0 (not synchronised), Z=0 (NTP), scale 0, multiplier 1
  r.ssid = req->ssid;
  r.sender_seq = htonl(sender_seq);
  r.sender_timestamp = req->timestamp;
  r.sender_error_estimate = req->error_estimate;
  r.sender_ttl = 255;
  r.timestamp = ntp_now();
  memcpy(out.data(), &r, sizeof r);
  return out;
}

std::vector<uint8_t> build_test_packet(uint32_t seq, size_t length, uint16_t ssid) {
  std::vector<uint8_t> out(std::max<size_t>(length, STAMP_UNAUTH_BASE_LEN), 0);
  stamp_sender_unauth s{};
  s.seq = htonl(seq);
  s.timestamp = ntp_now();
  s.error_estimate = htons(0x0001);
  s.ssid = htons(ssid);
  memcpy(out.data(), &s, sizeof s);
  return out;
}

FakeReflector::FakeReflector(const Namespace& ns, Misbehaviour mode, uint16_t port, int delay_ms) {
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw HarnessError(std::string("mmap: ") + strerror(errno));
  shared_ = new (mem) Shared();
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) throw HarnessError("pipe2 failed");
  Shared* shared = shared_;
  const int ready_w = ready[1];
  const int ready_r = ready[0];
  child_ = std::make_unique<ChildProcess>(fork_in_netns(ns, [=]() -> int {
    close(ready_r);
    fake_reflector_main(mode, port, delay_ms, ready_w, shared);
  }));
  close(ready[1]);
  pollfd p{ready[0], POLLIN, 0};
  char byte = 0;
  const bool ready_ok = poll(&p, 1, 5000) == 1 && read(ready[0], &byte, 1) == 1;
  close(ready[0]);
  if (!ready_ok) {
    child_->kill_now();
    throw HarnessError(std::string("fake reflector (") + to_string(mode) + ") did not start in " + ns.name() +
                       " (port " + std::to_string(port) + " taken?)");
  }
}

FakeReflector::~FakeReflector() {
  child_.reset();
  if (shared_ != nullptr) munmap(shared_, sizeof(Shared));
}

uint64_t FakeReflector::requests() const { return shared_->requests.load(); }
uint64_t FakeReflector::replies() const { return shared_->replies.load(); }
bool FakeReflector::alive() { return !child_->wait(Seconds(0)).reaped; }

void send_datagrams(const Namespace& ns, const std::string& address, uint16_t port,
                    const std::vector<std::vector<uint8_t>>& datagrams, int gap_us) {
  const sockaddr_in6 to = parse_address(address, port);
  int code = run_in_netns(ns, [&]() -> int {
    int fd = dual_stack_socket();
    if (fd < 0) return 2;
    for (const auto& d : datagrams) {
      // An ICMP error from an earlier datagram may surface as ECONNREFUSED here: not a failure.
      (void)sendto(fd, d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
      if (gap_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    }
    close(fd);
    return 0;
  });
  if (code != 0) throw HarnessError("send_datagrams failed in " + ns.name() + ": code " + std::to_string(code));
}

std::vector<std::vector<uint8_t>> udp_exchange_many(const Namespace& ns, const std::string& address, uint16_t port,
                                                    const std::vector<std::vector<uint8_t>>& requests,
                                                    Seconds timeout) {
  const sockaddr_in6 to = parse_address(address, port);
  // The child hands the replies back through a pipe: for each, a length prefix then the octets. The
  // pipe is drained while the child runs, so large replies cannot block it.
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw HarnessError("pipe2 failed");
  const int timeout_ms = static_cast<int>(timeout.count() * 1000);
  ChildProcess child(fork_in_netns(ns, [&]() -> int {
    close(p[0]);
    int fd = dual_stack_socket();
    if (fd < 0) return 2;
    std::vector<uint8_t> buf(65536);
    for (const auto& request : requests) {
      uint32_t len = 0;
      ssize_t got = -1;
      if (sendto(fd, request.data(), request.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) >= 0) {
        pollfd pf{fd, POLLIN, 0};
        if (poll(&pf, 1, timeout_ms) == 1) got = recv(fd, buf.data(), buf.size(), 0);
      }
      len = got > 0 ? static_cast<uint32_t>(got) : 0;
      if (write(p[1], &len, sizeof len) != sizeof len) return 3;
      size_t off = 0;
      while (off < len) {
        ssize_t n = write(p[1], buf.data() + off, len - off);
        if (n <= 0) return 3;
        off += static_cast<size_t>(n);
      }
    }
    return 0;
  }));
  close(p[1]);
  std::vector<std::vector<uint8_t>> replies;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           timeout * static_cast<double>(requests.size()) + Seconds(5));
  auto read_all = [&](void* dst, size_t n) {
    size_t off = 0;
    while (off < n) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd pf{p[0], POLLIN, 0};
      if (left <= 0 || poll(&pf, 1, static_cast<int>(left)) != 1) return false;
      ssize_t got = read(p[0], static_cast<uint8_t*>(dst) + off, n - off);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      off += static_cast<size_t>(got);
    }
    return true;
  };
  // Reads until the child closes the pipe (it exits, or is killed by the timeout below).
  for (size_t i = 0; i < requests.size(); ++i) {
    uint32_t len = 0;
    if (!read_all(&len, sizeof len)) break;
    std::vector<uint8_t> bytes(len);
    if (!read_all(bytes.data(), len)) break;
    replies.push_back(std::move(bytes));
  }
  close(p[0]);
  ExitInfo info = child.wait(Seconds(1));
  if (!(info.exited() && info.exit_code() == 0) || replies.size() != requests.size()) {
    throw HarnessError("udp_exchange helper in " + ns.name() + ": " + info.describe());
  }
  return replies;
}

std::optional<std::vector<uint8_t>> udp_exchange(const Namespace& ns, const std::string& address, uint16_t port,
                                                 const std::vector<uint8_t>& request, Seconds timeout) {
  auto replies = udp_exchange_many(ns, address, port, {request}, timeout);
  if (replies[0].empty()) return std::nullopt;
  return std::move(replies[0]);
}

UdpBurst::UdpBurst(const Namespace& ns, const std::string& address, uint16_t port, unsigned count, size_t length,
                   int gap_us, Seconds linger)
    : ns_name_(ns.name()), budget_(Seconds(count * (gap_us / 1e6 + 0.001)) + linger + Seconds(10)) {
  const sockaddr_in6 to = parse_address(address, port);
  const int linger_ms = static_cast<int>(linger.count() * 1000);
  // The count comes back through a pipe (an exit code is too small for it).
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw HarnessError("pipe2 failed");
  child_ = std::make_unique<ChildProcess>(fork_in_netns(ns, [&]() -> int {
    close(p[0]);
    int fd = dual_stack_socket();
    if (fd < 0) return 2;
    (void)dp::set_socket_buffer(fd, dp::SocketBuffer::kReceive, 4 << 20);
    std::vector<uint8_t> buf(65536);
    ExchangeCount result;
    auto drain = [&](int wait_ms) {
      pollfd pf{fd, POLLIN, 0};
      while (poll(&pf, 1, wait_ms) == 1) {
        ssize_t got = recv(fd, buf.data(), buf.size(), 0);
        if (got < 0) break;
        std::vector<uint8_t> reply(buf.begin(), buf.begin() + got);
        if (reply.size() == length && read_be32(reply, offsetof(stamp_reflector_unauth, sender_seq)) < count) {
          ++result.replies;
        }
        wait_ms = 0;
      }
    };
    for (unsigned i = 0; i < count; ++i) {
      auto packet = build_test_packet(i, length);
      if (sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) >= 0) {
        ++result.sent;
      }
      drain(0);
      if (gap_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    }
    const auto end = Clock::now() + std::chrono::milliseconds(linger_ms);
    while (Clock::now() < end) {
      drain(static_cast<int>(
          std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count())));
    }
    (void)!write(p[1], &result, sizeof result);
    return 0;
  }));
  close(p[1]);
  pipe_fd_ = p[0];
}

UdpBurst::~UdpBurst() {
  child_.reset();
  if (pipe_fd_ >= 0) close(pipe_fd_);
}

ExchangeCount UdpBurst::wait() {
  ExitInfo info = child_->wait(budget_);
  ExchangeCount result;
  const bool ok = info.exited() && info.exit_code() == 0 && read(pipe_fd_, &result, sizeof result) == sizeof result;
  if (!ok) throw HarnessError("udp burst helper in " + ns_name_ + ": " + info.describe());
  return result;
}

ExchangeCount udp_burst(const Namespace& ns, const std::string& address, uint16_t port, unsigned count, size_t length,
                        int gap_us, Seconds linger) {
  return UdpBurst(ns, address, port, count, length, gap_us, linger).wait();
}

}  // namespace hubprobe::it
