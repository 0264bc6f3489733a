// SPDX-License-Identifier: Apache-2.0
// EngineLoop: which steps a pass runs in each loop kind, and the probe engine and the reflector service
// on one busy-polled port (what a DPDK lcore runs): one loop, one receive, each datagram to its engine, and
// the same samples as with a port for each.
#include "hubprobe/engine_loop.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hubprobe/port_demux.h"
#include "hubprobe/probe_engine.h"
#include "hubprobe/reflector_service.h"
#include "hubprobe/session_reflector.h"
#include "hubprobe/session_sender.h"
#include "scripted_dataplane.h"

namespace hubprobe {
namespace {

constexpr WallNs kBase = 1'764'000'000'000'000'000;  // November 2025, in ns since 1970
constexpr WallNs kUs = 1'000;
constexpr WallNs kMs = 1'000'000;
const ClockState kClock{true, 1e-6, 37};

Now both(WallNs t) { return Now{t, t}; }

// ---- Which steps a pass runs ----------------------------------------------------------------------

struct CountingStep : LoopStep {
  int fd = -1;
  MonoNs deadline = StepResult::kNever;
  int steps = 0;
  std::function<void()> on_step;
  StepResult step(const Now&) override {
    ++steps;
    if (on_step) on_step();
    return {0, deadline};
  }
  std::vector<int> wake_fds() const override { return fd < 0 ? std::vector<int>{} : std::vector<int>{fd}; }
};

TEST(EngineLoop, BusyPollStepsEveryStepInEveryPass) {
  CountingStep a, b;
  b.deadline = kBase + 1'000 * kMs;
  EngineLoopOptions options;
  options.wait = dp::WaitKind::kBusyPoll;
  EngineLoop loop({&a, &b}, options);
  EXPECT_EQ(loop.run_once(both(kBase)).next_deadline, kBase + 1'000 * kMs);
  loop.run_once(both(kBase + kUs));
  EXPECT_EQ(a.steps, 2);
  EXPECT_EQ(b.steps, 2) << "nothing wakes a busy-polled step: its deadline does not hold it back";
}

TEST(EngineLoop, PollFdStepsOnlyWhatIsDueOrReady) {
  CountingStep due, later;
  due.deadline = kBase + 5 * kMs;
  later.deadline = kBase + 1'000 * kMs;
  EngineLoop loop({&due, &later}, EngineLoopOptions{});
  EXPECT_EQ(loop.run_once(both(kBase)).next_deadline, kBase + 5 * kMs);  // the first pass steps both
  loop.run_once(both(kBase + 4 * kMs));
  EXPECT_EQ(due.steps, 1);
  loop.run_once(both(kBase + 5 * kMs));
  EXPECT_EQ(due.steps, 2);
  EXPECT_EQ(later.steps, 1);
}

TEST(EngineLoop, PollFdWakesTheStepWhoseDescriptorIsReady) {
  std::array<int, 2> pipe_fds{};
  ASSERT_EQ(pipe(pipe_fds.data()), 0);
  std::atomic<bool> stop{false};
  CountingStep reader, idle;
  reader.fd = pipe_fds[0];
  idle.deadline = mono_now() + 3'600 * 1'000 * kMs;
  // Stepped the second time: woken by the byte in the pipe, not by a deadline (it has none).
  reader.on_step = [&] {
    if (reader.steps == 2) stop = true;
  };
  ASSERT_EQ(write(pipe_fds[1], "x", 1), 1);
  EngineLoop loop({&reader, &idle}, EngineLoopOptions{});
  ASSERT_TRUE(loop.run(stop).ok());
  EXPECT_EQ(reader.steps, 2);
  EXPECT_EQ(idle.steps, 1) << "a step neither due nor ready sleeps on";
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

// The last core this process may run on.
int last_allowed_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
  for (int cpu = CPU_SETSIZE - 1; cpu >= 0; --cpu) {
    if (CPU_ISSET(cpu, &set)) return cpu;
  }
  return -1;
}

TEST(EngineLoop, BusyLoopRunsOnTheCoreItIsPinnedTo) {
  const int cpu = last_allowed_cpu();
  ASSERT_GE(cpu, 0);
  std::atomic<bool> stop{false};
  int cpu_seen = -1;
  CountingStep step;
  step.on_step = [&] {
    cpu_seen = sched_getcpu();
    stop = true;
  };
  EngineLoopOptions options;
  options.wait = dp::WaitKind::kBusyPoll;
  options.cpu = cpu;
  std::thread thread([&] { EXPECT_TRUE(EngineLoop({&step}, options).run(stop).ok()); });
  thread.join();
  EXPECT_EQ(cpu_seen, cpu);

  options.cpu = CPU_SETSIZE - 1;  // no such core here
  stop = false;
  CountingStep never;
  std::thread refused([&] { EXPECT_FALSE(EngineLoop({&never}, options).run(stop).ok()); });
  refused.join();
  EXPECT_EQ(never.steps, 0) << "a loop that cannot be pinned does not run";
}

TEST(EngineLoop, LoopKindIsBusyWhenAnyPortIsBusyPolled) {
  EXPECT_EQ(loop_kind({}), dp::WaitKind::kPollFd);
  EXPECT_EQ(loop_kind({dp::WaitKind::kPollFd, dp::WaitKind::kPollFd}), dp::WaitKind::kPollFd);
  EXPECT_EQ(loop_kind({dp::WaitKind::kPollFd, dp::WaitKind::kBusyPoll}), dp::WaitKind::kBusyPoll);
}

// ---- Sessions and reflector on one port -----------------------------------------------------------

const SocketAddress kHost = *SocketAddress::parse("198.18.0.1:40000", 862);          // the sessions' port
const SocketAddress kListen = *SocketAddress::parse("198.18.0.1:862", 862);          // our reflector's
const SocketAddress kPeer = *SocketAddress::parse("198.18.0.2:862", 862);            // the peer we probe
const SocketAddress kRemoteSender = *SocketAddress::parse("198.18.0.3:50000", 862);  // a peer probing us

// The probe engine as a loop step, as the agent's probe thread drives it.
struct ProbeStep : LoopStep, ProbeListener {
  explicit ProbeStep(ProbeEngine& e) : engine(e) {}
  StepResult step(const Now& now) override { return engine.run_tick(now, kClock, *this); }
  std::vector<int> wake_fds() const override { return engine.poll_fds(); }
  void on_probe_sent(const std::string&, uint32_t, const Now&) override {}
  void on_probe_event(const std::string&, const stamp::ProbeEvent& event, const Now&) override {
    events.push_back(event);
  }
  ProbeEngine& engine;
  std::vector<stamp::ProbeEvent> events;
};

struct Outcome {
  std::vector<stamp::ProbeEvent> ours;    ///< our session's events
  std::vector<stamp::ProbeEvent> theirs;  ///< the remote sender's, from our reflector's replies
  std::vector<SocketAddress> reply_sources;
  uint64_t reflected = 0;
  uint64_t unmatched = 0;
};

// Timeline: our session probes the peer every 10 ms (3 probes); the peer holds each 10 µs and the reply
// is back 50 µs after it left. A remote sender probes our reflector at 5, 15 and 25 ms; each request
// arrives 10 µs later, is answered in the next pass of the loop (every 100 µs), and the reply reaches the
// remote sender 20 µs after it left. With `shared`, one ScriptedPort carries all of it under a PortDemux;
// else the engine and the reflector have a port each.
Outcome run_timeline(bool shared) {
  const dp::ScriptedClock clock(kBase - 7 * kMs, 100);
  std::shared_ptr<dp::Dataplane> dataplane;
  std::shared_ptr<PortDemux> demux;
  auto scripted = std::make_shared<test::ScriptedDataplane>(clock, kHost);
  if (shared) {
    demux = std::make_shared<PortDemux>(std::make_unique<dp::ScriptedPort>(kHost, clock));
    dataplane = demux;
  } else {
    dataplane = scripted;
  }
  ReflectorServiceOptions reflector_options;
  reflector_options.listen = {kListen};
  reflector_options.reflector.format = TimestampFormat::kPtp;
  auto reflector = ReflectorService::open(*dataplane, reflector_options);
  EXPECT_TRUE(reflector.ok());
  ProbeEngine engine(dataplane);
  SessionSpec spec;
  spec.id = "peer/default";
  spec.target = kPeer;
  spec.format = TimestampFormat::kPtp;
  spec.interval_ns = 10 * kMs;
  spec.count = 3;
  EXPECT_TRUE(engine.add_session(spec, 0, kBase).ok());
  // The ports the script feeds: [0] carries the sessions' traffic, [1] the reflector's.
  std::vector<dp::ScriptedPort*> ports;
  if (shared) {
    auto* port = static_cast<dp::ScriptedPort*>(&demux->port());
    ports = {port, port};
  } else {
    EXPECT_EQ(scripted->ports.size(), 2u);
    ports = {scripted->ports.at(1), scripted->ports.at(0)};  // the reflector opened first
  }

  ProbeStep probe_step(engine);
  EngineLoopOptions options;
  options.wait = dp::WaitKind::kBusyPoll;
  EngineLoop loop({&probe_step, reflector->get()}, options);
  stamp::ReflectorOptions peer_options;
  peer_options.format = TimestampFormat::kPtp;
  stamp::SessionReflector peer(peer_options);
  stamp::SenderOptions remote_options;
  remote_options.format = TimestampFormat::kPtp;
  remote_options.tx_timestamp_grace_ns = 0;
  remote_options.ssid = 7;
  stamp::SessionSender remote(remote_options, kListen);

  Outcome outcome;
  for (WallNs t = kBase; t < kBase + 30 * kMs; t += 100 * kUs) {
    for (dp::ScriptedPort* port : ports) port->clock().set(port->clock().at_wall(t));
    if ((t - kBase) % (10 * kMs) == 5 * kMs) {  // the remote sender's request
      std::array<uint8_t, 64> buffer{};
      auto request = remote.build_probe(buffer, both(t), kClock);
      EXPECT_TRUE(request.ok());
      request->sent_at = {t, dp::TimestampSource::kUser};
      remote.on_sent(*request);
      dp::ScriptedPacket packet;
      packet.data.assign(buffer.begin(), buffer.begin() + request->length);
      packet.source = kRemoteSender;
      packet.destination = kListen;
      packet.arrival = ports[1]->clock().at_wall(t + 10 * kUs);
      ports[1]->deliver(std::move(packet));
    }
    loop.run_once(both(t));
    std::vector<dp::SentPacket> sent = ports[0]->take_sent();
    if (!shared) {
      std::vector<dp::SentPacket> more = ports[1]->take_sent();
      sent.insert(sent.end(), more.begin(), more.end());
    }
    for (dp::SentPacket& packet : sent) {
      if (packet.destination == kPeer) {  // our probe: the peer answers it
        dp::RxPacket request;
        request.data = packet.data.data();
        request.capacity = request.length = static_cast<uint32_t>(packet.data.size());
        request.source = kHost;
        request.destination = kPeer;
        request.rx = {t + 20 * kUs, dp::TimestampSource::kHardware};
        std::array<uint8_t, 64> reply{};
        dp::TxPacket out;
        EXPECT_TRUE(peer.reflect_at(request, reply, kClock, both(t + 30 * kUs), out));
        dp::ScriptedPacket back;
        back.data.assign(reply.begin(), reply.begin() + out.length);
        back.source = kPeer;
        back.arrival = ports[0]->clock().at_wall(t + 50 * kUs);
        ports[0]->deliver(std::move(back));
      } else if (packet.destination == kRemoteSender) {  // our reflector's reply
        outcome.reply_sources.push_back(packet.source);
        dp::RxPacket reply;
        reply.data = packet.data.data();
        reply.capacity = reply.length = static_cast<uint32_t>(packet.data.size());
        reply.source = kListen;
        reply.rx = {t + 20 * kUs, dp::TimestampSource::kHardware};
        remote.on_receive(reply, both(t + 20 * kUs));
      } else {
        ADD_FAILURE() << "a packet to " << packet.destination.to_string();
      }
    }
  }
  outcome.ours = probe_step.events;
  outcome.theirs = remote.poll_events();
  outcome.reflected = (*reflector)->counters().engine.reflected;
  outcome.unmatched = engine.counters().unmatched_replies + (demux ? demux->unclaimed() : 0);
  return outcome;
}

void expect_same_samples(const std::vector<stamp::ProbeEvent>& a, const std::vector<stamp::ProbeEvent>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].kind, b[i].kind) << i;
    EXPECT_EQ(a[i].seq, b[i].seq) << i;
    EXPECT_EQ(a[i].sample.t1.ns, b[i].sample.t1.ns) << i;
    EXPECT_EQ(a[i].sample.t2, b[i].sample.t2) << i;
    EXPECT_EQ(a[i].sample.t3, b[i].sample.t3) << i;
    EXPECT_EQ(a[i].sample.t4.ns, b[i].sample.t4.ns) << i;
  }
}

