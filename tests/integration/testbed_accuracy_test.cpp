// SPDX-License-Identifier: Apache-2.0
// Accuracy of `hubprobe ping` across an emulated WAN link, against capture truth, probe by probe.
//
//   hpit<PID>-<N>s  hpv0 198.18.0.1/24 --veth-- bl0 [ hpit<PID>-<N>b: hubprobe-linkemu --a bl0 --b br0 ]
//                                              br0 --veth-- hpv1 198.18.0.2/24  hpit<PID>-<N>r
//
// The emulator puts 1.5 ms and then 10 ms on each direction (3 ms / 20 ms RTT). At each delay `hubprobe
// ping` runs at a 10 ms interval (200 probes) and at 100 ms, the agent's default (60 probes), in the
// sender namespace against `hubprobe reflect --stateful`, printing a line per reply (seq, RTT and
// turnaround to the µs). Four tcpdumps take the truth of the four timestamps, each as the RX stamp of
// the frame where it arrives (-Q in, without --immediate-mode: no capture sits on a transmit path or
// wakes per frame; one on the sender's transmit path was seen delaying T1 by 3-25 us):
//   T1: the request arriving on bl0 (from hpv0)    T2: the request arriving on hpv1
//   T3: the reply arriving on br0 (from hpv1)      T4: the reply arriving on hpv0
// Probes are matched by the Sender Sequence Number: UDP payload offset 0 of a request, offset 24 of an
// unauthenticated reflected packet (the Session-Sender Sequence Number, RFC 8762 4.3.1), and by the same
// number on hubprobe's reply lines. hubprobe's RTT is (T4 - T1) - (T3 - T2) (docs/benchmarks.md): the
// reflector's turnaround is taken out; the capture RTT is the same of the four captured stamps, and the
// error of a probe is hubprobe's RTT minus its capture RTT. Its two shares are reported beside it: the
// turnaround error (hubprobe's T3 - T2 minus the captured one: the reflector's T3) and the sender's
// (hubprobe's T4 - T1 minus the captured one: its T1).
//
// Before the measured probes, 32 probes at the run's interval: ARP through the emulator, and the
// reflector's send-path estimate (the 10th percentile of its last 32 replies) made of replies at that
// rate, as in a steady deployment (a longer send path is followed once 29 of the 32 are new).
//
// Asserted:
//  * every probe is answered, printed and seen on all four captures (the per-probe match is complete).
//  * p50 of |error| <= 10 us at the 10 ms interval, <= 20 us at 100 ms. Both ends use kernel software
//    stamps on the same host and clock: T1 is the SO_TIMESTAMPING software TX stamp, taken in veth_xmit
//    just before the frame's RX stamp on bl0; T2 and T4 are the very RX stamps tcpdump reports; the
//    socket reflector's T3 is its clock read plus its learnt send path, which aims at its reply's TX
//    stamp, just before the RX stamp on br0 (docs/architecture.md, "The socket reflector's T3 and its
//    send path"). Measured (docs/benchmarks.md, "Per-probe accuracy against captures"), at 10 ms:
//    1.5-2.4 us on the shared host, 3.4-4.0 us beside two busy loops; at 100 ms: 3.2-5.9 us, once 11.3 us
//    at 20 ms (there a reflector's send path has two modes some 35 us apart, which a median cannot
//    follow reply by reply), 3.1-5.9 us beside two busy loops. A reflector that writes its clock read as
//    T3 reads 10-18 us high at 10 ms and 24-40 us at 100 ms, which the bounds tell apart.
//  * capture min >= nominal and capture p50 >= nominal: the emulator is never early (it converts the
//    frame's realtime stamp with a lower bound of realtime - monotonic, so a preemption between its clock
//    reads makes a frame late, not early; before that fix it was seen 21 us early once in 17 runs on a
//    loaded VM); at the 10 ms interval its p50 is within nominal + 400 us (its own p50 error is 6-9 us
//    per direction and its test bounds it by 200 us, tests/linkemu/README.md).
// The tails of |error| (p90, p99, max: one preempted reply moves them) are recorded, not judged.
// Takes ~ 27 s.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../support/pcap_reader.h"
#include "emulated_link.h"
#include "hubprobe_cli.h"
#include "netns.h"
#include "process.h"

