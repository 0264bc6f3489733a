// SPDX-License-Identifier: Apache-2.0
// What the agent shows: Prometheus metric families (computed at scrape time from the statistics, nothing
// is copied per packet) and the /status document. docs/metrics.md lists every metric.
#include <prometheus/metric_family.h>
#include <limits>
#include <optional>
#include <string>

#include "hubprobe/agent.h"
#include "hubprobe/metrics_text.h"
#include "hubprobe_version.h"

namespace hubprobe {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// The metrics of one scrape, written as text as they come (ExpositionWriter): no metric objects kept.
class Families {
 public:
  void add(const std::string& name, const std::string& help, MetricType type, const ClientMetric& metric) {
    writer_.add(name, help, type, metric);
  }
  void gauge(const std::string& name, const std::string& help, const Labels& labels, double value) {
    ClientMetric metric;
    metric.label = labels;
    metric.gauge.value = value;
    add(name, help, MetricType::Gauge, metric);
  }
  void counter(const std::string& name, const std::string& help, const Labels& labels, double value) {
    ClientMetric metric;
    metric.label = labels;
    metric.counter.value = value;
    add(name, help, MetricType::Counter, metric);
  }
  std::string take() { return writer_.take(); }

 private:
  ExpositionWriter writer_;
};

Labels with(Labels labels, const std::string& name, const std::string& value) {
  labels.push_back({name, value});
  return labels;
}

// A windowed distribution as a Prometheus summary: quantiles 0 (min) .. 1 (max) over the statistics window.
// Unlike a client library's summary, _count and _sum also cover the window only (documented).
void window_summary(Families& f, const std::string& name, const std::string& help, const Labels& labels,
                    const DelayStats& d) {
  ClientMetric metric;
  metric.label = labels;
  metric.summary.sample_count = d.count;
  metric.summary.sample_sum = d.mean_s * static_cast<double>(d.count);
  // An empty window has no quantiles: NaN, as Prometheus summaries say it, never a perfect 0 s.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const bool empty = d.count == 0;
  metric.summary.quantile = {{0, empty ? nan : d.min_s},      {0.5, empty ? nan : d.p50_s},
                             {0.9, empty ? nan : d.p90_s},    {0.99, empty ? nan : d.p99_s},
                             {0.999, empty ? nan : d.p999_s}, {1, empty ? nan : d.max_s}};
  f.add(name, help, MetricType::Summary, metric);
}

double seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

// Replies by where T1 and T4 were taken: what a probe can get (user-space fallback, kernel, XDP, NIC).
void timestamp_sources(Families& f, const Labels& labels, const StatsTotals& t) {
  constexpr dp::TimestampSource kSources[] = {dp::TimestampSource::kUser, dp::TimestampSource::kKernelSoftware,
                                              dp::TimestampSource::kXdp, dp::TimestampSource::kTsc,
                                              dp::TimestampSource::kHardware};
  const std::pair<const char*, const std::array<uint64_t, dp::kTimestampSourceCount>&> points[] = {
      {"t1", t.t1_sources}, {"t4", t.t4_sources}};
  for (const auto& [point, counts] : points) {
    for (const dp::TimestampSource source : kSources) {
      f.counter("hubprobe_timestamps_total", "Replies by where their T1 (send) and T4 (receive) timestamps were taken.",
                with(with(labels, "timestamp", point), "source", dp::to_string(source)),
                static_cast<double>(counts[static_cast<size_t>(source)]));
    }
  }
}

nlohmann::json delay_json(const DelayStats& d) {
  if (d.count == 0) {
    // No reply in the window: no delay to show (null), rather than a misleading 0.
    return {{"count", 0},     {"min", nullptr}, {"mean", nullptr}, {"p50", nullptr},
            {"p90", nullptr}, {"p99", nullptr}, {"p999", nullptr}, {"max", nullptr}};
  }
  return {{"count", d.count},     {"min", d.min_s * 1e3}, {"mean", d.mean_s * 1e3}, {"p50", d.p50_s * 1e3},
          {"p90", d.p90_s * 1e3}, {"p99", d.p99_s * 1e3}, {"p999", d.p999_s * 1e3}, {"max", d.max_s * 1e3}};
}

// The user-space reflector's counters, labelled with the backend of its ports.
void reflector_families(Families& f, const Labels& agent_labels, const ReflectorServiceCounters& r,
                        std::string_view backend) {
  const Labels labels = with(agent_labels, "backend", std::string(backend));
  f.counter("hubprobe_reflector_requests_total", "STAMP requests received by the reflector, by backend.", labels,
            static_cast<double>(r.engine.received + r.dropped_not_allowed + r.dropped_rate_limited));
  f.counter("hubprobe_reflector_replies_total", "STAMP replies sent by the reflector, by backend.", labels,
            static_cast<double>(r.engine.reflected));
  const std::pair<const char*, uint64_t> drops[] = {
      {"too_short", r.engine.dropped_too_short}, {"short_request", r.engine.dropped_short_request},
      {"too_long", r.engine.dropped_too_long},   {"truncated", r.engine.dropped_truncated},
      {"bad_hmac", r.engine.dropped_bad_hmac},   {"not_allowed", r.dropped_not_allowed},
      {"rate_limited", r.dropped_rate_limited},  {"send_error", r.send_errors}};
  for (const auto& [reason, value] : drops) {
    f.counter("hubprobe_reflector_drops_total", "Requests the reflector did not answer, by backend and reason.",
              with(labels, "reason", reason), static_cast<double>(value));
  }
  f.counter("hubprobe_reflector_tlvs_flagged_total", "TLVs the reflector flagged, by flag (RFC 8972).",
            with(agent_labels, "flag", "unrecognized"), static_cast<double>(r.engine.tlv_unrecognized));
  f.counter("hubprobe_reflector_tlvs_flagged_total", "TLVs the reflector flagged, by flag (RFC 8972).",
            with(agent_labels, "flag", "malformed"), static_cast<double>(r.engine.tlv_malformed));
  f.gauge("hubprobe_reflector_sessions", "Stateful reflector sessions active.", agent_labels,
          static_cast<double>(r.engine.sessions_active));
  f.counter("hubprobe_reflector_sessions_evicted_total",
            "Stateful sessions evicted, least recently seen first, because the table was full (65536).", agent_labels,
            static_cast<double>(r.engine.sessions_evicted));
  for (const SendPathCounters& path : r.send_path) {
    const Labels listen = with(agent_labels, "listen", path.listen.to_string());
    f.gauge("hubprobe_reflector_send_path_seconds",
            "Learnt time from the reflector's T3 clock read to the TX stamp of its reply, added to T3.", listen,
            static_cast<double>(path.latency_ns) * 1e-9);
    f.gauge("hubprobe_reflector_send_path_residual_seconds",
            "Spread of the learnt send path, added to the reflector's Error Estimate.", listen,
            static_cast<double>(path.residual_ns) * 1e-9);
    f.counter("hubprobe_reflector_send_path_samples_total", "Reflector replies matched to their TX stamp.", listen,
              static_cast<double>(path.samples));
  }
}

// A backend reflector's counters (XDP's per-CPU counters, summed), read now, in the same families.
void backend_reflector_families(Families& f, const Labels& agent_labels, const dp::BackendReflector& reflector,
                                std::string_view backend) {
  auto outcomes = reflector.outcomes();
  if (!outcomes) return;  // a failed map read: the series are absent from this scrape, not wrong
  const Labels labels = with(agent_labels, "backend", std::string(backend));
  uint64_t requests = 0, replies = 0;
  for (const dp::ReflectorOutcome& o : outcomes.value()) {
    using Kind = dp::ReflectorOutcome::Kind;
    if (o.kind == Kind::kReflected) replies += o.value;
    if (o.kind == Kind::kReflected || o.kind == Kind::kDropped) requests += o.value;
    if (o.kind == Kind::kDropped) {
      f.counter("hubprobe_reflector_drops_total", "Requests the reflector did not answer, by backend and reason.",
                with(labels, "reason", o.reason), static_cast<double>(o.value));
    } else if (o.kind == Kind::kPassed) {
      f.counter("hubprobe_reflector_handed_up_total",
                "Requests a backend reflector handed to the user-space reflector, by reason.",
                with(labels, "reason", o.reason), static_cast<double>(o.value));
    }
  }
  f.counter("hubprobe_reflector_requests_total", "STAMP requests received by the reflector, by backend.", labels,
            static_cast<double>(requests));
  f.counter("hubprobe_reflector_replies_total", "STAMP replies sent by the reflector, by backend.", labels,
            static_cast<double>(replies));
}

// Counters of one session since it started.
void session_counters(Families& f, const Labels& labels, const StatsTotals& t) {
  f.counter("hubprobe_probes_sent_total", "STAMP probes sent.", labels, static_cast<double>(t.sent));
  f.counter("hubprobe_replies_received_total", "Replies received before the timeout.", labels,
            static_cast<double>(t.received));
  f.counter("hubprobe_probes_lost_total", "Probes without a reply before the timeout.", labels,
            static_cast<double>(t.lost));
  const std::pair<const char*, uint64_t> directions[] = {
      {"forward", t.lost_forward}, {"backward", t.lost_backward}, {"unknown", t.lost_unknown}};
  for (const auto& [direction, value] : directions) {
    f.counter("hubprobe_probes_lost_by_direction_total",
              "Lost probes whose direction is settled (stateful reflector numbering).",
              with(labels, "direction", direction), static_cast<double>(value));
  }
  f.gauge("hubprobe_probes_lost_direction_pending",
          "Lost probes whose direction is not settled yet (no reply since; a dead peer's losses wait here).", labels,
          static_cast<double>(t.lost_direction_pending));
  f.counter("hubprobe_replies_late_total", "Replies that came after the probe was declared lost.", labels,
            static_cast<double>(t.late));
  f.counter("hubprobe_replies_duplicate_total", "Second and later replies to one probe.", labels,
            static_cast<double>(t.duplicates));
  f.counter("hubprobe_replies_reordered_total", "Replies that came after a reply to a later probe.", labels,
            static_cast<double>(t.reordered));
  f.counter("hubprobe_replies_invalid_total", "Datagrams from the peer refused (size, HMAC, session).", labels,
            static_cast<double>(t.invalid + t.unexpected));
  f.counter("hubprobe_probe_send_errors_total", "Probes the dataplane could not send.", labels,
            static_cast<double>(t.send_errors));
  timestamp_sources(f, labels, t);
}

// The cumulative RTT histogram: log-linear buckets that tell 20 ms from 21 ms.
void rtt_histogram_family(Families& f, const Labels& labels, const ExportHistogram& histogram) {
  ClientMetric metric;
  metric.label = labels;
  metric.histogram.sample_count = histogram.count();
  metric.histogram.sample_sum = histogram.sum_s();
  const auto cumulative = histogram.cumulative_counts();
  const auto& bounds = histogram.layout().bounds_s();
  for (size_t i = 0; i < bounds.size(); ++i) metric.histogram.bucket.push_back({cumulative[i], bounds[i]});
  metric.histogram.bucket.push_back({cumulative.back(), std::numeric_limits<double>::infinity()});
  f.add("hubprobe_rtt_seconds", "Round-trip time (T4 - T1) - (T3 - T2) since the session started.",
        MetricType::Histogram, metric);
}

// The windowed distributions, jitter, loss ratios and peer state of one session.
void session_window(Families& f, const Labels& labels, const StatsSnapshot& s) {
  window_summary(f, "hubprobe_rtt_window_seconds",
                 "Round-trip time over the statistics window (quantile 0 = min, 1 = max).", labels, s.rtt);
  f.gauge("hubprobe_rtt_window_mean_seconds", "Mean round-trip time over the statistics window.", labels, s.rtt.mean_s);
  f.gauge("hubprobe_rtt_window_samples", "Replies in the statistics window.", labels, static_cast<double>(s.rtt.count));
  window_summary(f, "hubprobe_reflector_turnaround_window_seconds",
                 "Time the peer's reflector held our probes (T3 - T2).", labels, s.turnaround);
  if (s.one_way_valid) {
    window_summary(f, "hubprobe_owd_window_seconds", "One-way delay, only when both clocks are synchronised.",
                   with(labels, "direction", "forward"), s.forward);
    window_summary(f, "hubprobe_owd_window_seconds", "One-way delay, only when both clocks are synchronised.",
                   with(labels, "direction", "backward"), s.backward);
    f.gauge("hubprobe_owd_error_bound_seconds", "Error bound of the one-way delays (sum of both clocks' estimates).",
            labels, s.one_way_error_s);
  }
  f.gauge("hubprobe_jitter_seconds", "Mean |IPDV| of the round-trip time over the window (RFC 3393, RFC 5481).", labels,
          s.jitter.mean_abs_ipdv_s);
  f.gauge("hubprobe_ipdv_window_p99_seconds", "p99 of |IPDV| over the window.", labels, s.jitter.p99_abs_ipdv_s);
  f.gauge("hubprobe_ipdv_window_max_seconds", "Largest |IPDV| over the window.", labels, s.jitter.max_abs_ipdv_s);
  const std::pair<const char*, double> ratios[] = {
      {"total", s.loss.total}, {"forward", s.loss.forward}, {"backward", s.loss.backward}, {"unknown", s.loss.unknown}};
  for (const auto& [direction, value] : ratios) {
    f.gauge("hubprobe_loss_window_ratio", "Share of probes lost over the window, by direction.",
            with(labels, "direction", direction), value);
  }
  f.gauge("hubprobe_peer_up", "1 when the peer answers, 0 when down or not yet known.", labels,
          s.state == PeerState::kUp ? 1 : 0);
  for (PeerState state : {PeerState::kUp, PeerState::kDown, PeerState::kUnknown}) {
    f.gauge("hubprobe_peer_state", "The peer's state: 1 for the current one.", with(labels, "state", to_string(state)),
            s.state == state ? 1 : 0);
  }
  f.counter("hubprobe_peer_down_transitions_total", "Times the peer went down.", labels,
            static_cast<double>(s.down_transitions));
  f.gauge("hubprobe_peer_last_reply_timestamp_seconds", "When the last reply came (Unix time), 0 = never.", labels,
          seconds(s.last_reply_at));
}

void path_families(Families& f, const std::string& hub, const std::string& peer_hub, const PathSelector& selector) {
  for (const CandidateView& c : selector.ranked()) {
    const Labels labels = {{"hub", hub}, {"peer", c.peer}, {"peer_hub", peer_hub}, {"path", c.path}};
    for (PathState state : kPathStates) {
      f.gauge("hubprobe_path_state", "The path's SLA state: 1 for the current one.",
              with(labels, "state", to_string(state)), c.state == state ? 1 : 0);
    }
    f.gauge("hubprobe_path_rank", "The path's rank towards its destination hub (1 = best).", labels, c.rank);
    f.gauge("hubprobe_path_preferred", "1 for the path the agent prefers towards the destination hub.", labels,
            c.preferred ? 1 : 0);
    f.gauge("hubprobe_path_eligible", "1 when the path is ok and its hold-down is over.", labels, c.eligible ? 1 : 0);
    f.gauge("hubprobe_path_score_seconds",
            "The path's score (lower is better): delay-rt + delay-variation + loss penalty.", labels, c.score_s);
    f.gauge("hubprobe_path_confidence", "Replies in the SLA window / probes expected in it (0..1).", labels,
            c.confidence);
  }
  f.counter("hubprobe_path_switches_total", "Times the preferred path towards the destination hub changed.",
            {{"hub", hub}, {"peer_hub", peer_hub}}, static_cast<double>(selector.switches()));
}

void sink_families(Families& f, const std::string& hub, const SinkStatus& st) {
  const Labels labels = {{"hub", hub}, {"sink", st.name}, {"kind", st.kind}};
  f.counter("hubprobe_scheduler_pushes_total", "Attempts to deliver preferences to a sink, by result.",
            with(labels, "result", "success"), static_cast<double>(st.pushes_ok));
  f.counter("hubprobe_scheduler_pushes_total", "Attempts to deliver preferences to a sink, by result.",
            with(labels, "result", "failure"), static_cast<double>(st.pushes_failed));
  f.counter("hubprobe_scheduler_superseded_total",
            "Documents replaced by a newer one before the sink could deliver them.", labels,
            static_cast<double>(st.superseded));
  f.gauge("hubprobe_scheduler_last_success_timestamp_seconds",
          "When the sink last delivered a document (Unix time), 0 = never.", labels, seconds(st.last_success));
  f.gauge("hubprobe_scheduler_up", "1 when the sink's last attempt succeeded.", labels, st.healthy ? 1 : 0);
  f.gauge("hubprobe_scheduler_delivered_generation", "Generation of the last document the sink delivered.", labels,
          static_cast<double>(st.delivered_generation));
}

// One (peer, path) session in /status.
nlohmann::json peer_json(const PeerConfig& peer, const std::string& path, const StatsSnapshot& s, const char* source) {
  return {{"name", peer.name},
          {"source", source},
          {"hub", peer.hub},
          {"address", peer.address.to_string()},
          {"path", path},
          {"state", to_string(s.state)},
          {"state_since", seconds(s.state_since)},
          {"rtt_ms", delay_json(s.rtt)},
          {"jitter_ms", s.jitter.mean_abs_ipdv_s * 1e3},
          {"loss",
           {{"total", s.loss.total},
            {"forward", s.loss.forward},
            {"backward", s.loss.backward},
            {"direction_known", s.loss.direction_known}}},
          {"sent", s.totals.sent},
          {"received", s.totals.received},
          {"lost", s.totals.lost},
          {"last_reply_at", seconds(s.last_reply_at)},
          {"window_s", seconds(s.window_ns)}};
}

nlohmann::json sink_json(const SinkStatus& st) {
  return {{"name", st.name},
          {"kind", st.kind},
          {"target", st.target},
          {"healthy", st.healthy},
          {"pushes_ok", st.pushes_ok},
          {"pushes_failed", st.pushes_failed},
          {"superseded", st.superseded},
          {"last_success", seconds(st.last_success)},
          {"delivered_generation", st.delivered_generation},
          {"pending_generation", st.pending_generation},
          {"last_error", st.last_error}};
}

}  // namespace