TEST(EngineLoopOnOnePort, SessionsAndReflectorShareOneBusyPolledPort) {
  const Outcome outcome = run_timeline(/*shared=*/true);
  // Our three probes, each answered with the timeline's RTT: 50 µs out and back less the peer's 10 µs.
  ASSERT_EQ(outcome.ours.size(), 3u);
  for (const stamp::ProbeEvent& event : outcome.ours) {
    ASSERT_EQ(event.kind, stamp::ProbeEvent::Kind::kReply);
    EXPECT_EQ(event.sample.rtt_ns(), 40 * kUs);
  }
  // The three requests reached our reflector (not the sessions) and were answered from its port.
  EXPECT_EQ(outcome.reflected, 3u);
  ASSERT_EQ(outcome.theirs.size(), 3u);
  for (const stamp::ProbeEvent& event : outcome.theirs) {
    ASSERT_EQ(event.kind, stamp::ProbeEvent::Kind::kReply);
    EXPECT_EQ(event.sample.turnaround_ns(), 90 * kUs);  // in at +10 µs, answered in the pass at +100 µs
    EXPECT_EQ(event.sample.rtt_ns(), 30 * kUs);
  }
  for (const SocketAddress& source : outcome.reply_sources) EXPECT_EQ(source, kListen);
  EXPECT_EQ(outcome.unmatched, 0u);
}

