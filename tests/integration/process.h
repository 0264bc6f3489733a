// SPDX-License-Identifier: Apache-2.0
// Integration-test harness: running commands and supervising the processes the tests start.
// Everything here forks and execs argv vectors directly (never through a shell), and only ever signals
// processes it started itself, by PID. Every child gets PR_SET_PDEATHSIG(SIGKILL), so nothing outlives
// the test binary even when it is killed. Not thread-safe: the test binary is single-threaded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace hubprobe::it {

using Seconds = std::chrono::duration<double>;

/// A harness step failed (a command exited non-zero, a namespace could not be made, ...). Thrown from
/// test code, it is reported by GoogleTest as a failure with this message; destructors still clean up.
struct HarnessError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// "a b 'c d'" for messages (quoting only for readability, nothing is ever given to a shell).
std::string join_argv(const std::vector<std::string>& argv);

/// How a child ended, decoded from a waitpid() status.
struct ExitInfo {
  bool reaped = false;  ///< false: still running, or killed after a timeout and never seen exit
  int raw_status = 0;
  bool exited() const;           ///< normal exit (not a signal)
  int exit_code() const;         ///< -1 unless exited()
  int term_signal() const;       ///< 0 unless killed by a signal
  std::string describe() const;  ///< "exit 0", "killed by signal 11 (Segmentation fault)", "not reaped"
};

struct CommandResult {
  std::vector<std::string> argv;
  ExitInfo exit;
  bool timed_out = false;  ///< it ran past its timeout and was killed (SIGKILL)
  std::string out;
  std::string err;
  double seconds = 0;  ///< wall time from fork to reap
  bool ok() const { return !timed_out && exit.exited() && exit.exit_code() == 0; }
  /// A multi-line description for assertion messages: command, outcome, stdout, stderr.
  std::string describe() const;
};

/// Runs argv to completion with stdout and stderr captured. Past `timeout` the child is SIGKILLed and
/// reaped (timed_out is set). `stdin_data` is written to its stdin (which is /dev/null when empty).
CommandResult run_command(const std::vector<std::string>& argv, Seconds timeout = Seconds(10),
                          const std::string& stdin_data = {});

/// Same, but throws HarnessError (with the full description) unless the command exited 0.
CommandResult run_checked(const std::vector<std::string>& argv, Seconds timeout = Seconds(10),
                          const std::string& stdin_data = {});

/// A fresh directory under $TMPDIR (default /tmp), removed with its contents on destruction unless
/// HUBPROBE_KEEP_ARTIFACTS=1 (then its path is printed).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  /// Writes `content` to path()/name and returns the full path.
  std::filesystem::path write_file(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

/// A process started by the test: argv, run inside network namespace `netns` through
/// `ip netns exec NETNS argv...` (the PID is that of the command itself: ip execs it), or directly when
/// netns is empty. stdout and stderr go to LOG_DIR/LABEL.out and LOG_DIR/LABEL.err.
/// The destructor stops it (SIGTERM, then SIGKILL after a grace period) and reaps it.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& netns, const std::filesystem::path& log_dir,
          const std::string& label);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& label() const { return label_; }
  /// True while it has not exited (reaps it when it has).
  bool running();
  /// Waits up to `timeout` for it to exit; true once it has exited and been reaped.
  bool wait_for_exit(Seconds timeout);
  /// Sends `sig` to the process (by PID). No effect once it has been reaped.
  void signal(int sig);
  /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps. Returns how it ended.
  ExitInfo stop(Seconds grace = Seconds(2));
  const ExitInfo& exit_info() const { return exit_; }
  /// Seconds from start until it was reaped (or until now while running).
  double seconds() const;
  std::string stdout_text() const;
  std::string stderr_text() const;
  /// Label, argv, state and the tail of its output, for assertion messages.
  std::string describe() const;

 private:
  bool try_reap();

  std::vector<std::string> argv_;
  std::string label_;
  std::filesystem::path out_path_;
  std::filesystem::path err_path_;
  pid_t pid_ = -1;
  ExitInfo exit_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point ended_;
};

/// Reads a whole file ("" when missing).
std::string read_text_file(const std::filesystem::path& path);

/// Sets PR_SET_PDEATHSIG(SIGKILL) in a freshly forked child and exits at once if the parent is
/// already gone. `parent` is the PID of the forking process (getpid() before fork()).
void child_die_with_parent(pid_t parent);

}  // namespace hubprobe::it
