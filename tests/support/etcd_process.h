// SPDX-License-Identifier: Apache-2.0
// Test support: a real single-member etcd (Debian's etcd-server) on 127.0.0.1, on ports picked at
// random, with its data in a temporary folder. Started with fork/exec, stopped by its PID only.
// Header-only (POSIX and GoogleTest only), so unit, integration and end-to-end tests can share it.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace hubprobe::test {

/// The etcd binary: $HUBPROBE_ETCD when set, else /usr/bin/etcd.
inline std::string etcd_binary() {
  const char* configured = std::getenv("HUBPROBE_ETCD");
  return configured != nullptr && *configured != '\0' ? configured : "/usr/bin/etcd";
}

/// Why etcd cannot run here (the binary is missing or not executable), or an empty string.
inline std::string etcd_missing_reason() {
  const std::string binary = etcd_binary();
  if (access(binary.c_str(), X_OK) == 0) return {};
  return binary + " is missing or not executable (apt-get install -y etcd-server etcd-client, see scripts/setup.sh)";
}

/// In a test body: skips without etcd, or fails when HUBPROBE_REQUIRE_PRIVILEGED=1 (CI must run these).
#define HUBPROBE_REQUIRE_ETCD()                                                                        \
  do {                                                                                                 \
    if (const std::string hp_reason_ = ::hubprobe::test::etcd_missing_reason(); !hp_reason_.empty()) { \
      const char* hp_require_ = std::getenv("HUBPROBE_REQUIRE_PRIVILEGED");                            \
      if (hp_require_ != nullptr && std::string(hp_require_) == "1") {                                 \
        FAIL() << "etcd is required (HUBPROBE_REQUIRE_PRIVILEGED=1): " << hp_reason_;                  \
      }                                                                                                \
      GTEST_SKIP() << hp_reason_;                                                                      \
    }                                                                                                  \
  } while (0)

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice for port 0).
inline uint16_t free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

/// Sends `request` (a whole HTTP request) to 127.0.0.1:port and reads until the server closes; the whole
/// answer (status line, headers, body), empty on failure.
inline std::string loopback_http_exchange(uint16_t port, const std::string& request, int timeout_ms = 1000) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
      char buffer[8192];
      for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) answer.append(buffer, static_cast<size_t>(n));
    }
  }
  close(fd);
  return answer;
}

/// One HTTP/1.0 GET to 127.0.0.1:port; the whole answer (status line, headers, body), empty on failure.
inline std::string loopback_http_get(uint16_t port, const std::string& path, int timeout_ms = 1000) {
  return loopback_http_exchange(port, "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", timeout_ms);
}

/// A single-member etcd cluster. The constructor only prepares (temporary folder, ports); start() runs
/// it. kill() is a crash (SIGKILL); start() again reuses the ports and, unless wipe_data() ran, the data.
/// The destructor kills the process (by its PID) and removes the folder. Not thread-safe; call start()
/// from a thread that outlives the process (PR_SET_PDEATHSIG kills etcd when the forking thread ends).
class EtcdProcess {
 public:
  EtcdProcess() {
    std::string pattern = (std::filesystem::temp_directory_path() / "hubprobe-etcd-XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) dir_ = pattern;
  }
  ~EtcdProcess() {
    kill();
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  /// Starts etcd and waits until GET /health says true. Returns an empty string then, else what went
  /// wrong with the end of etcd's log. On the first start, a port taken in the meantime is retried with
  /// other ports.
  std::string start(std::chrono::milliseconds ready_timeout = std::chrono::seconds(15)) {
    if (dir_.empty()) return "cannot create a temporary folder";
    if (pid_ > 0) return "etcd is already running (pid " + std::to_string(pid_) + ")";
    std::string error;
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (client_port_ == 0 || (!started_once_ && attempt > 0)) {
        client_port_ = free_loopback_port();
        peer_port_ = free_loopback_port();
        if (client_port_ == 0 || peer_port_ == 0 || client_port_ == peer_port_) continue;
      }
      error = start_once(ready_timeout);
      if (error.empty()) {
        started_once_ = true;
        return {};
      }
      if (started_once_) break;  // the ports are part of the cluster's identity now
    }
    return error;
  }

  /// SIGKILL by PID and reap: the member vanishes like a crashed host.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  /// Forgets every key and lease (only while stopped): the next start() is a brand-new cluster.
  void wipe_data() {
    std::error_code ignored;
    std::filesystem::remove_all(data_dir(), ignored);
  }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  uint16_t client_port() const { return client_port_; }
  std::string client_url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  std::string data_dir() const { return dir_ + "/data"; }
  std::string log_path() const { return dir_ + "/etcd.log"; }

  /// The last `lines` lines of etcd's log, for failure messages.
  std::string log_tail(size_t lines = 20) const {
    std::ifstream in(log_path());
    std::vector<std::string> all;
    for (std::string line; std::getline(in, line);) all.push_back(line);
    std::string out;
    for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) out += all[i] + "\n";
    return out;
  }

 private:
  std::string start_once(std::chrono::milliseconds ready_timeout) {
    const std::string client = client_url();
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    std::vector<std::string> args = {etcd_binary(),
                                     "--name=default",
                                     "--data-dir=" + data_dir(),
                                     "--listen-client-urls=" + client,
                                     "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=default=" + peer,
                                     "--logger=zap",
                                     "--log-outputs=stderr"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int log = open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) return "cannot open " + log_path();
    const pid_t parent = getpid();
    const pid_t child = fork();
    if (child < 0) {
      close(log);
      return "fork failed";
    }
    if (child == 0) {
      // Only async-signal-safe calls here: the test process has threads.
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      if (getppid() != parent) _exit(127);
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(log);
    pid_ = child;
    const auto give_up = std::chrono::steady_clock::now() + ready_timeout;
    while (std::chrono::steady_clock::now() < give_up) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "etcd exited during start-up (status " + std::to_string(status) + "):\n" + log_tail();
      }
      if (loopback_http_get(client_port_, "/health").find("\"health\":\"true\"") != std::string::npos) return {};
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    return "etcd did not become healthy within " + std::to_string(ready_timeout.count()) + " ms:\n" + log_tail();
  }

  std::string dir_;
  pid_t pid_ = -1;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  bool started_once_ = false;
};

}  // namespace hubprobe::test
