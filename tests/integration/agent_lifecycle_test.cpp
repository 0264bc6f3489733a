// SPDX-License-Identifier: Apache-2.0
// hubprobed's life cycle as a service manager sees it: sd_notify on a NOTIFY_SOCKET the test owns
// (READY=1 once it serves, RELOADING=1 then READY=1 around a reload, STOPPING=1 and exit 0 on SIGTERM,
// WATCHDOG=1 when asked for), and start-up failures (port in use, unknown interface, broken TOML, a
// missing file) with their exit status and one-line message; --check-config on a good and a bad file.
//
// Topology: the harness testbed (netns.h): the agent in the sender namespace (198.18.0.1), a
// `hubprobe reflect` in the reflector namespace (198.18.0.2) as its peer.
#include <gtest/gtest.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <signal.h>
#include <time.h>
#include <algorithm>

#include <regex>

#include "agent_support.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

class AgentLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE_BINARY();
    bed_ = std::make_unique<Testbed>();
  }

  static AgentFile file(const std::string& metrics = "127.0.0.1:9862") {
    AgentFile f;
    f.id = "gz-edge-01";
    f.hub = "gz";
    f.metrics_listen = metrics;
    f.interval = "100ms";
    f.peers = {{"sg-edge-01", "sg", Testbed::kReflectorV4, {}}};
    return f;
  }

  void start_reflector() {
    refl_ = std::make_unique<Reflector>(
        bed_->reflector(), std::vector<std::string>{"--listen", std::string(Testbed::kReflectorV4) + ":862"},
        dir_.path(), "reflect");
  }

  /// `hubprobed args...` in the sender namespace, to completion.
  CommandResult run_daemon(const std::vector<std::string>& args, Seconds timeout = Seconds(10)) {
    std::vector<std::string> argv = {hubprobed_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return bed_->sender().exec(argv, timeout);
  }

  TempDir dir_;
  std::unique_ptr<Testbed> bed_;
  std::unique_ptr<Reflector> refl_;
};

int64_t monotonic_usec_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1'000;
}

std::string describe_all(const std::vector<NotifySocket::Message>& messages) {
  std::string out;
  for (const auto& m : messages)
    out += "  [" + std::to_string(m.at) + " s, pid " + std::to_string(m.pid) + "] " + m.text + "\n";
  return out;
}

// ---- sd_notify -------------------------------------------------------------------------------------

