// SPDX-License-Identifier: Apache-2.0
// HttpServer with a web configuration (hubprobe/web_config.h), through libcurl on loopback: TLS with
// client certificates from a CA made by the openssl command, basic auth with bcrypt hashes made by
// libxcrypt; users swapped while serving.
#include <crypt.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hubprobe/http_server.h"
#include "hubprobe/web_config.h"

namespace hubprobe {
namespace {

std::string bcrypt(const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof salt) == nullptr) return "";  // cost 4: quick
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_rn(password.c_str(), salt, data.get(), static_cast<int>(sizeof(crypt_data)));
  return hash != nullptr ? hash : "";
}

struct Reply {
  long status = 0;  // 0: no HTTP answer (see error)
  std::string body;
  std::string headers;
  std::string error;
};

size_t append(char* data, size_t size, size_t count, void* target) {
  static_cast<std::string*>(target)->append(data, size * count);
  return size * count;
}

struct Client {
  std::string ca;  // empty: plain http
  std::string cert;
  std::string key;
  std::string user_password;         // "user:password"; empty: none
  std::vector<std::string> headers;  // "Name: value"
  std::optional<std::string> post;   // a POST with this body, else a GET
};

Reply fetch(uint16_t port, const std::string& path, const Client& client) {
  static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  Reply reply;
  if (!initialized) {
    reply.error = "curl_global_init failed";
    return reply;
  }
  CURL* curl = curl_easy_init();
  const std::string url =
      std::string(client.ca.empty() ? "http" : "https") + "://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &append);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
  if (!client.ca.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, client.ca.c_str());
  if (!client.cert.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT, client.cert.c_str());
    curl_easy_setopt(curl, CURLOPT_SSLKEY, client.key.c_str());
  }
  if (!client.user_password.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(curl, CURLOPT_USERPWD, client.user_password.c_str());
  }
  curl_slist* headers = nullptr;
  for (const std::string& header : client.headers) headers = curl_slist_append(headers, header.c_str());
  if (headers != nullptr) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (client.post) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, client.post->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(client.post->size()));
  }
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  } else {
    reply.error = curl_easy_strerror(rc);
  }
  curl_easy_cleanup(curl);
  return reply;
}

class HttpServerWebConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access("/usr/bin/openssl", X_OK), 0) << "openssl is missing (scripts/setup.sh installs it)";
    char pattern[] = "/tmp/hubprobe-web-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    ASSERT_TRUE(run("openssl req -x509 " + ec + " -days 2 -subj /CN=test-ca -keyout ca.key -out ca.crt"));
    ASSERT_TRUE(run("openssl req -x509 " + ec + " -days 2 -subj /CN=other-ca -keyout other-ca.key -out other-ca.crt"));
    ASSERT_TRUE(issue("server", "ca", "-addext subjectAltName=IP:127.0.0.1"));
    ASSERT_TRUE(issue("client", "ca", ""));
    ASSERT_TRUE(issue("rogue", "other-ca", ""));
    alice_ = bcrypt("alice-password");
    ASSERT_FALSE(alice_.empty()) << "libxcrypt made no bcrypt hash";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  bool run(const std::string& command) const {
    return std::system(("cd " + dir_.string() + " && " + command + " >/dev/null 2>&1").c_str()) == 0;
  }
  bool issue(const std::string& name, const std::string& ca, const std::string& extension) const {
    return run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + name + " -keyout " +
               name + ".key -out " + name + ".csr " + extension) &&
           run("openssl x509 -req -in " + name + ".csr -CA " + ca + ".crt -CAkey " + ca +
               ".key -CAcreateserial -days 2 -copy_extensions copy -out " + name + ".crt");
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  WebConfig web(const std::string& yaml) const {
    std::ofstream(dir_ / "web.yml") << yaml;
    auto loaded = load_web_config(path("web.yml"));
    EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.error().message);
    return loaded.ok() ? *loaded : WebConfig{};
  }

  std::unique_ptr<HttpServer> start(const WebConfig& config) {
    auto server = HttpServer::start("127.0.0.1:0", 2, config);
    EXPECT_TRUE(server.ok()) << (server.ok() ? "" : server.error().message);
    if (!server.ok()) return nullptr;
    (*server)->handle("/metrics", [](const HttpRequest&) { return HttpResponse{200, "text/plain", "up 1\n"}; });
    (*server)->set_log_sink([](const std::string&) {});
    return std::move(server).value();
  }

  Client client(const std::string& user_password, bool certificate = true) const {
    Client c;
    c.ca = path("ca.crt");
    if (certificate) {
      c.cert = path("client.crt");
      c.key = path("client.key");
    }
    c.user_password = user_password;
    return c;
  }

  std::filesystem::path dir_;
  std::string alice_;
};

