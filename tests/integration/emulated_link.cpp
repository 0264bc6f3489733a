// SPDX-License-Identifier: Apache-2.0
#include "emulated_link.h"

#include <chrono>
#include <sstream>
#include <thread>
#include <utility>

#ifndef HUBPROBE_BINARY_DIR
#define HUBPROBE_BINARY_DIR "."
#endif

namespace hubprobe::it {

std::string linkemu_binary() { return std::string(HUBPROBE_BINARY_DIR) + "/tests/linkemu/hubprobe-linkemu"; }

std::optional<std::string> ethtool_missing_reason() {
  const CommandResult r = run_command({"ethtool", "--version"}, Seconds(5));
  if (!r.ok()) return std::string("ethtool is not usable: ") + r.describe();
  return std::nullopt;
}

std::optional<std::string> tcpdump_missing_reason() {
  const CommandResult r = run_command({"tcpdump", "--version"}, Seconds(5));
  if (!r.ok()) return std::string("tcpdump is not usable: ") + r.describe();
  return std::nullopt;
}

EmulatedLink::EmulatedLink(const std::filesystem::path& dir, const std::vector<std::string>& emulator_args,
                           bool static_neighbours) {
  s_ = std::make_unique<Namespace>("s");
  b_ = std::make_unique<Namespace>("b");
  r_ = std::make_unique<Namespace>("r");
  run_checked(
      {"ip", "link", "add", "hpv0", "netns", s_->name(), "type", "veth", "peer", "name", "bl0", "netns", b_->name()});
  run_checked(
      {"ip", "link", "add", "hpv1", "netns", r_->name(), "type", "veth", "peer", "name", "br0", "netns", b_->name()});
  s_->ip({"addr", "add", std::string(kSenderV4) + "/24", "dev", "hpv0"});
  r_->ip({"addr", "add", std::string(kReflectorV4) + "/24", "dev", "hpv1"});
  for (const Namespace* ns : {s_.get(), b_.get(), r_.get()}) {  // no RS/MLD chatter on the link
    ns->exec_checked({"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"});
  }
  const std::vector<std::pair<const Namespace*, std::string>> ifs = {
      {s_.get(), "hpv0"}, {b_.get(), "bl0"}, {b_.get(), "br0"}, {r_.get(), "hpv1"}};
  for (const auto& [ns, dev] : ifs) {
    // Wire-size frames with complete checksums for the emulator (tests/linkemu/README.md).
    ns->exec_checked({"ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off"});
    ns->ip({"link", "set", "dev", dev, "up"});
  }
  if (static_neighbours) {
    // `ip netns exec` mounts the namespace's own /sys, so this is the interface of that namespace.
    auto mac_of = [](const Namespace& ns, const std::string& dev) {
      const CommandResult r = ns.exec_checked({"cat", "/sys/class/net/" + dev + "/address"});
      std::string mac = r.out;
      while (!mac.empty() && (mac.back() == '\n' || mac.back() == ' ')) mac.pop_back();
      return mac;
    };
    const std::string mac_s = mac_of(*s_, "hpv0");
    const std::string mac_r = mac_of(*r_, "hpv1");
    s_->ip({"neigh", "replace", kReflectorV4, "lladdr", mac_r, "dev", "hpv0", "nud", "permanent"});
    r_->ip({"neigh", "replace", kSenderV4, "lladdr", mac_s, "dev", "hpv1", "nud", "permanent"});
  }
  sock_ = (dir / "emu.sock").string();
  std::vector<std::string> argv = {linkemu_binary(), "--a", "bl0", "--b", "br0"};
  argv.insert(argv.end(), emulator_args.begin(), emulator_args.end());
  argv.insert(argv.end(), {"--control", sock_});
  emu_ = std::make_unique<Process>(argv, b_->name(), dir, "linkemu");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!std::filesystem::exists(sock_) && emu_->running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!emu_->running() || !std::filesystem::exists(sock_)) {
    throw HarnessError("the link emulator did not start\n" + emu_->describe());
  }
}

EmulatedLink::~EmulatedLink() {
  emu_.reset();  // the process first, then the namespaces (members go in reverse order anyway)
}

std::string EmulatedLink::control(const std::string& line) const {
  const CommandResult r = run_command({linkemu_binary(), "--ctl", sock_, line}, Seconds(5));
  if (r.timed_out || !r.exit.exited()) throw HarnessError("linkemu control '" + line + "' failed\n" + r.describe());
  return r.out;
}

void EmulatedLink::set(const std::string& settings) const {
  const std::string reply = control("set " + settings);
  if (reply != "ok\n") throw HarnessError("linkemu 'set " + settings + "' answered: " + reply);
}

std::map<std::string, EmulatedLink::Fields> EmulatedLink::show() const {
  std::map<std::string, Fields> out;
  std::istringstream lines(control("show"));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string dir, kv;
    if (!(words >> dir)) continue;
    Fields& f = out[dir];
    while (words >> kv) {
      const size_t eq = kv.find('=');
      if (eq != std::string::npos) f[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  return out;
}

uint64_t EmulatedLink::counter(const std::string& direction, const std::string& key) const {
  const auto all = show();
  const auto d = all.find(direction);
  if (d == all.end() || !d->second.count(key)) {
    throw HarnessError("linkemu show has no " + direction + " " + key);
  }
  return std::stoull(d->second.at(key));
}

}  // namespace hubprobe::it