TEST_F(AgentLifecycleTest, NotifyReadyReloadingStopping) {
  start_reflector();
  NotifySocket notify(dir_.path());
  const auto config = dir_.write_file("hubprobe.toml", file().toml());
  AgentProcess agent(bed_->sender(), config, "127.0.0.1", 9862, dir_.path(), "hubprobed",
                     {"NOTIFY_SOCKET=" + notify.path()}, /*wait_ready=*/false);
  const std::vector<std::string> states = {"READY", "RELOADING", "STOPPING"};
  std::vector<NotifySocket::Message> other;

  // READY=1 after start, from the agent itself, and only once it serves: metrics and reflector are up.
  auto ready = notify.receive_with(states, Seconds(10), &other);
  ASSERT_TRUE(ready) << "no READY=1 within 10 s; other messages:\n" << describe_all(other) << agent.describe();
  EXPECT_EQ(ready->fields().count("READY"), 1u) << ready->text;
  EXPECT_EQ(ready->fields()["READY"], "1") << ready->text;
  EXPECT_EQ(ready->pid, agent.pid()) << "sent by another process: " << ready->text;
  HttpResult health = agent.get("/healthz");
  EXPECT_TRUE(health.ok && health.status == 200) << "READY=1 before /healthz answers: " << health.error;
  EXPECT_TRUE(udp_port_bound(agent.pid(), 862)) << "READY=1 before the reflector listens";

  json status;
  ASSERT_TRUE(wait_until([&] { return peer_state(status = agent.status(), "sg-edge-01") == "up"; }, Seconds(5)))
      << status.dump(2);

  // SIGHUP (a good file): RELOADING=1 with MONOTONIC_USEC, then READY=1.
  other.clear();
  const int64_t before_usec = monotonic_usec_now();
  agent.process().signal(SIGHUP);
  auto reloading = notify.receive_with(states, Seconds(5), &other);
  ASSERT_TRUE(reloading) << "nothing after SIGHUP\n" << describe_all(other) << agent.describe();
  auto f = reloading->fields();
  EXPECT_EQ(f["RELOADING"], "1") << "first state message after SIGHUP: " << reloading->text;
  ASSERT_EQ(f.count("MONOTONIC_USEC"), 1u) << "systemd needs MONOTONIC_USEC with RELOADING=1: " << reloading->text;
  const int64_t usec = std::stoll(f["MONOTONIC_USEC"]);
  EXPECT_GE(usec, before_usec) << reloading->text;
  EXPECT_LE(usec, monotonic_usec_now()) << reloading->text;
  auto ready_again = notify.receive_with(states, Seconds(5), &other);
  ASSERT_TRUE(ready_again) << "no READY=1 after the reload\n" << describe_all(other) << agent.describe();
  EXPECT_EQ(ready_again->fields()["READY"], "1") << ready_again->text;
  EXPECT_EQ(ready_again->pid, agent.pid());
  EXPECT_EQ(agent.status()["config"]["reloads_ok"], 1);

  // A refused reload also ends in READY=1 (the old configuration runs on).
  dir_.write_file("hubprobe.toml", "[agent\n");
  agent.process().signal(SIGHUP);
  reloading = notify.receive_with(states, Seconds(5), &other);
  ASSERT_TRUE(reloading) << describe_all(other) << agent.describe();
  EXPECT_EQ(reloading->fields()["RELOADING"], "1") << reloading->text;
  ready_again = notify.receive_with(states, Seconds(5), &other);
  ASSERT_TRUE(ready_again) << describe_all(other) << agent.describe();
  EXPECT_EQ(ready_again->fields()["READY"], "1") << ready_again->text;
  EXPECT_EQ(agent.status()["config"]["reloads_failed"], 1);

  // SIGTERM: STOPPING=1, then exit 0, promptly.
  const auto term_at = Clock::now();
  agent.process().signal(SIGTERM);
  auto stopping = notify.receive_with(states, Seconds(5), &other);
  ASSERT_TRUE(stopping) << "no STOPPING=1\n" << describe_all(other) << agent.describe();
  EXPECT_EQ(stopping->fields()["STOPPING"], "1") << stopping->text;
  EXPECT_EQ(stopping->pid, agent.pid());
  ASSERT_TRUE(agent.process().wait_for_exit(Seconds(5))) << "still running 5 s after SIGTERM\n" << agent.describe();
  EXPECT_EQ(agent.process().exit_info().exit_code(), 0) << agent.describe();
  EXPECT_LT(seconds_since(term_at), 2.0) << "slow shutdown";
  // Nothing after STOPPING=1 claims readiness.
  while (auto late = notify.receive(Seconds(0.1))) {
    EXPECT_EQ(late->fields().count("READY"), 0u) << "READY=1 after STOPPING=1: " << late->text;
  }
  for (const auto& m : other) {
    EXPECT_EQ(m.fields().count("WATCHDOG"), 0u) << "WATCHDOG=1 without WATCHDOG_USEC: " << m.text;
  }
}

