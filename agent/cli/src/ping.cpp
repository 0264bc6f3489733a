// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/ping.h"

#include <fmt/format.h>
#include <poll.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <vector>

#include "hubprobe/cli_usage.h"
#include "hubprobe/config.h"
#include "hubprobe/dataplane.h"
#include "hubprobe/probe_engine.h"
#include "hubprobe/summary.h"

namespace hubprobe {

namespace {

constexpr char kSession[] = "ping";  // the engine's one session
// Intervals, on the monotonic clock.
constexpr int64_t kClockRefreshNs = 1'000'000'000;
constexpr int64_t kMaxSleepNs = 10'000'000;  // also expires timeouts promptly

double to_us(int64_t ns) { return static_cast<double>(ns) / 1000.0; }

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

// What the engine reports about the session: a line per reply, loss, late or duplicate reply (unless
// --json or -q), and the samples for the summary.
class PingListener final : public ProbeListener {
 public:
  PingListener(const PingOptions& options, std::ostream& out, std::ostream& err)
      : options_(options), out_(out), err_(err) {}

  void on_probe_sent(const std::string&, uint32_t, const Now&) override {}
  void on_probe_event(const std::string&, const stamp::ProbeEvent& event, const Now&) override {
    const bool lines = !options_.json && !options_.quiet;
    if (event.kind == stamp::ProbeEvent::Kind::kReply) {
      samples.push_back(event.sample);
      ++t1_sources[dp::to_string(event.sample.t1.source)];
      ++t4_sources[dp::to_string(event.sample.t4.source)];
      if (lines) print_reply(event.sample);
    } else if (lines) {
      if (event.kind == stamp::ProbeEvent::Kind::kLost) out_ << "no reply for seq=" << event.seq << "\n";
      if (event.kind == stamp::ProbeEvent::Kind::kLate) out_ << "late reply for seq=" << event.seq << "\n";
      if (event.kind == stamp::ProbeEvent::Kind::kDuplicate) out_ << "duplicate reply for seq=" << event.seq << "\n";
    }
  }
  void on_send_failed(const std::string&, uint32_t, const Error& error) override {
    if (!options_.json) err_ << "hubprobe ping: send failed: " << error.message << "\n";
  }
  void on_build_failed(const std::string&, const Error& error) override { build_error = error; }

  std::vector<stamp::Sample> samples;
  std::map<std::string, uint64_t> t1_sources, t4_sources;
  std::optional<Error> build_error;  ///< a probe that could not be built ends the run

 private:
  void print_reply(const stamp::Sample& s) {
    out_ << s.length << " bytes from " << options_.target.to_string() << ": seq=" << s.seq
         << " rtt=" << ms(to_us(s.rtt_ns())) << " ms turnaround=" << ms(to_us(s.turnaround_ns())) << " ms";
    if (s.one_way_valid()) {
      out_ << " fwd=" << ms(to_us(s.forward_ns())) << " ms bwd=" << ms(to_us(s.backward_ns())) << " ms (±"
           << ms(s.one_way_error_s() * 1e6) << " ms)";
    }
    if (s.reflector_ttl >= 0) out_ << " ttl=" << s.reflector_ttl;
    out_ << "\n";
  }

