// SPDX-License-Identifier: Apache-2.0
// SIGHUP on a running hubprobed: a changed peer gets its new interval while an unchanged one keeps its
// session and statistics; an added peer is probed; a broken file (TOML syntax error, unknown key) is
// refused with file:line:column, the old configuration keeps running, and a fixed file then loads; a
// file whose new peer cannot start (a source port another process holds) is refused whole.
//
// Topology: the agent in mesh node a (198.18.0.1); `hubprobe reflect` in node b (198.18.0.2:862) and
// node c (198.18.0.3:862, and :863 for the peer added by a reload).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <regex>
#include <thread>

#include "agent_support.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

constexpr uint16_t kMetricsPort = 9862;
// Source ports of the path a reload adds: below the ephemeral range, so no socket of the agent has them.
constexpr uint16_t kFreeSourcePort = 30001;
constexpr uint16_t kBusySourcePort = 30002;

/// A UDP socket bound to 0.0.0.0:PORT in `ns`: another process's hold on the port. Closed on destruction.
class HeldPort {
 public:
  HeldPort(const Namespace& ns, uint16_t port) : fd_(socket_in_netns(ns, AF_INET, SOCK_DGRAM)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      const std::string why = strerror(errno);
      release();
      throw HarnessError("bind 0.0.0.0:" + std::to_string(port) + " in " + ns.name() + ": " + why);
    }
  }
  ~HeldPort() { release(); }
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;
  void release() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

class AgentReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE_BINARY();
    mesh_ = std::make_unique<Mesh>(3);
    refl_b_ = std::make_unique<Reflector>(mesh_->node(1), std::vector<std::string>{"--listen", "198.18.0.2:862"},
                                          dir_.path(), "reflect-b");
    refl_c_ = std::make_unique<Reflector>(mesh_->node(2), std::vector<std::string>{"--listen", "198.18.0.3:862"},
                                          dir_.path(), "reflect-c");
    config_path_ = dir_.path() / "hubprobe.toml";
    write(base_file().toml());
    agent_ = std::make_unique<AgentProcess>(mesh_->node(0), config_path_, "198.18.0.1", kMetricsPort, dir_.path(),
                                            "hubprobed");
  }

  static AgentFile base_file() {
    AgentFile f;
    f.id = "gz-edge-01";
    f.hub = "gz";
    f.metrics_listen = "198.18.0.1:9862";
    f.interval = "100ms";
    f.timeout = "1s";
    f.peers = {{"b", "sg", "198.18.0.2", {}}, {"c", "sh", "198.18.0.3", {}}};
    return f;
  }

  void write(const std::string& text) {
    last_text_ = text;
    dir_.write_file(config_path_.filename().string(), text);
  }

  /// Sends SIGHUP and waits until /status counts one more reload (ok or failed).
  json reload() {
    const json before = agent_->status();
    const int64_t done =
        before["config"]["reloads_ok"].get<int64_t>() + before["config"]["reloads_failed"].get<int64_t>();
    agent_->process().signal(SIGHUP);
    json now;
    const bool seen = wait_until(
        [&] {
          now = agent_->status();
          return now["config"]["reloads_ok"].get<int64_t>() + now["config"]["reloads_failed"].get<int64_t>() > done;
        },
        Seconds(5));
    if (!seen)
      throw HarnessError("the agent did not finish a reload within 5 s\n" + now.dump(2) + "\n" + agent_->describe());
    return now;
  }

  bool peers_up(const std::vector<std::string>& names, Seconds timeout, json* last) {
    return wait_until(
        [&] {
          *last = agent_->status();
          for (const auto& n : names) {
            if (peer_state(*last, n) != "up") return false;
          }
          return true;
        },
        timeout, std::chrono::milliseconds(50));
  }

  /// Probes sent per second to `peer`, measured over `span`.
  double send_rate(const std::string& peer, Seconds span) {
    const json s0 = agent_->status();
    const auto t0 = Clock::now();
    sleep_for(span);
    const json s1 = agent_->status();
    const double dt = seconds_since(t0);
    return static_cast<double>(peer_count(s1, peer, "sent") - peer_count(s0, peer, "sent")) / dt;
  }

  /// Both peers keep being probed and answered (counters grow by at least `min_growth` in `span`).
  void expect_probing(const std::vector<std::string>& names, Seconds span, int64_t min_growth) {
    const json s0 = agent_->status();
    sleep_for(span);
    const json s1 = agent_->status();
    for (const auto& n : names) {
      EXPECT_GE(peer_count(s1, n, "sent") - peer_count(s0, n, "sent"), min_growth) << n << "\n" << s1.dump(2);
      EXPECT_GE(peer_count(s1, n, "received") - peer_count(s0, n, "received"), min_growth) << n << "\n" << s1.dump(2);
      EXPECT_EQ(peer_state(s1, n), "up") << n << "\n" << s1.dump(2);
    }
  }

  TempDir dir_;
  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<Reflector> refl_b_, refl_c_, refl_d_;
  std::filesystem::path config_path_;
  std::string last_text_;
  std::unique_ptr<AgentProcess> agent_;
};

