// SPDX-License-Identifier: Apache-2.0
// The [costmap] table of the agent's file (`hubprobe costmap --config`): defaults, every key, and the
// one-line errors.
#include <gtest/gtest.h>

#include <string>

#include "hubprobe/config.h"

namespace hubprobe {
namespace {

const std::string kAgent = R"([agent]
id = "gz-edge-01"
hub = "gz"
)";

TEST(ConfigCostmap, DefaultsAndEveryKey) {
  auto defaults = parse_config(kAgent, "hubprobe.toml");
  ASSERT_TRUE(defaults.ok()) << defaults.error().message;
  EXPECT_EQ(defaults->costmap.listen.to_string(), "127.0.0.1:9863");
  EXPECT_EQ(defaults->costmap.base_path, "/alto");
  EXPECT_EQ(defaults->costmap.public_url, "");
  EXPECT_EQ(defaults->costmap.threads, 16);
  EXPECT_EQ(defaults->costmap.max_wait_ns, 60 * kSecond);

  auto config = parse_config(kAgent + R"(
[costmap]
listen = "0.0.0.0"
base_path = "/fleet/alto"
public_url = "https://alto.example.net"
threads = 4
max_wait = "30s"
)",
                             "hubprobe.toml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->costmap.listen.to_string(), "0.0.0.0:9863");
  EXPECT_EQ(config->costmap.base_path, "/fleet/alto");
  EXPECT_EQ(config->costmap.public_url, "https://alto.example.net");
  EXPECT_EQ(config->costmap.threads, 4);
  EXPECT_EQ(config->costmap.max_wait_ns, 30 * kSecond);
}

TEST(ConfigCostmap, BadValuesNameTheirKey) {
  struct Case {
    const char* line;
    const char* error;
  };
  const Case cases[] = {
      {"listen = \"[::1]:9863\"", "hubprobe.toml:6:10: costmap.listen: expected an IPv4 address and port"},
      {"base_path = \"alto\"", "hubprobe.toml:6:13: costmap.base_path: expected a path like \"/alto\""},
      {"base_path = \"/alto/\"", "hubprobe.toml:6:13: costmap.base_path: expected a path like \"/alto\""},
      {"public_url = \"alto.example.net\"", "hubprobe.toml:6:14: costmap.public_url: expected an http:// or https://"},
      {"threads = 0", "hubprobe.toml:6:11: costmap.threads: expected an integer 1..1024"},
      {"max_wait = \"2h\"", "hubprobe.toml:6:12: costmap.max_wait:"},
      {"colour = \"blue\"", "hubprobe.toml:6:1: costmap.colour:"},
  };
  for (const Case& c : cases) {
    auto config = parse_config(kAgent + "\n[costmap]\n" + c.line + "\n", "hubprobe.toml");
    ASSERT_FALSE(config.ok()) << c.line;
    EXPECT_EQ(config.error().message.rfind(c.error, 0), 0u) << c.line << "\n" << config.error().message;
  }
}

}  // namespace
}  // namespace hubprobe
