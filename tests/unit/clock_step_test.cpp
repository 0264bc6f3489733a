// SPDX-License-Identifier: Apache-2.0
// The wall clock is stepped (NTP, `date -s`) by +1 h or -1 h in the middle of a session. The probe engine,
// the windowed statistics and the path selector run on a simulated host whose wall clock jumps while its
// monotonic clock runs on; the link and the reflector (a remote host, whose clock does not move) are
// simulated in memory. Nothing may notice the step but the wire timestamps: no probe is lost but those the
// link drops (each declared one timeout after it left), no RTT sample is off, the windows keep their counts
// and the paths stay ok and preferred as they were.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <unordered_map>
#include <vector>

#include "hubprobe/path_selection.h"
#include "hubprobe/probe_engine.h"
#include "hubprobe/probe_outcome.h"
#include "hubprobe/session_reflector.h"
#include "hubprobe/window_stats.h"

namespace hubprobe {
namespace {

constexpr int64_t kUs = 1'000;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kHour = 3600 * kSecond;
constexpr int64_t kTick = 2 * kMs;  // the agent's probe thread
constexpr int64_t kInterval = 10 * kMs;
constexpr int64_t kTimeout = 1 * kSecond;
constexpr int64_t kWindow = 10 * kSecond;
constexpr int64_t kTxStampDelay = 3 * kUs;  // kernel TX stamp after the user-space send time
constexpr int64_t kTurnaround = 30 * kUs;
constexpr uint32_t kDropEvery = 50;  // the link drops every 50th probe of each path

// The host: a monotonic clock that only runs forward and a wall clock that can be stepped.
struct HostClock {
  MonoNs mono = 5'000 * kSecond;                        // since boot
  WallNs wall_offset = 1'764'000'000 * kSecond - mono;  // November 2025
  WallNs wall() const { return mono + wall_offset; }
  Now now() const { return Now{wall(), mono}; }
};

// The remote reflector's clock: never stepped.
WallNs reflector_wall(MonoNs mono) { return mono + 1'764'000'000 * kSecond - 5'000 * kSecond + 123 * kUs; }

// The RTT the link gives: both one-way delays, less the TX stamp's lag behind the user-space send time.
int64_t link_rtt(const std::string& id) { return (id == "fast" ? 20 * kMs : 24 * kMs) - kTxStampDelay; }

struct InFlight {
  MonoNs arrives = 0;
  std::vector<uint8_t> bytes;
  SocketAddress reflector;
  WallNs rx_wall = 0;  // T4, stamped when it reaches the host
};

// A port whose link goes to simulated reflectors: one-way delay by destination, every kDropEvery-th probe
// dropped on the way out, T4 stamped by the host's wall clock when the reply arrives.
class SimulatedPort : public dp::Port {
 public:
  SimulatedPort(const HostClock& clock, std::unordered_map<SocketAddress, int64_t> one_way)
      : clock_(clock), one_way_(std::move(one_way)) {}

  Result<size_t> send(std::span<dp::TxPacket> batch) override {
    for (dp::TxPacket& packet : batch) {
      packet.tx_id = next_tx_id_++;
      packet.sent_at = {clock_.wall(), dp::TimestampSource::kUser};
      packet.error = 0;
      tx_stamps_.push_back({packet.tx_id, {clock_.wall() + kTxStampDelay, dp::TimestampSource::kKernelSoftware}});
      if (++sent_to_[packet.destination] % kDropEvery == 0) {
        dropped_at.push_back(clock_.mono);
        continue;
      }
      to_reflector_.push_back({clock_.mono + one_way_.at(packet.destination),
                               std::vector<uint8_t>(packet.data, packet.data + packet.length), packet.destination});
    }
    return batch.size();
  }

  Result<size_t> receive(std::span<dp::RxPacket> batch) override {
    size_t n = 0;
    while (n < batch.size() && !arrived_.empty()) {
      InFlight& reply = arrived_.front();
      dp::RxPacket& rx = batch[n++];
      std::copy(reply.bytes.begin(), reply.bytes.end(), rx.data);
      rx.length = static_cast<uint32_t>(reply.bytes.size());
      rx.truncated = false;
      rx.source = reply.reflector;
      rx.destination = kLocal;
      rx.ttl = 60;
      rx.rx = {reply.rx_wall, dp::TimestampSource::kKernelSoftware};
      arrived_.pop_front();
    }
    return n;
  }

