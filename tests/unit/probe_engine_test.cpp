// SPDX-License-Identifier: Apache-2.0
// The agent's probe engine against a reflector on loopback (no privileges): several sessions share one
// port, replies are demultiplexed by SSID, every probe ends as exactly one event.
#include "hubprobe/probe_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <map>
#include <thread>

#include "hubprobe/session_reflector.h"

namespace hubprobe {
namespace {

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
  void tick_done() {
    const MonoNs end = mono_now();
    for (const auto& [id, sent_mono] : this_tick) reply_elapsed[id].push_back(end - sent_mono);
    this_tick.clear();
  }
};

// A tick at the monotonic time `mono` (ahead of the clock in tests that skip time); the wall time, which
// goes into the probes, as the clock reads it.
Now tick_at(MonoNs mono) { return Now{wall_now(), mono}; }

// A reflector on loopback driven from the test thread.
struct LoopbackReflector {
  static stamp::ReflectorOptions options_for(bool stateful) {
    stamp::ReflectorOptions options;
    options.stateful = stateful;
    return options;
  }
  explicit LoopbackReflector(bool stateful) : reflector(options_for(stateful)) {
    auto dataplane = dp::make_dataplane("kernel");
    dp::PortOptions options;
    options.local = *SocketAddress::parse("127.0.0.1:0", 0);
    options.tx_timestamps = false;
    port = std::move((*dataplane)->open_port(options).value());
  }
  // Answers everything waiting; with `drop_every` > 0 ignores every n-th request.
  void serve(int drop_every = 0) {
    std::array<std::array<uint8_t, 2048>, 16> in{}, out{};
    std::array<dp::RxPacket, 16> rx{};
    std::array<dp::TxPacket, 16> tx{};
    for (size_t i = 0; i < rx.size(); ++i) {
      rx[i].data = in[i].data();
      rx[i].capacity = 2048;
    }
    auto n = port->receive(rx);
    if (!n || *n == 0) return;
    size_t replies = 0;
    for (size_t i = 0; i < *n; ++i) {
      ++seen;
      source_ports.push_back(rx[i].source.port());
      if (drop_every > 0 && seen % drop_every == 0) continue;
      if (reflector.reflect(rx[i], out[replies], ClockState{}, read_now, tx[replies])) ++replies;
    }
    (void)port->send(std::span(tx.data(), replies));
  }
  std::unique_ptr<dp::Port> port;
  stamp::SessionReflector reflector;
  int seen = 0;
  std::vector<uint16_t> source_ports;  ///< of every request, in arrival order
};

// A UDP port that was free a moment ago (bound and released).
uint16_t free_udp_port() {
  auto dataplane = dp::make_dataplane("kernel");
  dp::PortOptions options;
  options.local = *SocketAddress::parse("127.0.0.1:0", 0);
  auto port = (*dataplane)->open_port(options);
  return port ? (*port)->local_address().port() : 0;
}

TEST(ProbeEngine, SessionsShareAPortAndGetTheirOwnReplies) {
  LoopbackReflector reflector(true);
  auto dataplane = dp::make_dataplane("kernel");
  ProbeEngine engine(std::shared_ptr<dp::Dataplane>(std::move(dataplane.value())));
  const MonoNs start = mono_now();
  for (int i = 0; i < 3; ++i) {
    SessionSpec spec;
    spec.id = "peer" + std::to_string(i);
    spec.target = reflector.port->local_address();
    spec.interval_ns = 10'000'000;
    spec.timeout_ns = 200'000'000;
    spec.packet_size = static_cast<uint32_t>(44 + 8 * i);  // tells the sessions' replies apart
    ASSERT_TRUE(engine.add_session(spec, static_cast<uint64_t>(i) * 3'000'000, start).ok());
  }
  EXPECT_EQ(engine.session_count(), 3u);
  EXPECT_FALSE(engine.add_session(*engine.spec("peer0"), 0, start).ok());  // duplicate id

  Recorder recorder;
  const ClockState clock{};
  while (mono_now() - start < 300'000'000) {
    engine.run_tick(read_now(), clock, recorder);
    recorder.tick_done();
    reflector.serve();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
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

TEST(ProbeEngine, LossIsReportedAfterTheTimeout) {
  LoopbackReflector reflector(true);
  auto dataplane = dp::make_dataplane("kernel");
  ProbeEngine engine(std::shared_ptr<dp::Dataplane>(std::move(dataplane.value())));
  SessionSpec spec;
  spec.id = "lossy";
  spec.target = reflector.port->local_address();
  spec.interval_ns = 5'000'000;
  spec.timeout_ns = 50'000'000;
  const MonoNs start = mono_now();
  ASSERT_TRUE(engine.add_session(spec, 0, start).ok());
  Recorder recorder;
  while (mono_now() - start < 400'000'000) {
    engine.run_tick(read_now(), ClockState{}, recorder);
    reflector.serve(/*drop_every=*/4);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
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

TEST(ProbeEngine, SourcePortSetIsUsedInTurnAndRepliesComeBackOnEveryPort) {
  LoopbackReflector reflector(true);
  auto dataplane = dp::make_dataplane("kernel");
  ProbeEngine engine(std::shared_ptr<dp::Dataplane>(std::move(dataplane.value())));
  std::vector<uint16_t> ports;
  while (ports.size() < 3) {
    const uint16_t port = free_udp_port();
    ASSERT_NE(port, 0);
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) ports.push_back(port);
  }
  SessionSpec spec;
  spec.id = "peer/ecmp";
  spec.target = reflector.port->local_address();
  spec.interval_ns = 5'000'000;
  spec.timeout_ns = 200'000'000;
  spec.source_ports = ports;
  // A second session on one of the same ports (another path of another peer): SSIDs keep them apart.
  SessionSpec other = spec;
  other.id = "other/ecmp";
  other.source_ports = {ports[1]};
  const MonoNs start = mono_now();
  ASSERT_TRUE(engine.add_session(spec, 0, start).ok());
  ASSERT_TRUE(engine.add_session(other, 1'000'000, start).ok());

  Recorder recorder;
  while (mono_now() - start < 250'000'000) {
    engine.run_tick(read_now(), ClockState{}, recorder);
    reflector.serve();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int i = 0; i < 50; ++i) {  // collect the last replies
    engine.run_tick(read_now(), ClockState{}, recorder);
    reflector.serve();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const size_t sent = recorder.sent["peer/ecmp"].size();
  ASSERT_GE(sent, 30u);
  // Every port of the set carried a third of the probes: each port's count within one of the others.
  std::map<uint16_t, size_t> per_port;
  for (const uint16_t port : reflector.source_ports) ++per_port[port];
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
  EXPECT_TRUE(engine.add_session(spec, 0, mono_now()).ok());
}

TEST(ProbeEngine, SourcePortInUseFailsTheWholeSession) {
  auto dataplane = dp::make_dataplane("kernel");
  auto shared = std::shared_ptr<dp::Dataplane>(std::move(dataplane.value()));
  dp::PortOptions options;
  options.local = *SocketAddress::parse("127.0.0.1:0", 0);
  auto taken = shared->open_port(options);
  ASSERT_TRUE(taken.ok());
  ProbeEngine engine(shared);
  SessionSpec spec;
  spec.id = "peer/busy";
  spec.target = *SocketAddress::parse("127.0.0.1:862", 862);
  spec.source = *SocketAddress::parse("127.0.0.1", 0);
  spec.source_ports = {free_udp_port(), (*taken)->local_address().port()};
  const auto result = engine.add_session(spec, 0, mono_now());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("peer/busy"), std::string::npos) << result.error().message;
  EXPECT_EQ(engine.session_count(), 0u);
  EXPECT_EQ(engine.port_counters().tx_packets, 0u);
}

// The reload's pre-flight: a session whose source-port set includes a port another process holds cannot
// start, and the check says so before anything changes; a port the engine holds itself (a running
// session's) is no obstacle.
TEST(ProbeEngine, CheckTriesEverySourcePortOfASession) {
  auto dataplane = dp::make_dataplane("kernel");
  auto shared = std::shared_ptr<dp::Dataplane>(std::move(dataplane.value()));
  dp::PortOptions options;
  options.local = *SocketAddress::parse("127.0.0.1:0", 0);
  auto taken = shared->open_port(options);
  ASSERT_TRUE(taken.ok());
  const uint16_t busy = (*taken)->local_address().port();
  ProbeEngine engine(shared);
  SessionSpec spec;
  spec.id = "peer/busy";
  spec.target = *SocketAddress::parse("127.0.0.1:862", 862);
  spec.source = *SocketAddress::parse("127.0.0.1", 0);
  spec.source_ports = {free_udp_port(), busy};
  const auto result = engine.check_ports({spec});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("peer/busy"), std::string::npos) << result.error().message;
  EXPECT_NE(result.error().message.find(std::to_string(busy)), std::string::npos) << result.error().message;

  SessionSpec running = spec;
  running.id = "peer/running";
  running.source_ports = {free_udp_port()};
  ASSERT_TRUE(engine.add_session(running, 0, mono_now()).ok());
  SessionSpec next = running;
  next.id = "other/running";
  EXPECT_TRUE(engine.check_ports({next}).ok()) << "the engine's own port is shared, not in use";
  // Two new sessions that would clash (the same fixed port from two source addresses) fail the check.
  SessionSpec first = spec;
  first.id = "x/one";
  first.source_ports = {free_udp_port()};
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

// Ticks the engine and the reflector for `ns`.
void run_for(ProbeEngine& engine, LoopbackReflector& reflector, Recorder& recorder, int64_t ns) {
  const MonoNs start = mono_now();
  while (mono_now() - start < ns) {
    engine.run_tick(read_now(), ClockState{}, recorder);
    reflector.serve();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// A reload's change of sessions is applied whole or not at all: when a new session cannot start (a source
// port another process holds), the sessions it would have replaced are back as they were and keep
// probing with their counters; once the port is free, the same change applies.
TEST(ProbeEngine, ReplaceSessionsIsWholeOrNothing) {
  LoopbackReflector reflector(true);
  auto shared = std::shared_ptr<dp::Dataplane>(std::move(dp::make_dataplane("kernel").value()));
  ProbeEngine engine(shared);
  SessionSpec kept;
  kept.id = "a/default";
  kept.target = reflector.port->local_address();
  kept.interval_ns = 5'000'000;
  kept.timeout_ns = 200'000'000;
  SessionSpec old = kept;
  old.id = "b/ecmp";
  old.source = *SocketAddress::parse("127.0.0.1", 0);
  old.source_ports = {free_udp_port()};
  const MonoNs start = mono_now();
  ASSERT_TRUE(engine.add_session(kept, 0, start).ok());
  ASSERT_TRUE(engine.add_session(old, 1'000'000, start).ok());
  Recorder recorder;
  run_for(engine, reflector, recorder, 60'000'000);
  const uint64_t sent_before = engine.sender_counters("b/ecmp")->sent;
  ASSERT_GE(sent_before, 5u);

  dp::PortOptions options;
  options.local = *SocketAddress::parse("127.0.0.1:0", 0);
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
  added.source_ports = {free_udp_port(), busy};
  const std::vector<ProbeEngine::NewSession> change = {{changed, 1}, {added, 2}};
  const auto refused = engine.replace_sessions({"b/ecmp"}, change, mono_now());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("c/ecmp"), std::string::npos) << refused.error().message;
  EXPECT_EQ(refused.error().message.find("put back"), std::string::npos) << refused.error().message;
  EXPECT_EQ(engine.session_count(), 2u);
  EXPECT_FALSE(engine.has_session("c/ecmp"));
  ASSERT_TRUE(engine.has_session("b/ecmp"));
  EXPECT_TRUE(same_settings(*engine.spec("b/ecmp"), old)) << "b is back with its old settings";
  EXPECT_GE(engine.sender_counters("b/ecmp")->sent, sent_before) << "b's counters were reset";
  const uint64_t received_back = engine.sender_counters("b/ecmp")->received;
  run_for(engine, reflector, recorder, 60'000'000);
  EXPECT_GE(engine.sender_counters("b/ecmp")->received, received_back + 5) << "b answered on its reopened port";
  EXPECT_EQ(engine.counters().unmatched_replies, 0u);

  held.value().reset();
  ASSERT_TRUE(engine.replace_sessions({"b/ecmp"}, change, mono_now()).ok());
  EXPECT_EQ(engine.session_count(), 3u);
  EXPECT_TRUE(same_settings(*engine.spec("b/ecmp"), changed));
  EXPECT_EQ(engine.sender_counters("b/ecmp")->sent, 0u) << "a changed session starts anew";
  EXPECT_TRUE(engine.has_session("c/ecmp"));
}

// `count` probes, then none: the session is finished once the last one is answered.
TEST(ProbeEngine, CountLimitsTheProbesAndTheSessionFinishesWithTheLastReply) {
  LoopbackReflector reflector(false);
  auto dataplane = dp::make_dataplane("kernel");
  ProbeEngine engine(std::shared_ptr<dp::Dataplane>(std::move(dataplane.value())));
  SessionSpec spec;
  spec.id = "counted";
  spec.target = reflector.port->local_address();
  spec.interval_ns = 2'000'000;
  spec.timeout_ns = 500'000'000;
  spec.count = 5;
  const MonoNs start = mono_now();
  ASSERT_TRUE(engine.add_session(spec, 0, start).ok());
  EXPECT_FALSE(engine.finished("counted"));
  EXPECT_EQ(engine.next_due(), start);  // phase 0: the first probe is due at once
  EXPECT_EQ(engine.poll_fds().size(), 1u);
  Recorder recorder;
  while (!engine.finished("counted") && mono_now() - start < 2'000'000'000) {
    engine.run_tick(read_now(), ClockState{}, recorder);
    reflector.serve();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
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
TEST(ProbeEngine, StopSendingLetsTheProbesInFlightEnd) {
  LoopbackReflector reflector(false);  // never serves
  auto dataplane = dp::make_dataplane("kernel");
  ProbeEngine engine(std::shared_ptr<dp::Dataplane>(std::move(dataplane.value())));
  SessionSpec spec;
  spec.id = "stopped";
  spec.target = reflector.port->local_address();
  spec.interval_ns = 1'000'000;
  spec.timeout_ns = 30'000'000;
  const MonoNs start = mono_now();
  ASSERT_TRUE(engine.add_session(spec, 0, start).ok());
  Recorder recorder;
  engine.run_tick(tick_at(start), ClockState{}, recorder);
  engine.run_tick(tick_at(start + 1'000'000), ClockState{}, recorder);
  ASSERT_EQ(recorder.sent["stopped"].size(), 2u);
  engine.stop_sending("stopped");
  EXPECT_FALSE(engine.finished("stopped")) << "two probes are in flight";
  engine.run_tick(tick_at(start + 2'000'000), ClockState{}, recorder);
  EXPECT_EQ(recorder.sent["stopped"].size(), 2u);
  engine.run_tick(tick_at(start + 1'000'000'000), ClockState{}, recorder);
  EXPECT_TRUE(engine.finished("stopped"));
  ASSERT_EQ(recorder.events["stopped"].size(), 2u);
  for (const auto& e : recorder.events["stopped"]) EXPECT_EQ(e.kind, stamp::ProbeEvent::Kind::kLost);
}

// A probe the kernel refuses (broadcast without SO_BROADCAST: EACCES, or no route at all) is reported
// with its reason.
TEST(ProbeEngine, FailedSendIsReportedWithItsSequenceNumberAndReason) {
  auto dataplane = dp::make_dataplane("kernel");
  ProbeEngine engine(std::shared_ptr<dp::Dataplane>(std::move(dataplane.value())));
  SessionSpec spec;
  spec.id = "refused";
  spec.target = *SocketAddress::parse("255.255.255.255:862", 862);
  spec.count = 2;
  spec.interval_ns = 1'000'000;
  const MonoNs start = mono_now();
  ASSERT_TRUE(engine.add_session(spec, 0, start).ok());
  Recorder recorder;
  engine.run_tick(tick_at(start), ClockState{}, recorder);
  engine.run_tick(tick_at(start + 1'000'000), ClockState{}, recorder);
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
