// SPDX-License-Identifier: Apache-2.0
// A small etcd v3 client over its JSON gateway (libcurl).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hubprobe/etcd_answers.h"
#include "hubprobe/result.h"
#include "hubprobe/sink_config.h"

namespace hubprobe {

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
  using KeyValue = EtcdKeyValue;
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
  /// The same, with the store revision the answer reflects (where a watch continues from).
  struct Range {
    std::vector<KeyValue> kvs;
    int64_t revision = 0;
  };
  Result<Range> get_prefix_with_revision(const std::string& prefix);

  /// Watches every key starting with `prefix` from `start_revision` (etcd's /v3/watch, a stream) and hands
  /// each message to `on_message` (on this thread), until `stop` is set (checked about once a second; then
  /// the result is ECANCELED), `on_message` returns false (success), or the stream ends or fails (an error
  /// naming the endpoint: etcd went away, or canceled the watch). Tries the endpoints in order from the
  /// one that answered last. Resuming after a failure is the caller's: start again from the last event's
  /// mod_revision + 1; a message with compact_revision > 0 means that revision is gone (read the prefix
  /// again). Not serialized with the other calls: it has a connection of its own.
  Result<void> watch_prefix(const std::string& prefix, int64_t start_revision,
                            const std::function<bool(const etcd_gateway::WatchMessage&)>& on_message,
                            const std::atomic<bool>& stop);
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
