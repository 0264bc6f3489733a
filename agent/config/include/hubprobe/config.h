// SPDX-License-Identifier: Apache-2.0
// The agent's configuration: one TOML file (docs/configuration.md) loaded into plain structs.
// Loading validates everything the file can get wrong and reads the key files, so the daemon never
// touches the file system for its configuration again. A bad file gives exactly one message,
// "FILE:LINE:COLUMN: KEY.PATH: what was expected, what was found", and nothing else.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/dataplane.h"
#include "hubprobe/net.h"
#include "hubprobe/prefix.h"
#include "hubprobe/result.h"
#include "hubprobe/sink_config.h"
#include "hubprobe/sla_config.h"
#include "hubprobe/stamp.h"
#include "hubprobe/web_config.h"

namespace hubprobe {

/// Exit status of `hubprobe check-config` and `hubprobed` when the configuration is bad (EX_CONFIG,
/// sysexits.h). Distinct from every other status of the two programs, so systemd units can refuse to
/// restart on it (RestartPreventExitStatus=78).
constexpr int kExitConfigError = 78;

constexpr uint16_t kDefaultCostmapPort = 9863;  ///< `hubprobe costmap`'s, next to the agents' metrics port
constexpr uint16_t kDefaultMetricsPort = 9862;  ///< "9" + the STAMP port (kDefaultStampPort, stamp.h)

constexpr int64_t kMillisecond = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;

/// An HMAC key read from a file at load time. Both empty = none (unauthenticated).
struct KeyFile {
  std::string path;                           ///< as resolved (relative paths: to the config file's folder)
  std::shared_ptr<const stamp::HmacKey> key;  ///< shared by every user of the same file

  explicit operator bool() const { return key != nullptr; }
  /// Same path and same key octets (not the same pointer).
  bool operator==(const KeyFile& other) const;
};

/// [agent]
struct AgentIdentity {
  std::string id;   ///< required, unique in the fleet, e.g. "gz-edge-01"
  std::string hub;  ///< required, the local hub label, e.g. "gz"
  bool operator==(const AgentIdentity&) const = default;
};

/// [dataplane.kernel]
struct KernelDataplaneOptions {
  bool hardware_timestamps = false;  ///< ask the NIC for timestamps (falls back to kernel software)
  int receive_buffer = 1 << 20;      ///< SO_RCVBUF in octets
  bool operator==(const KernelDataplaneOptions&) const = default;
};

/// [dataplane]: the backend and a table of options per backend.
struct DataplaneConfig {
  std::string backend = "kernel";  ///< the name make_dataplane() takes
  KernelDataplaneOptions kernel;   ///< also the xdp backend's, whose probe ports are kernel sockets
  dp::XdpOptions xdp;              ///< [dataplane.xdp]: only with backend = "xdp"
  dp::DpdkOptions dpdk;            ///< [dataplane.dpdk]: only with backend = "dpdk"
  bool operator==(const DataplaneConfig&) const = default;
};

/// [[reflector.auth]]: a key for requests from some source prefixes.
struct ReflectorSourceKey {
  std::vector<IpPrefix> sources;
  KeyFile key;
  bool operator==(const ReflectorSourceKey&) const = default;
};

/// [reflector]
struct ReflectorConfig {
  bool enabled = true;
  /// Where to listen, each with `port` applied. Default 0.0.0.0 and :: (the daemon sets IPV6_V6ONLY).
  std::vector<SocketAddress> listen;
  uint16_t port = kDefaultStampPort;
  bool stateful = true;         ///< own sequence numbers per session (senders can split loss)
  std::vector<IpPrefix> allow;  ///< sources answered; empty = every source
  uint32_t rate_limit_pps = 0;  ///< per source address, token bucket of one second; 0 = unlimited
  std::string interface;        ///< SO_BINDTODEVICE; empty = all; checked to exist at load time
  TimestampFormat timestamp_format = TimestampFormat::kNtp;
  KeyFile auth_key;                             ///< key for sources without a source_keys entry
  std::vector<ReflectorSourceKey> source_keys;  ///< [[reflector.auth]], in file order
  /// Answer 14..43-octet requests with a 44-octet reply (stamp::ReflectorOptions::answer_short_requests).
  bool answer_short_requests = false;

