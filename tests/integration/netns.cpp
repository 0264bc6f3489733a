// SPDX-License-Identifier: Apache-2.0
#include "netns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "janitor.h"

namespace hubprobe::it {
namespace {

using Clock = std::chrono::steady_clock;

bool env_flag(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && std::string(v) == "1";
}

bool valid_nft_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

}  // namespace

bool privileged_required() { return env_flag("HUBPROBE_REQUIRE_PRIVILEGED"); }

std::optional<std::string> netns_unavailable_reason() {
  static const std::optional<std::string> reason = []() -> std::optional<std::string> {
    if (geteuid() != 0) {
      return "integration tests need root (network namespaces, veth, nftables); running as uid " +
             std::to_string(geteuid());
    }
    try {
      Namespace probe("probe");
    } catch (const std::exception& e) {
      return std::string("cannot create a network namespace: ") + e.what();
    }
    return std::nullopt;
  }();
  return reason;
}

std::optional<std::string> nft_unavailable_reason() {
  static const std::optional<std::string> reason = []() -> std::optional<std::string> {
    if (auto r = netns_unavailable_reason()) return r;
    try {
      Namespace probe("nftprobe");
      Nft nft(probe);
      nft.add_counter("probe");
      (void)nft.packets("probe");
    } catch (const std::exception& e) {
      return std::string("nftables unusable in a namespace (loss injection needs `nft` and nf_tables): ") + e.what();
    }
    return std::nullopt;
  }();
  return reason;
}

// ---- Namespace -------------------------------------------------------------------------------------

Namespace::Namespace(const std::string& role) {
  static unsigned counter = 0;
  name_ = "hpit" + std::to_string(getpid()) + "-" + std::to_string(counter++) + role;
  janitor_track(TrackedKind::kNamespace, name_);
  CommandResult r = run_command({"ip", "netns", "add", name_});
  if (!r.ok()) {
    janitor_untrack(TrackedKind::kNamespace, name_);
    throw HarnessError("cannot create network namespace " + name_ + "\n" + r.describe());
  }
  created_ = true;
  try {
    ip({"link", "set", "lo", "up"});
  } catch (...) {
    run_command({"ip", "netns", "del", name_});
    janitor_untrack(TrackedKind::kNamespace, name_);
    created_ = false;
    throw;
  }
}

Namespace::~Namespace() {
  if (!created_) return;
  CommandResult r = run_command({"ip", "netns", "del", name_});
  if (r.ok()) {
    janitor_untrack(TrackedKind::kNamespace, name_);
  } else {
    // Left announced: the janitor retries when the test binary exits.
    std::cerr << "[harness] warning: could not delete namespace " << name_ << "\n" << r.describe() << "\n";
  }
}

std::string Namespace::path() const { return "/var/run/netns/" + name_; }

CommandResult Namespace::ip(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"ip", "-n", name_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_checked(argv);
}

CommandResult Namespace::exec(const std::vector<std::string>& argv, Seconds timeout,
                              const std::string& stdin_data) const {
  std::vector<std::string> full = {"ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return run_command(full, timeout, stdin_data);
}

CommandResult Namespace::exec_checked(const std::vector<std::string>& argv, Seconds timeout,
                                      const std::string& stdin_data) const {
  CommandResult r = exec(argv, timeout, stdin_data);
  if (!r.ok()) throw HarnessError("harness command failed in namespace " + name_ + "\n" + r.describe());
  return r;
}

ino_t Namespace::inode() const {
  struct stat st {};
  if (stat(path().c_str(), &st) != 0) throw HarnessError("stat " + path() + ": " + strerror(errno));
  return st.st_ino;
}

// ---- Testbed ---------------------------------------------------------------------------------------

Testbed::Testbed() : sender_("s"), reflector_("r") {
  sender_.ip({"link", "add", kSenderIf, "type", "veth", "peer", "name", kReflectorIf, "netns", reflector_.name()});
  sender_.ip({"addr", "add", std::string(kSenderV4) + "/24", "dev", kSenderIf});
  sender_.ip({"addr", "add", std::string(kSenderV6) + "/64", "dev", kSenderIf, "nodad"});
  reflector_.ip({"addr", "add", std::string(kReflectorV4) + "/24", "dev", kReflectorIf});
  reflector_.ip({"addr", "add", std::string(kReflectorV6) + "/64", "dev", kReflectorIf, "nodad"});
  sender_.ip({"link", "set", kSenderIf, "up"});
  reflector_.ip({"link", "set", kReflectorIf, "up"});
  // Carrier comes up asynchronously; wait until both ends report it.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    bool up = true;
    for (const auto& [ns, dev] : {std::pair{&sender_, kSenderIf}, std::pair{&reflector_, kReflectorIf}}) {
      CommandResult r = ns->ip({"-j", "link", "show", "dev", dev});
      auto j = nlohmann::json::parse(r.out, nullptr, false);
      if (j.is_discarded() || !j.is_array() || j.empty() || j[0].value("operstate", "") != "UP") up = false;
    }
    if (up) break;
    if (Clock::now() >= deadline) throw HarnessError("veth pair did not come up within 5 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// ---- code inside a namespace -----------------------------------------------------------------------

pid_t fork_in_netns(const Namespace& ns, const std::function<int()>& fn) {
  const std::string path = ns.path();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw HarnessError("open " + path + ": " + strerror(errno));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    throw HarnessError(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    child_die_with_parent(parent);
    int code = 126;
    if (setns(fd, CLONE_NEWNET) == 0) {
      try {
        code = fn();
      } catch (...) {
        code = 126;
      }
    }
    // _exit: none of the parent's atexit handlers, stdio buffers or GoogleTest state in the child.
    _exit(code);
  }
  close(fd);
  return pid;
}

ChildProcess::~ChildProcess() { kill_now(); }

ExitInfo ChildProcess::wait(Seconds timeout) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  while (!exit_.reaped && pid_ > 0) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_.reaped = true;
      exit_.raw_status = status;
      break;
    }
    if (r < 0 && errno != EINTR) {
      exit_.reaped = true;
      break;
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return exit_;
}

void ChildProcess::kill_now() {
  if (pid_ <= 0 || exit_.reaped) return;
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_.reaped = true;
  exit_.raw_status = status;
}

int run_in_netns(const Namespace& ns, const std::function<int()>& fn, Seconds timeout) {
  ChildProcess child(fork_in_netns(ns, fn));
  ExitInfo info = child.wait(timeout);
  if (!info.reaped) {
    child.kill_now();
    throw HarnessError("helper child in " + ns.name() + " did not finish within " + std::to_string(timeout.count()) +
                       " s");
  }
  if (!info.exited()) throw HarnessError("helper child in " + ns.name() + ": " + info.describe());
  return info.exit_code();
}

// ---- nftables --------------------------------------------------------------------------------------

Nft::Nft(const Namespace& ns) : ns_(ns) {
  load(
      "table inet hptest {\n"
      "  chain input { type filter hook input priority 0; policy accept; }\n"
      "  chain output { type filter hook output priority 0; policy accept; }\n"
      "}\n");
}

void Nft::load(const std::string& text) const {
  CommandResult r = ns_.exec({"nft", "-f", "-"}, Seconds(10), text);
  if (!r.ok()) throw HarnessError("nft rejected:\n" + text + "\n" + r.describe());
}

void Nft::add_counter(const std::string& name) {
  if (!valid_nft_name(name)) throw HarnessError("bad nft counter name " + name);
  load("add counter inet hptest " + name + "\n");
}

void Nft::add_rule(const std::string& chain, const std::string& rule) {
  if (chain != "input" && chain != "output") throw HarnessError("no nft chain " + chain);
  if (rule.find('\n') != std::string::npos) throw HarnessError("nft rule must be one line");
  load("add rule inet hptest " + chain + " " + rule + "\n");
}

void Nft::drop_random(const std::string& chain, unsigned percent, uint16_t port, const std::string& counter) {
  if (percent > 100) throw HarnessError("drop percentage above 100");
  add_counter(counter);
  const std::string match = chain == "input" ? "udp dport " : "udp sport ";
  // numgen's range is 0..99, so 100 % is a plain drop.
  const std::string sample = percent >= 100 ? std::string() : " numgen random mod 100 < " + std::to_string(percent);
  add_rule(chain, match + std::to_string(port) + sample + " counter name \"" + counter + "\" drop");
}

uint64_t Nft::packets(const std::string& counter) const {
  if (!valid_nft_name(counter)) throw HarnessError("bad nft counter name " + counter);
  CommandResult r = ns_.exec({"nft", "-j", "list", "counter", "inet", "hptest", counter});
  if (!r.ok()) throw HarnessError("cannot read nft counter\n" + r.describe());
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (!j.is_discarded() && j.contains("nftables")) {
    for (const auto& item : j["nftables"]) {
      if (item.contains("counter")) return item["counter"].value("packets", uint64_t{0});
    }
  }
  throw HarnessError("unexpected `nft -j list counter` output: " + r.out);
}

std::string Nft::ruleset() const { return ns_.exec({"nft", "list", "ruleset"}).out; }

}  // namespace hubprobe::it
