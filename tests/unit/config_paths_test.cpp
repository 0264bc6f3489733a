// SPDX-License-Identifier: Apache-2.0
// The configuration of paths, SLA classes and scheduler sinks (docs/configuration.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "hubprobe/config.h"

namespace hubprobe {
namespace {

constexpr std::string_view kAgent = R"([agent]
id = "gz-edge-01"
hub = "gz"
)";

AgentConfig parse_ok(const std::string& text, const std::string& source = "hubprobe.toml") {
  auto config = parse_config(std::string(kAgent) + text, source);
  EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message);
  return config.ok() ? *config : AgentConfig{};
}

std::string parse_error(const std::string& text, const std::string& source = "hubprobe.toml") {
  auto config = parse_config(std::string(kAgent) + text, source);
  EXPECT_FALSE(config.ok()) << "accepted:\n" << text;
  return config.ok() ? "" : config.error().message;
}

std::vector<std::string> path_names(const PeerConfig& peer) {
  std::vector<std::string> names;
  for (const PathConfig& path : peer.paths) names.push_back(path.name);
  return names;
}

TEST(ConfigPaths, WithoutPathsEveryPeerHasTheDefaultPath) {
  const AgentConfig config = parse_ok(R"(
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
)");
  ASSERT_EQ(config.peers.size(), 1u);
  ASSERT_EQ(config.peers[0].paths.size(), 1u);
  EXPECT_EQ(config.peers[0].paths[0], PathConfig{});
  EXPECT_EQ(config.peers[0].paths[0].name, "default");
  EXPECT_EQ(config.peers[0].sla, "default");
  ASSERT_EQ(config.sla.count("default"), 1u);
  EXPECT_FALSE(config.scheduler.has_sinks());
  EXPECT_EQ(config.scheduler.state_dir, "/var/lib/hubprobe");
  EXPECT_EQ(config.scheduler.refresh_ns, 30 * kSecond);
}

