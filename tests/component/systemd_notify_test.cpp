// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/systemd.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

namespace hubprobe::systemd {
namespace {

// Sets or unsets an environment variable for one test and puts the old value back afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A datagram socket standing in for systemd's notification socket: abstract ("@name") or a file.
class NotifySocket {
 public:
  explicit NotifySocket(bool abstract) {
    static int counter = 0;
    const std::string name = "hubprobe-notify-test-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socklen_t length = 0;
    if (abstract) {
      env_value_ = "@" + name;
      std::memcpy(address.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    } else {
      path_ = std::filesystem::temp_directory_path() / (name + ".sock");
      std::filesystem::remove(path_);
      env_value_ = path_.string();
      std::memcpy(address.sun_path, env_value_.data(), env_value_.size());
      length = static_cast<socklen_t>(sizeof(address));
    }
    bound_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&address), length) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  bool bound() const { return bound_; }
  const std::string& env_value() const { return env_value_; }

  /// The next datagram, or nullopt when none arrives within `timeout_ms`.
  std::optional<std::string> receive(int timeout_ms = 1000) const {
    pollfd pfd{fd_, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) != 1) return std::nullopt;
    char buffer[4096];
    const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n < 0) return std::nullopt;
    return std::string(buffer, static_cast<size_t>(n));
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
  std::string env_value_;
  std::filesystem::path path_;
};

uint64_t monotonic_usec_now() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1'000;
}

class SystemdNotifyTest : public testing::TestWithParam<bool> {};

TEST_P(SystemdNotifyTest, EachStateArrives) {
  NotifySocket socket(GetParam());
  ASSERT_TRUE(socket.bound()) << std::strerror(errno);
  ScopedEnv env("NOTIFY_SOCKET", socket.env_value());

  auto ready = notify_ready();
  ASSERT_TRUE(ready.ok()) << ready.error().message;
  EXPECT_EQ(socket.receive(), "READY=1");

  auto stopping = notify_stopping();
  ASSERT_TRUE(stopping.ok()) << stopping.error().message;
  EXPECT_EQ(socket.receive(), "STOPPING=1");

  auto watchdog = notify_watchdog();
  ASSERT_TRUE(watchdog.ok()) << watchdog.error().message;
  EXPECT_EQ(socket.receive(), "WATCHDOG=1");

  auto status = notify_status("probing 3 peers\nall ok");
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(socket.receive(), "STATUS=probing 3 peers all ok");
}

TEST_P(SystemdNotifyTest, ReloadingCarriesMonotonicTimestamp) {
  NotifySocket socket(GetParam());
  ASSERT_TRUE(socket.bound()) << std::strerror(errno);
  ScopedEnv env("NOTIFY_SOCKET", socket.env_value());

  const uint64_t before = monotonic_usec_now();
  auto reloading = notify_reloading();
  const uint64_t after = monotonic_usec_now();
  ASSERT_TRUE(reloading.ok()) << reloading.error().message;
  const std::optional<std::string> message = socket.receive();
  ASSERT_TRUE(message.has_value());
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(message->rfind(prefix, 0), 0u) << *message;
  const uint64_t stamp = std::stoull(message->substr(prefix.size()));
  EXPECT_GE(stamp, before);
  EXPECT_LE(stamp, after);

  // The reload ends with READY=1.
  ASSERT_TRUE(notify_ready().ok());
  EXPECT_EQ(socket.receive(), "READY=1");
}

INSTANTIATE_TEST_SUITE_P(Systemd, SystemdNotifyTest, testing::Values(true, false),
                         [](const testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? "Abstract" : "Path";
                         });

TEST(SystemdNotifyUnsetTest, NothingHappensWithoutNotifySocket) {
  NotifySocket socket(true);
  ASSERT_TRUE(socket.bound());
  ScopedEnv env("NOTIFY_SOCKET", std::nullopt);
  EXPECT_TRUE(notify_ready().ok());
  EXPECT_TRUE(notify_reloading().ok());
  EXPECT_TRUE(notify_stopping().ok());
  EXPECT_TRUE(notify_status("x").ok());
  EXPECT_TRUE(notify_watchdog().ok());
  EXPECT_EQ(socket.receive(100), std::nullopt);
}

TEST(SystemdNotifyUnsetTest, UnreachableSocketIsAnErrorValue) {
  ScopedEnv env("NOTIFY_SOCKET", "/nonexistent/hubprobe-notify.sock");
  auto ready = notify_ready();
  ASSERT_FALSE(ready.ok());
  EXPECT_NE(ready.error().message.find("sd_notify(READY=1) failed"), std::string::npos) << ready.error().message;
  EXPECT_NE(ready.error().code, 0);
}

TEST(SystemdWatchdogTest, IntervalFromEnvironment) {
  ScopedEnv usec("WATCHDOG_USEC", "30000000");
  ScopedEnv pid("WATCHDOG_PID", std::to_string(getpid()));
  const auto interval = watchdog_interval();
  ASSERT_TRUE(interval.has_value());
  EXPECT_EQ(*interval, std::chrono::seconds(30));
  EXPECT_EQ(watchdog_ping_period(), std::chrono::seconds(15));
}

TEST(SystemdWatchdogTest, IntervalWithoutPidApplies) {
  ScopedEnv usec("WATCHDOG_USEC", "2000000");
  ScopedEnv pid("WATCHDOG_PID", std::nullopt);
  EXPECT_EQ(watchdog_interval(), std::chrono::seconds(2));
}

TEST(SystemdWatchdogTest, OtherProcessOrUnsetMeansNoWatchdog) {
  {
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(getpid() + 1));
    EXPECT_EQ(watchdog_interval(), std::nullopt);
    EXPECT_EQ(watchdog_ping_period(), std::nullopt);
  }
  ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
  EXPECT_EQ(watchdog_interval(), std::nullopt);
}

}  // namespace
}  // namespace hubprobe::systemd
