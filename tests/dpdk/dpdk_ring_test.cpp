// SPDX-License-Identifier: Apache-2.0
// The dpdk backend on a wire of two rte_rings: port A is the backend's, port B is the test's, which
// writes frames into A and reads what A sends, with the backend's own frame code on its side too. Each
// test runs in its own process (ctest runs one gtest case per process; the EAL starts once per process).
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "hubprobe/dpdk_dataplane.h"
#include "hubprobe/dpdk_frames.h"
#include "hubprobe/reflector_service.h"
#include "hubprobe/stamp.h"

namespace hubprobe::dpdk {
namespace {

#define SKIP_OR_FAIL(message)                                                     \
  do {                                                                            \
    const char* required = std::getenv("HUBPROBE_REQUIRE_PRIVILEGED");            \
    if (required != nullptr && std::string(required) == "1") FAIL() << (message); \
    GTEST_SKIP() << (message);                                                    \
  } while (0)

constexpr Mac kPeerMac{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02};

SocketAddress addr(const char* text, uint16_t port = 0) {
  SocketAddress a = dp::parse_host(text).value();
  a.set_port(port);
  return a;
}

dp::PortOptions at(const SocketAddress& local) {
  dp::PortOptions options;
  options.local = local;
  return options;
}

// A receive batch over one buffer (the tests look at counts and counters, not at the data).
struct RxBatch {
  std::array<uint8_t, 64> buffer{};
  std::array<dp::RxPacket, 4> packets{};
  RxBatch() {
    for (auto& p : packets) {
      p.data = buffer.data();
      p.capacity = static_cast<uint32_t>(buffer.size());
    }
  }
};

class DpdkRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) SKIP_OR_FAIL("needs root: the EAL maps memory and creates /var/run/dpdk/PREFIX");
    prefix_ = "hp-ring-" + std::to_string(getpid());
    std::vector<std::string> args{"hubprobe-dpdk-test",
                                  "--no-huge",
                                  "-m",
                                  "128",
                                  "--no-pci",
                                  "--no-shconf",
                                  "--no-telemetry",
                                  "--file-prefix=" + prefix_,
                                  "-l",
                                  "0",
                                  "--log-level=lib.eal:error"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
      SKIP_OR_FAIL(std::string("the EAL did not start: ") + rte_strerror(rte_errno));
    }
    eal_ = true;
    rte_ring* a_to_b = rte_ring_create("hp_a_to_b", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* b_to_a = rte_ring_create("hp_b_to_a", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_NE(a_to_b, nullptr);
    ASSERT_NE(b_to_a, nullptr);
    const int a = rte_eth_from_rings("hp_a", &b_to_a, 1, &a_to_b, 1, 0);
    const int b = rte_eth_from_rings("hp_b", &a_to_b, 1, &b_to_a, 1, 0);
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    peer_port_ = static_cast<uint16_t>(b);
    char name[RTE_ETH_NAME_MAX_LEN];
    ASSERT_EQ(rte_eth_dev_get_name_by_port(static_cast<uint16_t>(a), name), 0);
    pool_ = rte_pktmbuf_pool_create("hp_peer_pool", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    ASSERT_NE(pool_, nullptr);
    rte_eth_conf conf{};
    ASSERT_EQ(rte_eth_dev_configure(peer_port_, 1, 1, &conf), 0);
    ASSERT_EQ(rte_eth_rx_queue_setup(peer_port_, 0, 256, 0, nullptr, pool_), 0);
    ASSERT_EQ(rte_eth_tx_queue_setup(peer_port_, 0, 256, 0, nullptr), 0);
    ASSERT_EQ(rte_eth_dev_start(peer_port_), 0);

    dp::DpdkOptions options;
    options.port = name;
    options.eal_args = {"--no-huge"};  // the EAL is up already (above); this only keeps the hugepage check quiet
    options.addresses = {dp::parse_interface_address("198.18.0.1/24").value(),
                         dp::parse_interface_address("2001:db8::1/64").value()};
    auto dataplane = DpdkDataplane::open(options);
    ASSERT_TRUE(dataplane) << dataplane.error().message;
    dataplane_ = std::move(dataplane.value());
    rte_ether_addr mac{};
    rte_eth_macaddr_get(static_cast<uint16_t>(a), &mac);
    std::memcpy(port_mac_.data(), mac.addr_bytes, 6);
  }

  void TearDown() override {
    dataplane_.reset();
    if (eal_) {
      rte_eth_dev_stop(peer_port_);
      rte_eal_cleanup();
      std::error_code ignored;
      std::filesystem::remove_all("/var/run/dpdk/" + prefix_, ignored);
    }
  }

  // The test's side: send a frame into the backend's port.
  void inject(std::span<const uint8_t> frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    ASSERT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(), frame.size());
    ASSERT_EQ(rte_eth_tx_burst(peer_port_, 0, &m, 1), 1);
  }
  // What the backend sent, as raw frames.
  std::vector<std::vector<uint8_t>> collect() {
    std::vector<std::vector<uint8_t>> out;
    rte_mbuf* mbufs[32];
    const uint16_t n = rte_eth_rx_burst(peer_port_, 0, mbufs, 32);
    for (uint16_t i = 0; i < n; ++i) {
      const auto* data = rte_pktmbuf_mtod(mbufs[i], const uint8_t*);
      out.emplace_back(data, data + rte_pktmbuf_data_len(mbufs[i]));
      rte_pktmbuf_free(mbufs[i]);
    }
    return out;
  }
  std::vector<uint8_t> udp_to_port(const char* from, uint16_t from_port, const char* to, uint16_t to_port,
                                   std::span<const uint8_t> payload) {
    UdpHeader h;
    h.source_mac = kPeerMac;
    h.destination_mac = port_mac_;
    h.source = addr(from, from_port);
    h.destination = addr(to, to_port);
    std::vector<uint8_t> frame(2048);
    frame.resize(build_udp(h, payload, frame));
    return frame;
  }
  uint64_t link_counter(dp::LinkCounter::Family family, const std::string& name) const {
    for (const auto& c : dataplane_->link_counters()) {
      if (c.family == family && c.name == name) return c.value;
    }
    ADD_FAILURE() << "no counter " << name;
    return 0;
  }

  std::string prefix_;
  bool eal_ = false;
  uint16_t peer_port_ = 0;
  rte_mempool* pool_ = nullptr;
  Mac port_mac_{};
  std::unique_ptr<DpdkDataplane> dataplane_;
};

TEST_F(DpdkRingTest, AnswersArpAndNeighbourSolicitationForItsAddressesOnly) {
  auto port = dataplane_->open_port(at(addr("0.0.0.0", 862)));
  ASSERT_TRUE(port);
  std::vector<uint8_t> frame(128);
  frame.resize(build_arp_request(kPeerMac, addr("198.18.0.2"), addr("198.18.0.1"), frame));
  inject(frame);
  frame.resize(128);
  frame.resize(build_arp_request(kPeerMac, addr("198.18.0.2"), addr("198.18.0.99"), frame));
  inject(frame);
  frame.resize(128);
  frame.resize(build_neighbour_solicitation(kPeerMac, addr("2001:db8::2"), addr("2001:db8::1"), frame));
  inject(frame);
  RxBatch batch;
  auto& rx = batch.packets;
  ASSERT_TRUE((*port)->receive(rx));
  const auto sent = collect();
  ASSERT_EQ(sent.size(), 2U) << "one ARP reply, one advertisement; nothing for 198.18.0.99";
  const std::vector<SocketAddress> peer{addr("198.18.0.2"), addr("2001:db8::2")};
  const Frame arp = parse_frame(sent[0], Station{kPeerMac, peer});
  ASSERT_EQ(arp.kind, FrameKind::kArpReply);
  EXPECT_EQ(arp.target, addr("198.18.0.1"));
  EXPECT_EQ(arp.target_mac, port_mac_);
  const Frame na = parse_frame(sent[1], Station{kPeerMac, peer});
  ASSERT_EQ(na.kind, FrameKind::kNeighbourAdvertisement) << drop_name(na.drop);
  EXPECT_EQ(na.target_mac, port_mac_);
  EXPECT_EQ(link_counter(dp::LinkCounter::Family::kDropped, "other_address"), 1U);
}

TEST_F(DpdkRingTest, ReflectsStampWithTscStampsAndNoLargerReply) {
  ReflectorServiceOptions options;
  options.listen = {addr("0.0.0.0", 862), addr("::", 862)};
  auto service = ReflectorService::open(*dataplane_, options);
  ASSERT_TRUE(service) << service.error().message;
  for (const auto& [from, to] : {std::pair{"198.18.0.2", "198.18.0.1"}, std::pair{"2001:db8::2", "2001:db8::1"}}) {
    stamp::TestPacket request;
    request.seq = 7;
    std::array<uint8_t, 44> payload{};
    ASSERT_TRUE(stamp::encode_test_packet(request, stamp::Mode::kUnauthenticated, nullptr, payload));
    const auto frame = udp_to_port(from, 40000, to, 862, payload);
    inject(frame);
    size_t work = 0;
    for (int i = 0; i < 100 && work == 0; ++i) work = (*service)->step(read_now()).work;
    const auto sent = collect();
    ASSERT_EQ(sent.size(), 1U) << from;
    EXPECT_LE(sent[0].size(), frame.size()) << "a reply is never larger than its request";
    const std::vector<SocketAddress> peer{addr(from)};
    const Frame reply = parse_frame(sent[0], Station{kPeerMac, peer});
    ASSERT_EQ(reply.kind, FrameKind::kUdp) << drop_name(reply.drop);
    EXPECT_EQ(reply.source, addr(to, 862));
    EXPECT_EQ(reply.destination, addr(from, 40000));
    EXPECT_EQ(reply.source_mac, port_mac_);
    const auto decoded = stamp::decode_reflected_packet(std::span(reply.payload, reply.payload_length),
                                                        stamp::Mode::kUnauthenticated, nullptr);
    ASSERT_TRUE(decoded.ok);
    EXPECT_EQ(decoded.parsed.packet.sender_seq, 7U);
    const WallNs now = wall_now();
    const WallNs t2 = decode_timestamp(decoded.parsed.packet.receive_timestamp, TimestampFormat::kNtp, 0, now);
    const WallNs t3 = decode_timestamp(decoded.parsed.packet.timestamp, TimestampFormat::kNtp, 0, now);
    EXPECT_GT(t2, now - 5'000'000'000) << "T2 is wall-clock time converted from the TSC";
    EXPECT_GE(t3, t2);
    EXPECT_LT(t3 - t2, 10'000'000);
  }
}

TEST_F(DpdkRingTest, ResolvesTheNextHopBeforeSendingAndIgnoresUnsolicitedReplies) {
  auto port = dataplane_->open_port(at(addr("0.0.0.0", 0)));
  ASSERT_TRUE(port);
  const std::array<uint8_t, 44> payload{1, 2, 3};
  dp::TxPacket packet;
  packet.data = payload.data();
  packet.length = static_cast<uint32_t>(payload.size());
  packet.destination = addr("198.18.0.2", 862);
  // An ARP reply nobody asked for is not learnt.
  Frame asked;
  asked.kind = FrameKind::kArpRequest;
  asked.source = addr("198.18.0.1");
  asked.source_mac = port_mac_;
  asked.target = addr("198.18.0.2");
  std::vector<uint8_t> reply(128);
  reply.resize(build_arp_reply(asked, kPeerMac, reply));
  inject(reply);
  RxBatch batch;
  auto& rx = batch.packets;
  ASSERT_TRUE((*port)->receive(rx));
  EXPECT_EQ(link_counter(dp::LinkCounter::Family::kLink, "unsolicited_ignored"), 1U);

  ASSERT_TRUE((*port)->send(std::span(&packet, 1)));
  EXPECT_EQ(packet.error, EHOSTUNREACH);
  auto sent = collect();
  ASSERT_EQ(sent.size(), 1U);
  const std::vector<SocketAddress> peer{addr("198.18.0.2")};
  const Frame request = parse_frame(sent[0], Station{kPeerMac, peer});
  ASSERT_EQ(request.kind, FrameKind::kArpRequest);
  EXPECT_EQ(request.source, addr("198.18.0.1"));
  inject(reply);  // now it answers our request
  ASSERT_TRUE((*port)->receive(rx));
  packet.error = 0;
  auto left = (*port)->send(std::span(&packet, 1));
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, 1U);
  EXPECT_EQ(packet.error, 0);
  EXPECT_EQ(packet.sent_at.source, dp::TimestampSource::kTsc);
  sent = collect();
  ASSERT_EQ(sent.size(), 1U);
  const Frame datagram = parse_frame(sent[0], Station{kPeerMac, peer});
  ASSERT_EQ(datagram.kind, FrameKind::kUdp) << drop_name(datagram.drop);
  EXPECT_EQ(datagram.destination, addr("198.18.0.2", 862));
  EXPECT_EQ(datagram.source.host(), "198.18.0.1");
  EXPECT_EQ((*port)->local_address(), datagram.source);
  EXPECT_EQ(std::memcmp(sent[0].data(), kPeerMac.data(), 6), 0);
}

TEST_F(DpdkRingTest, CountsWhatItDropsByReason) {
  auto port = dataplane_->open_port(at(addr("0.0.0.0", 862)));
  ASSERT_TRUE(port);
  const std::array<uint8_t, 44> payload{};
  auto frame = udp_to_port("198.18.0.2", 40000, "198.18.0.1", 862, payload);
  auto bad_sum = frame;
  bad_sum[14 + 20 + 8] ^= 0x55;
  inject(bad_sum);
  inject(std::span(frame.data(), 20));                                   // truncated
  inject(udp_to_port("198.18.0.2", 40000, "198.18.0.1", 999, payload));  // nobody listens there
  auto other_mac = frame;
  other_mac[0] = 0x04;
  inject(other_mac);
  RxBatch batch;
  auto& rx = batch.packets;
  auto received = (*port)->receive(rx);
  ASSERT_TRUE(received);
  EXPECT_EQ(*received, 0U);
  using Family = dp::LinkCounter::Family;
  EXPECT_EQ(link_counter(Family::kDropped, "bad_checksum"), 1U);
  EXPECT_EQ(link_counter(Family::kDropped, "truncated"), 1U);
  EXPECT_EQ(link_counter(Family::kDropped, "no_listener"), 1U);
  EXPECT_EQ(link_counter(Family::kDropped, "other_mac"), 1U);
  EXPECT_TRUE(collect().empty()) << "nothing is answered";
}

// Resident memory of this process, in KiB (VmRSS).
long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "VmRSS:" && status >> value) return value;
    status.ignore(256, '\n');
  }
  return 0;
}