TEST(ConfigPaths, EveryPathKeyAndWhichPeersAPathAppliesTo) {
  const AgentConfig config = parse_ok(R"(
[[path]]
name = "backbone-a"
interface = "lo"
source = "198.18.1.1"
fwmark = 100
dscp = "af41"
source_ports = [40000, "40010-40012"]

[[path]]
name = "backbone-b"
fwmark = 0x2
hubs = ["sh"]

[[path]]
name = "v6"
source = "2001:db8::1"

[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"

[[peer]]
name = "bj-edge-01"
hub = "bj"
address = "198.18.4.2"

[[peer]]
name = "bj-edge-v6"
hub = "bj"
address = "2001:db8:4::2"

[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.5.2"
paths = ["default", "backbone-b"]
)");
  ASSERT_EQ(config.paths.size(), 3u);
  const PathConfig& a = config.paths[0];
  EXPECT_EQ(a.interface, "lo");
  EXPECT_EQ(a.source.host(), "198.18.1.1");
  EXPECT_EQ(a.source.port(), 0);
  EXPECT_EQ(a.fwmark, 100u);
  EXPECT_EQ(a.dscp, 34);
  EXPECT_EQ(a.source_ports, (std::vector<uint16_t>{40000, 40010, 40011, 40012}));
  EXPECT_EQ(config.paths[1].fwmark, 2u);
  EXPECT_EQ(config.paths[1].dscp, -1);
  // sh: a and b (b names sh); bj over IPv4: a only; bj over IPv6: v6 only; sg: exactly what it lists.
  EXPECT_EQ(path_names(config.peers[0]), (std::vector<std::string>{"backbone-a", "backbone-b"}));
  EXPECT_EQ(path_names(config.peers[1]), (std::vector<std::string>{"backbone-a"}));
  EXPECT_EQ(path_names(config.peers[2]), (std::vector<std::string>{"v6"}));
  EXPECT_EQ(path_names(config.peers[3]), (std::vector<std::string>{"default", "backbone-b"}));
}

TEST(ConfigPaths, BadPaths) {
  EXPECT_EQ(parse_error("[[path]]\nname = \"a\"\nnext_hop = \"198.18.1.2\"\n"),
            "hubprobe.toml:6:12: path[0].next_hop: the kernel dataplane cannot pin a next hop per socket: give the "
            "path a fwmark and route that mark via the next hop with policy routing (ip rule add fwmark MARK table T; "
            "ip route add PEER via NEXT_HOP table T), see docs/configuration.md");
  EXPECT_EQ(parse_error("[[path]]\nname = \"a\"\n[[path]]\nname = \"a\"\n"),
            "hubprobe.toml:7:8: path[1].name: expected a name no other path uses, got \"a\"");
  EXPECT_EQ(parse_error("[[path]]\nfwmark = 1\n"),
            "hubprobe.toml:4:1: path[0].name: required key is missing (expected a name like \"backbone-a\")");
  EXPECT_EQ(parse_error("[[path]]\nname = \"a\"\nsource_ports = [\"40005-40001\"]\n"),
            "hubprobe.toml:6:17: path[0].source_ports[0]: expected a range whose first port is not above its last, "
            "got \"40005-40001\"");
  EXPECT_EQ(parse_error("[[path]]\nname = \"a\"\nsource_ports = [40000, \"39999-40000\"]\n"),
            "hubprobe.toml:6:24: path[0].source_ports[1]: expected ports not listed before (port 40000 repeats), got "
            "\"39999-40000\"");
  EXPECT_NE(parse_error("[[path]]\nname = \"a\"\nsource_ports = [\"1-65\"]\n").find("at most 64 ports"),
            std::string::npos);
  EXPECT_NE(parse_error("[[path]]\nname = \"a\"\nsource_ports = []\n").find("expected an array of UDP ports"),
            std::string::npos);
  EXPECT_NE(parse_error("[[path]]\nname = \"a\"\ninterface = \"hpnosuch0\"\n").find("no such interface"),
            std::string::npos);
  EXPECT_NE(parse_error("[[path]]\nname = \"a\"\nfwmark = -1\n").find("expected a firewall mark"), std::string::npos);
  EXPECT_EQ(parse_error(R"(
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
paths = ["nosuch"]
)"),
            "hubprobe.toml:9:10: peer[0].paths[0]: expected the name of a [[path]] (or \"default\"), got \"nosuch\"");
  EXPECT_EQ(parse_error(R"(
[[path]]
name = "v6"
source = "2001:db8::1"
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
paths = ["v6"]
)"),
            "hubprobe.toml:12:10: peer[0].paths[0]: expected a path whose source address has the peer's address family "
            "(path \"v6\" has 2001:db8::1), got \"v6\"");
}

TEST(ConfigSla, EveryKeyAndBothLossSpellings) {
  const AgentConfig config = parse_ok(R"(
[probe]
down_after = 5

[sla.gold]
rtt_p99 = "25ms"
jitter = "2ms"
loss = "0.5%"
min_samples = 20
down_after = 5
window = "20s"
hold_down = "1m"
switch_margin = "300us"
switch_margin_ratio = 0.05
switch_after = "10s"
loss_penalty = "50ms"

[sla.silver]
loss = 0.02

[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
sla = "gold"
)");
  ASSERT_EQ(config.sla.size(), 3u);
  const SlaClass& gold = config.sla.at("gold");
  EXPECT_EQ(gold.name, "gold");
  EXPECT_EQ(gold.rtt_p99_ns, 25 * kMillisecond);
  EXPECT_EQ(gold.jitter_ns, 2 * kMillisecond);
  EXPECT_DOUBLE_EQ(gold.loss_ratio, 0.005);
  EXPECT_EQ(gold.min_samples, 20u);
  EXPECT_EQ(gold.window_ns, 20 * kSecond);
  EXPECT_EQ(gold.hold_down_ns, 60 * kSecond);
  EXPECT_EQ(gold.switch_margin_ns, 300'000);
  EXPECT_DOUBLE_EQ(gold.switch_margin_ratio, 0.05);
  EXPECT_EQ(gold.switch_after_ns, 10 * kSecond);
  EXPECT_EQ(gold.loss_penalty_ns, 50 * kMillisecond);
  // Unset keys: the built-in defaults.
  const SlaClass& silver = config.sla.at("silver");
  EXPECT_DOUBLE_EQ(silver.loss_ratio, 0.02);
  EXPECT_EQ(silver.window_ns, SlaClass{}.window_ns);
  EXPECT_EQ(config.peers[0].probe.down_after, 5u);  // down_after = 5 of [sla.gold] agrees with the peer's
  EXPECT_EQ(config.peers[0].sla, "gold");
}

// Down is judged once per (peer, path), by the peer's down_after ([probe] or [[peer]]): the same judgement
// gives /status its peer state and the preference document its path state. [sla.NAME].down_after, the old
// place for the path's threshold, is accepted when it agrees with the peers of its class and refused at
// the key when it contradicts them.
TEST(ConfigSla, DownAfterOfAClassMustAgreeWithItsPeers) {
  constexpr std::string_view kGoldPeer = R"(
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
sla = "gold"
)";
  // Agreeing: with [probe], or with the peer's own value.
  EXPECT_EQ(parse_ok("[probe]\ndown_after = 5\n[sla.gold]\ndown_after = 5\n" + std::string(kGoldPeer))
                .peers.at(0)
                .probe.down_after,
            5u);
  EXPECT_EQ(parse_ok("[sla.gold]\ndown_after = 4\n" + std::string(kGoldPeer) + "down_after = 4\n")
                .peers.at(0)
                .probe.down_after,
            4u);
  // Contradicting a peer of the class (from [probe], or its own value).
  EXPECT_EQ(parse_error("[probe]\ndown_after = 5\n[sla.gold]\ndown_after = 2\n" + std::string(kGoldPeer)),
            "hubprobe.toml:7:14: sla.gold.down_after: expected the down_after of the peers this class judges (peer "
            "\"sh-edge-01\" has 5), got 2 (a path is down when its peer is: set down_after in [probe] or [[peer]], "
            "and leave it out here)");
  EXPECT_NE(parse_error("[sla.gold]\ndown_after = 3\n" + std::string(kGoldPeer) + "down_after = 4\n")
                .find("sla.gold.down_after: expected the down_after of the peers this class judges (peer "
                      "\"sh-edge-01\" has 4), got 3"),
            std::string::npos);
  // A class no [[peer]] names (peers found in etcd may use it) agrees with [probe]; `default` is the class
  // of peers without `sla`.
  EXPECT_NE(parse_error("[sla.silver]\ndown_after = 4\n").find("([probe] has 3), got 4"), std::string::npos);
  EXPECT_NE(parse_error("[sla.default]\ndown_after = 4\n[[peer]]\nname = \"a\"\nhub = \"sh\"\naddress = "
                        "\"198.18.3.2\"\n")
                .find("sla.default.down_after: expected the down_after of the peers this class judges (peer \"a\" "
                      "has 3), got 4"),
            std::string::npos);
  EXPECT_NE(parse_error("[sla.gold]\ndown_after = 0\n").find("expected a count of lost probes 1..1000"),
            std::string::npos);
}

TEST(ConfigSla, BadClasses) {
  EXPECT_EQ(parse_error("[sla.gold]\nloss = \"5\"\n"),
            "hubprobe.toml:5:8: sla.gold.loss: expected a loss ratio 0..1 like 0.01 or a percentage like \"1%\", got "
            "\"5\"");
  EXPECT_NE(parse_error("[sla.gold]\nloss = 1.5\n").find("expected a loss ratio"), std::string::npos);
  EXPECT_NE(parse_error("[sla.gold]\nloss = \"150%\"\n").find("expected a loss ratio"), std::string::npos);
  EXPECT_NE(parse_error("[sla.gold]\nrtt_p99 = 25\n").find("expected a duration"), std::string::npos);
  EXPECT_NE(parse_error("[sla.gold]\nwindow = \"100ms\"\n").find("a duration from 1s to 1h"), std::string::npos);
  EXPECT_NE(parse_error("[sla.gold]\nswitch_margin_ratio = 2.0\n").find("expected a ratio 0..1"), std::string::npos);
  EXPECT_EQ(parse_error("[sla.gold]\nrtt_p9 = \"1ms\"\n"),
            "hubprobe.toml:5:1: sla.gold.rtt_p9: unknown key (did you mean \"rtt_p99\"?)");
  EXPECT_EQ(parse_error(R"(
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
sla = "gold"
)"),
            "hubprobe.toml:9:7: peer[0].sla: expected the name of an [sla.NAME] table, got \"gold\"");
  // One selector per destination hub: its peers must share a class.
  EXPECT_EQ(parse_error(R"(
[sla.gold]
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
sla = "gold"
[[peer]]
name = "sh-edge-02"
hub = "sh"
address = "198.18.3.3"
)"),
            "hubprobe.toml:11:1: peer[1].sla: expected the SLA class of the other peers of hub \"sh\" (\"gold\", peer "
            "\"sh-edge-01\"), got \"default\"");
}

class SchedulerFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/hubprobe-sched-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ + "/" + name) << content;
    return dir_ + "/" + name;
  }
  std::string source() const { return dir_ + "/hubprobe.toml"; }
  std::string dir_;
};

