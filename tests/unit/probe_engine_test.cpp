// SPDX-License-Identifier: Apache-2.0
// The agent's probe engine against a reflector, on every backend of the tests (engine_backends.h): the
// kernel on loopback (no privileges) and scripted ports. Several sessions share one port, replies are
// demultiplexed by SSID, every probe ends as exactly one event, and a reload's change is whole or nothing.
#include "hubprobe/probe_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <map>

#include "engine_backends.h"

namespace hubprobe {
namespace {

using test::BackendKind;

struct Recorder : ProbeListener {
  std::map<std::string, std::vector<uint32_t>> sent;
  std::map<std::string, std::vector<stamp::ProbeEvent>> events;
  std::map<std::string, std::vector<std::pair<uint32_t, Error>>> send_failures;
  // Per reply: the monotonic time from the tick that sent the probe to the end of the tick that read the
  // reply (filled in by tick_done()). T1 and T4 lie in between, so the RTT can be no longer.
  std::map<std::string, std::map<uint32_t, MonoNs>> sent_at;
  std::map<std::string, std::vector<int64_t>> reply_elapsed;
  std::vector<std::pair<std::string, MonoNs>> this_tick;  // (session, sent_at) of this tick's replies

  void on_probe_sent(const std::string& id, uint32_t seq, const Now& now) override {
    sent[id].push_back(seq);
    sent_at[id][seq] = now.mono;
  }
  void on_probe_event(const std::string& id, const stamp::ProbeEvent& e, const Now&) override {
    events[id].push_back(e);
    if (e.kind == stamp::ProbeEvent::Kind::kReply) this_tick.emplace_back(id, sent_at[id].at(e.seq));
  }
  void on_send_failed(const std::string& id, uint32_t seq, const Error& error) override {
    send_failures[id].emplace_back(seq, error);
  }
  void tick_done(MonoNs end) {
    for (const auto& [id, sent_mono] : this_tick) reply_elapsed[id].push_back(end - sent_mono);
    this_tick.clear();
  }
};

class ProbeEngineTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  /// The far side's reflector, stateful unless a test asks otherwise.
  test::TestBackend& backend(bool stateful = true) {
    if (!backend_) backend_ = test::make_backend(GetParam(), stateful);
    return *backend_;
  }
  /// Ticks the engine at the backend's time and lets the reflector answer, every `step_ns`, for `ns`.
  void run_for(ProbeEngine& engine, Recorder& recorder, int64_t ns, int64_t step_ns = 1'000'000, int drop_every = 0) {
    test::TestBackend& b = backend();
    const MonoNs start = b.now().mono;
    while (b.now().mono - start < ns) {
      engine.run_tick(b.now(), ClockState{}, recorder);
      recorder.tick_done(b.now().mono);
      b.serve(drop_every);
      b.pass(step_ns);
    }
  }
  SessionSpec spec_to_reflector(const std::string& id) {
    SessionSpec spec;
    spec.id = id;
    spec.target = backend().reflector_address();
    return spec;
  }
  /// A source address on the backend's host with a fixed port.
  SocketAddress source_at(uint16_t port) {
    SocketAddress source = backend().local_host();
    source.set_port(port);
    return source;
  }
  std::shared_ptr<dp::Dataplane> dataplane() { return backend().dataplane(); }

