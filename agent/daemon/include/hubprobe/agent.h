// SPDX-License-Identifier: Apache-2.0
// The agent inside hubprobed: a probe session and statistics per peer, the reflector, and the views the
// HTTP endpoints serve (/metrics, /status). Configuration arrives whole (start, reload); a reload applies
// only the difference, whole or not at all, and keeps sessions and statistics of peers that did not change.
//
// Threads: a probe thread (an EngineLoop that ticks the probe engine), a reflector thread, civetweb's workers
// for HTTP, and the caller's (start, reload, stop); with sinks a publisher thread, and with etcd discovery a
// discovery thread. On a busy-polled dataplane there is no reflector thread: the probe thread's loop busy-polls
// and steps the reflector too (one_loop_; docs/architecture.md "Two loop kinds").
// One mutex (mutex_) guards the sessions and statistics. The probe thread holds it for a whole tick,
// including the tick's non-blocking system calls on the probe ports (recvmmsg, sendmmsg, the TX-timestamp
// error queue), and never while it sleeps. Every port of the agent, the reflector's too, is opened and closed
// under it (start, reload, a discovery poll): the dataplane is used under mutex_ only, and the thread that
// drives a port takes it over from there. Nobody holds it for network I/O that can block (the reflector
// thread's loop, the sinks, discovery's etcd requests) or for the generation file; log lines are written
// under it.
//
// Peers come from the file ([[peer]], config_.peers) and, with `discover = true`, from etcd (discovered_).
// A reload applies the file's difference and keeps the discovered peers; a discovery poll applies etcd's
// difference and never touches the file's peers (they win any name or address collision).
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "hubprobe/config.h"
#include "hubprobe/discovery.h"
#include "hubprobe/etcd_client.h"
#include "hubprobe/generation_store.h"
#include "hubprobe/path_selection.h"
#include "hubprobe/preferences.h"
#include "hubprobe/probe_engine.h"
#include "hubprobe/reflector_service.h"
#include "hubprobe/scheduler_sink.h"
#include "hubprobe/window_stats.h"

namespace hubprobe {

class Agent : private ProbeListener {
 public:
  /// Opens the dataplane, the reflector ports and every peer's session, then starts the threads. Any
  /// failure (port in use, unknown interface) is returned and nothing keeps running.
  static Result<std::unique_ptr<Agent>> start(const AgentConfig& config);
  ~Agent() override;

  /// Applies `next` whole or not at all: peers added, removed or changed; reflector, scheduler and logging
  /// changes. When something cannot be applied (a port that cannot be opened, among them any source port of
  /// a path; a state_dir that cannot be used; a dataplane change), returns the error, and the running
  /// configuration stays: its sessions with their statistics, and its reflector (restarted with the old
  /// settings if the new one had already replaced it). Only when another process takes a port of the old
  /// configuration in the moment it is reopened does a session stay out (logged). Call from one thread at
  /// a time.
  Result<void> reload(const AgentConfig& next);
  /// Records the outcome of a reload attempt (including files refused by the loader) for metrics.
  void record_reload(bool success, const std::string& error);

  /// Stops the threads and closes everything (idempotent). With sinks configured, the last preference
  /// document is sent once more marked stale (docs/operations.md, shutdown), within about two seconds.
  void stop();

  /// The Prometheus text exposition of the agent's metrics, computed now. Thread-safe.
  std::string metrics_text() const;
  /// What `hubprobe status` shows. Thread-safe.
  nlohmann::json status() const;
  /// The probe thread ticked within the last two seconds.
  bool healthy() const;

  AgentConfig config() const;
  /// The current preference document (null before the first one).
  std::shared_ptr<const nlohmann::json> preferences() const;

  /// The probe session id of a peer's path: "PEER/PATH" (names cannot contain '/').
  static std::string session_id(const std::string& peer, const std::string& path) { return peer + "/" + path; }

 private:
  /// One probe session: a peer over one of its paths.
  struct SessionRuntime {
    PeerConfig peer;
    PathConfig path;
    std::unique_ptr<WindowedStats> stats;
  };

