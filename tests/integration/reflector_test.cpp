// SPDX-License-Identifier: Apache-2.0
// `hubprobe reflect` on its own: what it listens on by default, how it stops, what its reflections
// look like to an independent sender (packets built from stamp_wire.h, not the product's codec), and
// that hostile input does not stop it answering.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/types.h>
#include <signal.h>
#include <time.h>

#include <cstddef>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "fake_peer.h"
#include "fixture.h"
#include "hubprobe/stamp_wire.h"

namespace hubprobe::it {
namespace {

using nlohmann::json;

class ReflectorTest : public HubprobeTest {
 protected:
  // A short ping that must get every reply.
  void PingOk(const std::string& target, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = extra;
    for (const char* a : {"-c", "3", "-i", "0.01", "--timeout", "1", "--json"}) args.emplace_back(a);
    args.push_back(target);
    CommandResult r = ping(args, Seconds(10));
    EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
    json report;
    ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
    EXPECT_EQ(counter(report, "received"), 3) << report.dump();
  }
};

std::string bracket(const char* v6) { return std::string("[") + v6 + "]"; }

TEST_F(ReflectorTest, DefaultListenServesBothFamilies) {
  auto refl = start_reflector({});
  ASSERT_NO_FATAL_FAILURE(PingOk(Testbed::kReflectorV4));
  ASSERT_NO_FATAL_FAILURE(PingOk(bracket(Testbed::kReflectorV6)));
  EXPECT_TRUE(refl->running()) << refl->describe();
}

TEST_F(ReflectorTest, SeveralListenAddresses) {
  auto refl = start_reflector(
      {"--listen", std::string(Testbed::kReflectorV4) + ":862", "--listen", bracket(Testbed::kReflectorV6) + ":9862"});
  ASSERT_NO_FATAL_FAILURE(PingOk(Testbed::kReflectorV4));
  ASSERT_NO_FATAL_FAILURE(PingOk(bracket(Testbed::kReflectorV6) + ":9862"));
}

TEST_F(ReflectorTest, ExitsZeroOnSigtermAndSigint) {
  for (int sig : {SIGTERM, SIGINT}) {
    auto refl = start_reflector({});
    refl->process().signal(sig);
    ASSERT_TRUE(refl->process().wait_for_exit(Seconds(3))) << "still running 3 s after signal " << sig << "\n"
                                                           << refl->describe();
    EXPECT_EQ(refl->process().exit_info().exit_code(), 0) << refl->describe();
  }
}

// ---- reflections as an independent sender sees them ------------------------------------------------

double wall_now_s() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

// A STAMP timestamp at `offset` of `bytes` as Unix seconds, in the format the Z bit of the error
// estimate at `ee_offset` says (NTP since 1900, or PTP on the TAI scale, ~37 s ahead of UTC).
double timestamp_s(const std::vector<uint8_t>& bytes, size_t offset, size_t ee_offset) {
  const bool ptp = (bytes[ee_offset] << 8 | bytes[ee_offset + 1]) & STAMP_EE_Z_BIT;
  const double secs = read_be32(bytes, offset);
  const double frac = read_be32(bytes, offset + 4);
  if (ptp) return secs + frac / 1e9 - 37;
  return secs - 2208988800.0 + frac / 4294967296.0;
}

bool all_zero(const std::vector<uint8_t>& bytes, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

void ExpectReflectionOf(const std::vector<uint8_t>& request, const std::vector<uint8_t>& reply) {
  using R = stamp_reflector_unauth;
  ASSERT_EQ(reply.size(), request.size()) << "a reflection is exactly as long as its request";
  EXPECT_EQ(read_be32(reply, offsetof(R, sender_seq)), read_be32(request, 0));
  EXPECT_EQ(0, memcmp(&reply[offsetof(R, sender_timestamp)], &request[4], 8)) << "T1 copied as sent";
  EXPECT_EQ(0, memcmp(&reply[offsetof(R, sender_error_estimate)], &request[12], 2));
  EXPECT_EQ(0, memcmp(&reply[offsetof(R, ssid)], &request[14], 2)) << "SSID copied (RFC 8972)";
  // The TTL / hop limit the request arrived with; 64 is the default in a fresh namespace, no router.
  EXPECT_EQ(reply[offsetof(R, sender_ttl)], 64);
  const uint16_t ee =
      static_cast<uint16_t>(reply[offsetof(R, error_estimate)] << 8 | reply[offsetof(R, error_estimate) + 1]);
  EXPECT_NE(ee & STAMP_EE_MULT_MASK, 0) << "RFC 4656 4.1.2: the multiplier is never 0";
  const double t2 = timestamp_s(reply, offsetof(R, receive_timestamp), offsetof(R, error_estimate));
  const double t3 = timestamp_s(reply, offsetof(R, timestamp), offsetof(R, error_estimate));
  const double now = wall_now_s();
  EXPECT_NEAR(t2, now, 10.0) << "T2 is not the reflector's wall clock";
  EXPECT_NEAR(t3, now, 10.0) << "T3 is not the reflector's wall clock";
  EXPECT_GE(t3, t2) << "T3 (transmit) before T2 (receive)";
  // Receive and transmit time of one request: far below a second even on a loaded host (the reflector's
  // wake-up is its scheduling tail, not judged here); a T2 or T3 from another clock would be off by more.
  EXPECT_LT(t3 - t2, 1.0) << "turnaround of a local reflector";
  EXPECT_TRUE(all_zero(reply, offsetof(R, mbz1), offsetof(R, mbz1) + 2));
  EXPECT_TRUE(all_zero(reply, offsetof(R, mbz2), offsetof(R, mbz2) + 3));
}

TEST_F(ReflectorTest, ReflectionSeenByAnIndependentSender) {
  auto refl = start_reflector({});
  for (const char* addr : {Testbed::kReflectorV4, Testbed::kReflectorV6}) {
    SCOPED_TRACE(addr);
    const auto request = build_test_packet(7, 44, 0x1234);
    auto reply = udp_exchange(sender(), addr, 862, request, Seconds(2));
    ASSERT_TRUE(reply.has_value()) << "no reflection\n" << refl->describe();
    ASSERT_NO_FATAL_FAILURE(ExpectReflectionOf(request, *reply));
    EXPECT_EQ(read_be32(*reply, 0), 7u) << "a stateless reflector echoes the sender's sequence number";
    // Zero padding after the base packet (TWAMP-Light style) comes back as it went.
    const auto padded = build_test_packet(8, 200, 0x1234);
    auto padded_reply = udp_exchange(sender(), addr, 862, padded, Seconds(2));
    ASSERT_TRUE(padded_reply.has_value());
    ASSERT_NO_FATAL_FAILURE(ExpectReflectionOf(padded, *padded_reply));
    EXPECT_TRUE(all_zero(*padded_reply, 44, 200));
  }
}

TEST_F(ReflectorTest, StatefulReflectorNumbersItsOwnReplies) {
  auto refl = start_reflector({"--stateful"});
  std::vector<std::vector<uint8_t>> requests;
  for (uint32_t seq : {10u, 11u, 15u}) requests.push_back(build_test_packet(seq, 44, 0x0042));
  auto replies = udp_exchange_many(sender(), Testbed::kReflectorV4, 862, requests, Seconds(2));
  ASSERT_EQ(replies.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_FALSE(replies[i].empty()) << "no reply to request " << i;
    ASSERT_NO_FATAL_FAILURE(ExpectReflectionOf(requests[i], replies[i]));
    // RFC 8762 4.3: the stateful reflector counts the test packets of the session it received.
    EXPECT_EQ(read_be32(replies[i], 0), i) << "reply " << i;
  }
}

// RFC 8972 4: an unrecognised TLV is copied with the U flag set; Extra Padding is copied as is.
TEST_F(ReflectorTest, TlvsAreReflectedAndFlagged) {
  auto refl = start_reflector({});
  auto request = build_test_packet(3, 44);
  const uint8_t unknown_tlv[] = {0x00, 200, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef};
  const uint8_t padding_tlv[] = {0x00, STAMP_TLV_EXTRA_PADDING, 0x00, 0x04, 0, 0, 0, 0};
  request.insert(request.end(), std::begin(unknown_tlv), std::end(unknown_tlv));
  request.insert(request.end(), std::begin(padding_tlv), std::end(padding_tlv));
  auto reply = udp_exchange(sender(), Testbed::kReflectorV4, 862, request, Seconds(2));
  ASSERT_TRUE(reply.has_value()) << refl->describe();
  ASSERT_EQ(reply->size(), request.size());
  EXPECT_EQ((*reply)[44] & STAMP_TLV_FLAG_U, STAMP_TLV_FLAG_U) << "unknown TLV type not flagged U";
  EXPECT_EQ((*reply)[45], 200);
  EXPECT_EQ((*reply)[52] & STAMP_TLV_FLAG_U, 0) << "Extra Padding is a known TLV";
  EXPECT_EQ((*reply)[53], STAMP_TLV_EXTRA_PADDING);
}

// A TWAMP-Light request of 14 octets would get a 44-octet reply: 3.1 times the octets, sent to whatever
// source the request claims. By default it is dropped and counted; --answer-short-requests answers it.
TEST_F(ReflectorTest, ShortRequestsAreAnsweredOnlyWhenAsked) {
  using R = stamp_reflector_unauth;
  auto request = build_test_packet(9, STAMP_UNAUTH_BASE_LEN);
  request.resize(14);
  {
    auto refl = start_reflector({});
    EXPECT_FALSE(udp_exchange(sender(), Testbed::kReflectorV4, STAMP_DEFAULT_PORT, request, Seconds(0.5)))
        << "a short request was answered by default\n"
        << refl->describe();
    refl->process().signal(SIGTERM);
    ASSERT_TRUE(refl->process().wait_for_exit(Seconds(3))) << refl->describe();
    EXPECT_NE(refl->process().stdout_text().find("short request 1"), std::string::npos) << refl->describe();
  }
  auto refl = start_reflector({"--answer-short-requests"});
  auto reply = udp_exchange(sender(), Testbed::kReflectorV4, STAMP_DEFAULT_PORT, request, Seconds(2));
  ASSERT_TRUE(reply.has_value()) << "no reply with --answer-short-requests\n" << refl->describe();
  EXPECT_EQ(reply->size(), size_t{STAMP_UNAUTH_BASE_LEN}) << "RFC 8762 4.6: a base-size reply";
  EXPECT_EQ(read_be32(*reply, offsetof(R, sender_seq)), 9u);
}

// ---- batches -----------------------------------------------------------------------------------------

char process_state(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(f, stat);
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : '?';
}

// While the reflector is stopped (SIGSTOP) 20 requests queue up in its socket; on SIGCONT it reads them
// in one batch and answers them in one. nftables refuses the reply to sender seq 5 on output, so that
// send fails (EPERM), as it would for a firewalled or unreachable peer: only that reply may be missing.
TEST_F(ReflectorTest, OneRefusedReplyDoesNotLoseTheRestOfItsBatch) {
  HUBPROBE_REQUIRE_NFT();
  Nft nft(reflector_ns());
  nft.add_counter("refused");
  // @th,256,32: octets 24..27 after the UDP header, the reflection's sender sequence number.
  nft.add_rule("output", "udp sport 862 @th,256,32 5 counter name \"refused\" drop");
  auto refl = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":862"});
  refl->process().signal(SIGSTOP);
  for (int i = 0; i < 500 && process_state(refl->process().pid()) != 'T'; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(process_state(refl->process().pid()), 'T');
  UdpBurst burst(sender(), Testbed::kReflectorV4, 862, 20, 44, 0, Seconds(1.5));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  refl->process().signal(SIGCONT);
  const ExchangeCount c = burst.wait();
  EXPECT_EQ(c.sent, 20u);
  EXPECT_EQ(nft.packets("refused"), 1u) << nft.ruleset();
  EXPECT_EQ(c.replies, 19u) << "replies after the refused one in the same batch were never sent\n" << refl->describe();
  EXPECT_TRUE(refl->running()) << refl->describe();
}

// ---- hostile input ---------------------------------------------------------------------------------

std::vector<std::vector<uint8_t>> hostile_datagrams() {
  std::mt19937 rng(862);
  auto random_bytes = [&](size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  };
  std::vector<std::vector<uint8_t>> out;
  out.push_back({});  // empty datagram
  out.push_back(random_bytes(1));
  out.push_back(random_bytes(43));  // one short of the base packet
  out.push_back(random_bytes(44));
  out.push_back(random_bytes(111));
  out.push_back(random_bytes(112));
  for (int i = 0; i < 30; ++i) out.push_back(random_bytes(1 + rng() % 300));
  out.push_back(random_bytes(1472));   // one full Ethernet frame
  out.push_back(random_bytes(9000));   // fragmented
  out.push_back(random_bytes(65507));  // the largest UDP payload over IPv4
  // Well-formed base packets followed by hostile TLVs.
  auto with_tlvs = [&](std::vector<uint8_t> tail) {
    auto p = build_test_packet(static_cast<uint32_t>(rng()), 44);
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  out.push_back(with_tlvs({0x00, 0x05, 0xff, 0xff}));                        // length far past the end
  out.push_back(with_tlvs({0x00, 0x05, 0x00, 0x08, 1, 2, 3}));               // length one past the end
  out.push_back(with_tlvs({0x00, STAMP_TLV_HMAC, 0x00, 0x02, 0xaa, 0xbb}));  // HMAC TLV of a wrong length
  out.push_back(with_tlvs({0x00}));                                          // a partial TLV header
  std::vector<uint8_t> many;
  for (int i = 0; i < 300; ++i) {
    const uint8_t tlv[] = {0xe0, static_cast<uint8_t>(rng()), 0x00, 0x00};  // all flags, empty value
    many.insert(many.end(), std::begin(tlv), std::end(tlv));
  }
  out.push_back(with_tlvs(many));
  return out;
}

TEST_F(ReflectorTest, SurvivesHostileDatagrams) {
  auto plain = start_reflector({});
  const std::string key = key_file("key", kKeyHex);
  auto authed =
      start_reflector({"--auth-key-file", key, "--stateful", "--listen", std::string(Testbed::kReflectorV4) + ":8620",
                       "--listen", bracket(Testbed::kReflectorV6) + ":8620"},
                      8620);
  const auto datagrams = hostile_datagrams();
  for (uint16_t port : {862, 8620}) {
    send_datagrams(sender(), Testbed::kReflectorV4, port, datagrams);
    // IPv6 UDP payloads stop at 65527 - 40; drop the largest one there.
    std::vector<std::vector<uint8_t>> v6(datagrams.begin(), datagrams.end());
    for (auto& d : v6) {
      if (d.size() > 65000) d.resize(65000);
    }
    send_datagrams(sender(), Testbed::kReflectorV6, port, v6);
  }
  ASSERT_TRUE(plain->running()) << plain->describe();
  ASSERT_TRUE(authed->running()) << authed->describe();
  ASSERT_NO_FATAL_FAILURE(PingOk(Testbed::kReflectorV4));
  ASSERT_NO_FATAL_FAILURE(PingOk(bracket(Testbed::kReflectorV6)));
  ASSERT_NO_FATAL_FAILURE(PingOk(std::string(Testbed::kReflectorV4) + ":8620", {"--auth-key-file", key}));
  ASSERT_NO_FATAL_FAILURE(PingOk(bracket(Testbed::kReflectorV6) + ":8620", {"--auth-key-file", key}));
}

}  // namespace
}  // namespace hubprobe::it
