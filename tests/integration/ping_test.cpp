// SPDX-License-Identifier: Apache-2.0
// `hubprobe ping` against `hubprobe reflect` across a veth pair: the --json report, the per-reply
// lines, packet size and DSCP on the wire (checked with nftables counters, not with what the CLI says).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "fixture.h"

namespace hubprobe::it {
namespace {

using nlohmann::json;

class PingTest : public HubprobeTest {};

// Checks the report of a clean run of `count` probes over the veth.
void ExpectCleanRun(const json& r, int64_t count) {
  EXPECT_EQ(counter(r, "sent"), count);
  EXPECT_EQ(counter(r, "received"), count);
  for (const char* k :
       {"duplicates", "late", "reordered", "invalid", "loss.forward", "loss.backward", "loss.unknown", "loss.total"}) {
    EXPECT_EQ(counter(r, k), 0) << k << " in " << r.dump();
  }
  EXPECT_EQ(number(r, "loss_percent.total"), 0.0);
  // Over a veth on one host the RTT is a few microseconds once the reflector's T3 includes its learnt
  // send path (its replies' TX stamps), and it can read a little below zero: on veth the TX software stamp
  // is taken after the frame is handed to the peer, whose RX stamp may come first (docs/architecture.md,
  // "The socket reflector's T3 and its send path"). Measured down to -1 us; -10 us would be a T3 after
  // the reply really left. 1 ms for p50 leaves room for a busy VM.
  EXPECT_GT(number(r, "rtt_us.min"), -10.0) << r.dump();
  EXPECT_LT(number(r, "rtt_us.p50"), 1000.0) << r.dump();
  EXPECT_GE(number(r, "turnaround_us.min"), 0.0) << r.dump();
  // A local reflector turns a packet around in microseconds; 100 ms would mean a wrong T2 or T3.
  EXPECT_LT(number(r, "turnaround_us.p50"), 100000.0) << r.dump();
  EXPECT_GE(number(r, "jitter_us"), 0.0) << r.dump();
  // The kernel backend takes T1 and T4 from SO_TIMESTAMPING (works on veth: ENV-NOTES).
  EXPECT_EQ(r["timestamps"].value("t1", ""), "kernel") << r["timestamps"].dump();
  EXPECT_EQ(r["timestamps"].value("t4", ""), "kernel") << r["timestamps"].dump();
}

TEST_F(PingTest, Ipv4JsonReport) {
  auto refl = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":862"});
  CommandResult r = ping({"-c", "20", "-i", "0.01", "--timeout", "1", "--json", Testbed::kReflectorV4}, Seconds(20));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  ExpectCleanRun(report, 20);
  EXPECT_NE(report["target"].get<std::string>().find(Testbed::kReflectorV4), std::string::npos) << report.dump();
  // 20 probes 10 ms apart; it may wait up to --timeout for stragglers; 3 s of margin for a slow VM.
  EXPECT_LT(r.seconds, 20 * 0.01 + 1 + 3) << r.describe();
  EXPECT_TRUE(refl->running()) << refl->describe();
}

TEST_F(PingTest, Ipv6JsonReport) {
  auto refl = start_reflector({"--listen", std::string("[") + Testbed::kReflectorV6 + "]:862"});
  CommandResult r =
      ping({"-c", "20", "-i", "0.01", "--timeout", "1", "--json", std::string("[") + Testbed::kReflectorV6 + "]:862"},
           Seconds(20));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  ExpectCleanRun(report, 20);
  EXPECT_NE(report["target"].get<std::string>().find(Testbed::kReflectorV6), std::string::npos) << report.dump();
  EXPECT_LT(r.seconds, 20 * 0.01 + 1 + 3) << r.describe();
}

// An operator types an IPv6 address the way ping(8) takes it: without brackets and without a port.
TEST_F(PingTest, BareIpv6AddressUsesDefaultPort) {
  auto refl = start_reflector({"--listen", std::string("[") + Testbed::kReflectorV6 + "]:862"});
  CommandResult r = ping({"-c", "3", "-i", "0.01", "--timeout", "1", "--json", Testbed::kReflectorV6}, Seconds(10));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "received"), 3);
}

