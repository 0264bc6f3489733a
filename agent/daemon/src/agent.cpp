// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/agent.h"

#include <spdlog/spdlog.h>

#include "hubprobe/dpdk_eal_args.h"
#include "hubprobe/probe_outcome.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>

namespace hubprobe {

namespace {
// The probe thread's tick ([agent] tick): replies and TX timestamps wait in the kernel (with their kernel
// timestamps) until the next tick, and probes leave at the first tick at or after they are due, so a
// coarse tick costs no precision and batches the system calls. Up to a point: a batch leaves back to
// back, and its last probe queues behind the others on the way out (on a veth, behind the receive of each
// of them: about 1 us apiece). "auto": a tenth of the shortest interval (10 ms at the default 100 ms), or
// less where that would put more than kAutoBatch probes in a batch, within these bounds.
constexpr int64_t kAutoTickMinNs = 2'000'000;
constexpr int64_t kAutoTickMaxNs = 20'000'000;
constexpr double kAutoBatch = 32;
constexpr int64_t kMaxSleepNs = 100'000'000;
constexpr int64_t kOncePerSecond = 1'000'000'000;

uint64_t phase_seed(const std::string& name) { return std::hash<std::string>{}(name); }

// A step of the agent's loop: one of its member functions, which takes the lock the step needs.
class FunctionStep final : public LoopStep {
 public:
  explicit FunctionStep(std::function<StepResult(const Now&)> step) : step_(std::move(step)) {}
  StepResult step(const Now& now) override { return step_(now); }
  std::vector<int> wake_fds() const override { return {}; }

