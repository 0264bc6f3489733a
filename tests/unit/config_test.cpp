// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/config.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace hubprobe {
namespace {

constexpr std::string_view kMinimal = R"(
[agent]
id = "gz-edge-01"
hub = "gz"
)";

constexpr std::string_view kKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

AgentConfig parse_ok(std::string_view text, const std::string& source = "hubprobe.toml") {
  auto config = parse_config(text, source);
  EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message);
  return config.ok() ? *config : AgentConfig{};
}

std::string parse_error(std::string_view text, const std::string& source = "hubprobe.toml") {
  auto config = parse_config(text, source);
  EXPECT_FALSE(config.ok()) << "accepted:\n" << text;
  return config.ok() ? "" : config.error().message;
}

std::string with_agent(std::string_view rest) { return std::string(kMinimal) + std::string(rest); }

SocketAddress address(std::string_view text, uint16_t port) { return SocketAddress::parse(text, port).value(); }

// A folder with key files, removed afterwards.
class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/hubprobe-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    write("sg.key", kKeyHex);
    write("sh.key", "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, std::string_view content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  std::string dir_;
};

// ---- Defaults ------------------------------------------------------------------------------------

TEST(ConfigDefaults, MinimalFileGivesEveryDefault) {
  const AgentConfig config = parse_ok(kMinimal);
  EXPECT_EQ(config.source, "hubprobe.toml");
  EXPECT_EQ(config.agent.id, "gz-edge-01");
  EXPECT_EQ(config.agent.hub, "gz");

  EXPECT_EQ(config.dataplane.backend, "kernel");
  EXPECT_FALSE(config.dataplane.kernel.hardware_timestamps);
  EXPECT_EQ(config.dataplane.kernel.receive_buffer, 1 << 20);

  const ReflectorConfig& reflector = config.reflector;
  EXPECT_TRUE(reflector.enabled);
  ASSERT_EQ(reflector.listen.size(), 2u);
  EXPECT_EQ(reflector.listen[0].to_string(), "0.0.0.0:862");
  EXPECT_EQ(reflector.listen[1].to_string(), "[::]:862");
  EXPECT_EQ(reflector.port, 862);
  EXPECT_TRUE(reflector.stateful);
  EXPECT_FALSE(reflector.answer_short_requests);
  EXPECT_TRUE(reflector.allow.empty());
  EXPECT_EQ(reflector.rate_limit_pps, 0u);
  EXPECT_EQ(reflector.interface, "");
  EXPECT_EQ(reflector.timestamp_format, TimestampFormat::kNtp);
  EXPECT_FALSE(reflector.auth_key);
  EXPECT_TRUE(reflector.source_keys.empty());
  EXPECT_FALSE(reflector.authenticated());
  EXPECT_TRUE(reflector.allows(address("203.0.113.9", 5000)));

  const ProbeSettings& probe = config.probe;
  EXPECT_EQ(probe.interval_ns, 100'000'000);
  EXPECT_EQ(probe.size, 0u);  // the base packet of the mode
  EXPECT_EQ(probe.dscp, 0);
  EXPECT_EQ(probe.timeout_ns, 1'000'000'000);
  EXPECT_EQ(probe.window_ns, 60'000'000'000);
  EXPECT_EQ(probe.down_after, 3u);
  EXPECT_EQ(probe.timestamp_format, TimestampFormat::kNtp);
  EXPECT_FALSE(probe.auth_key);
  EXPECT_EQ(probe.mode(), stamp::Mode::kUnauthenticated);

  EXPECT_TRUE(config.peers.empty());
  EXPECT_EQ(config.metrics.listen.to_string(), "127.0.0.1:9862");
  EXPECT_EQ(config.logging.level, LogLevel::kInfo);
  EXPECT_STREQ(to_string(config.logging.level), "info");
}

TEST(ConfigDefaults, EmptyTablesChangeNothing) {
  const AgentConfig config =
      parse_ok(with_agent("[dataplane]\n[dataplane.kernel]\n[reflector]\n[probe]\n[metrics]\n[logging]\n"));
  AgentConfig expected = parse_ok(kMinimal);
  EXPECT_EQ(config, expected);
}

TEST(ConfigDefaults, PeerInheritsEveryProbeDefault) {
  const AgentConfig config = parse_ok(with_agent(R"(
[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
)"));
  ASSERT_EQ(config.peers.size(), 1u);
  const PeerConfig& peer = config.peers[0];
  EXPECT_EQ(peer.name, "sg-edge-01");
  EXPECT_EQ(peer.hub, "sg");
  EXPECT_EQ(peer.address.to_string(), "198.18.1.1:862");
  EXPECT_EQ(peer.probe.interval_ns, 100'000'000);
  EXPECT_EQ(peer.probe.size, 44u);  // resolved
  EXPECT_EQ(peer.probe.dscp, 0);
  EXPECT_EQ(peer.probe.timeout_ns, 1'000'000'000);
  EXPECT_EQ(peer.probe.window_ns, 60'000'000'000);
  EXPECT_EQ(peer.probe.down_after, 3u);
  EXPECT_EQ(peer.probe.timestamp_format, TimestampFormat::kNtp);
  EXPECT_EQ(peer.probe.mode(), stamp::Mode::kUnauthenticated);
  EXPECT_EQ(config.find_peer("sg-edge-01"), &config.peers[0]);
  EXPECT_EQ(config.find_peer("nope"), nullptr);
}

// The shipped example must load, and uncommenting every "# key = value" line must give the same
// configuration: the defaults it shows are the real ones.
TEST(ConfigDefaults, ExampleFileShowsTheRealDefaults) {
  const std::string example = (std::filesystem::path(HUBPROBE_SOURCE_DIR) / "config" / "hubprobe.toml").string();
  auto loaded = load_config(example);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->peers.size(), 2u);
  EXPECT_EQ(loaded->agent.hub, "gz");
  EXPECT_EQ(loaded->peers[0].hub, "sg");
  EXPECT_EQ(loaded->peers[1].hub, "sh");
  const IpPrefix benchmarking = IpPrefix::parse("198.18.0.0/15").value();
  for (const PeerConfig& peer : loaded->peers) EXPECT_TRUE(benchmarking.contains(peer.address)) << peer.name;

  std::ifstream file(example);
  std::stringstream text;
  text << file.rdbuf();
  // "# key = value" (one space, a lower-case key) is a shown default; anything else is prose.
  const auto shown_default = [](std::string_view line) {
    if (line.substr(0, 2) != "# ") return false;
    const size_t end = line.find_first_not_of("abcdefghijklmnopqrstuvwxyz_", 2);
    return end != 2 && end != std::string_view::npos && line.substr(end, 3) == " = ";
  };
  std::string uncommented;
  std::string line;
  int keys = 0;
  while (std::getline(text, line)) {
    if (shown_default(line)) {
      line.erase(0, 2);
      ++keys;
    }
    uncommented += line + "\n";
  }
  EXPECT_GE(keys, 20);
  auto all = parse_config(uncommented, example);
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_EQ(all->agent, loaded->agent);
  EXPECT_EQ(all->tick_ns, loaded->tick_ns);
  EXPECT_EQ(all->dataplane, loaded->dataplane);
  EXPECT_EQ(all->reflector, loaded->reflector);
  EXPECT_EQ(all->peers, loaded->peers);
  EXPECT_EQ(all->metrics, loaded->metrics);
  EXPECT_EQ(all->logging, loaded->logging);
  EXPECT_EQ(all->costmap, loaded->costmap);
  EXPECT_EQ(all->sla, loaded->sla);
  EXPECT_EQ(all->sla.at("default"), SlaClass{});
  EXPECT_EQ(all->scheduler, loaded->scheduler);
  EXPECT_EQ(all->scheduler, SchedulerConfig{});
  ProbeSettings shown = all->probe;
  EXPECT_EQ(shown.size, 44u);  // "size = 44" is what the base packet resolves to without a key
  shown.size = 0;
  EXPECT_EQ(shown, loaded->probe);
}

// ---- Every key, set ------------------------------------------------------------------------------

TEST_F(ConfigFiles, EveryKeySet) {
  const unsigned loopback = if_nametoindex("lo");
  if (loopback == 0) GTEST_SKIP() << "no interface named lo";
  const AgentConfig config = parse_ok(with_agent(R"(
[dataplane]
backend = "kernel"
[dataplane.kernel]
hardware_timestamps = true
receive_buffer = 4194304

[reflector]
enabled = false
listen = ["198.18.0.1", "2001:db8::1"]
port = 4862
mode = "stateless"
answer_short_requests = true
allow = ["198.18.0.0/15", "2001:db8::/32"]
rate_limit_pps = 500
interface = "lo"
timestamp_format = "ptp"
auth_key_file = "sh.key"
[[reflector.auth]]
sources = ["198.18.1.0/24", "198.18.1.128/25"]
key_file = "sg.key"

[probe]
interval = "250ms"
size = 128
dscp = "af41"
timeout = "2.5s"
window = "5m"
down_after = 5
timestamp_format = "ptp"
auth_key_file = "sg.key"

[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
port = 9862

[metrics]
listen = "127.0.0.2:9100"

[logging]
level = "debug"
)"),
                                      dir_ + "/hubprobe.toml");
  EXPECT_TRUE(config.dataplane.kernel.hardware_timestamps);
  EXPECT_EQ(config.dataplane.kernel.receive_buffer, 4194304);
  const ReflectorConfig& reflector = config.reflector;
  EXPECT_FALSE(reflector.enabled);
  ASSERT_EQ(reflector.listen.size(), 2u);
  EXPECT_EQ(reflector.listen[0].to_string(), "198.18.0.1:4862");
  EXPECT_EQ(reflector.listen[1].to_string(), "[2001:db8::1]:4862");
  EXPECT_EQ(reflector.port, 4862);
  EXPECT_FALSE(reflector.stateful);
  EXPECT_TRUE(reflector.answer_short_requests);
  ASSERT_EQ(reflector.allow.size(), 2u);
  EXPECT_EQ(reflector.allow[1].to_string(), "2001:db8::/32");
  EXPECT_TRUE(reflector.allows(address("198.19.255.255", 1)));
  EXPECT_TRUE(reflector.allows(address("::ffff:198.18.7.7", 1)));  // dual-stack socket view of IPv4
  EXPECT_FALSE(reflector.allows(address("198.20.0.1", 1)));
  EXPECT_FALSE(reflector.allows(address("2001:db9::1", 1)));
  EXPECT_EQ(reflector.rate_limit_pps, 500u);
  EXPECT_EQ(reflector.interface, "lo");
  EXPECT_EQ(reflector.timestamp_format, TimestampFormat::kPtp);
  EXPECT_TRUE(reflector.authenticated());
  EXPECT_EQ(reflector.auth_key.path, dir_ + "/sh.key");
  ASSERT_EQ(reflector.source_keys.size(), 1u);
  EXPECT_EQ(reflector.source_keys[0].key.path, dir_ + "/sg.key");
  EXPECT_EQ(reflector.key_for(address("198.18.1.200", 1)), reflector.source_keys[0].key.key);
  EXPECT_EQ(reflector.key_for(address("198.18.2.1", 1)), reflector.auth_key.key);
  ASSERT_TRUE(reflector.auth_key.key);
  EXPECT_EQ(reflector.auth_key.key->bytes.size(), 32u);
  EXPECT_EQ(reflector.auth_key.key->bytes[0], 0xff);

  EXPECT_EQ(config.probe.interval_ns, 250'000'000);
  EXPECT_EQ(config.probe.size, 128u);
  EXPECT_EQ(config.probe.dscp, 34);
  EXPECT_EQ(config.probe.timeout_ns, 2'500'000'000);
  EXPECT_EQ(config.probe.window_ns, 300'000'000'000);
  EXPECT_EQ(config.probe.down_after, 5u);
  EXPECT_EQ(config.probe.timestamp_format, TimestampFormat::kPtp);
  EXPECT_EQ(config.probe.mode(), stamp::Mode::kAuthenticated);

  ASSERT_EQ(config.peers.size(), 1u);
  const PeerConfig& peer = config.peers[0];
  EXPECT_EQ(peer.address.to_string(), "198.18.1.1:9862");
  EXPECT_EQ(peer.probe, config.probe);
  // One file, one key object, shared by everyone who names it.
  EXPECT_EQ(peer.probe.auth_key.key, reflector.source_keys[0].key.key);

  EXPECT_EQ(config.metrics.listen.to_string(), "127.0.0.2:9100");
  EXPECT_EQ(config.logging.level, LogLevel::kDebug);
}

// ---- Per-peer overrides ----------------------------------------------------------------------------

TEST_F(ConfigFiles, PeerOverridesOnlyWhatItSets) {
  const AgentConfig config = parse_ok(with_agent(R"(
[probe]
interval = "50ms"
dscp = "ef"

[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
interval = "20ms"
timeout = "300ms"
window = "10s"
down_after = 2
auth_key_file = "sg.key"

[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.2.1"
dscp = 10
size = 1500
timestamp_format = "ptp"
)"),
                                      dir_ + "/hubprobe.toml");
  ASSERT_EQ(config.peers.size(), 2u);
  const ProbeSettings& sg = config.peers[0].probe;
  EXPECT_EQ(sg.interval_ns, 20'000'000);
  EXPECT_EQ(sg.dscp, 46);  // inherited from [probe]
  EXPECT_EQ(sg.timeout_ns, 300'000'000);
  EXPECT_EQ(sg.window_ns, 10'000'000'000);
  EXPECT_EQ(sg.down_after, 2u);
  EXPECT_EQ(sg.mode(), stamp::Mode::kAuthenticated);
  EXPECT_EQ(sg.size, 112u);  // base packet of the authenticated mode
  const ProbeSettings& sh = config.peers[1].probe;
  EXPECT_EQ(sh.interval_ns, 50'000'000);
  EXPECT_EQ(sh.dscp, 10);
  EXPECT_EQ(sh.size, 1500u);
  EXPECT_EQ(sh.timestamp_format, TimestampFormat::kPtp);
  EXPECT_EQ(sh.mode(), stamp::Mode::kUnauthenticated);
  EXPECT_EQ(sh.window_ns, 60'000'000'000);
}

TEST_F(ConfigFiles, PeerCanTurnAuthenticationOff) {
  const AgentConfig config = parse_ok(with_agent(R"(
[probe]
auth_key_file = "sg.key"
[[peer]]
name = "router-1"
hub = "sg"
address = "198.18.1.254"
auth_key_file = ""
)"),
                                      dir_ + "/hubprobe.toml");
  ASSERT_EQ(config.peers.size(), 1u);
  EXPECT_EQ(config.peers[0].probe.mode(), stamp::Mode::kUnauthenticated);
  EXPECT_EQ(config.peers[0].probe.size, 44u);
}

TEST(ConfigPeers, SameAddressOnAnotherPortIsAnotherPeer) {
  const AgentConfig config = parse_ok(with_agent(R"(
[[peer]]
name = "a"
hub = "sg"
address = "198.18.1.1"
[[peer]]
name = "b"
hub = "sg"
address = "198.18.1.1"
port = 863
)"));
  EXPECT_EQ(config.peers.size(), 2u);
}

// ---- Errors: exact messages ------------------------------------------------------------------------

TEST(ConfigErrors, BadDurationInAPeer) {
  // The issue's own example, line for line.
  const std::string text = R"([agent]
id = "gz-edge-01"
hub = "gz"

[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"

[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.2.1"
interval = "fast"
)";
  EXPECT_EQ(
      parse_error(text),
      R"(hubprobe.toml:14:12: peer[1].interval: expected a duration like "100ms" (units ns, us, ms, s, m, h), got "fast")");
}

TEST(ConfigErrors, WrongType) {
  EXPECT_EQ(parse_error(with_agent("[reflector]\nport = \"862\"\n")),
            R"(hubprobe.toml:6:8: reflector.port: expected a port 1..65535, got "862")");
  EXPECT_EQ(parse_error(with_agent("[probe]\ninterval = 100\n")),
            R"(hubprobe.toml:6:12: probe.interval: expected a duration like "100ms", got 100)");
  EXPECT_EQ(parse_error(with_agent("[reflector]\nenabled = \"yes\"\n")),
            R"(hubprobe.toml:6:11: reflector.enabled: expected true or false, got "yes")");
  EXPECT_EQ(parse_error("reflector = 3\n" + std::string(kMinimal)),
            "hubprobe.toml:1:13: reflector: expected a table [reflector], got 3");
  EXPECT_EQ(parse_error(with_agent("[peer]\nname = \"x\"\n")),
            "hubprobe.toml:5:1: peer: expected [[peer]] entries (an array of tables), got a table");
  EXPECT_EQ(
      parse_error(with_agent("[reflector]\nallow = \"198.18.0.0/15\"\n")),
      R"(hubprobe.toml:6:9: reflector.allow: expected an array of prefixes like ["198.18.0.0/15"], got "198.18.0.0/15")");
  EXPECT_EQ(
      parse_error(with_agent("[reflector]\nlisten = [\"198.18.0.1\", 7]\n")),
      R"(hubprobe.toml:6:25: reflector.listen[1]: expected a numeric IPv4 or IPv6 address like "198.18.0.1", got 7)");
  EXPECT_EQ(parse_error(with_agent("[probe]\nwindow = 1.5\n")),
            R"(hubprobe.toml:6:10: probe.window: expected a duration like "100ms", got 1.5)");
}

TEST(ConfigErrors, UnknownKeyAtTopLevel) {
  EXPECT_EQ(parse_error(with_agent("[telemetry]\nrtt_p99 = \"25ms\"\n")),
            "hubprobe.toml:5:2: telemetry: unknown key (expected one of: agent dataplane reflector probe peer path sla "
            "scheduler metrics logging costmap)");
  EXPECT_EQ(parse_error(with_agent("[reflectr]\n")),
            R"(hubprobe.toml:5:2: reflectr: unknown key (did you mean "reflector"?))");
}

TEST(ConfigErrors, UnknownKeyInsideAPeer) {
  EXPECT_EQ(parse_error(with_agent(R"(
[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
intervall = "10ms"
)")),
            R"(hubprobe.toml:10:1: peer[0].intervall: unknown key (did you mean "interval"?))");
  // The first unknown key in the file is the one reported, whatever the alphabet says.
  EXPECT_EQ(parse_error(with_agent(R"(
[[peer]]
name = "sg-edge-01"
zzz = 1
aaa = 2
)")),
            "hubprobe.toml:8:1: peer[0].zzz: unknown key (expected one of: name hub address port interval size "
            "dscp timeout window down_after timestamp_format auth_key_file paths sla)");
}

TEST(ConfigErrors, UnknownKeyInNestedTables) {
  EXPECT_EQ(parse_error(with_agent("[agent.extra]\n")),
            R"(hubprobe.toml:5:8: agent.extra: unknown key (expected one of: id hub tick))");
  EXPECT_EQ(parse_error(with_agent("[dataplane.netmap]\n")),
            "hubprobe.toml:5:12: dataplane.netmap: unknown key (expected one of: backend kernel xdp dpdk)");
  EXPECT_EQ(
      parse_error(with_agent("[dataplane.kernel]\nhardware_timestamp = true\n")),
      R"(hubprobe.toml:6:1: dataplane.kernel.hardware_timestamp: unknown key (did you mean "hardware_timestamps"?))");
  EXPECT_EQ(parse_error(with_agent("[[reflector.auth]]\nsource = [\"198.18.0.0/15\"]\n")),
            R"(hubprobe.toml:6:1: reflector.auth[0].source: unknown key (did you mean "sources"?))");
  EXPECT_EQ(
      parse_error(with_agent("[metrics]\n\"listen address\" = 1\n")),
      R"(hubprobe.toml:6:1: metrics."listen address": unknown key (expected one of: listen web_config_file rtt_buckets))");
}

TEST(ConfigErrors, OutOfRange) {
  EXPECT_EQ(parse_error(with_agent("[reflector]\nport = 0\n")),
            "hubprobe.toml:6:8: reflector.port: expected a port 1..65535, got 0");
  EXPECT_EQ(parse_error(with_agent("[reflector]\nport = 70000\n")),
            "hubprobe.toml:6:8: reflector.port: expected a port 1..65535, got 70000");
  EXPECT_EQ(parse_error(with_agent("[probe]\nsize = 20\n")),
            "hubprobe.toml:6:8: probe.size: expected a packet size of 44..9000 octets, got 20");
  EXPECT_EQ(parse_error(with_agent("[probe]\ndscp = 64\n")),
            R"(hubprobe.toml:6:8: probe.dscp: expected a DSCP 0..63 or a PHB name such as "ef" or "af41", got 64)");
  EXPECT_EQ(parse_error(with_agent("[probe]\ndscp = \"af44\"\n")),
            R"(hubprobe.toml:6:8: probe.dscp: expected a DSCP 0..63 or a PHB name such as "ef" or "af41", got "af44")");
  EXPECT_EQ(parse_error(with_agent("[probe]\ninterval = \"500us\"\n")),
            R"(hubprobe.toml:6:12: probe.interval: expected a duration from 1ms to 1h, got "500us")");
  EXPECT_EQ(parse_error(with_agent("[probe]\ntimeout = \"0s\"\n")),
            R"(hubprobe.toml:6:11: probe.timeout: expected a duration from 1ms to 1h, got "0s")");
  EXPECT_EQ(parse_error(with_agent("[probe]\ndown_after = 0\n")),
            "hubprobe.toml:6:14: probe.down_after: expected a count of lost probes 1..1000, got 0");
  EXPECT_EQ(parse_error(with_agent("[reflector]\nrate_limit_pps = -1\n")),
            "hubprobe.toml:6:18: reflector.rate_limit_pps: expected packets per second per source 0..10000000 "
            "(0 = unlimited), got -1");
  EXPECT_EQ(parse_error(with_agent("[dataplane.kernel]\nreceive_buffer = 1024\n")),
            "hubprobe.toml:6:18: dataplane.kernel.receive_buffer: expected a size in octets from 65536 to "
            "1073741824, got 1024");
  EXPECT_EQ(parse_error(with_agent("[reflector]\nmode = \"stateful-ish\"\n")),
            R"(hubprobe.toml:6:8: reflector.mode: expected "stateful" or "stateless", got "stateful-ish")");
  EXPECT_EQ(parse_error(with_agent("[dataplane]\nbackend = \"netmap\"\n")),
            R"(hubprobe.toml:6:11: dataplane.backend: expected "kernel", "xdp" or "dpdk", got "netmap")");
  EXPECT_EQ(
      parse_error(with_agent("[logging]\nlevel = \"verbose\"\n")),
      R"(hubprobe.toml:6:9: logging.level: expected "trace", "debug", "info", "warn", "error", "critical" or "off", got "verbose")");
  EXPECT_EQ(
      parse_error(with_agent("[metrics]\nlisten = \"127.0.0.1:0\"\n")),
      R"(hubprobe.toml:6:10: metrics.listen: expected an IPv4 address and port like "127.0.0.1:9862", got "127.0.0.1:0")");
  EXPECT_EQ(
      parse_error(with_agent("[metrics]\nlisten = \"[::1]:9862\"\n")),
      R"(hubprobe.toml:6:10: metrics.listen: expected an IPv4 address and port like "127.0.0.1:9862", got "[::1]:9862")");
}

TEST(ConfigAgent, TickIsAutoOrADuration) {
  EXPECT_EQ(parse_ok(kMinimal).tick_ns, 0);  // auto
  const std::string agent = "[agent]\nid = \"gz-edge-01\"\nhub = \"gz\"\n";
  EXPECT_EQ(parse_ok(agent + "tick = \"auto\"\n").tick_ns, 0);
  EXPECT_EQ(parse_ok(agent + "tick = \"5ms\"\n").tick_ns, 5 * kMillisecond);
  EXPECT_EQ(parse_error(agent + "tick = \"500us\"\n"),
            R"(hubprobe.toml:4:8: agent.tick: expected a duration from 1ms to 100ms, got "500us")");
  EXPECT_EQ(parse_error(agent + "tick = \"1s\"\n"),
            R"(hubprobe.toml:4:8: agent.tick: expected a duration from 1ms to 100ms, got "1s")");
  EXPECT_EQ(
      parse_error(agent + "tick = \"automatic\"\n").rfind("hubprobe.toml:4:8: agent.tick: expected a duration", 0), 0u);
}

TEST(ConfigMetrics, RttBucketsArePowersOfTwoUpTo16OrNone) {
  EXPECT_EQ(parse_ok(kMinimal).metrics.rtt_buckets, 16u);
  for (const uint32_t n : {0u, 1u, 2u, 4u, 8u, 16u}) {
    EXPECT_EQ(parse_ok(with_agent("[metrics]\nrtt_buckets = " + std::to_string(n) + "\n")).metrics.rtt_buckets, n);
  }
  for (const char* bad : {"3", "32", "-1", "\"16\""}) {
    EXPECT_EQ(parse_error(with_agent(std::string("[metrics]\nrtt_buckets = ") + bad + "\n")),
              "hubprobe.toml:6:15: metrics.rtt_buckets: expected buckets per doubling: 16, 8, 4, 2, 1 or 0 (no "
              "histogram), got " +
                  std::string(bad))
        << bad;
  }
}

TEST(ConfigErrors, BadDuration) {
  for (const char* bad : {"fast", "-1s", "100", "1.s5", "ms", "1d", "1 s", "", "99999999999999999999h"}) {
    const std::string message = parse_error(with_agent(std::string("[probe]\ntimeout = \"") + bad + "\"\n"));
    EXPECT_EQ(message.rfind(R"(hubprobe.toml:6:11: probe.timeout: expected a duration like "100ms")", 0), 0u)
        << message;
  }
}

TEST(ConfigErrors, CrossFieldRules) {
  EXPECT_EQ(parse_error(with_agent("[probe]\ntimeout = \"2m\"\n")),
            R"(hubprobe.toml:6:11: probe.timeout: expected a duration at most the window (1m), got "2m")");
  EXPECT_EQ(parse_error(with_agent("[probe]\nwindow = \"1s\"\ninterval = \"2s\"\n")),
            R"(hubprobe.toml:7:12: probe.interval: expected a duration at most the window (1s), got "2s")");
  // A peer shrinking the window below an inherited timeout is blamed on its window.
  EXPECT_EQ(parse_error(with_agent(R"(
[probe]
timeout = "5s"
[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
window = "2s"
)")),
            R"(hubprobe.toml:12:10: peer[0].window: expected a duration of at least the timeout (5s), got "2s")");
}

TEST_F(ConfigFiles, AuthenticatedSizeBelow112) {
  const std::string source = dir_ + "/hubprobe.toml";
  EXPECT_EQ(parse_error(with_agent("[probe]\nauth_key_file = \"sg.key\"\nsize = 100\n"), source),
            source + ":7:8: probe.size: expected a packet size of 112..9000 octets (authenticated), got 100");
  // The size comes from [probe]; the peer that turns on authentication gets the message.
  EXPECT_EQ(parse_error(with_agent(R"(
[probe]
size = 64
[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
auth_key_file = "sg.key"
)"),
                        source),
            source +
                ":8:1: peer[0].size: expected a packet size of 112..9000 octets (authenticated), got 64 "
                "(inherited from probe.size; set size in this table)");
}

TEST(ConfigErrors, MissingRequired) {
  EXPECT_EQ(parse_error(""),
            R"(hubprobe.toml:1:1: agent.id: required key is missing (expected a name like "gz-edge-01"))");
  EXPECT_EQ(parse_error("\n[agent]\nhub = \"gz\"\n"),
            R"(hubprobe.toml:2:1: agent.id: required key is missing (expected a name like "gz-edge-01"))");
  EXPECT_EQ(parse_error("[agent]\nid = \"gz-edge-01\"\n"),
            R"(hubprobe.toml:1:1: agent.hub: required key is missing (expected a hub name like "gz"))");
  EXPECT_EQ(
      parse_error(with_agent(R"(
[[peer]]
name = "sg-edge-01"
hub = "sg"

[[peer]]
name = "sh-edge-01"
)")),
      R"(hubprobe.toml:6:1: peer[0].address: required key is missing (expected a numeric IPv4 or IPv6 address like "198.18.1.1"))");
  EXPECT_EQ(
      parse_error(with_agent("[[reflector.auth]]\nsources = [\"198.18.0.0/15\"]\n")),
      R"(hubprobe.toml:5:1: reflector.auth[0].key_file: required key is missing (expected a path to a file with a hex HMAC key))");
}

TEST(ConfigErrors, BadNamesAndAddresses) {
  EXPECT_EQ(
      parse_error("[agent]\nid = \"gz edge\"\nhub = \"gz\"\n"),
      R"(hubprobe.toml:2:6: agent.id: expected a name of letters, digits, '.', '_' or '-' (at most 63, starting with a letter or digit) like "gz-edge-01", got "gz edge")");
  const std::string peer = "[[peer]]\nname = \"sg\"\nhub = \"sg\"\naddress = ";
  EXPECT_EQ(
      parse_error(with_agent(peer + "\"sg.example.net\"\n")),
      R"(hubprobe.toml:8:11: peer[0].address: expected a numeric IPv4 or IPv6 address like "198.18.1.1", got "sg.example.net")");
  EXPECT_EQ(
      parse_error(with_agent(peer + "\"198.18.1.1:862\"\n")),
      R"(hubprobe.toml:8:11: peer[0].address: expected a numeric IPv4 or IPv6 address like "198.18.1.1" without a port (the port has its own key), got "198.18.1.1:862")");
  EXPECT_EQ(
      parse_error(with_agent(peer + "\"0.0.0.0\"\n")),
      R"(hubprobe.toml:8:11: peer[0].address: expected a unicast numeric IPv4 or IPv6 address like "198.18.1.1", got "0.0.0.0")");
  EXPECT_EQ(
      parse_error(with_agent("[reflector]\nallow = [\"198.18.0.1/15\"]\n")),
      R"(hubprobe.toml:6:10: reflector.allow[0]: expected a prefix like "198.18.0.0/15" or "2001:db8::/32", got "198.18.0.1/15" (host bits set (did you mean 198.18.0.0/15?)))");
  EXPECT_EQ(parse_error(with_agent("[reflector]\nlisten = [\"::\", \"::\"]\n")),
            R"(hubprobe.toml:6:17: reflector.listen[1]: expected an address not listed before, got "::")");
  EXPECT_EQ(
      parse_error(with_agent("[reflector]\nlisten = []\n")),
      R"(hubprobe.toml:6:10: reflector.listen: expected an array of addresses like ["0.0.0.0", "::"], got an empty array)");
}

TEST(ConfigErrors, UnknownInterface) {
  EXPECT_EQ(
      parse_error(with_agent("[reflector]\ninterface = \"hpnosuch0\"\n")),
      R"(hubprobe.toml:6:13: reflector.interface: expected an existing network interface, got "hpnosuch0" (no such interface on this host))");
}

TEST(ConfigXdp, InterfacesAndMode) {
  const AgentConfig config = parse_ok(
      with_agent("[dataplane]\nbackend = \"xdp\"\n[dataplane.xdp]\ninterfaces = [\"lo\"]\nmode = \"generic\"\n"));
  EXPECT_EQ(config.dataplane.backend, "xdp");
  EXPECT_EQ(config.dataplane.xdp.interfaces, std::vector<std::string>{"lo"});
  EXPECT_EQ(config.dataplane.xdp.mode, dp::XdpAttachMode::kGeneric);
  const AgentConfig defaults =
      parse_ok(with_agent("[dataplane]\nbackend = \"xdp\"\n[dataplane.xdp]\ninterfaces = [\"lo\"]\n"));
  EXPECT_EQ(defaults.dataplane.xdp.mode, dp::XdpAttachMode::kAuto);
}

TEST(ConfigXdp, Errors) {
  EXPECT_EQ(
      parse_error(with_agent("[dataplane]\nbackend = \"xdp\"\n")),
      R"(hubprobe.toml:5:1: dataplane.xdp.interfaces: required key is missing (expected an array of interface names like ["eth1"]: where the XDP programs attach))");
  EXPECT_EQ(
      parse_error(with_agent("[dataplane]\nbackend = \"xdp\"\n[dataplane.xdp]\ninterfaces = [\"hpnosuch0\"]\n")),
      R"(hubprobe.toml:8:15: dataplane.xdp.interfaces[0]: expected an existing network interface, got "hpnosuch0" (no such interface on this host))");
  EXPECT_EQ(
      parse_error(with_agent("[dataplane]\nbackend = \"xdp\"\n[dataplane.xdp]\ninterfaces = []\n")),
      R"(hubprobe.toml:8:14: dataplane.xdp.interfaces: expected an array of interface names like ["eth1"], got an empty array)");
  EXPECT_EQ(parse_error(with_agent("[dataplane]\nbackend = \"xdp\"\n[dataplane.xdp]\ninterfaces = [\"lo\", \"lo\"]\n")),
            R"(hubprobe.toml:8:21: dataplane.xdp.interfaces[1]: expected an interface not listed before, got "lo")");
  EXPECT_EQ(parse_error(with_agent(
                "[dataplane]\nbackend = \"xdp\"\n[dataplane.xdp]\ninterfaces = [\"lo\"]\nmode = \"offload\"\n")),
            R"(hubprobe.toml:9:8: dataplane.xdp.mode: expected "auto", "native" or "generic", got "offload")");
  EXPECT_EQ(
      parse_error(with_agent("[dataplane.xdp]\ninterfaces = [\"lo\"]\n")),
      R"(hubprobe.toml:5:1: dataplane.xdp: is only read with backend = "xdp" (the backend is "kernel"): remove the table or select the backend)");
}

TEST(ConfigErrors, DuplicatePeer) {
  const std::string sg = "[[peer]]\nname = \"sg-edge-01\"\nhub = \"sg\"\naddress = \"198.18.1.1\"\n";
  EXPECT_EQ(
      parse_error(with_agent(sg + "\n[[peer]]\nname = \"sg-edge-01\"\nhub = \"sh\"\naddress = \"198.18.2.1\"\n")),
      R"(hubprobe.toml:11:8: peer[1].name: expected a name no other peer uses, got "sg-edge-01" (also peer[0] "sg-edge-01", line 5))");
  EXPECT_EQ(
      parse_error(with_agent(sg + "\n[[peer]]\nname = \"sg-edge-02\"\nhub = \"sg\"\naddress = \"198.18.1.1\"\n")),
      R"(hubprobe.toml:13:11: peer[1].address: expected an address and port no other peer uses, got 198.18.1.1:862 (also peer[0] "sg-edge-01", line 5))");
}

TEST_F(ConfigFiles, UnreadableKeyFile) {
  const std::string source = dir_ + "/hubprobe.toml";
  EXPECT_EQ(
      parse_error(with_agent("[probe]\nauth_key_file = \"missing.key\"\n"), source),
      source +
          R"(:6:17: probe.auth_key_file: expected a readable file with a hex HMAC key, got "missing.key" (cannot open key file ')" +
          dir_ + "/missing.key': No such file or directory)");
  write("short.key", "0011\n");
  EXPECT_EQ(
      parse_error(with_agent("[reflector]\nauth_key_file = \"short.key\"\n"), source),
      source +
          R"(:6:17: reflector.auth_key_file: expected a readable file with a hex HMAC key, got "short.key" (key file ')" +
          dir_ + "/short.key': key has 2 octets, at least 16 are required)");
  EXPECT_EQ(
      parse_error(with_agent("[probe]\nauth_key_file = \"/dev/zero\"\n"), source),
      source +
          R"(:6:17: probe.auth_key_file: expected a readable file with a hex HMAC key, got "/dev/zero" ('/dev/zero' is not a regular file))");
  if (geteuid() != 0) {  // root reads anything
    const std::string locked = write("locked.key", kKeyHex);
    ASSERT_EQ(chmod(locked.c_str(), 0), 0);
    EXPECT_EQ(parse_error(with_agent("[probe]\nauth_key_file = \"" + locked + "\"\n"), source),
              source + ":6:17: probe.auth_key_file: expected a readable file with a hex HMAC key, got \"" + locked +
                  "\" (cannot open key file '" + locked + "': Permission denied)");
  }
}

TEST(ConfigErrors, BrokenTomlSyntax) {
  EXPECT_EQ(parse_error("[agent]\nid = \"gz-edge-01\"\nhub = \n"),
            "hubprobe.toml:3:7: Error while parsing key-value pair: expected value, saw '\\n'");
  EXPECT_EQ(parse_error("[agent]\nid = \"a\"\nid = \"b\"\n"),
            "hubprobe.toml:3:6: Error while parsing key-value pair: cannot redefine existing string 'id'");
  // toml++ shows the offending character raw; the message stays on one line.
  EXPECT_EQ(parse_error("[agent]\nid = t\n"),
            "hubprobe.toml:2:7: Error while parsing boolean: expected 'true', saw 't\\n'");
  EXPECT_EQ(parse_error("[agent\n", "/etc/hubprobe/hubprobe.toml"),
            "/etc/hubprobe/hubprobe.toml:1:7: Error while parsing table header: expected ']', saw '\\n'");
}

TEST(ConfigErrors, ExactlyOneLine) {
  const std::string message = parse_error(with_agent("[probe]\ninterval = \"fast\"\ndscp = 99\n[bogus]\n"));
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

// ---- Files and the check-config command -----------------------------------------------------------

TEST_F(ConfigFiles, LoadConfigReadsTheFileAndResolvesKeysNextToIt) {
  const std::string path = write("hubprobe.toml", with_agent("[probe]\nauth_key_file = \"sg.key\"\n"));
  auto config = load_config(path);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->source, path);
  EXPECT_EQ(config->probe.auth_key.path, dir_ + "/sg.key");
}

TEST_F(ConfigFiles, LoadConfigMissingFileOrFolder) {
  auto missing = load_config(dir_ + "/nope.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, dir_ + "/nope.toml: cannot open: No such file or directory");
  auto folder = load_config(dir_);
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.error().message, dir_ + ": cannot read: is a directory");
}

TEST_F(ConfigFiles, CheckConfigCommandExitCodes) {
  const std::string good = write("good.toml", with_agent(R"(
[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.2.1"
)"));
  std::ostringstream out, err;
  EXPECT_EQ(check_config_command(good, out, err), 0);
  EXPECT_EQ(out.str(), good + ": ok, 2 peers\n");
  EXPECT_EQ(err.str(), "");

  const std::string one =
      write("one.toml", with_agent("[[peer]]\nname = \"a\"\nhub = \"b\"\naddress = \"198.18.1.1\"\n"));
  out.str("");
  EXPECT_EQ(check_config_command(one, out, err), 0);
  EXPECT_EQ(out.str(), one + ": ok, 1 peer\n");

  const std::string bad = write("bad.toml", with_agent("[probe]\ninterval = \"fast\"\n"));
  out.str("");
  EXPECT_EQ(check_config_command(bad, out, err), kExitConfigError);
  EXPECT_EQ(kExitConfigError, 78);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(),
            bad + R"(:6:12: probe.interval: expected a duration like "100ms" (units ns, us, ms, s, m, h), got "fast")"
                  "\n");

  err.str("");
  EXPECT_EQ(check_config_command(dir_ + "/absent.toml", out, err), kExitConfigError);
  EXPECT_EQ(err.str(), dir_ + "/absent.toml: cannot open: No such file or directory\n");
}

// ---- Reload helpers ------------------------------------------------------------------------------

TEST_F(ConfigFiles, SameSessionAndDiff) {
  const std::string base = with_agent(R"(
[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.2.1"
[[peer]]
name = "old"
hub = "sh"
address = "198.18.2.2"
)");
  const std::string source = dir_ + "/hubprobe.toml";
  const AgentConfig before = parse_ok(base, source);
  const AgentConfig after = parse_ok(with_agent(R"(
[[peer]]
name = "sg-edge-01"
hub = "sg"
address = "198.18.1.1"
window = "30s"
[[peer]]
name = "sh-edge-01"
hub = "sh"
address = "198.18.2.1"
auth_key_file = "sh.key"
[[peer]]
name = "new"
hub = "sh"
address = "198.18.2.3"
[logging]
level = "debug"
)"),
                                     source);
  EXPECT_TRUE(same_session(before.peers[0], after.peers[0]));
  EXPECT_FALSE(before.peers[0] == after.peers[0]);
  EXPECT_FALSE(same_session(before.peers[1], after.peers[1]));

  const ConfigDiff diff = diff_configs(before, after);
  EXPECT_EQ(diff.peers_updated, std::vector<std::string>{"sg-edge-01"});
  EXPECT_EQ(diff.peers_restarted, std::vector<std::string>{"sh-edge-01"});
  EXPECT_EQ(diff.peers_added, std::vector<std::string>{"new"});
  EXPECT_EQ(diff.peers_removed, std::vector<std::string>{"old"});
  EXPECT_TRUE(diff.peers_unchanged.empty());
  EXPECT_TRUE(diff.logging_changed);
  EXPECT_FALSE(diff.reflector_changed);
  EXPECT_FALSE(diff.agent_changed);
  EXPECT_FALSE(diff.empty());

  const AgentConfig again = parse_ok(base, source);
  const ConfigDiff none = diff_configs(before, again);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.peers_unchanged.size(), 3u);
  EXPECT_EQ(before, again);  // keys compare by content, not by pointer
  EXPECT_TRUE(same_session(before.peers[1], again.peers[1]));
}

TEST_F(ConfigFiles, ChangedKeyContentRestartsTheSession) {
  const std::string source = dir_ + "/hubprobe.toml";
  const std::string text =
      with_agent("[[peer]]\nname = \"sg\"\nhub = \"sg\"\naddress = \"198.18.1.1\"\nauth_key_file = \"sg.key\"\n");
  const AgentConfig before = parse_ok(text, source);
  write("sg.key", "aa" + std::string(kKeyHex).substr(2));
  const AgentConfig after = parse_ok(text, source);
  EXPECT_FALSE(same_session(before.peers[0], after.peers[0]));
  EXPECT_EQ(diff_configs(before, after).peers_restarted, std::vector<std::string>{"sg"});
}

// ---- Durations, DSCP, prefixes ---------------------------------------------------------------------

TEST(ConfigDuration, Parse) {
  EXPECT_EQ(parse_duration("100ms").value(), 100'000'000);
  EXPECT_EQ(parse_duration("1s").value(), 1'000'000'000);
  EXPECT_EQ(parse_duration("2.5s").value(), 2'500'000'000);
  EXPECT_EQ(parse_duration("500us").value(), 500'000);
  EXPECT_EQ(parse_duration("500\xc2\xb5s").value(), 500'000);
  EXPECT_EQ(parse_duration("1m").value(), 60'000'000'000);
  EXPECT_EQ(parse_duration("1m30s").value(), 90'000'000'000);
  EXPECT_EQ(parse_duration("1h").value(), 3'600'000'000'000);
  EXPECT_EQ(parse_duration(".5ms").value(), 500'000);
  EXPECT_EQ(parse_duration("7ns").value(), 7);
  EXPECT_EQ(parse_duration("0.0000000001s").value(), 0);  // below a nanosecond
  for (const char* bad : {"", "fast", "-1s", "+1s", "1", "s", "1.s5", "1 s", "1S", "1d", "999999999999999999999s"}) {
    EXPECT_FALSE(parse_duration(bad).ok()) << bad;
  }
}

TEST(ConfigDuration, Format) {
  EXPECT_EQ(format_duration(100'000'000), "100ms");
  EXPECT_EQ(format_duration(2'500'000'000), "2.5s");
  EXPECT_EQ(format_duration(60'000'000'000), "1m");
  EXPECT_EQ(format_duration(5'400'000'000'000), "90m");
  EXPECT_EQ(format_duration(3'600'000'000'000), "1h");
  EXPECT_EQ(format_duration(1'500'000), "1.5ms");
  EXPECT_EQ(format_duration(500'000), "500us");
  EXPECT_EQ(format_duration(7), "7ns");
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(1'000'000'001), "1.000000001s");
  for (int64_t ns : {int64_t{1}, int64_t{999}, int64_t{1'234'567'891}, int64_t{61'000'000'000}}) {
    EXPECT_EQ(parse_duration(format_duration(ns)).value(), ns);
  }
}

TEST(ConfigDscp, NamesAndNumbers) {
  EXPECT_EQ(parse_dscp("ef").value(), 46);
  EXPECT_EQ(parse_dscp("EF").value(), 46);
  EXPECT_EQ(parse_dscp("af41").value(), 34);
  EXPECT_EQ(parse_dscp("cs5").value(), 40);
  EXPECT_EQ(parse_dscp("le").value(), 1);
  EXPECT_EQ(parse_dscp("63").value(), 63);
  EXPECT_FALSE(parse_dscp("64").ok());
  EXPECT_FALSE(parse_dscp("af44").ok());
  EXPECT_FALSE(parse_dscp("").ok());
  EXPECT_FALSE(parse_dscp("-1").ok());
}

TEST(ConfigPrefix, ParseAndContains) {
  const IpPrefix v4 = IpPrefix::parse("198.18.0.0/15").value();
  EXPECT_EQ(v4.family(), AF_INET);
  EXPECT_EQ(v4.length(), 15u);
  EXPECT_EQ(v4.to_string(), "198.18.0.0/15");
  EXPECT_TRUE(v4.contains(address("198.18.0.1", 862)));
  EXPECT_TRUE(v4.contains(address("198.19.255.255", 862)));
  EXPECT_FALSE(v4.contains(address("198.20.0.0", 862)));
  EXPECT_FALSE(v4.contains(address("198.17.255.255", 862)));
  EXPECT_TRUE(v4.contains(address("::ffff:198.18.3.4", 862)));
  EXPECT_FALSE(v4.contains(address("2001:db8::1", 862)));
  EXPECT_FALSE(v4.contains(SocketAddress()));

  const IpPrefix v6 = IpPrefix::parse("2001:DB8::/32").value();
  EXPECT_EQ(v6.to_string(), "2001:db8::/32");
  EXPECT_TRUE(v6.contains(address("2001:db8:ffff::1", 1)));
  EXPECT_FALSE(v6.contains(address("2001:db9::1", 1)));
  EXPECT_FALSE(v6.contains(address("198.18.0.1", 1)));

  EXPECT_EQ(IpPrefix::parse("198.18.0.7").value().to_string(), "198.18.0.7/32");
  EXPECT_EQ(IpPrefix::parse("::1").value().to_string(), "::1/128");
  const IpPrefix everything = IpPrefix::parse("0.0.0.0/0").value();
  EXPECT_TRUE(everything.contains(address("203.0.113.1", 1)));
  EXPECT_EQ(IpPrefix::parse("198.18.0.0/15").value(), v4);
}

TEST(ConfigPrefix, RejectsWhatItCannotMean) {
  EXPECT_EQ(IpPrefix::parse("198.18.0.1/15").error().message,
            "bad prefix '198.18.0.1/15': host bits set (did you mean 198.18.0.0/15?)");
  EXPECT_EQ(IpPrefix::parse("198.18.0.0/33").error().message,
            "bad prefix '198.18.0.0/33': length 33 out of range 0..32");
  EXPECT_EQ(IpPrefix::parse("gz/8").error().message, "bad prefix 'gz/8': 'gz' is not a numeric IPv4 or IPv6 address");
  for (const char* bad : {"", "198.18.0.0/", "198.18.0.0/x", "198.18.0.0/-1", "[2001:db8::]/32", "198.18.0.0:862/15",
                          "2001:db8::/129", "198.18.0.0/0015"}) {
    EXPECT_FALSE(IpPrefix::parse(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace hubprobe