  size_t drain_tx_timestamps(std::span<dp::TxTimestamp> out) override {
    const size_t n = std::min(out.size(), tx_stamps_.size());
    std::copy_n(tx_stamps_.begin(), n, out.begin());
    tx_stamps_.erase(tx_stamps_.begin(), tx_stamps_.begin() + static_cast<ptrdiff_t>(n));
    return n;
  }

  int poll_fd() const override { return -1; }
  // Kernel-style stamps on the host's (stepping) wall clock, driven by the test: busy-polled.
  dp::PortCapabilities capabilities() const override {
    dp::PortCapabilities capabilities;
    capabilities.rx_source = dp::TimestampSource::kKernelSoftware;
    capabilities.tx_source = dp::TimestampSource::kKernelSoftware;
    capabilities.wait = dp::WaitKind::kBusyPoll;
    return capabilities;
  }
  SocketAddress local_address() const override { return kLocal; }
  const dp::PortCounters& counters() const override { return counters_; }

  // Moves the link on to the host's current time: requests reach their reflector, replies reach the host.
  void advance(stamp::SessionReflector& reflector) {
    while (!to_reflector_.empty() && to_reflector_.front().arrives <= clock_.mono) {
      InFlight request = std::move(to_reflector_.front());
      to_reflector_.pop_front();
      dp::RxPacket rx;
      rx.data = request.bytes.data();
      rx.capacity = static_cast<uint32_t>(request.bytes.size());
      rx.length = rx.capacity;
      rx.source = kLocal;
      rx.destination = request.reflector;
      rx.ttl = 60;
      rx.rx = {reflector_wall(request.arrives), dp::TimestampSource::kKernelSoftware};
      std::vector<uint8_t> reply(std::max<size_t>(request.bytes.size(), 44));
      dp::TxPacket out;
      const WallNs t3 = reflector_wall(request.arrives + kTurnaround);
      if (!reflector.reflect_at(rx, reply, ClockState{}, Now{t3, request.arrives + kTurnaround}, out)) continue;
      reply.resize(out.length);
      to_host_.push_back(
          {request.arrives + kTurnaround + one_way_.at(request.reflector), std::move(reply), request.reflector});
    }
    while (!to_host_.empty() && to_host_.front().arrives <= clock_.mono) {
      InFlight reply = std::move(to_host_.front());
      to_host_.pop_front();
      reply.rx_wall = reply.arrives + clock_.wall_offset;  // the kernel's RX stamp, on the wall clock of now
      arrived_.push_back(std::move(reply));
    }
  }

  std::vector<MonoNs> dropped_at;  // when the link dropped a probe
  static inline const SocketAddress kLocal = *SocketAddress::parse("198.18.0.1:40000", 0);

 private:
  const HostClock& clock_;
  std::unordered_map<SocketAddress, int64_t> one_way_;
  uint32_t next_tx_id_ = 1;
  std::unordered_map<SocketAddress, uint32_t> sent_to_;
  std::vector<dp::TxTimestamp> tx_stamps_;
  std::deque<InFlight> to_reflector_, to_host_, arrived_;
  dp::PortCounters counters_;
};

class SimulatedDataplane : public dp::Dataplane {
 public:
  SimulatedDataplane(const HostClock& clock, std::unordered_map<SocketAddress, int64_t> one_way)
      : clock_(clock), one_way_(std::move(one_way)) {}
  std::string_view name() const override { return "simulated"; }
  Result<std::unique_ptr<dp::Port>> open_port(const dp::PortOptions&) override {
    auto port = std::make_unique<SimulatedPort>(clock_, one_way_);
    ports.push_back(port.get());
    return std::unique_ptr<dp::Port>(std::move(port));
  }
  std::vector<SimulatedPort*> ports;