  std::unique_ptr<test::TestBackend> backend_;
};

INSTANTIATE_TEST_SUITE_P(Backends, ProbeEngineTest, ::testing::Values(BackendKind::kKernel, BackendKind::kScripted),
                         test::backend_name);

TEST_P(ProbeEngineTest, SessionsShareAPortAndGetTheirOwnReplies) {
  ProbeEngine engine(dataplane());
  const MonoNs start = backend().now().mono;
  for (int i = 0; i < 3; ++i) {
    SessionSpec spec = spec_to_reflector("peer" + std::to_string(i));
    spec.interval_ns = 10'000'000;
    spec.timeout_ns = 200'000'000;
    spec.packet_size = static_cast<uint32_t>(44 + 8 * i);  // tells the sessions' replies apart
    ASSERT_TRUE(engine.add_session(spec, static_cast<uint64_t>(i) * 3'000'000, start).ok());
  }
  EXPECT_EQ(engine.session_count(), 3u);
  EXPECT_FALSE(engine.add_session(*engine.spec("peer0"), 0, start).ok());  // duplicate id

  Recorder recorder;
  run_for(engine, recorder, 300'000'000, 2'000'000);
  for (int i = 0; i < 3; ++i) {
    const std::string id = "peer" + std::to_string(i);
    const auto& sent = recorder.sent[id];
    ASSERT_GE(sent.size(), 20u) << id;
    size_t replies = 0;
    for (const auto& e : recorder.events[id]) {
      if (e.kind != stamp::ProbeEvent::Kind::kReply) continue;
      // Positive, and no longer than the time between sending and reading it (however loaded the host).
      EXPECT_EQ(e.sample.length, 44u + 8u * static_cast<unsigned>(i)) << id;
      EXPECT_GT(e.sample.rtt_ns(), 0) << id;
      EXPECT_LE(e.sample.rtt_ns(), recorder.reply_elapsed[id].at(replies)) << id;
      EXPECT_FALSE(e.sample.clock_stepped) << id;
      ++replies;
    }
    // All but the probes of the last few ticks are answered already.
    EXPECT_GE(replies + 3, sent.size()) << id;
    EXPECT_EQ(engine.sender_counters(id)->invalid, 0u) << id;
  }
  EXPECT_EQ(engine.counters().unmatched_replies, 0u);
  // Probes are spread: the three sessions did not start in the same tick.
  EXPECT_GT(engine.counters().send_batches, recorder.sent["peer0"].size());

  engine.remove_session("peer1");
  EXPECT_FALSE(engine.has_session("peer1"));
  EXPECT_EQ(engine.session_count(), 2u);
}

TEST_P(ProbeEngineTest, LossIsReportedAfterTheTimeout) {
  ProbeEngine engine(dataplane());
  SessionSpec spec = spec_to_reflector("lossy");
  spec.interval_ns = 5'000'000;
  spec.timeout_ns = 50'000'000;
  ASSERT_TRUE(engine.add_session(spec, 0, backend().now().mono).ok());
  Recorder recorder;
  run_for(engine, recorder, 400'000'000, 1'000'000, /*drop_every=*/4);
  size_t lost = 0, replies = 0;
  for (const auto& e : recorder.events["lossy"]) {
    lost += e.kind == stamp::ProbeEvent::Kind::kLost;
    replies += e.kind == stamp::ProbeEvent::Kind::kReply;
  }
  ASSERT_GT(replies, 20u);
  // A quarter of the requests were ignored; the last 50 ms of probes have not timed out yet.
  const double ratio = static_cast<double>(lost) / static_cast<double>(lost + replies);
  EXPECT_NEAR(ratio, 0.25, 0.06);
}

TEST_P(ProbeEngineTest, SourcePortSetIsUsedInTurnAndRepliesComeBackOnEveryPort) {
  ProbeEngine engine(dataplane());
  std::vector<uint16_t> ports;
  while (ports.size() < 3) {
    const uint16_t port = backend().free_port();
    ASSERT_NE(port, 0);
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) ports.push_back(port);
  }
  SessionSpec spec = spec_to_reflector("peer/ecmp");
  spec.interval_ns = 5'000'000;
  spec.timeout_ns = 200'000'000;
  spec.source_ports = ports;
  // A second session on one of the same ports (another path of another peer): SSIDs keep them apart.
  SessionSpec other = spec;
  other.id = "other/ecmp";
  other.source_ports = {ports[1]};
  const MonoNs start = backend().now().mono;
  ASSERT_TRUE(engine.add_session(spec, 0, start).ok());
  ASSERT_TRUE(engine.add_session(other, 1'000'000, start).ok());

