// SPDX-License-Identifier: Apache-2.0
// The probe engine over scripted ports: a busy-polled port without TX stamps, in a clock of its own.
// The test carries the probes to a SessionReflector and the replies back on an exact timeline, and the
// engine must turn every stamp of the port into wall time and complete replies without waiting for TX
// stamps that never come.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "hubprobe/probe_engine.h"
#include "hubprobe/session_reflector.h"
#include "scripted_dataplane.h"

namespace hubprobe {
namespace {

constexpr WallNs kBase = 1'764'000'000'000'000'000;  // November 2025, in ns since 1970
constexpr WallNs kUs = 1'000;
constexpr WallNs kMs = 1'000'000;

const SocketAddress kLocal = *SocketAddress::parse("198.18.0.1:40000", 862);
const SocketAddress kTarget = *SocketAddress::parse("198.18.0.2:862", 862);
const ClockState kClock{true, 1e-6, 37};

// The engine's time: no clock step in these timelines, so one value serves as wall and monotonic time.
Now both(WallNs t) { return Now{t, t}; }

struct Recorder : ProbeListener {
  std::map<std::string, std::vector<stamp::ProbeEvent>> events;
  std::vector<uint32_t> sent;
  void on_probe_sent(const std::string&, uint32_t seq, const Now&) override { sent.push_back(seq); }
  void on_probe_event(const std::string& id, const stamp::ProbeEvent& event, const Now&) override {
    events[id].push_back(event);
  }
};

class ProbeEngineOverScriptedPorts : public ::testing::Test {
 protected:
  ProbeEngineOverScriptedPorts()
      : dataplane_(std::make_shared<test::ScriptedDataplane>(dp::ScriptedClock(kBase - 7 * kMs, 100), kLocal)),
        engine_(dataplane_) {}

  static SessionSpec spec(const std::string& id) {
    SessionSpec s;
    s.id = id;
    s.target = kTarget;
    s.format = TimestampFormat::kPtp;  // exact to the ns, so RTTs equal the timeline exactly
    s.interval_ns = 100 * kMs;
    s.timeout_ns = 1'000 * kMs;
    s.count = 1;
    return s;
  }
  dp::ScriptedPort& port() { return *dataplane_->ports.at(0); }
  // One engine tick at wall time `t`, the port's clock reading the same instant.
  StepResult tick(WallNs t) {
    port().clock().set(port().clock().at_wall(t));
    return engine_.run_tick(both(t), kClock, recorder_);
  }
  // Reflects what the port sent: request i arrives at t2[i], is answered at t3[i], and the reply is back
  // at t4[i].
  void reflect(const std::vector<WallNs>& t2, const std::vector<WallNs>& t3, const std::vector<WallNs>& t4) {
    const std::vector<dp::SentPacket> sent = port().take_sent();
    ASSERT_EQ(sent.size(), t2.size());
    for (size_t i = 0; i < sent.size(); ++i) {
      std::vector<uint8_t> request = sent[i].data, reply(std::max<size_t>(request.size(), 44));
      dp::RxPacket rx;
      rx.data = request.data();
      rx.capacity = rx.length = static_cast<uint32_t>(request.size());
      rx.source = kLocal;
      rx.destination = sent[i].destination;
      rx.rx = {t2[i], dp::TimestampSource::kHardware};
      dp::TxPacket out;
      ASSERT_TRUE(reflector_.reflect_at(rx, reply, kClock, both(t3[i]), out));
      dp::ScriptedPacket back;
      back.data.assign(reply.begin(), reply.begin() + out.length);
      back.source = kTarget;
      back.arrival = port().clock().at_wall(t4[i]);
      port().deliver(std::move(back));
    }
  }

