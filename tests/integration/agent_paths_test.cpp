// SPDX-License-Identifier: Apache-2.0
// Paths, preferences and the scheduler sinks end to end (issue 5): one agent (hub gz) probes one peer
// (hub sh) over two paths, and pushes its preferences to a real HTTP receiver and a real etcd.
//
//   a (agent gz)                     e1, e2: hubprobe-linkemu            b (reflector, hub sh)
//   hpl1 198.18.1.1/24 --veth-- l1a [e1] l1b --veth-- hpl1 198.18.1.2/24
//   hpl2 198.18.2.1/24 --veth-- l2a [e2] l2b --veth-- hpl2 198.18.2.2/24   lo 198.18.3.2/32 (the peer)
//   hpc0 198.18.9.1/24 --veth-- hpc1 198.18.9.254/24  c (core: etcd, the HTTP receiver in this process)
//
// Path "a" leaves from 198.18.1.1 (main table: 198.18.3.2 via 198.18.1.2); path "b" carries fwmark 2,
// which policy routing sends through table 102 (198.18.3.2 via 198.18.2.2). The emulators give path a
// 2 ms and path b 3 ms RTT, so a is preferred; then:
//   1. a's delay grows to 4 ms RTT -> the preference moves to b no sooner than switch_after and no later
//      than half the SLA window + switch_after (+ slack);
//   2. b loses everything -> b is down after down_after probes and the preference is back on a at once;
//   3. the HTTP receiver is down for a minute -> probing goes on, failures are counted, and when it is back
//      it gets the newest document (no backlog);
//   4. SIGKILL -> the etcd key expires after the lease TTL; a restart continues the generation.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "agent_support.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

constexpr uint16_t kMetricsPort = 9862;
constexpr uint16_t kReceiverPort = 8080;
constexpr const char* kCore = "198.18.9.254";
constexpr const char* kAgentId = "gz-edge-01";

std::string linkemu_binary() { return std::string(HUBPROBE_BINARY_DIR) + "/tests/linkemu/hubprobe-linkemu"; }
std::string hubprobe_cli() { return std::string(HUBPROBE_BINARY_DIR) + "/agent/hubprobe"; }

// A scheduler's HTTP endpoint: records every POSTed document. Listens in the core namespace; the socket
// is made on the test's main thread, the accept loop runs on its own.
class Receiver {
 public:
  struct Delivery {
    json document;
    uint64_t generation_header = 0;
    std::string authorization;
    double at = 0;  // seconds since the receiver was made
  };

  explicit Receiver(const Namespace& ns) : ns_(ns), created_(Clock::now()) { up(); }
  ~Receiver() { down(); }

  void up() {
    const int fd = socket_in_netns(ns_, AF_INET, SOCK_STREAM);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(kReceiverPort);
    inet_pton(AF_INET, kCore, &address.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(fd, 16) != 0) {
      const std::string why = strerror(errno);
      close(fd);
      throw HarnessError("receiver: bind/listen " + std::string(kCore) + ": " + why);
    }
    stop_ = false;
    thread_ = std::thread([this, fd] { serve(fd); });
  }

  // Closes the listening socket: connections are refused until up() again.
  void down() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  std::vector<Delivery> deliveries() const {
    std::lock_guard lock(mutex_);
    return deliveries_;
  }
  std::optional<Delivery> last() const {
    std::lock_guard lock(mutex_);
    if (deliveries_.empty()) return std::nullopt;
    return deliveries_.back();
  }
  double now() const { return seconds_since(created_); }