 private:
  std::function<StepResult(const Now&)> step_;
};

// [dataplane] as make_dataplane() takes it. What the backend cannot apply as asked is logged, once each.
dp::DataplaneOptions dataplane_options(const DataplaneConfig& config, const ReflectorConfig& reflector) {
  dp::DataplaneOptions options;
  options.backend = config.backend;
  options.kernel.receive_buffer = config.kernel.receive_buffer;
  options.kernel.hardware_timestamps = config.kernel.hardware_timestamps;
  options.xdp = config.xdp;
  options.dpdk = config.dpdk;
  options.xdp.reflector_port = reflector.port;
  options.xdp.reflector_format = reflector.timestamp_format;
  options.notice = [backend = config.backend](const std::string& message) {
    spdlog::warn("dataplane.{}.{}", backend, message);
  };
  return options;
}
// [reflector] as a backend's reflector takes it.
dp::ReflectorRole reflector_role(const ReflectorConfig& config) {
  dp::ReflectorRole role;
  role.port = config.port;
  role.listen = config.listen;
  role.stateful = config.stateful;
  role.allow = config.allow;
  role.rate_limit_pps = config.rate_limit_pps;
  role.format = config.timestamp_format;
  role.authenticated = config.authenticated();
  return role;
}

// [metrics] rtt_buckets = 0 exports no histogram: its sessions still count into the smallest layout.
std::shared_ptr<const ExportLayout> rtt_layout(const MetricsConfig& metrics) {
  ExportBucketOptions options;
  options.buckets_per_doubling = std::max<uint32_t>(metrics.rtt_buckets, 1);
  return std::make_shared<const ExportLayout>(options);
}
}  // namespace

Agent::Agent(const AgentConfig& config)
    : config_(config), rtt_layout_(rtt_layout(config.metrics)), started_at_(wall_now()), started_mono_(mono_now()) {}

Agent::~Agent() { stop(); }

SessionSpec Agent::session_spec(const PeerConfig& peer, const PathConfig& path) {
  SessionSpec spec;
  spec.id = session_id(peer.name, path.name);
  spec.target = peer.address;
  spec.mode = peer.probe.mode();
  spec.key = peer.probe.auth_key.key;
  spec.packet_size = peer.probe.size;
  spec.dscp = path.dscp >= 0 ? path.dscp : peer.probe.dscp;
  spec.interval_ns = peer.probe.interval_ns;
  spec.timeout_ns = peer.probe.timeout_ns;
  spec.format = peer.probe.timestamp_format;
  spec.device = path.interface;
  spec.fwmark = path.fwmark;
  if (path.source.valid()) spec.source = path.source;
  spec.source_ports = path.source_ports;
  return spec;
}

WindowOptions Agent::window_options(const PeerConfig& peer) const {
  WindowOptions options;
  options.rtt_layout = rtt_layout_;
  options.window_ns = peer.probe.window_ns;
  options.peer_state.down_after_lost = peer.probe.down_after;
  return options;
}

Result<std::unique_ptr<Agent>> Agent::start(const AgentConfig& config) {
  std::unique_ptr<Agent> agent(new Agent(config));
  auto dataplane = dp::make_dataplane(dataplane_options(config.dataplane, config.reflector));
  if (!dataplane) return dataplane.error();
  agent->dataplane_ = std::shared_ptr<dp::Dataplane>(std::move(dataplane.value()));
  agent->engine_ = std::make_unique<ProbeEngine>(agent->dataplane_);
  agent->clock_ = read_clock_state();
  agent->clock_read_at_ = mono_now();

  const Now now = read_now();
  if (auto r = agent->open_ports(config, now); !r) {
    agent->stop();
    return r.error();
  }
  if (auto r = agent->start_sinks(config); !r) {
    agent->stop();
    return r.error();
  }
  agent->last_tick_ = now.mono;
  agent->probe_thread_ = std::thread([a = agent.get()] { a->probe_loop(); });
  agent->publisher_thread_ = std::thread([a = agent.get()] { a->publisher_loop(); });
  agent->start_discovery(config.scheduler);
  return agent;
}

Result<void> Agent::open_ports(const AgentConfig& config, const Now& now) {
  if (config.reflector.enabled) {
    if (auto r = start_reflector(config.reflector); !r) return r;
  }
  std::lock_guard lock(mutex_);
  for (const auto& peer : config.peers) {
    if (auto r = add_peer(peer, now); !r) return r;
  }
  // Nothing wakes a busy-polled port: then the probe thread's loop drives the reflector too.
  one_loop_ = loop_kind({engine_->wait_kind(), reflector_ ? reflector_->wait_kind() : dp::WaitKind::kPollFd}) ==
              dp::WaitKind::kBusyPoll;
  if (!one_loop_ && reflector_) {
    ReflectorService* running = reflector_.get();
    reflector_thread_ = std::thread([this, running] { (void)running->run(reflector_stop_); });
  }
  return {};
}

void Agent::stop() {
  stop_discovery();
  {
    std::lock_guard lock(publisher_wait_mutex_);
    publisher_stop_ = true;
  }
  publisher_wake_.notify_all();
  if (publisher_thread_.joinable()) publisher_thread_.join();
  const bool was_running = !stop_.exchange(true);
  if (probe_thread_.joinable()) probe_thread_.join();
  stop_reflector();
  if (was_running) {
    bool any_sink = false;
    {
      std::lock_guard lock(sinks_mutex_);
      any_sink = !sinks_.empty();
    }
    // On shutdown (docs/operations.md) the last preferences go out once more, marked stale, so the scheduler stops
    // trusting them.
    if (any_sink) publish_preferences(true, true);
    stop_sinks(2 * kOncePerSecond);
  }
}

Result<void> Agent::start_reflector(const ReflectorConfig& config) {
  ReflectorServiceOptions options;
  for (SocketAddress address : config.listen) {
    address.set_port(config.port);
    options.listen.push_back(address);
  }
  options.interface = config.interface;
  options.reflector.stateful = config.stateful;
  options.reflector.answer_short_requests = config.answer_short_requests;
  options.reflector.format = config.timestamp_format;
  if (config.authenticated()) {
    options.reflector.mode = stamp::Mode::kAuthenticated;
    // The service outlives no config: copy what the key lookup needs.
    options.reflector.key_for = [config](const SocketAddress& source) { return config.key_for(source); };
  }
  if (!config.allow.empty()) {
    options.allow = [config](const SocketAddress& source) { return config.allows(source); };
  }
  options.rate_limit_pps = config.rate_limit_pps;
  // The reflector's ports open under mutex_, as every port of the agent does: the thread that drives them
  // (the reflector's, or the probe thread's one loop) takes them over from there.
  std::lock_guard lock(mutex_);
  auto service = ReflectorService::open(*dataplane_, std::move(options));
  if (!service) return service.error();
  // The backend's reflector goes in front once the user-space one, which answers what it hands up, listens.
  auto in_backend = dataplane_->start_reflector(reflector_role(config));
  if (!in_backend) return in_backend.error();
  if (in_backend.value()) spdlog::info("reflector: {}", in_backend.value()->describe());
  reflector_stop_ = false;
  reflector_ = std::move(service.value());
  backend_reflector_ = std::move(in_backend.value());
  if (one_loop_ || !probe_thread_.joinable()) return {};  // at start, open_ports() decides who runs it
  ReflectorService* running = reflector_.get();
  reflector_thread_ = std::thread([this, running] { (void)running->run(reflector_stop_); });
  return {};
}

void Agent::stop_reflector() {
  reflector_stop_ = true;
  if (reflector_thread_.joinable()) reflector_thread_.join();
  std::lock_guard lock(mutex_);
  backend_reflector_.reset();  // stops answering before the user-space reflector behind it closes
  reflector_.reset();
}

PathSelector& Agent::selector_for(const PeerConfig& peer) {
  const auto sla = config_.sla.find(peer.sla);
  const SlaClass& sla_class = sla != config_.sla.end() ? sla->second : SlaClass{};
  auto it = selectors_.find(peer.hub);
  if (it == selectors_.end()) it = selectors_.emplace(peer.hub, PathSelector(sla_class)).first;
  return it->second;
}

const PeerConfig* Agent::any_peer_of_hub(const std::string& hub) const {
  const PeerConfig* found = nullptr;
  for (const PeerConfig& peer : config_.peers) {
    if (peer.hub == hub) found = &peer;
  }
  if (found != nullptr) return found;
  for (const auto& [name, peer] : discovered_) {
    if (peer.hub == hub) return &peer;
  }
  return nullptr;
}

void Agent::prune_selectors() {
  for (auto it = selectors_.begin(); it != selectors_.end();) {
    const PeerConfig* peer = any_peer_of_hub(it->first);
    if (peer == nullptr) {
      it = selectors_.erase(it);
      continue;
    }
    const auto sla = config_.sla.find(peer->sla);
    if (sla != config_.sla.end() && !(sla->second == it->second.sla())) it->second.set_sla(sla->second);
    ++it;
  }
}

Result<void> Agent::add_peer(const PeerConfig& peer, const Now& now) {
  std::vector<std::string> added;
  for (const PathConfig& path : peer.paths) {
    const SessionSpec spec = session_spec(peer, path);
    if (auto r = engine_->add_session(spec, phase_seed(spec.id), now.mono); !r) {
      for (const auto& id : added) engine_->remove_session(id);
      return r.error();
    }
    added.push_back(spec.id);
  }
  install_peer(peer);
  return {};
}

void Agent::install_peer(const PeerConfig& peer) {
  PathSelector& selector = selector_for(peer);
  for (const PathConfig& path : peer.paths) {
    const std::string id = session_id(peer.name, path.name);
    SessionRuntime& runtime = sessions_[id];
    runtime = SessionRuntime{peer, path, std::make_unique<WindowedStats>(window_options(peer))};
    runtime_by_id_[id] = &runtime;
    selector.add_candidate(id, peer.name, path.name, peer.probe.interval_ns);
  }
  peers_changed_ = true;
}

std::map<std::string, Agent::SessionRuntime>::iterator Agent::uninstall_session(
    std::map<std::string, SessionRuntime>::iterator it) {
  if (auto selector = selectors_.find(it->second.peer.hub); selector != selectors_.end()) {
    selector->second.remove_candidate(it->first);
  }
  peers_changed_ = true;
  runtime_by_id_.erase(it->first);
  return sessions_.erase(it);
}

void Agent::remove_peer(const std::string& name) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.peer.name != name) {
      ++it;
      continue;
    }
    engine_->remove_session(it->first);
    it = uninstall_session(it);
  }
}

