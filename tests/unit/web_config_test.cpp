// SPDX-License-Identifier: Apache-2.0
// The web configuration file of [metrics] web_config_file (hubprobe/web_config.h): a valid file field by
// field, each kind of error with the message an operator reads, and the file through the TOML loader.
#include "hubprobe/web_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "hubprobe/config.h"

namespace hubprobe {
namespace {

// Made once with openssl (EC P-256, valid until 2126): a CA, a server certificate it signed, an unrelated
// key and that key encrypted (passphrase "secret"). Nothing is verified against the clock at load time.
constexpr std::string_view kCaCert = R"(-----BEGIN CERTIFICATE-----
MIIBjjCCATOgAwIBAgIUMdGG+UwCbbSD05YLBt3kAvAV7kIwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQaHVicHJvYmUgdGVzdCBDQTAgFw0yNjEyMDQyMDEyMjZaGA8y
MTI2MTExMDIwMTIyNlowGzEZMBcGA1UEAwwQaHVicHJvYmUgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABH9CsSmPTq2ldoeTG8ThHkRcVjjzTeKmhVV7
xBO3nAPGndMUENkiWHw4JRdmmwGela9JMWsok59Jat9+cIQV+wujUzBRMB0GA1Ud
DgQWBBRzqEJWOGPnf0gLO7UMqhSKK08BxjAfBgNVHSMEGDAWgBRzqEJWOGPnf0gL
O7UMqhSKK08BxjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDz
WQG1OgJ1nKr4GAdtW5YsAoooQcoGU+r5AmeT4o1+OQIhANaloAG57hIBajKdqx2u
/2Hln8qvKongpp9x73ZVgRYE
-----END CERTIFICATE-----
)";
constexpr std::string_view kServerCert = R"(-----BEGIN CERTIFICATE-----
MIIBKjCB0gIUaJ6yfzzyov0oXh36ySV/SVugUtkwCgYIKoZIzj0EAwIwGzEZMBcG
A1UEAwwQaHVicHJvYmUgdGVzdCBDQTAgFw0yNjEyMDQyMDEyMjZaGA8yMTI2MTEx
MDIwMTIyNlowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZI
zj0DAQcDQgAENoqh/Tn45eHwvF7KnQjZ9F/WWlvTbzmxHFnjQ4nFSu1bXWVS7ehU
hcPxrbgeNqLV5r27XevCaym3wVq8/hseBDAKBggqhkjOPQQDAgNHADBEAiAKIkX1
hFMMCodOgudOhHHQunvEx4ln8NDeyIXi8JrXyAIgDGei4/yUQwdqBEbLB3vebMWA
Kg6Jep9u9Uo71utykIE=
-----END CERTIFICATE-----
)";
// The same key's certificate renewed (self-signed): a replaced certificate at the same path.
constexpr std::string_view kRenewedCert = R"(-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUa4DZHGyVmHxAi7JqAHWiZtLLIvwwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNDIwMTM0OFoYDzIxMjYxMTEw
MjAxMzQ4WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQ2iqH9Ofjl4fC8XsqdCNn0X9ZaW9NvObEcWeNDicVK7VtdZVLt6FSF
w/GtuB42otXmvbtd68JrKbfBWrz+Gx4Eo1MwUTAdBgNVHQ4EFgQUP5tSockd0hNq
G8a61kfOQCFyCDkwHwYDVR0jBBgwFoAUP5tSockd0hNqG8a61kfOQCFyCDkwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAtd6s2Hx8OHPw0Ahy58xw
Su0Jy893HddGqaqpVIGG4B0CIEr0hmbDAShhD2B8Ucj3bFzxF+28qyAnV9ftL0zP
/4jC
-----END CERTIFICATE-----
)";
constexpr std::string_view kServerKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglgMW5qjZbgcPJZKS
ZNT3ITSURrbsXYM0jdpe0nMUSoWhRANCAAQ2iqH9Ofjl4fC8XsqdCNn0X9ZaW9Nv
ObEcWeNDicVK7VtdZVLt6FSFw/GtuB42otXmvbtd68JrKbfBWrz+Gx4E
-----END PRIVATE KEY-----
)";
constexpr std::string_view kOtherKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFQjTnabOFWHOWpY6
lagBeKxB30ft/yoyzyUwPG/YYnChRANCAARk22KbsLAl1HvHBtuGNGtvGc4C7tw2
xLjQWVQySBgc8rsx2AJuDqjuhBljZUW8nAclbxjUKi4qVoSJKeO7/q02
-----END PRIVATE KEY-----
)";
constexpr std::string_view kEncryptedKey = R"(-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhcytfDnsI7+gICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEHmy7uSuSchlfmfrNTYqZD4EgZCB
XvlJc9pzXnxCQNfqII1yKWdpW9oCxh7bCUVGKqgtfDFp1czLi6G2W3C9346w0QrI
boH8jJscrKibAkglxKn0AM1GzvxnEasvDcjPdGrKNBeBGKcKqB7Vd16Dm78EWjI8
lewmz6n8FhXiA67y8vMwYpFEVpmb2/IA6bYOLtFGZfdwdiKsnjpefBiKB+gv+Ww=
-----END ENCRYPTED PRIVATE KEY-----
)";

