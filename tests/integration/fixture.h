// SPDX-License-Identifier: Apache-2.0
// The fixture shared by the end-to-end tests of the hubprobe CLI: a fresh veth testbed per test (see
// netns.h for the addresses), a scratch directory for logs and key files, and short-hands to run
// `hubprobe ping` in the sender namespace and `hubprobe reflect` in the reflector namespace.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hubprobe_cli.h"
#include "netns.h"
#include "process.h"

namespace hubprobe::it {

/// A 32-octet key, and another one, as hex (whitespace is allowed in key files).
inline constexpr const char* kKeyHex = "00112233 44556677 8899aabb ccddeeff\n0f1e2d3c 4b5a6978 8796a5b4 c3d2e1f0\n";
inline constexpr const char* kOtherKeyHex = "ffeeddccbbaa99887766554433221100f0e1d2c3b4a5968778695a4b3c2d1e0f\n";

class HubprobeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_BINARY();
    bed_ = std::make_unique<Testbed>();
  }

  const Namespace& sender() const { return bed_->sender(); }
  const Namespace& reflector_ns() const { return bed_->reflector(); }

  /// `hubprobe reflect args...` in the reflector namespace, ready when this returns.
  std::unique_ptr<Reflector> start_reflector(const std::vector<std::string>& args, uint16_t port = 862) {
    return std::make_unique<Reflector>(reflector_ns(), args, dir_.path(), "reflector" + std::to_string(++labels_),
                                       port);
  }

  /// `hubprobe ping args...` in the sender namespace, to completion (killed past `timeout`).
  CommandResult ping(const std::vector<std::string>& args, Seconds timeout) {
    std::vector<std::string> full = {"ping"};
    full.insert(full.end(), args.begin(), args.end());
    return run_hubprobe(sender(), full, timeout);
  }

  /// `hubprobe ping args...` started in the background.
  std::unique_ptr<Process> start_ping(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {hubprobe_binary(), "ping"};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<Process>(argv, sender().name(), dir_.path(), "ping" + std::to_string(++labels_));
  }

  std::string key_file(const std::string& name, const std::string& content) {
    return dir_.write_file(name, content).string();
  }

  TempDir dir_;
  std::unique_ptr<Testbed> bed_;
  int labels_ = 0;
};

/// Parses and checks the --json report of a finished ping (fatal failure with its output otherwise).
/// Use as ASSERT_NO_FATAL_FAILURE(ParseReport(result, &report)).
inline void ParseReport(const CommandResult& result, nlohmann::json* report) {
  ASSERT_FALSE(result.timed_out) << result.describe();
  ASSERT_TRUE(result.exit.exited()) << "crashed or killed\n" << result.describe();
  JsonReport parsed = parse_report(result.out);
  ASSERT_TRUE(parsed.ok) << parsed.error << "\n" << result.describe();
  ASSERT_TRUE(report_well_formed(parsed.json)) << result.describe();
  *report = parsed.json;
}

/// Same for a ping started with start_ping() that has exited.
inline void ParseReport(const Process& ping, nlohmann::json* report) {
  ASSERT_TRUE(ping.exit_info().reaped) << ping.describe();
  ASSERT_TRUE(ping.exit_info().exited()) << "crashed or killed\n" << ping.describe();
  JsonReport parsed = parse_report(ping.stdout_text());
  ASSERT_TRUE(parsed.ok) << parsed.error << "\n" << ping.describe();
  ASSERT_TRUE(report_well_formed(parsed.json)) << ping.describe();
  *report = parsed.json;
}

}  // namespace hubprobe::it