void Agent::uninstall_peer(const std::string& name) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = it->second.peer.name == name ? uninstall_session(it) : std::next(it);
  }
}

void Agent::drop_lost_sessions() {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (engine_->has_session(it->first)) {
      ++it;
      continue;
    }
    spdlog::error("peer {} path {}: no longer probed: its session could not be put back", it->second.peer.name,
                  it->second.path.name);
    it = uninstall_session(it);
  }
}

void Agent::update_peer(const PeerConfig& peer, const Now& now) {
  for (auto& [id, session] : sessions_) {
    if (session.peer.name != peer.name) continue;
    if (peer.probe.window_ns != session.peer.probe.window_ns) session.stats->set_window(peer.probe.window_ns);
    if (peer.probe.down_after != session.peer.probe.down_after) {
      session.stats->set_peer_state_options(window_options(peer).peer_state, now.wall);
      // The new threshold may have changed the state: the path follows it at once.
      if (auto selector = selectors_.find(peer.hub); selector != selectors_.end()) {
        selector->second.set_peer_state(id, session.stats->peer_state().state());
      }
    }
    session.peer = peer;
  }
}

void Agent::on_probe_sent(const std::string& session_id, uint32_t seq, const Now& now) {
  auto it = runtime_by_id_.find(session_id);
  if (it != runtime_by_id_.end()) it->second->stats->on_sent(seq, now.mono);
}