 private:
  void serve(int listener) {
    while (!stop_) {
      pollfd p{listener, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      handle(conn);
      close(conn);
    }
    close(listener);
  }

  void handle(int conn) {
    std::string request;
    size_t body_at = std::string::npos;
    size_t length = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(3);
    while (Clock::now() < deadline) {
      pollfd p{conn, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buffer[8192];
      const ssize_t got = recv(conn, buffer, sizeof buffer, 0);
      if (got <= 0) break;
      request.append(buffer, static_cast<size_t>(got));
      if (body_at == std::string::npos) {
        const size_t end = request.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        body_at = end + 4;
        length = static_cast<size_t>(std::atol(header(request.substr(0, end), "content-length").c_str()));
      }
      if (request.size() >= body_at + length) break;
    }
    if (body_at == std::string::npos || request.size() < body_at + length) return;
    const std::string head = request.substr(0, body_at);
    Delivery delivery;
    delivery.document = json::parse(request.substr(body_at, length), nullptr, false);
    delivery.generation_header = std::strtoull(header(head, "x-hubprobe-generation").c_str(), nullptr, 10);
    delivery.authorization = header(head, "authorization");
    delivery.at = now();
    {
      std::lock_guard lock(mutex_);
      deliveries_.push_back(std::move(delivery));
    }
    const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!send(conn, reply.data(), reply.size(), MSG_NOSIGNAL);
  }

  static std::string header(const std::string& head, const std::string& lower_name) {
    std::istringstream lines(head);
    std::string line;
    while (std::getline(lines, line)) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name != lower_name) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      return value;
    }
    return "";
  }

  const Namespace& ns_;
  Clock::time_point created_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<Delivery> deliveries_;
};

// The destination "sh" of a document: {preferred path, state of path a, state of path b}.
struct View {
  std::string preferred;
  std::map<std::string, std::string> state;
  uint64_t generation = 0;
  std::string state_of(const std::string& path) const {
    const auto it = state.find(path);
    return it == state.end() ? "" : it->second;
  }
  bool stale = false;
};
View view_of(const json& document) {
  View v;
  if (!document.is_object()) return v;
  v.generation = document.value("generation", uint64_t{0});
  v.stale = document.value("stale", false);
  for (const json& destination : document.value("destinations", json::array())) {
    if (destination.value("hub", "") != "sh") continue;
    if (destination.contains("preferred") && destination["preferred"].is_object()) {
      v.preferred = destination["preferred"].value("path", "");
    }
    for (const json& path : destination.value("paths", json::array())) {
      v.state[path.value("path", "")] = path.value("state", "");
    }
  }
  return v;
}

class AgentPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE(etcd_missing_reason());
    ASSERT_EQ(access(linkemu_binary().c_str(), X_OK), 0) << linkemu_binary() << " is missing";

    a_ = std::make_unique<Namespace>("a");
    b_ = std::make_unique<Namespace>("b");
    c_ = std::make_unique<Namespace>("c");
    e1_ = std::make_unique<Namespace>("e");
    e2_ = std::make_unique<Namespace>("e");
    const auto link = [](const Namespace& x, const std::string& xif, const Namespace& y, const std::string& yif) {
      run_checked(
          {"ip", "link", "add", xif, "netns", x.name(), "type", "veth", "peer", "name", yif, "netns", y.name()});
    };
    link(*a_, "hpl1", *e1_, "l1a");
    link(*e1_, "l1b", *b_, "hpl1");
    link(*a_, "hpl2", *e2_, "l2a");
    link(*e2_, "l2b", *b_, "hpl2");
    link(*a_, "hpc0", *c_, "hpc1");
    a_->ip({"addr", "add", "198.18.1.1/24", "dev", "hpl1"});
    a_->ip({"addr", "add", "198.18.2.1/24", "dev", "hpl2"});
    a_->ip({"addr", "add", "198.18.9.1/24", "dev", "hpc0"});
    b_->ip({"addr", "add", "198.18.1.2/24", "dev", "hpl1"});
    b_->ip({"addr", "add", "198.18.2.2/24", "dev", "hpl2"});
    b_->ip({"addr", "add", "198.18.3.2/32", "dev", "lo"});
    c_->ip({"addr", "add", "198.18.9.254/24", "dev", "hpc1"});
    const std::vector<std::pair<const Namespace*, std::string>> ifs = {
        {a_.get(), "hpl1"}, {a_.get(), "hpl2"}, {a_.get(), "hpc0"}, {b_.get(), "hpl1"}, {b_.get(), "hpl2"},
        {c_.get(), "hpc1"}, {e1_.get(), "l1a"}, {e1_.get(), "l1b"}, {e2_.get(), "l2a"}, {e2_.get(), "l2b"}};
    for (const auto& [ns, dev] : ifs) {
      // Wire-size frames with complete checksums for the emulator (tests/linkemu/README.md).
      ns->exec_checked({"ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off"});
      ns->ip({"link", "set", "dev", dev, "up"});
    }
    a_->ip({"route", "add", "198.18.3.2/32", "via", "198.18.1.2"});
    a_->ip({"rule", "add", "fwmark", "2", "table", "102"});
    a_->ip({"route", "add", "198.18.3.2/32", "via", "198.18.2.2", "table", "102"});

    emu1_ = start_emulator(*e1_, "l1a", "l1b", "emu1");
    emu2_ = start_emulator(*e2_, "l2a", "l2b", "emu2");
    set_link(1, "delay=1ms");
    set_link(2, "delay=1.5ms");
    reflector_ = std::make_unique<Reflector>(*b_, std::vector<std::string>{"--listen", "198.18.3.2:862", "--stateful"},
                                             dir_.path(), "reflector");

    etcd_ = start_etcd(*c_, kCore, dir_.path());
    receiver_ = std::make_unique<Receiver>(*c_);
    state_dir_ = dir_.path() / "state";
    config_ = dir_.write_file("agent.toml", config_text());
  }

  void TearDown() override {
    agent_.reset();
    receiver_.reset();
    reflector_.reset();
    etcd_.reset();
    emu1_.reset();
    emu2_.reset();
  }

  std::string config_text() const {
    return std::string(R"(
[agent]
id = "gz-edge-01"
hub = "gz"

[reflector]
enabled = false

[probe]
interval = "50ms"
timeout = "500ms"
window = "10s"
down_after = 3

[[path]]
name = "a"
source = "198.18.1.1"

[[path]]
name = "b"
fwmark = 2

[sla.default]
window = "4s"
min_samples = 5
hold_down = "6s"
switch_margin = "250us"
switch_margin_ratio = 0.02
switch_after = "2s"

[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"

[scheduler]
state_dir = ")") +
           state_dir_.string() + R"("
refresh = "5s"

[[scheduler.http]]
url = "http://198.18.9.254:8080/v1/preferences"
timeout = "1s"
connect_timeout = "500ms"
backoff_initial = "200ms"
backoff_max = "2s"

[[scheduler.etcd]]
endpoints = ["http://198.18.9.254:2379"]
prefix = "/hubprobe"
ttl = "3s"
timeout = "1s"
backoff_initial = "200ms"
backoff_max = "2s"

[metrics]
listen = "198.18.9.1:9862"
)";
  }

  std::unique_ptr<Process> start_emulator(const Namespace& ns, const std::string& a, const std::string& b,
                                          const std::string& label) {
    const std::string sock = (dir_.path() / (label + ".sock")).string();
    auto emu =
        std::make_unique<Process>(std::vector<std::string>{linkemu_binary(), "--a", a, "--b", b, "--control", sock},
                                  ns.name(), dir_.path(), label);
    EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(sock) || !emu->running(); }, Seconds(5)));
    EXPECT_TRUE(emu->running()) << emu->describe();
    return emu;
  }

  void set_link(int link, const std::string& settings) {
    const std::string sock = (dir_.path() / ("emu" + std::to_string(link) + ".sock")).string();
    const CommandResult r = run_command({linkemu_binary(), "--ctl", sock, "set both " + settings}, Seconds(5));
    ASSERT_TRUE(r.ok()) << r.describe();
    ASSERT_EQ(r.out, "ok\n") << r.describe();
  }

  void start_agent() {
    agent_ = std::make_unique<AgentProcess>(*a_, config_, "198.18.9.1", kMetricsPort, dir_.path(),
                                            "hubprobed-" + std::to_string(++starts_));
  }

  // The newest document the receiver got, when `pred` holds for it, within `timeout`.
  std::optional<Receiver::Delivery> wait_delivery(const std::function<bool(const View&)>& pred, Seconds timeout) {
    std::optional<Receiver::Delivery> found;
    wait_until(
        [&] {
          auto last = receiver_->last();
          if (last && pred(view_of(last->document))) found = last;
          return found.has_value();
        },
        timeout, std::chrono::milliseconds(50));
    return found;
  }

  // `hubprobe prefs --etcd` from the core namespace.
  CommandResult prefs_from_etcd() const {
    return c_->exec({hubprobe_cli(), "prefs", "--etcd", "http://198.18.9.254:2379", "--prefix", "/hubprobe"},
                    Seconds(10));
  }

  // The document stored in etcd, read with etcdctl (Debian etcd-client); null json when absent.
  json etcd_document() const {
    const CommandResult r = c_->exec({"etcdctl", "--endpoints=http://198.18.9.254:2379", "get", "--print-value-only",
                                      std::string("/hubprobe/preferences/") + kAgentId},
                                     Seconds(5));
    if (!r.ok() || r.out.empty()) return json(nullptr);
    return json::parse(r.out, nullptr, false);
  }

  TempDir dir_;
  std::unique_ptr<Namespace> a_, b_, c_, e1_, e2_;
  std::unique_ptr<Process> emu1_, emu2_, etcd_;
  std::unique_ptr<Reflector> reflector_;
  std::unique_ptr<Receiver> receiver_;
  std::unique_ptr<AgentProcess> agent_;
  std::filesystem::path state_dir_;
  std::filesystem::path config_;
  int starts_ = 0;
};

