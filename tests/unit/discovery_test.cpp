// SPDX-License-Identifier: Apache-2.0
// Peer discovery through etcd, the pure part (agent/policy/include/hubprobe/discovery.h): registrations read from
// PREFIX/agents/ become peers resolved like [[peer]] entries without `paths`, or are ignored with a reason.
#include "hubprobe/discovery.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace hubprobe
