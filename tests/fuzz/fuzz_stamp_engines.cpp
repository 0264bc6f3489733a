// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the STAMP engines (fuzz_stamp_parse covers the codec alone): a stamp::SessionSender
// and a stamp::SessionReflector, unauthenticated or authenticated with a fixed key, driven by a script the
// input spells out: build and send probes, reflect them, deliver replies (as reflected, altered octet by
// octet, re-signed so that the HMAC still holds, cut short or from elsewhere), datagrams made of raw input,
// TX timestamps, the clock advancing. The input's first octets choose the options (mode, stateful,
// short requests, per-source keys, timestamp format, packet size, TX-stamp grace).
//
// Invariants: nothing crashes or reads or writes outside its buffers (exact-size heap copies, ASan); a
// reflector's reply is never larger than its request (but for a 14..43-octet request with
// answer_short_requests, answered with 44 octets) and decodes as a reflected packet of the same mode and
// key; every datagram the reflector receives is reflected or counted as one drop; every datagram the
// sender receives ends as exactly one of a reply, a duplicate, a late reply or a counted invalid datagram;
// every probe sent is answered, lost or still in flight.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "hubprobe/session_reflector.h"
#include "hubprobe/session_sender.h"
#include "hubprobe/stamp.h"

namespace {

using namespace hubprobe;
using stamp::Mode;

std::shared_ptr<const stamp::HmacKey> fuzz_key() {
  static const auto key = [] {
    auto k = std::make_shared<stamp::HmacKey>();
    for (uint8_t i = 0; i < 32; ++i) k->bytes.push_back(i);  // the key of fuzz_stamp_parse and its corpus
    return std::shared_ptr<const stamp::HmacKey>(k);
  }();
  return key;
}

SocketAddress address(const char* text) { return SocketAddress::parse(text, kDefaultStampPort).value(); }

// Signs an authenticated packet's base again after the harness altered it, as a sender holding the key
// would have: the HMAC covers the first 96 octets and sits right after them (RFC 8762 section 4.4).
void resign(std::vector<uint8_t>& packet) {
  if (packet.size() < STAMP_AUTH_BASE_LEN) return;
  const auto mac = stamp::hmac16(*fuzz_key(), std::span<const uint8_t>(packet.data(), STAMP_AUTH_HMAC_OFFSET));
  std::memcpy(packet.data() + STAMP_AUTH_HMAC_OFFSET, mac.data(), mac.size());
}

// Flips, overwrites or cuts octets of `packet` as the input says.
void alter(FuzzedDataProvider& in, std::vector<uint8_t>& packet) {
  const unsigned edits = in.ConsumeIntegralInRange<unsigned>(0, 4);
  for (unsigned i = 0; i < edits && !packet.empty(); ++i) {
    const size_t at = in.ConsumeIntegralInRange<size_t>(0, packet.size() - 1);
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: packet[at] ^= in.ConsumeIntegral<uint8_t>(); break;
      case 1: {  // overwrite a run (TLV headers and values in the padding, say)
        const auto run = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(1, 16));
        for (size_t j = 0; j < run.size() && at + j < packet.size(); ++j) packet[at + j] = run[j];
        break;
      }
      case 2: packet.resize(at); break;
      case 3: {  // longer, filled with one octet
        const size_t more = in.ConsumeIntegralInRange<size_t>(1, 32);
        packet.resize(packet.size() + more, in.ConsumeIntegral<uint8_t>());
        break;
      }
    }
  }
}