  Recorder recorder;
  run_for(engine, recorder, 250'000'000);
  run_for(engine, recorder, 50'000'000);  // collect the last replies
  const size_t sent = recorder.sent["peer/ecmp"].size();
  ASSERT_GE(sent, 30u);
  // Every port of the set carried a third of the probes: each port's count within one of the others.
  std::map<uint16_t, size_t> per_port;
  for (const uint16_t port : backend().source_ports) ++per_port[port];
  for (const uint16_t port : ports) EXPECT_GE(per_port[port], sent / 3 - 1) << port;
  EXPECT_EQ(per_port.size(), 3u);
  // Replies on every port reach their session: all probes answered, nothing unmatched.
  // (The engine keeps sending while the last replies are collected: the newest probe or two may be in flight.)
  EXPECT_GE(engine.sender_counters("peer/ecmp")->received + 2, sent);
  EXPECT_LE(engine.sender_counters("peer/ecmp")->received, sent);
  EXPECT_GE(engine.sender_counters("other/ecmp")->received + 2, recorder.sent["other/ecmp"].size());
  EXPECT_EQ(engine.sender_counters("peer/ecmp")->lost, 0u);
  EXPECT_EQ(engine.counters().unmatched_replies, 0u);
  EXPECT_EQ(engine.sender_counters("peer/ecmp")->invalid, 0u);

  // Removing a session releases its ports (the shared one stays with the other session).
  engine.remove_session("peer/ecmp");
  EXPECT_TRUE(engine.add_session(spec, 0, backend().now().mono).ok());
}

TEST_P(ProbeEngineTest, SourcePortInUseFailsTheWholeSession) {
  auto shared = dataplane();
  dp::PortOptions options;
  options.local = source_at(0);
  auto taken = shared->open_port(options);
  ASSERT_TRUE(taken.ok());
  ProbeEngine engine(shared);
  SessionSpec spec = spec_to_reflector("peer/busy");
  spec.source = backend().local_host();
  spec.source_ports = {backend().free_port(), (*taken)->local_address().port()};
  const auto result = engine.add_session(spec, 0, backend().now().mono);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("peer/busy"), std::string::npos) << result.error().message;
  EXPECT_EQ(engine.session_count(), 0u);
  EXPECT_EQ(engine.port_counters().tx_packets, 0u);
}

// The reload's pre-flight: a session whose source-port set includes a port another process holds cannot
// start, and the check says so before anything changes; a port the engine holds itself (a running
// session's) is no obstacle.
TEST_P(ProbeEngineTest, CheckTriesEverySourcePortOfASession) {
  auto shared = dataplane();
  dp::PortOptions options;
  options.local = source_at(0);
  auto taken = shared->open_port(options);
  ASSERT_TRUE(taken.ok());
  const uint16_t busy = (*taken)->local_address().port();
  ProbeEngine engine(shared);
  SessionSpec spec = spec_to_reflector("peer/busy");
  spec.source = backend().local_host();
  spec.source_ports = {backend().free_port(), busy};
  const auto result = engine.check_ports({spec});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("peer/busy"), std::string::npos) << result.error().message;
  EXPECT_NE(result.error().message.find(std::to_string(busy)), std::string::npos) << result.error().message;

  SessionSpec running = spec;
  running.id = "peer/running";
  running.source_ports = {backend().free_port()};
  ASSERT_TRUE(engine.add_session(running, 0, backend().now().mono).ok());
  SessionSpec next = running;
  next.id = "other/running";
  EXPECT_TRUE(engine.check_ports({next}).ok()) << "the engine's own port is shared, not in use";
  // Two new sessions that would clash (the same fixed port from two source addresses) fail the check.
  SessionSpec first = spec;
  first.id = "x/one";
  first.source_ports = {backend().free_port()};
  SessionSpec second = first;
  second.id = "y/two";
  second.source = SocketAddress{};
  const auto clash = engine.check_ports({first, second});
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.error().message.find("y/two"), std::string::npos) << clash.error().message;
}

// The settings the tests below change (the reload's notion of the same session lives in hubprobe/config.h).
bool same_settings(const SessionSpec& a, const SessionSpec& b) {
  return a.id == b.id && a.target == b.target && a.source == b.source && a.source_ports == b.source_ports &&
         a.interval_ns == b.interval_ns;
}

