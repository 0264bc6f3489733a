// SPDX-License-Identifier: Apache-2.0
// The README's first command, `./scripts/demo.sh`, run headless on its default topology (the eight hub
// regions, config/topology/eight-regions.toml: 10 hubs, 32 emulated links, agents, Prometheus):
//
//   DEMO_HEADLESS=1 DEMO_SECONDS=45 DEMO_SKIP_BUILD=1 HUBPROBE_BUILD_DIR=<this build> scripts/demo.sh
//
// Asserted:
//  * it exits 0 and says "RESULT: ok" and "teardown: clean";
//  * the backend column: dpdk on the first hub with one link, xdp on every second other hub, kernel elsewhere;
//  * the last matrix it printed has every hub as a row and a column, "-" on the diagonal, "." where the
//    topology has no link, and for every linked pair (both ways) an RTT p50 within 20 % + 0.3 ms of
//    the topology's nominal RTT (2 x the link's one-way delay, read from the topology file here, not
//    from the demo); the same for the "link 2" lines (second links between two hubs);
//  * nothing is left behind: no namespace hpdemo-<its PID>-*, no process that inherited a token put in
//    its environment (agents, Prometheus, socat, emulators: every descendant, even re-parented ones),
//    no new veth in this namespace, no temporary directory.
// Takes ~ 65 s (45 s of matrix, ~ 20 s to build and tear down).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "emulated_link.h"
#include "netns.h"
#include "process.h"

#ifndef HUBPROBE_SOURCE_DIR
#define HUBPROBE_SOURCE_DIR "."
#endif
#ifndef HUBPROBE_BINARY_DIR
#define HUBPROBE_BINARY_DIR "."
#endif

