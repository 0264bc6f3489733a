// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/status_command.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <ostream>

namespace hubprobe {

namespace {

size_t append(char* data, size_t size, size_t count, void* target) {
  static_cast<std::string*>(target)->append(data, size * count);
  return size * count;
}

std::string number(const nlohmann::json& value, const char* format) {
  return value.is_number() ? fmt::format(fmt::runtime(format), value.get<double>()) : "-";
}

}  // namespace

std::string format_status(const nlohmann::json& status) {
  std::string out;
  const auto& agent = status.at("agent");
  out += fmt::format("agent {} (hub {}), hubprobed {}, {} backend, up {:.0f} s, {}\n", agent.value("id", "?"),
                     agent.value("hub", "?"), agent.value("version", "?"), agent.value("backend", "?"),
                     agent.value("uptime_s", 0.0), agent.value("healthy", false) ? "healthy" : "NOT HEALTHY");
  const auto& clock = status.at("clock");
  out += fmt::format("clock {}, error bound {:g} s\n",
                     clock.value("synchronized", false) ? "synchronised" : "not synchronised (no one-way delays)",
                     clock.value("error_bound_s", 0.0));
  const auto& config = status.at("config");
  if (!config.value("last_reload_ok", true)) {
    out += "last reload REFUSED: " + config.value("last_reload_error", std::string()) + "\n";
  }
  out += fmt::format("\n{:<20} {:<8} {:<24} {:<12} {:<8} {:>10} {:>10} {:>10} {:>8} {:>10}\n", "PEER", "HUB", "ADDRESS",
                     "PATH", "STATE", "RTT p50", "RTT p99", "JITTER", "LOSS", "SENT");
  for (const auto& peer : status.at("peers")) {
    const auto& rtt = peer.at("rtt_ms");
    const bool has_rtt = rtt.value("count", 0) > 0;
    out += fmt::format(
        "{:<20} {:<8} {:<24} {:<12} {:<8} {:>10} {:>10} {:>10} {:>7.2f}% {:>10}\n", peer.value("name", "?"),
        peer.value("hub", "?"), peer.value("address", "?"), peer.value("path", "default"), peer.value("state", "?"),
        has_rtt ? number(rtt.at("p50"), "{:.3f}ms") : "-", has_rtt ? number(rtt.at("p99"), "{:.3f}ms") : "-",
        number(peer.at("jitter_ms"), "{:.3f}ms"), peer.at("loss").value("total", 0.0) * 100, peer.value("sent", 0));
  }
  // Peers found through etcd (discover = true).
  const auto discovery = status.value("discovery", nlohmann::json(nullptr));
  if (discovery.is_object()) {
    const auto peers = discovery.value("peers", nlohmann::json::array());
    std::string names;
    for (const auto& name : peers) names += (names.empty() ? "" : " ") + name.get<std::string>();
    out += fmt::format("\ndiscovery ({}): {} peers from etcd{}{}, {} polls ok / {} failed{}\n",
                       discovery.value("endpoint", "?"), peers.size(), names.empty() ? "" : ": ", names,
                       discovery.value("polls_ok", uint64_t{0}), discovery.value("polls_failed", uint64_t{0}),
                       discovery.value("last_error", std::string()).empty()
                           ? std::string()
                           : ", last error: " + discovery.value("last_error", std::string()));
    for (const auto& entry : discovery.value("ignored", nlohmann::json::array())) {
      out += fmt::format("  ignored {}: {}\n", entry.value("key", "?"), entry.value("reason", "?"));
    }
  }
  // Path preferences: per destination hub, the ranked paths (docs/scheduler-api.md).
  const auto preferences = status.value("preferences", nlohmann::json(nullptr));
  if (preferences.is_object()) {
    out += fmt::format("\npreferences: generation {}{}\n", preferences.value("generation", uint64_t{0}),
                       preferences.value("stale", false) ? " (stale)" : "");
    out += fmt::format("{:<8} {:<5} {:<20} {:<12} {:<9} {:>10} {:>10} {:>8} {:>6}\n", "TO HUB", "RANK", "PEER", "PATH",
                       "STATE", "SCORE", "DELAY-RT", "LOSS", "CONF");
    for (const auto& destination : preferences.value("destinations", nlohmann::json::array())) {
      for (const auto& path : destination.value("paths", nlohmann::json::array())) {
        const auto costs = path.value("costs", nlohmann::json::object());
        const bool preferred = path.value("preferred", false);
        out += fmt::format(
            "{:<8} {:<5} {:<20} {:<12} {:<9} {:>10} {:>10} {:>8} {:>6}\n", destination.value("hub", "?"),
            std::to_string(path.value("rank", 0)) + (preferred ? "*" : ""), path.value("peer", "?"),
            path.value("path", "?"), path.value("state", "?"),
            path.contains("score") ? number(nlohmann::json(path["score"].get<double>() * 1e3), "{:.3f}ms") : "-",
            costs.contains("delay-rt") ? number(costs["delay-rt"], "{:.0f}us") : "-",
            costs.contains("lossrate") ? number(costs["lossrate"], "{:.2f}%") : "-",
            number(path.value("confidence", nlohmann::json(nullptr)), "{:.2f}"));
      }
    }
    out += "(* = preferred)\n";
  }
  const auto sinks = status.value("sinks", nlohmann::json::array());
  if (!sinks.empty()) {
    out += "\nsinks:\n";
    for (const auto& sink : sinks) {
      out +=
          fmt::format("  {} ({}) {}: {}, delivered generation {}, {} ok / {} failed{}\n", sink.value("name", "?"),
                      sink.value("kind", "?"), sink.value("target", "?"), sink.value("healthy", false) ? "up" : "DOWN",
                      sink.value("delivered_generation", uint64_t{0}), sink.value("pushes_ok", uint64_t{0}),
                      sink.value("pushes_failed", uint64_t{0}),
                      sink.value("last_error", std::string()).empty() ? std::string()
                                                                      : ": " + sink.value("last_error", std::string()));
    }
  }
  return out;
}

int status_command(const std::string& address, bool json, std::ostream& out, std::ostream& err) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    err << "hubprobe status: cannot initialise libcurl\n";
    return 1;
  }
  const std::string url = "http://" + address + "/status";
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode result = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(curl);
  if (result != CURLE_OK) {
    err << "hubprobe status: cannot reach the agent at " << url << ": " << curl_easy_strerror(result)
        << " (is hubprobed running? see metrics.listen in its configuration)\n";
    return 1;
  }
  if (code != 200) {
    err << "hubprobe status: " << url << " answered HTTP " << code << "\n";
    return 1;
  }
  const auto status = nlohmann::json::parse(body, nullptr, false);
  if (status.is_discarded() || !status.is_object() || !status.contains("peers")) {
    err << "hubprobe status: " << url << " did not answer with an agent status document\n";
    return 1;
  }
  if (json) {
    out << status.dump(2) << "\n";
    return 0;
  }
  try {
    out << format_status(status);
  } catch (const nlohmann::json::exception& e) {
    err << "hubprobe status: unexpected status document: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace hubprobe