// bcrypt of "alice-password" (cost 10) and of "bob-password" (cost 4), by libxcrypt.
constexpr std::string_view kAliceHash = "$2b$10$abcdefghijklmnopqrstuury0MnzDo5hYf1x5ozVdqhjOmiOQD7FC";
constexpr std::string_view kBobHash = "$2y$04$ABCDEFGHIJKLMNOPQRSTUuR7ySA9qSSPDVxpJwBbbx0HBDsMVMMJO";

class WebConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/hubprobe-web-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    write("ca.crt", kCaCert);
    write("server.crt", kServerCert);
    write("server.key", kServerKey);
    write("other.key", kOtherKey);
    write("encrypted.key", kEncryptedKey);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, std::string_view content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  WebConfig load_ok(std::string_view yaml) {
    const std::string path = write("web.yml", yaml);
    auto config = load_web_config(path);
    EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message);
    return config.ok() ? *config : WebConfig{};
  }

  // The message, without the "DIR/web.yml:" in front of it.
  std::string load_error(std::string_view yaml) {
    const std::string path = write("web.yml", yaml);
    auto config = load_web_config(path);
    EXPECT_FALSE(config.ok()) << "accepted:\n" << yaml;
    if (config.ok()) return "";
    const std::string& message = config.error().message;
    EXPECT_EQ(message.rfind(path + ":", 0), 0u) << message;
    return message.substr(path.size() + 1);
  }

  std::string dir_;
};

TEST_F(WebConfigTest, ValidFileFieldByField) {
  const WebConfig web = load_ok(R"(# TLS with client certificates and two users
tls_server_config:
  cert_file: server.crt
  key_file: )" + dir_ + R"(/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
  max_version: TLS13
basic_auth_users:
  alice: )" + std::string(kAliceHash) +
                                R"(
  bob: ')" + std::string(kBobHash) +
                                R"('
)");
  EXPECT_EQ(web.file, dir_ + "/web.yml");
  ASSERT_TRUE(web.tls.has_value());
  // Relative paths are the web configuration file's folder's, as exporter-toolkit takes them.
  EXPECT_EQ(web.tls->cert_file, dir_ + "/server.crt");
  EXPECT_EQ(web.tls->key_file, dir_ + "/server.key");
  EXPECT_EQ(web.tls->client_ca_file, dir_ + "/ca.crt");
  EXPECT_EQ(web.tls->cert_pem, kServerCert);
  EXPECT_EQ(web.tls->key_pem, kServerKey);
  EXPECT_EQ(web.tls->client_ca_pem, kCaCert);
  EXPECT_EQ(web.tls->client_auth, ClientAuth::kRequireAndVerifyClientCert);
  EXPECT_EQ(web.tls->min_version, TlsVersion::kTls13);
  EXPECT_EQ(web.tls->max_version, TlsVersion::kTls13);
  ASSERT_EQ(web.basic_auth_users.size(), 2u);
  EXPECT_EQ(web.basic_auth_users.at("alice"), kAliceHash);
  EXPECT_EQ(web.basic_auth_users.at("bob"), kBobHash);
}