  explicit Agent(const AgentConfig& config);
  void on_probe_sent(const std::string& session_id, uint32_t seq, const Now& now) override;
  void on_probe_event(const std::string& session_id, const stamp::ProbeEvent& event, const Now& now) override;
  /// At start: the reflector's ports and every peer's sessions, and who drives them (one_loop_).
  Result<void> open_ports(const AgentConfig& config, const Now& now);
  /// The probe thread: an EngineLoop of probe_step(), and of reflector_step() with one_loop_.
  void probe_loop();
  /// One tick of the probe engine (mutex_ held for it); its deadline kept one tick to 100 ms ahead.
  StepResult probe_step(const Now& now);
  /// The probe thread's tick: [agent] tick, or "auto" from the shortest probe interval. mutex_ held.
  int64_t tick_ns() const;
  /// One step of the reflector, if one runs (mutex_ held for it).
  StepResult reflector_step(const Now& now);
  /// Opens the reflector's ports under mutex_; once the agent runs, starts the thread that serves them
  /// unless the probe thread's loop does (one_loop_).
  Result<void> start_reflector(const ReflectorConfig& config);
  void stop_reflector();
  /// (mutex_ held) Starts a peer's sessions (all or none) and installs them (install_peer).
  Result<void> add_peer(const PeerConfig& peer, const Now& now);
  /// (mutex_ held) Statistics and path-selection candidates for a peer whose engine sessions run.
  void install_peer(const PeerConfig& peer);
  /// (mutex_ held) Stops a peer's sessions and uninstalls them.
  void remove_peer(const std::string& name);
  /// (mutex_ held) Drops the statistics and candidates of a peer's sessions; the engine's are not touched.
  void uninstall_peer(const std::string& name);
  std::map<std::string, SessionRuntime>::iterator uninstall_session(std::map<std::string, SessionRuntime>::iterator it);
  /// (mutex_ held) Drops the statistics of sessions the engine no longer has (one it could not put back).
  void drop_lost_sessions();
  // Reload, in this order (reload() undoes the earlier steps when a later one fails).
  /// The peers whose sessions a reload starts: added and restarted.
  static std::vector<std::string> starting_peers(const ConfigDiff& diff);
  /// What can be checked without changing anything: every port the new sessions need, the state_dir.
  Result<void> preflight(const AgentConfig& next, const ConfigDiff& diff);
  /// Stops the reflector `from` and starts `to`; when `to` cannot start, restores `from`.
  Result<void> replace_reflector(const ReflectorConfig& from, const ReflectorConfig& to);
  /// Stops whatever reflector runs and starts one with `config` again (new counters); failures are logged.
  void restore_reflector(const ReflectorConfig& config);
  /// (mutex_ held) The sessions of removed and restarted peers leave and those of added and restarted
  /// peers start, as one change of the engine; then config_ = next. On error nothing changed.
  Result<void> replace_peers(const AgentConfig& next, const ConfigDiff& diff, MonoNs now);
  /// New sinks and discovery for `next` (after a reload that changed [scheduler]).
  void restart_scheduler(const AgentConfig& next);
  void refresh_sender_counters(MonoNs now);
  /// Applies a change of window, down_after or SLA class to a running peer's sessions (same_session holds).
  void update_peer(const PeerConfig& peer, const Now& now);
  static SessionSpec session_spec(const PeerConfig& peer, const PathConfig& path);
  /// A peer's statistics options; the RTT histogram's layout is the agent's ([metrics] rtt_buckets).
  WindowOptions window_options(const PeerConfig& peer) const;
  PathSelector& selector_for(const PeerConfig& peer);
  /// Drops selectors of hubs without peers, and gives the others their hub's SLA class from config_.
  void prune_selectors();
  /// A peer of `hub`, from the file or discovered (null when none).
  const PeerConfig* any_peer_of_hub(const std::string& hub) const;

  // Discovery (etcd, discover = true): a thread polls PREFIX/agents/ every discover_interval with its own
  // etcd client, without mutex_, then applies the result under mutex_.
  void start_discovery(const SchedulerConfig& scheduler);
  void stop_discovery();
  void discovery_loop(EtcdSinkConfig sink, std::shared_ptr<EtcdClient> client);
  /// (mutex_ held) Brings the discovered peers' sessions in line with registrations_ and config_: adds,
  /// removes, restarts or updates them. No registrations (discovery off) = no discovered peers.
  void apply_discovered(const Now& now);

