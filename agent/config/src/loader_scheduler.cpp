// SPDX-License-Identifier: Apache-2.0
// The loader's [scheduler] section: the state directory, the refresh, and the [[scheduler.http]] and
// [[scheduler.etcd]] sinks.
#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <iterator>
#include <optional>
#include <vector>

#include "config_limits.h"
#include "loader.h"
#include "toml_report.h"
#include "value_readers.h"

namespace hubprobe::config_detail {
namespace {

constexpr std::string_view kHttpUrl = "an http:// or https:// URL like \"https://scheduler.example/v1/preferences\"";
constexpr std::array<std::string_view, 10> kHttpSinkKeys = {"name",
                                                            "url",
                                                            "timeout",
                                                            "connect_timeout",
                                                            "backoff_initial",
                                                            "backoff_max",
                                                            "bearer_token_file",
                                                            "ca_file",
                                                            "client_cert_file",
                                                            "client_key_file"};
constexpr std::array<std::string_view, 16> kEtcdSinkKeys = {"name",
                                                            "endpoints",
                                                            "prefix",
                                                            "ttl",
                                                            "timeout",
                                                            "backoff_initial",
                                                            "backoff_max",
                                                            "register",
                                                            "advertise",
                                                            "discover",
                                                            "discover_interval",
                                                            "plan_per_hub",
                                                            "plan_rotate",
                                                            "ca_file",
                                                            "client_cert_file",
                                                            "client_key_file"};
constexpr std::string_view kEtcdEndpoints = "an array of etcd client URLs like [\"http://198.18.0.254:2379\"]";

bool http_url(std::string_view text) {
  return (text.rfind("http://", 0) == 0 || text.rfind("https://", 0) == 0) &&
         text.find_first_of(" \t\r\n") == std::string_view::npos;
}

BackoffConfig read_backoff(const toml::table& table, const std::string& path) {
  BackoffConfig backoff;
  if (const toml::node* node = table.get("backoff_initial")) {
    backoff.initial_ns = read_duration(*node, path + ".backoff_initial", kMillisecond, kHour);
  }
  if (const toml::node* node = table.get("backoff_max")) {
    backoff.max_ns = read_duration(*node, path + ".backoff_max", kMillisecond, kHour);
    if (backoff.max_ns < backoff.initial_ns) {
      expected(*node, path + ".backoff_max",
               "a duration of at least backoff_initial (" + format_duration(backoff.initial_ns) + ")");
    }
  }
  return backoff;
}

// The entries of [[scheduler.KEY]], each checked to be a table.
std::vector<const toml::table*> sink_tables(const toml::table& scheduler, std::string_view key) {
  std::vector<const toml::table*> entries;
  const toml::node* node = scheduler.get(key);
  if (node == nullptr) return entries;
  const std::string path = "scheduler." + std::string(key);
  if (!node->is_array()) expected(*node, path, "[[" + path + "]] entries (an array of tables)");
  for (size_t i = 0; i < node->as_array()->size(); ++i) {
    const toml::node& element = *node->as_array()->get(i);
    if (!element.is_table()) expected(element, indexed(path, i), "a table");
    entries.push_back(element.as_table());
  }
  return entries;
}

// Sink names label the metrics: each one is used once across both kinds.
class SinkNames {
 public:
  std::string take(const toml::table& entry, const std::string& path, std::string fallback) {
    std::string name = std::move(fallback);
    const toml::node* node = entry.get("name");
    if (node != nullptr) name = read_name(*node, path + ".name", "scheduler-a");
    if (std::find(names_.begin(), names_.end(), name) != names_.end()) {
      if (node != nullptr) expected(*node, path + ".name", "a name no other sink uses");
      fail(entry.source(), path + ".name", "two sinks would both be called \"" + name + "\": give them names");
    }
    names_.push_back(name);
    return name;
  }

