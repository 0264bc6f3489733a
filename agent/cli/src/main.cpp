// SPDX-License-Identifier: Apache-2.0
// hubprobe: the command-line tool (ping, reflect, check-config, status, prefs).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "hubprobe/config.h"
#include "hubprobe/etcd_client.h"
#include "hubprobe/ping.h"
#include "hubprobe/preferences.h"
#include "hubprobe/reflect.h"
#include "hubprobe/scheduler_sink.h"
#include "hubprobe/stamp.h"
#include "hubprobe/status_command.h"
#include "hubprobe_version.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: poll returns at once
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// CLI11's own range check prints a 300-digit bound; say plainly what is expected.
const CLI::Validator kUnsignedInteger(
    [](std::string& text) -> std::string {
      const bool digits =
          !text.empty() && std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      return digits ? std::string() : "expected a non-negative integer, got \"" + text + "\"";
    },
    "UINT");

// Exit status for usage errors, as ping(8) does.
constexpr int kUsageError = 2;

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "hubprobe: " << message << "\n";
  std::exit(kUsageError);
}

// DSCP as a number (0..63) or a PHB name, parsed as the configuration file does.
int parse_dscp(const std::string& text) {
  auto dscp = hubprobe::parse_dscp(text);
  if (!dscp) usage_error("-Q: " + dscp.error().message);
  return *dscp;
}

std::shared_ptr<const hubprobe::stamp::HmacKey> load_key(const std::string& path) {
  if (path.empty()) return nullptr;
  auto key = hubprobe::stamp::load_key_file(path);
  if (!key) usage_error("--auth-key-file: " + key.error().message);
  return std::make_shared<const hubprobe::stamp::HmacKey>(std::move(key.value()));
}

// `hubprobe prefs`: exit statuses beyond 0 (shown) and 2 (usage).
constexpr int kNoDocument = 1;
constexpr int kEtcdUnreachable = 3;

struct PrefsSource {
  std::vector<nlohmann::json> documents;
  size_t valid = 0;
};

// Adds `text` (from `origin`, a key or a file) when it parses as JSON; says why on stderr when not.
void add_document(PrefsSource& source, const std::string& origin, const std::string& text) {
  nlohmann::json document = nlohmann::json::parse(text, nullptr, false);
  if (document.is_discarded()) {
    std::cerr << "hubprobe prefs: " << origin << ": not JSON\n";
    return;
  }
  if (hubprobe::validate_preference_document(document)) ++source.valid;
  source.documents.push_back(std::move(document));
}

// Every document under PREFIX/preferences/ of the etcd cluster at `endpoints`; nullopt (after printing
// why) when etcd cannot be read.
std::optional<PrefsSource> read_etcd_preferences(const std::string& endpoints, const std::string& prefix,
                                                 const hubprobe::EtcdClient::Options& tls) {
  hubprobe::EtcdClient::Options options = tls;
  std::stringstream list(endpoints);
  for (std::string endpoint; std::getline(list, endpoint, ',');) {
    if (!endpoint.empty()) options.endpoints.push_back(endpoint);
  }
  if (options.endpoints.empty()) usage_error("--etcd: expected URL[,URL...], got \"" + endpoints + "\"");
  for (const auto& endpoint : options.endpoints) {
    if (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0) {
      usage_error("--etcd: \"" + endpoint + "\" is not an http:// or https:// URL");
    }
  }
  hubprobe::EtcdClient client(options);
  const std::string key_prefix = hubprobe::preferences_prefix(prefix);
  auto values = client.get_prefix(key_prefix);
  if (!values) {
    std::cerr << "hubprobe prefs: " << values.error().message << "\n";
    return std::nullopt;
  }
  PrefsSource source;
  for (const auto& kv : *values) add_document(source, kv.key, kv.value);
  if (values->empty()) std::cerr << "hubprobe prefs: no keys under " << key_prefix << "\n";
  return source;
}