TEST_F(PingTest, ExplicitPort) {
  auto refl = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":9862"}, 9862);
  CommandResult r = ping(
      {"-c", "3", "-i", "0.01", "--timeout", "1", "--json", std::string(Testbed::kReflectorV4) + ":9862"}, Seconds(10));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "received"), 3);
}

TEST_F(PingTest, PerReplyLinesAndQuietMode) {
  auto refl = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":862"});
  CommandResult r = ping({"-c", "5", "-i", "0.01", "--timeout", "1", Testbed::kReflectorV4}, Seconds(10));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  std::vector<std::string> malformed;
  auto lines = parse_reply_lines(r.out, &malformed);
  EXPECT_TRUE(malformed.empty()) << "lines not in the documented format:\n" << r.out;
  ASSERT_EQ(lines.size(), 5u) << r.describe();
  std::set<uint64_t> seqs;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].bytes, 44u);
    EXPECT_EQ(lines[i].from, std::string(Testbed::kReflectorV4) + ":862");
    EXPECT_GT(lines[i].rtt_ms, 0.0);
    EXPECT_LT(lines[i].rtt_ms, 100.0);
    EXPECT_GE(lines[i].turnaround_ms, 0.0);
    if (i > 0) {
      EXPECT_GT(lines[i].seq, lines[i - 1].seq) << r.out;
    }
    seqs.insert(lines[i].seq);
  }
  EXPECT_EQ(seqs.size(), 5u);
  // A summary like ping's follows the reply lines.
  EXPECT_NE(r.out.find("p99"), std::string::npos) << "no percentile summary:\n" << r.out;

  CommandResult quiet = ping({"-q", "-c", "5", "-i", "0.01", "--timeout", "1", Testbed::kReflectorV4}, Seconds(10));
  EXPECT_EQ(quiet.exit.exit_code(), 0) << quiet.describe();
  EXPECT_TRUE(parse_reply_lines(quiet.out).empty()) << quiet.out;
  EXPECT_NE(quiet.out.find("p99"), std::string::npos) << "-q must keep the summary:\n" << quiet.out;
}

TEST_F(PingTest, Ipv6PerReplyLinesBracketTheAddress) {
  auto refl = start_reflector({"--listen", std::string("[") + Testbed::kReflectorV6 + "]:862"});
  CommandResult r =
      ping({"-c", "2", "-i", "0.01", "--timeout", "1", std::string("[") + Testbed::kReflectorV6 + "]"}, Seconds(10));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  auto lines = parse_reply_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.describe();
  EXPECT_EQ(lines[0].from, std::string("[") + Testbed::kReflectorV6 + "]:862");
}

// -s sets the STAMP packet size; the wire is the judge: UDP length = size + 8, both ways.
TEST_F(PingTest, PacketSizeOnTheWire) {
  HUBPROBE_REQUIRE_NFT();
  Nft nft(reflector_ns());
  nft.add_counter("req_52");
  nft.add_counter("rep_52");
  nft.add_counter("req_208");
  nft.add_counter("rep_208");
  nft.add_rule("input", "udp dport 862 udp length 52 counter name \"req_52\"");
  nft.add_rule("output", "udp sport 862 udp length 52 counter name \"rep_52\"");
  nft.add_rule("input", "udp dport 862 udp length 208 counter name \"req_208\"");
  nft.add_rule("output", "udp sport 862 udp length 208 counter name \"rep_208\"");
  auto refl = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":862"});

  CommandResult plain = ping({"-c", "3", "-i", "0.01", "--timeout", "1", Testbed::kReflectorV4}, Seconds(10));
  EXPECT_EQ(plain.exit.exit_code(), 0) << plain.describe();
  EXPECT_EQ(nft.packets("req_52"), 3u) << "default size is the 44-octet base packet\n" << nft.ruleset();
  EXPECT_EQ(nft.packets("rep_52"), 3u) << nft.ruleset();

  CommandResult sized =
      ping({"-s", "200", "-c", "5", "-i", "0.01", "--timeout", "1", Testbed::kReflectorV4}, Seconds(10));
  EXPECT_EQ(sized.exit.exit_code(), 0) << sized.describe();
  auto lines = parse_reply_lines(sized.out);
  ASSERT_EQ(lines.size(), 5u) << sized.describe();
  for (const auto& line : lines) EXPECT_EQ(line.bytes, 200u) << sized.out;
  EXPECT_EQ(nft.packets("req_208"), 5u) << nft.ruleset();
  EXPECT_EQ(nft.packets("rep_208"), 5u) << "replies must be as long as the requests\n" << nft.ruleset();
}

