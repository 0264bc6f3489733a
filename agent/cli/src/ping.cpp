// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/ping.h"

#include <fmt/format.h>
#include <poll.h>

#include <array>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <vector>

#include "hubprobe/dataplane.h"
#include "hubprobe/session_sender.h"
#include "hubprobe/summary.h"

namespace hubprobe {

namespace {

constexpr size_t kRxBatch = 32;
constexpr uint32_t kRxBufferSize = 9216;  // a jumbo frame; longer replies are truncated and refused
constexpr WallNs kClockRefreshNs = 1'000'000'000;

double to_us(WallNs ns) { return static_cast<double>(ns) / 1000.0; }

nlohmann::json distribution_json(const Distribution& d) {
  return {{"count", d.count}, {"min", d.min},   {"mean", d.mean}, {"p50", d.p50},      {"p90", d.p90},
          {"p99", d.p99},     {"p999", d.p999}, {"max", d.max},   {"stddev", d.stddev}};
}

std::string ms(double us) { return fmt::format("{:.3f}", us / 1000.0); }

double percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

// The most frequent timestamp source among the samples, e.g. "kernel".
std::string dominant(const std::map<std::string, uint64_t>& counts) {
  std::string best = "none";
  uint64_t most = 0;
  for (const auto& [name, n] : counts) {
    if (n > most) {
      best = name;
      most = n;
    }
  }
  return best;
}

}  // namespace

int run_ping(const PingOptions& options, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop) {
  auto dataplane = dp::make_dataplane(options.backend);
  if (!dataplane) {
    err << "hubprobe ping: " << dataplane.error().message << "\n";
    return 3;
  }
  dp::PortOptions port_options;
  if (!options.source.empty()) {
    auto source = SocketAddress::parse(options.source, options.source_port);
    if (!source || source->family() != options.target.family()) {
      err << "hubprobe ping: source address " << options.source << " does not match the target's family\n";
      return 2;
    }
    port_options.local = *source;
  } else {
    port_options.local = SocketAddress::any(options.target.family(), options.source_port);
  }
  port_options.device = options.interface;
  port_options.fwmark = options.fwmark;
  port_options.dscp = options.dscp;
  port_options.tx_timestamps = true;
  auto opened = (*dataplane)->open_port(port_options);
  if (!opened) {
    err << "hubprobe ping: " << opened.error().message << "\n";
    return 3;
  }
  dp::Port& port = **opened;

  stamp::SenderOptions sender_options;
  sender_options.mode = options.key ? stamp::Mode::kAuthenticated : stamp::Mode::kUnauthenticated;
  sender_options.key = options.key;
  sender_options.format = options.format;
  sender_options.packet_size = options.size;
  sender_options.timeout_ns = options.timeout_ns;
  // A random non-zero SSID tells this run's replies from another sender's on the same reflector.
  sender_options.ssid = static_cast<uint16_t>((wall_now() ^ (static_cast<int64_t>(getpid()) << 16)) % 65535 + 1);
  stamp::SessionSender sender(sender_options, options.target);

  std::vector<uint8_t> probe_buffer(sender.packet_size());
  std::vector<std::array<uint8_t, kRxBufferSize>> rx_buffers(kRxBatch);
  std::array<dp::RxPacket, kRxBatch> rx{};
  for (size_t i = 0; i < kRxBatch; ++i) {
    rx[i].data = rx_buffers[i].data();
    rx[i].capacity = kRxBufferSize;
  }
  std::array<dp::TxTimestamp, 64> tx_stamps{};

  if (!options.json) {
    out << "STAMP " << options.target.to_string() << ": " << sender.packet_size() << " bytes, "
        << (options.key ? "authenticated" : "unauthenticated") << ", interval " << ms(to_us(options.interval_ns))
        << " ms\n";
    out.flush();
  }

  std::vector<stamp::Sample> samples;
  std::map<std::string, uint64_t> t1_sources, t4_sources;
  ClockState clock = read_clock_state();
  WallNs clock_read_at = wall_now();
  WallNs next_send = wall_now();
  const WallNs started = next_send;
  bool sending = true;

  while (true) {
    WallNs now = wall_now();
    if (stop.load()) sending = false;
    if (now - clock_read_at > kClockRefreshNs) {
      clock = read_clock_state();
      clock_read_at = now;
    }
    if (sending && options.count != 0 && sender.next_seq() >= options.count) sending = false;
    if (sending && now >= next_send) {
      auto probe = sender.build_probe(probe_buffer, now, clock);
      if (!probe) {
        err << "hubprobe ping: " << probe.error().message << "\n";
        return 3;
      }
      std::array<dp::TxPacket, 1> batch{*probe};
      auto sent = port.send(batch);
      if (sent && batch[0].error == 0) {
        sender.on_sent(batch[0]);
      } else {
        sender.on_send_failed();
        if (!options.json) {
          err << "hubprobe ping: send failed: " << (sent ? std::strerror(batch[0].error) : sent.error().message)
              << "\n";
        }
      }
      next_send += options.interval_ns;
      // After a stall (suspend, a slow terminal) keep the interval rather than bursting to catch up.
      if (next_send < now) next_send = now + options.interval_ns;
    }
    if (!sending && sender.in_flight() == 0) break;
    if (stop.load() && sender.in_flight() == 0) break;

    // Sleep until the next probe is due, waking for replies and TX timestamps.
    now = wall_now();
    WallNs wait = sending ? std::max<WallNs>(0, next_send - now) : 10'000'000;
    wait = std::min<WallNs>(wait, 10'000'000);  // also expire timeouts promptly
    pollfd descriptor{port.poll_fd(), POLLIN, 0};
    const timespec timeout{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    (void)ppoll(&descriptor, 1, &timeout, nullptr);

    // TX timestamps first, so replies find their kernel T1 already there.
    for (size_t n; (n = port.drain_tx_timestamps(tx_stamps)) > 0;) {
      for (size_t i = 0; i < n; ++i) sender.on_tx_timestamp(tx_stamps[i]);
      if (n < tx_stamps.size()) break;
    }
    while (true) {
      auto received = port.receive(rx);
      if (!received || *received == 0) break;
      const WallNs arrival = wall_now();
      for (size_t i = 0; i < *received; ++i) sender.on_receive(rx[i], arrival);
      if (*received < rx.size()) break;
    }
    sender.advance(wall_now());

    for (const auto& event : sender.poll_events()) {
      if (event.kind == stamp::ProbeEvent::Kind::kReply) {
        const auto& s = event.sample;
        samples.push_back(s);
        ++t1_sources[dp::to_string(s.t1.source)];
        ++t4_sources[dp::to_string(s.t4.source)];
        if (!options.json && !options.quiet) {
          out << s.length << " bytes from " << options.target.to_string() << ": seq=" << s.seq
              << " rtt=" << ms(to_us(s.rtt_ns())) << " ms turnaround=" << ms(to_us(s.turnaround_ns())) << " ms";
          if (s.one_way_valid()) {
            out << " fwd=" << ms(to_us(s.forward_ns())) << " ms bwd=" << ms(to_us(s.backward_ns())) << " ms (±"
                << ms(s.one_way_error_s() * 1e6) << " ms)";
          }
          if (s.reflector_ttl >= 0) out << " ttl=" << s.reflector_ttl;
          out << "\n";
        }
      } else if (!options.json && !options.quiet) {
        if (event.kind == stamp::ProbeEvent::Kind::kLost) out << "no reply for seq=" << event.seq << "\n";
        if (event.kind == stamp::ProbeEvent::Kind::kLate) out << "late reply for seq=" << event.seq << "\n";
        if (event.kind == stamp::ProbeEvent::Kind::kDuplicate) out << "duplicate reply for seq=" << event.seq << "\n";
      }
    }
    if (!options.json) out.flush();
  }
  const WallNs elapsed = wall_now() - started;

  // Summary.
  const auto& c = sender.counters();
  const uint64_t sent = c.sent;
  std::vector<double> rtts, turnarounds, forward, backward;
  std::vector<SequencedDelay> sequenced;
  std::vector<ReplySequence> sequences;
  bool one_way = !samples.empty();
  double one_way_error_us = 0;
  for (const auto& s : samples) {
    rtts.push_back(to_us(s.rtt_ns()));
    turnarounds.push_back(to_us(s.turnaround_ns()));
    sequenced.push_back({s.seq, to_us(s.rtt_ns())});
    sequences.push_back({s.seq, s.reflector_seq});
    one_way = one_way && s.one_way_valid();
    forward.push_back(to_us(s.forward_ns()));
    backward.push_back(to_us(s.backward_ns()));
    one_way_error_us = std::max(one_way_error_us, s.one_way_error_s() * 1e6);
  }
  const Distribution rtt = summarize(rtts);
  const Distribution turnaround = summarize(turnarounds);
  const double jitter = mean_abs_ipdv(sequenced);
  // Probes whose send failed never reached the wire; they count as sent and lost forward.
  const LossSplit loss = split_loss(sent + c.send_errors, sequences);
  const uint64_t attempted = sent + c.send_errors;

  if (options.json) {
    nlohmann::json doc;
    doc["target"] = options.target.to_string();
    doc["mode"] = options.key ? "authenticated" : "unauthenticated";
    doc["size"] = sender.packet_size();
    doc["sent"] = attempted;
    doc["received"] = c.received;
    doc["duplicates"] = c.duplicates;
    doc["late"] = c.late;
    doc["reordered"] = c.reordered;
    doc["invalid"] = c.invalid;
    doc["invalid_reasons"] = {{"too_short", c.invalid_too_short},         {"too_long", c.invalid_too_long},
                              {"bad_hmac", c.invalid_bad_hmac},           {"size_mismatch", c.invalid_size_mismatch},
                              {"wrong_session", c.invalid_wrong_session}, {"wrong_source", c.invalid_source},
                              {"unknown_sequence", c.unexpected}};
    doc["send_errors"] = c.send_errors;
    doc["loss"] = {
        {"forward", loss.forward}, {"backward", loss.backward}, {"unknown", loss.unknown}, {"total", loss.total()}};
    doc["loss_percent"] = {{"forward", percent(loss.forward, attempted)},
                           {"backward", percent(loss.backward, attempted)},
                           {"unknown", percent(loss.unknown, attempted)},
                           {"total", percent(loss.total(), attempted)}};
    doc["rtt_us"] = distribution_json(rtt);
    doc["jitter_us"] = jitter;
    doc["turnaround_us"] = distribution_json(turnaround);
    if (one_way) {
      doc["owd_us"] = {{"forward", distribution_json(summarize(forward))},
                       {"backward", distribution_json(summarize(backward))},
                       {"error_bound", one_way_error_us}};
    } else {
      doc["owd_us"] = nullptr;
    }
    doc["timestamps"] = {{"t1", dominant(t1_sources)},
                         {"t4", dominant(t4_sources)},
                         {"t1_sources", t1_sources},
                         {"t4_sources", t4_sources}};
    doc["clock"] = {{"synchronized", clock.synchronized}, {"error_bound_s", clock.error_bound_s}};
    doc["elapsed_s"] = static_cast<double>(elapsed) / 1e9;
    out << doc.dump() << "\n";
  } else {
    out << "\n--- " << options.target.to_string() << " hubprobe ping statistics ---\n";
    out << fmt::format("{} probes sent, {} replies received, {:.1f}% loss (forward {}, backward {}, unknown {})",
                       attempted, c.received, percent(loss.total(), attempted), loss.forward, loss.backward,
                       loss.unknown);
    if (c.duplicates) out << ", " << c.duplicates << " duplicates";
    if (c.late) out << ", " << c.late << " late";
    if (c.reordered) out << ", " << c.reordered << " reordered";
    if (c.invalid) out << ", " << c.invalid << " invalid";
    out << fmt::format(", time {:.0f} ms\n", static_cast<double>(elapsed) / 1e6);
    if (rtt.count > 0) {
      out << "rtt min/mean/p50/p90/p99/max/stddev = " << ms(rtt.min) << "/" << ms(rtt.mean) << "/" << ms(rtt.p50) << "/"
          << ms(rtt.p90) << "/" << ms(rtt.p99) << "/" << ms(rtt.max) << "/" << ms(rtt.stddev) << " ms\n";
      out << "jitter (mean |IPDV|) = " << ms(jitter) << " ms, reflector turnaround p50 = " << ms(turnaround.p50)
          << " ms, timestamps T1 " << dominant(t1_sources) << ", T4 " << dominant(t4_sources) << "\n";
      if (one_way) {
        const auto f = summarize(forward);
        const auto b = summarize(backward);
        out << "one-way p50 forward " << ms(f.p50) << " ms, backward " << ms(b.p50) << " ms (±" << ms(one_way_error_us)
            << " ms)\n";
      } else {
        out << "one-way delays not shown: " << (clock.synchronized ? "the reflector's" : "this host's")
            << " clock is not synchronised\n";
      }
    }
  }
  out.flush();
  return c.received > 0 ? 0 : 1;
}

}  // namespace hubprobe
