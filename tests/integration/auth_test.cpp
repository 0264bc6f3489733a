// SPDX-License-Identifier: Apache-2.0
// Authenticated STAMP (RFC 8762 4.2.2/4.3.2, HMAC-SHA-256/128) end to end: matching keys work with the
// 112-octet base packet; any mismatch yields no accepted reply, and neither side stops running.
// Replies on the wire are counted with nftables, so "nothing accepted" can be told apart from
// "nothing sent back".
#include <gtest/gtest.h>

#include <string>

#include "fixture.h"

namespace hubprobe::it {
namespace {

using nlohmann::json;

class AuthTest : public HubprobeTest {
 protected:
  void SetUp() override {
    HubprobeTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    HUBPROBE_REQUIRE_NFT();
    nft_ = std::make_unique<Nft>(reflector_ns());
    nft_->add_counter("replies");
    nft_->add_counter("auth_requests");
    nft_->add_rule("output", "udp sport 862 counter name \"replies\"");
    nft_->add_rule("input", "udp dport 862 udp length 120 counter name \"auth_requests\"");
    key_ = key_file("key", kKeyHex);
    other_key_ = key_file("other-key", kOtherKeyHex);
  }
  uint64_t replies_on_wire() { return nft_->packets("replies"); }

  // A few probes with the given extra options; returns the parsed report.
  void Ping(const std::vector<std::string>& extra, int expected_exit, json* report) {
    std::vector<std::string> args = extra;
    for (const char* a : {"-c", "5", "-i", "0.01", "--timeout", "0.5", "--json"}) args.emplace_back(a);
    args.emplace_back(Testbed::kReflectorV4);
    CommandResult r = ping(args, Seconds(10));
    EXPECT_EQ(r.exit.exit_code(), expected_exit) << r.describe();
    ASSERT_NO_FATAL_FAILURE(ParseReport(r, report));
  }

  std::unique_ptr<Nft> nft_;
  std::string key_;
  std::string other_key_;
};

TEST_F(AuthTest, SameKeyGivesRepliesOf112Octets) {
  auto refl = start_reflector({"--auth-key-file", key_});
  json report;
  ASSERT_NO_FATAL_FAILURE(Ping({"--auth-key-file", key_}, 0, &report));
  EXPECT_EQ(counter(report, "sent"), 5);
  EXPECT_EQ(counter(report, "received"), 5);
  EXPECT_EQ(counter(report, "invalid"), 0);
  EXPECT_EQ(nft_->packets("auth_requests"), 5u) << "authenticated probes are 112 octets by default";

  CommandResult text =
      ping({"--auth-key-file", key_, "-c", "3", "-i", "0.01", "--timeout", "1", Testbed::kReflectorV4}, Seconds(10));
  EXPECT_EQ(text.exit.exit_code(), 0) << text.describe();
  auto lines = parse_reply_lines(text.out);
  ASSERT_EQ(lines.size(), 3u) << text.describe();
  for (const auto& line : lines) EXPECT_EQ(line.bytes, 112u) << text.out;
}

TEST_F(AuthTest, AuthenticatedSizeOption) {
  auto refl = start_reflector({"--auth-key-file", key_});
  CommandResult r =
      ping({"--auth-key-file", key_, "-s", "256", "-c", "3", "-i", "0.01", "--timeout", "1", Testbed::kReflectorV4},
           Seconds(10));
  EXPECT_EQ(r.exit.exit_code(), 0) << r.describe();
  auto lines = parse_reply_lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.describe();
  for (const auto& line : lines) EXPECT_EQ(line.bytes, 256u) << r.out;
}

TEST_F(AuthTest, WrongKeyIsRefusedAndBothSidesKeepRunning) {
  auto refl = start_reflector({"--auth-key-file", key_});
  json report;
  ASSERT_NO_FATAL_FAILURE(Ping({"--auth-key-file", other_key_}, 1, &report));
  EXPECT_EQ(counter(report, "sent"), 5);
  EXPECT_EQ(counter(report, "received"), 0);
  // RFC 8762 4.3.2: the reflector discards a request whose HMAC does not verify. Whatever it sends
  // back all the same must be refused by the sender.
  EXPECT_EQ(replies_on_wire(), 0u) << "reflector answered requests with a bad HMAC";
  EXPECT_EQ(counter(report, "invalid"), static_cast<int64_t>(replies_on_wire()));
  EXPECT_EQ(counter(report, "loss.total"), 5);
  ASSERT_TRUE(refl->running()) << refl->describe();

  // The reflector still serves a sender with the right key.
  ASSERT_NO_FATAL_FAILURE(Ping({"--auth-key-file", key_}, 0, &report));
  EXPECT_EQ(counter(report, "received"), 5);
}

TEST_F(AuthTest, UnauthenticatedSenderToAuthenticatedReflector) {
  auto refl = start_reflector({"--auth-key-file", key_});
  json report;
  ASSERT_NO_FATAL_FAILURE(Ping({}, 1, &report));
  EXPECT_EQ(counter(report, "received"), 0);
  EXPECT_EQ(replies_on_wire(), 0u) << "a 44-octet request is too short for authenticated mode";
  EXPECT_TRUE(refl->running()) << refl->describe();
}

TEST_F(AuthTest, AuthenticatedSenderToUnauthenticatedReflector) {
  auto refl = start_reflector({});
  json report;
  ASSERT_NO_FATAL_FAILURE(Ping({"--auth-key-file", key_}, 1, &report));
  EXPECT_EQ(counter(report, "received"), 0);
  // An unauthenticated reflector may well answer a 112-octet request (as a padded one); every such
  // answer lacks a valid HMAC and must be counted invalid.
  EXPECT_EQ(counter(report, "invalid"), static_cast<int64_t>(replies_on_wire())) << report.dump();
  EXPECT_TRUE(refl->running()) << refl->describe();
}

// Key files: hex with any whitespace; at least 16 octets.
TEST_F(AuthTest, MinimalKeyFileWithWhitespace) {
  const std::string short_ok = key_file("key16", "  0011 2233\t4455 6677\n\n8899 aabb ccdd eeff  \n");
  auto refl = start_reflector({"--auth-key-file", short_ok});
  json report;
  ASSERT_NO_FATAL_FAILURE(Ping({"--auth-key-file", short_ok}, 0, &report));
  EXPECT_EQ(counter(report, "received"), 5);
}

}  // namespace
}  // namespace hubprobe::it
