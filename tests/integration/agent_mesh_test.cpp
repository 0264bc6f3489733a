// SPDX-License-Identifier: Apache-2.0
// Three hubprobed agents in a full mesh (three namespaces on one bridge, see agent_support.h), each
// probing the two others every 100 ms:
//   - a real Prometheus server in the core namespace scrapes all three; its query API shows the six
//     peer series up and sub-10 ms median RTTs, and every agent's /metrics passes `promtool check metrics`;
//   - an agent killed with SIGKILL is declared down by the others within the bound its configuration
//     implies (timeout + down_after intervals), and up again soon after it restarts.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <set>
#include <sstream>

#include "agent_support.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

const char* const kHubs[] = {"gz", "sg", "sh"};
constexpr uint16_t kMetricsPort = 9862;
constexpr uint16_t kPrometheusPort = 9090;

std::string agent_id(size_t i) { return std::string(kHubs[i]) + "-edge-01"; }

std::optional<std::string> tool_missing(const std::string& name) {
  const char* path = getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return std::nullopt;
  }
  return name + " not found in PATH (Debian package prometheus)";
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

class AgentMeshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    mesh_ = std::make_unique<Mesh>(3);
    for (size_t i = 0; i < 3; ++i) agents_.push_back(start_agent(i));
  }

  AgentFile file_for(size_t i) const {
    AgentFile f;
    f.id = agent_id(i);
    f.hub = kHubs[i];
    f.metrics_listen = Mesh::address(i) + ":" + std::to_string(kMetricsPort);
    f.interval = "100ms";
    f.timeout = "1s";
    f.down_after = 3;
    for (size_t j = 0; j < 3; ++j) {
      if (j != i) f.peers.push_back({agent_id(j), kHubs[j], Mesh::address(j), {}});
    }
    return f;
  }

  std::unique_ptr<AgentProcess> start_agent(size_t i) {
    const auto config = dir_.write_file("agent-" + std::string(kHubs[i]) + ".toml", file_for(i).toml());
    return std::make_unique<AgentProcess>(mesh_->node(i), config, Mesh::address(i), kMetricsPort, dir_.path(),
                                          "hubprobed-" + std::string(kHubs[i]) + "-" + std::to_string(++starts_));
  }

  /// Waits until every running agent sees each of its peers up (those in `except` are not expected).
  ::testing::AssertionResult all_up(Seconds timeout, const std::set<size_t>& except = {}) {
    json last;
    const bool ok = wait_until(
        [&] {
          for (size_t i = 0; i < 3; ++i) {
            if (except.count(i)) continue;
            last = agents_[i]->status();
            for (size_t j = 0; j < 3; ++j) {
              if (j != i && !except.count(j) && peer_state(last, agent_id(j)) != "up") return false;
            }
          }
          return true;
        },
        timeout, std::chrono::milliseconds(50));
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "peers not all up within " << timeout.count() << " s; last /status:\n"
                                         << last.dump(2);
  }

  TempDir dir_;
  std::unique_ptr<Mesh> mesh_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  int starts_ = 0;
};

// ---- Prometheus ------------------------------------------------------------------------------------

struct QueryResult {
  bool ok = false;
  json result = json::array();
  std::string raw;
};

QueryResult prometheus_query(const Namespace& core, const std::string& promql) {
  QueryResult q;
  HttpResult r = http_get(core, "127.0.0.1", kPrometheusPort, "/api/v1/query?query=" + url_encode(promql));
  q.raw = r.ok ? r.body : r.error;
  if (!r.ok || r.status != 200) return q;
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || j.value("status", "") != "success" || !j.contains("data") || !j["data"].contains("result") ||
      !j["data"]["result"].is_array()) {
    return q;
  }
  q.ok = true;
  q.result = j["data"]["result"];
  return q;
}

double sample_value(const json& series) {
  if (!series.contains("value") || !series["value"].is_array() || series["value"].size() != 2) return NAN;
  return strtod(series["value"][1].get<std::string>().c_str(), nullptr);
}