// A reload's change of sessions is applied whole or not at all: when a new session cannot start (a source
// port another process holds), the sessions it would have replaced are back as they were and keep
// probing with their counters; once the port is free, the same change applies.
TEST_P(ProbeEngineTest, ReplaceSessionsIsWholeOrNothing) {
  auto shared = dataplane();
  ProbeEngine engine(shared);
  SessionSpec kept = spec_to_reflector("a/default");
  kept.interval_ns = 5'000'000;
  kept.timeout_ns = 200'000'000;
  SessionSpec old = kept;
  old.id = "b/ecmp";
  old.source = backend().local_host();
  old.source_ports = {backend().free_port()};
  const MonoNs start = backend().now().mono;
  ASSERT_TRUE(engine.add_session(kept, 0, start).ok());
  ASSERT_TRUE(engine.add_session(old, 1'000'000, start).ok());
  Recorder recorder;
  run_for(engine, recorder, 60'000'000);
  const uint64_t sent_before = engine.sender_counters("b/ecmp")->sent;
  ASSERT_GE(sent_before, 5u);

  dp::PortOptions options;
  options.local = source_at(0);
  auto held = shared->open_port(options);
  ASSERT_TRUE(held.ok());
  const uint16_t busy = (*held)->local_address().port();
  // b changes (any source address now, the same fixed port: it can only open once the old one closed),
  // and c needs the held port.
  SessionSpec changed = old;
  changed.source = SocketAddress{};
  changed.interval_ns = 10'000'000;
  SessionSpec added = kept;
  added.id = "c/ecmp";
  added.source = backend().local_host();
  added.source_ports = {backend().free_port(), busy};
  const std::vector<ProbeEngine::NewSession> change = {{changed, 1}, {added, 2}};
  const auto refused = engine.replace_sessions({"b/ecmp"}, change, backend().now().mono);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("c/ecmp"), std::string::npos) << refused.error().message;
  EXPECT_EQ(refused.error().message.find("put back"), std::string::npos) << refused.error().message;
  EXPECT_EQ(engine.session_count(), 2u);
  EXPECT_FALSE(engine.has_session("c/ecmp"));
  ASSERT_TRUE(engine.has_session("b/ecmp"));
  EXPECT_TRUE(same_settings(*engine.spec("b/ecmp"), old)) << "b is back with its old settings";
  EXPECT_GE(engine.sender_counters("b/ecmp")->sent, sent_before) << "b's counters were reset";
  const uint64_t received_back = engine.sender_counters("b/ecmp")->received;
  run_for(engine, recorder, 60'000'000);
  EXPECT_GE(engine.sender_counters("b/ecmp")->received, received_back + 5) << "b answered on its reopened port";
  EXPECT_EQ(engine.counters().unmatched_replies, 0u);

  held.value().reset();
  ASSERT_TRUE(engine.replace_sessions({"b/ecmp"}, change, backend().now().mono).ok());
  EXPECT_EQ(engine.session_count(), 3u);
  EXPECT_TRUE(same_settings(*engine.spec("b/ecmp"), changed));
  EXPECT_EQ(engine.sender_counters("b/ecmp")->sent, 0u) << "a changed session starts anew";
  EXPECT_TRUE(engine.has_session("c/ecmp"));
}