TEST_F(SchedulerFiles, EveryKey) {
  write("token", "  s3cr3t-token\n");
  write("ca.pem", "x");
  write("client.pem", "x");
  write("client.key", "x");
  const AgentConfig config = parse_ok(R"(
[scheduler]
state_dir = "/var/lib/hubprobe-test"
refresh = "10s"

[[scheduler.http]]
name = "central"
url = "https://198.18.9.254:8443/v1/preferences"
timeout = "3s"
connect_timeout = "500ms"
backoff_initial = "200ms"
backoff_max = "20s"
bearer_token_file = "token"
ca_file = "ca.pem"
client_cert_file = "client.pem"
client_key_file = "client.key"

[[scheduler.etcd]]
endpoints = ["http://198.18.9.254:2379/", "http://198.18.9.253:2379"]
prefix = "/fleet/hubprobe/"
ttl = "6s"
timeout = "1s"
register = false
discover = false
)",
                                      source());
  EXPECT_TRUE(config.scheduler.has_sinks());
  EXPECT_EQ(config.scheduler.state_dir, "/var/lib/hubprobe-test");
  EXPECT_EQ(config.scheduler.refresh_ns, 10 * kSecond);
  ASSERT_EQ(config.scheduler.http.size(), 1u);
  const HttpSinkConfig& http = config.scheduler.http[0];
  EXPECT_EQ(http.name, "central");
  EXPECT_EQ(http.url, "https://198.18.9.254:8443/v1/preferences");
  EXPECT_EQ(http.timeout_ns, 3 * kSecond);
  EXPECT_EQ(http.connect_timeout_ns, 500 * kMillisecond);
  EXPECT_EQ(http.backoff.initial_ns, 200 * kMillisecond);
  EXPECT_EQ(http.backoff.max_ns, 20 * kSecond);
  EXPECT_EQ(http.refresh_ns, 10 * kSecond);
  EXPECT_EQ(http.bearer_token, "s3cr3t-token");
  EXPECT_EQ(http.bearer_token_file, dir_ + "/token");
  EXPECT_EQ(http.ca_file, dir_ + "/ca.pem");
  EXPECT_EQ(http.client_cert_file, dir_ + "/client.pem");
  EXPECT_EQ(http.client_key_file, dir_ + "/client.key");
  ASSERT_EQ(config.scheduler.etcd.size(), 1u);
  const EtcdSinkConfig& etcd = config.scheduler.etcd[0];
  EXPECT_EQ(etcd.name, "etcd");
  EXPECT_EQ(etcd.endpoints, (std::vector<std::string>{"http://198.18.9.254:2379", "http://198.18.9.253:2379"}));
  EXPECT_EQ(etcd.prefix, "/fleet/hubprobe");
  EXPECT_EQ(etcd.ttl_ns, 6 * kSecond);
  EXPECT_EQ(etcd.timeout_ns, 1 * kSecond);
  EXPECT_FALSE(etcd.register_agent);
  EXPECT_FALSE(etcd.discover);
  EXPECT_EQ(etcd.advertise, "");
  EXPECT_EQ(etcd.discover_interval_ns, 5 * kSecond);
  EXPECT_EQ(etcd.plan_per_hub, 0u) << "every agent found is probed";
  EXPECT_EQ(etcd.plan_rotate_ns, 3600 * kSecond);
}

