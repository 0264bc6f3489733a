// SPDX-License-Identifier: Apache-2.0
// Accuracy of `hubprobe ping` across an emulated WAN link, against capture truth.
//
//   hpit<PID>-<N>s  hpv0 198.18.0.1/24 --veth-- bl0 [ hpit<PID>-<N>b: hubprobe-linkemu --a bl0 --b br0 ]
//                                              br0 --veth-- hpv1 198.18.0.2/24  hpit<PID>-<N>r
//
// The emulator puts 1.5 ms and then 10 ms on each direction (3 ms / 20 ms RTT). `hubprobe ping -c 200
// -i 0.01 -q --json` runs in the sender namespace against `hubprobe reflect --stateful`, while tcpdump
// captures udp port 862 on the sender's veth (hpv0) and on the reflector's (hpv1), in their namespaces.
// Probes are matched by the Sender Sequence Number: UDP payload offset 0 of a request, offset 24 of an
// unauthenticated reflected packet (the Session-Sender Sequence Number, RFC 8762 4.3.1).
// hubprobe's RTT is (T4 - T1) - (T3 - T2) (docs/benchmarks.md): the reflector's turnaround is taken
// out. Capture truth per probe is the same on the wire:
//   (reply in - request out on hpv0) - (reply out - request in on hpv1).
//
// Asserted:
//  * |hubprobe p50 - capture p50| <= 20 us (and the same for min). Both are kernel software stamps
//    taken on the same host and clock: hubprobe's T1 is the SO_TIMESTAMPING software TX stamp, T4 / T2
//    the skb's RX software stamp (the very stamp tcpdump reports for an incoming frame); tcpdump stamps
//    an outgoing frame at the packet tap in dev_queue_xmit, next to the TX software stamp. What
//    separates them is the few-us stack path between the reflector's T3 (a clock read before sendmsg)
//    and its reply reaching the tap, so 20 us is a bound with margin for scheduling noise on a shared
//    2-vCPU VM, yet 150x below the 3 ms being measured.
//  * capture RTT p50 in [nominal, nominal + 400 us] (the emulator's own p50 error is 6-9 us per
//    direction and its test bounds it by 200 us, tests/linkemu/README.md), and capture min >= nominal:
//    the emulator is never early (it converts the frame's realtime stamp with a lower bound of
//    realtime - monotonic, so a preemption between its clock reads makes a frame late, not early;
//    before that fix it was seen 21 us early once in 17 runs on a loaded VM).
//  * no probe is lost and capture and report agree on the count.
// Takes ~ 5 s.

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
#include <nlohmann/json.hpp>
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

constexpr double kCaptureBoundUs = 20.0;  // |hubprobe - capture| on p50 and min
// Capture p50 - nominal RTT: 2 x the 200 us per-direction p50 bound of tests/linkemu.
constexpr double kEmulatorSlackUs = 400.0;
constexpr int kProbes = 200;

template <class F>
bool wait_until(F cond, Seconds timeout) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

/// Capture-truth RTTs (ns) from a nanosecond pcap taken on the sender's veth, keyed by sender sequence.
struct CaptureTruth {
  std::map<uint32_t, int64_t> request_ns, reply_ns;
  /// Reply time - request time per sequence number seen both ways (us).
  std::map<uint32_t, double> span_us() const {
    std::map<uint32_t, double> v;
    for (const auto& [seq, t_req] : request_ns) {
      const auto it = reply_ns.find(seq);
      if (it != reply_ns.end()) v.emplace(seq, static_cast<double>(it->second - t_req) / 1000.0);
    }
    return v;
  }
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

