// SPDX-License-Identifier: Apache-2.0
#include "janitor.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hubprobe::it {
namespace {

struct JanitorState {
  pid_t owner = 0;  // the process whose leftovers this janitor removes
  int fd = -1;      // our end of the socketpair
  pid_t pid = -1;
};
JanitorState g_janitor;

// fork + exec + wait, output discarded. Only async-signal-safe calls in the child.
void run_quietly(const char* const argv[]) {
  const pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    execvp(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  if (pid > 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void delete_namespace(const std::string& name) {
  const char* argv[] = {"ip", "netns", "del", name.c_str(), nullptr};
  run_quietly(argv);
}

bool is_scratch_dir(const std::string& path) {
  return path.size() > 1 && path[0] == '/' && path.find("/hubprobe-it-") != std::string::npos &&
         path.find("..") == std::string::npos;
}

void delete_directory(const std::string& path) {
  if (!is_scratch_dir(path)) return;
  const char* argv[] = {"rm", "-rf", "--", path.c_str(), nullptr};
  run_quietly(argv);
}

[[noreturn]] void janitor_main(int fd) {
  setsid();
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
  }
  // Keep stderr for the messages below; close everything else inherited from the test binary.
  if (dup2(fd, 3) < 0) _exit(1);
  close_range(4, ~0U, 0);
  std::set<std::string> namespaces, directories;
  std::string pending;
  char buf[4096];
  while (true) {
    ssize_t n = read(3, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      // "+n NAME", "-n NAME", "+d PATH", "-d PATH"
      if (line.size() < 4 || line[2] != ' ') continue;
      auto& set = line[1] == 'n' ? namespaces : directories;
      if (line[0] == '+') set.insert(line.substr(3));
      if (line[0] == '-') set.erase(line.substr(3));
    }
  }
  for (const auto& name : namespaces) {
    delete_namespace(name);
    fprintf(stderr, "[hubprobe-it janitor] removed namespace %s left behind by a dead test process\n", name.c_str());
  }
  for (const auto& path : directories) delete_directory(path);
  _exit(0);
}

// Namespaces "hpitPID-..." whose PID is gone were left by a test binary that died together with its
// janitor (a reboot, kill -9 of both). Only this naming pattern is touched.
void remove_stale_namespaces() {
  DIR* dir = opendir("/var/run/netns");
  if (dir == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.rfind("hpit", 0) != 0) continue;
    const size_t dash = name.find('-', 4);
    if (dash == std::string::npos || dash == 4 || dash > 13) continue;
    const std::string digits = name.substr(4, dash - 4);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    if (pid == getpid()) continue;
    if (kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  closedir(dir);
  for (const auto& name : stale) {
    std::cerr << "[harness] removing stale namespace " << name << " of a dead test process\n";
    delete_namespace(name);
  }
}

// On a normal exit: close our end (the janitor finds nothing left to do) and reap it, so it does not
// linger as a zombie under a PID 1 that never reaps.
void stop_janitor_at_exit() {
  if (g_janitor.owner != getpid() || g_janitor.fd < 0) return;
  close(g_janitor.fd);
  g_janitor.fd = -1;
  for (int i = 0; i < 2000; ++i) {
    if (waitpid(g_janitor.pid, nullptr, WNOHANG) != 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void ensure_janitor() {
  if (g_janitor.owner == getpid() && g_janitor.fd >= 0) return;
  // In a forked child the inherited descriptor belongs to the parent's janitor: close our copy and
  // start one for this process.
  if (g_janitor.fd >= 0) close(g_janitor.fd);
  g_janitor = {};
  remove_stale_namespaces();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    throw std::runtime_error(std::string("janitor: socketpair: ") + strerror(errno));
  }
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("janitor: fork: ") + strerror(errno));
  if (pid == 0) {
    close(sv[0]);
    janitor_main(sv[1]);
  }
  close(sv[1]);
  g_janitor = {getpid(), sv[0], pid};
  static bool exit_hook = false;
  if (!exit_hook) {
    exit_hook = true;
    std::atexit(stop_janitor_at_exit);
  }
}

void announce(char op, TrackedKind kind, const std::string& value) {
  if (value.find('\n') != std::string::npos) return;
  ensure_janitor();
  const std::string msg = std::string(1, op) + (kind == TrackedKind::kNamespace ? "n " : "d ") + value + "\n";
  // MSG_NOSIGNAL: a dead janitor must not kill the test binary with SIGPIPE.
  if (send(g_janitor.fd, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) {
    std::cerr << "[harness] warning: janitor unreachable (" << strerror(errno) << "): " << msg;
  }
}

}  // namespace

void janitor_track(TrackedKind kind, const std::string& value) { announce('+', kind, value); }
void janitor_untrack(TrackedKind kind, const std::string& value) { announce('-', kind, value); }

pid_t janitor_pid() {
  ensure_janitor();
  return g_janitor.pid;
}

}  // namespace hubprobe::it