// `count` probes, then none: the session is finished once the last one is answered.
TEST_P(ProbeEngineTest, CountLimitsTheProbesAndTheSessionFinishesWithTheLastReply) {
  backend(/*stateful=*/false);
  ProbeEngine engine(dataplane());
  SessionSpec spec = spec_to_reflector("counted");
  spec.interval_ns = 2'000'000;
  spec.timeout_ns = 500'000'000;
  spec.count = 5;
  const MonoNs start = backend().now().mono;
  ASSERT_TRUE(engine.add_session(spec, 0, start).ok());
  EXPECT_FALSE(engine.finished("counted"));
  EXPECT_EQ(engine.next_due(), start);  // phase 0: the first probe is due at once
  EXPECT_EQ(engine.poll_fds().size(), 1u);
  Recorder recorder;
  while (!engine.finished("counted") && backend().now().mono - start < 2'000'000'000) {
    engine.run_tick(backend().now(), ClockState{}, recorder);
    backend().serve();
    backend().pass(1'000'000);
  }
  ASSERT_TRUE(engine.finished("counted"));
  EXPECT_EQ(recorder.sent["counted"], (std::vector<uint32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(recorder.events["counted"].size(), 5u);
  EXPECT_EQ(engine.sender("counted")->counters().received, 5u);
  EXPECT_EQ(engine.sender("counted")->in_flight(), 0u);
  EXPECT_EQ(engine.next_due(), std::numeric_limits<MonoNs>::max()) << "a finished session is never due";
  EXPECT_TRUE(engine.finished("no such session"));
  EXPECT_EQ(engine.sender("no such session"), nullptr);
}

// stop_sending: no probe after it, and the ones in flight still end (here: lost, nobody answers).
TEST_P(ProbeEngineTest, StopSendingLetsTheProbesInFlightEnd) {
  backend(/*stateful=*/false);  // never serves
  ProbeEngine engine(dataplane());
  SessionSpec spec = spec_to_reflector("stopped");
  spec.interval_ns = 1'000'000;
  spec.timeout_ns = 30'000'000;
  const MonoNs start = backend().now().mono;
  ASSERT_TRUE(engine.add_session(spec, 0, start).ok());
  Recorder recorder;
  engine.run_tick(backend().at(start), ClockState{}, recorder);
  engine.run_tick(backend().at(start + 1'000'000), ClockState{}, recorder);
  ASSERT_EQ(recorder.sent["stopped"].size(), 2u);
  engine.stop_sending("stopped");
  EXPECT_FALSE(engine.finished("stopped")) << "two probes are in flight";
  engine.run_tick(backend().at(start + 2'000'000), ClockState{}, recorder);
  EXPECT_EQ(recorder.sent["stopped"].size(), 2u);
  engine.run_tick(backend().at(start + 1'000'000'000), ClockState{}, recorder);
  EXPECT_TRUE(engine.finished("stopped"));
  ASSERT_EQ(recorder.events["stopped"].size(), 2u);
  for (const auto& e : recorder.events["stopped"]) EXPECT_EQ(e.kind, stamp::ProbeEvent::Kind::kLost);
}

// A probe the backend refuses (the kernel: broadcast without SO_BROADCAST, EACCES, or no route at all; a
// scripted port: a full ring, EAGAIN) is reported with its reason.
TEST_P(ProbeEngineTest, FailedSendIsReportedWithItsSequenceNumberAndReason) {
  ProbeEngine engine(dataplane());
  SessionSpec spec;
  spec.id = "refused";
  spec.target = backend().refused_target();
  spec.count = 2;
  spec.interval_ns = 1'000'000;
  const MonoNs start = backend().now().mono;
  ASSERT_TRUE(engine.add_session(spec, 0, start).ok());
  backend().refuse_sends();
  Recorder recorder;
  engine.run_tick(backend().at(start), ClockState{}, recorder);
  engine.run_tick(backend().at(start + 1'000'000), ClockState{}, recorder);
  ASSERT_EQ(recorder.send_failures["refused"].size(), 2u);
  EXPECT_EQ(recorder.send_failures["refused"][0].first, 0u);
  EXPECT_EQ(recorder.send_failures["refused"][1].first, 1u);
  const Error& error = recorder.send_failures["refused"][0].second;
  EXPECT_NE(error.code, 0);
  EXPECT_EQ(error.message, std::strerror(error.code));
  EXPECT_TRUE(recorder.sent["refused"].empty());
  EXPECT_EQ(engine.sender("refused")->counters().send_errors, 2u);
  EXPECT_TRUE(engine.finished("refused")) << "failed sends count towards the count and leave nothing in flight";
}

}  // namespace
}  // namespace hubprobe