TEST_F(AgentMeshTest, ThreeAgentsScrapedByPrometheus) {
  HUBPROBE_REQUIRE(tool_missing("prometheus"));
  HUBPROBE_REQUIRE(tool_missing("promtool"));
  ASSERT_TRUE(all_up(Seconds(10)));

  // Prometheus in the core namespace, which reaches the three metrics listeners over the bridge.
  std::ostringstream yml;
  yml << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: hubprobe\n    static_configs:\n      - targets:\n";
  for (size_t i = 0; i < 3; ++i) yml << "          - \"" << Mesh::address(i) << ":" << kMetricsPort << "\"\n";
  const auto prom_config = dir_.write_file("prometheus.yml", yml.str());
  std::filesystem::create_directory(dir_.path() / "tsdb");
  Process prometheus(
      {"prometheus", "--config.file=" + prom_config.string(), "--storage.tsdb.path=" + (dir_.path() / "tsdb").string(),
       "--web.listen-address=127.0.0.1:" + std::to_string(kPrometheusPort)},
      mesh_->core().name(), dir_.path(), "prometheus");
  const bool ready = wait_until(
      [&] {
        if (!prometheus.running()) return true;
        HttpResult r = http_get(mesh_->core(), "127.0.0.1", kPrometheusPort, "/-/ready", Seconds(1));
        return r.ok && r.status == 200;
      },
      Seconds(20), std::chrono::milliseconds(100));
  ASSERT_TRUE(ready && prometheus.running()) << "prometheus not ready\n" << prometheus.describe();

  // Every agent's exposition is clean for promtool (exit 0: no parse error, no lint warning).
  for (size_t i = 0; i < 3; ++i) {
    const std::string url = "http://" + Mesh::address(i) + ":" + std::to_string(kMetricsPort) + "/metrics";
    CommandResult fetched = mesh_->node(i).exec({"curl", "-sS", "--fail", "--max-time", "5", url}, Seconds(10));
    ASSERT_TRUE(fetched.ok()) << fetched.describe();
    CommandResult check = run_command({"promtool", "check", "metrics"}, Seconds(30), fetched.out);
    EXPECT_TRUE(check.ok()) << "promtool check metrics on " << url << "\n" << check.describe();
  }

  // The query API: 3 targets up; 6 hubprobe_peer_up series (3 agents x 2 peers), all 1; 6 median RTTs
  // above 0 and below 10 ms; probes sent at 10 per second per peer.
  const std::string q_up = "up{job=\"hubprobe\"}";
  const std::string q_peer_up = "hubprobe_peer_up";
  const std::string q_p50 = "hubprobe_rtt_window_seconds{quantile=\"0.5\"}";
  // deriv (a least-squares slope over the samples) rather than rate: rate extrapolates to the whole
  // range and reads low while the series is younger than the range.
  const std::string q_rate = "deriv(hubprobe_probes_sent_total[5s])";
  const std::string q_samples = "count_over_time(hubprobe_probes_sent_total[5s])";
  QueryResult up, peer_up, p50, rate, samples;
  const auto scrape_start = Clock::now();
  const bool settled = wait_until(
      [&] {
        up = prometheus_query(mesh_->core(), q_up);
        peer_up = prometheus_query(mesh_->core(), q_peer_up);
        p50 = prometheus_query(mesh_->core(), q_p50);
        rate = prometheus_query(mesh_->core(), q_rate);
        samples = prometheus_query(mesh_->core(), q_samples);
        if (!up.ok || !peer_up.ok || !p50.ok || !rate.ok || !samples.ok) return false;
        if (samples.result.size() != 6) return false;
        for (const auto& s : samples.result) {
          if (sample_value(s) < 3) return false;  // three scrapes of each series for the slope
        }
        if (up.result.size() != 3 || peer_up.result.size() != 6 || p50.result.size() != 6 || rate.result.size() != 6) {
          return false;
        }
        for (const auto& s : up.result) {
          if (sample_value(s) != 1) return false;
        }
        for (const auto& s : peer_up.result) {
          if (sample_value(s) != 1) return false;
        }
        for (const auto& s : p50.result) {
          if (!(sample_value(s) > 0)) return false;
        }
        return true;
      },
      Seconds(30), std::chrono::milliseconds(250));
  const std::string dump = "\nup: " + up.raw + "\nhubprobe_peer_up: " + peer_up.raw + "\np50: " + p50.raw +
                           "\nrate: " + rate.raw + "\n" + prometheus.describe();
  ASSERT_TRUE(settled) << "Prometheus did not show 3 targets and 6 peers up (3 scrapes each) within 30 s" << dump;
  std::cout << "[ measured ] Prometheus saw all six peers up " << seconds_since(scrape_start)
            << " s after it was ready\n";

  std::set<std::string> instances;
  for (const auto& s : up.result) instances.insert(s["metric"].value("instance", ""));
  EXPECT_EQ(instances,
            (std::set<std::string>{Mesh::address(0) + ":9862", Mesh::address(1) + ":9862", Mesh::address(2) + ":9862"}))
      << dump;

  // Each (hub, peer) pair exactly once, with consistent labels.
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& s : peer_up.result) {
    const json& m = s["metric"];
    const std::string hub = m.value("hub", "");
    const std::string peer = m.value("peer", "");
    const std::string peer_hub = m.value("peer_hub", "");
    EXPECT_EQ(peer, peer_hub + "-edge-01") << m.dump();
    EXPECT_NE(hub, peer_hub) << m.dump();
    EXPECT_EQ(m.value("path", ""), "default") << m.dump();
    EXPECT_EQ(sample_value(s), 1) << s.dump();
    pairs.insert({hub, peer_hub});
  }
  EXPECT_EQ(pairs.size(), 6u) << dump;

  for (const auto& s : p50.result) {
    const double v = sample_value(s);
    EXPECT_GT(v, 0) << s.dump();
    EXPECT_LT(v, 0.01) << "median RTT on a bridge between namespaces must be far below 10 ms: " << s.dump();
  }
  for (const auto& s : rate.result) {
    const double v = sample_value(s);
    EXPECT_GT(v, 7) << "interval 100 ms: about 10 probes per second\n" << s.dump();
    EXPECT_LT(v, 13) << "interval 100 ms: about 10 probes per second\n" << s.dump();
  }

  // Prometheus is stopped by PID (SIGTERM, then SIGKILL); it stops cleanly.
  const ExitInfo stopped = prometheus.stop(Seconds(10));
  EXPECT_TRUE(stopped.exited()) << prometheus.describe();
}

