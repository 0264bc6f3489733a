// SPDX-License-Identifier: Apache-2.0
// hubprobe-stamp-flood: a load generator for reflector throughput benchmarks (scripts/bench_reflector.sh).
// Sends unauthenticated 44-octet STAMP test packets to one reflector as fast as a window of outstanding
// requests allows (sendmmsg), counts the replies (recvmmsg), and prints one line:
//   sent N replies M seconds S replies_per_second R
// Open to any STAMP reflector; it never validates replies beyond their length. Benchmark tooling: only for
// addresses of a test bed (198.18.0.0/15, 2001:db8::/32).
#include <arpa/inet.h>
#include <linux/types.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "hubprobe/net.h"
#include "hubprobe/stamp_wire.h"

namespace {

constexpr size_t kBatch = 32;
constexpr size_t kPacket = sizeof(stamp_sender_unauth);

struct Options {
  std::string target;
  double seconds = 5;
  size_t window = 64;
};

int usage() {
  std::fprintf(stderr, "usage: hubprobe-stamp-flood --target ADDR:PORT [--seconds S] [--window N]\n");
  return 2;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--target") {
      o.target = value;
    } else if (key == "--seconds") {
      o.seconds = std::atof(value.c_str());
    } else if (key == "--window") {
      o.window = static_cast<size_t>(std::atol(value.c_str()));
    } else {
      return false;
    }
  }
  return !o.target.empty() && o.seconds > 0 && o.window >= 1 && argc % 2 == 1;
}

// Sends up to `count` requests numbered from `seq`; returns how many left.
size_t send_batch(int fd, uint32_t& seq, size_t count) {
  std::array<std::array<uint8_t, kPacket>, kBatch> packets{};
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> msgs{};
  for (size_t i = 0; i < count; ++i) {
    const uint32_t wire = htonl(seq + static_cast<uint32_t>(i));
    std::memcpy(packets[i].data() + offsetof(stamp_sender_unauth, seq), &wire, sizeof(wire));
    iov[i] = {packets[i].data(), kPacket};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  const int sent = sendmmsg(fd, msgs.data(), static_cast<unsigned>(count), MSG_DONTWAIT);
  if (sent <= 0) return 0;
  seq += static_cast<uint32_t>(sent);
  return static_cast<size_t>(sent);
}

// Receives what is waiting; returns how many replies (of at least the base length) came.
size_t receive_batch(int fd) {
  std::array<std::array<uint8_t, 2048>, kBatch> buffers{};
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> msgs{};
  for (size_t i = 0; i < kBatch; ++i) {
    iov[i] = {buffers[i].data(), buffers[i].size()};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  const int got = recvmmsg(fd, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
  size_t replies = 0;
  for (int i = 0; i < got; ++i) replies += msgs[i].msg_len >= kPacket ? 1 : 0;
  return replies;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return usage();
  auto target = hubprobe::SocketAddress::parse(o.target, STAMP_DEFAULT_PORT);
  if (!target) {
    std::fprintf(stderr, "hubprobe-stamp-flood: %s: %s\n", o.target.c_str(), target.error().message.c_str());
    return 2;
  }
  const int fd = socket(target->family(), SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, target->sockaddr_ptr(), target->length()) != 0) {
    std::perror("hubprobe-stamp-flood: socket");
    return 1;
  }
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  auto last_progress = start;
  uint64_t sent = 0, replies = 0;
  size_t outstanding = 0;
  uint32_t seq = 0;
  while (Clock::now() < end) {
    if (outstanding < o.window) {
      const size_t n = send_batch(fd, seq, std::min(kBatch, o.window - outstanding));
      sent += n;
      outstanding += n;
    }
    const size_t got = receive_batch(fd);
    replies += got;
    outstanding -= std::min(outstanding, got);
    const auto now = Clock::now();
    if (got > 0) last_progress = now;
    if (now - last_progress > std::chrono::milliseconds(10)) {  // the rest of the window was lost
      outstanding = 0;
      last_progress = now;
    }
    if (got == 0 && outstanding >= o.window) {
      pollfd p{fd, POLLIN, 0};
      poll(&p, 1, 1);
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  close(fd);
  std::printf("sent %llu replies %llu seconds %.3f replies_per_second %.0f\n", static_cast<unsigned long long>(sent),
              static_cast<unsigned long long>(replies), seconds, static_cast<double>(replies) / seconds);
  return 0;
}
