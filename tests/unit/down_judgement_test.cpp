// SPDX-License-Identifier: Apache-2.0
// One judgement of "down": the same probe outcomes give the same down/up in /status (the session's peer
// state, from its WindowedStats) and in the preference document (the path's state, from its hub's
// PathSelector), both fed by record_probe_event() as the agent feeds them.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hubprobe/path_selection.h"
#include "hubprobe/preferences.h"
#include "hubprobe/probe_outcome.h"
#include "hubprobe/window_stats.h"

namespace hubprobe {
namespace {

using stamp::ProbeEvent;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;
constexpr WallNs kT0 = 1'700'000'000 * kSecond;
constexpr int64_t kInterval = 100 * kMs;
const std::string kId = "b/uplink";

ProbeEvent reply(uint32_t seq) {
  ProbeEvent e;
  e.kind = ProbeEvent::Kind::kReply;
  e.seq = seq;
  e.sample.seq = seq;
  e.sample.reflector_seq = seq;
  e.sample.t1 = {kT0, dp::TimestampSource::kKernelSoftware};
  e.sample.t2 = kT0 + 10 * kMs;
  e.sample.t3 = e.sample.t2;
  e.sample.t4 = {kT0 + 20 * kMs, dp::TimestampSource::kKernelSoftware};
  return e;
}

ProbeEvent lost(uint32_t seq) {
  ProbeEvent e;
  e.kind = ProbeEvent::Kind::kLost;
  e.seq = seq;
  return e;
}

// One session (peer b over path uplink) of hub sh, with the settings of a [probe] down_after = 3.
struct Session {
  Session() : stats(options()), selector(SlaClass{}) { selector.add_candidate(kId, "b", "uplink", kInterval); }
  static WindowOptions options() {
    WindowOptions o;
    o.peer_state.down_after_lost = 3;
    return o;
  }

  // What /status shows as the peer's state, and the preference document as the path's, after `event` at
  // `now` (the same moment on both clocks: nothing steps the wall clock here).
  std::pair<std::string, std::string> feed(const ProbeEvent& event, const Now& now) {
    stats.on_sent(event.seq, now.mono - kInterval);
    record_probe_event(stats, &selector, kId, event, now);
    selector.evaluate(now);
    PreferenceDocumentInput input;
    input.agent_id = "gz-edge-01";
    input.agent_hub = "gz";
    input.generation = 1;
    input.timestamp = now.wall;
    input.destinations.push_back({"sh", selector.ranked(), selector.preferred()});
    const nlohmann::json document = make_preference_document(input);
    return {to_string(stats.snapshot(now.mono).state), document["destinations"][0]["paths"][0]["state"]};
  }

  WindowedStats stats;
  PathSelector selector;
};

struct Step {
  ProbeEvent event;
  const char* what;
};

// Replays `steps` one interval apart and checks after each that the peer is down exactly when its path is.
void expect_one_judgement(const std::vector<Step>& steps) {
  Session session;
  int64_t now = kT0;
  for (const Step& step : steps) {
    now += kInterval;
    const auto [peer, path] = session.feed(step.event, Now{now, now});
    EXPECT_EQ(peer == "down", path == "down")
        << "after " << step.what << ": /status says the peer is " << peer << ", the preference document says "
        << "the path is " << path;
  }
}

std::vector<Step> replies(uint32_t first, uint32_t count) {
  std::vector<Step> steps;
  for (uint32_t seq = first; seq < first + count; ++seq) steps.push_back({reply(seq), "a reply"});
  return steps;
}

std::vector<Step> operator+(std::vector<Step> a, const std::vector<Step>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(DownJudgement, DownAfterDownAfterLossesInBothViews) {
  expect_one_judgement(replies(0, 12) + std::vector<Step>{{lost(12), "1 loss"}, {lost(13), "2 losses"}} +
                       replies(14, 1) +
                       std::vector<Step>{{lost(15), "1 loss"}, {lost(16), "2 losses"}, {lost(17), "3 losses"}});
}

TEST(DownJudgement, UpAgainAtTheSameReplyInBothViews) {
  // Down, then replies: the peer is up again after three in a row; the path must not be up sooner.
  expect_one_judgement(replies(0, 12) +
                       std::vector<Step>{{lost(12), "1 loss"}, {lost(13), "2 losses"}, {lost(14), "3 losses"}} +
                       replies(15, 5));
}

TEST(DownJudgement, OutOfOrderOutcomesCountTheSameInBothViews) {
  // Probe 24 times out after the reply to 25 came: an old gap, not part of a run of losses up to now. Then
  // 26 and 27 are lost: two in a row since the last reply, not three.
  expect_one_judgement(replies(0, 22) + std::vector<Step>{{lost(22), "loss of 22"},
                                                          {lost(23), "loss of 23"},
                                                          {reply(25), "reply to 25"},
                                                          {lost(24), "loss of 24 (after the reply to 25)"},
                                                          {lost(26), "loss of 26"},
                                                          {lost(27), "loss of 27"}});
}

}  // namespace
}  // namespace hubprobe