void Agent::on_probe_event(const std::string& session_id, const stamp::ProbeEvent& event, const Now& now) {
  auto it = runtime_by_id_.find(session_id);
  if (it == runtime_by_id_.end()) return;
  SessionRuntime& session = *it->second;
  const PeerState before = session.stats->peer_state().state();
  auto selector = selectors_.find(session.peer.hub);
  record_probe_event(*session.stats, selector == selectors_.end() ? nullptr : &selector->second, session_id, event,
                     now);
  const PeerState after = session.stats->peer_state().state();
  if (after != before && after == PeerState::kDown) {
    spdlog::warn("peer {} ({}) path {} is down: {} probes in a row without a reply", session.peer.name,
                 session.peer.address.to_string(), session.path.name, session.peer.probe.down_after);
  } else if (after != before && after == PeerState::kUp) {
    spdlog::info("peer {} ({}) path {} is up", session.peer.name, session.peer.address.to_string(), session.path.name);
  }
}

void Agent::refresh_sender_counters(MonoNs now) {
  for (auto& [id, session] : sessions_) {
    if (const auto* counters = engine_->sender_counters(id)) session.stats->on_sender_counters(*counters, now);
  }
  counters_refreshed_at_ = now;
}

StepResult Agent::probe_step(const Now& now) {
  StepResult result;
  {
    std::lock_guard lock(mutex_);
    if (now.mono - clock_read_at_ >= kOncePerSecond) {
      clock_ = read_clock_state();
      clock_read_at_ = now.mono;
    }
    result = engine_->run_tick(now, clock_, *this);
    if (now.mono - counters_refreshed_at_ >= kOncePerSecond) refresh_sender_counters(now.mono);
  }
  last_tick_.store(now.mono, std::memory_order_relaxed);
  // A tick at least every 100 ms, and at most every tick (replies wait in the kernel until then).
  result.next_deadline = std::clamp(result.next_deadline, now.mono + tick_ns(), now.mono + kMaxSleepNs);
  return result;
}

int64_t Agent::tick_ns() const {
  if (config_.tick_ns > 0) return config_.tick_ns;
  int64_t tick = engine_->shortest_interval() / 10;
  if (const double rate = engine_->probe_rate(); rate > 0) {
    tick = std::min(tick, static_cast<int64_t>(kAutoBatch / rate * 1e9));
  }
  return std::clamp(tick, kAutoTickMinNs, kAutoTickMaxNs);
}

StepResult Agent::reflector_step(const Now& now) {
  std::lock_guard lock(mutex_);
  return reflector_ ? reflector_->step(now) : StepResult{};
}