namespace hubprobe::it {
namespace {

constexpr int kDemoSeconds = 45;

std::optional<std::string> tool_missing(const std::string& name) {
  const CommandResult r = run_command({"sh", "-c", "command -v " + name}, Seconds(5));
  if (!r.ok()) return name + " not found in PATH (scripts/setup.sh installs it)";
  return std::nullopt;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> w;
  std::string x;
  while (in >> x) w.push_back(x);
  return w;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

/// "13.35ms" / "250us" / "1s" / "2" (ms) in ms; NaN when it does not parse.
double duration_ms(const std::string& s) {
  size_t used = 0;
  double v = NAN;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    return NAN;
  }
  const std::string unit = s.substr(used);
  if (unit.empty() || unit == "ms") return v;
  if (unit == "us") return v / 1000;
  if (unit == "ns") return v / 1e6;
  if (unit == "s") return v * 1000;
  return NAN;
}

/// What the test needs of a topology file: hubs in order, and the nominal RTT (ms) of the nth link
/// between two hubs, by (a, b, nth) both ways. An independent reading of the format of docs/testbed.md.
struct Topology {
  std::vector<std::string> hubs;
  std::map<std::tuple<std::string, std::string, int>, double> rtt_ms;
  std::string error;
};

Topology read_topology(const std::string& path) {
  Topology t;
  std::ifstream in(path);
  if (!in) {
    t.error = "cannot read " + path;
    return t;
  }
  std::string line, section;
  std::map<std::string, std::string> kv;
  std::map<std::pair<std::string, std::string>, int> count;
  auto flush = [&] {
    if (section == "hub" && kv.count("name")) t.hubs.push_back(kv["name"]);
    if (section == "link" && kv.count("a") && kv.count("b")) {
      const std::string& a = kv["a"];
      const std::string& b = kv["b"];
      const int nth = ++count[{std::min(a, b), std::max(a, b)}];
      const double rtt = 2 * duration_ms(kv.count("delay") ? kv["delay"] : "0");
      t.rtt_ms[{a, b, nth}] = rtt;
      t.rtt_ms[{b, a, nth}] = rtt;
    }
    kv.clear();
  };
  while (std::getline(in, line)) {
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    const auto w = words(line);
    if (w.empty()) continue;
    if (w[0] == "[[hub]]" || w[0] == "[[link]]") {
      flush();
      section = w[0].substr(2, w[0].size() - 4);
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto trim = [](std::string s) {
      const size_t b = s.find_first_not_of(" \t\"");
      const size_t e = s.find_last_not_of(" \t\"");
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    kv[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  flush();
  return t;
}

/// Every process whose environment holds `token` (the demo's descendants inherit it).
std::vector<std::string> processes_with(const std::string& token) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (pid == std::to_string(getpid())) continue;
    std::ifstream env(entry.path() / "environ", std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (data.find(token) == std::string::npos) continue;
    std::ifstream cmd(entry.path() / "cmdline", std::ios::binary);
    std::string argv((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
    for (char& c : argv)
      if (c == '\0') c = ' ';
    found.push_back(pid + " " + argv);
  }
  return found;
}

std::string host_veths() {
  const CommandResult r = run_command({"ip", "-o", "link", "show", "type", "veth"}, Seconds(5));
  return r.out;
}

TEST(DemoTest, HeadlessEightRegionsMatrixMatchesTheTopologyAndLeavesNothing) {
  HUBPROBE_REQUIRE_NETNS();
  for (const char* tool : {"prometheus", "curl", "jq", "ethtool", "ss"}) HUBPROBE_REQUIRE(tool_missing(tool));
  const std::string demo = std::string(HUBPROBE_SOURCE_DIR) + "/scripts/demo.sh";
  const std::string topology_file = std::string(HUBPROBE_SOURCE_DIR) + "/config/topology/eight-regions.toml";
  ASSERT_EQ(access(linkemu_binary().c_str(), X_OK), 0) << linkemu_binary() << " is missing";
  const Topology topo = read_topology(topology_file);
  ASSERT_TRUE(topo.error.empty()) << topo.error;
  ASSERT_GE(topo.hubs.size(), 8u);

  TempDir dir;
  const std::string token =
      "hubprobe-demo-test-" + std::to_string(getpid()) + "-" + std::to_string(std::random_device{}() % 1000000000);
  const std::string veths_before = host_veths();
  Process proc(
      {"env", "DEMO_HEADLESS=1", "DEMO_SECONDS=" + std::to_string(kDemoSeconds), "DEMO_SKIP_BUILD=1",
       "HUBPROBE_BUILD_DIR=" + std::string(HUBPROBE_BINARY_DIR), "HUBPROBE_DEMO_TEST_TOKEN=" + token, "bash", demo},
      "", dir.path(), "demo");
  const pid_t demo_pid = proc.pid();  // env execs bash: the demo's own PID, which names its namespaces
  const bool exited = proc.wait_for_exit(Seconds(kDemoSeconds + 150));
  if (!exited) proc.stop(Seconds(20));  // SIGTERM: the demo tears down before it exits
  const std::string out = proc.stdout_text();
  const double took = proc.seconds();
  std::printf("[ measured ] demo ran %.1f s (DEMO_SECONDS=%d)\n", took, kDemoSeconds);
  RecordProperty("demo_seconds", std::to_string(took));
  ASSERT_TRUE(exited) << "the demo did not finish\n" << proc.describe();
  EXPECT_TRUE(proc.exit_info().exited() && proc.exit_info().exit_code() == 0) << proc.describe();
  EXPECT_NE(out.find("RESULT: ok"), std::string::npos) << proc.describe();
  EXPECT_NE(out.find("teardown: clean"), std::string::npos) << proc.describe();

  // ---- the last matrix ------------------------------------------------------------------------------
  const std::vector<std::string> lines = lines_of(out);
  size_t header = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("from\\to", 0) == 0 && words(lines[i]).size() > 1) header = i;
  }
  ASSERT_LT(header, lines.size()) << "no matrix in the output\n" << out;
  std::vector<std::string> cols = words(lines[header]);
  cols.erase(cols.begin());
  ASSERT_FALSE(cols.empty());
  EXPECT_EQ(cols.back(), "backend") << lines[header];
  cols.pop_back();
  EXPECT_EQ(cols, topo.hubs) << lines[header];
  std::map<std::pair<std::string, std::string>, std::string> cell;
  std::map<std::string, std::string> backend;
  size_t i = header + 1;
  for (; i < lines.size() && i <= header + cols.size(); ++i) {
    const auto w = words(lines[i]);
    ASSERT_EQ(w.size(), cols.size() + 2) << "matrix row: " << lines[i];
    for (size_t j = 0; j < cols.size(); ++j) cell[{w[0], cols[j]}] = w[j + 1];
    backend[w[0]] = w.back();
  }
  // Every second hub runs the xdp backend (DEMO_XDP=1, the default), the others kernel, except the first
  // hub with a single link, which runs dpdk (DEMO_DPDK=1, the default); they probe each other over the one
  // wire protocol, which the RTT checks below then cover.
  std::map<std::string, int> links;
  for (const auto& [key, rtt] : topo.rtt_ms) ++links[std::get<0>(key)];
  std::string dpdk_hub;
  for (const std::string& hub : topo.hubs) {
    if (links[hub] == 1 && dpdk_hub.empty()) dpdk_hub = hub;
  }
  ASSERT_FALSE(dpdk_hub.empty()) << "the topology has no hub with a single link";
  for (size_t h = 0; h < topo.hubs.size(); ++h) {
    const std::string& hub = topo.hubs[h];
    EXPECT_EQ(backend[hub], hub == dpdk_hub ? "dpdk" : h % 2 == 0 ? "xdp" : "kernel") << hub;
  }
  // "link 2   wh -> sg   16.4 ms   (link 1:  13.0 ms)"
  std::map<std::tuple<std::string, std::string, int>, std::string> extra;
  for (; i < lines.size() && lines[i].rfind("link ", 0) == 0; ++i) {
    const auto w = words(lines[i]);
    ASSERT_GE(w.size(), 6u) << lines[i];
    extra[{w[2], w[4], std::stoi(w[1])}] = w[5];
  }
  std::string block;
  for (size_t k = header; k < i; ++k) block += lines[k] + "\n";

  int checked = 0;
  double sum_diff = 0, max_diff = 0;
  std::string max_at;
  for (const std::string& a : topo.hubs) {
    for (const std::string& b : topo.hubs) {
      const std::string got = cell[{a, b}];
      if (a == b) {
        EXPECT_EQ(got, "-") << a << "\n" << block;
        continue;
      }
      const auto nominal = topo.rtt_ms.find({a, b, 1});
      if (nominal == topo.rtt_ms.end()) {
        EXPECT_EQ(got, ".") << a << "->" << b << " has no link\n" << block;
        continue;
      }
      const double v = duration_ms(got);
      EXPECT_NEAR(v, nominal->second, 0.2 * nominal->second + 0.3)
          << a << "->" << b << ": matrix " << got << " ms, topology " << nominal->second << " ms\n"
          << block;
      const double diff = v - nominal->second;
      sum_diff += diff;
      if (std::fabs(diff) > std::fabs(max_diff)) {
        max_diff = diff;
        max_at = a + "->" + b;
      }
      ++checked;
    }
  }
  for (const auto& [key, rtt] : topo.rtt_ms) {
    const auto& [a, b, nth] = key;
    if (nth == 1) continue;
    const auto it = extra.find(key);
    ASSERT_NE(it, extra.end()) << "no 'link " << nth << "' line for " << a << "->" << b << "\n" << block;
    EXPECT_NEAR(duration_ms(it->second), rtt, 0.2 * rtt + 0.3)
        << "link " << nth << " " << a << "->" << b << ": " << it->second << " ms, topology " << rtt << " ms\n"
        << block;
    sum_diff += duration_ms(it->second) - rtt;
    ++checked;
  }
  std::printf("[ measured ] %d RTTs checked; matrix - nominal: mean %+.3f ms, largest %+.1f ms (%s)\n", checked,
              sum_diff / std::max(1, checked), max_diff, max_at.c_str());
  EXPECT_EQ(static_cast<size_t>(checked), topo.rtt_ms.size()) << block;

  // ---- path preferences read back from etcd, and one that moves ------------------------------------
  size_t prefs = lines.size();
  for (size_t k = 0; k < lines.size(); ++k) {
    if (lines[k].rfind("from \\ to", 0) == 0) {
      prefs = k;
      break;
    }
  }
  ASSERT_LT(prefs, lines.size()) << "no `hubprobe prefs` table in the output\n" << out;
  std::set<std::string> rows;
  for (size_t k = prefs + 1; k < lines.size() && !lines[k].empty(); ++k) rows.insert(words(lines[k]).at(0));
  for (const std::string& hub : topo.hubs)
    EXPECT_EQ(rows.count(hub), 1u) << "no preferences of hub " << hub << "\n" << out;
  // The demo slows down the preferred one of two links and the preference must move to the other one.
  const size_t moved = out.find("moved from ");
  ASSERT_NE(moved, std::string::npos) << "the demo's preference did not move\n" << out;
  std::cout << "[ measured ] "
            << out.substr(out.rfind('\n', moved) + 1, out.find('\n', moved) - out.rfind('\n', moved) - 1) << "\n";

  // ---- nothing left behind --------------------------------------------------------------------------
  const std::string prefix = "hpdemo-" + std::to_string(demo_pid) + "-";
  const CommandResult netns = run_command({"ip", "netns", "list"}, Seconds(5));
  for (const std::string& l : lines_of(netns.out)) {
    EXPECT_NE(l.rfind(prefix, 0), 0u) << "namespace left behind: " << l;
  }
  const std::vector<std::string> left = processes_with(token);
  EXPECT_TRUE(left.empty()) << "processes of the demo left behind:\n"
                            << [&] {
                                 std::string s;
                                 for (const auto& p : left) s += "  " + p + "\n";
                                 return s;
                               }();
  EXPECT_EQ(host_veths(), veths_before) << "veths in this namespace changed";
  int tmp_dirs = 0;
  for (const std::string& l : lines) {  // "tearing down: stopping ... and /tmp/hpdemo.XXXXXX"
    if (l.rfind("tearing down:", 0) != 0) continue;
    const std::string tmp = words(l).back();
    EXPECT_NE(tmp.find("hpdemo."), std::string::npos) << l;
    EXPECT_FALSE(std::filesystem::exists(tmp)) << "temporary directory left behind: " << tmp;
    ++tmp_dirs;
  }
  EXPECT_EQ(tmp_dirs, 1) << out;
}

}  // namespace
}  // namespace hubprobe::it