  // Preferences: the publisher thread evaluates the selectors once a second and hands documents to the
  // sinks; it never holds mutex_ while it writes the generation file or talks to a sink.
  /// The sinks of `config.scheduler` (the registration in etcd also comes from `config`).
  Result<void> start_sinks(const AgentConfig& config);
  /// The generation store start_sinks() would open for `scheduler` can be opened.
  Result<void> check_state_dir(const SchedulerConfig& scheduler);
  void stop_sinks(int64_t deadline_ns);
  void publisher_loop();
  /// Evaluates (mutex_ held), then makes and publishes a document when something changed, the refresh
  /// period passed, or `force`. `stale` marks the final document.
  void publish_preferences(bool force, bool stale);

  mutable std::mutex mutex_;  // guards everything below that is not atomic
  AgentConfig config_;
  std::shared_ptr<dp::Dataplane> dataplane_;
  std::unique_ptr<ProbeEngine> engine_;
  std::map<std::string, SessionRuntime> sessions_;  ///< by session_id()
  /// sessions_ by id, for the probe thread's lookups (one per probe sent and per event: thousands a second)
  std::unordered_map<std::string, SessionRuntime*> runtime_by_id_;
  std::shared_ptr<const ExportLayout> rtt_layout_;  ///< every session's, from [metrics] rtt_buckets
  std::map<std::string, PathSelector> selectors_;   ///< by destination hub
  ClockState clock_;
  // Times are wall clock (WallNs) where they are shown as points in time, monotonic (MonoNs) where they
  // measure an interval.
  MonoNs clock_read_at_ = 0;
  MonoNs counters_refreshed_at_ = 0;
  bool peers_changed_ = false;  ///< a peer was added or removed since the last preference document

  std::unique_ptr<ReflectorService> reflector_;
  /// The backend's own reflector in front of reflector_ (the xdp backend's), null when it has none.
  std::unique_ptr<dp::BackendReflector> backend_reflector_;
  /// The ports are busy-polled (decided at start): the probe thread's loop drives the reflector too, and
  /// there is no reflector thread. Set before the probe thread starts, then constant.
  bool one_loop_ = false;
  std::thread reflector_thread_;
  std::atomic<bool> reflector_stop_{false};

  std::thread probe_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<MonoNs> last_tick_{0};
  WallNs started_at_ = 0;
  MonoNs started_mono_ = 0;  ///< for the uptime

  uint64_t reloads_ok_ = 0;
  uint64_t reloads_failed_ = 0;
  bool last_reload_ok_ = true;
  WallNs last_reload_at_ = 0;
  WallNs last_reload_success_at_ = 0;
  std::string last_reload_error_;

  // Discovery, guarded by mutex_ (the thread's own state below it).
  std::map<std::string, PeerConfig> discovered_;  ///< peers found in etcd, by name
  /// The registrations of the last successful poll (keys under registrations_prefix_); unset = none yet, or
  /// discovery off. Kept while etcd is unreachable: its peers stay.
  std::optional<std::vector<EtcdClient::KeyValue>> registrations_;
  std::string registrations_prefix_;  ///< the sink's prefix the registrations were read under
  std::vector<IgnoredRegistration> discovery_ignored_;
  size_t discovery_candidates_ = 0;  ///< peers the registrations offered at the last poll, before the plan
  bool discovery_enabled_ = false;
  uint64_t discovery_polls_ok_ = 0;
  uint64_t discovery_polls_failed_ = 0;
  WallNs discovery_last_poll_at_ = 0;
  WallNs discovery_last_success_at_ = 0;
  std::string discovery_error_;  ///< of the last poll; empty after a success
  std::string discovery_endpoint_;
  std::thread discovery_thread_;
  std::mutex discovery_wait_mutex_;  // guards the three below
  std::condition_variable discovery_wake_;
  bool discovery_stop_ = false;
  std::shared_ptr<EtcdClient> discovery_client_;

  // Preferences and sinks (publish_mutex_ serialises documents; sinks_mutex_ guards sinks_).
  std::mutex publish_mutex_;
  std::optional<GenerationStore> generation_store_;
  uint64_t generation_ = 0;
  uint64_t generation_errors_ = 0;
  MonoNs last_document_at_ = 0;
  std::shared_ptr<const nlohmann::json> document_;  ///< guarded by mutex_
  mutable std::mutex sinks_mutex_;
  std::vector<std::unique_ptr<SchedulerSink>> sinks_;
  std::thread publisher_thread_;
  std::mutex publisher_wait_mutex_;
  std::condition_variable publisher_wake_;
  bool publisher_stop_ = false;
};

}  // namespace hubprobe