// ---- a peer dies and comes back ----------------------------------------------------------------------

TEST_F(AgentMeshTest, KilledPeerGoesDownWithinConfiguredBoundAndComesBack) {
  ASSERT_TRUE(all_up(Seconds(10)));
  // A few seconds of history, so a reset counter would show.
  sleep_for(Seconds(1));
  const std::string c_name = agent_id(2), b_name = agent_id(1);
  const json before = agents_[0]->status();
  const int64_t sent_before = peer_count(before, c_name, "sent");
  ASSERT_GT(sent_before, 5) << before.dump(2);

  // The configuration's bound: the last probe answered went out before the kill; the third probe after
  // it is sent at most 3 intervals after the kill and declared lost `timeout` later, seen at the next
  // tick (at most one interval). 1.3 s + 0.1 s; +1.5 s of slack for a loaded 2-vCPU VM.
  const double interval = 0.1, timeout = 1.0;
  const int down_after = 3;
  const double bound = timeout + down_after * interval + interval;
  const double slack = 1.5;

  agents_[2]->process().signal(SIGKILL);
  const auto killed_at = Clock::now();
  ASSERT_TRUE(agents_[2]->process().wait_for_exit(Seconds(5)));

  double a_down = -1, b_down = -1;
  json a_status, b_status;
  wait_until(
      [&] {
        if (a_down < 0) {
          a_status = agents_[0]->status();
          if (peer_state(a_status, c_name) == "down") a_down = seconds_since(killed_at);
        }
        if (b_down < 0) {
          b_status = agents_[1]->status();
          if (peer_state(b_status, c_name) == "down") b_down = seconds_since(killed_at);
        }
        return a_down >= 0 && b_down >= 0;
      },
      Seconds(bound + slack + 3), std::chrono::milliseconds(10));
  std::cout << "[ measured ] down detected after the SIGKILL: by gz " << a_down << " s, by sg " << b_down
            << " s (bound " << bound << " s + " << slack << " s slack)\n";
  ASSERT_GE(a_down, 0) << "gz never declared sh down\n" << a_status.dump(2);
  ASSERT_GE(b_down, 0) << "sg never declared sh down\n" << b_status.dump(2);
  EXPECT_LE(a_down, bound + slack) << a_status.dump(2);
  EXPECT_LE(b_down, bound + slack) << b_status.dump(2);
  // Lost means no reply within the timeout: no peer can be down before one probe timed out.
  EXPECT_GE(a_down, timeout - 0.1) << "down before any probe could time out\n" << a_status.dump(2);
  EXPECT_GE(b_down, timeout - 0.1) << "down before any probe could time out\n" << b_status.dump(2);
  // The other peer is unaffected.
  EXPECT_EQ(peer_state(a_status, b_name), "up") << a_status.dump(2);
  const json down_status = agents_[0]->status();
  EXPECT_GE(peer_count(down_status, c_name, "lost"), down_after) << down_status.dump(2);
  EXPECT_GE(peer_count(down_status, c_name, "sent"), sent_before) << "the session keeps probing a down peer";

  // sh restarts: up again once it answers (3 replies at 100 ms after a down).
  const auto restarted_at = Clock::now();
  agents_[2] = start_agent(2);
  double a_up = -1;
  json last;
  wait_until(
      [&] {
        last = agents_[0]->status();
        if (peer_state(last, c_name) == "up") a_up = seconds_since(restarted_at);
        return a_up >= 0;
      },
      Seconds(6), std::chrono::milliseconds(10));
  std::cout << "[ measured ] up again " << a_up << " s after the restart was launched\n";
  ASSERT_GE(a_up, 0) << "gz never saw sh up again\n" << last.dump(2) << "\n" << agents_[2]->describe();
  EXPECT_LE(a_up, 2.5) << last.dump(2);
  ASSERT_TRUE(all_up(Seconds(5)));

  // One session all along: counters kept, one down transition recorded.
  const auto samples = agents_[0]->metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_peer_down_transitions_total", {{"peer", c_name}}), 1);
  EXPECT_EQ(only_value(samples, "hubprobe_peer_down_transitions_total", {{"peer", b_name}}), 0);
  EXPECT_EQ(only_value(samples, "hubprobe_peer_up", {{"peer", c_name}}), 1);
  EXPECT_GE(only_value(samples, "hubprobe_probes_sent_total", {{"peer", c_name}}), static_cast<double>(sent_before));
  // The agents survived it all.
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(agents_[i]->process().running()) << agents_[i]->describe();
}

}  // namespace
}  // namespace hubprobe::it::agent
