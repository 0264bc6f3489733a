// SPDX-License-Identifier: Apache-2.0
// A link degraded while an agent runs shows in the agent's /metrics within its statistics window.
//
//   hpit<PID>-<N>s  hubprobed, 198.18.0.1 --veth-- [ linkemu, 10 ms each way ] --veth-- 198.18.0.2  hubprobe reflect
//
// hubprobed probes the reflector every 50 ms with a 10 s window (probe.window). The test reads
// /metrics every 100 ms: hubprobe_rtt_window_seconds{quantile="0.5"} is ~20 ms and stays below
// 20.5 ms until the window is full of replies; then the emulator adds 1 ms to the forward direction
// (`set ab delay=11ms`, RTT 21 ms) and the test times:
//  * the window turning over: the windowed minimum (quantile="0") rises above 20.5 ms only when the last
//    sample from before the change has left the window. The window is 12 slices, so it spans 9.2 to
//    10 s: asserted no earlier than 9.2 s - 0.3 s (scrape and slice rounding) and within window + 2 s.
//    The minimum is immune to the emulator's jitter (jitter only adds delay, every new RTT is >= 21 ms);
//  * detection: the windowed p50 crosses 20.5 ms (half way). A median follows the new value once more
//    than half of the window's samples lie above 20.5 ms. With a fraction q of the baseline samples
//    already above 20.5 ms that takes a new fraction (0.5 - q) / (1 - q) of the window: ~ window / 2 on
//    a quiet machine. Under load (ctest -j2) the emulator's delay spreads: q is bounded from the
//    baseline's own p90 and p99 and the earliest possible crossing asserted from it (less 0.5 s of
//    scrape and slice rounding); at most within window + 2 s;
//  * settling: p50 within [21.0 - 0.1, 21.0 + 0.4] ms, within window + 2 s;
//  * the step: p50 after - p50 before in [0.8, 1.2] ms (the RTT histogram resolves 0.4 % = 80 us at
//    20 ms: a 1 ms change at 20 ms is what the metrics must resolve, docs/design.md "The numbers").
// Takes ~ 23 s (a full window before the change, a window and a second after it).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "agent_support.h"
#include "emulated_link.h"

namespace hubprobe::it::agent {
namespace {

constexpr uint16_t kMetricsPort = 9862;
constexpr double kWindowS = 10.0;
constexpr double kSlackS = 2.0;

/// A windowed RTT quantile in ms (NaN when absent or the window is empty).
double quantile_ms(const std::vector<Sample>& m, const char* quantile) {
  return only_value(m, "hubprobe_rtt_window_seconds", {{"peer", "r-edge-01"}, {"quantile", quantile}}) * 1000.0;
}

class TestbedDegradationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_BINARY();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE(ethtool_missing_reason());
    ASSERT_EQ(access(linkemu_binary().c_str(), X_OK), 0)
        << linkemu_binary() << " is missing: build the hubprobe-linkemu target";
    link_ = std::make_unique<EmulatedLink>(dir_.path(), std::vector<std::string>{"--delay", "10ms"},
                                           /*static_neighbours=*/true);
    reflector_ = std::make_unique<Reflector>(link_->reflector(),
                                             std::vector<std::string>{"--listen", "198.18.0.2:862", "--stateful"},
                                             dir_.path(), "reflector");
    AgentFile f;
    f.id = "s-edge-01";
    f.hub = "s";
    f.metrics_listen = std::string(EmulatedLink::kSenderV4) + ":" + std::to_string(kMetricsPort);
    f.interval = "50ms";
    f.timeout = "1s";
    f.window = "10s";
    f.reflector = {"enabled = false"};
    f.peers.push_back({"r-edge-01", "r", EmulatedLink::kReflectorV4, {}});
    const auto config = dir_.write_file("agent.toml", f.toml());
    agent_ = std::make_unique<AgentProcess>(link_->sender(), config, EmulatedLink::kSenderV4, kMetricsPort, dir_.path(),
                                            "hubprobed");
  }

  void TearDown() override {
    agent_.reset();
    reflector_.reset();
    link_.reset();
  }

  double p50_ms() const { return quantile_ms(agent_->metrics(), "0.5"); }

  TempDir dir_;
  std::unique_ptr<EmulatedLink> link_;
  std::unique_ptr<Reflector> reflector_;
  std::unique_ptr<AgentProcess> agent_;
};

/// An upper bound on the fraction of the baseline's samples at or above `threshold` ms, from its quantiles.
double fraction_above_bound(const std::vector<Sample>& m, double threshold) {
  if (quantile_ms(m, "0.99") < threshold) return 0.01;
  if (quantile_ms(m, "0.9") < threshold) return 0.10;
  return 0.5;  // the p50 is below the threshold (asserted)
}

