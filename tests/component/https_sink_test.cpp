// SPDX-License-Identifier: Apache-2.0
// The HTTP sink over TLS against a real HTTPS server that requires client certificates (Python's ssl
// module, /usr/bin/python3), with a CA, a server and a client certificate made by the openssl command for
// the test: mutual TLS delivers, a sink without a client certificate or without the CA file is refused,
// and the bearer token goes along over TLS.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hubprobe/scheduler_sink.h"

namespace hubprobe {
namespace {

using Clock = std::chrono::steady_clock;

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The HTTPS receiver: prints its port, then appends "CLIENT-CN<TAB>AUTHORIZATION<TAB>BODY" per POST.
constexpr const char* kServer = R"(import http.server, ssl, sys
ca, cert, key, log = sys.argv[1:5]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        subject = dict(x[0] for x in self.connection.getpeercert()["subject"])
        with open(log, "a") as f:
            f.write(subject.get("commonName", "?") + "\t" + self.headers.get("Authorization", "-") + "\t" +
                    body.decode() + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
context.load_verify_locations(ca)
context.verify_mode = ssl.CERT_REQUIRED
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
)";

class HttpsSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"/usr/bin/openssl", "/usr/bin/python3"}) {
      // Both come with Debian 12 (openssl is installed by scripts/setup.sh): missing means broken setup.
      ASSERT_EQ(access(tool, X_OK), 0) << tool << " is missing (scripts/setup.sh installs it)";
    }
    char pattern[] = "/tmp/hubprobe-https-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    // A CA, and a server (127.0.0.1) and a client certificate it signs.
    ASSERT_TRUE(
        run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hubprobe-test-ca -keyout ca.key "
            "-out ca.pem"));
    ASSERT_TRUE(issue("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1"));
    ASSERT_TRUE(issue("client", "hubprobe-test-agent", "extendedKeyUsage=clientAuth"));
    ASSERT_TRUE(
        run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=someone-else -keyout other.key "
            "-out other.pem"));
    std::ofstream(dir_ / "server.py") << kServer;

    int out[2];
    ASSERT_EQ(pipe(out), 0);
    server_ = fork();
    ASSERT_GE(server_, 0);
    if (server_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      const std::string d = dir_.string();
      execl("/usr/bin/python3", "python3", (d + "/server.py").c_str(), (d + "/ca.pem").c_str(),
            (d + "/server.pem").c_str(), (d + "/server.key").c_str(), (d + "/log").c_str(), nullptr);
      _exit(127);
    }
    close(out[1]);
    FILE* port_line = fdopen(out[0], "r");
    char line[32] = {};
    const bool got = fgets(line, sizeof line, port_line) != nullptr;
    fclose(port_line);
    ASSERT_TRUE(got) << "the HTTPS test server did not start";
    url_ = "https://127.0.0.1:" + std::string(line, strcspn(line, "\n")) + "/v1/preferences";
  }

  void TearDown() override {
    if (server_ > 0) {
      kill(server_, SIGKILL);
      waitpid(server_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  bool run(const std::string& command) const {
    return std::system(("cd " + dir_.string() + " && " + command + " >/dev/null 2>&1").c_str()) == 0;
  }
  bool issue(const std::string& name, const std::string& cn, const std::string& extension) const {
    std::ofstream(dir_ / (name + ".ext")) << extension << "\n";
    return run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + cn + " -keyout " + name + ".key -out " + name +
               ".csr") &&
           run("openssl x509 -req -in " + name + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile " +
               name + ".ext -out " + name + ".pem");
  }

  HttpSinkConfig config() const {
    HttpSinkConfig c;
    c.url = url_;
    c.timeout_ns = 2'000'000'000;
    c.connect_timeout_ns = 1'000'000'000;
    c.backoff.initial_ns = 50'000'000;
    c.backoff.max_ns = 200'000'000;
    c.refresh_ns = 0;
    return c;
  }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  std::string log() const { return read_file(dir_ / "log"); }

  std::filesystem::path dir_;
  pid_t server_ = -1;
  std::string url_;
};

std::shared_ptr<const nlohmann::json> document(uint64_t generation) {
  return std::make_shared<const nlohmann::json>(nlohmann::json{{"generation", generation}});
}

TEST_F(HttpsSinkTest, MutualTlsDelivers) {
  HttpSinkConfig c = config();
  c.ca_file = file("ca.pem");
  c.client_cert_file = file("client.pem");
  c.client_key_file = file("client.key");
  c.bearer_token = "s3cr3t";
  auto sink = make_http_sink(c);
  sink->publish(document(7), 7);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok >= 1; }, std::chrono::seconds(10)))
      << sink->status().last_error;
  EXPECT_EQ(sink->status().delivered_generation, 7u);
  EXPECT_TRUE(sink->status().healthy);
  // The server saw our client certificate and the token.
  EXPECT_EQ(log(), "hubprobe-test-agent\tBearer s3cr3t\t{\"generation\":7}\n");
  sink->stop(0);
}

TEST_F(HttpsSinkTest, WithoutAClientCertificateTheServerRefuses) {
  HttpSinkConfig c = config();
  c.ca_file = file("ca.pem");
  auto sink = make_http_sink(c);
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_failed >= 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(sink->status().pushes_ok, 0u);
  EXPECT_FALSE(sink->status().healthy);
  EXPECT_FALSE(sink->status().last_error.empty());
  EXPECT_EQ(log(), "");
  sink->stop(0);
}

TEST_F(HttpsSinkTest, AServerOutsideTheCaFileIsNotTrusted) {
  // Without ca_file the system CAs are used, which do not know the test CA; with another CA file neither.
  for (const std::string& ca : {std::string(), file("other.pem")}) {
    HttpSinkConfig c = config();
    c.ca_file = ca;
    c.client_cert_file = file("client.pem");
    c.client_key_file = file("client.key");
    auto sink = make_http_sink(c);
    sink->publish(document(1), 1);
    ASSERT_TRUE(eventually([&] { return sink->status().pushes_failed >= 1; }, std::chrono::seconds(10))) << ca;
    EXPECT_EQ(sink->status().pushes_ok, 0u) << ca;
    EXPECT_NE(sink->status().last_error.find("certificate"), std::string::npos) << sink->status().last_error;
    sink->stop(0);
  }
  EXPECT_EQ(log(), "");
}

}  // namespace
}  // namespace hubprobe
