// SPDX-License-Identifier: Apache-2.0
// The installed systemd unit: `cmake --install` into a scratch prefix, then `systemd-analyze verify` on
// the unit written for that prefix, and the settings docs/operations.md ("The unit") describes. No root needed
// and no running systemd: verify works on a file.
//
// The install is staged with DESTDIR=<tmp>/stage and <tmp>/prefix made a symlink to the staged prefix:
// the unit names <tmp>/prefix/sbin/hubprobed, which verify requires to exist, and files installed to
// absolute paths (the example configuration under the configured sysconfdir) stay inside <tmp>.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "netns.h"
#include "process.h"

namespace hubprobe::it {
namespace {

namespace fs = std::filesystem;

/// The first executable called `name` in $PATH (then /usr/bin, /bin), or nullopt.
std::optional<std::string> find_program(const std::string& name) {
  std::string path = getenv("PATH") != nullptr ? getenv("PATH") : "";
  path += ":/usr/bin:/bin";
  std::stringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return std::nullopt;
}

std::optional<std::string> systemd_analyze_missing_reason() {
  if (find_program("systemd-analyze")) return std::nullopt;
  return std::string("systemd-analyze not found in $PATH (Debian package systemd)");
}

/// The [Service] section as key -> values (a key may repeat), comments and blank lines dropped.
std::multimap<std::string, std::string> service_section(const std::string& unit_text) {
  std::multimap<std::string, std::string> settings;
  std::stringstream lines(unit_text);
  bool in_service = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      in_service = line == "[Service]";
      continue;
    }
    const size_t equals = line.find('=');
    if (in_service && equals != std::string::npos) settings.emplace(line.substr(0, equals), line.substr(equals + 1));
  }
  return settings;
}

std::string only(const std::multimap<std::string, std::string>& settings, const std::string& key) {
  const auto [first, last] = settings.equal_range(key);
  if (first == last) return "";
  EXPECT_EQ(std::next(first), last) << key << " is set more than once";
  return first->second;
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> result;
  std::stringstream stream(text);
  for (std::string word; stream >> word;) result.push_back(word);
  return result;
}

class SystemdUnitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    prefix_ = dir_->path() / "prefix";
    const fs::path stage = dir_->path() / "stage";
    install_ = run_command(
        {"env", "DESTDIR=" + stage.string(), "cmake", "--install", HUBPROBE_BINARY_DIR, "--prefix", prefix_.string()},
        Seconds(120));
    if (!install_.ok()) {
      setup_error_ = "cmake --install failed:\n" + install_.describe();
      return;
    }
    std::error_code error;
    fs::create_directory_symlink(stage / prefix_.relative_path(), prefix_, error);
    if (error) setup_error_ = "symlink " + prefix_.string() + ": " + error.message();
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(setup_error_, "");
    ASSERT_TRUE(fs::exists(unit_path())) << unit_path() << " was not installed\n" << install_.describe();
    unit_text_ = read_text_file(unit_path());
  }

  static fs::path unit_path() { return prefix_ / "lib/systemd/system/hubprobed.service"; }

  static TempDir* dir_;
  static fs::path prefix_;
  static CommandResult install_;
  static std::string setup_error_;
  std::string unit_text_;
};

TempDir* SystemdUnitTest::dir_ = nullptr;
fs::path SystemdUnitTest::prefix_;
CommandResult SystemdUnitTest::install_;
std::string SystemdUnitTest::setup_error_;

TEST_F(SystemdUnitTest, VerifyIsClean) {
  HUBPROBE_REQUIRE(systemd_analyze_missing_reason());
  const CommandResult verify = run_command({"systemd-analyze", "verify", unit_path().string()}, Seconds(60));
  EXPECT_TRUE(verify.ok()) << verify.describe();
  std::stringstream output(verify.out + verify.err);
  for (std::string line; std::getline(output, line);) {
    EXPECT_EQ(line.find("hubprobed.service"), std::string::npos) << "systemd-analyze verify: " << line;
  }
}

TEST_F(SystemdUnitTest, SecurityExposureIsReported) {
  HUBPROBE_REQUIRE(systemd_analyze_missing_reason());
  const CommandResult security =
      run_command({"systemd-analyze", "security", "--offline=true", unit_path().string()}, Seconds(60));
  // Reported, not judged: the score is a summary for people; the settings are checked one by one below.
  const std::regex overall(R"(Overall exposure level for hubprobed\.service: ([0-9.]+) (\w+))");
  std::smatch match;
  const std::string text = security.out + security.err;
  if (std::regex_search(text, match, overall)) {
    std::cout << "[ systemd  ] systemd-analyze security: exposure " << match[1] << " " << match[2] << "\n";
    RecordProperty("systemd_exposure", match[1].str());
  } else {
    std::cout << "[ systemd  ] systemd-analyze security gave no score (--offline needs systemd >= 250):\n"
              << security.describe() << "\n";
  }
}

