// SPDX-License-Identifier: Apache-2.0
// Harness for the end-to-end tests of `hubprobed`, the agent daemon: the binary, configuration files,
// an agent process (ready once /healthz answers), HTTP requests made from inside a namespace, a small
// reader of the Prometheus text format, a bridged "mesh" of agent namespaces, and a NOTIFY_SOCKET the
// test owns.
//
// Mesh (one Linux bridge in a core namespace, one veth per agent namespace):
//
//   agent ns 1  hpm0 198.18.0.1/24 --veth-- hpm1 --+
//   agent ns 2  hpm0 198.18.0.2/24 --veth-- hpm2 --+-- hpbr 198.18.0.254/24   core ns (Prometheus)
//   agent ns 3  hpm0 198.18.0.3/24 --veth-- hpm3 --+
//
// One L2 segment, so no forwarding or routes are needed; nothing leaves the namespaces.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hubprobe_cli.h"
#include "netns.h"
#include "process.h"

namespace hubprobe::it::agent {

/// hubprobed: HUBPROBE_BIN_DIR/hubprobed, HUBPROBE_BIN_DIR/agent/hubprobed, or this build tree's.
std::string hubprobed_binary();
std::optional<std::string> hubprobed_missing_reason();

/// A missing hubprobed is a failure (it is a build dependency of the tests), never a skip.
#define HUBPROBE_REQUIRE_HUBPROBED()                                                  \
  do {                                                                                \
    if (const auto hp_missing_ = ::hubprobe::it::agent::hubprobed_missing_reason()) { \
      FAIL() << *hp_missing_;                                                         \
    }                                                                                 \
  } while (0)

/// Polls `condition` every `step` until it holds (true) or `timeout` has passed (false).
bool wait_until(const std::function<bool()>& condition, Seconds timeout, Seconds step = std::chrono::milliseconds(20));

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) { return Seconds(Clock::now() - start).count(); }
inline void sleep_for(Seconds s) { std::this_thread::sleep_for(s); }

// ---- HTTP from inside a namespace -----------------------------------------------------------------

struct HttpResult {
  bool ok = false;  ///< a complete response was read
  int status = 0;
  std::string body;
  std::string error;  ///< what went wrong when !ok
};

/// A non-blocking socket created inside `ns` (setns there for the socket() call and straight back). A socket
/// keeps the namespace it was created in. Call from the test's main thread.
int socket_in_netns(const Namespace& ns, int domain, int type);

/// GET http://HOST:PORT/TARGET over IPv4 from inside `ns`: the socket is created in the namespace
/// (setns there and straight back), so no process is forked. HTTP/1.0, the server closes the connection.
/// `authorization`: the value of an Authorization header (none when empty).
HttpResult http_get(const Namespace& ns, const std::string& host, uint16_t port, const std::string& target,
                    Seconds timeout = Seconds(3), const std::string& authorization = {});

/// How the harness reaches a metrics endpoint secured by a web configuration file ([metrics]
/// web_config_file): basic auth, and TLS (then through curl(1) in the namespace, with these files).
struct HttpAccess {
  std::string user;  ///< basic auth; none when empty
  std::string password;
  std::string ca_file;    ///< set: https, the server verified against this CA
  std::string cert_file;  ///< a client certificate (and its key), when the server asks for one
  std::string key_file;
  bool tls() const { return !ca_file.empty(); }
};
/// "Basic base64(user:password)".
std::string basic_authorization(const std::string& user, const std::string& password);

/// GET https://HOST:PORT/TARGET with curl in `ns` (status and body; ok = curl read a response).
HttpResult https_get(const Namespace& ns, const std::string& host, uint16_t port, const std::string& target,
                     const HttpAccess& access, Seconds timeout = Seconds(3));

// ---- Prometheus text format ------------------------------------------------------------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
/// Every sample line of an exposition (comments skipped). Label values may hold escaped quotes.
std::vector<Sample> parse_exposition(const std::string& text);
/// Samples named `name` whose labels include all of `labels`.
std::vector<Sample> select(const std::vector<Sample>& samples, const std::string& name,
                           const std::map<std::string, std::string>& labels = {});
/// The value of the only sample matching (NaN when there is none or more than one).
double only_value(const std::vector<Sample>& samples, const std::string& name,
                  const std::map<std::string, std::string>& labels = {});
class AgentProcess;
/// The value of `name` with `labels` on `agent`'s /metrics, 0 when absent (a counter not yet counting).
double metric_or_zero(const AgentProcess& agent, const std::string& name,
                      const std::map<std::string, std::string>& labels);
/// Waits up to `timeout` until `agent` counts at least `count` replies from each peer in `names`.
::testing::AssertionResult replies_at_least(const AgentProcess& agent, const std::vector<std::string>& names,
                                            double count, Seconds timeout);

// ---- configuration files ---------------------------------------------------------------------------

struct PeerEntry {
  std::string name;
  std::string hub;
  std::string address;
  std::vector<std::string> extra;  ///< more `key = value` lines in this [[peer]] table
};

