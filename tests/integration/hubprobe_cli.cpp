// SPDX-License-Identifier: Apache-2.0
#include "hubprobe_cli.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#ifndef HUBPROBE_BINARY_DIR
#define HUBPROBE_BINARY_DIR "."
#endif

namespace hubprobe::it {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

const json* lookup(const json& j, const std::string& path) {
  const json* cur = &j;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(key)) return nullptr;
    cur = &(*cur)[key];
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

bool is_count(const json& j) { return j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0); }

ino_t netns_inode_of(pid_t pid) {
  struct stat st {};
  if (stat(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

}  // namespace

std::string hubprobe_binary() {
  if (const char* dir = getenv("HUBPROBE_BIN_DIR"); dir != nullptr && *dir != '\0') {
    std::filesystem::path direct = std::filesystem::path(dir) / "hubprobe";
    if (std::filesystem::exists(direct) && !std::filesystem::is_directory(direct)) return direct.string();
    return (std::filesystem::path(dir) / "agent" / "cli" / "hubprobe").string();
  }
  return (std::filesystem::path(HUBPROBE_BINARY_DIR) / "agent" / "cli" / "hubprobe").string();
}

std::optional<std::string> hubprobe_missing_reason() {
  const std::string path = hubprobe_binary();
  if (access(path.c_str(), X_OK) != 0) {
    return "hubprobe binary not found or not executable at " + path +
           " (build the `hubprobe` target, or point HUBPROBE_BIN_DIR at the directory holding it)";
  }
  return std::nullopt;
}

CommandResult run_hubprobe(const Namespace& ns, const std::vector<std::string>& args, Seconds timeout) {
  std::vector<std::string> argv = {hubprobe_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return ns.exec(argv, timeout);
}

bool udp_port_bound(pid_t pid, uint16_t port) {
  char want[8];
  snprintf(want, sizeof want, ":%04X", port);
  for (const char* table : {"udp", "udp6"}) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/net/" + table);
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
      std::istringstream s(line);
      std::string slot, local;
      s >> slot >> local;
      if (local.size() > 5 && local.compare(local.size() - 5, 5, want) == 0) return true;
    }
  }
  return false;
}

Reflector::Reflector(const Namespace& ns, const std::vector<std::string>& args, const std::filesystem::path& log_dir,
                     const std::string& label, uint16_t port) {
  std::vector<std::string> argv = {hubprobe_binary(), "reflect"};
  argv.insert(argv.end(), args.begin(), args.end());
  process_ = std::make_unique<Process>(argv, ns.name(), log_dir, label);
  const ino_t want = ns.inode();
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    if (!process_->running()) {
      throw HarnessError("reflector exited before it was ready\n" + process_->describe());
    }
    // Only once the PID has entered the namespace do its /proc/PID/net tables describe that namespace.
    if (netns_inode_of(process_->pid()) == want && udp_port_bound(process_->pid(), port)) break;
    if (Clock::now() >= deadline) {
      throw HarnessError("reflector did not bind UDP port " + std::to_string(port) + " within 5 s\n" +
                         process_->describe());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // It may open several sockets (one per --listen); give the rest a moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

JsonReport parse_report(const std::string& out) {
  JsonReport report;
  try {
    report.json = json::parse(out);  // throws on trailing content: exactly one JSON value
  } catch (const std::exception& e) {
    report.error = std::string("stdout is not exactly one JSON value: ") + e.what() + "\n--- stdout ---\n" + out;
    return report;
  }
  if (!report.json.is_object()) {
    report.error = "stdout is JSON but not an object: " + out;
    return report;
  }
  report.ok = true;
  return report;
}

int64_t counter(const json& report, const std::string& path) {
  const json* j = lookup(report, path);
  if (j == nullptr || !is_count(*j)) return -1;
  return j->get<int64_t>();
}

double number(const json& report, const std::string& path) {
  const json* j = lookup(report, path);
  if (j == nullptr || !j->is_number()) return std::nan("");
  return j->get<double>();
}

::testing::AssertionResult stats_block_well_formed(const json& report, const std::string& key) {
  const json* block = lookup(report, key);
  if (block == nullptr) return ::testing::AssertionFailure() << "no \"" << key << "\" in " << report.dump();
  if (!block->is_object()) return ::testing::AssertionFailure() << "\"" << key << "\" is not an object: " << *block;
  static const char* kKeys[] = {"min", "mean", "p50", "p90", "p99", "max", "stddev"};
  for (const char* k : kKeys) {
    if (!block->contains(k) || !(*block)[k].is_number()) {
      return ::testing::AssertionFailure() << "\"" << key << "." << k << "\" missing or not a number: " << *block;
    }
  }
  auto v = [&](const char* k) { return (*block)[k].get<double>(); };
  const double eps = 1e-9;
  const double order[] = {v("min"), v("p50"), v("p90"), v("p99"), v("max")};
  for (size_t i = 1; i < 5; ++i) {
    if (order[i] + eps < order[i - 1]) {
      return ::testing::AssertionFailure()
             << "\"" << key << "\" not ordered min <= p50 <= p90 <= p99 <= max: " << *block;
    }
  }
  if (v("mean") + eps < v("min") || v("mean") > v("max") + eps) {
    return ::testing::AssertionFailure() << "\"" << key << ".mean\" outside [min, max]: " << *block;
  }
  if (v("stddev") < 0) return ::testing::AssertionFailure() << "\"" << key << ".stddev\" negative: " << *block;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult report_well_formed(const json& r) {
  auto fail = [&]() { return ::testing::AssertionFailure() << "report " << r.dump() << ": "; };
  if (!r.is_object()) return fail() << "not an object";
  if (!r.contains("target") || !r["target"].is_string()) return fail() << "\"target\" missing or not a string";
  for (const char* k : {"sent", "received", "duplicates", "late", "reordered", "invalid", "loss.forward",
                        "loss.backward", "loss.unknown", "loss.total"}) {
    if (counter(r, k) < 0) return fail() << "\"" << k << "\" missing or not a non-negative integer";
  }
  for (const char* k : {"loss_percent.forward", "loss_percent.backward", "loss_percent.total"}) {
    const json* j = lookup(r, k);
    if (j == nullptr || !(j->is_number() || (j->is_null() && std::string(k) != "loss_percent.total"))) {
      return fail() << "\"" << k << "\" missing or not a number";
    }
  }
  const int64_t sent = counter(r, "sent"), received = counter(r, "received");
  const int64_t lost = counter(r, "loss.total");
  if (received > sent) return fail() << "received > sent";
  if (lost != counter(r, "loss.forward") + counter(r, "loss.backward") + counter(r, "loss.unknown")) {
    return fail() << "loss.total != loss.forward + loss.backward + loss.unknown";
  }
  if (received + lost != sent) return fail() << "received + loss.total != sent (every probe is answered or lost)";
  if (sent > 0) {
    const double want = 100.0 * static_cast<double>(lost) / static_cast<double>(sent);
    if (std::fabs(number(r, "loss_percent.total") - want) > 0.51) {
      return fail() << "loss_percent.total is not 100 * loss.total / sent (" << want << ")";
    }
  }
  for (const char* k : {"rtt_us", "turnaround_us"}) {
    const json* j = lookup(r, k);
    if (j == nullptr) return fail() << "\"" << k << "\" missing";
    if (received == 0 && j->is_null()) continue;
    if (auto res = stats_block_well_formed(r, k); !res) return res;
  }
  const json* jitter = lookup(r, "jitter_us");
  if (jitter == nullptr || !(jitter->is_number() || (jitter->is_null() && received < 2))) {
    return fail() << "\"jitter_us\" missing or not a number";
  }
  if (jitter->is_number() && jitter->get<double>() < 0) return fail() << "\"jitter_us\" negative";
  const json* owd = lookup(r, "owd_us");
  if (owd == nullptr || !(owd->is_null() || owd->is_object())) return fail() << "\"owd_us\" missing, not null/object";
  const json* ts = lookup(r, "timestamps");
  if (ts == nullptr || !ts->is_object()) return fail() << "\"timestamps\" missing or not an object";
  for (const char* k : {"t1", "t4"}) {
    if (!ts->contains(k) || !(*ts)[k].is_string()) return fail() << "\"timestamps." << k << "\" missing";
  }
  return ::testing::AssertionSuccess();
}

std::vector<ReplyLine> parse_reply_lines(const std::string& out, std::vector<std::string>* malformed) {
  static const std::regex line_re(
      R"(^(\d+) bytes from (\S+): seq=(\d+) rtt=([0-9]+(?:\.[0-9]+)?) ms turnaround=(-?[0-9]+(?:\.[0-9]+)?) ms((?: [a-z_]+=\S+)*)\s*$)");
  static const std::regex start_re(R"(^\d+ bytes from )");
  std::vector<ReplyLine> lines;
  std::istringstream s(out);
  std::string line;
  while (std::getline(s, line)) {
    std::smatch m;
    if (std::regex_match(line, m, line_re)) {
      ReplyLine r;
      r.bytes = static_cast<unsigned>(std::stoul(m[1]));
      r.from = m[2];
      if (!r.from.empty() && r.from.back() == ':') r.from.pop_back();
      r.seq = std::stoull(m[3]);
      r.rtt_ms = std::stod(m[4]);
      r.turnaround_ms = std::stod(m[5]);
      lines.push_back(r);
    } else if (std::regex_search(line, start_re) && malformed != nullptr) {
      malformed->push_back(line);
    }
  }
  return lines;
}

size_t count_lines(const std::string& text) {
  size_t n = 0;
  std::istringstream s(text);
  std::string line;
  while (std::getline(s, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) ++n;
  }
  return n;
}

}  // namespace hubprobe::it
