// SPDX-License-Identifier: Apache-2.0
// `hubprobe costmap`, the service: watches PREFIX/ in etcd (one range read, then a watch that resumes from
// the last revision it saw after a disconnect, and reads everything again when that revision was
// compacted away or the store went back), rebuilds the ALTO resources of hubprobe/costmap.h on every
// change and serves them over HTTP(S) (hubprobe/http_server.h, with the agents' web configuration file).
// It keeps no state of its own: etcd holds it all, so several instances serve the same maps.
// docs/costmap.md is the contract.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "hubprobe/costmap.h"
#include "hubprobe/etcd_client.h"
#include "hubprobe/http_server.h"
#include "hubprobe/result.h"
#include "hubprobe/web_config.h"

namespace hubprobe::costmap {

struct ServiceOptions {
  EtcdClient::Options etcd;          ///< endpoints, request timeout, TLS files
  std::string prefix = "/hubprobe";  ///< the agents' etcd sinks' prefix
  std::string listen = "127.0.0.1:9863";
  WebConfig web;     ///< TLS and basic auth, as for the agent's endpoints
  int threads = 16;  ///< HTTP workers; a long poll holds one while it waits
  ServiceLayout layout;
  int64_t max_wait_ns = 60'000'000'000;  ///< the longest long poll (Prefer: wait=N) honoured
  int64_t retry_initial_ns = 200'000'000;
  int64_t retry_max_ns = 5'000'000'000;
};

using ServiceLog = std::function<void(const std::string& message)>;

/// Thread-safe. The destructor stops the watch and the server (long polls are woken and answered).
class Service {
 public:
  /// Starts the HTTP server (an error when it cannot listen) and the watch thread (which keeps retrying
  /// while etcd is unreachable; /healthz says 503 until the first read succeeded).
  static Result<std::unique_ptr<Service>> start(ServiceOptions options, ServiceLog log = {});
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  uint16_t port() const { return server_->port(); }
  bool tls() const { return server_->tls(); }
  /// The maps now (empty fleet before the first read).
  std::shared_ptr<const FleetMaps> maps() const;
  /// True once the maps reflect a read of etcd.
  bool synced() const { return synced_; }
  /// The etcd revision the maps reflect (of the last event applied, or of the last full read).
  int64_t revision() const { return revision_; }
  /// How many full reads of the prefix the watch thread did (1 + one per compaction or store reset).
  int64_t full_reads() const { return full_reads_; }

 private:
  Service() = default;
  void watch_loop();
  void publish(const FleetState& state, int64_t revision);
  void serve_routes();
  /// GET of the resource `pick` chooses from the maps now: ETag, If-None-Match (304), Accept (406), and a
  /// long poll when the client has the current version and sends "Prefer: wait=N".
  using Pick = std::function<std::optional<Resource>(const FleetMaps& maps, WallNs now)>;
  HttpResponse serve_get(const HttpRequest& request, const Pick& pick);
  void log(const std::string& message) const;

  ServiceOptions options_;
  ServiceLog log_;
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<HttpServer> server_;
  mutable std::mutex mutex_;  // guards maps_, generation_, registered_metrics_
  std::condition_variable changed_;
  std::shared_ptr<const FleetMaps> maps_;
  uint64_t generation_ = 0;
  std::set<std::string> registered_metrics_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> synced_{false};
  std::atomic<int64_t> revision_{0};
  std::atomic<int64_t> full_reads_{0};
  std::thread watcher_;
};

}  // namespace hubprobe::costmap
