// SPDX-License-Identifier: Apache-2.0
// hubprobed with a web configuration file ([metrics] web_config_file): TLS with required and verified
// client certificates, and basic auth, on /metrics, /status and /healthz.
//   - a real Prometheus scrapes it over TLS with basic auth (up == 1); a job with a wrong password is
//     down with a 401; curl with a wrong or no password gets 401 and `WWW-Authenticate: Basic`; without
//     a client certificate, or with one the CA did not sign, the handshake fails; plain HTTP gets nothing;
//   - /status, /metrics and the agent's log hold no part of the bcrypt hash, the password or the key;
//   - SIGHUP: a bad web configuration (a malformed hash) is refused and the old one keeps serving; new
//     users apply without a restart of the listener; a new TLS setup restarts it on the same address.
//
// Certificates are made with openssl(1) for the test (CA, server for 198.18.0.1, client, a rogue client);
// bcrypt hashes with libxcrypt (crypt_gensalt_rn, crypt_rn), as htpasswd -B would make them.
#include <crypt.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "agent_support.h"

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

constexpr uint16_t kMetricsPort = 9862;
constexpr uint16_t kPrometheusPort = 9090;
constexpr const char* kUser = "prometheus";
constexpr const char* kPassword = "correct horse battery staple";

std::string bcrypt(const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", 10, nullptr, 0, salt, sizeof salt) == nullptr) {
    throw HarnessError("crypt_gensalt_rn($2b$) failed: libxcrypt without bcrypt?");
  }
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_rn(password.c_str(), salt, data.get(), static_cast<int>(sizeof(crypt_data)));
  if (hash == nullptr) throw HarnessError("crypt_rn failed");
  return hash;
}