TEST_F(AgentLifecycleTest, WatchdogPingedAtHalfTheInterval) {
  start_reflector();
  NotifySocket notify(dir_.path());
  const auto config = dir_.write_file("hubprobe.toml", file().toml());
  // WATCHDOG_USEC=400000: systemd expects a ping at least every 400 ms; the agent pings every 200 ms.
  AgentProcess agent(bed_->sender(), config, "127.0.0.1", 9862, dir_.path(), "hubprobed",
                     {"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=400000"}, /*wait_ready=*/false);
  auto ready = notify.receive_with({"READY"}, Seconds(10));
  ASSERT_TRUE(ready) << agent.describe();
  std::vector<double> pings;
  const auto start = Clock::now();
  while (seconds_since(start) < 1.5) {
    auto m = notify.receive(Seconds(0.5));
    if (!m) break;
    if (m->fields().count("WATCHDOG")) {
      EXPECT_EQ(m->fields()["WATCHDOG"], "1") << m->text;
      EXPECT_EQ(m->pid, agent.pid());
      pings.push_back(m->at);
    }
  }
  // 1.5 s at a 200 ms period: about 7, and the median gap is the period. The longest gap is the host's
  // scheduling tail (a loaded host delays a ping now and then): reported, not judged.
  EXPECT_GE(pings.size(), 5u);
  EXPECT_LE(pings.size(), 10u);
  std::vector<double> gaps;
  for (size_t i = 1; i < pings.size(); ++i) gaps.push_back(pings[i] - pings[i - 1]);
  ASSERT_FALSE(gaps.empty());
  std::sort(gaps.begin(), gaps.end());
  const double median_gap = gaps[gaps.size() / 2];
  EXPECT_GT(median_gap, 0.15) << "pings faster than half the watchdog interval";
  EXPECT_LT(median_gap, 0.3) << "pings slower than half the watchdog interval";
  RecordProperty("watchdog_gap_max_ms", std::to_string(static_cast<int>(gaps.back() * 1000)));
}

// ---- start-up failures -----------------------------------------------------------------------------

TEST_F(AgentLifecycleTest, ReflectorPortInUse) {
  start_reflector();
  const auto first_config = dir_.write_file("first.toml", file().toml());
  AgentProcess first(bed_->sender(), first_config, "127.0.0.1", 9862, dir_.path(), "first");

  // Same reflector port (862 on the default 0.0.0.0 and ::), another metrics port.
  const auto second = dir_.write_file("second.toml", file("127.0.0.1:9863").toml());
  CommandResult r = run_daemon({"-c", second.string()});
  ASSERT_FALSE(r.timed_out) << "a second agent on the same port must not start\n" << r.describe();
  EXPECT_TRUE(r.exit.exited()) << r.describe();
  EXPECT_NE(r.exit.exit_code(), 0) << r.describe();
  EXPECT_NE(r.exit.exit_code(), 78) << "a port in use is not a configuration error (78 stops restarts)\n"
                                    << r.describe();
  EXPECT_NE(r.err.find("0.0.0.0:862"), std::string::npos) << "the message names the address\n" << r.describe();
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.describe();
  EXPECT_EQ(count_lines(r.err), 1u) << "one line\n" << r.describe();

  // The first agent is unharmed.
  EXPECT_TRUE(first.process().running()) << first.describe();
  json status;
  EXPECT_TRUE(wait_until([&] { return peer_state(status = first.status(), "sg-edge-01") == "up"; }, Seconds(5)))
      << status.dump(2);
}

TEST_F(AgentLifecycleTest, MetricsPortInUse) {
  const auto first_config = dir_.write_file("first.toml", file().toml());
  AgentProcess first(bed_->sender(), first_config, "127.0.0.1", 9862, dir_.path(), "first");

  AgentFile f = file();
  f.reflector = {"port = 863"};
  const auto second = dir_.write_file("second.toml", f.toml());
  CommandResult r = run_daemon({"-c", second.string()});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.exit.exit_code(), 0) << r.describe();
  EXPECT_NE(r.exit.exit_code(), 78) << r.describe();
  EXPECT_NE(r.err.find("127.0.0.1:9862"), std::string::npos) << r.describe();
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.describe();
  EXPECT_EQ(count_lines(r.err), 1u) << "docs/configuration.md: a port in use gives the same one-line message\n"
                                    << r.describe();
  EXPECT_TRUE(first.process().running()) << first.describe();
}