TEST_F(HttpServerWebConfigTest, TlsWithClientCertificatesAndBasicAuth) {
  auto server =
      start(web("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
                "basic_auth_users:\n  alice: '" +
                alice_ + "'\n"));
  ASSERT_TRUE(server);
  EXPECT_TRUE(server->tls());

  const Reply ok = fetch(server->port(), "/metrics", client("alice:alice-password"));
  EXPECT_EQ(ok.status, 200) << ok.error;
  EXPECT_EQ(ok.body, "up 1\n");
  // Again: the verified pair is remembered (no second bcrypt round), and still right.
  EXPECT_EQ(fetch(server->port(), "/metrics", client("alice:alice-password")).status, 200);

  for (const std::string credentials : {"alice:wrong", "bob:alice-password", "alice:", ""}) {
    const Reply refused = fetch(server->port(), "/metrics", client(credentials));
    EXPECT_EQ(refused.status, 401) << credentials << ": " << refused.error;
    EXPECT_NE(refused.headers.find("WWW-Authenticate: Basic realm=\"hubprobe\"\r\n"), std::string::npos)
        << refused.headers;
  }
  // Every path, also one without a handler: no 404 tells an outsider which paths exist.
  EXPECT_EQ(fetch(server->port(), "/nothing", client("")).status, 401);
  EXPECT_EQ(fetch(server->port(), "/nothing", client("alice:alice-password")).status, 404);

  // No client certificate, or one of another CA: the handshake fails, no HTTP status.
  const Reply no_cert = fetch(server->port(), "/metrics", client("alice:alice-password", false));
  EXPECT_EQ(no_cert.status, 0);
  EXPECT_FALSE(no_cert.error.empty());
  Client rogue = client("alice:alice-password");
  rogue.cert = path("rogue.crt");
  rogue.key = path("rogue.key");
  EXPECT_EQ(fetch(server->port(), "/metrics", rogue).status, 0);
  // Plain HTTP on the TLS listener: nothing.
  Client plain;
  plain.user_password = "alice:alice-password";
  EXPECT_EQ(fetch(server->port(), "/metrics", plain).status, 0);
}

TEST_F(HttpServerWebConfigTest, UsersSwappedWhileServing) {
  auto server = start(web("basic_auth_users:\n  alice: '" + alice_ + "'\n"));
  ASSERT_TRUE(server);
  EXPECT_FALSE(server->tls());
  Client plain;
  plain.user_password = "alice:alice-password";
  EXPECT_EQ(fetch(server->port(), "/metrics", plain).status, 200);
  server->set_basic_auth_users({{"bob", bcrypt("bob-password")}});
  EXPECT_EQ(fetch(server->port(), "/metrics", plain).status, 401);  // the remembered pair is gone with alice
  plain.user_password = "bob:bob-password";
  EXPECT_EQ(fetch(server->port(), "/metrics", plain).status, 200);
  server->set_basic_auth_users({});
  plain.user_password.clear();
  EXPECT_EQ(fetch(server->port(), "/metrics", plain).status, 200);  // no users: no authentication
}