std::optional<std::string> tool_missing(const std::string& name) {
  const CommandResult r = run_command({"sh", "-c", "command -v " + name}, Seconds(5));
  if (r.ok()) return std::nullopt;
  return name + " not found in PATH";
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class AgentWebConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HUBPROBE_REQUIRE_NETNS();
    HUBPROBE_REQUIRE_HUBPROBED();
    HUBPROBE_REQUIRE(tool_missing("openssl"));
    HUBPROBE_REQUIRE(tool_missing("curl"));
    make_certificates();
    hash_ = bcrypt(kPassword);
    mesh_ = std::make_unique<Mesh>(1);
  }

  void openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    run_checked(argv, Seconds(30));
  }

  std::string file(const std::string& name) const { return (dir_.path() / name).string(); }

  void make_certificates() {
    const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"};
    const auto req = [&](const std::string& name, const std::string& subject, std::vector<std::string> more) {
      std::vector<std::string> args = {"req", "-new"};
      args.insert(args.end(), ec.begin(), ec.end());
      args.insert(args.end(), {"-keyout", file(name + ".key"), "-out", file(name + ".csr"), "-subj", subject});
      args.insert(args.end(), more.begin(), more.end());
      openssl(args);
    };
    const auto sign = [&](const std::string& name, const std::string& ca) {
      openssl({"x509", "-req", "-in", file(name + ".csr"), "-CA", file(ca + ".crt"), "-CAkey", file(ca + ".key"),
               "-CAcreateserial", "-out", file(name + ".crt"), "-days", "2", "-copy_extensions", "copy"});
    };
    std::vector<std::string> ca_args = {"req", "-x509"};
    ca_args.insert(ca_args.end(), ec.begin(), ec.end());
    ca_args.insert(ca_args.end(), {"-keyout", file("ca.key"), "-out", file("ca.crt"), "-days", "2", "-subj",
                                   "/CN=hubprobe integration test CA"});
    openssl(ca_args);
    std::vector<std::string> rogue_args = ca_args;
    for (auto& a : rogue_args) {
      if (a == file("ca.key")) a = file("rogue-ca.key");
      if (a == file("ca.crt")) a = file("rogue-ca.crt");
      if (a == "/CN=hubprobe integration test CA") a = "/CN=someone else's CA";
    }
    openssl(rogue_args);
    req("server", "/CN=hubprobe-agent", {"-addext", "subjectAltName=IP:" + Mesh::address(0)});
    sign("server", "ca");
    req("client", "/CN=prometheus", {});
    sign("client", "ca");
    req("rogue", "/CN=prometheus", {});
    sign("rogue", "rogue-ca");
  }

  // The web configuration: TLS with verified client certificates, one user.
  std::string web_yml(const std::string& hash, bool client_certificates = true) const {
    std::string text = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    if (client_certificates) text += "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n";
    return text + "basic_auth_users:\n  " + kUser + ": '" + hash + "'\n";
  }

  HttpAccess access(const std::string& password = kPassword, bool client_certificate = true) const {
    HttpAccess a;
    a.user = kUser;
    a.password = password;
    a.ca_file = file("ca.crt");
    if (client_certificate) {
      a.cert_file = file("client.crt");
      a.key_file = file("client.key");
    }
    return a;
  }

  std::unique_ptr<AgentProcess> start_agent() {
    dir_.write_file("web.yml", web_yml(hash_));
    AgentFile f;
    f.id = "gz-edge-01";
    f.hub = "gz";
    f.metrics_listen = Mesh::address(0) + ":" + std::to_string(kMetricsPort);
    f.web_config_file = "web.yml";  // relative: the TOML file's folder
    f.log_level = "debug";          // the most the log ever says
    config_ = dir_.write_file("agent.toml", f.toml());
    // The harness waits for /healthz over TLS with the credentials and client certificate.
    return std::make_unique<AgentProcess>(mesh_->node(0), config_, Mesh::address(0), kMetricsPort, dir_.path(),
                                          "hubprobed-web", std::vector<std::string>{}, true, access());
  }

  HttpResult get(const std::string& target, const HttpAccess& a) const {
    return https_get(mesh_->node(0), Mesh::address(0), kMetricsPort, target, a);
  }

  /// curl's whole exchange (-i: headers too), whatever its outcome.
  CommandResult curl(const std::vector<std::string>& options, const std::string& target = "/metrics") const {
    std::vector<std::string> argv = {"curl", "-sS", "-i", "--max-time", "5", "--cacert", file("ca.crt")};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back("https://" + Mesh::address(0) + ":" + std::to_string(kMetricsPort) + target);
    return mesh_->node(0).exec(argv, Seconds(15));
  }

  std::vector<std::string> client_cert() const { return {"--cert", file("client.crt"), "--key", file("client.key")}; }

  /// /status through `a`, once its reload counters read `ok` and `failed`.
  ::testing::AssertionResult reloads_reach(const HttpAccess& a, int ok, int failed, json* status) const {
    std::string last;
    const bool reached = wait_until(
        [&] {
          const HttpResult r = get("/status", a);
          last = r.ok ? r.body : r.error;
          if (!r.ok || r.status != 200) return false;
          *status = json::parse(r.body, nullptr, false);
          return !status->is_discarded() && (*status)["config"].value("reloads_ok", -1) == ok &&
                 (*status)["config"].value("reloads_failed", -1) == failed;
        },
        Seconds(10), std::chrono::milliseconds(100));
    if (reached) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "reloads did not reach ok " << ok << " failed " << failed
                                         << "; last /status: " << last;
  }

  TempDir dir_;
  std::unique_ptr<Mesh> mesh_;
  std::string hash_;
  std::filesystem::path config_;
};