TEST(ConfigDiscovery, ProbePlan) {
  const AgentConfig config = parse_ok(R"(
[[scheduler.etcd]]
endpoints = ["http://198.18.0.254:2379"]
advertise = "198.18.0.1"
discover = true
plan_per_hub = 3
plan_rotate = "10m"
)");
  EXPECT_EQ(config.scheduler.etcd[0].plan_per_hub, 3u);
  EXPECT_EQ(config.scheduler.etcd[0].plan_rotate_ns, 600 * kSecond);
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nplan_per_hub = -1\n")
                .find("scheduler.etcd[0].plan_per_hub: expected agents per other hub to probe, 0 = all of them"),
            std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nplan_rotate = \"10s\"\n")
                .find("scheduler.etcd[0].plan_rotate: expected a duration from 1m to"),
            std::string::npos);
}

TEST(ConfigDiscovery, RegisterDiscoverAndAdvertise) {
  const AgentConfig config = parse_ok(R"(
[[scheduler.etcd]]
endpoints = ["http://198.18.0.254:2379"]
advertise = "198.18.0.1"
discover = true
discover_interval = "1s"
)");
  ASSERT_EQ(config.scheduler.etcd.size(), 1u);
  const EtcdSinkConfig& etcd = config.scheduler.etcd[0];
  EXPECT_TRUE(etcd.register_agent);
  EXPECT_TRUE(etcd.discover);
  EXPECT_EQ(etcd.advertise, "198.18.0.1");
  EXPECT_EQ(etcd.discover_interval_ns, 1 * kSecond);
  EXPECT_TRUE(config.peers.empty()) << "discovering agents need no [[peer]]";

  // IPv6, written in any valid form, is kept in its canonical form.
  const AgentConfig v6 =
      parse_ok("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nadvertise = \"2001:DB8:0::1\"\ndiscover = true\n");
  EXPECT_EQ(v6.scheduler.etcd[0].advertise, "2001:db8::1");
  // Registering with an address, not discovering: the address is for the others.
  EXPECT_FALSE(parse_ok("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nadvertise = \"198.18.0.1\"\n")
                   .scheduler.etcd[0]
                   .discover);
  // Discovering without registering: this agent probes others and is not probed.
  EXPECT_TRUE(parse_ok("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nregister = false\ndiscover = true\n")
                  .scheduler.etcd[0]
                  .discover);
}