  std::shared_ptr<test::ScriptedDataplane> dataplane_;
  ProbeEngine engine_;
  stamp::SessionReflector reflector_{[] {
    stamp::ReflectorOptions options;
    options.format = TimestampFormat::kPtp;
    return options;
  }()};
  Recorder recorder_;
};

TEST_F(ProbeEngineOverScriptedPorts, ReplyCompletesInTheTickThatCollectsItWithTheTimelinesRtt) {
  ASSERT_TRUE(engine_.add_session(spec("a"), 0, kBase).ok());
  ASSERT_EQ(dataplane_->ports.size(), 1u);
  ASSERT_FALSE(port().capabilities().tx_timestamps());
  tick(kBase);
  ASSERT_EQ(recorder_.sent, std::vector<uint32_t>{0});
  reflect({kBase + 10 * kUs}, {kBase + 30 * kUs}, {kBase + 50 * kUs});

  // Collected 10 µs after it arrived: its event comes in this very tick, not after a 20 ms grace.
  tick(kBase + 60 * kUs);
  ASSERT_EQ(recorder_.events["a"].size(), 1u);
  const stamp::ProbeEvent& event = recorder_.events["a"][0];
  ASSERT_EQ(event.kind, stamp::ProbeEvent::Kind::kReply);
  EXPECT_EQ(event.sample.t1.ns, kBase);  // the send time, read from the port's clock as wall time
  EXPECT_EQ(event.sample.t1.source, dp::TimestampSource::kUser);
  EXPECT_EQ(event.sample.t4.ns, kBase + 50 * kUs);  // the port's RX stamp as wall time
  EXPECT_EQ(event.sample.t4.source, dp::TimestampSource::kHardware);
  EXPECT_EQ(event.sample.t2, kBase + 10 * kUs);
  EXPECT_EQ(event.sample.t3, kBase + 30 * kUs);
  EXPECT_EQ(event.sample.rtt_ns(), 30 * kUs);
  EXPECT_EQ(event.sample.forward_ns(), 10 * kUs);
  EXPECT_EQ(event.sample.backward_ns(), 20 * kUs);
  // Without TX stamps the send time is T1 by design: no fallback counted, nothing left to match.
  EXPECT_EQ(engine_.sender_counters("a")->t1_user_fallback, 0u);
  EXPECT_EQ(engine_.sender_counters("a")->received, 1u);
  EXPECT_TRUE(engine_.finished("a"));
}

TEST_F(ProbeEngineOverScriptedPorts, LossIsReportedOnceTheTimeoutPasses) {
  ASSERT_TRUE(engine_.add_session(spec("a"), 0, kBase).ok());
  const StepResult sent = tick(kBase);
  EXPECT_EQ(sent.work, 1u);
  // Its only probe sent, the step's next timed work is that probe's timeout: a loop sleeps until then.
  EXPECT_EQ(sent.next_deadline, kBase + 1'000 * kMs);
  port().take_sent();  // dropped on the way
  tick(kBase + 999 * kMs);
  EXPECT_TRUE(recorder_.events["a"].empty());
  EXPECT_EQ(tick(kBase + 1'000 * kMs).next_deadline, StepResult::kNever) << "nothing left to do";
  ASSERT_EQ(recorder_.events["a"].size(), 1u);
  EXPECT_EQ(recorder_.events["a"][0].kind, stamp::ProbeEvent::Kind::kLost);
  EXPECT_EQ(recorder_.events["a"][0].seq, 0u);
  EXPECT_EQ(engine_.sender_counters("a")->lost, 1u);
}

TEST_F(ProbeEngineOverScriptedPorts, TwoSessionsOnOnePortGetTheirOwnRepliesBySsid) {
  ASSERT_TRUE(engine_.add_session(spec("a"), 0, kBase).ok());
  SessionSpec b = spec("b");
  b.dscp = 46;  // another session to the same target, on the same port
  ASSERT_TRUE(engine_.add_session(b, 0, kBase).ok());
  ASSERT_EQ(dataplane_->ports.size(), 1u);
  tick(kBase);
  ASSERT_EQ(recorder_.sent.size(), 2u);
  // Sessions are kept by id, so "a" sent first. "b"'s reply comes back first, with another RTT.
  reflect({kBase + 10 * kUs, kBase + 10 * kUs}, {kBase + 30 * kUs, kBase + 20 * kUs},
          {kBase + 90 * kUs, kBase + 40 * kUs});
  tick(kBase + 100 * kUs);

  ASSERT_EQ(recorder_.events["a"].size(), 1u);
  ASSERT_EQ(recorder_.events["b"].size(), 1u);
  EXPECT_EQ(recorder_.events["a"][0].sample.rtt_ns(), 70 * kUs);
  EXPECT_EQ(recorder_.events["b"][0].sample.rtt_ns(), 30 * kUs);
  EXPECT_EQ(engine_.counters().unmatched_replies, 0u);
  EXPECT_EQ(engine_.sender_counters("a")->invalid_wrong_session, 0u);
  EXPECT_EQ(engine_.sender_counters("b")->invalid_wrong_session, 0u);
  EXPECT_NE(engine_.sender("a")->options().ssid, engine_.sender("b")->options().ssid);
}

}  // namespace
}  // namespace hubprobe
