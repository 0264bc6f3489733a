// SPDX-License-Identifier: Apache-2.0
#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "janitor.h"

namespace hubprobe::it {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) { return Seconds(Clock::now() - start).count(); }

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& arg : argv) out.push_back(const_cast<char*>(arg.c_str()));
  out.push_back(nullptr);
  return out;
}

std::string tail(const std::string& text, size_t max_chars = 4000) {
  if (text.size() <= max_chars) return text;
  return "[... " + std::to_string(text.size() - max_chars) + " chars cut ...]\n" + text.substr(text.size() - max_chars);
}

// fork + exec with the given descriptors as stdin/stdout/stderr. An exec failure is reported to the
// parent through a close-on-exec pipe and thrown as HarnessError, so a wrong path is a clear message.
pid_t spawn(const std::vector<std::string>& argv, int in_fd, int out_fd, int err_fd) {
  if (argv.empty()) throw HarnessError("spawn: empty argv");
  int status_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) != 0) throw HarnessError(std::string("pipe2: ") + strerror(errno));
  auto args = c_argv(argv);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(status_pipe[0]);
    close(status_pipe[1]);
    throw HarnessError(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    child_die_with_parent(parent);
    close(status_pipe[0]);
    // Undo anything inherited that would change the child's behaviour.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) {
      int e = errno;
      (void)!write(status_pipe[1], &e, sizeof e);
      _exit(127);
    }
    execvp(args[0], args.data());
    int e = errno;
    (void)!write(status_pipe[1], &e, sizeof e);
    _exit(127);
  }
  close(status_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(status_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close(status_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    waitpid(pid, &status, 0);
    throw HarnessError("cannot execute " + join_argv(argv) + ": " + strerror(child_errno));
  }
  return pid;
}

int open_or_throw(const char* path, int flags, mode_t mode = 0644) {
  int fd = open(path, flags | O_CLOEXEC, mode);
  if (fd < 0) throw HarnessError(std::string("open ") + path + ": " + strerror(errno));
  return fd;
}

bool env_flag(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && std::string(v) == "1";
}

}  // namespace

void child_die_with_parent(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(125);  // the parent died before prctl() took effect
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    if (arg.empty() || arg.find_first_of(" \t\n'\"\\$;&|<>(){}*?") != std::string::npos) {
      out += '\'';
      for (char c : arg) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    } else {
      out += arg;
    }
  }
  return out;
}

bool ExitInfo::exited() const { return reaped && WIFEXITED(raw_status); }
int ExitInfo::exit_code() const { return exited() ? WEXITSTATUS(raw_status) : -1; }
int ExitInfo::term_signal() const { return reaped && WIFSIGNALED(raw_status) ? WTERMSIG(raw_status) : 0; }
std::string ExitInfo::describe() const {
  if (!reaped) return "not reaped (still running or lost)";
  if (exited()) return "exit " + std::to_string(exit_code());
  if (term_signal() != 0) {
    return "killed by signal " + std::to_string(term_signal()) + " (" + strsignal(term_signal()) + ")";
  }
  return "status " + std::to_string(raw_status);
}

std::string CommandResult::describe() const {
  std::ostringstream s;
  s << "command: " << join_argv(argv) << "\n"
    << "outcome: " << (timed_out ? "TIMED OUT and killed, " : "") << exit.describe() << " after " << seconds << " s\n"
    << "--- stdout ---\n"
    << tail(out) << "\n--- stderr ---\n"
    << tail(err) << "\n--------------";
  return s.str();
}

CommandResult run_command(const std::vector<std::string>& argv, Seconds timeout, const std::string& stdin_data) {
  CommandResult result;
  result.argv = argv;
  int out_pipe[2], err_pipe[2], in_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw HarnessError("pipe2 failed");
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw HarnessError("pipe2 failed");
  }
  int in_fd;
  if (stdin_data.empty()) {
    in_fd = open_or_throw("/dev/null", O_RDONLY);
  } else {
    if (pipe2(in_pipe, O_CLOEXEC) != 0) throw HarnessError("pipe2 failed");
    in_fd = in_pipe[0];
  }
  const auto start = Clock::now();
  pid_t pid;
  try {
    pid = spawn(argv, in_fd, out_pipe[1], err_pipe[1]);
  } catch (...) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], in_fd, in_pipe[1]}) {
      if (fd >= 0) close(fd);
    }
    throw;
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  close(in_fd);
  if (in_pipe[1] >= 0) {
    // Small inputs only (nft rulesets): they fit in the pipe buffer, so this cannot block for long.
    signal(SIGPIPE, SIG_IGN);
    size_t off = 0;
    while (off < stdin_data.size()) {
      ssize_t n = write(in_pipe[1], stdin_data.data() + off, stdin_data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(in_pipe[1]);
  }

  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  bool open_fds[2] = {true, true};
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(timeout);
  char buf[8192];
  while (open_fds[0] || open_fds[1]) {
    auto now = Clock::now();
    if (now >= deadline) {
      if (!result.timed_out) {
        result.timed_out = true;
        kill(pid, SIGKILL);
      }
      // Give the pipes a moment to drain after the kill; a grandchild holding them is not waited for.
      if (now >= deadline + std::chrono::seconds(1)) break;
    }
    int wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       (result.timed_out ? deadline + std::chrono::seconds(1) : deadline) - now)
                                       .count()) +
                  1;
    for (auto& p : fds) p.revents = 0;
    int n = poll(fds, 2, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (!open_fds[i] || fds[i].revents == 0) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        open_fds[i] = false;
        fds[i].fd = -1;
      }
    }
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  // The child has closed its output; it exits now (or was killed). Bounded wait all the same.
  const auto reap_deadline = Clock::now() + std::chrono::seconds(5);
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      result.exit.reaped = true;
      result.exit.raw_status = status;
      break;
    }
    if (r < 0 && errno != EINTR) break;
    if (Clock::now() >= deadline && !result.timed_out) {
      result.timed_out = true;
      kill(pid, SIGKILL);
    }
    if (Clock::now() >= reap_deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.exit.reaped = true;
      result.exit.raw_status = status;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  result.seconds = since(start);
  return result;
}