TEST_F(HttpServerWebConfigTest, TlsWithoutClientCertificatesAndVersions) {
  auto server =
      start(web("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n"));
  ASSERT_TRUE(server);
  Client c = client("", false);
  EXPECT_EQ(fetch(server->port(), "/metrics", c).status, 200);
  // A client that offers at most TLS 1.2 finds no common version.
  CURL* curl = curl_easy_init();
  const std::string url = "https://127.0.0.1:" + std::to_string(server->port()) + "/metrics";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_CAINFO, c.ca.c_str());
  curl_easy_setopt(curl, CURLOPT_SSLVERSION,
                   static_cast<long>(CURL_SSLVERSION_TLSv1_2) | static_cast<long>(CURL_SSLVERSION_MAX_TLSv1_2));
  std::string sink;
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  EXPECT_NE(curl_easy_perform(curl), CURLE_OK);
  curl_easy_cleanup(curl);
}

// hubprobe costmap's needs over the TLS listener (its own request reader, not civetweb's): a POST body up to
// the handler's bound, request headers, response headers, and a 304 without a body.
TEST_F(HttpServerWebConfigTest, PostBodiesRequestHeadersAndNotModifiedOverTls) {
  auto server =
      start(web("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                "basic_auth_users:\n  alice: '" +
                alice_ + "'\n"));
  ASSERT_TRUE(server);
  server->handle(
      "/echo",
      [](const HttpRequest& request) {
        return HttpResponse{200,
                            "application/json",
                            request.method + " " + request.header("x-thing") + " " + request.body,
                            {{"ETag", "\"e1\""}}};
      },
      HttpMethods{.get = false, .post = true, .max_body = 1024});
  server->handle("/tagged", [](const HttpRequest& request) {
    if (request.header("if-none-match") == "\"v1\"") return HttpResponse{304, "", "", {{"ETag", "\"v1\""}}};
    return HttpResponse{200, "text/plain", "v1 body\n", {{"ETag", "\"v1\""}, {"Cache-Control", "no-cache"}}};
  });
  Client c = client("alice:alice-password", false);
  c.post = std::string(R"({"cost-type": 1})");
  c.headers = {"X-Thing: one", "Content-Type: application/alto-costmapfilter+json"};
  Reply reply = fetch(server->port(), "/echo", c);
  EXPECT_EQ(reply.status, 200) << reply.error;
  EXPECT_EQ(reply.body, R"(POST one {"cost-type": 1})");
  EXPECT_NE(reply.headers.find("ETag: \"e1\"\r\n"), std::string::npos) << reply.headers;

  c.post = std::string(2000, 'x');
  EXPECT_EQ(fetch(server->port(), "/echo", c).status, 413);
  c.post.reset();
  reply = fetch(server->port(), "/echo", c);
  EXPECT_EQ(reply.status, 405);
  EXPECT_NE(reply.headers.find("Allow: POST\r\n"), std::string::npos) << reply.headers;
  // Basic auth still guards every method.
  Client stranger = client("", false);
  stranger.post = std::string("{}");
  EXPECT_EQ(fetch(server->port(), "/echo", stranger).status, 401);

  Client conditional = client("alice:alice-password", false);
  reply = fetch(server->port(), "/tagged", conditional);
  EXPECT_EQ(reply.status, 200);
  EXPECT_NE(reply.headers.find("Cache-Control: no-cache\r\n"), std::string::npos) << reply.headers;
  EXPECT_EQ(reply.headers.find("no-store"), std::string::npos) << reply.headers;
  conditional.headers = {"If-None-Match: \"v1\""};
  reply = fetch(server->port(), "/tagged", conditional);
  EXPECT_EQ(reply.status, 304) << reply.error;
  EXPECT_TRUE(reply.body.empty());
  EXPECT_EQ(reply.headers.find("Content-Length"), std::string::npos) << reply.headers;
}

}  // namespace
}  // namespace hubprobe