std::string Agent::metrics_text() const {
  Families f;
  std::unique_lock lock(mutex_);
  const Labels agent_labels = {{"hub", config_.agent.hub}};

  f.gauge("hubprobe_build_info", "Version and dataplane of this agent; always 1.",
          {{"hub", config_.agent.hub}, {"version", HUBPROBE_VERSION}, {"backend", config_.dataplane.backend}}, 1);
  f.gauge("hubprobe_start_time_seconds", "When the agent started (Unix time).", agent_labels, seconds(started_at_));
  f.gauge("hubprobe_clock_synchronized", "1 when the kernel says the clock is synchronised (adjtimex).", agent_labels,
          clock_.synchronized ? 1 : 0);
  f.gauge("hubprobe_clock_error_bound_seconds", "Estimated clock error (esterror, or maxerror when unsynchronised).",
          agent_labels, clock_.error_bound_s);
  f.counter("hubprobe_config_reloads_total", "Configuration reloads by result.",
            with(agent_labels, "result", "success"), static_cast<double>(reloads_ok_));
  f.counter("hubprobe_config_reloads_total", "Configuration reloads by result.",
            with(agent_labels, "result", "failure"), static_cast<double>(reloads_failed_));
  f.gauge("hubprobe_config_last_reload_successful", "1 when the last reload was applied, 0 when it was refused.",
          agent_labels, last_reload_ok_ ? 1 : 0);
  f.gauge("hubprobe_config_last_reload_success_timestamp_seconds",
          "When the configuration was last loaded successfully (start or reload).", agent_labels,
          seconds(last_reload_success_at_ ? last_reload_success_at_ : started_at_));
  f.gauge("hubprobe_peers", "Peers configured ([[peer]] in the file).", agent_labels,
          static_cast<double>(config_.peers.size()));
  f.gauge("hubprobe_peers_discovered", "Peers found in etcd (discover = true) and probed.", agent_labels,
          static_cast<double>(discovered_.size()));
  f.counter("hubprobe_discovery_polls_total", "Polls of the etcd registrations (PREFIX/agents/), by result.",
            with(agent_labels, "result", "success"), static_cast<double>(discovery_polls_ok_));
  f.counter("hubprobe_discovery_polls_total", "Polls of the etcd registrations (PREFIX/agents/), by result.",
            with(agent_labels, "result", "failure"), static_cast<double>(discovery_polls_failed_));
  f.gauge("hubprobe_discovery_candidates",
          "Peers the registrations in etcd offered at the last poll, before the probe plan chose among them.",
          agent_labels, static_cast<double>(discovery_candidates_));
  f.gauge("hubprobe_discovery_ignored_registrations",
          "Registrations in etcd that the last poll did not turn into peers (malformed, no address, collisions).",
          agent_labels, static_cast<double>(discovery_ignored_.size()));
  f.gauge("hubprobe_probe_sessions", "Probe sessions: one per peer and path.", agent_labels,
          static_cast<double>(sessions_.size()));

  const auto ports = engine_->port_counters();
  const auto& engine = engine_->counters();
  f.counter("hubprobe_dataplane_tx_timestamps_total", "Kernel or hardware TX timestamps received for probes.",
            agent_labels, static_cast<double>(ports.tx_timestamps));
  f.counter("hubprobe_dataplane_rx_without_timestamp_total", "Replies that came without a kernel RX timestamp.",
            agent_labels, static_cast<double>(ports.rx_without_timestamp));
  f.counter("hubprobe_dataplane_unmatched_replies_total", "Datagrams on probe ports that no session owns.",
            agent_labels, static_cast<double>(engine.unmatched_replies));

  for (const dp::Attachment& a : dataplane_->attachments()) {
    f.gauge("hubprobe_dataplane_attachment_info",
            "Where the dataplane's own programs are attached, and how (xdp: native or generic); always 1.",
            with(with(agent_labels, "interface", a.interface), "mode", a.mode), 1);
  }
  for (const dp::LinkCounter& c : dataplane_->link_counters()) {
    if (c.family == dp::LinkCounter::Family::kDropped) {
      f.counter("hubprobe_dataplane_dropped_frames_total",
                "Frames the backend's own port dropped (dpdk), by reason: not for us, malformed, no listener, "
                "queue or ring full, next hop unresolved.",
                with(agent_labels, "reason", c.name), static_cast<double>(c.value));
    } else {
      f.counter("hubprobe_dataplane_link_frames_total",
                "Link-layer frames of the backend's own port (dpdk): ARP/ND/echo answers sent, resolutions sent "
                "and learnt, unsolicited answers ignored.",
                with(agent_labels, "kind", c.name), static_cast<double>(c.value));
    }
  }
  if (reflector_) reflector_families(f, agent_labels, reflector_->counters(), dataplane_->port_backend());
  if (backend_reflector_) backend_reflector_families(f, agent_labels, *backend_reflector_, dataplane_->name());
  // The sessions, a chunk at a time: the probe thread, which needs mutex_ every tick, waits for one
  // chunk's snapshots at most (10 000 sessions take about half a second in all), and the families are
  // made outside the lock.
  struct SessionView {
    Labels labels;
    StatsSnapshot snapshot;
    ExportHistogram rtt;
  };
  constexpr size_t kChunk = 128;
  const bool rtt_histogram = config_.metrics.rtt_buckets != 0;
  std::vector<SessionView> chunk;
  std::optional<std::string> after;  // the last session id done: sessions may come and go in between
  while (true) {
    const MonoNs now = mono_now();
    auto it = after ? sessions_.upper_bound(*after) : sessions_.begin();
    for (; it != sessions_.end() && chunk.size() < kChunk; ++it) {
      const SessionRuntime& session = it->second;
      chunk.push_back({{{"hub", config_.agent.hub},
                        {"peer", session.peer.name},
                        {"peer_hub", session.peer.hub},
                        {"path", session.path.name}},
                       session.stats->snapshot(now),
                       session.stats->rtt_histogram()});
      after = it->first;
    }
    if (chunk.empty()) break;
    lock.unlock();
    for (const SessionView& view : chunk) {
      session_counters(f, view.labels, view.snapshot.totals);
      if (rtt_histogram) rtt_histogram_family(f, view.labels, view.rtt);
      session_window(f, view.labels, view.snapshot);
    }
    chunk.clear();
    lock.lock();
  }

  // Path selection: one series per (peer, path) candidate, as of the last evaluation (once a second).
  for (const auto& [peer_hub, selector] : selectors_) path_families(f, config_.agent.hub, peer_hub, selector);
  const double generation = document_ ? static_cast<double>((*document_).value("generation", uint64_t{0})) : 0;
  f.gauge("hubprobe_preferences_generation", "Generation of the current preference document (0 = none yet).",
          agent_labels, generation);
  f.counter("hubprobe_preferences_generation_errors_total",
            "Documents not published because their generation could not be stored durably in state_dir.", agent_labels,
            static_cast<double>(generation_errors_));
  {
    std::lock_guard sinks(sinks_mutex_);
    for (const auto& sink : sinks_) sink_families(f, config_.agent.hub, sink->status());
  }
  return f.take();
}