TEST_F(AgentReloadTest, ChangedIntervalAppliesUnchangedPeerKeepsStatistics) {
  json status;
  ASSERT_TRUE(peers_up({"b", "c"}, Seconds(10), &status)) << status.dump(2);
  const double rate_before = send_rate("b", Seconds(2));

  AgentFile next = base_file();
  next.peers[0].extra = {"interval = \"50ms\""};
  write(next.toml());
  const json c_before = peer_of(agent_->status(), "c");
  ASSERT_GE(c_before["sent"].get<int64_t>(), 20) << c_before.dump(2);

  const json after = reload();
  EXPECT_EQ(after["config"]["reloads_ok"], 1) << after.dump(2);
  EXPECT_EQ(after["config"]["reloads_failed"], 0) << after.dump(2);
  EXPECT_EQ(after["config"]["last_reload_ok"], true) << after.dump(2);
  const json c_after = peer_of(after, "c");
  // Unchanged peer: same session, statistics kept (its counters continue from where they were).
  EXPECT_GE(c_after["sent"].get<int64_t>(), c_before["sent"].get<int64_t>()) << "c's counters were reset\n"
                                                                             << c_before.dump(2) << c_after.dump(2);
  EXPECT_GE(c_after["received"].get<int64_t>(), c_before["received"].get<int64_t>()) << c_after.dump(2);
  EXPECT_GE(c_after["rtt_ms"]["count"].get<int64_t>(), c_before["rtt_ms"]["count"].get<int64_t>())
      << "c's window was reset\n"
      << c_after.dump(2);
  EXPECT_EQ(c_after["state"], "up") << c_after.dump(2);
  EXPECT_EQ(c_after["state_since"], c_before["state_since"]) << "c's state history was reset";
  std::cout << "[ measured ] b sent " << peer_count(after, "b", "sent") << " right after the reload (new session)\n";

  ASSERT_TRUE(peers_up({"b"}, Seconds(5), &status)) << status.dump(2);
  const int64_t c_sent_1 = peer_count(agent_->status(), "c", "sent");
  const double rate_after = send_rate("b", Seconds(2));
  const int64_t c_sent_2 = peer_count(agent_->status(), "c", "sent");
  std::cout << "[ measured ] b: " << rate_before << " probes/s at 100ms, " << rate_after << " probes/s at 50ms\n";
  EXPECT_GT(rate_before, 7) << "interval 100 ms";
  EXPECT_LT(rate_before, 12) << "interval 100 ms";
  EXPECT_GT(rate_after / rate_before, 1.5) << "interval halved: the rate roughly doubles";
  EXPECT_LT(rate_after / rate_before, 2.5) << "interval halved: the rate roughly doubles";
  EXPECT_LT(rate_after, 22) << "interval 50 ms";
  // c is still at 100 ms, still growing from its old count.
  EXPECT_GE(c_sent_2 - c_sent_1, 14) << "c kept its 100 ms rhythm";
  EXPECT_LE(c_sent_2 - c_sent_1, 26) << "c kept its 100 ms rhythm";

  const auto samples = agent_->metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "success"}}), 1);
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "failure"}}), 0);
  EXPECT_EQ(only_value(samples, "hubprobe_config_last_reload_successful"), 1);
  EXPECT_TRUE(agent_->process().running()) << agent_->describe();
}