// One document per file; a directory stands for every *.json file in it (not recursive, sorted).
PrefsSource read_file_preferences(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const auto& path : paths) {
    std::error_code error;
    if (fs::is_directory(path, error)) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::directory_iterator(path, error)) {
        if (entry.path().extension() == ".json" && !entry.is_directory()) found.push_back(entry.path());
      }
      if (error) std::cerr << "hubprobe prefs: " << path << ": " << error.message() << "\n";
      if (found.empty() && !error) std::cerr << "hubprobe prefs: " << path << ": no *.json files\n";
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.emplace_back(path);
    }
  }
  PrefsSource source;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      std::cerr << "hubprobe prefs: " << file.string() << ": cannot read: " << std::strerror(errno) << "\n";
      continue;
    }
    add_document(source, file.string(), text.str());
  }
  return source;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hubprobe: STAMP (RFC 8762) latency probe for hub-to-hub paths", "hubprobe"};
  app.set_version_flag("--version", std::string(HUBPROBE_VERSION));
  app.require_subcommand(1);

  // hubprobe ping
  auto* ping = app.add_subcommand("ping", "one-shot STAMP measurement, like ping(8)");
  std::string host;
  uint64_t count = 0;
  double interval_s = 1.0;
  uint32_t size = 0;
  std::string dscp;
  std::string interface;
  std::string source;
  uint16_t source_port = 0;
  uint32_t fwmark = 0;
  std::string ping_key_file;
  double timeout_s = 2.0;
  bool json = false;
  bool quiet = false;
  bool ptp = false;
  ping->add_option("host", host, "reflector: HOST, HOST:PORT or [IPv6]:PORT (default port 862)")->required();
  ping->add_option("-c,--count", count, "stop after COUNT probes (default: until interrupted)")
      ->check(kUnsignedInteger);
  ping->add_option("-i,--interval", interval_s, "seconds between probes, fractions allowed, >= 0.001 (default 1)");
  ping->add_option("-s,--size", size, "STAMP packet size in octets (default: 44, or 112 authenticated)")
      ->check(kUnsignedInteger);
  ping->add_option("-Q,--dscp", dscp, "DSCP: 0..63 or a PHB name (ef, af41, cs5, ...)");
  ping->add_option("-I,--interface", interface, "send through this interface (SO_BINDTODEVICE)");
  ping->add_option("-S,--source", source, "local source address");
  ping->add_option("--source-port", source_port, "local UDP source port (default: ephemeral)")->check(kUnsignedInteger);
  ping->add_option("-m,--mark", fwmark, "fwmark for policy routing (SO_MARK)")->check(kUnsignedInteger);
  ping->add_option("--auth-key-file", ping_key_file, "authenticated mode with the hex HMAC key in this file");
  ping->add_option("-W,--timeout", timeout_s, "seconds to wait for each reply (default 2)");
  ping->add_flag("--json", json, "print one JSON object instead of text");
  ping->add_flag("-q,--quiet", quiet, "only the summary");
  ping->add_flag("--ptp", ptp, "PTPv2 truncated timestamps instead of NTP");

  // hubprobe reflect
  auto* reflect = app.add_subcommand("reflect", "standalone STAMP session-reflector");
  std::vector<std::string> listen;
  bool stateful = false;
  std::string reflect_key_file;
  std::string reflect_interface;
  bool reflect_ptp = false;
  reflect->add_option("-l,--listen", listen, "ADDR[:PORT] to listen on, may repeat (default 0.0.0.0:862 and [::]:862)");
  reflect->add_flag("--stateful", stateful, "stateful reflector: own sequence numbers per session");
  reflect->add_option("--auth-key-file", reflect_key_file, "authenticated mode with the hex HMAC key in this file");
  reflect->add_option("-I,--interface", reflect_interface, "only on this interface (SO_BINDTODEVICE)");
  reflect->add_flag("--ptp", reflect_ptp, "PTPv2 truncated timestamps instead of NTP");

  // hubprobe check-config
  auto* check = app.add_subcommand("check-config", "validate an agent configuration file");
  std::string check_file;
  check->add_option("file", check_file, "the TOML file, e.g. /etc/hubprobe/hubprobe.toml")->required();

  // hubprobe status
  auto* status = app.add_subcommand("status", "what a running agent sees: peers, states, RTT, loss");
  std::string agent_address = "127.0.0.1:9862";
  bool status_json = false;
  status->add_option("-a,--agent", agent_address, "the agent's metrics.listen address (default 127.0.0.1:9862)");
  status->add_flag("--json", status_json, "print the agent's status document as JSON");

  // hubprobe prefs
  auto* prefs = app.add_subcommand("prefs", "the fleet's path preferences, hub by hub, from etcd or files");
  std::string prefs_etcd;
  std::string prefs_prefix = "/hubprobe";
  std::vector<std::string> prefs_files;
  hubprobe::EtcdClient::Options prefs_tls;
  auto* etcd_option =
      prefs->add_option("--etcd", prefs_etcd, "etcd endpoints URL[,URL...], e.g. http://198.18.0.254:2379");
  prefs->add_option("--prefix", prefs_prefix, "key prefix of the agents' sinks (default /hubprobe)");
  auto* file_option =
      prefs->add_option("--file", prefs_files, "preference documents: JSON files, or directories of *.json files");
  prefs->add_option("--ca-file", prefs_tls.ca_file, "verify https etcd endpoints with this CA bundle");
  prefs->add_option("--cert-file", prefs_tls.client_cert_file, "client certificate for https etcd endpoints (PEM)");
  prefs->add_option("--key-file", prefs_tls.client_key_file, "client key for https etcd endpoints (PEM)");
  etcd_option->excludes(file_option);
  file_option->excludes(etcd_option);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like ping(8): the full help is one --help away.
    usage_error(e.what());
  }

  if (*check) return hubprobe::check_config_command(check_file, std::cout, std::cerr);
  if (*status) return hubprobe::status_command(agent_address, status_json, std::cout, std::cerr);
  if (*prefs) {
    if (prefs_etcd.empty() && prefs_files.empty()) usage_error("prefs: give --etcd URL[,URL...] or --file PATH...");
    PrefsSource found;
    if (!prefs_files.empty()) {
      found = read_file_preferences(prefs_files);
    } else {
      auto read = read_etcd_preferences(prefs_etcd, prefs_prefix, prefs_tls);
      if (!read) return kEtcdUnreachable;
      found = std::move(*read);
    }
    if (!found.documents.empty()) {
      std::cout << hubprobe::render_preferences_table(found.documents, hubprobe::wall_now());
    }
    if (found.valid == 0) {
      std::cerr << "hubprobe prefs: no valid preference document\n";
      return kNoDocument;
    }
    return 0;
  }

  install_signal_handlers();
  std::ios::sync_with_stdio(false);

  if (*ping) {
    hubprobe::PingOptions options;
    auto target = hubprobe::SocketAddress::resolve(host, 862);
    if (!target) usage_error(host + ": " + target.error().message);
    options.target = *target;
    options.target_text = host;
    options.count = count;
    if (!(interval_s >= 0.001)) usage_error("-i: the interval must be at least 0.001 s");
    options.interval_ns = static_cast<int64_t>(interval_s * 1e9);
    options.key = load_key(ping_key_file);
    const uint32_t base = options.key ? 112 : 44;
    if (size != 0 && (size < base || size > 9000)) {
      usage_error("-s: size must be between " + std::to_string(base) + " and 9000 octets");
    }
    options.size = size;
    if (!dscp.empty()) options.dscp = parse_dscp(dscp);
    options.interface = interface;
    options.source = source;
    options.source_port = source_port;
    options.fwmark = fwmark;
    if (!(timeout_s > 0 && timeout_s <= 3600)) usage_error("--timeout: must be between 0 and 3600 seconds");
    options.timeout_ns = static_cast<int64_t>(timeout_s * 1e9);
    options.json = json;
    options.quiet = quiet;
    options.format = ptp ? hubprobe::TimestampFormat::kPtp : hubprobe::TimestampFormat::kNtp;
    return hubprobe::run_ping(options, std::cout, std::cerr, g_stop);
  }

  hubprobe::ReflectOptions options;
  for (const auto& text : listen) {
    auto address = hubprobe::SocketAddress::parse(text, 862);
    if (!address) usage_error("--listen " + text + ": " + address.error().message);
    options.listen.push_back(*address);
  }
  options.reflector.key = load_key(reflect_key_file);
  options.reflector.mode =
      options.reflector.key ? hubprobe::stamp::Mode::kAuthenticated : hubprobe::stamp::Mode::kUnauthenticated;
  options.reflector.stateful = stateful;
  options.reflector.format = reflect_ptp ? hubprobe::TimestampFormat::kPtp : hubprobe::TimestampFormat::kNtp;
  options.interface = reflect_interface;
  return hubprobe::run_reflector(options, std::cout, std::cerr, g_stop);
}