  /// Authenticated mode (112-octet packets only) when any key is configured.
  bool authenticated() const;
  /// True when `source` may be answered (allow list; the port is ignored).
  bool allows(const SocketAddress& source) const;
  /// The key that verifies requests from `source`: the longest matching source_keys prefix, else
  /// auth_key. Null when none applies (in authenticated mode the request is dropped).
  std::shared_ptr<const stamp::HmacKey> key_for(const SocketAddress& source) const;
  bool operator==(const ReflectorConfig&) const = default;
};

/// Probe settings: [probe] holds the defaults, each [[peer]] may override any of them.
struct ProbeSettings {
  int64_t interval_ns = 100 * kMillisecond;  ///< between probes; >= 1 ms and <= window
  /// STAMP packet size in octets. In AgentConfig::probe, 0 means "the base packet of the mode" (44, or 112
  /// authenticated); in a PeerConfig it is always resolved.
  uint32_t size = 0;
  int dscp = 0;                      ///< 0..63, set on every probe
  int64_t timeout_ns = 1 * kSecond;  ///< a probe without a reply after this is lost; <= window
  int64_t window_ns = 60 * kSecond;  ///< statistics window (quantiles, loss ratios)
  uint32_t down_after = 3;           ///< consecutive lost probes before the peer is down
  TimestampFormat timestamp_format = TimestampFormat::kNtp;
  KeyFile auth_key;  ///< set = authenticated mode

  stamp::Mode mode() const { return auth_key ? stamp::Mode::kAuthenticated : stamp::Mode::kUnauthenticated; }
  bool operator==(const ProbeSettings&) const = default;
};

/// [[path]]: one way through the network to a peer, and how a probe is pinned to it. A peer is probed
/// over every path that applies to it, each as its own session with its own statistics (`path` label).
struct PathConfig {
  std::string name = "default";        ///< unique among paths; the `path` label. "default" = the routing table's choice
  std::string interface;               ///< SO_BINDTODEVICE; empty = any
  SocketAddress source;                ///< source address (port 0); unset = the routing table's
  uint32_t fwmark = 0;                 ///< SO_MARK for policy routing; 0 = none
  int dscp = -1;                       ///< DSCP of this path's probes; -1 = the peer's probe.dscp
  std::vector<uint16_t> source_ports;  ///< UDP source ports used in turn (ECMP spread); empty = one ephemeral port
  std::vector<std::string> hubs;       ///< destination hubs this path applies to; empty = every hub
  bool applies_to(const std::string& hub, int family) const;
  bool operator==(const PathConfig&) const = default;
};

/// The paths of a peer that has no `paths` list: every [[path]] of `paths` that applies to `hub` and the address
/// `family`, in file order; without any, one path "default" that pins nothing. The loader resolves file peers
/// with it and discovery resolves peers found in etcd with it, so both get the same paths.
std::vector<PathConfig> default_paths_for(const std::vector<PathConfig>& paths, const std::string& hub, int family);

/// [[peer]] with its effective settings ([probe] defaults merged with the peer's overrides).
struct PeerConfig {
  std::string name;       ///< unique among peers; the `peer` label
  std::string hub;        ///< the `destination hub` label
  SocketAddress address;  ///< the peer's reflector, with its port; unique among peers
  ProbeSettings probe;
  /// The paths this peer is probed over (resolved: its `paths` list, else every [[path]] that applies to it,
  /// else one path "default" that pins nothing). Never empty.
  std::vector<PathConfig> paths;
  std::string sla = "default";  ///< the SLA class judging its paths (all peers of one hub share one)
  bool operator==(const PeerConfig&) const = default;
};

/// [metrics]
struct MetricsConfig {
  SocketAddress listen = default_listen();  ///< /metrics, /healthz and /status
  /// web_config_file, read at load time (hubprobe/web_config.h): TLS and basic auth. Default: none (plain
  /// HTTP, no authentication).
  WebConfig web;
  /// Buckets per doubling of the hubprobe_rtt_seconds histogram in its fine range (0.5 to 128 ms): 16,
  /// 8, 4, 2 or 1; 0 = no histogram (the windowed summaries stay). Fixed for the agent's life.
  uint32_t rtt_buckets = 16;
  static SocketAddress default_listen();  ///< 127.0.0.1:9862
  bool operator==(const MetricsConfig&) const = default;
};

/// [costmap]: `hubprobe costmap` (docs/costmap.md), when it reads this file with --config. The agent
/// itself ignores the table.
struct CostmapConfig {
  SocketAddress listen = default_listen();  ///< where the ALTO resources are served
  std::string base_path = "/alto";          ///< the directory's path; every resource below it
  std::string public_url;                   ///< scheme://host[:port] of the clients; empty = relative URIs
  int threads = 16;                         ///< HTTP workers (a long poll holds one)
  int64_t max_wait_ns = 60 * kSecond;       ///< the longest long poll honoured
  static SocketAddress default_listen();    ///< 127.0.0.1:9863
  bool operator==(const CostmapConfig&) const = default;
};

enum class LogLevel : uint8_t { kTrace, kDebug, kInfo, kWarn, kError, kCritical, kOff };
/// "trace", "debug", "info", "warn", "error", "critical", "off" (spdlog's names).
const char* to_string(LogLevel level);

/// [logging]
struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;
  bool operator==(const LoggingConfig&) const = default;
};

