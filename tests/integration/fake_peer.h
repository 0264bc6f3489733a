// SPDX-License-Identifier: Apache-2.0
// Integration-test harness: a deliberately misbehaving STAMP reflector, and raw UDP helpers, both run in
// forked children inside a namespace. The STAMP packets are built here from stamp_wire.h alone, not with
// the product's codec, so the tests do not share the product's mistakes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "netns.h"

namespace hubprobe::it {

enum class Misbehaviour {
  kValid,         ///< a correct stateless unauthenticated reflection (the control case)
  kWrongSize,     ///< a correct reflection, 8 octets longer than the request
  kTruncated,     ///< the first 30 octets of a correct reflection
  kGarbage,       ///< random octets, as long as the request
  kWrongSeq,      ///< a correct reflection claiming sender sequence number seq + 100000
  kWrongSsid,     ///< a correct reflection with the SSID changed
  kDuplicate,     ///< the correct reflection, sent twice
  kBadThenValid,  ///< a truncated reply, an oversized one and a garbage one, then the correct one
  kSwapPairs,     ///< correct replies; the reply to every even sender seq is sent after the next reply
  kDelayOdd,      ///< correct replies; those to odd sender seqs are held back for `delay_ms`
  kSilent,        ///< counts requests, never answers
};
const char* to_string(Misbehaviour mode);

/// A fake reflector on UDP [::]:port (dual stack) inside `ns`, in a forked child. Killed on destruction.
class FakeReflector {
 public:
  FakeReflector(const Namespace& ns, Misbehaviour mode, uint16_t port = 862, int delay_ms = 0);
  ~FakeReflector();
  FakeReflector(const FakeReflector&) = delete;
  FakeReflector& operator=(const FakeReflector&) = delete;

  /// Datagrams received / sent so far (shared memory, exact once the sender is done).
  uint64_t requests() const;
  uint64_t replies() const;
  /// Whether the child still runs (false: it crashed, which is a harness bug).
  bool alive();

  struct Shared;  ///< counters in shared memory (defined in the .cpp)

 private:
  Shared* shared_ = nullptr;
  std::unique_ptr<ChildProcess> child_;
};

/// Builds a correct unauthenticated STAMP session-reflector packet answering `request` (>= 44 octets),
/// as long as the request, with NTP timestamps from CLOCK_REALTIME and the given sender seq.
std::vector<uint8_t> build_reflection(const std::vector<uint8_t>& request, uint32_t sender_seq);
/// Builds an unauthenticated session-sender packet of `length` (>= 44) octets.
std::vector<uint8_t> build_test_packet(uint32_t seq, size_t length, uint16_t ssid = 0);
/// Big-endian u32 at `offset`.
uint32_t read_be32(const std::vector<uint8_t>& bytes, size_t offset);

/// Sends each datagram from `ns` to address:port (IPv4 or IPv6 literal), `gap_us` apart.
void send_datagrams(const Namespace& ns, const std::string& address, uint16_t port,
                    const std::vector<std::vector<uint8_t>>& datagrams, int gap_us = 200);

/// Sends `request` from `ns` to address:port and returns the first reply within `timeout` (nullopt
/// if none).
std::optional<std::vector<uint8_t>> udp_exchange(const Namespace& ns, const std::string& address, uint16_t port,
                                                 const std::vector<uint8_t>& request, Seconds timeout);

/// Sends each request in turn from one socket (one source port: one STAMP session), waiting up to
/// `timeout` for a reply to each; a missing reply is an empty vector.
std::vector<std::vector<uint8_t>> udp_exchange_many(const Namespace& ns, const std::string& address, uint16_t port,
                                                    const std::vector<std::vector<uint8_t>>& requests, Seconds timeout);

/// Sends `count` test packets (seq 0..count-1) from `ns`, `gap_us` apart, and counts valid-looking
/// replies (right length, sender seq in range) that arrive until `linger` after the last one.
struct ExchangeCount {
  unsigned sent = 0;
  unsigned replies = 0;
};
ExchangeCount udp_burst(const Namespace& ns, const std::string& address, uint16_t port, unsigned count, size_t length,
                        int gap_us, Seconds linger);

/// The same in the background: the constructor starts the child, wait() collects its count.
class UdpBurst {
 public:
  UdpBurst(const Namespace& ns, const std::string& address, uint16_t port, unsigned count, size_t length, int gap_us,
           Seconds linger);
  ~UdpBurst();
  UdpBurst(const UdpBurst&) = delete;
  UdpBurst& operator=(const UdpBurst&) = delete;
  ExchangeCount wait();

 private:
  std::string ns_name_;
  Seconds budget_;
  int pipe_fd_ = -1;
  std::unique_ptr<ChildProcess> child_;
};

}  // namespace hubprobe::it