TEST_F(WebConfigTest, DefaultsOfTheOptionalKeys) {
  const WebConfig web = load_ok("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
  ASSERT_TRUE(web.tls.has_value());
  EXPECT_EQ(web.tls->client_auth, ClientAuth::kNoClientCert);
  EXPECT_EQ(web.tls->client_ca_file, "");
  EXPECT_EQ(web.tls->client_ca_pem, "");
  EXPECT_EQ(web.tls->min_version, TlsVersion::kTls12);  // exporter-toolkit's default
  EXPECT_EQ(web.tls->max_version, TlsVersion::kTls13);
  EXPECT_TRUE(web.basic_auth_users.empty());
}

TEST_F(WebConfigTest, EachClientAuthType) {
  const std::pair<std::string, ClientAuth> cases[] = {
      {"NoClientCert", ClientAuth::kNoClientCert},
      {"RequestClientCert", ClientAuth::kRequestClientCert},
      {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
      {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
      {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert},
  };
  for (const auto& [name, auth] : cases) {
    const bool verifies =
        auth == ClientAuth::kVerifyClientCertIfGiven || auth == ClientAuth::kRequireAndVerifyClientCert;
    const WebConfig web = load_ok(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: " +
        name + "\n" + (verifies ? "  client_ca_file: ca.crt\n" : ""));
    ASSERT_TRUE(web.tls.has_value()) << name;
    EXPECT_EQ(web.tls->client_auth, auth) << name;
    EXPECT_STREQ(to_string(auth), name.c_str());
  }
}

TEST_F(WebConfigTest, NothingConfiguredIsPlainHttpWithoutAuthentication) {
  for (const std::string_view yaml : {"", "# nothing\n", "tls_server_config:\n", "tls_server_config: {}\n",
                                      "basic_auth_users:\n", "basic_auth_users: {}\n"}) {
    const WebConfig web = load_ok(yaml);
    EXPECT_FALSE(web.tls.has_value()) << yaml;
    EXPECT_TRUE(web.basic_auth_users.empty()) << yaml;
  }
  const WebConfig users_only = load_ok("basic_auth_users:\n  alice: " + std::string(kAliceHash) + "\n");
  EXPECT_FALSE(users_only.tls.has_value());
  EXPECT_EQ(users_only.basic_auth_users.size(), 1u);
}

TEST_F(WebConfigTest, MissingFile) {
  const std::string path = dir_ + "/absent.yml";
  auto config = load_web_config(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message, path + ": cannot open: No such file or directory");
}

TEST_F(WebConfigTest, NotYaml) {
  EXPECT_EQ(load_error("tls_server_config: [cert_file\n").rfind("2:1: not YAML: ", 0), 0u)
      << load_error("tls_server_config: [cert_file\n");
  EXPECT_EQ(load_error("- a\n- b\n"), "1:1: expected a mapping of tls_server_config and basic_auth_users, got a list");
}

TEST_F(WebConfigTest, UnknownAndUnsupportedKeys) {
  EXPECT_EQ(load_error("tls_config:\n  cert_file: server.crt\n"),
            "1:1: tls_config: unknown key (expected one of: tls_server_config, basic_auth_users)");
  EXPECT_EQ(load_error("rate_limit:\n  burst: 20\n"),
            "1:1: rate_limit: not supported by hubprobe (docs/configuration.md lists the keys it reads)");
  EXPECT_EQ(load_error("http_server_config:\n  http2: false\n"),
            "1:1: http_server_config: not supported by hubprobe (docs/configuration.md lists the keys it reads)");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  certfile: x\n"),
            "4:3: tls_server_config.certfile: unknown key (expected one of: cert_file, key_file, client_auth_type, "
            "client_ca_file, min_version, max_version)");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: []\n"),
            "4:3: tls_server_config.cipher_suites: not supported by hubprobe (docs/configuration.md lists the keys it "
            "reads)");
  EXPECT_EQ(load_error("tls_server_config:\n  cert: inline\n"),
            "2:3: tls_server_config.cert: not supported by hubprobe (docs/configuration.md lists the keys it reads)");
}

TEST_F(WebConfigTest, WrongShapes) {
  EXPECT_EQ(load_error("tls_server_config: server.crt\n"),
            "1:20: tls_server_config: expected a mapping of cert_file, key_file, ..., got \"server.crt\"");
  EXPECT_EQ(load_error("basic_auth_users:\n  - alice\n"),
            "2:3: basic_auth_users: expected a mapping of user names to bcrypt hashes, got a list");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: [server.crt]\n  key_file: server.key\n"),
            "2:14: tls_server_config.cert_file: expected a readable certificate file (PEM), got a list");
}