/// [scheduler]: where path preferences go.
struct SchedulerConfig {
  std::string state_dir = "/var/lib/hubprobe";  ///< keeps the generation counter across restarts
  int64_t refresh_ns = 30 * kSecond;            ///< a new document this often even without a change (fresh costs)
  std::vector<HttpSinkConfig> http;             ///< [[scheduler.http]]
  std::vector<EtcdSinkConfig> etcd;             ///< [[scheduler.etcd]]
  bool has_sinks() const { return !http.empty() || !etcd.empty(); }
  /// The [[scheduler.etcd]] with discover = true (the loader allows one at most); null when none.
  const EtcdSinkConfig* discovering_sink() const {
    for (const EtcdSinkConfig& sink : etcd) {
      if (sink.discover) return &sink;
    }
    return nullptr;
  }
  bool operator==(const SchedulerConfig&) const = default;
};

/// The whole file. A plain value: copy it, compare it, hand parts of it to threads.
struct AgentConfig {
  std::string source;  ///< the file it came from (for messages)
  AgentIdentity agent;
  /// [agent] tick: how often the probe thread wakes to send the probes due and read what arrived;
  /// 0 = "auto" (a tenth of the shortest probe interval, 2 to 20 ms).
  int64_t tick_ns = 0;
  DataplaneConfig dataplane;
  ReflectorConfig reflector;
  ProbeSettings probe;                  ///< the defaults, as written (size 0 = base packet)
  std::vector<PeerConfig> peers;        ///< in file order
  std::vector<PathConfig> paths;        ///< [[path]], in file order (peers carry the ones that apply to them)
  std::map<std::string, SlaClass> sla;  ///< [sla.NAME] by name; "default" always present
  SchedulerConfig scheduler;
  MetricsConfig metrics;
  LoggingConfig logging;
  CostmapConfig costmap;

  const PeerConfig* find_peer(std::string_view name) const;
  bool operator==(const AgentConfig&) const = default;
};

/// Reads and validates a configuration file. Relative key file paths are taken from the folder of
/// `path`. Error messages start with `path` as given. Thread-safe.
Result<AgentConfig> load_config(const std::string& path);