  /// One measurement: warm-up, tcpdump on hpv0, ping, compare. `nominal_rtt_us` is 2 x one-way delay.
  void measure(const std::string& label, double nominal_rtt_us) {
    // Warm-up: ARP through the emulator, so the measured run starts with a resolved neighbour.
    const CommandResult warm =
        run_hubprobe(*s_, {"ping", "-c", "2", "-i", "0.05", "-q", "--json", "198.18.0.2"}, Seconds(10));
    ASSERT_TRUE(warm.ok()) << warm.describe();

    // tcpdump on the sender's veth (request out, reply in) and on the reflector's (request in, reply out).
    auto start_capture = [&](const Namespace& ns, const std::string& dev) {
      const std::filesystem::path pcap = dir_.path() / (label + "-" + dev + ".pcap");
      auto cap = std::make_unique<Process>(
          std::vector<std::string>{"tcpdump", "-i", dev, "-n", "-s", "128", "-U", "--immediate-mode",
                                   "--time-stamp-precision=nano", "-w", pcap.string(), "udp port 862"},
          ns.name(), dir_.path(), "tcpdump-" + label + "-" + dev);
      return std::make_pair(std::move(cap), pcap);
    };
    auto [cap_s, pcap_s] = start_capture(*s_, "hpv0");
    auto [cap_r, pcap_r] = start_capture(*r_, "hpv1");
    for (Process* cap : {cap_s.get(), cap_r.get()}) {
      ASSERT_TRUE(wait_until(
          [&] { return cap->stderr_text().find("listening on") != std::string::npos || !cap->running(); }, Seconds(5)))
          << cap->describe();
      ASSERT_TRUE(cap->running()) << cap->describe();
    }

    const CommandResult ping = run_hubprobe(
        *s_, {"ping", "-c", std::to_string(kProbes), "-i", "0.01", "-q", "--json", "198.18.0.2"}, Seconds(30));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // last reply reaches the capture files
    cap_s->stop();
    cap_r->stop();
    ASSERT_TRUE(ping.ok()) << ping.describe();
    const JsonReport parsed = parse_report(ping.out);
    ASSERT_TRUE(parsed.ok) << parsed.error << "\n" << ping.describe();
    ASSERT_TRUE(report_well_formed(parsed.json)) << ping.describe();
    const nlohmann::json& rep = parsed.json;
    EXPECT_EQ(counter(rep, "sent"), kProbes) << rep.dump();
    EXPECT_EQ(counter(rep, "received"), kProbes) << rep.dump();

    // hubprobe's RTT is (T4 - T1) - (T3 - T2): the reflector's turnaround is taken out. The capture
    // truth is the same thing on the wire: sender-veth span minus reflector-veth span, per probe.
    const CaptureTruth truth_s = read_pcap(pcap_s);
    const CaptureTruth truth_r = read_pcap(pcap_r);
    const std::map<uint32_t, double> wire = truth_s.span_us();
    const std::map<uint32_t, double> turn = truth_r.span_us();
    std::vector<double> rtt, wire_rtt;
    for (const auto& [seq, w] : wire) {
      wire_rtt.push_back(w);
      if (const auto it = turn.find(seq); it != turn.end()) rtt.push_back(w - it->second);
    }
    ASSERT_EQ(rtt.size(), static_cast<size_t>(kProbes))
        << "sender veth: requests " << truth_s.request_ns.size() << " replies " << truth_s.reply_ns.size()
        << "; reflector veth: requests " << truth_r.request_ns.size() << " replies " << truth_r.reply_ns.size() << "\n"
        << cap_s->describe() << cap_r->describe();
    const double cap_min = *std::min_element(rtt.begin(), rtt.end());
    const double cap_p50 = quantile(rtt, 0.5);
    const double cap_p99 = quantile(rtt, 0.99);
    const double cap_max = *std::max_element(rtt.begin(), rtt.end());
    const double hp_min = number(rep, "rtt_us.min");
    const double hp_p50 = number(rep, "rtt_us.p50");
    const double hp_p99 = number(rep, "rtt_us.p99");
    const double hp_max = number(rep, "rtt_us.max");
    char line[640];
    std::snprintf(line, sizeof line,
                  "%s nominal %.0f us | capture min %.1f p50 %.1f p99 %.1f max %.1f | hubprobe min %.1f p50 %.1f "
                  "p99 %.1f max %.1f | hubprobe-capture: min %+.1f p50 %+.1f p99 %+.1f us | capture p50-nominal "
                  "%+.1f us | wire RTT incl. turnaround p50 %.1f us",
                  label.c_str(), nominal_rtt_us, cap_min, cap_p50, cap_p99, cap_max, hp_min, hp_p50, hp_p99, hp_max,
                  hp_min - cap_min, hp_p50 - cap_p50, hp_p99 - cap_p99, cap_p50 - nominal_rtt_us,
                  quantile(wire_rtt, 0.5));
    std::printf("%s\n", line);
    RecordProperty(label, line);

    EXPECT_NEAR(hp_p50, cap_p50, kCaptureBoundUs) << line;
    EXPECT_NEAR(hp_min, cap_min, kCaptureBoundUs) << line;
    EXPECT_GE(cap_min, nominal_rtt_us) << "the emulator is never early\n" << line;
    EXPECT_GE(cap_p50, nominal_rtt_us) << line;
    EXPECT_LT(cap_p50, nominal_rtt_us + kEmulatorSlackUs) << line;
    EXPECT_GE(hp_p50, nominal_rtt_us - kCaptureBoundUs) << line;
    EXPECT_LT(hp_p50, nominal_rtt_us + kEmulatorSlackUs + kCaptureBoundUs) << line;
  }

  TempDir dir_;
  std::unique_ptr<EmulatedLink> link_;
  const Namespace* s_ = nullptr;
  const Namespace* r_ = nullptr;
  std::unique_ptr<Reflector> reflector_;
};

TEST_F(TestbedAccuracyTest, RttMatchesCaptureAt3msAnd20ms) {
  ASSERT_NO_FATAL_FAILURE(set_delay("1.5ms"));
  ASSERT_NO_FATAL_FAILURE(measure("rtt3ms", 3000.0));
  ASSERT_NO_FATAL_FAILURE(set_delay("10ms"));
  ASSERT_NO_FATAL_FAILURE(measure("rtt20ms", 20000.0));
}

}  // namespace
}  // namespace hubprobe::it