TEST_F(WebConfigTest, CertificateAndKeyFiles) {
  EXPECT_EQ(load_error("tls_server_config:\n  key_file: server.key\n"),
            "2:3: tls_server_config.cert_file: required key is missing (the server's certificate, PEM)");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n"),
            "2:3: tls_server_config.key_file: required key is missing (the server's private key, PEM)");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: absent.key\n"),
            "3:13: tls_server_config.key_file: expected a readable private key file (PEM), got \"absent.key\" ('" +
                dir_ + "/absent.key': cannot open: No such file or directory)");
  if (geteuid() != 0) {  // root reads a file of mode 000 all the same
    const std::string locked = write("locked.key", kServerKey);
    ASSERT_EQ(chmod(locked.c_str(), 0), 0);
    EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: locked.key\n"),
              "3:13: tls_server_config.key_file: expected a readable private key file (PEM), got \"locked.key\" ('" +
                  dir_ + "/locked.key': cannot open: Permission denied)");
  }
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n"),
            "2:14: tls_server_config.cert_file: expected a PEM certificate, '" + dir_ +
                "/server.key' holds none (error:0480006C:PEM routines::no start line)");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n"),
            "3:13: tls_server_config.key_file: expected an unencrypted PEM private key, '" + dir_ +
                "/server.crt' holds none");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: encrypted.key\n"),
            "3:13: tls_server_config.key_file: expected an unencrypted PEM private key, '" + dir_ +
                "/encrypted.key' holds none");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n"),
            "3:13: tls_server_config.key_file: the key in '" + dir_ +
                "/other.key' does not belong to the certificate in '" + dir_ + "/server.crt'");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: /dev/null\n  key_file: server.key\n"),
            "2:14: tls_server_config.cert_file: expected a readable certificate file (PEM), got \"/dev/null\" "
            "('/dev/null': cannot read: not a regular file)");
}

