// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/status_command.h"

#include <gtest/gtest.h>

#include <sstream>

namespace hubprobe {
namespace {

TEST(StatusCommand, TableShowsEveryPeerWithStateRttAndLoss) {
  const auto doc = nlohmann::json::parse(R"({
    "agent": {"id": "gz-edge-01", "hub": "gz", "version": "0.1.0", "backend": "kernel", "uptime_s": 12.0,
              "healthy": true},
    "clock": {"synchronized": false, "error_bound_s": 16.0},
    "config": {"last_reload_ok": false, "last_reload_error": "a.toml:3:1: peer[0].interval: expected a duration"},
    "peers": [
      {"name": "sg-edge-01", "hub": "sg", "address": "198.18.1.1:862", "state": "up",
       "rtt_ms": {"count": 10, "p50": 3.012, "p99": 3.4}, "jitter_ms": 0.05, "loss": {"total": 0.05}, "sent": 120},
      {"name": "sh-edge-01", "hub": "sh", "address": "198.18.2.1:862", "state": "down",
       "rtt_ms": {"count": 0, "p50": 0, "p99": 0}, "jitter_ms": 0, "loss": {"total": 1.0}, "sent": 30}
    ]})");
  const std::string table = format_status(doc);
  EXPECT_NE(table.find("agent gz-edge-01 (hub gz)"), std::string::npos) << table;
  EXPECT_NE(table.find("last reload REFUSED: a.toml:3:1"), std::string::npos) << table;
  EXPECT_NE(table.find("not synchronised"), std::string::npos) << table;
  EXPECT_NE(table.find("sg-edge-01"), std::string::npos);
  EXPECT_NE(table.find("3.012ms"), std::string::npos) << table;
  EXPECT_NE(table.find("5.00%"), std::string::npos) << table;
  EXPECT_NE(table.find("down"), std::string::npos);
  EXPECT_NE(table.find("100.00%"), std::string::npos) << table;
}

TEST(StatusCommand, PathsPreferencesSinksAndDiscovery) {
  const auto doc = nlohmann::json::parse(R"({
    "agent": {"id": "gz-edge-01", "hub": "gz"}, "clock": {}, "config": {},
    "peers": [
      {"name": "sh-edge-01", "hub": "sh", "address": "198.18.3.2:862", "path": "backbone-b", "state": "up",
       "rtt_ms": {"count": 10, "p50": 20.5, "p99": 21.0}, "jitter_ms": 0.05, "loss": {"total": 0}, "sent": 120}
    ],
    "preferences": {"generation": 42, "stale": true, "destinations": [
      {"hub": "sh", "preferred": {"peer": "sh-edge-01", "path": "backbone-b"}, "paths": [
        {"peer": "sh-edge-01", "path": "backbone-b", "rank": 1, "state": "ok", "preferred": true, "score": 0.0205,
         "confidence": 1.0, "costs": {"delay-rt": 20500.0, "lossrate": 0.0}},
        {"peer": "sh-edge-01", "path": "backbone-a", "rank": 2, "state": "down", "preferred": false,
         "confidence": 0.0, "costs": {}}]}]},
    "sinks": [{"name": "http", "kind": "http", "target": "http://198.18.9.254:8080/v1/preferences",
               "healthy": false, "delivered_generation": 40, "pushes_ok": 7, "pushes_failed": 3,
               "last_error": "connection refused"}],
    "discovery": {"endpoint": "http://198.18.0.254:2379", "polls_ok": 9, "polls_failed": 1, "last_error": "",
                  "peers": ["sg-edge-01", "wh-edge-01"],
                  "ignored": [{"key": "/hubprobe/agents/x", "reason": "no address"}]}
  })");
  const std::string table = format_status(doc);
  EXPECT_NE(table.find("backbone-b   up"), std::string::npos) << table;
  EXPECT_NE(table.find("preferences: generation 42 (stale)"), std::string::npos) << table;
  EXPECT_NE(table.find("1*    sh-edge-01           backbone-b   ok"), std::string::npos) << table;
  EXPECT_NE(table.find("20.500ms"), std::string::npos) << table;  // score
  EXPECT_NE(table.find("20500us"), std::string::npos) << table;   // delay-rt
  EXPECT_NE(table.find("2     sh-edge-01           backbone-a   down"), std::string::npos) << table;
  EXPECT_NE(table.find("http (http) http://198.18.9.254:8080/v1/preferences: DOWN, delivered generation 40, 7 ok / "
                       "3 failed: connection refused"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("2 peers from etcd: sg-edge-01 wh-edge-01, 9 polls ok / 1 failed"), std::string::npos) << table;
  EXPECT_NE(table.find("ignored /hubprobe/agents/x: no address"), std::string::npos) << table;
}

TEST(StatusCommand, UnreachableAgentIsAClearErrorNotACrash) {
  std::ostringstream out, err;
  // Port 1 on loopback: nothing listens there, the connection is refused at once.
  EXPECT_EQ(status_command("127.0.0.1:1", false, out, err), 1);
  EXPECT_NE(err.str().find("cannot reach the agent"), std::string::npos) << err.str();
}

}  // namespace
}  // namespace hubprobe
