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

TEST(StatusCommand, UnreachableAgentIsAClearErrorNotACrash) {
  std::ostringstream out, err;
  // Port 1 on loopback: nothing listens there, the connection is refused at once.
  EXPECT_EQ(status_command("127.0.0.1:1", false, out, err), 1);
  EXPECT_NE(err.str().find("cannot reach the agent"), std::string::npos) << err.str();
}

}  // namespace
}  // namespace hubprobe