TEST_F(AgentPathsTest, PreferenceFollowsTheBetterPathAndReachesTheScheduler) {
  start_agent();

  // Both paths measured, a (2 ms) preferred over b (3 ms).
  auto first = wait_delivery(
      [](const View& v) { return v.preferred == "a" && v.state_of("a") == "ok" && v.state_of("b") == "ok"; },
      Seconds(20));
  ASSERT_TRUE(first) << "no document with a preferred and both paths ok; last: "
                     << (receiver_->last() ? receiver_->last()->document.dump() : "none") << "\n"
                     << agent_->describe();
  EXPECT_EQ(first->generation_header, view_of(first->document).generation);
  EXPECT_EQ(first->document.value("schema", ""), "hubprobe.preferences/v1");
  // Per-path statistics: each path is its own session with its own label.
  const auto samples = agent_->metrics();
  for (const char* path : {"a", "b"}) {
    const double p50 = only_value(samples, "hubprobe_rtt_window_seconds",
                                  {{"peer", "sh-edge-01"}, {"path", path}, {"quantile", "0.5"}});
    EXPECT_NEAR(p50, std::string(path) == "a" ? 0.002 : 0.003, 0.0008) << path;
  }
  EXPECT_EQ(only_value(samples, "hubprobe_path_preferred", {{"path", "a"}}), 1);
  EXPECT_EQ(only_value(samples, "hubprobe_path_rank", {{"path", "b"}}), 2);
  // And etcd has the same preference, readable with `hubprobe prefs`.
  ASSERT_TRUE(wait_until([&] { return view_of(etcd_document()).preferred == "a"; }, Seconds(10)))
      << etcd_document().dump();
  const CommandResult table = prefs_from_etcd();
  EXPECT_TRUE(table.ok()) << table.describe();
  EXPECT_NE(table.out.find("gz"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("sh"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("a 2."), std::string::npos) << table.out;
  // The same table from what the HTTP receiver got, saved as a file.
  const auto saved = dir_.write_file("received.json", first->document.dump());
  const CommandResult from_file = run_command({hubprobe_cli(), "prefs", "--file", saved.string()}, Seconds(10));
  EXPECT_TRUE(from_file.ok()) << from_file.describe();
  EXPECT_NE(from_file.out.find("a 2."), std::string::npos) << from_file.out;

  // 1. Path a: 2 ms -> 4 ms RTT. The preference moves to b after switch_after (2 s), and within half the
  //    SLA window (the median needs it) + switch_after + slack for the 1 s evaluation and delivery.
  set_link(1, "delay=2ms");
  const double step_at = receiver_->now();
  auto moved = wait_delivery([](const View& v) { return v.preferred == "b"; }, Seconds(15));
  ASSERT_TRUE(moved) << "preference did not move to b; last: " << receiver_->last()->document.dump();
  const double took = moved->at - step_at;
  EXPECT_GE(took, 2.0) << "switched before switch_after";
  EXPECT_LE(took, 2.0 + 2.0 + 2.5) << "switched later than window/2 + switch_after + slack";
  std::cout << "[ measured ] preference moved a -> b " << took << " s after a +2 ms step\n";

  // 2. Path b loses everything: down after down_after probes (3 x 50 ms after the 500 ms timeout), and the
  //    preference goes back to a at once (a was never degraded: no hold-down).
  set_link(2, "loss=100%");
  const double loss_at = receiver_->now();
  auto back = wait_delivery([](const View& v) { return v.preferred == "a" && v.state_of("b") == "down"; }, Seconds(10));
  ASSERT_TRUE(back) << "b not down / a not preferred; last: " << receiver_->last()->document.dump();
  EXPECT_LE(back->at - loss_at, 0.5 + 3 * 0.05 + 2.0);
  std::cout << "[ measured ] b down and a preferred " << back->at - loss_at << " s after 100 % loss on b\n";
  set_link(2, "loss=0");

  // 3. The receiver is down for a minute: the agent keeps probing, counts failures, and then delivers its
  //    newest document only.
  receiver_->down();
  const size_t before_outage = receiver_->deliveries().size();
  const auto sent_before = only_value(agent_->metrics(), "hubprobe_probes_sent_total", {{"path", "a"}});
  sleep_for(Seconds(60));
  const auto during = agent_->metrics();
  EXPECT_GE(only_value(during, "hubprobe_probes_sent_total", {{"path", "a"}}) - sent_before, 0.9 * 60 / 0.05)
      << "probing slowed down while the scheduler was unreachable";
  EXPECT_EQ(only_value(during, "hubprobe_scheduler_up", {{"sink", "http"}}), 0);
  EXPECT_GE(only_value(during, "hubprobe_scheduler_pushes_total", {{"sink", "http"}, {"result", "failure"}}), 5);
  EXPECT_EQ(only_value(during, "hubprobe_scheduler_up", {{"sink", "etcd"}}), 1);
  const uint64_t generation_during = agent_->status()["preferences"].value("generation", uint64_t{0});
  ASSERT_GT(generation_during, view_of(back->document).generation) << "no new document during the outage";
  receiver_->up();
  const double up_at = receiver_->now();
  ASSERT_TRUE(wait_until([&] { return receiver_->deliveries().size() > before_outage; }, Seconds(5)))
      << "nothing delivered after the receiver came back";
  const auto resumed = receiver_->deliveries();
  EXPECT_LE(resumed[before_outage].at - up_at, 2.0 + 1.0) << "later than backoff_max + a request";
  EXPECT_GE(view_of(resumed[before_outage].document).generation, generation_during)
      << "an old document was delivered first (backlog)";
  sleep_for(Seconds(1));
  EXPECT_LE(receiver_->deliveries().size(), before_outage + 2) << "a backlog was replayed";
  // Recovered path b: ok again, but eligible only after the hold-down (it was down).
  const json status = agent_->status();
  std::cout << "[ measured ] first document after the outage: " << resumed[before_outage].at - up_at << " s\n";

  // 4. SIGKILL: the etcd key stays until the lease TTL (3 s) runs out, then disappears by itself.
  const uint64_t generation_before_kill = agent_->status()["preferences"].value("generation", uint64_t{0});
  ASSERT_FALSE(etcd_document().is_null());
  agent_->process().signal(SIGKILL);
  const auto killed = Clock::now();
  ASSERT_TRUE(agent_->process().wait_for_exit(Seconds(5)));
  ASSERT_TRUE(wait_until([&] { return etcd_document().is_null(); }, Seconds(10)))
      << "the dead agent's preferences did not expire";
  const double expired = seconds_since(killed);
  EXPECT_GE(expired, 0.9) << "expired long before the TTL";
  EXPECT_LE(expired, 3.0 + 1.5 + 1.0) << "expired later than TTL + keepalive period + slack";
  std::cout << "[ measured ] etcd key expired " << expired << " s after SIGKILL (TTL 3 s)\n";

  // Restart: the generation continues from the state directory.
  agent_.reset();
  start_agent();
  // A document newer than any before the kill: the receiver's last delivery may still be the dead agent's
  // (a document made between generation_during and the kill), which must not count as the restart's.
  auto restarted = wait_delivery([&](const View& v) { return v.generation > generation_before_kill; }, Seconds(10));
  ASSERT_TRUE(restarted);
  EXPECT_GT(view_of(receiver_->last()->document).generation, generation_before_kill);
  ASSERT_TRUE(wait_until([&] { return !etcd_document().is_null(); }, Seconds(10)));
  EXPECT_GT(view_of(etcd_document()).generation, generation_before_kill);

  // SIGTERM: the last document goes out marked stale.
  agent_->process().signal(SIGTERM);
  ASSERT_TRUE(agent_->process().wait_for_exit(Seconds(10)));
  ASSERT_TRUE(wait_delivery([](const View& v) { return v.stale; }, Seconds(3))) << "no stale document on SIGTERM";
  EXPECT_TRUE(view_of(etcd_document()).stale);
  (void)status;
}

// What the process holds: resident memory (KiB) and open file descriptors.
std::pair<long, size_t> footprint(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long rss = 0;
  while (status >> key) {
    if (key == "VmRSS:" && status >> rss) break;
    status.ignore(256, '\n');
  }
  size_t fds = 0;
  std::error_code ignored;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ignored);
       it != std::filesystem::directory_iterator(); ++it) {
    ++fds;
  }
  return {rss, fds};
}