CommandResult run_checked(const std::vector<std::string>& argv, Seconds timeout, const std::string& stdin_data) {
  CommandResult r = run_command(argv, timeout, stdin_data);
  if (!r.ok()) throw HarnessError("harness command failed\n" + r.describe());
  return r;
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hubprobe-it-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw HarnessError(std::string("mkdtemp: ") + strerror(errno));
  path_ = std::filesystem::absolute(buf.data());
  if (!env_flag("HUBPROBE_KEEP_ARTIFACTS")) janitor_track(TrackedKind::kDirectory, path_.string());
}

TempDir::~TempDir() {
  if (env_flag("HUBPROBE_KEEP_ARTIFACTS")) {
    std::cerr << "[harness] keeping artifacts in " << path_ << "\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  janitor_untrack(TrackedKind::kDirectory, path_.string());
}

std::filesystem::path TempDir::write_file(const std::string& name, const std::string& content) const {
  auto p = path_ / name;
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << content;
  f.close();
  if (!f) throw HarnessError("cannot write " + p.string());
  return p;
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

Process::Process(const std::vector<std::string>& argv, const std::string& netns, const std::filesystem::path& log_dir,
                 const std::string& label)
    : label_(label), out_path_(log_dir / (label + ".out")), err_path_(log_dir / (label + ".err")) {
  if (!netns.empty()) argv_ = {"ip", "netns", "exec", netns};
  argv_.insert(argv_.end(), argv.begin(), argv.end());
  int in_fd = open_or_throw("/dev/null", O_RDONLY);
  int out_fd = -1, err_fd = -1;
  try {
    out_fd = open_or_throw(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC);
    err_fd = open_or_throw(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC);
    started_ = Clock::now();
    pid_ = spawn(argv_, in_fd, out_fd, err_fd);
  } catch (...) {
    for (int fd : {in_fd, out_fd, err_fd}) {
      if (fd >= 0) close(fd);
    }
    throw;
  }
  close(in_fd);
  close(out_fd);
  close(err_fd);
}

Process::~Process() { stop(); }

bool Process::try_reap() {
  if (exit_.reaped || pid_ <= 0) return exit_.reaped;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_.reaped = true;
    exit_.raw_status = status;
    ended_ = Clock::now();
  } else if (r < 0) {
    // ECHILD: not our child any more (cannot happen unless someone else reaped it). Treat as gone.
    exit_.reaped = true;
    exit_.raw_status = 0;
    ended_ = Clock::now();
  }
  return exit_.reaped;
}

bool Process::running() { return !try_reap(); }

bool Process::wait_for_exit(Seconds timeout) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  while (!try_reap()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

void Process::signal(int sig) {
  // Only a PID that we started and have not reaped yet: it cannot have been reused.
  if (!try_reap()) kill(pid_, sig);
}

ExitInfo Process::stop(Seconds grace) {
  if (pid_ <= 0 || try_reap()) return exit_;
  kill(pid_, SIGTERM);
  kill(pid_, SIGCONT);  // a stopped process acts on SIGTERM only once continued
  if (!wait_for_exit(grace)) {
    kill(pid_, SIGKILL);
    int status = 0;
    pid_t r;
    do {
      r = waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    exit_.reaped = true;
    exit_.raw_status = status;
    ended_ = Clock::now();
  }
  return exit_;
}

double Process::seconds() const { return Seconds((exit_.reaped ? ended_ : Clock::now()) - started_).count(); }

std::string Process::stdout_text() const { return read_text_file(out_path_); }
std::string Process::stderr_text() const { return read_text_file(err_path_); }

std::string Process::describe() const {
  std::ostringstream s;
  s << "process " << label_ << " (pid " << pid_ << "): " << join_argv(argv_) << "\n"
    << "state: " << (exit_.reaped ? exit_.describe() : "running") << " after " << seconds() << " s\n"
    << "--- stdout ---\n"
    << tail(stdout_text()) << "\n--- stderr ---\n"
    << tail(stderr_text()) << "\n--------------";
  return s.str();
}

}  // namespace hubprobe::it