TEST(EngineLoopOnOnePort, OnePortGivesTheSamplesOfAPortEach) {
  const Outcome shared = run_timeline(true);
  const Outcome separate = run_timeline(false);
  expect_same_samples(shared.ours, separate.ours);
  expect_same_samples(shared.theirs, separate.theirs);
  EXPECT_EQ(shared.reflected, separate.reflected);
  EXPECT_EQ(separate.unmatched, 0u);
}

// ---- The demultiplexer's views --------------------------------------------------------------------

TEST(PortDemux, AViewOpensOnceAndOnlyOnThePortsHost) {
  PortDemux demux(std::make_unique<dp::ScriptedPort>(kHost, dp::ScriptedClock(0, 0)));
  dp::PortOptions listen;
  listen.local = kListen;
  auto reflector = demux.open_port(listen);
  ASSERT_TRUE(reflector.ok());
  EXPECT_EQ((*reflector)->local_address(), kListen);
  EXPECT_EQ(demux.open_port(listen).error().code, EADDRINUSE);
  dp::PortOptions any;
  auto sessions = demux.open_port(any);
  ASSERT_TRUE(sessions.ok());
  EXPECT_EQ((*sessions)->local_address(), kHost);
  dp::PortOptions elsewhere;
  elsewhere.local = kPeer;
  EXPECT_EQ(demux.open_port(elsewhere).error().code, EADDRNOTAVAIL);
  reflector->reset();
  EXPECT_TRUE(demux.open_port(listen).ok()) << "a closed view opens again";
}