// docs/configuration.md, Reload: "only `window` or `down_after`: applied to the running session;
// statistics kept". The cumulative counters and the RTT histogram are Prometheus counters: a reload
// must not reset them.
TEST_F(AgentReloadTest, WindowOrDownAfterChangeKeepsStatistics) {
  json status;
  ASSERT_TRUE(peers_up({"b", "c"}, Seconds(10), &status)) << status.dump(2);
  sleep_for(Seconds(1));
  AgentFile next = base_file();
  next.peers[0].extra = {"down_after = 5"};
  next.peers[1].extra = {"window = \"30s\""};
  write(next.toml());
  const json before = agent_->status();
  const auto samples_before = agent_->metrics();
  const json after = reload();
  EXPECT_EQ(after["config"]["reloads_ok"], 1) << after.dump(2);
  EXPECT_EQ(peer_of(after, "c")["window_s"], 30.0) << "the new window is applied\n" << after.dump(2);
  const auto samples_after = agent_->metrics();
  for (const char* n : {"b", "c"}) {
    const json p0 = peer_of(before, n), p1 = peer_of(after, n);
    EXPECT_GE(p1["sent"].get<int64_t>(), p0["sent"].get<int64_t>()) << n << ": counters reset by the reload\n"
                                                                    << p0.dump(2) << "\n"
                                                                    << p1.dump(2);
    EXPECT_GE(p1["received"].get<int64_t>(), p0["received"].get<int64_t>()) << n << ": counters reset\n" << p1.dump(2);
    EXPECT_EQ(p1["state"], "up") << n << "\n" << p1.dump(2);
    EXPECT_EQ(p1["state_since"], p0["state_since"]) << n << ": state history reset\n" << p1.dump(2);
    const double h0 = only_value(samples_before, "hubprobe_rtt_seconds_count", {{"peer", n}});
    const double h1 = only_value(samples_after, "hubprobe_rtt_seconds_count", {{"peer", n}});
    EXPECT_GE(h1, h0) << n << ": the cumulative RTT histogram (a Prometheus counter) was reset";
  }
}

TEST_F(AgentReloadTest, AddedPeerIsProbed) {
  refl_d_ = std::make_unique<Reflector>(mesh_->node(2), std::vector<std::string>{"--listen", "198.18.0.3:863"},
                                        dir_.path(), "reflect-d", 863);
  json status;
  ASSERT_TRUE(peers_up({"b", "c"}, Seconds(10), &status)) << status.dump(2);
  sleep_for(Seconds(0.5));
  const json before = agent_->status();

  AgentFile next = base_file();
  next.peers.push_back({"d", "sh", "198.18.0.3", {"port = 863"}});
  write(next.toml());
  const json after = reload();
  EXPECT_EQ(after["config"]["reloads_ok"], 1) << after.dump(2);
  EXPECT_EQ(after["config"]["last_reload_ok"], true) << after.dump(2);
  ASSERT_TRUE(peer_of(after, "d").is_object()) << "the new peer is not in /status\n" << after.dump(2);

  // d answers; it shares c's address, so replies must go to the right session.
  ASSERT_TRUE(peers_up({"b", "c", "d"}, Seconds(3), &status)) << status.dump(2);
  sleep_for(Seconds(1));
  const json later = agent_->status();
  EXPECT_GE(peer_count(later, "d", "received"), 5) << later.dump(2);
  EXPECT_EQ(peer_count(later, "d", "lost"), 0) << later.dump(2);
  EXPECT_EQ(peer_of(later, "d")["address"], "198.18.0.3:863") << later.dump(2);
  // b and c untouched.
  for (const char* n : {"b", "c"}) {
    EXPECT_GE(peer_count(later, n, "sent"), peer_count(before, n, "sent") + 5) << n << "\n" << later.dump(2);
    EXPECT_EQ(peer_of(later, n)["state_since"], peer_of(before, n)["state_since"]) << n;
  }
  const auto samples = agent_->metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_peers"), 3);
  EXPECT_EQ(only_value(samples, "hubprobe_peer_up", {{"peer", "d"}, {"peer_hub", "sh"}}), 1);
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "success"}}), 1);
}