 private:
  const HostClock& clock_;
  std::unordered_map<SocketAddress, int64_t> one_way_;
};

// What the agent does with the engine's events (agent/daemon): windowed statistics per session, one path
// selector.
struct Session {
  explicit Session(WindowOptions options) : stats(std::move(options)) {}
  WindowedStats stats;
  std::map<uint32_t, MonoNs> sent_at;  // by seq, on the host's monotonic clock (the test's own record)
  std::vector<int64_t> loss_delays;    // from sending to the loss being declared, monotonic
  uint64_t replies = 0;
};

struct AgentModel : ProbeListener {
  explicit AgentModel(const HostClock& host_clock) : clock(host_clock), selector(sla()) {}
  static SlaClass sla() {
    SlaClass sla;
    sla.window_ns = kWindow;
    return sla;
  }
  static WindowOptions window() {
    WindowOptions options;
    options.window_ns = kWindow;
    options.slices = 10;
    return options;
  }
  void add(const std::string& id) {
    sessions.emplace(id, Session(window()));
    selector.add_candidate(id, id, "p", kInterval);
  }

  void on_probe_sent(const std::string& id, uint32_t seq, const Now& now) override {
    Session& s = sessions.at(id);
    s.sent_at[seq] = clock.mono;
    s.stats.on_sent(seq, now.mono);
  }
  void on_probe_event(const std::string& id, const stamp::ProbeEvent& event, const Now& now) override {
    Session& s = sessions.at(id);
    // As the agent does: the statistics, then the selector (no clock-stepped reply) and the peer state.
    record_probe_event(s.stats, &selector, id, event, now);
    if (event.kind == stamp::ProbeEvent::Kind::kReply) {
      ++s.replies;
    } else if (event.kind == stamp::ProbeEvent::Kind::kLost) {
      s.loss_delays.push_back(clock.mono - s.sent_at.at(event.seq));
    }
  }

  const HostClock& clock;
  std::map<std::string, Session> sessions;
  PathSelector selector;
};

struct Scenario {
  HostClock clock;
  std::shared_ptr<SimulatedDataplane> dataplane;
  stamp::SessionReflector reflector{[] {
    stamp::ReflectorOptions options;
    options.stateful = true;
    return options;
  }()};
  ProbeEngine engine;
  AgentModel agent{clock};
  std::vector<std::string> problems;  // what the once-a-second checks found, with the time

  Scenario()
      : dataplane(std::make_shared<SimulatedDataplane>(
            clock, std::unordered_map<SocketAddress, int64_t>{{*SocketAddress::parse("198.18.0.2:862", 0), 10 * kMs},
                                                              {*SocketAddress::parse("198.18.0.3:862", 0), 12 * kMs}})),
        engine(dataplane) {
    for (const auto& [id, target] : {std::pair{"fast", "198.18.0.2:862"}, std::pair{"slow", "198.18.0.3:862"}}) {
      SessionSpec spec;
      spec.id = id;
      spec.target = *SocketAddress::parse(target, 0);
      spec.interval_ns = kInterval;
      spec.timeout_ns = kTimeout;
      EXPECT_TRUE(engine.add_session(spec, std::string(id) == "fast" ? 1 * kMs : 6 * kMs, clock.mono).ok());
      agent.add(id);
    }
  }

  // Runs for `duration` in 1 ms steps: the link every step, a probe tick every 2 ms, and once a second
  // what the publisher and /metrics do, checked against what the link did.
  void run(int64_t duration) {
    const MonoNs end = clock.mono + duration;
    while (clock.mono < end) {
      clock.mono += kMs;
      for (SimulatedPort* port : dataplane->ports) port->advance(reflector);
      if (clock.mono % kTick == 0) engine.run_tick(clock.now(), ClockState{}, agent);
      if (clock.mono % kSecond == 0) check_second();
    }
  }