void Agent::probe_loop() {
  // The probe engine ticks on its deadlines (no descriptors to wake it: what arrives waits for the tick).
  // On busy-polled ports it runs every pass, the reflector with it.
  FunctionStep probe([this](const Now& now) { return probe_step(now); });
  FunctionStep reflector([this](const Now& now) { return reflector_step(now); });
  std::vector<LoopStep*> steps{&probe};
  EngineLoopOptions options;
  if (one_loop_) {
    steps.push_back(&reflector);
    options.wait = dp::WaitKind::kBusyPoll;
    if (config_.dataplane.backend == "dpdk") {
      options.cpu = dpdk::loop_lcore(config_.dataplane.dpdk);
      options.idle_pause_ns = int64_t{config_.dataplane.dpdk.idle_pause_us} * 1000;
    }
  }
  EngineLoop loop(steps, options);
  if (auto r = loop.run(stop_); !r) spdlog::error("probe loop: {}", r.error().message);
}

bool Agent::healthy() const { return mono_now() - last_tick_.load(std::memory_order_relaxed) < 2 * kOncePerSecond; }

AgentConfig Agent::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

void Agent::record_reload(bool success, const std::string& error) {
  std::lock_guard lock(mutex_);
  const WallNs now = wall_now();
  last_reload_at_ = now;
  last_reload_ok_ = success;
  if (success) {
    ++reloads_ok_;
    last_reload_success_at_ = now;
    last_reload_error_.clear();
  } else {
    ++reloads_failed_;
    last_reload_error_ = error;
  }
}

std::vector<std::string> Agent::starting_peers(const ConfigDiff& diff) {
  std::vector<std::string> names = diff.peers_added;
  names.insert(names.end(), diff.peers_restarted.begin(), diff.peers_restarted.end());
  return names;
}

Result<void> Agent::preflight(const AgentConfig& next, const ConfigDiff& diff) {
  std::vector<SessionSpec> specs;
  for (const auto& name : starting_peers(diff)) {
    const PeerConfig* peer = next.find_peer(name);
    for (const PathConfig& path : peer->paths) specs.push_back(session_spec(*peer, path));
  }
  if (diff.scheduler_changed) {
    if (auto r = check_state_dir(next.scheduler); !r) return r.error();
  }
  std::lock_guard lock(mutex_);
  return engine_->check_ports(specs);
}

Result<void> Agent::replace_reflector(const ReflectorConfig& from, const ReflectorConfig& to) {
  stop_reflector();
  if (!to.enabled) return {};
  auto started = start_reflector(to);
  if (!started) restore_reflector(from);
  return started;
}

void Agent::restore_reflector(const ReflectorConfig& config) {
  stop_reflector();
  if (!config.enabled) return;
  if (auto r = start_reflector(config); !r) spdlog::error("reflector could not be restored: {}", r.error().message);
}

Result<void> Agent::replace_peers(const AgentConfig& next, const ConfigDiff& diff, MonoNs now) {
  const std::vector<std::string> starting = starting_peers(diff);
  // Leaving: removed and restarted peers, and discovered peers whose name a new [[peer]] takes.
  std::vector<std::string> leaving = diff.peers_removed;
  leaving.insert(leaving.end(), diff.peers_restarted.begin(), diff.peers_restarted.end());
  for (const auto& name : diff.peers_added) {
    if (discovered_.count(name) != 0) leaving.push_back(name);
  }
  std::vector<std::string> leaving_ids;
  for (const auto& [id, session] : sessions_) {
    if (std::find(leaving.begin(), leaving.end(), session.peer.name) != leaving.end()) leaving_ids.push_back(id);
  }
  std::vector<ProbeEngine::NewSession> joining;
  for (const auto& name : starting) {
    const PeerConfig* peer = next.find_peer(name);
    for (const PathConfig& path : peer->paths) {
      const SessionSpec spec = session_spec(*peer, path);
      joining.push_back({spec, phase_seed(spec.id)});
    }
  }
  if (auto r = engine_->replace_sessions(leaving_ids, joining, now); !r) {
    drop_lost_sessions();
    return r.error();
  }
  for (const auto& name : leaving) {
    uninstall_peer(name);
    discovered_.erase(name);
  }
  config_ = next;  // before install_peer: new hubs find their SLA class in it
  for (const auto& name : starting) install_peer(*config_.find_peer(name));
  return {};
}

