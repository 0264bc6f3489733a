// SPDX-License-Identifier: Apache-2.0
// Peer discovery through etcd, the pure part (agent/policy/include/hubprobe/discovery.h): registrations read from
// PREFIX/agents/ become peers resolved like [[peer]] entries without `paths`, or are ignored with a reason.
#include "hubprobe/discovery.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace hubprobe {
namespace {

using nlohmann::json;

// This agent: gz-edge-01, advertising 198.18.0.1, with one configured peer (sh-edge-01, SLA class gold),
// paths per hub and family, and [probe] defaults that discovered peers inherit.
constexpr std::string_view kConfig = R"([agent]
id = "gz-edge-01"
hub = "gz"

[probe]
interval = "50ms"
window = "10s"
dscp = "af41"

[[path]]
name = "uplink-a"
source = "198.18.1.1"

[[path]]
name = "uplink-b"
fwmark = 2
hubs = ["sh"]

[[path]]
name = "v6-only"
source = "2001:db8::1"

[sla.gold]
rtt_p99 = "30ms"

[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
sla = "gold"

[[scheduler.etcd]]
endpoints = ["http://198.18.0.254:2379"]
prefix = "/fleet/"
advertise = "198.18.0.1"
discover = true
)";

AgentConfig config() {
  auto loaded = parse_config(kConfig, "hubprobe.toml");
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.error().message);
  return loaded.ok() ? *loaded : AgentConfig{};
}

std::string registration(const std::string& id, const std::string& hub, const std::string& address, int port = 862) {
  return json{{"id", id}, {"hub", hub}, {"address", address}, {"reflector_port", port}, {"metrics", "127.0.0.1:9862"}}
      .dump();
}

std::vector<std::string> path_names(const PeerConfig& peer) {
  std::vector<std::string> names;
  for (const PathConfig& path : peer.paths) names.push_back(path.name);
  return names;
}

// The reason a registration is refused ("" when it is accepted).
std::string refusal(std::string_view id, std::string_view value, const AgentConfig& agent) {
  auto peer = peer_from_registration(id, value, agent);
  return peer.ok() ? "" : peer.error().message;
}

TEST(Discovery, RegistrationCarriesTheAdvertisedAddress) {
  AgentConfig agent = config();
  const json with = make_registration(agent, agent.scheduler.etcd[0]);
  EXPECT_EQ(with, (json{{"id", "gz-edge-01"},
                        {"hub", "gz"},
                        {"metrics", "127.0.0.1:9862"},
                        {"reflector_port", 862},
                        {"address", "198.18.0.1"}}));
  EtcdSinkConfig without = agent.scheduler.etcd[0];
  without.advertise.clear();
  EXPECT_FALSE(make_registration(agent, without).contains("address"));
  // What one agent writes, another reads back as a peer.
  AgentConfig other = config();
  other.agent.id = "bj-edge-01";
  other.scheduler.etcd[0].advertise = "198.18.0.9";
  auto peer = peer_from_registration("gz-edge-01", with.dump(), other);
  ASSERT_TRUE(peer.ok()) << peer.error().message;
  EXPECT_EQ(peer->address.to_string(), "198.18.0.1:862");
}

TEST(Discovery, RegistrationBecomesAPeerResolvedLikeAFilePeer) {
  const AgentConfig agent = config();
  auto peer = peer_from_registration("sg-edge-01", registration("sg-edge-01", "sg", "198.18.0.2", 1862), agent);
  ASSERT_TRUE(peer.ok()) << peer.error().message;
  EXPECT_EQ(peer->name, "sg-edge-01");
  EXPECT_EQ(peer->hub, "sg");
  EXPECT_EQ(peer->address.to_string(), "198.18.0.2:1862");
  // [probe] defaults, size resolved to the base packet as for a file peer.
  EXPECT_EQ(peer->probe.interval_ns, 50 * kMillisecond);
  EXPECT_EQ(peer->probe.window_ns, 10 * kSecond);
  EXPECT_EQ(peer->probe.dscp, 34);
  EXPECT_EQ(peer->probe.size, 44u);
  // Paths: those that apply to hub sg and IPv4 (uplink-b is for sh only, v6-only has an IPv6 source).
  EXPECT_EQ(path_names(*peer), std::vector<std::string>{"uplink-a"});
  EXPECT_EQ(peer->paths, default_paths_for(agent.paths, "sg", AF_INET));
  EXPECT_EQ(peer->sla, "default");

  // Hub sh: the same paths as the configured sh peer gets, and its SLA class (one selector per hub).
  auto sh = peer_from_registration("sh-edge-02", registration("sh-edge-02", "sh", "198.18.3.3"), agent);
  ASSERT_TRUE(sh.ok()) << sh.error().message;
  EXPECT_EQ(path_names(*sh), (std::vector<std::string>{"uplink-a", "uplink-b"}));
  EXPECT_EQ(sh->paths, agent.find_peer("sh-edge-01")->paths);
  EXPECT_EQ(sh->sla, "gold");

  // IPv6: only the paths of that family.
  auto v6 = peer_from_registration("bj-edge-01", registration("bj-edge-01", "bj", "2001:db8::7"), agent);
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(path_names(*v6), std::vector<std::string>{"v6-only"});
  EXPECT_EQ(v6->address.to_string(), "[2001:db8::7]:862");

  // No [[path]] applies: the one path "default".
  AgentConfig bare = agent;
  bare.paths.clear();
  auto plain = peer_from_registration("sg-edge-01", registration("sg-edge-01", "sg", "198.18.0.2"), bare);
  ASSERT_TRUE(plain.ok());
  ASSERT_EQ(plain->paths.size(), 1u);
  EXPECT_EQ(plain->paths[0], PathConfig{});
}