struct AgentFile {
  std::string id;
  std::string hub;
  std::string metrics_listen;   ///< "ADDR:PORT"
  std::string web_config_file;  ///< [metrics] web_config_file; none when empty
  int rtt_buckets = -1;         ///< [metrics] rtt_buckets; none when negative
  std::string interval = "100ms";
  std::string timeout = "1s";
  int down_after = 3;
  std::string window = "60s";
  std::vector<std::string> reflector;  ///< `key = value` lines of [reflector]; none = defaults
  std::vector<PeerEntry> peers;
  std::string log_level = "info";
  /// More TOML after everything else (e.g. [[path]] tables).
  std::string tail;
  /// The TOML text.
  std::string toml() const;
};

/// 1-based line of the first line of `text` that starts with `prefix` (0 if none).
int line_of(const std::string& text, const std::string& prefix);

// ---- an agent process ------------------------------------------------------------------------------

/// `hubprobed -c CONFIG` in `ns`. The constructor returns once /healthz answers 200 on the metrics
/// address (throws HarnessError with the agent's output if it exits first or takes longer than 10 s).
/// An agent with a web configuration file: `access` says how to get through (credentials, TLS files);
/// every request of the harness (get, status, metrics, the wait for /healthz) uses it.
/// `env` entries ("NAME=value") are put in front through env(1), which execs: the PID stays the agent's.
/// The destructor stops it (SIGTERM, SIGKILL after 2 s) and reaps it.
class AgentProcess {
 public:
  AgentProcess(const Namespace& ns, const std::filesystem::path& config, const std::string& metrics_host,
               uint16_t metrics_port, const std::filesystem::path& log_dir, const std::string& label,
               const std::vector<std::string>& env = {}, bool wait_ready = true, HttpAccess access = {});

  Process& process() { return *process_; }
  pid_t pid() const { return process_->pid(); }
  std::string describe() const { return process_->describe(); }

  /// GET on the metrics address.
  HttpResult get(const std::string& target, Seconds timeout = Seconds(3)) const;
  /// /status as JSON; throws HarnessError (with the agent's output) when it cannot be read.
  nlohmann::json status() const;
  /// /metrics, parsed; throws HarnessError when it cannot be read.
  std::vector<Sample> metrics() const;
  std::string metrics_text() const;
  /// Waits until /healthz answers 200.
  bool wait_healthy(Seconds timeout);

 private:
  const Namespace& ns_;
  std::string host_;
  uint16_t port_;
  HttpAccess access_;
  std::unique_ptr<Process> process_;
};

/// The entry of `name` in /status peers[] (null json when absent).
nlohmann::json peer_of(const nlohmann::json& status, const std::string& name);
/// A peer's integer field ("sent", "received"...) from /status; -1 when absent.
int64_t peer_count(const nlohmann::json& status, const std::string& name, const std::string& field);
/// A peer's state from /status ("" when absent).
std::string peer_state(const nlohmann::json& status, const std::string& name);

// ---- etcd ------------------------------------------------------------------------------------------

/// Why /usr/bin/etcd (Debian etcd-server) cannot be run, or nullopt.
std::optional<std::string> etcd_missing_reason();
/// A real single-member etcd in `ns`, clients on http://HOST:2379 (peers on 127.0.0.1:2380 of the
/// namespace), data under `dir`/etcd. Returns once /health answers 200; throws HarnessError (with etcd's
/// output) if it exits first or takes longer than 20 s.
std::unique_ptr<Process> start_etcd(const Namespace& ns, const std::string& host, const std::filesystem::path& dir);

// ---- the mesh --------------------------------------------------------------------------------------

class Mesh {
 public:
  static constexpr const char* kCoreV4 = "198.18.0.254";
  /// `agents` namespaces (roles "a", "b", "c", ...) on one bridge in a core namespace.
  explicit Mesh(size_t agents);
  const Namespace& core() const { return *core_; }
  const Namespace& node(size_t i) const { return *nodes_.at(i); }
  size_t size() const { return nodes_.size(); }
  /// 198.18.0.(i+1)
  static std::string address(size_t i) { return "198.18.0." + std::to_string(i + 1); }

 private:
  std::unique_ptr<Namespace> core_;
  std::vector<std::unique_ptr<Namespace>> nodes_;
};

// ---- NOTIFY_SOCKET ---------------------------------------------------------------------------------

/// A unix datagram socket at DIR/notify.sock that plays systemd's part: it receives what the agent
/// sends with sd_notify, with the sender's credentials.
class NotifySocket {
 public:
  explicit NotifySocket(const std::filesystem::path& dir);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  const std::string& path() const { return path_; }

  struct Message {
    std::string text;
    pid_t pid = 0;  ///< sender PID from SCM_CREDENTIALS (0 when none came)
    double at = 0;  ///< seconds since the socket was made
    /// The lines of the message as NAME -> value ("READY=1" gives {"READY","1"}).
    std::map<std::string, std::string> fields() const;
  };
  /// The next message, or nullopt after `timeout`.
  std::optional<Message> receive(Seconds timeout);
  /// The next message that has one of `names` as a field (others — STATUS=, WATCHDOG= — are kept in
  /// `skipped`), or nullopt after `timeout`.
  std::optional<Message> receive_with(const std::vector<std::string>& names, Seconds timeout,
                                      std::vector<Message>* skipped = nullptr);

 private:
  std::string path_;
  int fd_ = -1;
  Clock::time_point created_;
};

}  // namespace hubprobe::it::agent