Result<void> Agent::reload(const AgentConfig& next) {
  const ConfigDiff diff = [&] {
    std::lock_guard lock(mutex_);
    return diff_configs(config_, next);
  }();
  if (diff.dataplane_changed) {
    return make_error("dataplane settings changed: restart hubprobed to apply them (the running configuration stays)");
  }
  if (next.metrics.rtt_buckets != config().metrics.rtt_buckets) {
    return make_error(
        "metrics.rtt_buckets changed: restart hubprobed to apply it (every histogram series changes; the running "
        "configuration stays)");
  }
  // Whole or not at all: first what can be checked without changing anything, then the reflector, then the
  // peers (one change of the engine that undoes itself when it fails; the old reflector is then restored),
  // and the scheduler once nothing can be refused any more.
  if (auto r = preflight(next, diff); !r) return r.error();
  const ReflectorConfig old_reflector = config().reflector;
  if (diff.reflector_changed) {
    if (auto r = replace_reflector(old_reflector, next.reflector); !r) return r.error();
  }
  // Discovery stops first: a poll must not apply registrations while the peers change.
  const SchedulerConfig old_scheduler = config().scheduler;
  if (diff.scheduler_changed) stop_discovery();
  std::unique_lock lock(mutex_);
  const Now now = read_now();
  if (auto r = replace_peers(next, diff, now.mono); !r) {
    lock.unlock();
    if (diff.reflector_changed) restore_reflector(old_reflector);
    if (diff.scheduler_changed) start_discovery(old_scheduler);
    return r.error();
  }
  // Discovered peers are not in the file and stay; they follow it: one whose address a new [[peer]] takes
  // leaves, and [probe] or [[path]] changes reach them. Without discovery in the new file, they all go.
  if (next.scheduler.discovering_sink() == nullptr) registrations_.reset();
  apply_discovered(now);
  for (const PeerConfig& peer : next.peers) update_peer(peer, now);
  prune_selectors();
  if (diff.logging_changed) spdlog::set_level(spdlog::level::from_str(to_string(next.logging.level)));
  spdlog::info("configuration reloaded: {} peers added, {} removed, {} restarted, {} updated, {} unchanged",
               diff.peers_added.size(), diff.peers_removed.size(), diff.peers_restarted.size(),
               diff.peers_updated.size(), diff.peers_unchanged.size());
  lock.unlock();
  if (diff.scheduler_changed) restart_scheduler(next);
  return {};
}

void Agent::restart_scheduler(const AgentConfig& next) {
  stop_discovery();  // stopped already by reload(): no effect then
  stop_sinks(kOncePerSecond);
  if (auto r = start_sinks(next); !r) {
    spdlog::error("scheduler sinks: {} (running without sinks until the next successful reload)", r.error().message);
  }
  start_discovery(next.scheduler);
  publish_preferences(true, false);
}

std::shared_ptr<const nlohmann::json> Agent::preferences() const {
  std::lock_guard lock(mutex_);
  return document_;
}

Result<void> Agent::start_sinks(const AgentConfig& config) {
  const SchedulerConfig& scheduler = config.scheduler;
  if (!scheduler.has_sinks()) return {};
  {
    std::lock_guard publish(publish_mutex_);
    if (!generation_store_ || generation_store_->path() != scheduler.state_dir + "/generation") {
      auto store = GenerationStore::open(scheduler.state_dir);
      if (!store) return make_error("scheduler.state_dir: " + store.error().message);
      generation_ = std::max(generation_, store->current());
      generation_store_ = std::move(store.value());
    }
  }
  std::vector<std::unique_ptr<SchedulerSink>> sinks;
  for (const HttpSinkConfig& http : scheduler.http) sinks.push_back(make_http_sink(http));
  for (const EtcdSinkConfig& etcd : scheduler.etcd) {
    sinks.push_back(make_etcd_sink(etcd, config.agent.id, make_registration(config, etcd)));
  }
  std::lock_guard lock(sinks_mutex_);
  sinks_ = std::move(sinks);
  return {};
}

Result<void> Agent::check_state_dir(const SchedulerConfig& scheduler) {
  if (!scheduler.has_sinks()) return {};
  std::lock_guard publish(publish_mutex_);
  if (generation_store_ && generation_store_->path() == scheduler.state_dir + "/generation") return {};
  if (auto store = GenerationStore::open(scheduler.state_dir); !store) {
    return make_error("scheduler.state_dir: " + store.error().message);
  }
  return {};
}

