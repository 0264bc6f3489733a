// SPDX-License-Identifier: Apache-2.0
// Usage errors: every bad flag or value gives exit status 2 and exactly one line on stderr, at once,
// before anything is sent. The commands run inside the testbed's sender namespace, so even a flag that
// is wrongly accepted cannot send anything outside it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fixture.h"

namespace hubprobe::it {
namespace {

struct UsageCase {
  const char* name;
  std::vector<std::string> args;  ///< "@KEY" / "@SHORTKEY" / "@BADKEY" become key file paths
};

void PrintTo(const UsageCase& c, std::ostream* os) { *os << "hubprobe " << join_argv(c.args); }

class UsageTest : public HubprobeTest, public ::testing::WithParamInterface<UsageCase> {};

TEST_P(UsageTest, ExitTwoWithOneLineOnStderr) {
  std::vector<std::string> args;
  for (const auto& a : GetParam().args) {
    if (a == "@KEY") {
      args.push_back(key_file("key", kKeyHex));
    } else if (a == "@SHORTKEY") {
      args.push_back(key_file("short", "00112233445566778899aabbccddee\n"));  // 15 octets
    } else if (a == "@BADKEY") {
      args.push_back(key_file("bad", "00112233445566778899aabbccddeeffzz\n"));
    } else if (a == "@ODDKEY") {
      args.push_back(key_file("odd", "00112233445566778899aabbccddeeff0\n"));  // half an octet more
    } else if (a == "@EMPTYKEY") {
      args.push_back(key_file("empty", ""));
    } else {
      args.push_back(a);
    }
  }
  // A wrongly accepted `ping` or `reflect` would run on: 5 s, then it is killed and the test fails.
  CommandResult r = run_hubprobe(sender(), args, Seconds(5));
  ASSERT_FALSE(r.timed_out) << "the bad value was accepted\n" << r.describe();
  EXPECT_TRUE(r.exit.exited()) << r.describe();
  EXPECT_EQ(r.exit.exit_code(), 2) << r.describe();
  EXPECT_EQ(count_lines(r.err), 1u) << "want exactly one line on stderr\n" << r.describe();
  EXPECT_LT(r.seconds, 2.0) << r.describe();
}

const char* const kHost = "198.18.0.2";

INSTANTIATE_TEST_SUITE_P(
    Cli, UsageTest,
    ::testing::Values(
        UsageCase{"count_not_a_number", {"ping", "-c", "abc", kHost}},
        UsageCase{"count_negative", {"ping", "-c", "-5", kHost}},
        UsageCase{"interval_too_small", {"ping", "-i", "0.0001", kHost}},
        UsageCase{"interval_not_a_number", {"ping", "-i", "fast", kHost}},
        UsageCase{"interval_negative", {"ping", "-i", "-1", kHost}},
        UsageCase{"dscp_too_large", {"ping", "-Q", "64", kHost}},
        UsageCase{"dscp_negative", {"ping", "-Q", "-1", kHost}},
        UsageCase{"size_too_small", {"ping", "-s", "10", kHost}},
        UsageCase{"size_one_below_base", {"ping", "-s", "43", kHost}},
        UsageCase{"size_below_authenticated_base", {"ping", "--auth-key-file", "@KEY", "-s", "100", kHost}},
        UsageCase{"timeout_not_a_number", {"ping", "--timeout", "soon", kHost}},
        UsageCase{"timeout_negative", {"ping", "--timeout", "-1", kHost}}, UsageCase{"missing_host", {"ping"}},
        UsageCase{"missing_host_with_options", {"ping", "-c", "3"}},
        UsageCase{"unknown_flag", {"ping", "--no-such-flag", kHost}},
        UsageCase{"port_out_of_range", {"ping", "198.18.0.2:99999"}},
        UsageCase{"port_not_a_number", {"ping", "198.18.0.2:http"}},
        UsageCase{"unclosed_ipv6_bracket", {"ping", "[2001:db8::2"}},
        UsageCase{"key_file_missing", {"ping", "--auth-key-file", "/nonexistent/hubprobe.key", kHost}},
        UsageCase{"key_file_too_short", {"ping", "--auth-key-file", "@SHORTKEY", kHost}},
        UsageCase{"key_file_not_hex", {"ping", "--auth-key-file", "@BADKEY", kHost}},
        UsageCase{"key_file_odd_digits", {"ping", "--auth-key-file", "@ODDKEY", kHost}},
        UsageCase{"key_file_empty", {"ping", "--auth-key-file", "@EMPTYKEY", kHost}},
        UsageCase{"reflect_bad_listen", {"reflect", "--listen", "not-an-address"}},
        UsageCase{"reflect_bad_listen_port", {"reflect", "--listen", "198.18.0.2:70000"}},
        UsageCase{"reflect_key_file_missing", {"reflect", "--auth-key-file", "/nonexistent/hubprobe.key"}},
        UsageCase{"reflect_key_file_too_short", {"reflect", "--auth-key-file", "@SHORTKEY"}},
        UsageCase{"reflect_unknown_flag", {"reflect", "--no-such-flag"}},
        UsageCase{"costmap_without_etcd", {"costmap"}},
        UsageCase{"costmap_etcd_not_a_url", {"costmap", "--etcd", "198.18.0.254:2379"}},
        UsageCase{"costmap_bad_listen", {"costmap", "--etcd", "http://198.18.0.254:2379", "--listen", "nowhere"}},
        UsageCase{"costmap_bad_base_path", {"costmap", "--etcd", "http://198.18.0.254:2379", "--base-path", "alto/"}},
        UsageCase{"costmap_threads_not_a_number",
                  {"costmap", "--etcd", "http://198.18.0.254:2379", "--threads", "many"}},
        UsageCase{"costmap_max_wait_too_long", {"costmap", "--etcd", "http://198.18.0.254:2379", "--max-wait", "7200"}},
        UsageCase{"unknown_subcommand", {"frobnicate"}}, UsageCase{"no_subcommand", {}}),
    [](const ::testing::TestParamInfo<UsageCase>& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace hubprobe::it