  void check_second() {
    agent.selector.evaluate(clock.now());
    elapsed_ += kSecond;
    if (elapsed_ <= kWindow + kSecond) return;  // windows filling
    const std::string at = "at " + std::to_string(elapsed_ / kSecond) + " s: ";
    for (auto& [id, session] : agent.sessions) {
      const StatsSnapshot s = session.stats.snapshot(clock.mono);
      // 10 s of probes every 10 ms is 1000; the oldest slice may have left (900).
      if (s.window.sent < 900 || s.window.sent > 1001) {
        problems.push_back(at + id + ": window holds " + std::to_string(s.window.sent) + " probes sent");
      }
      if (s.window.lost > s.window.sent / kDropEvery + 1) {
        problems.push_back(at + id + ": window holds " + std::to_string(s.window.lost) + " lost");
      }
      if (s.rtt.count + 25 < s.window.sent) {
        problems.push_back(at + id + ": window holds " + std::to_string(s.rtt.count) + " RTT samples");
      }
      // Every RTT sample in the window is the link's (turnaround subtracted; histogram precision 0.4 %).
      const double rtt_s = static_cast<double>(link_rtt(id)) * 1e-9;
      if (s.rtt.min_s < rtt_s * 0.99 || s.rtt.max_s > rtt_s * 1.01) {
        problems.push_back(at + id + ": window RTT " + std::to_string(s.rtt.min_s * 1e3) + " .. " +
                           std::to_string(s.rtt.max_s * 1e3) + " ms");
      }
      if (s.state != PeerState::kUp) problems.push_back(at + id + ": peer " + to_string(s.state));
    }
    for (const CandidateView& view : agent.selector.ranked()) {
      if (view.state != PathState::kOk) problems.push_back(at + view.id + ": path " + to_string(view.state));
      const double rtt_s = static_cast<double>(link_rtt(view.id)) * 1e-9;
      if (!(std::abs(view.delay_rt_s - rtt_s) < rtt_s * 0.01 && std::abs(view.rtt_p99_s - rtt_s) < rtt_s * 0.01)) {
        problems.push_back(at + view.id + ": delay-rt " + std::to_string(view.delay_rt_s * 1e3) + " ms, p99 " +
                           std::to_string(view.rtt_p99_s * 1e3) + " ms");
      }
      if (view.samples < 800) {
        problems.push_back(at + view.id + ": SLA window holds " + std::to_string(view.samples) + " replies");
      }
    }
    if (agent.selector.preferred() != "fast") problems.push_back(at + "preferred " + agent.selector.preferred());
  }

  int64_t elapsed_ = 0;
};

std::string list(const std::vector<std::string>& lines, size_t at_most = 200) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < at_most; ++i) out += "  " + lines[i] + "\n";
  if (lines.size() > at_most) out += "  ... " + std::to_string(lines.size() - at_most) + " more\n";
  return out;
}

void expect_nothing_noticed_the_step(Scenario& scenario) {
  EXPECT_TRUE(scenario.problems.empty()) << list(scenario.problems);
  // Every dropped probe is declared lost one timeout later: all but those of the last timeout.
  uint64_t dropped = 0, due = 0;
  for (SimulatedPort* port : scenario.dataplane->ports) {
    dropped += port->dropped_at.size();
    due += std::count_if(port->dropped_at.begin(), port->dropped_at.end(),
                         [&](MonoNs at) { return at + kTimeout <= scenario.clock.mono; });
  }
  uint64_t lost = 0, late = 0, stepped = 0;
  for (auto& [id, session] : scenario.agent.sessions) {
    const stamp::SenderCounters& c = *scenario.engine.sender_counters(id);
    lost += c.lost;
    late += c.late;
    // Every loss was declared one timeout after the probe left (within a tick), never earlier or later.
    for (const int64_t delay : session.loss_delays) {
      EXPECT_GE(delay, kTimeout) << id;
      EXPECT_LE(delay, kTimeout + kTick) << id;
    }
    const StatsSnapshot s = session.stats.snapshot(scenario.clock.mono);
    // The replies in flight across the step are answered, counted, and their delays left out.
    stepped += c.clock_stepped;
    EXPECT_LE(c.clock_stepped, 3u) << id << ": more replies than were in flight";
    EXPECT_EQ(s.totals.received, c.received) << id;
    EXPECT_EQ(session.replies, c.received) << id;
    EXPECT_EQ(s.down_transitions, 0u) << id;
    EXPECT_EQ(s.totals.lost, c.lost) << id;
  }
  EXPECT_LE(lost, dropped);
  EXPECT_EQ(lost, due);
  EXPECT_EQ(late, 0u);
  EXPECT_GE(stepped, 1u) << "no reply was in flight across the step: the test tests nothing";
  EXPECT_EQ(scenario.agent.selector.switches(), 0u);
}

