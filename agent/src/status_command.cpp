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
  out += fmt::format("\n{:<20} {:<8} {:<24} {:<8} {:>10} {:>10} {:>10} {:>8} {:>10}\n", "PEER", "HUB", "ADDRESS",
                     "STATE", "RTT p50", "RTT p99", "JITTER", "LOSS", "SENT");
  for (const auto& peer : status.at("peers")) {
    const auto& rtt = peer.at("rtt_ms");
    const bool has_rtt = rtt.value("count", 0) > 0;
    out += fmt::format("{:<20} {:<8} {:<24} {:<8} {:>10} {:>10} {:>10} {:>7.2f}% {:>10}\n", peer.value("name", "?"),
                       peer.value("hub", "?"), peer.value("address", "?"), peer.value("state", "?"),
                       has_rtt ? number(rtt.at("p50"), "{:.3f}ms") : "-",
                       has_rtt ? number(rtt.at("p99"), "{:.3f}ms") : "-", number(peer.at("jitter_ms"), "{:.3f}ms"),
                       peer.at("loss").value("total", 0.0) * 100, peer.value("sent", 0));
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
