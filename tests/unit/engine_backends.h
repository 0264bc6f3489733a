// SPDX-License-Identifier: Apache-2.0
// The backends the engine tests run on, behind one face: the kernel on loopback, in real time, and scripted
// ports in a clock of their own that only the test moves. Each gives the engine a dataplane and plays the
// far side: a STAMP reflector the sessions probe. A test written against TestBackend runs unchanged on
// both (TEST_P over BackendKind), so the engines are checked the same way on a poll(2) port with kernel
// stamps and on a busy-polled port without TX stamps.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "hubprobe/dataplane.h"
#include "hubprobe/session_reflector.h"
#include "scripted_dataplane.h"

namespace hubprobe::test {

enum class BackendKind { kKernel, kScripted };

inline std::string backend_name(const ::testing::TestParamInfo<BackendKind>& info) {
  return info.param == BackendKind::kKernel ? "kernel" : "scripted";
}

class TestBackend {
 public:
  virtual ~TestBackend() = default;
  /// The dataplane the engine under test opens its ports on.
  virtual std::shared_ptr<dp::Dataplane> dataplane() = 0;
  /// The host the engine's ports bind to when a test pins a source address.
  virtual SocketAddress local_host() const = 0;
  /// The far side's reflector: where the sessions send their probes.
  virtual SocketAddress reflector_address() const = 0;
  /// The reflector answers every request waiting for it; with `drop_every` > 0 it ignores every n-th.
  virtual void serve(int drop_every = 0) = 0;
  /// The time now: the clocks' (kernel), the script's (scripted).
  virtual Now now() = 0;
  /// A tick's time at the monotonic `mono` (ahead of now in tests that skip time), with the wall time the
  /// probes carry.
  virtual Now at(MonoNs mono) = 0;
  /// Lets `ns` pass: sleeps (kernel), moves the clock of every port (scripted).
  virtual void pass(int64_t ns) = 0;
  /// A UDP port on local_host() that was free a moment ago.
  virtual uint16_t free_port() = 0;
  /// A target whose probes the backend refuses to send (each gets an errno value), once refuse_sends() ran.
  virtual SocketAddress refused_target() const = 0;
  virtual void refuse_sends() = 0;

  // The other side: a remote sender that probes a reflector under test.
  /// A datagram that came back to the remote sender.
  struct Datagram {
    std::vector<uint8_t> data;
    SocketAddress source;
    dp::Timestamp rx;  ///< as wall time
  };
  /// Where a reflector under test listens.
  virtual SocketAddress listen_address() const = 0;
  /// The remote sender's address.
  virtual SocketAddress sender_address() const = 0;
  /// The remote sender sends `data` to `to`, a port the engine under test opened on dataplane().
  virtual void send_to(const SocketAddress& to, std::span<const uint8_t> data) = 0;
  /// What came back to the remote sender since the last call (the kernel: waits up to 200 ms for the
  /// first datagram).
  virtual std::vector<Datagram> take_replies() = 0;

  /// The UDP source port of every request the reflector saw, in arrival order.
  std::vector<uint16_t> source_ports;
  /// How many requests the reflector saw.
  int seen = 0;