// [metrics] rtt_buckets sets the buckets of hubprobe_rtt_seconds for the agent's life: a reload that
// changes it is refused and says to restart.
TEST_F(AgentReloadTest, RttBucketsChangeIsRefusedAndTheHistogramKeepsItsBuckets) {
  json status;
  ASSERT_TRUE(peers_up({"b", "c"}, Seconds(10), &status)) << status.dump(2);
  const auto buckets_of_b = [&] {
    return select(agent_->metrics(), "hubprobe_rtt_seconds_bucket", {{"peer", "b"}}).size();
  };
  EXPECT_EQ(buckets_of_b(), 140u) << "16 per doubling: 139 bounds and +Inf";
  AgentFile f = base_file();
  f.rtt_buckets = 4;
  write(f.toml());
  const json after = reload();
  EXPECT_EQ(after["config"]["reloads_failed"], 1) << after.dump(2);
  EXPECT_NE(after["config"]["last_reload_error"].get<std::string>().find(
                "metrics.rtt_buckets changed: restart hubprobed to apply it"),
            std::string::npos)
      << after.dump(2);
  EXPECT_EQ(buckets_of_b(), 140u);
}

// Fewer buckets per doubling, fewer series per peer (docs/metrics.md); 0: no histogram, the summaries stay.
TEST_F(AgentReloadTest, RttBucketsSetTheSeriesPerPeer) {
  for (const auto& [buckets, expected] : {std::pair{4, size_t{44}}, std::pair{0, size_t{0}}}) {
    agent_.reset();
    AgentFile f = base_file();
    f.rtt_buckets = buckets;
    write(f.toml());
    agent_ = std::make_unique<AgentProcess>(mesh_->node(0), config_path_, "198.18.0.1", kMetricsPort, dir_.path(),
                                            "hubprobed-" + std::to_string(buckets));
    json status;
    ASSERT_TRUE(peers_up({"b", "c"}, Seconds(10), &status)) << status.dump(2);
    const auto samples = agent_->metrics();
    EXPECT_EQ(select(samples, "hubprobe_rtt_seconds_bucket", {{"peer", "b"}}).size(), expected) << buckets;
    EXPECT_EQ(select(samples, "hubprobe_rtt_seconds_count", {{"peer", "b"}}).size(), buckets == 0 ? 0u : 1u);
    EXPECT_EQ(select(samples, "hubprobe_rtt_window_seconds", {{"peer", "b"}, {"quantile", "0.5"}}).size(), 1u);
  }
}

