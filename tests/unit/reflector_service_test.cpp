// SPDX-License-Identifier: Apache-2.0
// The reflector service on every backend of the tests (engine_backends.h): the kernel on loopback and a
// scripted port. A remote sender's request is answered by the service's step with T2 and T3 in order,
// and the guards in front of the engine (allow list, rate limit) hold on both.
#include <gtest/gtest.h>

#include <array>

#include "engine_backends.h"
#include "hubprobe/reflector_service.h"
#include "hubprobe/session_sender.h"

namespace hubprobe {
namespace {

using test::BackendKind;

class ReflectorServiceTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  ReflectorServiceTest() : backend_(test::make_backend(GetParam(), false)) {}

  std::unique_ptr<ReflectorService> open(ReflectorServiceOptions options) {
    options.listen = {backend_->listen_address()};
    auto service = ReflectorService::open(*backend_->dataplane(), std::move(options));
    EXPECT_TRUE(service.ok()) << service.error().message;
    return service ? std::move(*service) : nullptr;
  }
  // The remote sender's session against the service.
  stamp::SessionSender sender_for(const ReflectorService& service) {
    stamp::SenderOptions options;
    options.tx_timestamp_grace_ns = 0;
    return stamp::SessionSender(options, service.local_addresses().at(0));
  }
  // The remote sender sends a probe to the service, which steps until it has seen it (a bounded number of
  // steps: at most a second on the kernel).
  void probe(ReflectorService& service, stamp::SessionSender& sender) {
    std::array<uint8_t, 256> buffer{};
    const Now sent_at = backend_->now();
    auto request = sender.build_probe(buffer, sent_at, ClockState{});
    ASSERT_TRUE(request.ok());
    request->sent_at = {sent_at.wall, dp::TimestampSource::kUser};
    sender.on_sent(*request);
    const auto counted = [&] {
      const ReflectorServiceCounters c = service.counters();
      return c.engine.reflected + c.dropped_not_allowed + c.dropped_rate_limited;
    };
    const uint64_t before = counted();
    backend_->send_to(service.local_addresses().at(0), std::span(buffer.data(), request->length));
    for (int i = 0; i < 1000 && counted() == before; ++i) {
      backend_->pass(1'000'000);
      service.step(backend_->now());
    }
    ASSERT_GT(counted(), before) << "the request never reached the service";
  }
  // The replies back at the remote sender, handed to its session; returns its events.
  std::vector<stamp::ProbeEvent> replies_to(stamp::SessionSender& sender) {
    for (test::TestBackend::Datagram& reply : backend_->take_replies()) {
      dp::RxPacket packet;
      packet.data = reply.data.data();
      packet.capacity = packet.length = static_cast<uint32_t>(reply.data.size());
      packet.source = reply.source;
      packet.rx = reply.rx;
      sender.on_receive(packet, backend_->now());
    }
    return sender.poll_events();
  }

  std::unique_ptr<test::TestBackend> backend_;
};

INSTANTIATE_TEST_SUITE_P(Backends, ReflectorServiceTest,
                         ::testing::Values(BackendKind::kKernel, BackendKind::kScripted), test::backend_name);

TEST_P(ReflectorServiceTest, StepAnswersARequestWithT2AndT3InOrder) {
  auto service = open({});
  ASSERT_NE(service, nullptr);
  stamp::SessionSender sender = sender_for(*service);
  probe(*service, sender);
  const std::vector<stamp::ProbeEvent> events = replies_to(sender);
  ASSERT_EQ(events.size(), 1u);
  ASSERT_EQ(events[0].kind, stamp::ProbeEvent::Kind::kReply);
  const stamp::Sample& sample = events[0].sample;
  // One host, one clock (the scripted port's as wall time): the request left, arrived, was answered and came
  // back in that order.
  EXPECT_LE(sample.t1.ns, sample.t2);
  EXPECT_LE(sample.t2, sample.t3);
  EXPECT_LE(sample.t3, sample.t4.ns);
  EXPECT_GT(sample.rtt_ns(), 0);
  EXPECT_GT(sample.reflector_ttl, 0) << "the TTL the request arrived with";
  const ReflectorServiceCounters counters = service->counters();
  EXPECT_EQ(counters.engine.reflected, 1u);
  EXPECT_EQ(counters.send_errors, 0u);
}

TEST_P(ReflectorServiceTest, SourcesOutsideTheAllowListAreNotAnswered) {
  ReflectorServiceOptions options;
  options.allow = [](const SocketAddress&) { return false; };
  auto service = open(options);
  ASSERT_NE(service, nullptr);
  stamp::SessionSender sender = sender_for(*service);
  probe(*service, sender);
  EXPECT_EQ(service->counters().dropped_not_allowed, 1u);
  EXPECT_EQ(service->counters().engine.reflected, 0u);
  backend_->pass(1'000'000);
  service->step(backend_->now());
  EXPECT_TRUE(backend_->take_replies().empty());
}

TEST_P(ReflectorServiceTest, RateLimitAnswersTheBudgetAndDropsTheRest) {
  ReflectorServiceOptions options;
  options.rate_limit_pps = 2;  // a burst of two, then one every 500 ms
  auto service = open(options);
  ASSERT_NE(service, nullptr);
  stamp::SessionSender sender = sender_for(*service);
  for (int i = 0; i < 3; ++i) probe(*service, sender);
  EXPECT_EQ(service->counters().engine.reflected, 2u);
  EXPECT_EQ(service->counters().dropped_rate_limited, 1u);
}

}  // namespace
}  // namespace hubprobe
