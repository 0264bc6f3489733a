// SPDX-License-Identifier: Apache-2.0
// The dpdk backend's pure logic: frames, the link layer, the TSC calibration and the EAL command line.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "hubprobe/dpdk_eal_args.h"
#include "hubprobe/dpdk_frames.h"
#include "hubprobe/dpdk_link.h"
#include "hubprobe/tsc_calibration.h"

namespace hubprobe::dpdk {
namespace {

constexpr Mac kOurs{0x02, 0, 0, 0, 0, 0x01};
constexpr Mac kTheirs{0x02, 0, 0, 0, 0, 0x02};

SocketAddress addr(const char* text, uint16_t port = 0) {
  auto a = dp::parse_host(text);
  EXPECT_TRUE(a) << text;
  SocketAddress out = a.value();
  out.set_port(port);
  return out;
}

std::array<uint8_t, 16> addr_bytes(const char* text) { return host_bytes(addr(text)); }

dp::DpdkOptions options() {
  dp::DpdkOptions o;
  o.port = "net_ring0";
  o.addresses = {dp::parse_interface_address("198.18.0.1/24").value(),
                 dp::parse_interface_address("2001:db8::1/64").value()};
  o.gateway4 = addr("198.18.0.254");
  return o;
}

struct Fixture {
  std::vector<SocketAddress> addresses{addr("198.18.0.1"), addr("2001:db8::1")};
  Station station() const { return {kOurs, addresses}; }
};

std::vector<uint8_t> udp_frame(const char* from, const char* to, std::span<const uint8_t> payload,
                               const Mac& destination_mac = kOurs) {
  UdpHeader h;
  h.source_mac = kTheirs;
  h.destination_mac = destination_mac;
  h.source = addr(from, 40000);
  h.destination = addr(to, 862);
  std::vector<uint8_t> out(1600);
  out.resize(build_udp(h, payload, out));
  return out;
}

TEST(DpdkFrames, UdpRoundTripsIpv4AndIpv6) {
  Fixture f;
  const std::array<uint8_t, 44> payload{1, 2, 3};
  for (const auto& [from, to] : {std::pair{"198.18.0.2", "198.18.0.1"}, std::pair{"2001:db8::2", "2001:db8::1"}}) {
    const auto frame = udp_frame(from, to, payload);
    ASSERT_FALSE(frame.empty());
    const Frame parsed = parse_frame(frame, f.station());
    ASSERT_EQ(parsed.kind, FrameKind::kUdp) << drop_name(parsed.drop);
    EXPECT_EQ(parsed.source, addr(from, 40000));
    EXPECT_EQ(parsed.destination, addr(to, 862));
    EXPECT_EQ(parsed.source_mac, kTheirs);
    ASSERT_EQ(parsed.payload_length, payload.size());
    EXPECT_EQ(std::memcmp(parsed.payload, payload.data(), payload.size()), 0);
  }
}

TEST(DpdkFrames, DropsWhatIsNotOursOrMalformedWithItsReason) {
  Fixture f;
  const std::array<uint8_t, 44> payload{};
  EXPECT_EQ(parse_frame(udp_frame("198.18.0.2", "198.18.0.9", payload), f.station()).drop, Drop::kOtherAddress);
  EXPECT_EQ(parse_frame(udp_frame("198.18.0.2", "198.18.0.1", payload, kTheirs), f.station()).drop, Drop::kOtherMac);
  auto bad = udp_frame("198.18.0.2", "198.18.0.1", payload);
  bad[14 + 20 + 8] ^= 0xff;  // the payload's first octet: the UDP checksum no longer holds
  EXPECT_EQ(parse_frame(bad, f.station()).drop, Drop::kBadChecksum);
  auto header = udp_frame("198.18.0.2", "198.18.0.1", payload);
  header[14 + 8] ^= 1;  // the TTL: the IPv4 header checksum no longer holds
  EXPECT_EQ(parse_frame(header, f.station()).drop, Drop::kBadIpHeader);
  auto fragment = udp_frame("198.18.0.2", "198.18.0.1", payload);
  fragment[14 + 6] = 0x20;  // more fragments
  EXPECT_NE(parse_frame(fragment, f.station()).kind, FrameKind::kUdp);
  auto v6 = udp_frame("2001:db8::2", "2001:db8::1", payload);
  v6[14 + 40 + 6] = 0;  // an IPv6 UDP checksum of 0 is not allowed
  v6[14 + 40 + 7] = 0;
  EXPECT_EQ(parse_frame(v6, f.station()).drop, Drop::kBadChecksum);
  const auto good = udp_frame("198.18.0.2", "198.18.0.1", payload);
  for (size_t cut = 0; cut < good.size(); ++cut) {
    const Frame parsed = parse_frame(std::span(good.data(), cut), f.station());
    EXPECT_EQ(parsed.kind, FrameKind::kDropped) << cut;
  }
  std::vector<uint8_t> vlan = good;
  vlan[12] = 0x81;
  vlan[13] = 0x00;
  EXPECT_EQ(parse_frame(vlan, f.station()).drop, Drop::kOtherEthertype);
}

TEST(DpdkLink, AnswersArpForItsAddressOnlyAndNeverLargerThanTheRequest) {
  dp::DpdkOptions o = options();
  LinkLayer link(kOurs, o);
  std::vector<uint8_t> request(64);
  request.resize(build_arp_request(kTheirs, addr("198.18.0.2"), addr("198.18.0.1"), request));
  const Frame parsed = parse_frame(request, link.station());
  ASSERT_EQ(parsed.kind, FrameKind::kArpRequest);
  std::array<uint8_t, 128> out{};
  const size_t length = link.handle(parsed, 0, out);
  ASSERT_GT(length, 0U);
  EXPECT_LE(length, request.size());
  const std::vector<SocketAddress> theirs{addr("198.18.0.2")};
  const Frame reply = parse_frame(std::span(out.data(), length), Station{kTheirs, theirs});
  ASSERT_EQ(reply.kind, FrameKind::kArpReply);
  EXPECT_EQ(reply.target, addr("198.18.0.1"));
  EXPECT_EQ(reply.target_mac, kOurs);
  EXPECT_EQ(std::memcmp(out.data(), kTheirs.data(), 6), 0);    // to the asker
  EXPECT_EQ(std::memcmp(out.data() + 6, kOurs.data(), 6), 0);  // from us
  EXPECT_EQ(link.counters().arp_replies_sent, 1U);

  std::vector<uint8_t> other(64);
  other.resize(build_arp_request(kTheirs, addr("198.18.0.2"), addr("198.18.0.7"), other));
  EXPECT_EQ(parse_frame(other, link.station()).drop, Drop::kOtherAddress);
}

TEST(DpdkLink, LearnsOnlyWhatItAskedForAndAsksAgainWhenStale) {
  LinkOptions timing;
  timing.reachable_ns = 10'000;
  timing.stale_ns = 20'000;
  timing.retry_ns = 1'000;
  timing.answer_window_ns = 5'000;
  LinkLayer link(kOurs, options(), timing);
  std::array<uint8_t, 128> request{};
  size_t length = 0;
  const Route route = link.route(addr("198.18.0.2"), SocketAddress()).value();
  EXPECT_EQ(route.source, addr("198.18.0.1"));

  // An unsolicited reply is not taken.
  std::vector<uint8_t> reply(64);
  const SocketAddress ours = addr("198.18.0.1");
  const auto make_reply = [&] {
    Frame asked;
    asked.kind = FrameKind::kArpRequest;
    asked.source = ours;
    asked.source_mac = kOurs;
    asked.target = addr("198.18.0.2");
    reply.resize(64);
    reply.resize(build_arp_reply(asked, kTheirs, reply));
    return parse_frame(reply, link.station());
  };
  Frame unsolicited = make_reply();
  ASSERT_EQ(unsolicited.kind, FrameKind::kArpReply);
  link.handle(unsolicited, 0, request);
  EXPECT_EQ(link.counters().unsolicited_ignored, 1U);
  EXPECT_FALSE(link.resolve(route, 0, request, length));
  EXPECT_GT(length, 0U) << "the first resolve asks";
  EXPECT_FALSE(link.resolve(route, 500, request, length));
  EXPECT_EQ(length, 0U) << "no second request within retry_ns";

  link.handle(make_reply(), 100, request);
  auto mac = link.resolve(route, 200, request, length);
  ASSERT_TRUE(mac);
  EXPECT_EQ(*mac, kTheirs);
  EXPECT_EQ(length, 0U);
  // Past reachable_ns it still uses the entry but asks again; past stale_ns without an answer it is gone.
  EXPECT_TRUE(link.resolve(route, 11'000, request, length));
  EXPECT_GT(length, 0U);
  EXPECT_FALSE(link.resolve(route, 21'000, request, length));
  // An answer long after the request is not taken either.
  link.handle(make_reply(), 40'000, request);
  EXPECT_FALSE(link.resolve(route, 40'001, request, length));
}

TEST(DpdkLink, RoutesOnLinkViaTheGatewayOrRefuses) {
  LinkLayer link(kOurs, options());
  const Route off = link.route(addr("198.19.5.5"), SocketAddress()).value();
  EXPECT_EQ(off.next_hop, addr("198.18.0.254"));
  EXPECT_EQ(off.source, addr("198.18.0.1"));
  EXPECT_EQ(link.route(addr("2001:db9::5"), SocketAddress()).error().code, ENETUNREACH);
  EXPECT_EQ(link.route(addr("2001:db8::5"), SocketAddress()).value().next_hop, addr("2001:db8::5"));
}

TEST(DpdkLink, NeighbourDiscoveryBothWays) {
  LinkLayer link(kOurs, options());
  std::array<uint8_t, 128> out{};
  // Our solicitation for 2001:db8::2 goes to its solicited-node group, hop limit 255.
  size_t length = 0;
  const Route route = link.route(addr("2001:db8::2"), SocketAddress()).value();
  EXPECT_FALSE(link.resolve(route, 0, out, length));
  ASSERT_GT(length, 0U);
  EXPECT_EQ(out[0], 0x33);
  EXPECT_EQ(out[14 + 7], 255);
  // Their solicitation for our address is answered with a solicited advertisement they can parse.
  std::vector<uint8_t> solicitation(128);
  solicitation.resize(build_neighbour_solicitation(kTheirs, addr("2001:db8::2"), addr("2001:db8::1"), solicitation));
  const Frame parsed = parse_frame(solicitation, link.station());
  ASSERT_EQ(parsed.kind, FrameKind::kNeighbourSolicitation) << drop_name(parsed.drop);
  const size_t answer = link.handle(parsed, 0, out);
  ASSERT_GT(answer, 0U);
  EXPECT_LE(answer, solicitation.size());
  const std::vector<SocketAddress> theirs{addr("2001:db8::2")};
  const Frame advertisement = parse_frame(std::span(out.data(), answer), Station{kTheirs, theirs});
  ASSERT_EQ(advertisement.kind, FrameKind::kNeighbourAdvertisement) << drop_name(advertisement.drop);
  EXPECT_TRUE(advertisement.has_target_mac);
  EXPECT_EQ(advertisement.target_mac, kOurs);
  EXPECT_EQ(advertisement.target, addr("2001:db8::1"));
  // Their advertisement answers ours: learnt.
  std::vector<uint8_t> back(128);
  Frame asked = parsed;
  asked.source = addr("2001:db8::1");
  asked.source_mac = kOurs;
  asked.target = addr("2001:db8::2");
  back.resize(build_neighbour_advertisement(asked, kTheirs, back));
  link.handle(parse_frame(back, link.station()), 10, out);
  EXPECT_EQ(link.counters().learnt, 1U);
  EXPECT_EQ(link.resolve(route, 20, out, length).value_or(Mac{}), kTheirs);
}

TEST(DpdkLink, AUnicastSolicitationWithoutItsOptionGetsNoLargerAnswer) {
  LinkLayer link(kOurs, options());
  std::vector<uint8_t> solicitation(128);
  solicitation.resize(build_neighbour_solicitation(kTheirs, addr("2001:db8::2"), addr("2001:db8::1"), solicitation));
  // Drop the source link-layer option (the last 8 octets), fix the lengths and the checksum, send it unicast.
  solicitation.resize(solicitation.size() - 8);
  std::memcpy(solicitation.data(), kOurs.data(), 6);
  solicitation[14 + 4] = 0;
  solicitation[14 + 5] = 24;
  solicitation[14 + 24] = 0x20;  // to 2001:db8::1 itself
  std::memcpy(solicitation.data() + 14 + 24, addr_bytes("2001:db8::1").data(), 16);
  uint8_t* icmp = solicitation.data() + 14 + 40;
  icmp[2] = icmp[3] = 0;
  uint32_t sum = checksum_add(0, std::span<const uint8_t>(solicitation.data() + 14 + 8, 32));
  sum += 24 + 58;
  sum = checksum_add(sum, std::span<const uint8_t>(icmp, 24));
  const uint16_t folded = checksum_fold(sum);
  icmp[2] = static_cast<uint8_t>(folded >> 8);
  icmp[3] = static_cast<uint8_t>(folded);
  const Frame parsed = parse_frame(solicitation, link.station());
  ASSERT_EQ(parsed.kind, FrameKind::kNeighbourSolicitation) << drop_name(parsed.drop);
  EXPECT_FALSE(parsed.has_source_mac_option);
  std::array<uint8_t, 128> out{};
  const size_t length = link.handle(parsed, 0, out);
  ASSERT_GT(length, 0U);
  EXPECT_LE(length, solicitation.size());
  const std::vector<SocketAddress> theirs{addr("2001:db8::2")};
  const Frame advertisement = parse_frame(std::span(out.data(), length), Station{kTheirs, theirs});
  ASSERT_EQ(advertisement.kind, FrameKind::kNeighbourAdvertisement) << drop_name(advertisement.drop);
  EXPECT_FALSE(advertisement.has_target_mac);
}

TEST(DpdkLink, EchoRepliesAreTheRequestsSize) {
  LinkLayer link(kOurs, options());
  // An ICMP echo request of 64 octets, built by hand: type 8, code 0, checksum, id, seq, data.
  std::vector<uint8_t> icmp(64, 0xab);
  icmp[0] = 8;
  icmp[1] = 0;
  icmp[2] = icmp[3] = 0;
  const uint16_t sum = checksum_fold(checksum_add(0, icmp));
  icmp[2] = static_cast<uint8_t>(sum >> 8);
  icmp[3] = static_cast<uint8_t>(sum);
  std::vector<uint8_t> frame(14 + 20 + icmp.size());
  std::memcpy(frame.data(), kOurs.data(), 6);
  std::memcpy(frame.data() + 6, kTheirs.data(), 6);
  frame[12] = 0x08;
  uint8_t* ip = frame.data() + 14;
  ip[0] = 0x45;
  ip[2] = 0;
  ip[3] = static_cast<uint8_t>(20 + icmp.size());
  ip[8] = 64;
  ip[9] = 1;
  const uint8_t src[] = {198, 18, 0, 2}, dst[] = {198, 18, 0, 1};
  std::memcpy(ip + 12, src, 4);
  std::memcpy(ip + 16, dst, 4);
  const uint16_t ipsum = checksum_fold(checksum_add(0, std::span<const uint8_t>(ip, 20)));
  ip[10] = static_cast<uint8_t>(ipsum >> 8);
  ip[11] = static_cast<uint8_t>(ipsum);
  std::memcpy(ip + 20, icmp.data(), icmp.size());
  const Frame parsed = parse_frame(frame, link.station());
  ASSERT_EQ(parsed.kind, FrameKind::kEchoRequest) << drop_name(parsed.drop);
  std::array<uint8_t, 256> out{};
  const size_t length = link.handle(parsed, 0, out);
  EXPECT_EQ(length, frame.size());
  EXPECT_EQ(out[14 + 20], 0);  // echo reply
  EXPECT_EQ(checksum_fold(checksum_add(0, std::span<const uint8_t>(out.data() + 34, icmp.size()))), 0);
}

TEST(TscCalibration, FollowsTheRateAndBoundsItsError) {
  const double hz = 1e9;  // a tick is a nanosecond nominally
  TscCalibration c(hz, {0, 1'000'000'000'000, 50});
  // The TSC runs 10 ppm fast against the wall clock.
  const auto reading = [](int64_t wall_since) {
    return TscReading{static_cast<int64_t>(wall_since * (1 + 10e-6)), 1'000'000'000'000 + wall_since, 50};
  };
  ASSERT_TRUE(c.update(reading(2'000'000'000)));
  const dp::WallStamp later = c.to_wall(reading(3'000'000'000).tsc);
  EXPECT_NEAR(static_cast<double>(later.ns - 1'000'000'000'000), 3e9, 100);
  EXPECT_GE(later.error_ns, 50);
  EXPECT_LT(later.error_ns, 20'000);
  EXPECT_NEAR(c.drift_ppm(), 10, 1);
}

TEST(TscCalibration, AWallClockStepReanchorsAndKeepsTheRate) {
  TscCalibration c(1e9, {0, 1'000'000'000'000, 50});
  ASSERT_TRUE(c.update({2'000'000'000, 1'000'000'000'000 + 2'000'000'000, 50}));
  // The wall clock steps back one second.
  EXPECT_FALSE(c.update({4'000'000'000, 1'000'000'000'000 + 3'000'000'000, 50}));
  EXPECT_EQ(c.steps(), 1U);
  EXPECT_NEAR(c.ns_per_tick(), 1.0, 1e-6);
  EXPECT_EQ(c.to_wall(4'000'000'000).ns, 1'000'000'000'000 + 3'000'000'000);
}

TEST(DpdkEalArgs, AddsAPrefixAndTheLcoreUnlessGiven) {
  dp::DpdkOptions o = options();
  o.eal_args = {"--no-huge", "-m", "256"};
  auto args = eal_arguments(o, 42, 4);
  EXPECT_EQ(args,
            (std::vector<std::string>{"hubprobe", "--no-huge", "-m", "256", "--file-prefix=hubprobe-42", "-l", "3"}));
  EXPECT_TRUE(without_hugepages(args));
  EXPECT_EQ(file_prefix(args), "hubprobe-42");
  o.lcore = 1;
  o.eal_args = {"--file-prefix=mine", "--lcores=0"};
  args = eal_arguments(o, 42, 4);
  EXPECT_EQ(args, (std::vector<std::string>{"hubprobe", "--file-prefix=mine", "--lcores=0"}));
  EXPECT_EQ(loop_lcore(o, 4), 1);
  EXPECT_FALSE(without_hugepages(args));
}

TEST(DpdkOptionsParsing, InterfaceAddressesAndMacs) {
  EXPECT_EQ(dp::parse_interface_address("198.18.0.1/24").value().prefix_length, 24U);
  EXPECT_EQ(dp::parse_interface_address("2001:db8::1").value().prefix_length, 128U);
  EXPECT_FALSE(dp::parse_interface_address("198.18.0.1/33"));
  EXPECT_FALSE(dp::parse_interface_address("198.18.0.1/"));
  EXPECT_FALSE(dp::parse_interface_address("198.18.0.1:5/24"));
  EXPECT_FALSE(dp::parse_interface_address("host/24"));
  EXPECT_EQ(dp::parse_mac("02:00:00:00:00:0a").value()[5], 0x0a);
  EXPECT_FALSE(dp::parse_mac("02:00:00:00:00"));
  EXPECT_FALSE(dp::parse_mac("02:00:00:00:00:0a:"));
}

}  // namespace
}  // namespace hubprobe::dpdk