TEST(Discovery, MalformedRegistrationsAreRefusedWithAReason) {
  const AgentConfig agent = config();
  const auto without = [](const std::string& member) {
    json value = json::parse(registration("sg-edge-01", "sg", "198.18.0.2"));
    value.erase(member);
    return value.dump();
  };
  const auto with = [](const std::string& member, json content) {
    json value = json::parse(registration("sg-edge-01", "sg", "198.18.0.2"));
    value[member] = std::move(content);
    return value.dump();
  };
  struct Case {
    std::string description;
    std::string value;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"not JSON", "{\"id\": ", "not a JSON object"},
      {"an array", "[1, 2]", "not a JSON object"},
      {"no id", without("id"), "no \"id\""},
      {"id not a name", with("id", "sg edge"), "\"id\" is not a name: \"sg edge\""},
      {"id a number", with("id", 7), "\"id\" is not a name: 7"},
      {"id not the key", with("id", "sg-edge-02"), "id \"sg-edge-02\" differs from the key"},
      {"no hub", without("hub"), "no \"hub\""},
      {"hub too long", with("hub", std::string(64, 'h')), "\"hub\" is not a name"},
      {"no address", without("address"), "no \"address\" (the agent does not set advertise)"},
      {"address a number", with("address", 3323068418), "\"address\" is not a string: 3323068418"},
      {"a host name", with("address", "sg-edge-01.example"),
       "\"address\" is not a numeric IPv4 or IPv6 address: \"sg-edge-01.example\""},
      {"address with a port", with("address", "198.18.0.2:862"),
       "\"address\" is an address with a port: \"198.18.0.2:862\""},
      {"unspecified address", with("address", "0.0.0.0"), "\"address\" is not a unicast address: \"0.0.0.0\""},
      {"multicast address", with("address", "ff02::1"), "\"address\" is not a unicast address: \"ff02::1\""},
      {"no port", without("reflector_port"), "no \"reflector_port\""},
      {"port 0", with("reflector_port", 0), "\"reflector_port\" is not a port 1..65535: 0"},
      {"port too large", with("reflector_port", 65536), "\"reflector_port\" is not a port 1..65535: 65536"},
      {"port a string", with("reflector_port", "862"), "\"reflector_port\" is not a port 1..65535: \"862\""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(refusal("sg-edge-01", c.value, agent).substr(0, c.reason.size()), c.reason) << c.description;
  }
  EXPECT_EQ(refusal("sg-edge-01", registration("sg-edge-01", "sg", "198.18.0.2"), agent), "");
}

TEST(Discovery, OwnRegistrationAndConfiguredPeersWin) {
  const AgentConfig agent = config();
  EXPECT_EQ(refusal("gz-edge-01", registration("gz-edge-01", "gz", "198.18.0.1"), agent),
            "this agent's own registration");
  // Another id with this agent's advertised address and reflector port (a renamed agent whose old
  // registration has not expired yet): never probe ourselves.
  EXPECT_EQ(refusal("gz-old", registration("gz-old", "gz", "198.18.0.1"), agent),
            "this agent's own address 198.18.0.1:862 (registered by another id)");
  // A configured [[peer]] of the same name, or at the same address and port: the file wins.
  EXPECT_EQ(refusal("sh-edge-01", registration("sh-edge-01", "sh", "198.18.3.9"), agent),
            "a configured [[peer]] has this name (the file wins)");
  EXPECT_EQ(refusal("sh-edge-09", registration("sh-edge-09", "sh", "198.18.3.2"), agent),
            "configured [[peer]] \"sh-edge-01\" has the address 198.18.3.2:862 (the file wins)");
  // Same address on another port is another reflector.
  EXPECT_EQ(refusal("sh-edge-09", registration("sh-edge-09", "sh", "198.18.3.2", 863), agent), "");
}

