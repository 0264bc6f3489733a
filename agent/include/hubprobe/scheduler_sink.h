// SPDX-License-Identifier: Apache-2.0
// Where preference documents go: the scheduler's HTTP(S) endpoint and etcd v3 (SPEC section 6).
//
// Every sink runs its own thread. publish() only swaps in the latest document and wakes that thread, so
// probing never waits on the scheduler, and a sink that cannot deliver never builds a backlog: when it
// can deliver again it sends the newest document only. Failures are retried with exponential backoff and
// full jitter; a periodic refresh re-sends the current document even when nothing changed (HTTP) or keeps
// the lease alive (etcd).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/result.h"

namespace hubprobe {

/// Retry timing shared by the sinks.
struct BackoffConfig {
  int64_t initial_ns = 500'000'000;  ///< first retry after up to this (full jitter)
  int64_t max_ns = 30'000'000'000;   ///< the cap of the exponential growth
  bool operator==(const BackoffConfig&) const = default;
};

/// [[scheduler.http]]
struct HttpSinkConfig {
  std::string name;                            ///< the `sink` label; default "http" (+ index when several)
  std::string url;                             ///< http:// or https://
  int64_t timeout_ns = 2'000'000'000;          ///< whole request
  int64_t connect_timeout_ns = 1'000'000'000;  ///< TCP + TLS handshake
  int64_t refresh_ns = 30'000'000'000;         ///< re-send the current document this often; 0 = only on change
  BackoffConfig backoff;
  std::string bearer_token_file;  ///< read at load time; its content (trimmed) is sent as "Authorization: Bearer"
  std::string bearer_token;       ///< the token itself, filled by the config loader (never written in the TOML)
  std::string ca_file;            ///< verify the server with this CA bundle (https)
  std::string client_cert_file;   ///< mTLS client certificate (PEM)
  std::string client_key_file;    ///< mTLS client key (PEM)
  bool operator==(const HttpSinkConfig&) const = default;
};

/// [[scheduler.etcd]]
struct EtcdSinkConfig {
  std::string name;                    ///< the `sink` label; default "etcd" (+ index when several)
  std::vector<std::string> endpoints;  ///< e.g. "http://198.18.0.254:2379"; tried in order
  std::string prefix = "/hubprobe";    ///< keys: PREFIX/preferences/AGENT_ID, PREFIX/agents/AGENT_ID
  int64_t ttl_ns = 15'000'000'000;     ///< lease TTL (whole seconds, >= 2 s); kept alive every TTL/3
  int64_t timeout_ns = 2'000'000'000;  ///< per request
  BackoffConfig backoff;
  bool register_agent = true;  ///< write PREFIX/agents/AGENT_ID (id, hub, address, ports) under the lease
  /// The numeric address other agents probe (written as "address" in the registration); empty = none, and
  /// discovering agents ignore the registration.
  std::string advertise;
  bool discover = false;                                   ///< poll PREFIX/agents/ and probe the agents found there
  int64_t discover_interval_ns = 5'000'000'000;            ///< between polls of PREFIX/agents/
  std::string ca_file, client_cert_file, client_key_file;  ///< https endpoints
  bool operator==(const EtcdSinkConfig&) const = default;
};

/// What a sink reports for /metrics and /status.
struct SinkStatus {
  std::string name;
  std::string kind;    ///< "http" or "etcd"
  std::string target;  ///< the URL or the endpoint currently in use
  uint64_t pushes_ok = 0;
  uint64_t pushes_failed = 0;  ///< attempts that did not deliver (each retry counts)
  uint64_t superseded = 0;     ///< documents replaced by a newer one before they were delivered
  WallNs last_attempt = 0;
  WallNs last_success = 0;            ///< 0 = never
  uint64_t delivered_generation = 0;  ///< the generation of the last document the target accepted
  uint64_t pending_generation = 0;    ///< the newest generation handed to publish()
  std::string last_error;             ///< empty after a success
  bool healthy = false;               ///< the last attempt succeeded
};

class SchedulerSink {
 public:
  virtual ~SchedulerSink() = default;
  /// Hands over the newest document (never blocks on the network). Thread-safe.
  virtual void publish(std::shared_ptr<const nlohmann::json> document, uint64_t generation) = 0;
  /// Delivers the last document (marked stale by the caller) within `deadline_ns`, then stops the
  /// thread (SPEC 8: last preferences marked stale on shutdown). The etcd sink revokes nothing: its key
  /// expires with the lease.
  virtual void stop(int64_t deadline_ns) = 0;
  virtual SinkStatus status() const = 0;
};

/// Both sinks use libcurl; the thread starts at once.
std::unique_ptr<SchedulerSink> make_http_sink(const HttpSinkConfig& config);
/// `agent_id`, `registration` (the JSON written under PREFIX/agents/AGENT_ID when register_agent).
std::unique_ptr<SchedulerSink> make_etcd_sink(const EtcdSinkConfig& config, const std::string& agent_id,
                                              nlohmann::json registration);

/// A small etcd v3 client over its JSON gateway (/v3/...), used by the sink, by discovery and by
/// `hubprobe prefs --etcd`. Blocking calls with the configured timeout; keys and values are plain strings
/// (base64 is handled inside).
/// Thread-safe: calls from several threads are served one at a time. Errors name the endpoint(s) tried,
/// e.g. "etcd http://198.18.0.254:2379: connection refused"; Error::code is ENOENT when etcd says the
/// lease is not found.
class EtcdClient {
 public:
  struct Options {
    std::vector<std::string> endpoints;
    int64_t timeout_ns = 2'000'000'000;
    std::string ca_file, client_cert_file, client_key_file;
  };
  struct KeyValue {
    std::string key, value;
    int64_t lease = 0;
    int64_t mod_revision = 0;
  };
  explicit EtcdClient(Options options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  Result<int64_t> grant_lease(int64_t ttl_s);
  /// Keeps `lease` alive once; returns the remaining TTL in seconds (0 or an error: the lease is gone).
  Result<int64_t> keep_alive(int64_t lease);
  Result<void> put(const std::string& key, const std::string& value, int64_t lease = 0);
  /// Every key starting with `prefix`.
  Result<std::vector<KeyValue>> get_prefix(const std::string& prefix);
  Result<void> revoke(int64_t lease);
  /// The endpoint that answered last (the first one before any answered).
  std::string endpoint() const;
  /// From now on no request runs past `deadline`: later requests get shorter timeouts (or fail at once
  /// once it has passed) and one already running is abandoned (libcurl checks about once a second).
  /// Thread-safe; the etcd sink's stop() uses it to bound its last put.
  void set_deadline(std::chrono::steady_clock::time_point deadline);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The client options an etcd sink's settings give (endpoints, timeout, TLS files): the sink's client and
/// the discovery client talk to etcd the same way.
EtcdClient::Options etcd_client_options(const EtcdSinkConfig& config);

}  // namespace hubprobe
