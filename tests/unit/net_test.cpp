// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/net.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>

#include <string>
#include <unordered_set>

namespace hubprobe {
namespace {

SocketAddress parse_ok(std::string_view text, uint16_t default_port = 862) {
  auto address = SocketAddress::parse(text, default_port);
  EXPECT_TRUE(address.ok()) << text << ": " << (address.ok() ? "" : address.error().message);
  return address.ok() ? *address : SocketAddress();
}

std::string parse_error(std::string_view text) {
  auto address = SocketAddress::parse(text, 862);
  EXPECT_FALSE(address.ok()) << text << " parsed as " << (address.ok() ? address->to_string() : "");
  return address.ok() ? "" : address.error().message;
}

uint32_t scope_of(const SocketAddress& address) {
  return reinterpret_cast<const sockaddr_in6*>(address.sockaddr_ptr())->sin6_scope_id;
}

TEST(SocketAddressTest, Ipv4WithoutPortTakesTheDefault) {
  const SocketAddress address = parse_ok("198.18.0.1");
  EXPECT_TRUE(address.is_v4());
  EXPECT_EQ(address.port(), 862);
  EXPECT_EQ(address.host(), "198.18.0.1");
  EXPECT_EQ(address.to_string(), "198.18.0.1:862");
  EXPECT_EQ(address.length(), sizeof(sockaddr_in));
}

TEST(SocketAddressTest, Ipv4WithPort) {
  const SocketAddress address = parse_ok("198.18.0.1:4000");
  EXPECT_EQ(address.port(), 4000);
  EXPECT_EQ(address.to_string(), "198.18.0.1:4000");
  EXPECT_EQ(parse_ok("198.18.0.1:0").port(), 0);
  EXPECT_EQ(parse_ok("198.18.0.1:65535").port(), 65535);
  EXPECT_EQ(parse_ok("198.18.0.1:00862").port(), 862);
}

TEST(SocketAddressTest, BareIpv6IsAnAddressOnly) {
  const SocketAddress address = parse_ok("2001:db8::1");
  EXPECT_TRUE(address.is_v6());
  EXPECT_EQ(address.port(), 862);
  EXPECT_EQ(address.host(), "2001:db8::1");
  EXPECT_EQ(address.to_string(), "[2001:db8::1]:862");
  EXPECT_EQ(address.length(), sizeof(sockaddr_in6));
  // Without brackets a trailing group is part of the address, never a port.
  EXPECT_EQ(parse_ok("2001:db8::1:862").to_string(), "[2001:db8::1:862]:862");
  EXPECT_EQ(parse_ok("::1").to_string(), "[::1]:862");
}

TEST(SocketAddressTest, BracketedIpv6) {
  EXPECT_EQ(parse_ok("[2001:db8::1]:862").to_string(), "[2001:db8::1]:862");
  EXPECT_EQ(parse_ok("[2001:db8::1]:9000").port(), 9000);
  EXPECT_EQ(parse_ok("[2001:db8::1]", 1234).to_string(), "[2001:db8::1]:1234");
  EXPECT_EQ(parse_ok("[2001:DB8:0:0:0:0:0:1]:862").to_string(), "[2001:db8::1]:862");
}

TEST(SocketAddressTest, ScopeByInterfaceName) {
  const unsigned loopback = if_nametoindex("lo");
  if (loopback == 0) GTEST_SKIP() << "no interface named lo";
  const SocketAddress address = parse_ok("[fe80::1%lo]:862");
  EXPECT_EQ(scope_of(address), loopback);
  EXPECT_EQ(address.host(), "fe80::1%lo");
  EXPECT_EQ(address.to_string(), "[fe80::1%lo]:862");
  EXPECT_EQ(parse_ok("fe80::1%lo"), address);
}

TEST(SocketAddressTest, NumericScope) {
  const SocketAddress address = parse_ok("[fe80::1%4242]:862");
  EXPECT_EQ(scope_of(address), 4242u);
  EXPECT_EQ(address.to_string(), "[fe80::1%4242]:862");  // no interface 4242: printed as a number
  EXPECT_NE(address, parse_ok("[fe80::1%4243]:862"));
  EXPECT_NE(address, parse_ok("[fe80::1]:862"));
}

TEST(SocketAddressTest, ErrorsSayWhatIsExpected) {
  for (const char* text : {"", "198.18.0.1:", "198.18.0.1:abc", "198.18.0.1:70000", "198.18.0.1:1234567",
                           "[2001:db8::1", "[2001:db8::1]862", "[2001:db8::1]:", "[]:862", ":862", "[198.18.0.1]:862",
                           "198.18.0.256", "host.example:862", "fe80::1%", "fe80::1%nosuchif0", "198.18.0.1%lo",
                           "2001:db8::g", "198.18.0.1:-1", "[fe80::1%99999999999]:862"}) {
    const std::string message = parse_error(text);
    EXPECT_NE(message.find("expected ADDR, ADDR:PORT or [ADDR]:PORT"), std::string::npos) << text << ": " << message;
  }
  EXPECT_NE(parse_error("198.18.0.1:70000").find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("[2001:db8::1]:65536").find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("198.18.0.1:").find("missing port"), std::string::npos);
  EXPECT_NE(parse_error("[2001:db8::1").find("missing ']'"), std::string::npos);
  EXPECT_NE(parse_error("fe80::1%nosuchif0").find("unknown interface"), std::string::npos);
  EXPECT_NE(parse_error("fe80::1%averyveryverylongname").find("too long"), std::string::npos);
}

TEST(SocketAddressTest, ResolveAcceptsNumericFormsAndNames) {
  auto numeric = SocketAddress::resolve("[2001:db8::1]:9", 862);
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(numeric->to_string(), "[2001:db8::1]:9");

  auto name = SocketAddress::resolve("localhost:4000", 862);
  ASSERT_TRUE(name.ok()) << name.error().message;
  EXPECT_EQ(name->port(), 4000);
  EXPECT_TRUE(name->host() == "127.0.0.1" || name->host() == "::1") << name->host();

  auto default_port = SocketAddress::resolve("localhost", 862);
  ASSERT_TRUE(default_port.ok());
  EXPECT_EQ(default_port->port(), 862);
}

TEST(SocketAddressTest, ResolveErrors) {
  EXPECT_FALSE(SocketAddress::resolve("localhost:70000", 862).ok());
  EXPECT_FALSE(SocketAddress::resolve("[localhost]:862", 862).ok());
  EXPECT_FALSE(SocketAddress::resolve("2001:db8::zz", 862).ok());
  auto unknown = SocketAddress::resolve("no-such-host.invalid:862", 862);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("no-such-host.invalid"), std::string::npos);
}

TEST(SocketAddressTest, EqualityComparesFamilyAddressPortAndScope) {
  EXPECT_EQ(parse_ok("198.18.0.1:862"), parse_ok("198.18.0.1"));
  EXPECT_NE(parse_ok("198.18.0.1:862"), parse_ok("198.18.0.1:863"));
  EXPECT_NE(parse_ok("198.18.0.1:862"), parse_ok("198.18.0.2:862"));
  EXPECT_NE(parse_ok("::ffff:198.18.0.1"), parse_ok("198.18.0.1"));
  EXPECT_EQ(parse_ok("[2001:db8::1]:862"), parse_ok("2001:db8:0::1"));
  EXPECT_NE(parse_ok("[2001:db8::1]:862"), parse_ok("[2001:db8::2]:862"));
  EXPECT_EQ(SocketAddress(), SocketAddress());
  EXPECT_NE(SocketAddress(), parse_ok("0.0.0.0:0"));
}

TEST(SocketAddressTest, HashIsConsistentWithEquality) {
  std::unordered_set<SocketAddress> addresses;
  for (const char* text : {"198.18.0.1:862", "198.18.0.1", "198.18.0.1:863", "[2001:db8::1]:862", "2001:db8::1",
                           "[fe80::1%7]:862", "[fe80::1%8]:862"}) {
    addresses.insert(parse_ok(text));
  }
  EXPECT_EQ(addresses.size(), 5u);
  EXPECT_EQ(parse_ok("198.18.0.1").hash(), parse_ok("198.18.0.1:862").hash());
  EXPECT_EQ(std::hash<SocketAddress>()(parse_ok("2001:db8::1")), parse_ok("[2001:db8::1]:862").hash());
}

TEST(SocketAddressTest, FromSockaddrAnyAndSetPort) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(862);
  inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
  const SocketAddress address = SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof(v4));
  EXPECT_EQ(address.to_string(), "192.0.2.7:862");
  EXPECT_FALSE(SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof(v4) - 1).valid());
  EXPECT_FALSE(SocketAddress::from_sockaddr(nullptr, 0).valid());

  SocketAddress any4 = SocketAddress::any(AF_INET, 0);
  EXPECT_EQ(any4.to_string(), "0.0.0.0:0");
  any4.set_port(862);
  EXPECT_EQ(any4.port(), 862);
  EXPECT_EQ(SocketAddress::any(AF_INET6, 862).to_string(), "[::]:862");
  EXPECT_FALSE(SocketAddress::any(AF_UNIX, 862).valid());

  const SocketAddress unspecified;
  EXPECT_FALSE(unspecified.valid());
  EXPECT_EQ(unspecified.port(), 0);
  EXPECT_EQ(unspecified.to_string(), "unspecified");
  EXPECT_EQ(unspecified.length(), sizeof(sockaddr_storage));
}

}  // namespace
}  // namespace hubprobe