TEST_F(WebConfigTest, ClientCertificatePolicy) {
  const std::string tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
  EXPECT_EQ(load_error(tls + "  client_auth_type: RequireAndVerifyClientCert\n"),
            "4:21: tls_server_config.client_ca_file: required key is missing (client_auth_type "
            "RequireAndVerifyClientCert verifies client certificates against the CAs in it)");
  EXPECT_EQ(load_error(tls + "  client_auth_type: VerifyClientCertIfGiven\n"),
            "4:21: tls_server_config.client_ca_file: required key is missing (client_auth_type "
            "VerifyClientCertIfGiven verifies client certificates against the CAs in it)");
  EXPECT_EQ(load_error(tls + "  client_ca_file: ca.crt\n"),
            "4:19: tls_server_config.client_ca_file: is not used with client_auth_type NoClientCert (set "
            "VerifyClientCertIfGiven or RequireAndVerifyClientCert, or remove it)");
  EXPECT_EQ(load_error(tls + "  client_auth_type: RequireClientCert\n"),
            "4:21: tls_server_config.client_auth_type: expected one of NoClientCert, RequestClientCert, "
            "RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert, got \"RequireClientCert\"");
  EXPECT_EQ(
      load_error(tls + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n"),
      "5:19: tls_server_config.client_ca_file: expected PEM CA certificates, '" + dir_ + "/server.key' holds none");
}

TEST_F(WebConfigTest, Versions) {
  const std::string tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
  EXPECT_EQ(load_error(tls + "  min_version: TLS14\n"),
            "4:16: tls_server_config.min_version: expected one of TLS10, TLS11, TLS12, TLS13, got \"TLS14\"");
  EXPECT_EQ(load_error(tls + "  min_version: TLS13\n  max_version: TLS12\n"),
            "5:16: tls_server_config.max_version: expected a version no older than min_version TLS13, got TLS12");
  EXPECT_EQ(load_ok(tls + "  min_version: TLS10\n").tls->min_version, TlsVersion::kTls10);
}

TEST_F(WebConfigTest, UsersAndHashes) {
  // A bad hash is named by its user; the value itself is never in the message.
  const std::string bad = "$2y$10$tooShort";
  const std::string message = load_error("basic_auth_users:\n  alice: '" + bad + "'\n");
  EXPECT_EQ(message,
            "2:10: basic_auth_users.alice: expected a bcrypt hash (\"$2y$\", \"$2b$\" or \"$2a$\", a cost 04..31, 60 "
            "characters, as htpasswd -B writes it); the value is not shown");
  EXPECT_EQ(message.find("tooShort"), std::string::npos);
  const std::string plain = load_error("basic_auth_users:\n  alice: alice-password\n");
  EXPECT_EQ(plain.find("alice-password"), std::string::npos) << plain;
  EXPECT_EQ(load_error("basic_auth_users:\n  'al:ice': " + std::string(kAliceHash) + "\n"),
            "2:3: basic_auth_users.al:ice: expected a user name without ':' or control characters (HTTP basic auth)");
  EXPECT_EQ(load_error("basic_auth_users:\n  alice:\n"),
            "2:3: basic_auth_users.alice: expected a bcrypt hash (\"$2y$\", \"$2b$\" or \"$2a$\", a cost 04..31, 60 "
            "characters, as htpasswd -B writes it); the value is not shown");
}

TEST(BcryptHash, Format) {
  EXPECT_TRUE(is_bcrypt_hash(kAliceHash));
  EXPECT_TRUE(is_bcrypt_hash(kBobHash));
  std::string hash(kAliceHash);
  EXPECT_TRUE(is_bcrypt_hash("$2a" + hash.substr(3)));
  EXPECT_FALSE(is_bcrypt_hash("$2x" + hash.substr(3)));     // not a variant htpasswd or Go write
  EXPECT_FALSE(is_bcrypt_hash("$1$" + hash.substr(3)));     // MD5-crypt
  EXPECT_FALSE(is_bcrypt_hash("$2b$03" + hash.substr(6)));  // cost below 4
  EXPECT_FALSE(is_bcrypt_hash("$2b$32" + hash.substr(6)));  // cost above 31
  EXPECT_FALSE(is_bcrypt_hash(hash.substr(0, 59)));         // one short
  EXPECT_FALSE(is_bcrypt_hash(hash + "x"));                 // one long
  EXPECT_FALSE(is_bcrypt_hash(hash.substr(0, 59) + "!"));   // not bcrypt's base64
  EXPECT_FALSE(is_bcrypt_hash(""));
}

// ---- through the TOML loader -----------------------------------------------------------------------

TEST_F(WebConfigTest, MetricsWebConfigFile) {
  write("web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: " +
                       std::string(kAliceHash) + "\n");
  const std::string toml = "[agent]\nid = \"gz-edge-01\"\nhub = \"gz\"\n[metrics]\nweb_config_file = \"web.yml\"\n";
  auto config = parse_config(toml, dir_ + "/hubprobe.toml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->metrics.web.file, dir_ + "/web.yml");  // relative to the TOML file's folder
  ASSERT_TRUE(config->metrics.web.tls.has_value());
  EXPECT_EQ(config->metrics.web.tls->cert_file, dir_ + "/server.crt");
  EXPECT_EQ(config->metrics.web.basic_auth_users.size(), 1u);

  // Without the key: no TLS, no users.
  auto plain = parse_config("[agent]\nid = \"gz-edge-01\"\nhub = \"gz\"\n", dir_ + "/hubprobe.toml");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->metrics.web, WebConfig{});

  // A reload sees other users, and a replaced certificate (same paths, new contents), as changes.
  write("web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
  auto fewer_users = parse_config(toml, dir_ + "/hubprobe.toml");
  ASSERT_TRUE(fewer_users.ok());
  EXPECT_TRUE(diff_configs(*config, *fewer_users).metrics_changed);
  EXPECT_EQ(config->metrics.web.tls, fewer_users->metrics.web.tls);
  write("server.crt", kRenewedCert);
  auto renewed = parse_config(toml, dir_ + "/hubprobe.toml");
  ASSERT_TRUE(renewed.ok()) << renewed.error().message;
  EXPECT_TRUE(diff_configs(*fewer_users, *renewed).metrics_changed);
  EXPECT_EQ(renewed->metrics.web.tls->cert_pem, kRenewedCert);
}

TEST_F(WebConfigTest, MetricsWebConfigFileErrors) {
  const std::string toml = "[agent]\nid = \"gz-edge-01\"\nhub = \"gz\"\n[metrics]\nweb_config_file = \"web.yml\"\n";
  const std::string source = dir_ + "/hubprobe.toml";
  std::filesystem::remove(dir_ + "/web.yml");
  auto missing = parse_config(toml, source);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message,
            source +
                ":5:19: metrics.web_config_file: expected a readable web configuration file (YAML, as "
                "Prometheus exporters read it), got \"web.yml\" (cannot open '" +
                dir_ + "/web.yml': No such file or directory)");
  // The web configuration's own position and key follow the TOML file's.
  write("web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n");
  auto bad = parse_config(toml, source);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, source + ":5:19: metrics.web_config_file: " + dir_ +
                                     "/web.yml:3:13: tls_server_config.key_file: the key in '" + dir_ +
                                     "/other.key' does not belong to the certificate in '" + dir_ + "/server.crt'");
  auto wrong_type = parse_config("[agent]\nid = \"a\"\nhub = \"gz\"\n[metrics]\nweb_config_file = 3\n", source);
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_NE(wrong_type.error().message.find("metrics.web_config_file: expected a readable web configuration file"),
            std::string::npos)
      << wrong_type.error().message;
}

}  // namespace
}  // namespace hubprobe
