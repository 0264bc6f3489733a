// SPDX-License-Identifier: Apache-2.0
// The scheduler sinks' settings ([scheduler.http], [scheduler.etcd]) as the config loader gives them, and
// the one definition of the etcd key layout that the etcd sink, discovery and `hubprobe prefs --etcd`
// share. Pure data; the sinks themselves are hubprobe/scheduler_sink.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
  bool discover = false;                         ///< poll PREFIX/agents/ and probe the agents found there
  int64_t discover_interval_ns = 5'000'000'000;  ///< between polls of PREFIX/agents/
  /// The probe plan (hubprobe/discovery.h, plan_peers): of every other hub, probe this many of the agents
  /// found; 0 = every one. The agents of this agent's own hub are always probed.
  uint32_t plan_per_hub = 0;
  int64_t plan_rotate_ns = 3'600'000'000'000;              ///< the plan's choice changes every this long (wall clock)
  std::string ca_file, client_cert_file, client_key_file;  ///< https endpoints
  bool operator==(const EtcdSinkConfig&) const = default;
};

/// One key and value read from etcd (keys and values as plain strings).
struct EtcdKeyValue {
  std::string key, value;
  int64_t lease = 0;
  int64_t mod_revision = 0;
};

/// The etcd key layout under a sink's `prefix` (trailing slashes of the prefix dropped):
///   PREFIX/preferences/AGENT_ID  the agent's preference document (under its lease)
///   PREFIX/agents/AGENT_ID       the agent's registration (under its lease)
std::string preferences_prefix(std::string_view prefix);    ///< PREFIX/preferences/
std::string registrations_prefix(std::string_view prefix);  ///< PREFIX/agents/
std::string preferences_key(std::string_view prefix, std::string_view agent_id);
std::string registration_key(std::string_view prefix, std::string_view agent_id);

}  // namespace hubprobe