TEST_F(SystemdUnitTest, SupervisedAsNotifyServiceWithWatchdog) {
  const auto service = service_section(unit_text_);
  EXPECT_EQ(only(service, "Type"), "notify");
  EXPECT_EQ(only(service, "NotifyAccess"), "main");
  const std::string watchdog = only(service, "WatchdogSec");
  EXPECT_FALSE(watchdog.empty() || watchdog == "0" || watchdog == "infinity") << "WatchdogSec=" << watchdog;
  EXPECT_EQ(only(service, "Restart"), "on-failure");
  EXPECT_NE(only(service, "ExecReload").find("-HUP $MAINPID"), std::string::npos);

  const std::vector<std::string> exec_start = words(only(service, "ExecStart"));
  ASSERT_FALSE(exec_start.empty());
  EXPECT_EQ(exec_start[0], (prefix_ / "sbin/hubprobed").string()) << "ExecStart must name the installed binary";
  EXPECT_TRUE(fs::exists(exec_start[0]));
  ASSERT_GE(exec_start.size(), 3u);
  EXPECT_EQ(exec_start[1], "--config");
  EXPECT_EQ(fs::path(exec_start[2]).filename(), "hubprobe.toml");
}

TEST_F(SystemdUnitTest, RunsAsDedicatedUserWithOnlyNetworkCapabilities) {
  const auto service = service_section(unit_text_);
  const std::string user = only(service, "User");
  const bool dynamic_user = only(service, "DynamicUser") == "yes";
  EXPECT_TRUE(dynamic_user || (!user.empty() && user != "root" && user != "0")) << "User=" << user;
  EXPECT_EQ(only(service, "NoNewPrivileges"), "yes");

  const std::string bounding = only(service, "CapabilityBoundingSet");
  ASSERT_FALSE(bounding.empty()) << "an absent CapabilityBoundingSet keeps every capability";
  ASSERT_NE(bounding[0], '~') << "a deny list keeps every capability it does not name";
  const std::vector<std::string> capabilities = words(bounding);
  for (const std::string& capability : capabilities) {
    EXPECT_NE(capability, "CAP_SYS_ADMIN");
    EXPECT_TRUE(capability == "CAP_NET_BIND_SERVICE" || capability == "CAP_NET_ADMIN" || capability == "CAP_NET_RAW")
        << capability << " is more than the kernel backend needs";
  }
  for (const std::string& ambient : words(only(service, "AmbientCapabilities"))) {
    EXPECT_NE(std::find(capabilities.begin(), capabilities.end(), ambient), capabilities.end())
        << ambient << " is ambient but not in the bounding set";
  }

  // The usual hardening (docs/operations.md, "Hardening").
  for (const char* key : {"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
                          "ProtectKernelModules", "ProtectControlGroups", "RestrictNamespaces",
                          "MemoryDenyWriteExecute", "SystemCallArchitectures", "RestrictAddressFamilies"}) {
    EXPECT_FALSE(only(service, key).empty()) << key << " is not set";
  }
  EXPECT_EQ(only(service, "ProtectSystem"), "strict");
  EXPECT_EQ(only(service, "StateDirectory"), "hubprobe");
}

TEST_F(SystemdUnitTest, SysusersCreatesTheServiceUser) {
  const auto service = service_section(unit_text_);
  if (only(service, "DynamicUser") == "yes") GTEST_SKIP() << "DynamicUser=yes: no sysusers.d file needed";
  const fs::path sysusers = prefix_ / "lib/sysusers.d/hubprobe.conf";
  ASSERT_TRUE(fs::exists(sysusers)) << sysusers;
  const std::string user = only(service, "User");
  EXPECT_NE(read_text_file(sysusers).find("u " + user + " "), std::string::npos) << read_text_file(sysusers);
  if (!find_program("systemd-sysusers")) GTEST_SKIP() << "systemd-sysusers not found: syntax not checked";
  const CommandResult dry_run = run_command({"systemd-sysusers", "--dry-run", sysusers.string()}, Seconds(30));
  EXPECT_TRUE(dry_run.ok()) << dry_run.describe();
  EXPECT_EQ(dry_run.err.find("ignoring"), std::string::npos) << dry_run.describe();
}

}  // namespace
}  // namespace hubprobe::it