struct Harness {
  Mode mode = Mode::kUnauthenticated;
  bool answer_short = false;
  std::unique_ptr<stamp::SessionSender> sender;
  std::unique_ptr<stamp::SessionReflector> reflector;
  SocketAddress reflector_address = address("198.18.0.2:862");
  SocketAddress sender_address = address("198.18.0.1:40000");
  Now now{1'800'000'000'000'000'000, 1'000'000'000};
  ClockState clock{true, 0.000'01, 37};
  std::vector<std::vector<uint8_t>> probes;   // as sent
  std::vector<std::vector<uint8_t>> replies;  // as the reflector answered them
  uint32_t next_tx_id = 1;
  uint64_t delivered = 0;  // datagrams given to the sender

  uint64_t sender_outcomes() const {
    const auto& c = sender->counters();
    return c.received + c.invalid + c.duplicates + c.late;
  }

  void check_sender() const {
    const auto& c = sender->counters();
    if (sender_outcomes() > delivered) abort();  // one datagram, at most one outcome
    if (c.sent != c.received + c.lost + sender->in_flight()) abort();
  }

  // Hands `datagram` to the sender; with `as_is` false the packet metadata is altered too.
  void deliver(std::vector<uint8_t> datagram, FuzzedDataProvider& in, bool as_is) {
    const uint64_t before = sender_outcomes();
    const auto copy = std::make_unique<uint8_t[]>(std::max<size_t>(datagram.size(), 1));
    std::copy(datagram.begin(), datagram.end(), copy.get());
    dp::RxPacket packet;
    packet.data = copy.get();
    packet.capacity = static_cast<uint32_t>(datagram.size());
    packet.length = static_cast<uint32_t>(datagram.size());
    packet.source = reflector_address;
    packet.destination = sender_address;
    packet.ttl = 60;
    packet.rx = dp::Timestamp{now.wall + 1000, dp::TimestampSource::kKernelSoftware};
    if (!as_is) {
      const uint8_t how = in.ConsumeIntegral<uint8_t>();
      if (how & 1) packet.truncated = true;
      if (how & 2) packet.source = address("198.18.0.3:862");
      if (how & 4) packet.rx = dp::Timestamp{};
      if (how & 8)
        packet.rx.ns = now.wall + in.ConsumeIntegralInRange<int64_t>(-86'400'000'000'000, 86'400'000'000'000);
      if (how & 16) packet.ttl = -1;
    }
    sender->on_receive(packet, now);
    ++delivered;
    const uint64_t outcomes = sender_outcomes() - before;
    // Without a TX-stamp grace a reply completes at once; with one it may wait (counted when it completes).
    if (outcomes > 1 || (sender->options().tx_timestamp_grace_ns == 0 && outcomes != 1)) abort();
    for (const auto& event : sender->poll_events()) {
      if (event.kind != stamp::ProbeEvent::Kind::kReply) continue;
      const stamp::Sample& sample = event.sample;
      if (sample.length != sender->packet_size() || sample.seq >= sender->next_seq()) abort();
      // What the statistics compute from a sample: defined for any reflector's T2 and T3.
      volatile int64_t rtt = sample.rtt_ns(), forward = sample.forward_ns(), backward = sample.backward_ns();
      volatile double error = sample.one_way_error_s();
      (void)rtt, (void)forward, (void)backward, (void)error;
    }
    check_sender();
  }

  // Gives `request` to the reflector from `source`; checks the reply and keeps it.
  void reflect(const std::vector<uint8_t>& request, const SocketAddress& source, FuzzedDataProvider& in) {
    const auto& c = reflector->counters();
    const uint64_t received = c.received, reflected = c.reflected, dropped = c.dropped();
    const auto copy = std::make_unique<uint8_t[]>(std::max<size_t>(request.size(), 1));
    std::copy(request.begin(), request.end(), copy.get());
    dp::RxPacket packet;
    packet.data = copy.get();
    packet.capacity = static_cast<uint32_t>(request.size());
    packet.length = static_cast<uint32_t>(request.size());
    packet.source = source;
    packet.destination = reflector_address;
    packet.ttl = in.ConsumeIntegralInRange<int>(-1, 255);
    packet.tos = in.ConsumeIntegralInRange<int>(-1, 255);
    if (in.ConsumeBool()) packet.rx = dp::Timestamp{now.wall - 500, dp::TimestampSource::kKernelSoftware};
    // The reply buffer as a backend sizes it: the request or the 44-octet base, whichever is larger, or
    // (sometimes) shorter than the request.
    size_t room = std::max<size_t>(request.size(), STAMP_UNAUTH_BASE_LEN);
    if (in.ConsumeIntegralInRange<int>(0, 15) == 0) room = in.ConsumeIntegralInRange<size_t>(0, room);
    const auto out = std::make_unique<uint8_t[]>(std::max<size_t>(room, 1));
    dp::TxPacket reply;
    const bool ok = reflector->reflect(
        packet, std::span<uint8_t>(out.get(), room), clock,
        [&] {
          return stamp::T3Reading{now, 250};
        },
        reply);
    if (c.received != received + 1) abort();
    if (ok != (c.reflected == reflected + 1) || c.dropped() != dropped + (ok ? 0 : 1)) abort();
    if (c.received != c.reflected + c.dropped()) abort();
    if (reflector->options().stateful && c.sessions_active > reflector->options().max_sessions) abort();
    if (!ok) return;
    const size_t allowed = (answer_short && mode == Mode::kUnauthenticated && request.size() < STAMP_UNAUTH_BASE_LEN)
                               ? STAMP_UNAUTH_BASE_LEN
                               : request.size();
    if (reply.length > allowed || reply.length > room || reply.data != out.get()) abort();
    if (!(reply.destination == source) || !(reply.source == reflector_address) || reply.tos != packet.tos) abort();
    // An exact-size copy: the reply must decode as a reflected packet of the same mode and key.
    std::vector<uint8_t> answer(out.get(), out.get() + reply.length);
    const auto exact = std::make_unique<uint8_t[]>(answer.size());
    std::copy(answer.begin(), answer.end(), exact.get());
    const auto decoded =
        stamp::decode_reflected_packet(std::span<const uint8_t>(exact.get(), answer.size()), mode, fuzz_key().get());
    if (!decoded.ok) abort();
    if (replies.size() < 64) replies.push_back(std::move(answer));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Harness h;
  const uint8_t options = in.ConsumeIntegral<uint8_t>();
  h.mode = (options & 1) ? Mode::kAuthenticated : Mode::kUnauthenticated;
  h.answer_short = (options & 4) != 0;
  const TimestampFormat format = (options & 16) ? TimestampFormat::kPtp : TimestampFormat::kNtp;

  stamp::SenderOptions sender_options;
  sender_options.mode = h.mode;
  sender_options.key = fuzz_key();
  sender_options.format = format;
  sender_options.ssid = in.ConsumeIntegral<uint16_t>();
  sender_options.packet_size =
      static_cast<uint32_t>(stamp::base_length(h.mode) + in.ConsumeIntegralInRange<uint32_t>(0, 96));
  sender_options.timeout_ns = 1'000'000'000;
  sender_options.tx_timestamp_grace_ns = (options & 8) ? 20'000'000 : 0;
  h.sender = std::make_unique<stamp::SessionSender>(sender_options, h.reflector_address);

  stamp::ReflectorOptions reflector_options;
  reflector_options.mode = h.mode;
  reflector_options.key = fuzz_key();
  reflector_options.stateful = (options & 2) != 0;
  reflector_options.answer_short_requests = h.answer_short;
  reflector_options.format = format;
  reflector_options.max_sessions = 4;  // small, so that eviction runs
  reflector_options.session_idle_ns = 2'000'000'000;
  if (options & 32) {  // per-source keys: odd source ports have none (their requests drop as bad HMAC)
    reflector_options.key_for = [](const SocketAddress& source) { return (source.port() & 1) ? nullptr : fuzz_key(); };
  }
  h.reflector = std::make_unique<stamp::SessionReflector>(reflector_options);

  std::vector<uint8_t> buffer(h.sender->packet_size());
  for (int step = 0; step < 256 && in.remaining_bytes() > 0; ++step) {
    switch (in.ConsumeIntegralInRange<int>(0, 9)) {
      case 0: {  // build a probe; it leaves, fails to leave, or is built again before it left
        auto probe = h.sender->build_probe(buffer, h.now, h.clock);
        if (!probe) abort();
        const int outcome = in.ConsumeIntegralInRange<int>(0, 5);
        if (outcome == 0) {
          h.sender->on_send_failed();
        } else if (outcome != 1) {
          probe->tx_id = h.next_tx_id++;
          probe->sent_at = dp::Timestamp{h.now.wall, dp::TimestampSource::kUser};
          h.sender->on_sent(*probe);
          if (h.probes.size() < 64) h.probes.emplace_back(probe->data, probe->data + probe->length);
        }
        h.check_sender();
        break;
      }
      case 1:  // a probe as sent reaches the reflector
        if (!h.probes.empty()) {
          h.reflect(h.probes[in.ConsumeIntegralInRange<size_t>(0, h.probes.size() - 1)], h.sender_address, in);
        }
        break;
      case 2: {  // a probe altered on the way (TLVs in its padding, another SSID, ...), re-signed or not
        if (h.probes.empty()) break;
        auto request = h.probes[in.ConsumeIntegralInRange<size_t>(0, h.probes.size() - 1)];
        alter(in, request);
        if (h.mode == Mode::kAuthenticated && in.ConsumeBool()) resign(request);
        SocketAddress source = h.sender_address;
        source.set_port(in.ConsumeIntegral<uint16_t>());
        h.reflect(request, source, in);
        break;
      }
      case 3: {  // raw input as a request, signed in authenticated mode
        auto request = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 300));
        if (h.mode == Mode::kAuthenticated && in.ConsumeBool()) resign(request);
        h.reflect(request, h.sender_address, in);
        break;
      }
      case 4:  // a reply as the reflector sent it
        if (!h.replies.empty()) {
          h.deliver(h.replies[in.ConsumeIntegralInRange<size_t>(0, h.replies.size() - 1)], in, true);
        }
        break;
      case 5: {  // a reply altered on the way, re-signed or not, with other metadata
        if (h.replies.empty()) break;
        auto reply = h.replies[in.ConsumeIntegralInRange<size_t>(0, h.replies.size() - 1)];
        alter(in, reply);
        if (h.mode == Mode::kAuthenticated && in.ConsumeBool()) resign(reply);
        h.deliver(std::move(reply), in, false);
        break;
      }
      case 6: {  // raw input as a reply, signed in authenticated mode
        auto reply = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 300));
        if (h.mode == Mode::kAuthenticated && in.ConsumeBool()) resign(reply);
        h.deliver(std::move(reply), in, in.ConsumeBool());
        break;
      }
      case 7: {  // a TX timestamp, for a probe sent or for any id
        dp::TxTimestamp tx;
        tx.tx_id = in.ConsumeBool() ? h.next_tx_id - 1 : in.ConsumeIntegral<uint32_t>();
        tx.ts = dp::Timestamp{h.now.wall + in.ConsumeIntegralInRange<int64_t>(-2'000'000'000, 2'000'000'000),
                              dp::TimestampSource::kKernelSoftware};
        h.sender->on_tx_timestamp(tx);
        (void)h.sender->poll_events();
        h.check_sender();
        break;
      }
      case 8: {  // time passes (monotonic; the wall clock may step as well)
        const int64_t step_ns = in.ConsumeIntegralInRange<int64_t>(0, 3'000'000'000);
        h.now.mono += step_ns;
        h.now.wall +=
            in.ConsumeBool() ? step_ns : in.ConsumeIntegralInRange<int64_t>(-3'600'000'000'000, 3'600'000'000'000);
        const bool early = in.ConsumeBool();  // advance() before anything is due, too
        if (early || h.sender->next_deadline() <= h.now.mono) h.sender->advance(h.now.mono);
        h.reflector->expire_sessions(h.now.mono);
        (void)h.sender->poll_events();
        h.check_sender();
        break;
      }
      case 9: {  // the clock's state changes
        h.clock.synchronized = in.ConsumeBool();
        h.clock.error_bound_s = in.ConsumeFloatingPointInRange<double>(0, 20);
        h.clock.tai_offset_s = in.ConsumeIntegralInRange<int32_t>(0, 60);
        break;
      }
    }
  }
  // Whatever is left completes or is lost: then every datagram delivered has exactly one outcome.
  h.now.mono += 10'000'000'000;
  h.sender->advance(h.now.mono);
  (void)h.sender->poll_events();
  if (h.sender->in_flight() != 0 || h.sender_outcomes() != h.delivered) abort();
  h.check_sender();
  return 0;
}