TEST(WallClockStep, ForwardOneHourMidSessionNoticedByNothing) {
  Scenario scenario;
  scenario.run(15 * kSecond);
  scenario.clock.wall_offset += kHour;
  scenario.run(15 * kSecond);
  expect_nothing_noticed_the_step(scenario);
}

TEST(WallClockStep, BackOneHourMidSessionNoticedByNothing) {
  Scenario scenario;
  scenario.run(15 * kSecond);
  scenario.clock.wall_offset -= kHour;
  scenario.run(15 * kSecond);
  expect_nothing_noticed_the_step(scenario);
}

// A count-limited session (hubprobe ping -c) across a step: the probes leave one interval apart, all of
// them and no more, and the session finishes once the last one is answered, not an hour early or late.
void expect_count_limited_session_unmoved_by(int64_t step) {
  HostClock clock;
  const SocketAddress target = *SocketAddress::parse("198.18.0.2:862", 0);
  auto dataplane =
      std::make_shared<SimulatedDataplane>(clock, std::unordered_map<SocketAddress, int64_t>{{target, 10 * kMs}});
  stamp::SessionReflector reflector{stamp::ReflectorOptions{}};
  ProbeEngine engine(dataplane);
  SessionSpec spec;
  spec.id = "ping";
  spec.target = target;
  spec.interval_ns = kInterval;
  spec.timeout_ns = kTimeout;
  spec.count = 300;
  ASSERT_TRUE(engine.add_session(spec, 0, clock.mono).ok());

  struct Listener : ProbeListener {
    explicit Listener(const HostClock& host_clock) : clock(host_clock) {}
    void on_probe_sent(const std::string&, uint32_t, const Now& now) override { sent_at.push_back(now.mono); }
    void on_probe_event(const std::string&, const stamp::ProbeEvent& event, const Now&) override {
      if (event.kind == stamp::ProbeEvent::Kind::kReply) ++replies;
      if (event.kind == stamp::ProbeEvent::Kind::kLost) ++lost;
      last_event_at = clock.mono;
    }
    const HostClock& clock;
    std::vector<MonoNs> sent_at;
    uint64_t replies = 0, lost = 0;
    MonoNs last_event_at = 0;
  } listener(clock);

  const MonoNs start = clock.mono;
  bool stepped = false;
  while (!engine.finished("ping") && clock.mono - start < 10 * kSecond) {
    clock.mono += kMs;
    if (!stepped && clock.mono - start >= spec.interval_ns * 150) {
      clock.wall_offset += step;
      stepped = true;
    }
    for (SimulatedPort* port : dataplane->ports) port->advance(reflector);
    if (clock.mono % kTick == 0) engine.run_tick(clock.now(), ClockState{}, listener);
  }
  ASSERT_TRUE(engine.finished("ping")) << "still running after 10 s";
  ASSERT_EQ(listener.sent_at.size(), spec.count);
  for (size_t i = 1; i < listener.sent_at.size(); ++i) {
    const int64_t gap = listener.sent_at[i] - listener.sent_at[i - 1];
    EXPECT_GE(gap, kInterval - kTick) << "probe " << i;
    EXPECT_LE(gap, kInterval + kTick) << "probe " << i;
  }
  const stamp::SenderCounters& c = *engine.sender_counters("ping");
  EXPECT_EQ(listener.replies + listener.lost, spec.count);
  EXPECT_EQ(listener.lost, spec.count / kDropEvery) << "only the link's drops are lost";
  EXPECT_GE(c.clock_stepped, 1u) << "no reply was in flight across the step: the test tests nothing";
  // The last event is the loss of the last dropped probe (number 300), one timeout after it left.
  EXPECT_GE(listener.last_event_at - listener.sent_at.back(), kTimeout);
  EXPECT_LE(listener.last_event_at - listener.sent_at.back(), kTimeout + kTick);
}

TEST(WallClockStep, CountLimitedSessionForwardOneHour) { expect_count_limited_session_unmoved_by(kHour); }

TEST(WallClockStep, CountLimitedSessionBackOneHour) { expect_count_limited_session_unmoved_by(-kHour); }

}  // namespace
}  // namespace hubprobe