TEST_F(TestbedDegradationTest, OneMillisecondMoreShowsInTheWindowedP50WithinTheWindow) {
  constexpr double kThresholdMs = 20.5;
  constexpr double kSliceS = kWindowS / 12;
  constexpr double kBaselineSettleS = 2.0;
  // Baseline: from the first reply until the window is full (window + 0.5 s), readings all ~20 ms.
  ASSERT_TRUE(wait_until([&] { return std::isfinite(p50_ms()); }, Seconds(5), std::chrono::milliseconds(100)))
      << agent_->describe();
  std::vector<double> before;
  std::vector<Sample> baseline;
  const auto base_start = Clock::now();
  while (seconds_since(base_start) < kWindowS + 0.5) {
    baseline = agent_->metrics();
    // The first readings' window holds a handful of samples, which the agent's own start (or a loaded host)
    // can delay: the baseline is judged from the point the window holds 2 s of them (40 probes).
    if (seconds_since(base_start) >= kBaselineSettleS) before.push_back(quantile_ms(baseline, "0.5"));
    sleep_for(std::chrono::milliseconds(100));
  }
  double before_max = 0, before_last = before.back();
  for (double v : before) {
    EXPECT_GE(v, 20.0 - 0.1) << "baseline p50";
    before_max = std::max(before_max, v);
  }
  EXPECT_LT(before_max, kThresholdMs) << "the p50 moved before the change";
  const double q = fraction_above_bound(baseline, kThresholdMs);
  const double earliest_s = std::max(0.0, (0.5 - q) / (1 - q) * (kWindowS - kSliceS) - 0.5);
  const double baseline_p90 = quantile_ms(baseline, "0.9"), baseline_min = quantile_ms(baseline, "0");

  // The change, then readings every 100 ms until the p50 has settled on the new value and the minimum
  // has left the old one.
  link_->set("ab delay=11ms");
  const auto changed = Clock::now();
  double detected_s = NAN, settled_s = NAN, turned_s = NAN, after = NAN;
  std::vector<std::pair<double, double>> trace;  // (s since the change, p50 ms)
  while (seconds_since(changed) < kWindowS + kSlackS + 3.0) {
    const std::vector<Sample> m = agent_->metrics();
    const double v = quantile_ms(m, "0.5"), min = quantile_ms(m, "0");
    const double t = seconds_since(changed);
    trace.emplace_back(t, v);
    if (std::isnan(detected_s) && v >= kThresholdMs) detected_s = t;
    if (std::isnan(turned_s) && min >= kThresholdMs) turned_s = t;
    if (std::isnan(settled_s) && v >= 21.0 - 0.1 && v <= 21.0 + 0.4) settled_s = t;
    if (!std::isnan(settled_s) && t >= settled_s + 1.0 && std::isnan(after)) after = v;
    if (!std::isnan(after) && !std::isnan(turned_s)) break;
    sleep_for(std::chrono::milliseconds(100));
  }
  std::string trace_text;
  for (const auto& [t, v] : trace) {
    char buf[48];
    std::snprintf(buf, sizeof buf, " %.1fs:%.3f", t, v);
    trace_text += buf;
  }
  char line[400];
  std::snprintf(line, sizeof line,
                "p50 before %.3f ms (max %.3f, baseline min %.3f p90 %.3f); +1 ms forward: p50 crossed 20.5 ms "
                "after %.2f s (earliest possible %.2f s), settled at %.3f ms after %.2f s, minimum above 20.5 ms "
                "after %.2f s (window %.0f s)",
                before_last, before_max, baseline_min, baseline_p90, detected_s, earliest_s, after, settled_s, turned_s,
                kWindowS);
  std::printf("[ measured ] %s\n", line);
  RecordProperty("degradation", line);

  ASSERT_FALSE(std::isnan(detected_s)) << "the p50 never moved\n" << line << "\ntrace:" << trace_text;
  EXPECT_GE(detected_s, earliest_s) << "a windowed p50 follows only when half the window is above 20.5 ms\n"
                                    << line << "\ntrace:" << trace_text;
  EXPECT_LE(detected_s, kWindowS + kSlackS) << line << "\ntrace:" << trace_text;
  ASSERT_FALSE(std::isnan(turned_s)) << "the old samples never left the window\n" << line;
  EXPECT_GE(turned_s, kWindowS - kSliceS - 0.3) << "samples left the window early\n" << line;
  EXPECT_LE(turned_s, kWindowS + kSlackS) << line;
  ASSERT_FALSE(std::isnan(settled_s)) << "the p50 never settled near 21 ms\n" << line << "\ntrace:" << trace_text;
  EXPECT_LE(settled_s, kWindowS + kSlackS) << line << "\ntrace:" << trace_text;
  EXPECT_NEAR(after - before_last, 1.0, 0.2) << line << "\ntrace:" << trace_text;
}

}  // namespace
}  // namespace hubprobe::it::agent