void Agent::stop_sinks(int64_t deadline_ns) {
  std::vector<std::unique_ptr<SchedulerSink>> sinks;
  {
    std::lock_guard lock(sinks_mutex_);
    sinks.swap(sinks_);
  }
  for (auto& sink : sinks) sink->stop(deadline_ns);
}

void Agent::publisher_loop() {
  std::unique_lock wait(publisher_wait_mutex_);
  while (!publisher_stop_) {
    wait.unlock();
    publish_preferences(false, false);
    wait.lock();
    publisher_wake_.wait_for(wait, std::chrono::seconds(1), [&] { return publisher_stop_; });
  }
}

void Agent::publish_preferences(bool force, bool stale) {
  std::lock_guard publish(publish_mutex_);
  PreferenceDocumentInput input;
  bool changed = false;
  const Now now = read_now();
  int64_t refresh_ns = 0;
  {
    std::lock_guard lock(mutex_);
    for (auto& [hub, selector] : selectors_) {
      const SelectionChange change = selector.evaluate(now);
      if (change.preferred_changed) {
        spdlog::info("hub {}: preferred path now {} ({} switches so far)", hub,
                     selector.preferred().empty() ? std::string("none") : selector.preferred(), selector.switches());
      }
      // A new document when what the scheduler acts on moved: the preferred path or a path's state. Rank
      // changes among the other paths (near-equal scores trading places) wait for the next refresh.
      changed = changed || change.preferred_changed || change.state_changed;
      input.destinations.push_back(DestinationPreferences{hub, selector.ranked(), selector.preferred()});
    }
    // Peers came or went (reload, discovery): the scheduler learns at once which candidates exist.
    changed = changed || peers_changed_;
    peers_changed_ = false;
    input.agent_id = config_.agent.id;
    input.agent_hub = config_.agent.hub;
    refresh_ns = config_.scheduler.refresh_ns;
  }
  const bool due = document_ == nullptr || now.mono - last_document_at_ >= refresh_ns;
  if (!force && !changed && !due) return;

  uint64_t generation = generation_ + 1;
  if (generation_store_) {
    auto next = generation_store_->next();
    if (!next) {
      ++generation_errors_;
      spdlog::error("preferences not published: generation could not be stored: {}", next.error().message);
      return;
    }
    generation = *next;
  }
  generation_ = generation;
  input.generation = generation;
  input.timestamp = now.wall;
  input.stale = stale;
  auto document = std::make_shared<const nlohmann::json>(make_preference_document(input));
  last_document_at_ = now.mono;
  {
    std::lock_guard lock(mutex_);
    document_ = document;
  }
  std::lock_guard lock(sinks_mutex_);
  for (auto& sink : sinks_) sink->publish(document, generation);
}

// ---- Discovery --------------------------------------------------------------------------------------

void Agent::start_discovery(const SchedulerConfig& scheduler) {
  const EtcdSinkConfig* sink = scheduler.discovering_sink();
  {
    std::lock_guard lock(mutex_);
    discovery_enabled_ = sink != nullptr;
    if (discovery_enabled_) discovery_endpoint_ = sink->endpoints.front();
  }
  if (sink == nullptr) return;
  auto client = std::make_shared<EtcdClient>(etcd_client_options(*sink));
  {
    std::lock_guard wait(discovery_wait_mutex_);
    discovery_stop_ = false;
    discovery_client_ = client;
  }
  discovery_thread_ = std::thread([this, settings = *sink, client] { discovery_loop(settings, client); });
}

void Agent::stop_discovery() {
  {
    std::lock_guard wait(discovery_wait_mutex_);
    discovery_stop_ = true;
    // Abandons a poll in flight: a stop or reload does not wait for etcd's timeout.
    if (discovery_client_) discovery_client_->set_deadline(std::chrono::steady_clock::now());
  }
  discovery_wake_.notify_all();
  if (discovery_thread_.joinable()) discovery_thread_.join();
  std::lock_guard wait(discovery_wait_mutex_);
  discovery_client_.reset();
}