namespace hubprobe::it {
namespace {

// p50 of |hubprobe RTT - capture RTT| over the probes of one run, at a 10 ms and a 100 ms interval (the
// measurements are in the header).
constexpr double kErrorP50BoundUs = 10.0;
constexpr double kErrorP50BoundIdleUs = 20.0;
// Capture p50 - nominal RTT: 2 x the 200 us per-direction p50 bound of tests/linkemu.
constexpr double kEmulatorSlackUs = 400.0;

/// One run of `hubprobe ping`: `probes` probes every `interval_s` on a link of `nominal_rtt_us`.
struct PingRun {
  std::string label;
  double nominal_rtt_us = 0;
  double interval_s = 0;
  int probes = 0;
};

template <class F>
bool wait_until(F cond, Seconds timeout) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

/// The STAMP packets of one capture (ns), keyed by the Sender Sequence Number.
struct CaptureTruth {
  std::map<uint32_t, int64_t> request_ns, reply_ns;
};

CaptureTruth read_pcap(const std::filesystem::path& path) {
  CaptureTruth out;
  using test::be16_at;
  using test::be32_at;
  test::for_each_ipv4_frame(path.string(), [&](int64_t t, const uint8_t* ip, size_t captured) {
    if (ip[9] != 17) return;  // UDP
    const size_t udp = (ip[0] & 0xf) * 4u;
    const size_t payload = udp + 8;
    const uint32_t sport = be16_at(ip, udp), dport = be16_at(ip, udp + 2);
    if (dport == 862 && payload + 4 <= captured) {
      out.request_ns.emplace(be32_at(ip, payload), t);
    } else if (sport == 862 && payload + 28 <= captured) {
      out.reply_ns.emplace(be32_at(ip, payload + 24), t);
    }
  });
  return out;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  // Linear interpolation between closest ranks (what most tools call p50 for an even count).
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

/// One probe: hubprobe's RTT and turnaround (its reply line) beside the capture's.
struct ProbeError {
  uint32_t seq = 0;
  double rtt_us = 0, turnaround_us = 0;                  ///< hubprobe
  double capture_rtt_us = 0, capture_turnaround_us = 0;  ///< the wire
  double error_us() const { return rtt_us - capture_rtt_us; }
  double turnaround_error_us() const { return turnaround_us - capture_turnaround_us; }
};

/// Where the truth of each of the four STAMP timestamps comes from: the frame's RX stamp on the veth
/// it arrives at (see the header).
struct Captures {
  CaptureTruth sender;     ///< hpv0: reply in (T4)
  CaptureTruth sent;       ///< bl0: request out of hpv0 (T1)
  CaptureTruth reflector;  ///< hpv1: request in (T2)
  CaptureTruth reflected;  ///< br0: reply out of hpv1 (T3)
};

/// Every reply line matched by sequence number to its probe on the four captures; probes missing from
/// any capture are left out (the caller compares the count).
std::vector<ProbeError> match(const std::vector<ReplyLine>& replies, const Captures& captures) {
  std::vector<ProbeError> out;
  for (const ReplyLine& reply : replies) {
    const auto seq = static_cast<uint32_t>(reply.seq);
    const auto t1 = captures.sent.request_ns.find(seq);
    const auto t2 = captures.reflector.request_ns.find(seq);
    const auto t3 = captures.reflected.reply_ns.find(seq);
    const auto t4 = captures.sender.reply_ns.find(seq);
    if (t1 == captures.sent.request_ns.end() || t2 == captures.reflector.request_ns.end() ||
        t3 == captures.reflected.reply_ns.end() || t4 == captures.sender.reply_ns.end()) {
      continue;
    }
    const double turnaround_us = static_cast<double>(t3->second - t2->second) / 1000.0;
    const double wire_us = static_cast<double>(t4->second - t1->second) / 1000.0;
    out.push_back({seq, reply.rtt_ms * 1000.0, reply.turnaround_ms * 1000.0, wire_us - turnaround_us, turnaround_us});
  }
  return out;
}

class TestbedAccuracyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_BINARY();
    HUBPROBE_REQUIRE(tcpdump_missing_reason());
    HUBPROBE_REQUIRE(ethtool_missing_reason());
    ASSERT_EQ(access(linkemu_binary().c_str(), X_OK), 0)
        << linkemu_binary() << " is missing: build the hubprobe-linkemu target";
    link_ = std::make_unique<EmulatedLink>(dir_.path(), std::vector<std::string>{"--delay", "1.5ms"});
    s_ = &link_->sender();
    r_ = &link_->reflector();
    reflector_ = std::make_unique<Reflector>(*r_, std::vector<std::string>{"--listen", "198.18.0.2:862", "--stateful"},
                                             dir_.path(), "reflector");
  }