// -Q sets the DSCP of the probes; the reflector answers in the same class.
TEST_F(PingTest, DscpOnTheWire) {
  HUBPROBE_REQUIRE_NFT();
  Nft nft(reflector_ns());
  nft.add_counter("req_ef");
  nft.add_counter("rep_ef");
  nft.add_counter("req_v6_af41");
  nft.add_rule("input", "udp dport 862 ip dscp 46 counter name \"req_ef\"");
  nft.add_rule("output", "udp sport 862 ip dscp 46 counter name \"rep_ef\"");
  nft.add_rule("input", "udp dport 862 ip6 dscp 34 counter name \"req_v6_af41\"");
  auto refl = start_reflector({});
  CommandResult r =
      ping({"-Q", "46", "-c", "4", "-i", "0.01", "--timeout", "1", "--json", Testbed::kReflectorV4}, Seconds(10));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  EXPECT_EQ(nft.packets("req_ef"), 4u) << "probes not marked DSCP 46 (EF)\n" << nft.ruleset();
  EXPECT_EQ(nft.packets("rep_ef"), 4u) << "reflector did not answer in the request's DSCP\n" << nft.ruleset();

  CommandResult r6 = ping(
      {"-Q", "34", "-c", "3", "-i", "0.01", "--timeout", "1", "--json", std::string("[") + Testbed::kReflectorV6 + "]"},
      Seconds(10));
  EXPECT_EQ(r6.exit.exit_code(), 0) << r6.describe();
  EXPECT_EQ(nft.packets("req_v6_af41"), 3u) << "IPv6 probes not marked DSCP 34 (traffic class)\n" << nft.ruleset();
}

// -I pins the probes to an interface (SO_BINDTODEVICE).
TEST_F(PingTest, BindToInterface) {
  auto refl = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":862"});
  CommandResult r =
      ping({"-I", Testbed::kSenderIf, "-c", "3", "-i", "0.01", "--timeout", "1", "--json", Testbed::kReflectorV4},
           Seconds(10));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  json report;
  ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
  EXPECT_EQ(counter(report, "received"), 3);
  // Bound to lo, the reflector's address is unreachable: nothing comes back, and it still ends.
  CommandResult lo =
      ping({"-I", "lo", "-c", "2", "-i", "0.01", "--timeout", "0.5", "--json", Testbed::kReflectorV4}, Seconds(10));
  EXPECT_TRUE(lo.exit.exited()) << lo.describe();
  EXPECT_NE(lo.exit.exit_code(), 0) << lo.describe();
}

// The smallest legal values are accepted and work.
TEST_F(PingTest, BoundaryValuesAccepted) {
  auto refl = start_reflector({"--listen", std::string(Testbed::kReflectorV4) + ":862"});
  for (const std::vector<std::string>& extra :
       std::vector<std::vector<std::string>>{{"-i", "0.001", "-c", "5"},
                                             {"-s", "44", "-i", "0.01", "-c", "2"},
                                             {"-Q", "0", "-i", "0.01", "-c", "2"},
                                             {"-Q", "63", "-i", "0.01", "-c", "2"}}) {
    std::vector<std::string> args = extra;
    for (const char* a : {"--timeout", "1", "--json"}) args.emplace_back(a);
    args.emplace_back(Testbed::kReflectorV4);
    CommandResult r = ping(args, Seconds(10));
    EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
    json report;
    ASSERT_NO_FATAL_FAILURE(ParseReport(r, &report));
    EXPECT_EQ(counter(report, "received"), counter(report, "sent")) << r.describe();
  }
}

}  // namespace
}  // namespace hubprobe::it