TEST_F(AgentLifecycleTest, UnknownReflectorInterface) {
  AgentFile f = file();
  f.reflector = {"interface = \"hpnosuch0\""};
  const std::string text = f.toml();
  const auto path = dir_.write_file("hubprobe.toml", text);
  const int line = line_of(text, "interface = ");
  CommandResult r = run_daemon({"-c", path.string()});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit.exit_code(), 78) << r.describe();
  // Column of the value: `interface = "` is 12 characters.
  const std::string want = path.string() + ":" + std::to_string(line) + ":13: reflector.interface: ";
  EXPECT_EQ(r.err.rfind(want, 0), 0u) << "expected " << want << "...\n" << r.describe();
  EXPECT_NE(r.err.find("hpnosuch0"), std::string::npos) << r.describe();
  EXPECT_EQ(count_lines(r.err), 1u) << r.describe();
  EXPECT_EQ(r.out, "") << r.describe();

  // --check-config says the same (the interface is checked on this host, in this namespace).
  CommandResult check = run_daemon({"--check-config", "-c", path.string()});
  EXPECT_EQ(check.exit.exit_code(), 78) << check.describe();
  EXPECT_EQ(check.err.rfind(want, 0), 0u) << check.describe();

  // The interface exists in this namespace: the same file with it starts.
  f.reflector = {"interface = \"" + std::string(Testbed::kSenderIf) + "\""};
  const auto good = dir_.write_file("good.toml", f.toml());
  CommandResult ok = run_daemon({"--check-config", "-c", good.string()});
  EXPECT_EQ(ok.exit.exit_code(), 0) << ok.describe();
}

TEST_F(AgentLifecycleTest, BrokenTomlAndMissingFile) {
  const std::string text = "[agent]\nid = \"gz-edge-01\"\nhub = \"gz\"\n\n[probe]\ninterval = \"100ms\n";
  const auto path = dir_.write_file("broken.toml", text);
  for (const bool check_only : {false, true}) {
    std::vector<std::string> args = {"-c", path.string()};
    if (check_only) args.insert(args.begin(), "--check-config");
    CommandResult r = run_daemon(args);
    ASSERT_FALSE(r.timed_out) << r.describe();
    EXPECT_EQ(r.exit.exit_code(), 78) << r.describe();
    EXPECT_EQ(count_lines(r.err), 1u) << r.describe();
    EXPECT_TRUE(std::regex_search(r.err, std::regex("^" + path.string() + ":6:[0-9]+: "))) << r.describe();
  }

  const std::string missing = (dir_.path() / "nonexistent.toml").string();
  CommandResult r = run_daemon({"-c", missing});
  EXPECT_EQ(r.exit.exit_code(), 78) << "an unreadable configuration file is a configuration error\n" << r.describe();
  EXPECT_EQ(count_lines(r.err), 1u) << r.describe();
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.describe();
}

TEST_F(AgentLifecycleTest, CheckConfigOnGoodFile) {
  const auto path = dir_.write_file("hubprobe.toml", file().toml());
  CommandResult r = run_daemon({"--check-config", "-c", path.string()});
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  EXPECT_EQ(r.out, path.string() + ": ok, 1 peer\n") << r.describe();
  EXPECT_EQ(r.err, "") << r.describe();
}

// A scheduler sink that nothing answers (a closed port of the namespace's loopback): the generation is
// kept durably only for documents that go somewhere.
const std::string kNoReceiver = "[[scheduler.http]]\nurl = \"http://127.0.0.1:9/preferences\"\n";