 protected:
  explicit TestBackend(bool stateful) : reflector_(options_for(stateful)) {}
  static stamp::ReflectorOptions options_for(bool stateful) {
    stamp::ReflectorOptions options;
    options.stateful = stateful;
    return options;
  }
  /// Whether the reflector answers the request it just saw (every n-th is ignored with `drop_every`).
  bool answers(uint16_t source_port, int drop_every) {
    ++seen;
    source_ports.push_back(source_port);
    return drop_every == 0 || seen % drop_every != 0;
  }
  stamp::SessionReflector reflector_;
};

/// The kernel backend on loopback; the reflector is a kernel port driven from the test's thread.
class KernelBackend final : public TestBackend {
 public:
  explicit KernelBackend(bool stateful) : TestBackend(stateful) {
    dataplane_ = std::shared_ptr<dp::Dataplane>(std::move(dp::make_dataplane("kernel").value()));
    dp::PortOptions options;
    options.local = *SocketAddress::parse("127.0.0.1:0", 0);
    options.tx_timestamps = false;
    port_ = std::move(dataplane_->open_port(options).value());
  }
  std::shared_ptr<dp::Dataplane> dataplane() override { return dataplane_; }
  SocketAddress local_host() const override { return *SocketAddress::parse("127.0.0.1", 0); }
  SocketAddress reflector_address() const override { return port_->local_address(); }
  void serve(int drop_every) override {
    std::array<std::array<uint8_t, 2048>, 16> in{}, out{};
    std::array<dp::RxPacket, 16> rx{};
    std::array<dp::TxPacket, 16> tx{};
    for (size_t i = 0; i < rx.size(); ++i) {
      rx[i].data = in[i].data();
      rx[i].capacity = 2048;
    }
    auto n = port_->receive(rx);
    if (!n || *n == 0) return;
    size_t replies = 0;
    for (size_t i = 0; i < *n; ++i) {
      if (!answers(rx[i].source.port(), drop_every)) continue;
      if (reflector_.reflect(rx[i], out[replies], ClockState{}, read_now, tx[replies])) ++replies;
    }
    (void)port_->send(std::span(tx.data(), replies));
  }
  Now now() override { return read_now(); }
  Now at(MonoNs mono) override { return Now{wall_now(), mono}; }
  void pass(int64_t ns) override { std::this_thread::sleep_for(std::chrono::nanoseconds(ns)); }
  uint16_t free_port() override {
    dp::PortOptions options;
    options.local = *SocketAddress::parse("127.0.0.1:0", 0);
    auto port = dataplane_->open_port(options);
    return port ? (*port)->local_address().port() : 0;
  }
  /// Broadcast without SO_BROADCAST: the kernel refuses it (EACCES), or has no route for it.
  SocketAddress refused_target() const override { return *SocketAddress::parse("255.255.255.255:862", 862); }
  void refuse_sends() override {}