TEST_F(AgentReloadTest, BrokenFileIsRefusedAndOldConfigKeepsRunning) {
  json status;
  ASSERT_TRUE(peers_up({"b", "c"}, Seconds(10), &status)) << status.dump(2);
  const std::string path = config_path_.string();

  // 1. A TOML syntax error (a value missing) in a file that would also add a peer.
  AgentFile with_d = base_file();
  with_d.peers.push_back({"d", "sh", "198.18.0.3", {"port = 863"}});
  std::string broken = with_d.toml();
  const std::string bad_line = "interval = ";
  broken.replace(broken.find("interval = \"100ms\""), std::string("interval = \"100ms\"").size(), bad_line);
  write(broken);
  const int syntax_line = line_of(broken, bad_line);
  ASSERT_GT(syntax_line, 0);

  json after = reload();
  EXPECT_EQ(after["config"]["reloads_failed"], 1) << after.dump(2);
  EXPECT_EQ(after["config"]["reloads_ok"], 0) << after.dump(2);
  EXPECT_EQ(after["config"]["last_reload_ok"], false) << after.dump(2);
  std::string error = after["config"]["last_reload_error"].get<std::string>();
  std::smatch m;
  EXPECT_TRUE(
      std::regex_search(error, m,
                        std::regex("^" + std::regex_replace(path, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                                   R"(:([0-9]+):([0-9]+): )")))
      << "error should start with FILE:LINE:COLUMN: " << error;
  if (!m.empty()) {
    EXPECT_EQ(std::stoi(m[1]), syntax_line) << error;
  }
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
  EXPECT_EQ(peer_of(after, "d"), nullptr) << "a refused file must not add its peer\n" << after.dump(2);
  auto samples = agent_->metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "failure"}}), 1);
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "success"}}), 0);
  EXPECT_EQ(only_value(samples, "hubprobe_config_last_reload_successful"), 0);
  EXPECT_EQ(only_value(samples, "hubprobe_peers"), 2);
  ASSERT_TRUE(agent_->process().running()) << agent_->describe();
  expect_probing({"b", "c"}, Seconds(1), 6);

  // 2. An unknown key (a typo) in a file that would also change b's interval.
  AgentFile typo = base_file();
  typo.peers[0].extra = {"interval = \"50ms\"", "intervall = \"50ms\""};
  const std::string typo_text = typo.toml();
  write(typo_text);
  const int typo_line = line_of(typo_text, "intervall");
  after = reload();
  EXPECT_EQ(after["config"]["reloads_failed"], 2) << after.dump(2);
  EXPECT_EQ(after["config"]["last_reload_ok"], false) << after.dump(2);
  error = after["config"]["last_reload_error"].get<std::string>();
  EXPECT_EQ(error.rfind(path + ":" + std::to_string(typo_line) + ":1: peer[0].intervall: unknown key", 0), 0u)
      << "expected " << path << ":" << typo_line << ":1: peer[0].intervall: unknown key ..., got: " << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
  samples = agent_->metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "failure"}}), 2);
  EXPECT_EQ(only_value(samples, "hubprobe_config_last_reload_successful"), 0);
  ASSERT_TRUE(agent_->process().running()) << agent_->describe();
  // b still at the old 100 ms.
  const double rate_b = send_rate("b", Seconds(1.5));
  EXPECT_LT(rate_b, 13) << "a refused file changed b's interval";
  EXPECT_GT(rate_b, 7) << "b is not probed at 100 ms any more";
  expect_probing({"b", "c"}, Seconds(0.5), 3);

  // 3. The file fixed: the next SIGHUP applies it.
  AgentFile fixed = base_file();
  fixed.peers[0].extra = {"interval = \"50ms\""};
  write(fixed.toml());
  after = reload();
  EXPECT_EQ(after["config"]["reloads_ok"], 1) << after.dump(2);
  EXPECT_EQ(after["config"]["reloads_failed"], 2) << after.dump(2);
  EXPECT_EQ(after["config"]["last_reload_ok"], true) << after.dump(2);
  EXPECT_EQ(after["config"]["last_reload_error"], "") << after.dump(2);
  samples = agent_->metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "success"}}), 1);
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "failure"}}), 2);
  EXPECT_EQ(only_value(samples, "hubprobe_config_last_reload_successful"), 1);
  ASSERT_TRUE(peers_up({"b", "c"}, Seconds(3), &status)) << status.dump(2);
  const double rate_fixed = send_rate("b", Seconds(1.5));
  EXPECT_GT(rate_fixed, 15) << "the fixed file's 50 ms interval was not applied";
}