TEST(PortDemux, DatagramsWaitForTheirViewAndUnclaimedOnesAreCounted) {
  auto port = std::make_unique<dp::ScriptedPort>(kHost, dp::ScriptedClock(0, 0));
  dp::ScriptedPort& scripted = *port;
  PortDemux demux(std::move(port));
  dp::PortOptions listen;
  listen.local = kListen;
  auto reflector = demux.open_port(listen);
  auto sessions = demux.open_port(dp::PortOptions{});
  ASSERT_TRUE(reflector.ok() && sessions.ok());
  const auto deliver = [&](const SocketAddress& destination, uint8_t marker) {
    dp::ScriptedPacket packet;
    packet.data = {marker};
    packet.source = kPeer;
    packet.destination = destination;
    scripted.deliver(std::move(packet));
  };
  deliver(kListen, 1);
  deliver(kHost, 2);
  deliver(*SocketAddress::parse("198.18.0.1:999", 862), 3);  // nobody's
  deliver(kListen, 4);

  std::array<uint8_t, 16> data{};
  std::array<dp::RxPacket, 4> rx{};
  for (auto& packet : rx) {
    packet.data = data.data();
    packet.capacity = data.size();
  }
  // The sessions' receive takes the whole batch off the port: its own datagram, the reflector's queued.
  ASSERT_EQ(*(*sessions)->receive(rx), 1u);
  EXPECT_EQ(rx[0].data[0], 2);
  EXPECT_EQ(scripted.queued(), 0u);
  EXPECT_EQ(demux.unclaimed(), 1u);
  ASSERT_EQ(*(*reflector)->receive(std::span(rx).first(1)), 1u);
  EXPECT_EQ(rx[0].data[0], 1);
  EXPECT_EQ(rx[0].destination, kListen);
  ASSERT_EQ(*(*reflector)->receive(rx), 1u);
  EXPECT_EQ(rx[0].data[0], 4);
  EXPECT_EQ(*(*sessions)->receive(rx), 0u);
}

}  // namespace
}  // namespace hubprobe