 private:
  std::vector<std::string> names_;
};

std::string fallback_name(std::string_view kind, size_t index, size_t count) {
  return count == 1 ? std::string(kind) : std::string(kind) + std::to_string(index);
}

std::vector<std::string> read_endpoints(const toml::table& entry, const std::string& path) {
  const toml::node* endpoints = entry.get("endpoints");
  if (endpoints == nullptr) missing(entry, path + ".endpoints", kEtcdEndpoints);
  if (!endpoints->is_array() || endpoints->as_array()->empty()) {
    expected(*endpoints, path + ".endpoints", kEtcdEndpoints);
  }
  std::vector<std::string> urls;
  for (size_t j = 0; j < endpoints->as_array()->size(); ++j) {
    const toml::node& element = *endpoints->as_array()->get(j);
    std::string url(read_string(element, indexed(path + ".endpoints", j), kEtcdEndpoints));
    if (!http_url(url)) {
      expected(element, indexed(path + ".endpoints", j),
               "an http:// or https:// URL like \"http://198.18.0.254:2379\"");
    }
    while (!url.empty() && url.back() == '/') url.pop_back();
    urls.push_back(url);
  }
  return urls;
}

std::string read_key_prefix(const toml::node& node, const std::string& path) {
  constexpr std::string_view kWhat = "a key prefix starting with '/' like \"/hubprobe\"";
  std::string prefix(read_string(node, path, kWhat));
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  if (prefix.empty() || prefix.front() != '/' || prefix.find('\0') != std::string::npos) expected(node, path, kWhat);
  return prefix;
}

// Discovery settings of one etcd sink; `discovering` is the entry that already has discover = true.
void read_discovery(const toml::table& entry, const std::string& path, size_t index, std::optional<size_t>& discovering,
                    EtcdSinkConfig& sink) {
  if (const toml::node* node = entry.get("discover")) {
    sink.discover = read_bool(*node, path + ".discover");
    if (sink.discover && discovering.has_value()) {
      expected(*node, path + ".discover",
               "discover = true in one [[scheduler.etcd]] only (also " + indexed("scheduler.etcd", *discovering) + ")");
    }
    if (sink.discover) discovering = index;
  }
  if (const toml::node* node = entry.get("discover_interval")) {
    sink.discover_interval_ns = read_duration(*node, path + ".discover_interval", kSecond, kHour);
  }
  if (const toml::node* node = entry.get("plan_per_hub")) {
    sink.plan_per_hub = static_cast<uint32_t>(
        read_integer(*node, path + ".plan_per_hub", 0, 100000, "agents per other hub to probe, 0 = all of them"));
  }
  if (const toml::node* node = entry.get("plan_rotate")) {
    sink.plan_rotate_ns = read_duration(*node, path + ".plan_rotate", 60 * kSecond, 7 * 24 * kHour);
  }
  // An agent that discovers its peers and registers itself is in a discovering fleet: without an address,
  // its registration would be ignored by every other agent.
  if (sink.discover && sink.register_agent && entry.get("advertise") == nullptr) {
    missing(entry, path + ".advertise",
            "the numeric address other agents probe, like \"198.18.0.1\" (register = true with discover = true)");
  }
}

}  // namespace

void Loader::read_tls_files(const toml::table& entry, const std::string& path, std::string& ca, std::string& cert,
                            std::string& key) {
  if (const toml::node* node = entry.get("ca_file")) {
    ca = read_file_path(*node, path + ".ca_file", "a readable CA bundle file (PEM)");
  }
  if (const toml::node* node = entry.get("client_cert_file")) {
    cert = read_file_path(*node, path + ".client_cert_file", "a readable client certificate file (PEM)");
  }
  if (const toml::node* node = entry.get("client_key_file")) {
    key = read_file_path(*node, path + ".client_key_file", "a readable client key file (PEM)");
  }
  if (cert.empty() != key.empty()) {
    fail(entry.source(), path + (cert.empty() ? ".client_cert_file" : ".client_key_file"),
         "required key is missing (client_cert_file and client_key_file go together)");
  }
}

std::string Loader::read_bearer_token(const toml::node& node, const std::string& path, const std::string& file) {
  std::ifstream in(file);
  std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(0, 1);
  const bool printable = std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (!in.good() && !in.eof()) fail(node.source(), path, "cannot read '" + file + "'");
  if (token.empty() || token.size() > 8192 || !printable) {
    fail(node.source(), path,
         "expected a file holding one token of printable characters, '" + file + "' holds something else");
  }
  return token;
}

HttpSinkConfig Loader::read_http_sink(const toml::table& entry, const std::string& path,
                                      const SchedulerConfig& scheduler) {
  HttpSinkConfig sink;
  const toml::node* url = entry.get("url");
  if (url == nullptr) missing(entry, path + ".url", kHttpUrl);
  sink.url = std::string(read_string(*url, path + ".url", kHttpUrl));
  if (!http_url(sink.url)) expected(*url, path + ".url", kHttpUrl);
  if (const toml::node* node = entry.get("timeout")) {
    sink.timeout_ns = read_duration(*node, path + ".timeout", kMillisecond, kMinute);
  }
  if (const toml::node* node = entry.get("connect_timeout")) {
    sink.connect_timeout_ns = read_duration(*node, path + ".connect_timeout", kMillisecond, kMinute);
  }
  sink.backoff = read_backoff(entry, path);
  sink.refresh_ns = scheduler.refresh_ns;
  if (const toml::node* node = entry.get("bearer_token_file")) {
    sink.bearer_token_file = read_file_path(*node, path + ".bearer_token_file", "a readable file holding a token");
    sink.bearer_token = read_bearer_token(*node, path + ".bearer_token_file", sink.bearer_token_file);
  }
  read_tls_files(entry, path, sink.ca_file, sink.client_cert_file, sink.client_key_file);
  return sink;
}

EtcdSinkConfig Loader::read_etcd_sink(const toml::table& entry, const std::string& path) {
  EtcdSinkConfig sink;
  sink.endpoints = read_endpoints(entry, path);
  if (const toml::node* node = entry.get("prefix")) sink.prefix = read_key_prefix(*node, path + ".prefix");
  if (const toml::node* node = entry.get("ttl")) {
    sink.ttl_ns = read_duration(*node, path + ".ttl", 2 * kSecond, kHour);
    if (sink.ttl_ns % kSecond != 0) expected(*node, path + ".ttl", "whole seconds (etcd leases count seconds)");
  }
  if (const toml::node* node = entry.get("timeout")) {
    sink.timeout_ns = read_duration(*node, path + ".timeout", kMillisecond, kMinute);
  }
  sink.backoff = read_backoff(entry, path);
  if (const toml::node* node = entry.get("register")) sink.register_agent = read_bool(*node, path + ".register");
  if (const toml::node* advertise = entry.get("advertise")) {
    sink.advertise = read_host(*advertise, path + ".advertise", "198.18.0.1", false).host();
    if (!sink.register_agent) {
      expected(*advertise, path + ".advertise",
               "no advertise with register = false (the address is written in the registration only)");
    }
  }
  return sink;
}

void Loader::read_scheduler(const toml::table& root, AgentConfig& config) {
  SchedulerConfig& scheduler = config.scheduler;
  const toml::table* table = optional_table(root, "scheduler", "scheduler", "a table [scheduler]");
  if (table == nullptr) return;
  check_keys(*table, "scheduler", {"state_dir", "refresh", "http", "etcd"});
  if (const toml::node* node = table->get("state_dir")) {
    constexpr std::string_view kWhat = "an absolute directory path like \"/var/lib/hubprobe\"";
    const std::string_view text = read_string(*node, "scheduler.state_dir", kWhat);
    if (text.empty() || text.front() != '/' || text.find('\0') != std::string_view::npos) {
      expected(*node, "scheduler.state_dir", kWhat);
    }
    scheduler.state_dir = std::string(text);
  }
  if (const toml::node* node = table->get("refresh")) {
    scheduler.refresh_ns = read_duration(*node, "scheduler.refresh", kSecond, kHour);
  }
  SinkNames names;
  const auto http_entries = sink_tables(*table, "http");
  for (size_t i = 0; i < http_entries.size(); ++i) {
    const std::string path = indexed("scheduler.http", i);
    check_keys(*http_entries[i], path, kHttpSinkKeys);
    std::string name = names.take(*http_entries[i], path, fallback_name("http", i, http_entries.size()));
    HttpSinkConfig sink = read_http_sink(*http_entries[i], path, scheduler);
    sink.name = std::move(name);
    scheduler.http.push_back(std::move(sink));
  }
  const auto etcd_entries = sink_tables(*table, "etcd");
  std::optional<size_t> discovering;  // the [[scheduler.etcd]] entry with discover = true
  for (size_t i = 0; i < etcd_entries.size(); ++i) {
    const std::string path = indexed("scheduler.etcd", i);
    check_keys(*etcd_entries[i], path, kEtcdSinkKeys);
    std::string name = names.take(*etcd_entries[i], path, fallback_name("etcd", i, etcd_entries.size()));
    EtcdSinkConfig sink = read_etcd_sink(*etcd_entries[i], path);
    read_discovery(*etcd_entries[i], path, i, discovering, sink);
    read_tls_files(*etcd_entries[i], path, sink.ca_file, sink.client_cert_file, sink.client_key_file);
    sink.name = std::move(name);
    scheduler.etcd.push_back(std::move(sink));
  }
}

}  // namespace hubprobe::config_detail