TEST_F(AgentWebConfigTest, PrometheusScrapesOverTlsWithBasicAuth) {
  HUBPROBE_REQUIRE(tool_missing("prometheus"));
  auto agent = start_agent();

  // The harness itself gets through: /status and /metrics with credentials and client certificate.
  const json status = agent->status();
  EXPECT_EQ(status["agent"].value("id", ""), "gz-edge-01") << status.dump(2);
  const std::string metrics = agent->metrics_text();
  EXPECT_NE(metrics.find("hubprobe_"), std::string::npos);

  // Wrong password, no password: 401 with the challenge, on every path (/healthz too).
  for (const std::string target : {"/metrics", "/status", "/healthz", "/nothing-here"}) {
    const CommandResult wrong = curl(
        [&] {
          auto o = client_cert();
          o.insert(o.end(), {"-u", std::string(kUser) + ":wrong"});
          return o;
        }(),
        target);
    ASSERT_TRUE(wrong.ok()) << wrong.describe();
    EXPECT_EQ(wrong.out.rfind("HTTP/1.1 401", 0), 0u) << target << "\n" << wrong.describe();
    EXPECT_NE(wrong.out.find("WWW-Authenticate: Basic realm=\"hubprobe\"\r\n"), std::string::npos) << wrong.describe();
    const CommandResult none = curl(client_cert(), target);
    ASSERT_TRUE(none.ok()) << none.describe();
    EXPECT_EQ(none.out.rfind("HTTP/1.1 401", 0), 0u) << target << "\n" << none.describe();
  }
  const CommandResult unknown_user = curl([&] {
    auto o = client_cert();
    o.insert(o.end(), {"-u", std::string("alice:") + kPassword});
    return o;
  }());
  EXPECT_EQ(unknown_user.out.rfind("HTTP/1.1 401", 0), 0u) << unknown_user.describe();

  // No client certificate, or one from another CA: no TLS session, no HTTP status at all.
  const CommandResult no_cert = curl({"-u", std::string(kUser) + ":" + kPassword});
  EXPECT_FALSE(no_cert.ok()) << no_cert.describe();
  EXPECT_EQ(no_cert.out.find("HTTP/1.1"), std::string::npos) << no_cert.describe();
  const CommandResult rogue =
      curl({"--cert", file("rogue.crt"), "--key", file("rogue.key"), "-u", std::string(kUser) + ":" + kPassword});
  EXPECT_FALSE(rogue.ok()) << rogue.describe();
  EXPECT_EQ(rogue.out.find("HTTP/1.1"), std::string::npos) << rogue.describe();
  // Plain HTTP on the TLS port: no HTTP answer.
  const HttpResult plain = http_get(mesh_->node(0), Mesh::address(0), kMetricsPort, "/healthz", Seconds(3),
                                    basic_authorization(kUser, kPassword));
  EXPECT_FALSE(plain.ok && plain.status == 200) << plain.status << " " << plain.body;

  // A real Prometheus in the core namespace: one job with the right password, one with a wrong one.
  const auto job = [&](const std::string& name, const std::string& password) {
    std::ostringstream y;
    y << "  - job_name: " << name << "\n    scheme: https\n    tls_config:\n      ca_file: " << file("ca.crt")
      << "\n      cert_file: " << file("client.crt") << "\n      key_file: " << file("client.key")
      << "\n    basic_auth:\n      username: " << kUser << "\n      password: '" << password << "'\n"
      << "    static_configs:\n      - targets: ['" << Mesh::address(0) << ":" << kMetricsPort << "']\n";
    return y.str();
  };
  const auto prom_config = dir_.write_file("prometheus.yml",
                                           "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                                           "scrape_configs:\n" +
                                               job("hubprobe", kPassword) + job("wrong-password", "wrong"));
  const CommandResult checked = run_command({"promtool", "check", "config", prom_config.string()}, Seconds(30));
  EXPECT_TRUE(checked.ok()) << checked.describe();
  std::filesystem::create_directory(dir_.path() / "tsdb");
  Process prometheus(
      {"prometheus", "--config.file=" + prom_config.string(), "--storage.tsdb.path=" + (dir_.path() / "tsdb").string(),
       "--web.listen-address=127.0.0.1:" + std::to_string(kPrometheusPort)},
      mesh_->core().name(), dir_.path(), "prometheus");
  const auto query = [&](const std::string& promql) {
    const HttpResult r =
        http_get(mesh_->core(), "127.0.0.1", kPrometheusPort, "/api/v1/query?query=" + url_encode(promql));
    if (!r.ok || r.status != 200) return json();
    const json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.contains("data")) return json();
    return j["data"]["result"];
  };
  const auto value_of = [](const json& result) {
    if (!result.is_array() || result.size() != 1) return std::string();
    return result[0]["value"][1].get<std::string>();
  };
  json up, wrong_up;
  const bool scraped = wait_until(
      [&] {
        if (!prometheus.running()) return true;
        up = query("up{job=\"hubprobe\"}");
        wrong_up = query("up{job=\"wrong-password\"}");
        return value_of(up) == "1" && value_of(wrong_up) == "0";
      },
      Seconds(30), std::chrono::milliseconds(250));
  ASSERT_TRUE(scraped && prometheus.running())
      << "up: " << up.dump() << "\nwrong-password up: " << wrong_up.dump() << "\n"
      << prometheus.describe();
  // The agent's own series came through the authenticated job, none through the other.
  EXPECT_NE(value_of(query("count({job=\"hubprobe\", __name__=~\"hubprobe_.+\"})")), "") << "no hubprobe series";
  EXPECT_TRUE(query("{job=\"wrong-password\", __name__=~\"hubprobe_.+\"}").empty());
  const HttpResult targets = http_get(mesh_->core(), "127.0.0.1", kPrometheusPort, "/api/v1/targets");
  ASSERT_TRUE(targets.ok) << targets.error;
  EXPECT_NE(targets.body.find("401 Unauthorized"), std::string::npos) << targets.body;
  EXPECT_TRUE(prometheus.stop(Seconds(10)).exited()) << prometheus.describe();

  // No secret anywhere the agent writes or answers: not the hash or its salt and digest, not the
  // password, not a line of the key.
  const HttpResult status_text = get("/status", access());
  ASSERT_TRUE(status_text.ok && status_text.status == 200) << status_text.error;
  const HttpResult metrics_text = get("/metrics", access());
  ASSERT_TRUE(metrics_text.ok && metrics_text.status == 200) << metrics_text.error;
  agent->process().signal(SIGTERM);
  ASSERT_TRUE(agent->process().wait_for_exit(Seconds(5))) << agent->describe();
  const std::string log = agent->process().stderr_text() + agent->process().stdout_text();
  EXPECT_NE(log.find("metrics on https://" + Mesh::address(0)), std::string::npos) << log;
  std::vector<std::string> secrets = {hash_, hash_.substr(7, 22), hash_.substr(29), kPassword};
  std::istringstream key_lines(read_text(file("server.key")));
  for (std::string line; std::getline(key_lines, line);) {
    if (!line.empty() && line.rfind("-----", 0) != 0) secrets.push_back(line);
  }
  for (const std::string& secret : secrets) {
    EXPECT_EQ(status_text.body.find(secret), std::string::npos) << "/status holds a secret";
    EXPECT_EQ(metrics_text.body.find(secret), std::string::npos) << "/metrics holds a secret";
    EXPECT_EQ(log.find(secret), std::string::npos) << "the log holds a secret:\n" << log;
  }
}

