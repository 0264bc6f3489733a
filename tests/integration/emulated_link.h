// SPDX-License-Identifier: Apache-2.0
// Integration-test harness: two namespaces joined by one emulated WAN link (hubprobe-linkemu, the
// link emulator of tests/linkemu, in a third namespace between them):
//
//   hpit<PID>-<N>s  hpv0 198.18.0.1/24 --veth-- bl0 [ hpit<PID>-<N>b: hubprobe-linkemu --a bl0 --b br0 ]
//                                              br0 --veth-- hpv1 198.18.0.2/24  hpit<PID>-<N>r
//
// "ab" is the direction s -> r (forward for a session-sender in s), "ba" is r -> s. Settings change at
// run time through the emulator's control socket (set(), show()). Offloads are off and IPv6 is off, as
// the emulator needs (tests/linkemu/README.md). Optionally, permanent neighbour entries on both ends,
// so that nothing but the test's own packets crosses the link (no ARP): the emulator's drop counters
// then count only the test's packets.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "netns.h"
#include "process.h"

namespace hubprobe::it {

/// The hubprobe-linkemu binary of this build tree.
std::string linkemu_binary();
/// Why ethtool / tcpdump cannot be run (missing), or nullopt.
std::optional<std::string> ethtool_missing_reason();
std::optional<std::string> tcpdump_missing_reason();

class EmulatedLink {
 public:
  static constexpr const char* kSenderV4 = "198.18.0.1";
  static constexpr const char* kReflectorV4 = "198.18.0.2";

  /// Builds the three namespaces and starts the emulator with `emulator_args` (e.g. {"--delay",
  /// "10ms"}); its control socket and log go to `dir`. With `static_neighbours`, s and r get permanent
  /// ARP entries for each other. Throws HarnessError when a step fails.
  EmulatedLink(const std::filesystem::path& dir, const std::vector<std::string>& emulator_args,
               bool static_neighbours = false);
  ~EmulatedLink();
  EmulatedLink(const EmulatedLink&) = delete;
  EmulatedLink& operator=(const EmulatedLink&) = delete;

  const Namespace& sender() const { return *s_; }
  const Namespace& backbone() const { return *b_; }
  const Namespace& reflector() const { return *r_; }
  Process& emulator() { return *emu_; }
  const std::string& control_socket() const { return sock_; }

  /// One control line ("set ab delay=11ms", "show"); returns the reply. Throws HarnessError when the
  /// client fails.
  std::string control(const std::string& line) const;
  /// `set SETTINGS` ("ab loss=5%", "both delay=10ms"); throws HarnessError unless the reply is "ok".
  void set(const std::string& settings) const;

  /// One direction of `show`: every key=value of its line ("delay" -> "10ms", "drop_loss" -> "12").
  using Fields = std::map<std::string, std::string>;
  /// `show`, by direction ("ab", "ba").
  std::map<std::string, Fields> show() const;
  /// A counter of `show` as an integer (throws HarnessError when absent).
  uint64_t counter(const std::string& direction, const std::string& key) const;

 private:
  std::unique_ptr<Namespace> s_, b_, r_;
  std::string sock_;
  std::unique_ptr<Process> emu_;
};

}  // namespace hubprobe::it