TEST(ConfigDiscovery, BadDiscoverySettings) {
  EXPECT_EQ(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\ndiscover = true\n"),
            "hubprobe.toml:4:1: scheduler.etcd[0].advertise: required key is missing (expected the numeric address "
            "other agents probe, like \"198.18.0.1\" (register = true with discover = true))");
  EXPECT_EQ(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nadvertise = \"gz-edge-01.example\"\n"),
            "hubprobe.toml:6:13: scheduler.etcd[0].advertise: expected a numeric IPv4 or IPv6 address like "
            "\"198.18.0.1\", got \"gz-edge-01.example\"");
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nadvertise = \"198.18.0.1:862\"\n")
                .find("without a port"),
            std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nadvertise = \"0.0.0.0\"\n")
                .find("expected a unicast"),
            std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nregister = false\nadvertise = "
                        "\"198.18.0.1\"\n")
                .find("no advertise with register = false"),
            std::string::npos);
  EXPECT_NE(
      parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\ndiscover = \"yes\"\n").find("true or false"),
      std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\ndiscover_interval = \"500ms\"\n")
                .find("from 1s to 1h"),
            std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\ndiscover_interval = \"2h\"\n")
                .find("from 1s to 1h"),
            std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nregister = false\ndiscover = true\n"
                        "[[scheduler.etcd]]\nendpoints = [\"http://b:2379\"]\nregister = false\ndiscover = true\n")
                .find("discover = true in one [[scheduler.etcd]] only (also scheduler.etcd[0])"),
            std::string::npos);
}