  SocketAddress listen_address() const override { return *SocketAddress::parse("127.0.0.1:0", 0); }
  SocketAddress sender_address() const override { return client().local_address(); }
  void send_to(const SocketAddress& to, std::span<const uint8_t> data) override {
    dp::TxPacket packet;
    packet.data = data.data();
    packet.length = static_cast<uint32_t>(data.size());
    packet.destination = to;
    const auto sent = client().send(std::span(&packet, 1));
    EXPECT_TRUE(sent.ok() && *sent == 1u);
  }
  std::vector<Datagram> take_replies() override {
    std::vector<Datagram> out;
    std::array<uint8_t, 2048> buffer{};
    dp::RxPacket rx;
    for (int waited = 0; waited < 200; ++waited) {
      rx.data = buffer.data();
      rx.capacity = buffer.size();
      for (auto got = client().receive(std::span(&rx, 1)); got.ok() && *got == 1;
           got = client().receive(std::span(&rx, 1))) {
        out.push_back({std::vector<uint8_t>(buffer.begin(), buffer.begin() + rx.length), rx.source, rx.rx});
      }
      if (!out.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return out;
  }

 private:
  dp::Port& client() const {
    if (!client_) {
      dp::PortOptions options;
      options.local = *SocketAddress::parse("127.0.0.1:0", 0);
      options.tx_timestamps = false;
      client_ = std::move(dataplane_->open_port(options).value());
    }
    return *client_;
  }

  std::shared_ptr<dp::Dataplane> dataplane_;
  std::unique_ptr<dp::Port> port_;
  mutable std::unique_ptr<dp::Port> client_;  ///< the remote sender's
};

/// Scripted ports in a clock 7 ms behind wall time. serve() takes what every open port sent to the
/// reflector and delivers the replies back to the port: the request arrives 10 µs after the clock's
/// reading, the reflector holds it 10 µs, the reply is back 40 µs after it left.
class ScriptedBackend final : public TestBackend {
 public:
  static constexpr WallNs kStart = 1'764'000'000'000'000'000;  // November 2025, in ns since 1970

  explicit ScriptedBackend(bool stateful)
      : TestBackend(stateful),
        dataplane_(std::make_shared<ScriptedDataplane>(dp::ScriptedClock(-7'000'000, 100),
                                                       *SocketAddress::parse("198.18.0.1:40000", 862))) {
    dataplane_->set_clock(dataplane_->clock().at_wall(kStart));
  }
  std::shared_ptr<dp::Dataplane> dataplane() override { return dataplane_; }
  SocketAddress local_host() const override { return *SocketAddress::parse("198.18.0.1", 0); }
  SocketAddress reflector_address() const override { return *SocketAddress::parse("198.18.0.2:862", 862); }
  void serve(int drop_every) override {
    const WallNs t = time_;
    for (dp::ScriptedPort* port : dataplane_->ports) {
      for (dp::SentPacket& sent : port->take_sent()) {
        if (!(sent.destination == reflector_address())) {
          elsewhere_.push_back(std::move(sent));
          continue;
        }
        if (!answers(port->local_address().port(), drop_every)) continue;
        dp::RxPacket request;
        request.data = sent.data.data();
        request.capacity = request.length = static_cast<uint32_t>(sent.data.size());
        request.source = port->local_address();
        request.destination = reflector_address();
        request.rx = {t + 10'000, dp::TimestampSource::kHardware};
        std::vector<uint8_t> reply(std::max<size_t>(sent.data.size(), 44) + 64);
        dp::TxPacket out;
        if (!reflector_.reflect_at(request, reply, ClockState{}, Now{t + 20'000, t + 20'000}, out)) continue;
        dp::ScriptedPacket back;
        back.data.assign(reply.begin(), reply.begin() + out.length);
        back.source = reflector_address();
        back.arrival = dataplane_->clock().at_wall(t + 40'000);
        port->deliver(std::move(back));
      }
    }
  }
  Now now() override { return Now{time_, time_}; }
  Now at(MonoNs mono) override {
    time_ = std::max(time_, mono);
    dataplane_->set_clock(dataplane_->clock().at_wall(time_));
    return Now{mono, mono};
  }
  void pass(int64_t ns) override { at(time_ + ns); }
  uint16_t free_port() override { return next_free_++; }
  SocketAddress refused_target() const override { return reflector_address(); }
  void refuse_sends() override { dataplane_->set_send_capacity(0); }

  SocketAddress listen_address() const override { return *SocketAddress::parse("198.18.0.1:862", 862); }
  SocketAddress sender_address() const override { return *SocketAddress::parse("198.18.0.3:50000", 862); }
  /// The request arrives 10 µs after the clock's reading, with TTL 64.
  void send_to(const SocketAddress& to, std::span<const uint8_t> data) override {
    for (dp::ScriptedPort* port : dataplane_->ports) {
      if (!(port->local_address() == to)) continue;
      dp::ScriptedPacket packet;
      packet.data.assign(data.begin(), data.end());
      packet.source = sender_address();
      packet.destination = to;
      packet.arrival = dataplane_->clock().at_wall(time_ + 10'000);
      packet.ttl = 64;
      port->deliver(std::move(packet));
      return;
    }
    ADD_FAILURE() << "no open port at " << to.to_string();
  }
  /// A reply is back 20 µs after the clock's reading.
  std::vector<Datagram> take_replies() override {
    for (dp::ScriptedPort* port : dataplane_->ports) {
      for (dp::SentPacket& sent : port->take_sent()) elsewhere_.push_back(std::move(sent));
    }
    std::vector<Datagram> out;
    for (dp::SentPacket& sent : elsewhere_) {
      if (!(sent.destination == sender_address())) continue;
      out.push_back({std::move(sent.data), sent.source, {time_ + 20'000, dp::TimestampSource::kHardware}});
    }
    elsewhere_.clear();
    return out;
  }

 private:
  std::shared_ptr<ScriptedDataplane> dataplane_;
  std::vector<dp::SentPacket> elsewhere_;  ///< what the ports sent to others than the far reflector
  WallNs time_ = kStart;                   ///< the script's time: wall and monotonic alike (no step in these timelines)
  uint16_t next_free_ = 30000;
};

inline std::unique_ptr<TestBackend> make_backend(BackendKind kind, bool stateful) {
  if (kind == BackendKind::kKernel) return std::make_unique<KernelBackend>(stateful);
  return std::make_unique<ScriptedBackend>(stateful);
}

}  // namespace hubprobe::test