// A file whose new peer cannot start is refused whole: peer d's path takes two UDP source ports and another
// process holds one of them. The same file would also change b's interval and the reflector; none of it
// happens: b and c keep their sessions and counters, d is not added, the failure is counted and logged
// with the port. Once the port is free, the same file loads.
TEST_F(AgentReloadTest, NewPeerThatCannotStartRefusesTheWholeReload) {
  refl_d_ = std::make_unique<Reflector>(mesh_->node(2), std::vector<std::string>{"--listen", "198.18.0.3:863"},
                                        dir_.path(), "reflect-d", 863);
  json status;
  ASSERT_TRUE(peers_up({"b", "c"}, Seconds(10), &status)) << status.dump(2);
  sleep_for(Seconds(0.5));
  auto held = std::make_unique<HeldPort>(mesh_->node(0), kBusySourcePort);

  AgentFile next = base_file();
  next.reflector = {"mode = \"stateless\""};
  next.peers[0].extra = {"interval = \"50ms\""};
  next.peers.push_back({"d", "hk", "198.18.0.3", {"port = 863"}});
  next.tail = "[[path]]\nname = \"ecmp\"\nhubs = [\"hk\"]\nsource_ports = [" + std::to_string(kFreeSourcePort) + ", " +
              std::to_string(kBusySourcePort) + "]\n";
  write(next.toml());
  const json before = agent_->status();
  json after = reload();
  EXPECT_EQ(after["config"]["reloads_failed"], 1) << after.dump(2);
  EXPECT_EQ(after["config"]["reloads_ok"], 0) << after.dump(2);
  EXPECT_EQ(after["config"]["last_reload_ok"], false) << after.dump(2);
  const std::string error = after["config"]["last_reload_error"].get<std::string>();
  EXPECT_NE(error.find("d/ecmp"), std::string::npos) << error;
  EXPECT_NE(error.find(std::to_string(kBusySourcePort)), std::string::npos) << error;
  EXPECT_EQ(peer_of(after, "d"), nullptr) << "a refused reload must not add its peer\n" << after.dump(2);
  EXPECT_EQ(after["reflector"]["stateful"], true) << "a refused reload changed the reflector\n" << after.dump(2);
  auto samples = agent_->metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "failure"}}), 1);
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "success"}}), 0);
  EXPECT_EQ(only_value(samples, "hubprobe_config_last_reload_successful"), 0);
  EXPECT_EQ(only_value(samples, "hubprobe_peers"), 2);
  const std::string log = agent_->process().stdout_text() + agent_->process().stderr_text();
  EXPECT_NE(log.find("reload refused, keeping the running configuration: "), std::string::npos) << log;
  // b and c: the same sessions, counters continuing, b still at 100 ms.
  for (const char* n : {"b", "c"}) {
    EXPECT_GE(peer_count(after, n, "sent"), peer_count(before, n, "sent")) << n << ": counters reset\n"
                                                                           << after.dump(2);
    EXPECT_EQ(peer_of(after, n)["state_since"], peer_of(before, n)["state_since"]) << n << ": session restarted";
  }
  const double rate_b = send_rate("b", Seconds(1.5));
  EXPECT_LT(rate_b, 13) << "a refused reload changed b's interval";
  EXPECT_GT(rate_b, 7) << "b is not probed at 100 ms any more";
  expect_probing({"b", "c"}, Seconds(0.5), 3);

  // The port free again: the same file loads whole.
  held.reset();
  after = reload();
  EXPECT_EQ(after["config"]["reloads_ok"], 1) << after.dump(2);
  EXPECT_EQ(after["config"]["reloads_failed"], 1) << after.dump(2);
  EXPECT_EQ(after["config"]["last_reload_error"], "") << after.dump(2);
  EXPECT_EQ(after["reflector"]["stateful"], false) << after.dump(2);
  ASSERT_TRUE(peers_up({"b", "c", "d"}, Seconds(3), &status)) << status.dump(2);
  EXPECT_EQ(peer_of(status, "d")["path"], "ecmp") << status.dump(2);
  samples = agent_->metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_config_reloads_total", {{"result", "success"}}), 1);
  EXPECT_EQ(only_value(samples, "hubprobe_peers"), 3);
  EXPECT_GT(send_rate("b", Seconds(1.5)), 15) << "the 50 ms interval of the loaded file was not applied";
}

