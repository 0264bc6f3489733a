// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/agent.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>

namespace hubprobe {

namespace {
// The probe thread's tick: replies and TX timestamps wait in the kernel (with their kernel timestamps)
// until the next tick, so a coarse tick costs no precision and batches the system calls.
constexpr WallNs kTickNs = 2'000'000;
constexpr WallNs kMaxSleepNs = 100'000'000;
constexpr WallNs kOncePerSecond = 1'000'000'000;

uint64_t phase_seed(const std::string& name) { return std::hash<std::string>{}(name); }
}  // namespace

Agent::Agent(const AgentConfig& config) : config_(config), started_at_(wall_now()) {}

Agent::~Agent() { stop(); }

SessionSpec Agent::session_spec(const PeerConfig& peer) {
  SessionSpec spec;
  spec.id = peer.name;
  spec.target = peer.address;
  spec.mode = peer.probe.mode();
  spec.key = peer.probe.auth_key.key;
  spec.packet_size = peer.probe.size;
  spec.dscp = peer.probe.dscp;
  spec.interval_ns = peer.probe.interval_ns;
  spec.timeout_ns = peer.probe.timeout_ns;
  spec.format = peer.probe.timestamp_format;
  return spec;
}

WindowOptions Agent::window_options(const PeerConfig& peer) {
  WindowOptions options;
  options.window_ns = peer.probe.window_ns;
  options.peer_state.down_after_lost = peer.probe.down_after;
  return options;
}

Result<std::unique_ptr<Agent>> Agent::start(const AgentConfig& config) {
  std::unique_ptr<Agent> agent(new Agent(config));
  auto dataplane = dp::make_dataplane(config.dataplane.backend);
  if (!dataplane) return dataplane.error();
  agent->dataplane_ = std::shared_ptr<dp::Dataplane>(std::move(dataplane.value()));
  agent->engine_ = std::make_unique<ProbeEngine>(agent->dataplane_);
  agent->clock_ = read_clock_state();
  agent->clock_read_at_ = wall_now();

  if (config.reflector.enabled) {
    if (auto r = agent->start_reflector(config.reflector); !r) return r.error();
  }
  const WallNs now = wall_now();
  for (const auto& peer : config.peers) {
    if (auto r = agent->add_peer(peer, now); !r) {
      agent->stop();
      return r.error();
    }
  }
  agent->last_tick_ = now;
  agent->probe_thread_ = std::thread([a = agent.get()] { a->probe_loop(); });
  return agent;
}

void Agent::stop() {
  stop_ = true;
  if (probe_thread_.joinable()) probe_thread_.join();
  stop_reflector();
}

Result<void> Agent::start_reflector(const ReflectorConfig& config) {
  ReflectorServiceOptions options;
  for (SocketAddress address : config.listen) {
    address.set_port(config.port);
    options.listen.push_back(address);
  }
  options.interface = config.interface;
  options.reflector.stateful = config.stateful;
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
  auto service = ReflectorService::open(*dataplane_, std::move(options));
  if (!service) return service.error();
  reflector_stop_ = false;
  ReflectorService* running = service.value().get();
  {
    std::lock_guard lock(mutex_);
    reflector_ = std::move(service.value());
  }
  reflector_thread_ = std::thread([this, running] { running->run(reflector_stop_); });
  return {};
}

void Agent::stop_reflector() {
  reflector_stop_ = true;
  if (reflector_thread_.joinable()) reflector_thread_.join();
  std::lock_guard lock(mutex_);
  reflector_.reset();
}

Result<void> Agent::add_peer(const PeerConfig& peer, WallNs now) {
  if (auto r = engine_->add_session(session_spec(peer), phase_seed(peer.name), now); !r) return r.error();
  peers_[peer.name] = PeerRuntime{peer, std::make_unique<WindowedStats>(window_options(peer))};
  return {};
}

void Agent::remove_peer(const std::string& name) {
  engine_->remove_session(name);
  peers_.erase(name);
}

void Agent::on_probe_sent(const std::string& session_id, uint32_t seq, WallNs when) {
  auto it = peers_.find(session_id);
  if (it != peers_.end()) it->second.stats->on_sent(seq, when);
}

void Agent::on_probe_event(const std::string& session_id, const stamp::ProbeEvent& event, WallNs now) {
  auto it = peers_.find(session_id);
  if (it == peers_.end()) return;
  const PeerState before = it->second.stats->peer_state().state();
  it->second.stats->on_event(event, now);
  const PeerState after = it->second.stats->peer_state().state();
  if (after != before && after == PeerState::kDown) {
    spdlog::warn("peer {} ({}) is down: {} probes in a row without a reply", session_id,
                 it->second.config.address.to_string(), it->second.config.probe.down_after);
  } else if (after != before && after == PeerState::kUp) {
    spdlog::info("peer {} ({}) is up", session_id, it->second.config.address.to_string());
  }
}

void Agent::refresh_sender_counters(WallNs now) {
  for (auto& [name, peer] : peers_) {
    if (const auto* counters = engine_->sender_counters(name)) peer.stats->on_sender_counters(*counters, now);
  }
  counters_refreshed_at_ = now;
}

void Agent::probe_loop() {
  while (!stop_.load(std::memory_order_relaxed)) {
    WallNs now = wall_now();
    WallNs next_due;
    {
      std::lock_guard lock(mutex_);
      if (now - clock_read_at_ >= kOncePerSecond) {
        clock_ = read_clock_state();
        clock_read_at_ = now;
      }
      engine_->run_tick(now, clock_, *this);
      if (now - counters_refreshed_at_ >= kOncePerSecond) refresh_sender_counters(now);
      next_due = engine_->next_due();
    }
    last_tick_.store(now, std::memory_order_relaxed);
    now = wall_now();
    const WallNs wake = std::clamp(next_due, now + kTickNs, now + kMaxSleepNs);
    std::this_thread::sleep_for(std::chrono::nanoseconds(wake - now));
  }
}

bool Agent::healthy() const { return wall_now() - last_tick_.load(std::memory_order_relaxed) < 2 * kOncePerSecond; }

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

Result<void> Agent::reload(const AgentConfig& next) {
  const ConfigDiff diff = [&] {
    std::lock_guard lock(mutex_);
    return diff_configs(config_, next);
  }();
  if (diff.dataplane_changed) {
    return make_error("dataplane settings changed: restart hubprobed to apply them (the running configuration stays)");
  }

  // Pre-flight: every port a new session needs must open, before anything changes.
  for (const auto& name : diff.peers_added) {
    const PeerConfig* peer = next.find_peer(name);
    dp::PortOptions options;
    options.local = SocketAddress::any(peer->address.family(), 0);
    if (auto port = dataplane_->open_port(options); !port) {
      return make_error("peer " + name + ": " + port.error().message);
    }
  }

  if (diff.reflector_changed) {
    const ReflectorConfig old_reflector = config().reflector;
    stop_reflector();
    if (next.reflector.enabled) {
      if (auto r = start_reflector(next.reflector); !r) {
        // Put the old reflector back: the running configuration stays.
        if (old_reflector.enabled) {
          if (auto back = start_reflector(old_reflector); !back) {
            spdlog::error("reflector could not be restored: {}", back.error().message);
          }
        }
        return r.error();
      }
    }
  }

  std::lock_guard lock(mutex_);
  const WallNs now = wall_now();
  for (const auto& name : diff.peers_removed) remove_peer(name);
  for (const auto& name : diff.peers_restarted) remove_peer(name);
  std::vector<std::string> to_add = diff.peers_added;
  to_add.insert(to_add.end(), diff.peers_restarted.begin(), diff.peers_restarted.end());
  for (const auto& name : to_add) {
    if (auto r = add_peer(*next.find_peer(name), now); !r) {
      spdlog::error("peer {}: {}", name, r.error().message);
    }
  }
  for (const auto& name : diff.peers_updated) {
    PeerRuntime& runtime = peers_.at(name);
    const PeerConfig& peer = *next.find_peer(name);
    if (peer.probe.window_ns != runtime.config.probe.window_ns) runtime.stats->set_window(peer.probe.window_ns, now);
    runtime.stats->set_peer_state_options(window_options(peer).peer_state, now);
    runtime.config = peer;
  }
  for (const auto& name : diff.peers_unchanged) peers_.at(name).config = *next.find_peer(name);
  if (diff.logging_changed) spdlog::set_level(spdlog::level::from_str(to_string(next.logging.level)));
  config_ = next;
  spdlog::info("configuration reloaded: {} peers added, {} removed, {} restarted, {} updated, {} unchanged",
               diff.peers_added.size(), diff.peers_removed.size(), diff.peers_restarted.size(),
               diff.peers_updated.size(), diff.peers_unchanged.size());
  return {};
}

}  // namespace hubprobe