TEST_F(AgentWebConfigTest, ReloadRefusesABadWebConfigAndAppliesAGoodOne) {
  auto agent = start_agent();
  json status;
  ASSERT_TRUE(reloads_reach(access(), 0, 0, &status));

  // A malformed hash: refused, named by its user and file, the value not shown; the old users still work.
  const std::string bad = "$2y$10$not-a-hash-at-all";
  dir_.write_file("web.yml", web_yml(bad));
  agent->process().signal(SIGHUP);
  ASSERT_TRUE(reloads_reach(access(), 0, 1, &status));
  const std::string error = status["config"].value("last_reload_error", "");
  EXPECT_NE(error.find(config_.string() + ":"), std::string::npos) << error;
  EXPECT_NE(error.find(file("web.yml") + ":7:15: basic_auth_users.prometheus: expected a bcrypt hash"),
            std::string::npos)
      << error;
  EXPECT_EQ(error.find("not-a-hash"), std::string::npos) << error;
  EXPECT_EQ(get("/healthz", access()).status, 200);

  // New users only: applied while serving; the old password is refused from then on.
  const std::string other_password = "another password";
  dir_.write_file("web.yml", web_yml(bcrypt(other_password)));
  agent->process().signal(SIGHUP);
  ASSERT_TRUE(reloads_reach(access(other_password), 1, 1, &status));
  EXPECT_EQ(get("/healthz", access()).status, 401);
  EXPECT_EQ(get("/healthz", access(other_password)).status, 200);

  // A new TLS setup on the same address (no client certificates any more): the listener restarts there.
  dir_.write_file("web.yml", web_yml(bcrypt(other_password), false));
  agent->process().signal(SIGHUP);
  ASSERT_TRUE(reloads_reach(access(other_password, false), 2, 1, &status));
  EXPECT_EQ(get("/healthz", access(other_password, false)).status, 200);
  EXPECT_TRUE(agent->process().running()) << agent->describe();
}

}  // namespace
}  // namespace hubprobe::it::agent