// The generation of the preference document never goes backwards, whatever moment SIGKILL hits (in the
// middle of a durable write too): twelve runs killed at varying points, each one's generations above
// every one seen before.
TEST_F(AgentLifecycleTest, GenerationNeverGoesBackwardsAcrossSigkill) {
  start_reflector();
  AgentFile f = file();
  f.tail = "[scheduler]\nstate_dir = \"" + (dir_.path() / "state").string() + "\"\nrefresh = \"1s\"\n" + kNoReceiver;
  const auto config = dir_.write_file("agent.toml", f.toml());
  double highest = 0;
  int runs_with_a_document = 0;
  for (int run = 0; run < 12; ++run) {
    AgentProcess agent(bed_->sender(), config, "127.0.0.1", 9862, dir_.path(), "hubprobed-" + std::to_string(run));
    double first = 0, last = 0;
    // Kill points spread over the first 1.5 s: before, during and after the first documents.
    const auto until = Clock::now() + std::chrono::milliseconds(150 + 120 * run);
    while (Clock::now() < until) {
      const double g = only_value(agent.metrics(), "hubprobe_preferences_generation");
      if (!std::isnan(g) && g > 0) {
        if (first == 0) first = g;
        EXPECT_GE(g, last) << "run " << run;
        last = g;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    agent.process().signal(SIGKILL);
    ASSERT_TRUE(agent.process().wait_for_exit(Seconds(5)));
    if (first > 0) {
      ++runs_with_a_document;
      EXPECT_GT(first, highest) << "run " << run << " published generation " << first << " after " << highest;
      highest = last;
    }
  }
  EXPECT_GE(runs_with_a_document, 8);
  std::printf("[ measured ] 12 runs killed with SIGKILL: %d published, generation reached %.0f, never back\n",
              runs_with_a_document, highest);
}

// A full state_dir: probing goes on, no document goes out with a generation that was not stored, the
// error is counted; once there is space again the next document carries the next stored generation.
TEST_F(AgentLifecycleTest, FullStateDirPublishesNothingUnstoredAndRecovers) {
  start_reflector();
  const std::filesystem::path state = dir_.path() / "state";
  std::filesystem::create_directories(state);
  ASSERT_TRUE(run_command({"mount", "-t", "tmpfs", "-o", "size=64k", "hpstate", state.string()}, Seconds(5)).ok());
  struct Unmount {
    std::string path;
    ~Unmount() { run_command({"umount", path}, Seconds(5)); }
  } unmount{state.string()};
  // Fill it: only a few octets are left, not enough for a temporary file's block.
  (void)run_command({"dd", "if=/dev/zero", "of=" + (state / "filler").string(), "bs=4k", "count=64"}, Seconds(5));
  AgentFile f = file();
  f.tail = "[scheduler]\nstate_dir = \"" + state.string() + "\"\nrefresh = \"1s\"\n" + kNoReceiver;
  const auto config = dir_.write_file("agent.toml", f.toml());
  AgentProcess agent(bed_->sender(), config, "127.0.0.1", 9862, dir_.path(), "hubprobed");
  ASSERT_TRUE(wait_until(
      [&] { return only_value(agent.metrics(), "hubprobe_preferences_generation_errors_total") >= 2; }, Seconds(5)))
      << agent.describe();
  auto samples = agent.metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_preferences_generation"), 0) << "a document went out unstored";
  const json status = agent.status();
  EXPECT_GT(peer_count(status, "sg-edge-01", "received"), 5) << "probing stopped\n" << status.dump(2);
  std::filesystem::remove(state / "filler");
  ASSERT_TRUE(
      wait_until([&] { return only_value(agent.metrics(), "hubprobe_preferences_generation") >= 1; }, Seconds(5)))
      << agent.describe();
  EXPECT_EQ(only_value(agent.metrics(), "hubprobe_preferences_generation"), 1)
      << "the first stored generation is the first one published";
  std::ifstream stored(state / "generation");
  uint64_t on_disk = 0;
  stored >> on_disk;
  EXPECT_GE(on_disk, 1U);
  EXPECT_NE((agent.process().stdout_text() + agent.process().stderr_text()).find("generation could not be stored"),
            std::string::npos)
      << agent.describe();
}

}  // namespace
}  // namespace hubprobe::it::agent