/// Validates configuration text; `source_name` names it in messages (and its folder resolves relative key
/// file paths). Never throws; any text gives a config or one Error whose message is
/// "SOURCE:LINE:COLUMN: KEY.PATH: ...". Array indexes in key paths count from 0, as in TOML tools:
/// peer[0] is the first [[peer]] in the file.
Result<AgentConfig> parse_config(std::string_view text, const std::string& source_name);

/// True when a peer's probe sessions can continue unchanged from `before` to `after`: same name, hub,
/// address, port, key octets, interval, size, DSCP, timeout, timestamp format and paths. `window`,
/// `down_after` and `sla` may differ: they only change how samples are judged, and are applied in place.
bool same_session(const PeerConfig& before, const PeerConfig& after);

/// What a reload changes. Peers are matched by name.
struct ConfigDiff {
  std::vector<std::string> peers_added;
  std::vector<std::string> peers_removed;
  std::vector<std::string> peers_restarted;  ///< !same_session: new session, new statistics
  std::vector<std::string> peers_updated;    ///< same_session but window/down_after changed
  std::vector<std::string> peers_unchanged;  ///< keep session and statistics as they are
  bool agent_changed = false;                ///< id or hub (every metric label changes)
  bool dataplane_changed = false;
  bool reflector_changed = false;
  bool probe_defaults_changed = false;  ///< informational: peers already carry their effective values
  bool metrics_changed = false;
  bool logging_changed = false;
  bool sla_changed = false;        ///< applied in place: selectors re-judge with the new classes
  bool scheduler_changed = false;  ///< sinks are replaced
  /// Nothing at all differs.
  bool empty() const;
};
ConfigDiff diff_configs(const AgentConfig& before, const AgentConfig& after);

/// A name as the file accepts it (agent.id, hubs, peers, paths, SLA classes, sinks): 1 to 63 letters, digits,
/// '.', '_' or '-', starting with a letter or digit. Names become label values and etcd key parts.
bool valid_name(std::string_view text);
/// A numeric IPv4 or IPv6 unicast address without a port (not 0.0.0.0 or ::), as `peer.address` takes it.
/// The error says what is wrong with `text`.
Result<SocketAddress> parse_unicast_host(std::string_view text);

/// Durations as the file writes them: one or more "<number><unit>" with units ns, us (or µs), ms, s, m,
/// h; decimals allowed ("2.5s", "1m30s"). No sign. Exact to the nanosecond (finer digits are dropped).
Result<int64_t> parse_duration(std::string_view text);
/// The shortest exact form: "100ms", "2.5s", "1m", "1h30m" is "90m".
std::string format_duration(int64_t ns);
/// The rule for a gateway or static neighbour of the dpdk port ([dataplane.dpdk], and the --dpdk-* flags of
/// `hubprobe`): of a family the port has an address of, on-link of one of them, and not one of them. Empty when
/// `address` keeps it; else what was expected instead, e.g. "a gateway on-link of one of the port's IPv4
/// addresses (198.18.0.1/24)". `what` names the address ("a gateway"), `addresses` where the port's come from.
std::string dpdk_off_link(const std::vector<dp::InterfaceAddress>& port, const SocketAddress& address,
                          std::string_view what, std::string_view addresses);
/// True when `address` is one of the port's addresses (ports ignored).
bool dpdk_owns(const std::vector<dp::InterfaceAddress>& port, const SocketAddress& address);

/// DSCP as a number 0..63 or a PHB name (be, cs0..cs7, af11..af43, ef, va, le), any case.
Result<int> parse_dscp(std::string_view text);

/// `hubprobe check-config FILE` and `hubprobed --check-config`: loads `path`, prints
/// "FILE: ok, N peers" to `out` and returns 0, or prints the one error line to `err` and returns
/// kExitConfigError.
int check_config_command(const std::string& path, std::ostream& out, std::ostream& err);

}  // namespace hubprobe