// 200 000 requests from spoofed sources (every one a new stateful session) with a legitimate peer's
// requests among them: the table stays at its bound, the evictions are counted, memory stays flat, and
// the legitimate session (seen often, so never the least recently seen) keeps its own numbering.
TEST_F(DpdkRingTest, ASpoofedFloodKeepsTheStatefulTableBoundedAndTheLegitimatePeerAnswered) {
  ReflectorServiceOptions options;
  options.listen = {addr("198.18.0.1", 862)};
  options.reflector.stateful = true;
  auto service = ReflectorService::open(*dataplane_, options);
  ASSERT_TRUE(service) << service.error().message;
  constexpr uint32_t kSpoofed = 200'000;
  constexpr uint32_t kEvery = 500;  // a legitimate request after every kEvery spoofed ones
  const std::vector<SocketAddress> peer{addr("198.18.0.2")};
  std::vector<uint8_t> payload(44);
  uint32_t legit_sent = 0, legit_answered = 0, legit_in_order = 0;
  long rss_half = 0;
  const auto legit_replies = [&] {
    std::vector<std::vector<uint8_t>> frames;
    for (auto batch = collect(); !batch.empty(); batch = collect()) {
      frames.insert(frames.end(), batch.begin(), batch.end());
    }
    for (const auto& frame : frames) {
      const Frame reply = parse_frame(frame, Station{kPeerMac, peer});
      if (reply.kind != FrameKind::kUdp || reply.destination != addr("198.18.0.2", 40000)) continue;
      const auto decoded = stamp::decode_reflected_packet(std::span(reply.payload, reply.payload_length),
                                                          stamp::Mode::kUnauthenticated, nullptr);
      if (!decoded.ok) continue;
      if (decoded.parsed.packet.seq == legit_answered) ++legit_in_order;
      ++legit_answered;
    }
  };
  for (uint32_t i = 0; i < kSpoofed; ++i) {
    stamp::TestPacket request;
    request.seq = i;
    ASSERT_TRUE(stamp::encode_test_packet(request, stamp::Mode::kUnauthenticated, nullptr, payload));
    // Sources across 198.18.0.0/15 and a spread of ports: every request a session of its own.
    const uint32_t host = 0xc6120000u + 16 + (i % 130'000);
    char source[32];
    std::snprintf(source, sizeof source, "%u.%u.%u.%u", host >> 24, (host >> 16) & 255, (host >> 8) & 255, host & 255);
    inject(udp_to_port(source, static_cast<uint16_t>(1024 + i / 130'000), "198.18.0.1", 862, payload));
    if (i % kEvery == 0) {
      stamp::TestPacket legit;
      legit.seq = legit_sent++;
      ASSERT_TRUE(stamp::encode_test_packet(legit, stamp::Mode::kUnauthenticated, nullptr, payload));
      inject(udp_to_port("198.18.0.2", 40000, "198.18.0.1", 862, payload));
    }
    if (i % 64 == 63) {
      while ((*service)->step(read_now()).work > 0) {
      }
      legit_replies();
    }
    if (i == kSpoofed / 2) rss_half = rss_kib();
  }
  // Steps for a little over a second: the service publishes its counters once a second.
  for (const MonoNs until = mono_now() + 1'200'000'000; mono_now() < until;) (*service)->step(read_now());
  legit_replies();
  const ReflectorServiceCounters counters = (*service)->counters();
  EXPECT_LE(counters.engine.sessions_active, 65536U);
  EXPECT_GE(counters.engine.sessions_evicted, kSpoofed - 65536U);
  std::string link;
  for (const auto& c : dataplane_->link_counters()) {
    if (c.value != 0) link += " " + c.name + "=" + std::to_string(c.value);
  }
  EXPECT_EQ(legit_answered, legit_sent) << "every legitimate request answered; send errors " << counters.send_errors
                                        << ", reflected " << counters.engine.reflected << ", link:" << link;
  EXPECT_EQ(legit_in_order, legit_sent) << "its session kept its numbering: never evicted";
  const long rss_end = rss_kib();
  EXPECT_LT(rss_end - rss_half, 4096) << "memory grew from " << rss_half << " to " << rss_end << " KiB";
  std::printf(
      "[ measured ] %u spoofed sources: %lu sessions active, %lu evicted; RSS %ld KiB at half, %ld KiB "
      "at the end; %u/%u legitimate replies in order\n",
      kSpoofed, static_cast<unsigned long>(counters.engine.sessions_active),
      static_cast<unsigned long>(counters.engine.sessions_evicted), rss_half, rss_end, legit_in_order, legit_sent);
}

TEST_F(DpdkRingTest, RefusesWhatAPortCannotBe) {
  EXPECT_EQ(dataplane_->open_port(at(addr("198.18.0.9", 862))).error().code, EADDRNOTAVAIL);
  dp::PortOptions pinned = at(addr("0.0.0.0", 0));
  pinned.fwmark = 7;
  EXPECT_EQ(dataplane_->open_port(pinned).error().code, EINVAL);
  auto first = dataplane_->open_port(at(addr("198.18.0.1", 862)));
  ASSERT_TRUE(first);
  EXPECT_EQ(dataplane_->open_port(at(addr("0.0.0.0", 862))).error().code, EADDRINUSE);
  EXPECT_TRUE(dataplane_->open_port(at(addr("::", 862)))) << "another family, another endpoint";
}

}  // namespace
}  // namespace hubprobe::dpdk
