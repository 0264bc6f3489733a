// SPDX-License-Identifier: Apache-2.0
// Shared inputs of the preference document tests (tests/unit/preferences_test.cpp and the component tests
// of the schema and the generation file): a temporary folder, file helpers and gz-edge-01's view.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "hubprobe/preferences.h"

namespace hubprobe {
namespace {

constexpr WallNs kNow = 1'795'602'660'123'000'000;  // 2026-11-25T10:31:00.123Z
constexpr WallNs kSecond = 1'000'000'000;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A folder under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "hubprobe-prefs-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline CandidateView candidate(const std::string& peer, const std::string& path, uint32_t rank, PathState state,
                               double delay_rt_s) {
  CandidateView view;
  view.id = peer + "/" + path;
  view.peer = peer;
  view.path = path;
  view.rank = rank;
  view.state = state;
  view.eligible = state == PathState::kOk;
  view.delay_rt_s = delay_rt_s;
  view.rtt_p99_s = delay_rt_s;
  view.delay_ow_s = kNaN;
  view.delay_ow_error_s = kNaN;
  view.delay_variation_s = 0;
  view.lossrate = 0;
  view.score_s = delay_rt_s;
  view.confidence = 1;
  view.samples = 100;
  view.judged = 100;
  view.state_since = kNow - 600 * kSecond;
  return view;
}

// gz-edge-01's view: sg over two uplinks (a preferred, b degraded), bj unreachable.
inline PreferenceDocumentInput gz_input() {
  PreferenceDocumentInput input;
  input.agent_id = "gz-edge-01";
  input.agent_hub = "gz";
  input.generation = 42;
  input.timestamp = kNow;

  DestinationPreferences sg;
  sg.hub = "sg";
  CandidateView a = candidate("sg-edge-01", "uplink-a", 1, PathState::kOk, 0.0031);
  a.preferred = true;
  a.rtt_p99_s = 0.0034;
  a.delay_ow_s = 0.0015;
  a.delay_ow_error_s = 0.00005;
  a.delay_variation_s = 0.00002;
  a.lossrate = 0.01;
  a.score_s = 0.004124;
  CandidateView b = candidate("sg-edge-01", "uplink-b", 2, PathState::kDegraded, 0.0052);
  b.delay_ow_error_s = 0.00005;  // an error bound without a one-way delay is not published
  b.lossrate = 0.2;
  b.confidence = 0.75;
  b.samples = 75;
  sg.ranked = {a, b};
  sg.preferred = a.id;

  DestinationPreferences bj;
  bj.hub = "bj";
  CandidateView down = candidate("bj-edge-01", "uplink-a", 1, PathState::kDown, kNaN);
  down.rtt_p99_s = kNaN;
  down.delay_variation_s = kNaN;
  down.lossrate = 1.0;
  down.score_s = kNaN;
  down.confidence = 0;
  down.samples = 0;
  bj.ranked = {down};

  input.destinations = {sg, bj};  // unsorted on purpose
  return input;
}

}  // namespace
}  // namespace hubprobe