TEST(Discovery, DiscoverPeersSortsOutAWholePrefix) {
  const AgentConfig agent = config();
  const std::string base = registrations_prefix(agent.scheduler.etcd[0].prefix);
  EXPECT_EQ(base, "/fleet/agents/");
  const std::vector<EtcdKeyValue> registrations = {
      {base + "bj-edge-01", registration("bj-edge-01", "bj", "198.18.0.3"), 7, 1},
      {base + "gz-edge-01", registration("gz-edge-01", "gz", "198.18.0.1"), 8, 2},
      {base + "sg-edge-01", registration("sg-edge-01", "sg", "198.18.0.2"), 9, 3},
      {base + "sg-edge-02", registration("sg-edge-02", "sg", "198.18.0.2"), 9, 4},
      {base + "sh-edge-01", registration("sh-edge-01", "sh", "198.18.3.2"), 9, 5},
      {base + "x/y", registration("y", "x", "198.18.0.5"), 9, 6},
      {base + "zz-edge-01", "{}", 9, 7},
      {"/other/agents/aa-edge-01", registration("aa-edge-01", "aa", "198.18.0.6"), 9, 8},
  };
  const DiscoveredPeers found = discover_peers(registrations, agent.scheduler.etcd[0].prefix, agent);
  std::vector<std::string> names;
  for (const PeerConfig& peer : found.peers) names.push_back(peer.name);
  EXPECT_EQ(names, (std::vector<std::string>{"bj-edge-01", "sg-edge-01"}));
  // This agent's own key is skipped quietly: every registering agent finds itself under the prefix.
  const std::vector<IgnoredRegistration> ignored = {
      {base + "sg-edge-02", "another registration has the address 198.18.0.2:862"},
      {base + "sh-edge-01", "a configured [[peer]] has this name (the file wins)"},
      {base + "x/y", "the key does not end in an agent id"},
      {base + "zz-edge-01", "no \"id\""},
      {"/other/agents/aa-edge-01", "not under /fleet/agents/"},
  };
  EXPECT_EQ(found.ignored, ignored);

  // An empty prefix (every agent's lease expired): no peers, nothing ignored.
  const DiscoveredPeers none = discover_peers({}, "/fleet", agent);
  EXPECT_TRUE(none.peers.empty());
  EXPECT_TRUE(none.ignored.empty());
}

TEST(Discovery, DefaultPathsForFollowsHubsAndFamily) {
  const AgentConfig agent = config();
  const auto names = [](const std::vector<PathConfig>& paths) {
    std::vector<std::string> out;
    for (const PathConfig& path : paths) out.push_back(path.name);
    return out;
  };
  EXPECT_EQ(names(default_paths_for(agent.paths, "sh", AF_INET)), (std::vector<std::string>{"uplink-a", "uplink-b"}));
  EXPECT_EQ(names(default_paths_for(agent.paths, "sg", AF_INET)), std::vector<std::string>{"uplink-a"});
  EXPECT_EQ(names(default_paths_for(agent.paths, "sh", AF_INET6)), (std::vector<std::string>{"uplink-b", "v6-only"}));
  EXPECT_EQ(names(default_paths_for({}, "sh", AF_INET)), std::vector<std::string>{"default"});
}

// ---- the probe plan ----------------------------------------------------------------------------------

namespace plan {

// `hubs` hubs h0, h1, ... of `per_hub` agents each (h3-a0042, ...), as discover_peers() would give them.
std::vector<PeerConfig> fleet(int hubs, int per_hub) {
  std::vector<PeerConfig> peers;
  for (int h = 0; h < hubs; ++h) {
    for (int a = 0; a < per_hub; ++a) {
      PeerConfig peer;
      peer.hub = "h" + std::to_string(h);
      peer.name = peer.hub + "-a" + std::to_string(a);
      peers.push_back(peer);
    }
  }
  return peers;
}

std::map<std::string, std::vector<std::string>> by_hub(const std::vector<PeerConfig>& peers) {
  std::map<std::string, std::vector<std::string>> hubs;
  for (const PeerConfig& p : peers) hubs[p.hub].push_back(p.name);
  return hubs;
}

}  // namespace plan

TEST(ProbePlan, KeepsTheOwnHubAndKAgentsOfEveryOtherHub) {
  // 10 000 agents in 10 hubs, k = 3: this agent (h0-a0) probes the 999 others of its hub and 3 of each
  // of the 9 other hubs: 1 026 sessions instead of 9 999.
  std::vector<PeerConfig> all = plan::fleet(10, 1000);
  all.erase(all.begin());  // discover_peers() leaves this agent's own registration out
  const auto planned = plan_peers(all, "h0-a0", "h0", 3, 7);
  EXPECT_EQ(planned.size(), 999u + 9u * 3u);
  const auto hubs = plan::by_hub(planned);
  EXPECT_EQ(hubs.at("h0").size(), 999u);
  for (int h = 1; h < 10; ++h) EXPECT_EQ(hubs.at("h" + std::to_string(h)).size(), 3u) << h;
  EXPECT_EQ(plan_peers(all, "h0-a0", "h0", 0, 7).size(), all.size()) << "per_hub 0: every peer";
  EXPECT_EQ(plan_peers(plan::fleet(3, 2), "x", "h9", 5, 7).size(), 6u) << "hubs smaller than k: all of them";
}

