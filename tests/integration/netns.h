// SPDX-License-Identifier: Apache-2.0
// Integration-test harness: network namespaces, a veth testbed between two of them, code run inside a
// namespace, and nftables rules (loss injection, packet counters).
//
// Names: every namespace is "hpit<PID>-<N><role>" (PID of the test binary, N a counter), so parallel
// runs never collide, and interfaces live inside the namespaces (never in the initial one), so their
// names need not be unique. Addresses: 198.18.0.0/15 and 2001:db8::/32 only.
//
// Cleanup: RAII on every normal path, including a failed ASSERT (it returns from the test body and the
// destructors run). For the paths that skip destructors (SIGINT, SIGTERM, abort, a crash, SIGKILL by a
// ctest timeout) the janitor (janitor.h) deletes what is left when the test binary dies. Processes
// started by the harness die with the test binary through PR_SET_PDEATHSIG.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "process.h"

namespace hubprobe::it {

/// Why network namespaces cannot be used here (not root, `ip netns add` fails, ...), or nullopt.
/// Probed once per test binary.
std::optional<std::string> netns_unavailable_reason();
/// Why nftables cannot be used in a namespace (nft missing, kernel without nf_tables), or nullopt.
std::optional<std::string> nft_unavailable_reason();
/// HUBPROBE_REQUIRE_PRIVILEGED=1: a missing privilege or feature fails instead of skipping (CI).
bool privileged_required();

/// Skips the current test (or fails it under HUBPROBE_REQUIRE_PRIVILEGED=1) when `reason_expr`, an
/// std::optional<std::string>, holds a reason. Use in a test body or in SetUp().
#define HUBPROBE_REQUIRE(reason_expr)                                                \
  do {                                                                               \
    if (const std::optional<std::string> hp_reason_ = (reason_expr)) {               \
      if (::hubprobe::it::privileged_required()) {                                   \
        FAIL() << *hp_reason_ << " (failing because HUBPROBE_REQUIRE_PRIVILEGED=1)"; \
      } else {                                                                       \
        GTEST_SKIP() << *hp_reason_;                                                 \
      }                                                                              \
    }                                                                                \
  } while (0)
#define HUBPROBE_REQUIRE_NETNS() HUBPROBE_REQUIRE(::hubprobe::it::netns_unavailable_reason())
#define HUBPROBE_REQUIRE_NFT() HUBPROBE_REQUIRE(::hubprobe::it::nft_unavailable_reason())

/// A network namespace with `lo` up, deleted on destruction.
class Namespace {
 public:
  /// `role` is a short tag appended to the name ("s" for sender, "r" for reflector, ...).
  explicit Namespace(const std::string& role);
  ~Namespace();
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;

  const std::string& name() const { return name_; }
  /// /var/run/netns/NAME, what setns() opens.
  std::string path() const;
  /// `ip -n NAME args...`, throws HarnessError unless it exits 0.
  CommandResult ip(const std::vector<std::string>& args) const;
  /// `ip netns exec NAME argv...` to completion.
  CommandResult exec(const std::vector<std::string>& argv, Seconds timeout = Seconds(10),
                     const std::string& stdin_data = {}) const;
  /// Same, throws HarnessError unless it exits 0.
  CommandResult exec_checked(const std::vector<std::string>& argv, Seconds timeout = Seconds(10),
                             const std::string& stdin_data = {}) const;
  /// Inode of the namespace (to recognise a process that has entered it).
  ino_t inode() const;

 private:
  std::string name_;
  bool created_ = false;
};

/// Two namespaces joined by a veth pair:
///   sender   (hpv0)  198.18.0.1/24  2001:db8::1/64   <-->   reflector (hpv1)  198.18.0.2/24  2001:db8::2/64
/// IPv6 addresses are added with nodad, so both families work as soon as the constructor returns.
class Testbed {
 public:
  static constexpr const char* kSenderIf = "hpv0";
  static constexpr const char* kReflectorIf = "hpv1";
  static constexpr const char* kSenderV4 = "198.18.0.1";
  static constexpr const char* kReflectorV4 = "198.18.0.2";
  static constexpr const char* kSenderV6 = "2001:db8::1";
  static constexpr const char* kReflectorV6 = "2001:db8::2";

  Testbed();
  const Namespace& sender() const { return sender_; }
  const Namespace& reflector() const { return reflector_; }

 private:
  Namespace sender_;
  Namespace reflector_;
};

/// Forks a child that joins `ns` (setns on /var/run/netns/NAME) and runs `fn`; the child exits with
/// fn's return value (or 126 if it threw / setns failed). The child dies with the test binary.
/// Returns the child's PID; the caller owns it (see ChildProcess).
pid_t fork_in_netns(const Namespace& ns, const std::function<int()>& fn);

/// A forked helper child (not exec'd). The destructor SIGKILLs it by PID and reaps it.
class ChildProcess {
 public:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  pid_t pid() const { return pid_; }
  /// Waits up to `timeout`; returns how it ended (reaped=false if still running).
  ExitInfo wait(Seconds timeout);
  void kill_now();

 private:
  pid_t pid_;
  ExitInfo exit_;
};

/// Runs `fn` inside `ns` in a forked child and waits for it: returns its exit code. Throws HarnessError
/// if it does not finish within `timeout` (it is killed) or dies from a signal.
int run_in_netns(const Namespace& ns, const std::function<int()>& fn, Seconds timeout = Seconds(10));

/// nftables inside one namespace: table `inet hptest` with base chains `input` and `output` (filter,
/// priority 0, policy accept). The table goes away with the namespace.
class Nft {
 public:
  explicit Nft(const Namespace& ns);
  /// Adds a named counter. Names are [A-Za-z0-9_] and must not be an nft keyword ("fwd", "meta", ...):
  /// nft 1.0.6 takes no quoted counter names.
  void add_counter(const std::string& name);
  /// Appends `rule` (nft syntax, e.g. `udp dport 862 counter name "x" drop`) to chain input or output.
  void add_rule(const std::string& chain, const std::string& rule);
  /// Drops `percent` % of UDP datagrams (at random, numgen) to destination port `port` on `input`, or
  /// from source port `port` on `output`, counting the drops in a new counter named `counter`.
  void drop_random(const std::string& chain, unsigned percent, uint16_t port, const std::string& counter);
  /// Packets counted so far by a named counter.
  uint64_t packets(const std::string& counter) const;
  /// The whole ruleset, for messages.
  std::string ruleset() const;

 private:
  void load(const std::string& text) const;
  const Namespace& ns_;
};

}  // namespace hubprobe::it