void Agent::discovery_loop(EtcdSinkConfig sink, std::shared_ptr<EtcdClient> client) {
  const std::string prefix = registrations_prefix(sink.prefix);
  uint64_t failures = 0;  // in a row
  std::unique_lock wait(discovery_wait_mutex_);
  while (!discovery_stop_) {
    wait.unlock();
    auto registrations = client->get_prefix(prefix);
    const std::string endpoint = client->endpoint();
    const Now now = read_now();
    bool stopping = false;
    {
      std::lock_guard stop_check(discovery_wait_mutex_);
      stopping = discovery_stop_;
    }
    if (registrations) {
      if (failures > 0) {
        spdlog::info("discovery: etcd {} answers again after {} failed polls", endpoint, failures);
      }
      failures = 0;
      std::lock_guard lock(mutex_);
      ++discovery_polls_ok_;
      discovery_last_poll_at_ = now.wall;
      discovery_last_success_at_ = now.wall;
      discovery_error_.clear();
      discovery_endpoint_ = endpoint;
      registrations_ = std::move(*registrations);
      registrations_prefix_ = sink.prefix;
      apply_discovered(now);
      prune_selectors();
    } else if (!(stopping && registrations.error().code == ECANCELED)) {
      // etcd unreachable: the peers found before stay (an outage of etcd is not an outage of the fleet).
      std::lock_guard lock(mutex_);
      if (failures++ == 0) {
        spdlog::warn("discovery: {} (keeping the {} peers found before; polling again every {})",
                     registrations.error().message, discovered_.size(), format_duration(sink.discover_interval_ns));
      }
      ++discovery_polls_failed_;
      discovery_last_poll_at_ = now.wall;
      discovery_error_ = registrations.error().message;
      discovery_endpoint_ = endpoint;
    }
    wait.lock();
    discovery_wake_.wait_for(wait, std::chrono::nanoseconds(sink.discover_interval_ns),
                             [&] { return discovery_stop_; });
  }
}

void Agent::apply_discovered(const Now& now) {
  DiscoveredPeers wanted;
  if (registrations_) wanted = discover_peers(*registrations_, registrations_prefix_, config_);
  discovery_candidates_ = wanted.peers.size();
  if (const EtcdSinkConfig* sink = config_.scheduler.discovering_sink()) {
    wanted.peers = plan_peers(std::move(wanted.peers), config_.agent.id, config_.agent.hub, sink->plan_per_hub,
                              plan_epoch(now.wall, sink->plan_rotate_ns));
  }
  const std::vector<IgnoredRegistration> before = std::move(discovery_ignored_);
  discovery_ignored_ = std::move(wanted.ignored);
  std::map<std::string, PeerConfig> next;
  for (PeerConfig& peer : wanted.peers) next.emplace(peer.name, std::move(peer));

  for (auto it = discovered_.begin(); it != discovered_.end();) {
    const auto found = next.find(it->first);
    if (found != next.end() && same_session(it->second, found->second)) {
      if (!(it->second == found->second)) {
        update_peer(found->second, now);
        it->second = found->second;
      }
      next.erase(found);
      ++it;
      continue;
    }
    remove_peer(it->first);
    if (found == next.end()) {
      spdlog::info("discovery: peer {} ({}) left etcd (lease expired or ignored now): stopped probing it", it->first,
                   it->second.address.to_string());
    }
    it = discovered_.erase(it);
  }
  const std::string base = registrations_prefix(registrations_prefix_);
  for (auto& [name, peer] : next) {
    if (auto r = add_peer(peer, now); !r) {
      discovery_ignored_.push_back({base + name, "cannot probe it: " + r.error().message});
      continue;
    }
    spdlog::info("discovery: probing peer {} (hub {}, {}) found in etcd", name, peer.hub, peer.address.to_string());
    discovered_.emplace(name, std::move(peer));
  }
  for (const IgnoredRegistration& ignored : discovery_ignored_) {
    if (std::find(before.begin(), before.end(), ignored) == before.end()) {
      spdlog::warn("discovery: registration {} ignored: {}", ignored.key, ignored.reason);
    }
  }
}

}  // namespace hubprobe