TEST(ProbePlan, StableWhenAnUnchosenAgentComesOrGoes) {
  const std::vector<PeerConfig> all = plan::fleet(4, 50);
  const auto planned = plan::by_hub(plan_peers(all, "h0-a0", "h0", 3, 1));
  // Take out an agent of h2 that was not chosen, and one that was.
  const std::vector<std::string>& chosen = planned.at("h2");
  auto unchosen = std::find_if(all.begin(), all.end(), [&](const PeerConfig& p) {
    return p.hub == "h2" && std::find(chosen.begin(), chosen.end(), p.name) == chosen.end();
  });
  std::vector<PeerConfig> without_unchosen = all;
  without_unchosen.erase(without_unchosen.begin() + (unchosen - all.begin()));
  EXPECT_EQ(plan::by_hub(plan_peers(without_unchosen, "h0-a0", "h0", 3, 1)), planned);

  std::vector<PeerConfig> without_chosen = all;
  std::erase_if(without_chosen, [&](const PeerConfig& p) { return p.name == chosen.front(); });
  const auto after = plan::by_hub(plan_peers(without_chosen, "h0-a0", "h0", 3, 1));
  EXPECT_EQ(after.at("h1"), planned.at("h1")) << "other hubs keep their choice";
  EXPECT_EQ(after.at("h3"), planned.at("h3"));
  size_t kept = 0;
  for (const auto& name : after.at("h2")) kept += std::count(chosen.begin(), chosen.end(), name);
  EXPECT_EQ(kept, 2u) << "the two others stay, one newcomer takes the place";
}

TEST(ProbePlan, SpreadOverTheHubAndRotatedByEpoch) {
  // Every agent of h0 plans h1 (1 000 agents, k = 3): each agent of h1 is probed by 3 on average; none
  // by many more (the hash spreads), and none left out by most epochs.
  const std::vector<PeerConfig> all = plan::fleet(2, 1000);
  std::map<std::string, int> probed_by;
  for (int a = 0; a < 1000; ++a) {
    const std::string self = "h0-a" + std::to_string(a);
    for (const PeerConfig& p : plan_peers(all, self, "h0", 3, 5)) {
      if (p.hub == "h1") ++probed_by[p.name];
    }
  }
  int most = 0;
  int total = 0;
  for (const auto& [name, n] : probed_by) {
    most = std::max(most, n);
    total += n;
  }
  EXPECT_EQ(total, 3000);
  EXPECT_GT(probed_by.size(), 900u) << "about 95 % of h1 is probed by someone in one epoch (1 - e^-3)";
  EXPECT_LE(most, 14) << "Poisson(3): more than 14 is a one-in-a-million draw";

  // One agent over 50 epochs: a new draw each time, so it meets a large part of the other hub.
  std::set<std::string> met;
  size_t changed = 0;
  std::vector<std::string> previous;
  for (uint64_t epoch = 0; epoch < 50; ++epoch) {
    const auto chosen = plan::by_hub(plan_peers(all, "h0-a0", "h0", 3, epoch))["h1"];
    met.insert(chosen.begin(), chosen.end());
    if (chosen != previous) ++changed;
    previous = chosen;
  }
  EXPECT_GE(changed, 49u);
  EXPECT_GT(met.size(), 120u) << "50 draws of 3 from 1 000 meet about 145";
}

TEST(ProbePlan, EpochsAreWholeRotationPeriodsOfWallTime) {
  const int64_t hour = 3'600'000'000'000;
  EXPECT_EQ(plan_epoch(0, hour), 0u);
  EXPECT_EQ(plan_epoch(hour - 1, hour), 0u);
  EXPECT_EQ(plan_epoch(hour, hour), 1u);
  EXPECT_EQ(plan_epoch(1'795'602'660'123'000'000, hour), 498778u);  // 2026-11-25T10:31Z
  EXPECT_EQ(plan_epoch(1'795'602'660'123'000'000, 0), 0u) << "no rotation";
  EXPECT_NE(rendezvous_score("ab", "c", 1), rendezvous_score("a", "bc", 1));
  EXPECT_NE(rendezvous_score("a", "b", 1), rendezvous_score("a", "b", 2));
  EXPECT_EQ(rendezvous_score("gz-edge-01", "sg-edge-01", 9), rendezvous_score("gz-edge-01", "sg-edge-01", 9));
}

}  // namespace
}  // namespace hubprobe