  void TearDown() override {
    // Processes first, then the namespaces (members are destroyed in reverse order anyway).
    reflector_.reset();
    link_.reset();
  }

  /// `set both delay=D` on the emulator's control socket.
  void set_delay(const std::string& delay) { ASSERT_NO_THROW(link_->set("both delay=" + delay)); }

  std::filesystem::path pcap(const PingRun& run, const std::string& dev) const {
    return dir_.path() / (run.label + "-" + dev + ".pcap");
  }

  /// tcpdump of the STAMP frames arriving at `dev` (-Q in: it never sits on a transmit path), once it
  /// says it listens or has exited. Without --immediate-mode it is not woken per frame either.
  std::unique_ptr<Process> start_capture(const PingRun& run, const Namespace& ns, const std::string& dev) {
    auto cap = std::make_unique<Process>(
        std::vector<std::string>{"tcpdump", "-i", dev, "-Q", "in", "-n", "-s", "128", "-U",
                                 "--time-stamp-precision=nano", "-w", pcap(run, dev).string(), "udp port 862"},
        ns.name(), dir_.path(), "tcpdump-" + run.label + "-" + dev);
    wait_until([&] { return listening(*cap) || !cap->running(); }, Seconds(5));
    return cap;
  }
  static bool listening(Process& cap) { return cap.stderr_text().find("listening on") != std::string::npos; }

  /// One run: warm-up, tcpdump on both veths, ping, then every probe against its capture truth.
  void measure(const PingRun& run) {
    // Warm-up at the run's interval: ARP through the emulator, and the reflector's send-path estimate
    // (the median of its last 32 replies) made of replies at this rate, as in a steady deployment.
    char interval[32];
    std::snprintf(interval, sizeof interval, "%g", run.interval_s);
    const CommandResult warm =
        run_hubprobe(*s_, {"ping", "-c", "32", "-i", interval, "-q", "--json", "198.18.0.2"}, Seconds(10));
    ASSERT_TRUE(warm.ok()) << warm.describe();

    // tcpdump -Q in on both ends of both veths: each STAMP timestamp against the RX stamp of the frame
    // where it arrives, with no capture on any transmit path.
    const std::pair<const Namespace*, std::string> where[] = {
        {s_, "hpv0"}, {&link_->backbone(), "bl0"}, {r_, "hpv1"}, {&link_->backbone(), "br0"}};
    std::vector<std::unique_ptr<Process>> caps;
    for (const auto& [ns, dev] : where) {
      caps.push_back(start_capture(run, *ns, dev));
      ASSERT_TRUE(listening(*caps.back()) && caps.back()->running()) << caps.back()->describe();
    }
    const CommandResult ping =
        run_hubprobe(*s_, {"ping", "-c", std::to_string(run.probes), "-i", interval, "198.18.0.2"},
                     Seconds(20 + run.probes * run.interval_s));
    // tcpdump without --immediate-mode takes frames from the kernel when its buffer times out (1 s).
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    for (const auto& cap : caps) cap->stop();
    ASSERT_TRUE(ping.ok()) << ping.describe();
    std::vector<std::string> malformed;
    const std::vector<ReplyLine> replies = parse_reply_lines(ping.out, &malformed);
    EXPECT_TRUE(malformed.empty()) << ping.describe();
    ASSERT_EQ(replies.size(), static_cast<size_t>(run.probes)) << ping.describe();

    const Captures captures{read_pcap(pcap(run, "hpv0")), read_pcap(pcap(run, "bl0")), read_pcap(pcap(run, "hpv1")),
                            read_pcap(pcap(run, "br0"))};
    const std::vector<ProbeError> errors = match(replies, captures);
    ASSERT_EQ(errors.size(), static_cast<size_t>(run.probes))
        << "probes matched on all four captures\n"
        << caps[0]->describe() << caps[1]->describe() << caps[2]->describe() << caps[3]->describe();
    judge(run, errors);
  }