  const PingOptions& options_;
  std::ostream& out_;
  std::ostream& err_;
};

// The one session of the run; the error says why -S does not fit the target.
Result<SessionSpec> session_spec(const PingOptions& options) {
  SessionSpec spec;
  spec.id = kSession;
  spec.target = options.target;
  spec.mode = options.key ? stamp::Mode::kAuthenticated : stamp::Mode::kUnauthenticated;
  spec.key = options.key;
  spec.packet_size = options.size;
  spec.dscp = options.dscp;
  spec.interval_ns = options.interval_ns;
  spec.timeout_ns = options.timeout_ns;
  spec.format = options.format;
  spec.device = options.interface;
  spec.fwmark = options.fwmark;
  spec.count = options.count;
  if (options.source.empty()) {
    spec.source = SocketAddress::any(options.target.family(), options.source_port);
    return spec;
  }
  auto source = SocketAddress::parse(options.source, options.source_port);
  if (!source || source->family() != options.target.family()) {
    return make_error("source address " + options.source + " does not match the target's family");
  }
  spec.source = *source;
  return spec;
}

// The engine names the session in its errors ("session ping: ..."); a ping has only the one.
std::string without_session(const Error& error) {
  const std::string prefix = std::string("session ") + kSession + ": ";
  return error.message.rfind(prefix, 0) == 0 ? error.message.substr(prefix.size()) : error.message;
}

// Sleeps until the next probe is due, at most kMaxSleepNs, waking for replies and TX timestamps.
// A busy-polled port is not slept on: its RX stamp is taken when it is polled.
void sleep_until_due(const ProbeEngine& engine) {
  if (engine.wait_kind() == dp::WaitKind::kBusyPoll) return;
  const MonoNs now = mono_now();
  const int64_t wait = std::max<int64_t>(0, std::min(engine.next_due(), now + kMaxSleepNs) - now);
  std::vector<pollfd> descriptors;
  for (const int fd : engine.poll_fds()) descriptors.push_back({fd, POLLIN, 0});
  const timespec timeout{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
  (void)ppoll(descriptors.data(), descriptors.size(), &timeout, nullptr);
}

// Ticks the engine until the session is finished: its count sent (or `stop`), and every probe answered
// or timed out. Returns the clock state last read, or the error of a probe that could not be built.
Result<ClockState> run_session(ProbeEngine& engine, PingListener& listener, const PingOptions& options,
                               std::ostream& out, const std::atomic<bool>& stop) {
  ClockState clock = read_clock_state();
  MonoNs clock_read_at = mono_now();
  while (true) {
    const Now now = read_now();
    if (now.mono - clock_read_at > kClockRefreshNs) {
      clock = read_clock_state();
      clock_read_at = now.mono;
    }
    if (stop.load()) engine.stop_sending(kSession);
    engine.run_tick(now, clock, listener);
    if (listener.build_error) return *listener.build_error;
    if (!options.json) out.flush();
    if (engine.finished(kSession)) return clock;
    sleep_until_due(engine);
  }
}

// What the summary says, from the samples and counters of the run.
struct PingReport {
  stamp::SenderCounters counters;
  uint64_t attempted = 0;  ///< sent, and failed sends: those never reached the wire
  uint32_t size = 0;
  Distribution rtt, turnaround, forward, backward;
  double jitter_us = 0;
  LossSplit loss;
  bool one_way = false;
  double one_way_error_us = 0;
  std::string t1, t4;  ///< the dominant timestamp sources
  ClockState clock;
  int64_t elapsed = 0;  ///< monotonic, from adding the session to the end of the run
};

PingReport make_report(const PingListener& listener, const ProbeEngine& engine) {
  PingReport report;
  const stamp::SessionSender& sender = *engine.sender(kSession);
  report.counters = sender.counters();
  // The engine keeps the replies that match no session to itself; with one session, those are the
  // ones from another address than the reflector's.
  report.counters.invalid += engine.counters().unmatched_replies;
  report.counters.invalid_source += engine.counters().unmatched_replies;
  report.attempted = report.counters.sent + report.counters.send_errors;
  report.size = sender.packet_size();
  std::vector<double> rtts, turnarounds, forward, backward;
  std::vector<SequencedDelay> sequenced;
  std::vector<ReplySequence> sequences;
  report.one_way = !listener.samples.empty();
  for (const auto& s : listener.samples) {
    sequences.push_back({s.seq, s.reflector_seq});
    if (s.clock_stepped) continue;  // answered, but its delays are not measurements
    rtts.push_back(to_us(s.rtt_ns()));
    turnarounds.push_back(to_us(s.turnaround_ns()));
    sequenced.push_back({s.seq, to_us(s.rtt_ns())});
    report.one_way = report.one_way && s.one_way_valid();
    forward.push_back(to_us(s.forward_ns()));
    backward.push_back(to_us(s.backward_ns()));
    report.one_way_error_us = std::max(report.one_way_error_us, s.one_way_error_s() * 1e6);
  }
  report.rtt = summarize(rtts);
  report.turnaround = summarize(turnarounds);
  report.forward = summarize(forward);
  report.backward = summarize(backward);
  report.jitter_us = mean_abs_ipdv(sequenced);
  report.loss = split_loss(report.attempted, sequences);
  report.t1 = dominant(listener.t1_sources);
  report.t4 = dominant(listener.t4_sources);
  return report;
}

void print_json(const PingOptions& options, const PingReport& r, const PingListener& listener, std::ostream& out) {
  const auto& c = r.counters;
  nlohmann::json doc;
  doc["target"] = options.target.to_string();
  doc["mode"] = options.key ? "authenticated" : "unauthenticated";
  doc["size"] = r.size;
  doc["sent"] = r.attempted;
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
  doc["loss"] = {{"forward", r.loss.forward},
                 {"backward", r.loss.backward},
                 {"unknown", r.loss.unknown},
                 {"total", r.loss.total()}};
  doc["loss_percent"] = {{"forward", percent(r.loss.forward, r.attempted)},
                         {"backward", percent(r.loss.backward, r.attempted)},
                         {"unknown", percent(r.loss.unknown, r.attempted)},
                         {"total", percent(r.loss.total(), r.attempted)}};
  doc["rtt_us"] = distribution_json(r.rtt);
  doc["jitter_us"] = r.jitter_us;
  doc["turnaround_us"] = distribution_json(r.turnaround);
  if (r.one_way) {
    doc["owd_us"] = {{"forward", distribution_json(r.forward)},
                     {"backward", distribution_json(r.backward)},
                     {"error_bound", r.one_way_error_us}};
  } else {
    doc["owd_us"] = nullptr;
  }
  doc["timestamps"] = {
      {"t1", r.t1}, {"t4", r.t4}, {"t1_sources", listener.t1_sources}, {"t4_sources", listener.t4_sources}};
  doc["clock"] = {{"synchronized", r.clock.synchronized}, {"error_bound_s", r.clock.error_bound_s}};
  doc["elapsed_s"] = static_cast<double>(r.elapsed) / 1e9;
  out << doc.dump() << "\n";
}

void print_text(const PingOptions& options, const PingReport& r, std::ostream& out) {
  const auto& c = r.counters;
  out << "\n--- " << options.target.to_string() << " hubprobe ping statistics ---\n";
  out << fmt::format("{} probes sent, {} replies received, {:.1f}% loss (forward {}, backward {}, unknown {})",
                     r.attempted, c.received, percent(r.loss.total(), r.attempted), r.loss.forward, r.loss.backward,
                     r.loss.unknown);
  if (c.duplicates) out << ", " << c.duplicates << " duplicates";
  if (c.late) out << ", " << c.late << " late";
  if (c.reordered) out << ", " << c.reordered << " reordered";
  if (c.invalid) out << ", " << c.invalid << " invalid";
  out << fmt::format(", time {:.0f} ms\n", static_cast<double>(r.elapsed) / 1e6);
  if (r.rtt.count == 0) return;
  out << "rtt min/mean/p50/p90/p99/max/stddev = " << ms(r.rtt.min) << "/" << ms(r.rtt.mean) << "/" << ms(r.rtt.p50)
      << "/" << ms(r.rtt.p90) << "/" << ms(r.rtt.p99) << "/" << ms(r.rtt.max) << "/" << ms(r.rtt.stddev) << " ms\n";
  out << "jitter (mean |IPDV|) = " << ms(r.jitter_us) << " ms, reflector turnaround p50 = " << ms(r.turnaround.p50)
      << " ms, timestamps T1 " << r.t1 << ", T4 " << r.t4 << "\n";
  if (r.one_way) {
    out << "one-way p50 forward " << ms(r.forward.p50) << " ms, backward " << ms(r.backward.p50) << " ms (±"
        << ms(r.one_way_error_us) << " ms)\n";
  } else {
    out << "one-way delays not shown: " << (r.clock.synchronized ? "the reflector's" : "this host's")
        << " clock is not synchronised\n";
  }
}

}  // namespace

Result<PingOptions> ping_options(const PingArgs& args) {
  PingOptions options;
  auto target = SocketAddress::resolve(args.host, kDefaultStampPort);
  if (!target) return make_error(args.host + ": " + target.error().message);
  options.target = *target;
  options.target_text = args.host;
  options.count = args.count;
  if (!(args.interval_s >= 0.001)) return make_error("-i: the interval must be at least 0.001 s");
  options.interval_ns = static_cast<int64_t>(args.interval_s * 1e9);
  auto key = load_key_flag(args.key_file);
  if (!key) return key.error();
  options.key = *key;
  const uint32_t base = options.key ? 112 : 44;
  if (args.size != 0 && (args.size < base || args.size > 9000)) {
    return make_error("-s: size must be between " + std::to_string(base) + " and 9000 octets");
  }
  options.size = args.size;
  if (!args.dscp.empty()) {
    // A number (0..63) or a PHB name, parsed as the configuration file does.
    auto dscp = parse_dscp(args.dscp);
    if (!dscp) return make_error("-Q: " + dscp.error().message);
    options.dscp = *dscp;
  }
  options.interface = args.interface;
  options.source = args.source;
  options.source_port = args.source_port;
  options.fwmark = args.fwmark;
  if (!(args.timeout_s > 0 && args.timeout_s <= 3600)) {
    return make_error("--timeout: must be between 0 and 3600 seconds");
  }
  options.timeout_ns = static_cast<int64_t>(args.timeout_s * 1e9);
  options.json = args.json;
  options.quiet = args.quiet;
  options.format = args.ptp ? TimestampFormat::kPtp : TimestampFormat::kNtp;
  auto dataplane = dataplane_flags(args, args.interface);
  if (!dataplane) return dataplane.error();
  options.dataplane = std::move(dataplane.value());
  if (options.dataplane.backend == "dpdk") {
    // The port builds the whole frame: no routing table for a mark, and its source is one of its addresses.
    if (options.fwmark != 0) {
      return make_error(
          "-m: --backend dpdk has no routing table to turn a mark into a next hop: pin the probes "
          "with -S, -Q or --source-port");
    }
    if (!options.source.empty()) {
      auto source = SocketAddress::parse(options.source, 0);
      if (!source) return make_error("-S " + options.source + ": " + source.error().message);
      if (auto r = check_dpdk_local_address(options.dataplane, *source, false, "-S"); !r) return r.error();
    }
  }
  return options;
}

int ping_command(const PingArgs& args, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop) {
  auto options = ping_options(args);
  if (!options) return usage_error(err, options.error().message);
  return run_ping(*options, out, err, stop);
}

int run_ping(const PingOptions& options, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop) {
  auto dataplane = dp::make_dataplane(options.dataplane);
  if (!dataplane) {
    err << "hubprobe ping: " << dataplane.error().message << "\n";
    return 3;
  }
  auto spec = session_spec(options);
  if (!spec) {
    err << "hubprobe ping: " << spec.error().message << "\n";
    return 2;
  }
  ProbeEngine engine(std::shared_ptr<dp::Dataplane>(std::move(dataplane.value())));
  // Phase 0: the first probe is due at once. The engine picks a random non-zero SSID, which tells this
  // run's replies from another sender's on the same reflector.
  const MonoNs started = mono_now();
  if (auto added = engine.add_session(*spec, 0, started); !added) {
    err << "hubprobe ping: " << without_session(added.error()) << "\n";
    return 3;
  }
  if (!options.json) {
    out << "STAMP " << options.target.to_string() << ": " << engine.sender(kSession)->packet_size() << " bytes, "
        << (options.key ? "authenticated" : "unauthenticated") << ", interval " << ms(to_us(options.interval_ns))
        << " ms\n";
    out.flush();
  }

  PingListener listener(options, out, err);
  auto clock = run_session(engine, listener, options, out, stop);
  if (!clock) {
    err << "hubprobe ping: " << clock.error().message << "\n";
    return 3;
  }
  PingReport report = make_report(listener, engine);
  report.clock = *clock;
  report.elapsed = mono_now() - started;
  if (options.json) {
    print_json(options, report, listener, out);
  } else {
    print_text(options, report, out);
  }
  out.flush();
  return report.counters.received > 0 ? 0 : 1;
}

}  // namespace hubprobe