TEST_F(SchedulerFiles, BadSinks) {
  EXPECT_EQ(parse_error("[[scheduler.http]]\ntimeout = \"1s\"\n"),
            "hubprobe.toml:4:1: scheduler.http[0].url: required key is missing (expected an http:// or https:// URL "
            "like \"https://scheduler.example/v1/preferences\")");
  EXPECT_NE(parse_error("[[scheduler.http]]\nurl = \"ftp://198.18.9.254/\"\n").find("expected an http:// or https://"),
            std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.http]]\nurl = \"http://198.18.9.254/\"\nbearer_token_file = \"/nonexistent/t\"\n")
                .find("cannot open '/nonexistent/t'"),
            std::string::npos);
  write("empty-token", "\n");
  EXPECT_NE(
      parse_error("[[scheduler.http]]\nurl = \"http://198.18.9.254/\"\nbearer_token_file = \"empty-token\"\n", source())
          .find("expected a file holding one token"),
      std::string::npos);
  write("client.pem", "x");
  EXPECT_NE(
      parse_error("[[scheduler.http]]\nurl = \"http://198.18.9.254/\"\nclient_cert_file = \"client.pem\"\n", source())
          .find("client_cert_file and client_key_file go together"),
      std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.http]]\nurl = \"http://a/\"\n[[scheduler.http]]\nurl = \"http://b/\"\nname = "
                        "\"http0\"\n")
                .find("expected a name no other sink uses"),
            std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.http]]\nurl = \"http://a/\"\nbackoff_initial = \"2s\"\nbackoff_max = \"1s\"\n")
                .find("at least backoff_initial (2s)"),
            std::string::npos);
  EXPECT_EQ(parse_error("[[scheduler.etcd]]\nprefix = \"/x\"\n"),
            "hubprobe.toml:4:1: scheduler.etcd[0].endpoints: required key is missing (expected an array of etcd client "
            "URLs like [\"http://198.18.0.254:2379\"])");
  EXPECT_NE(
      parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nttl = \"2500ms\"\n").find("whole seconds"),
      std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nttl = \"1s\"\n").find("from 2s to 1h"),
            std::string::npos);
  EXPECT_NE(parse_error("[[scheduler.etcd]]\nendpoints = [\"http://a:2379\"]\nprefix = \"hubprobe\"\n")
                .find("starting with '/'"),
            std::string::npos);
  EXPECT_NE(parse_error("[scheduler]\nstate_dir = \"relative/dir\"\n").find("an absolute directory path"),
            std::string::npos);
}

TEST(ConfigDiffPaths, PathsRestartSessionsSlaIsAppliedInPlace) {
  const std::string base = R"(
[[path]]
name = "a"
fwmark = 1
[[path]]
name = "b"
fwmark = 2
[sla.gold]
rtt_p99 = "30ms"
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.3.2"
sla = "gold"
)";
  const AgentConfig before = parse_ok(base);
  std::string changed_path = base;
  changed_path.replace(changed_path.find("fwmark = 2"), 10, "fwmark = 3");
  ConfigDiff diff = diff_configs(before, parse_ok(changed_path));
  EXPECT_EQ(diff.peers_restarted, std::vector<std::string>{"sh-edge-01"});

  std::string changed_sla = base;
  changed_sla.replace(changed_sla.find("30ms"), 4, "40ms");
  diff = diff_configs(before, parse_ok(changed_sla));
  EXPECT_TRUE(diff.sla_changed);
  EXPECT_TRUE(diff.peers_restarted.empty());
  EXPECT_EQ(diff.peers_unchanged, std::vector<std::string>{"sh-edge-01"});

  std::string with_sink = base + "[[scheduler.http]]\nurl = \"http://198.18.9.254/\"\n";
  diff = diff_configs(before, parse_ok(with_sink));
  EXPECT_TRUE(diff.scheduler_changed);
  EXPECT_FALSE(diff.sla_changed);
  EXPECT_FALSE(diff.empty());
}

}  // namespace
}  // namespace hubprobe