// 100 SIGHUPs in one second, the file alternating between good and broken versions (replaced by rename, as
// an operator's tooling does), while /metrics is scraped without pause: the agent does not crash, every
// scrape is a whole exposition with consistent values, and the last good file is what runs in the end.
TEST_F(AgentReloadTest, AReloadStormWhileScrapedEndsOnTheLastGoodFile) {
  json status;
  ASSERT_TRUE(peers_up({"b", "c"}, Seconds(10), &status)) << status.dump(2);
  AgentFile two = base_file();
  AgentFile three = base_file();
  three.peers.push_back({"d", "sh", "198.18.0.3", {"port = 863"}});
  std::string broken = three.toml();
  broken.replace(broken.find("interval = \"100ms\""), std::string("interval = \"100ms\"").size(), "interval = ");
  const auto replace_file = [&](const std::string& text) {
    const std::filesystem::path next = dir_.write_file("next.toml", text);
    std::filesystem::rename(next, config_path_);
  };

  std::atomic<bool> storming{true};
  std::atomic<int> scrapes{0}, torn{0};
  std::string first_torn;
  std::thread scraper([&] {
    while (storming) {
      try {
        const auto samples = agent_->metrics();
        const double peers = only_value(samples, "hubprobe_peers");
        if (peers != 2 && peers != 3 && torn++ == 0) first_torn = "hubprobe_peers = " + std::to_string(peers);
      } catch (const std::exception& e) {
        if (torn++ == 0) first_torn = e.what();
      }
      ++scrapes;
    }
  });
  // Odd steps good (two peers, then three), even steps broken; the last step (99) is the three-peer file.
  const auto start = Clock::now();
  for (int i = 0; i < 100; ++i) {
    replace_file(i % 2 == 0 ? broken : (i % 4 == 1 ? two.toml() : three.toml()));
    agent_->process().signal(SIGHUP);
    std::this_thread::sleep_until(start + std::chrono::milliseconds(10 * (i + 1)));
  }
  const bool settled = wait_until(
      [&] {
        status = agent_->status();
        return peer_of(status, "d") != nullptr && status["config"]["last_reload_ok"] == true;
      },
      Seconds(5), std::chrono::milliseconds(50));
  storming = false;
  scraper.join();
  ASSERT_TRUE(agent_->process().running()) << agent_->describe();
  EXPECT_TRUE(settled) << "the last good file (three peers) is not what runs\n" << status.dump(2);
  EXPECT_EQ(torn, 0) << first_torn;
  EXPECT_GT(scrapes, 20) << "the scraper hardly ran";
  const int64_t ok = status["config"]["reloads_ok"].get<int64_t>();
  const int64_t failed = status["config"]["reloads_failed"].get<int64_t>();
  EXPECT_GE(ok, 1);
  EXPECT_GE(failed, 1);
  std::printf("[ measured ] 100 SIGHUPs in %.2f s: %lld reloads ok, %lld refused, %d scrapes, none torn\n",
              seconds_since(start), static_cast<long long>(ok), static_cast<long long>(failed), scrapes.load());
  expect_probing({"b", "c"}, Seconds(1), 6);
}

}  // namespace
}  // namespace hubprobe::it::agent