  /// Reports one run's per-probe errors and asserts what holds on a loaded host (see the header).
  void judge(const PingRun& run, const std::vector<ProbeError>& errors) {
    std::vector<double> abs_error, signed_error, turnaround_error, sender_error, capture;
    for (const ProbeError& e : errors) {
      abs_error.push_back(std::fabs(e.error_us()));
      signed_error.push_back(e.error_us());
      turnaround_error.push_back(e.turnaround_error_us());
      sender_error.push_back(e.error_us() + e.turnaround_error_us());
      capture.push_back(e.capture_rtt_us);
    }
    const double abs_p50 = quantile(abs_error, 0.5);
    const double capture_min = *std::min_element(capture.begin(), capture.end());
    const double capture_p50 = quantile(capture, 0.5);
    char line[640];
    std::snprintf(
        line, sizeof line,
        "%s: nominal %.0f us, %d probes every %g s | per-probe error (hubprobe - capture RTT) p10 %+.1f "
        "p50 %+.1f p90 %+.1f us | |error| p50 %.1f p90 %.1f p99 %.1f max %.1f us | turnaround error "
        "p50 %+.1f p90 %+.1f us | sender T4-T1 error p50 %+.1f p90 %+.1f us | capture RTT min %.1f p50 %.1f us",
        run.label.c_str(), run.nominal_rtt_us, run.probes, run.interval_s, quantile(signed_error, 0.1),
        quantile(signed_error, 0.5), quantile(signed_error, 0.9), abs_p50, quantile(abs_error, 0.9),
        quantile(abs_error, 0.99), *std::max_element(abs_error.begin(), abs_error.end()),
        quantile(turnaround_error, 0.5), quantile(turnaround_error, 0.9), quantile(sender_error, 0.5),
        quantile(sender_error, 0.9), capture_min, capture_p50);
    std::printf("[ measured ] %s\n", line);
    RecordProperty(run.label, line);
    RecordProperty(run.label + "_abs_error_p50_us", std::to_string(abs_p50));
    RecordProperty(run.label + "_abs_error_p90_us", std::to_string(quantile(abs_error, 0.9)));

    EXPECT_LE(abs_p50, run.interval_s <= 0.01 ? kErrorP50BoundUs : kErrorP50BoundIdleUs) << line;
    EXPECT_GE(capture_min, run.nominal_rtt_us) << "the emulator is never early\n" << line;
    EXPECT_GE(capture_p50, run.nominal_rtt_us) << line;
    // Between frames 100 ms apart the emulator sleeps, and a loaded host wakes it late (capture p50 2.1 ms
    // over nominal beside two busy loops): its p50 is judged where frames come every 10 ms only.
    if (run.interval_s <= 0.01) {
      EXPECT_LT(capture_p50, run.nominal_rtt_us + kEmulatorSlackUs) << line;
    }
  }

  TempDir dir_;
  std::unique_ptr<EmulatedLink> link_;
  const Namespace* s_ = nullptr;
  const Namespace* r_ = nullptr;
  std::unique_ptr<Reflector> reflector_;
};

TEST_F(TestbedAccuracyTest, EveryProbesRttMatchesCaptureAt3msAnd20msAt10msAnd100msIntervals) {
  ASSERT_NO_FATAL_FAILURE(set_delay("1.5ms"));
  ASSERT_NO_FATAL_FAILURE(measure({"rtt3ms_10ms", 3000.0, 0.01, 200}));
  ASSERT_NO_FATAL_FAILURE(measure({"rtt3ms_100ms", 3000.0, 0.1, 60}));
  ASSERT_NO_FATAL_FAILURE(set_delay("10ms"));
  ASSERT_NO_FATAL_FAILURE(measure({"rtt20ms_10ms", 20000.0, 0.01, 200}));
  ASSERT_NO_FATAL_FAILURE(measure({"rtt20ms_100ms", 20000.0, 0.1, 60}));
}

}  // namespace
}  // namespace hubprobe::it