nlohmann::json Agent::status() const {
  std::lock_guard lock(mutex_);
  const MonoNs now = mono_now();
  nlohmann::json doc;
  doc["agent"] = {{"id", config_.agent.id},
                  {"hub", config_.agent.hub},
                  {"version", HUBPROBE_VERSION},
                  {"backend", config_.dataplane.backend},
                  {"started_at", seconds(started_at_)},
                  {"uptime_s", seconds(now - started_mono_)},
                  {"healthy", now - last_tick_.load() < 2 * 1'000'000'000}};
  doc["clock"] = {{"synchronized", clock_.synchronized}, {"error_bound_s", clock_.error_bound_s}};
  doc["config"] = {{"source", config_.source},
                   {"last_reload_ok", last_reload_ok_},
                   {"last_reload_at", seconds(last_reload_at_)},
                   {"last_reload_error", last_reload_error_},
                   {"reloads_ok", reloads_ok_},
                   {"reloads_failed", reloads_failed_}};
  if (reflector_) {
    const auto r = reflector_->counters();
    nlohmann::json listen = nlohmann::json::array();
    for (const auto& a : reflector_->local_addresses()) listen.push_back(a.to_string());
    doc["reflector"] = {{"listen", listen},
                        {"in_backend", backend_reflector_ ? backend_reflector_->describe() : ""},
                        {"stateful", config_.reflector.stateful},
                        {"received", r.engine.received},
                        {"reflected", r.engine.reflected},
                        {"dropped", r.engine.dropped() + r.dropped_not_allowed + r.dropped_rate_limited}};
  } else {
    doc["reflector"] = nullptr;
  }
  doc["peers"] = nlohmann::json::array();
  for (const auto& [id, session] : sessions_) {
    const StatsSnapshot s = session.stats->snapshot(now);
    doc["peers"].push_back(
        peer_json(session.peer, session.path.name, s, discovered_.count(session.peer.name) != 0 ? "etcd" : "config"));
  }
  if (discovery_enabled_ || !discovered_.empty()) {
    nlohmann::json peers = nlohmann::json::array();
    for (const auto& [name, peer] : discovered_) peers.push_back(name);
    nlohmann::json ignored = nlohmann::json::array();
    for (const IgnoredRegistration& entry : discovery_ignored_) {
      ignored.push_back({{"key", entry.key}, {"reason", entry.reason}});
    }
    doc["discovery"] = {{"endpoint", discovery_endpoint_},
                        {"polls_ok", discovery_polls_ok_},
                        {"polls_failed", discovery_polls_failed_},
                        {"last_poll_at", seconds(discovery_last_poll_at_)},
                        {"last_success_at", seconds(discovery_last_success_at_)},
                        {"last_error", discovery_error_},
                        {"candidates", discovery_candidates_},
                        {"peers", peers},
                        {"ignored", ignored}};
  } else {
    doc["discovery"] = nullptr;
  }
  doc["preferences"] = document_ ? *document_ : nlohmann::json(nullptr);
  doc["sinks"] = nlohmann::json::array();
  {
    std::lock_guard sinks(sinks_mutex_);
    for (const auto& sink : sinks_) doc["sinks"].push_back(sink_json(sink->status()));
  }
  return doc;
}

}  // namespace hubprobe