// Path a flapping for a minute (all lost for a second, then clean for a second, 30 times): the
// preference leaves a at its first loss and stays on b (a never stays up through its hold-down), no
// session or memory leaks, and once a is clean again it gets the preference back after the hold-down.
TEST_F(AgentPathsTest, APathFlappingForAMinuteFollowsTheDampingAndLeaksNothing) {
  start_agent();
  ASSERT_TRUE(wait_delivery([](const View& v) { return v.preferred == "a" && v.state_of("b") == "ok"; }, Seconds(20)))
      << agent_->describe();
  const double switches_before = only_value(agent_->metrics(), "hubprobe_path_switches_total");
  std::pair<long, size_t> early{0, 0};
  const double flap_at = receiver_->now();
  for (int cycle = 0; cycle < 30; ++cycle) {
    set_link(1, "loss=100%");
    sleep_for(Seconds(1));
    set_link(1, "loss=0");
    sleep_for(Seconds(1));
    if (cycle == 4) early = footprint(agent_->pid());
  }
  const double flap_end = receiver_->now();
  const auto late = footprint(agent_->pid());
  const auto samples = agent_->metrics();
  EXPECT_EQ(only_value(samples, "hubprobe_probe_sessions"), 2) << "sessions came or went";
  const double switches = only_value(samples, "hubprobe_path_switches_total") - switches_before;
  EXPECT_LE(switches, 2) << "the preference flapped with the path";
  EXPECT_GE(switches, 1) << "the preference never left the flapping path";
  // What the scheduler saw during the flap: b preferred from the first loss on, never a again.
  std::string seen;
  bool a_again = false, b_seen = false;
  for (const auto& d : receiver_->deliveries()) {
    if (d.at < flap_at + 3 || d.at > flap_end) continue;
    const std::string preferred = view_of(d.document).preferred;
    seen += " " + preferred;
    b_seen = b_seen || preferred == "b";
    a_again = a_again || (b_seen && preferred == "a");
  }
  EXPECT_TRUE(b_seen) << seen;
  EXPECT_FALSE(a_again) << "a preferred again while it flapped:" << seen;
  EXPECT_LT(late.first - early.first, 2048) << "RSS " << early.first << " -> " << late.first << " KiB";
  EXPECT_EQ(late.second, early.second) << "file descriptors " << early.second << " -> " << late.second;
  // Clean again: back on a after the hold-down (6 s) and switch_after (2 s), with slack.
  const auto back = wait_delivery([](const View& v) { return v.preferred == "a"; }, Seconds(20));
  ASSERT_TRUE(back) << receiver_->last()->document.dump();
  EXPECT_GE(back->at - flap_end, 6.0 - 1.0) << "back on a before its hold-down";
  std::printf(
      "[ measured ] 30 flaps in %.0f s: %.0f switches, RSS %ld -> %ld KiB, fds %zu -> %zu; a preferred again "
      "%.1f s after the last flap\n",
      flap_end - flap_at, switches, early.first, late.first, early.second, late.second, back->at - flap_end);
}

}  // namespace
}  // namespace hubprobe::it::agent
