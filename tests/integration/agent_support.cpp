// SPDX-License-Identifier: Apache-2.0
#include "agent_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#ifndef HUBPROBE_BINARY_DIR
#define HUBPROBE_BINARY_DIR "."
#endif

namespace hubprobe::it::agent {
namespace {

using nlohmann::json;

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

std::string unescape_label(const std::string& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) {
      ++i;
      out += v[i] == 'n' ? '\n' : v[i];
    } else {
      out += v[i];
    }
  }
  return out;
}

}  // namespace

// A socket created inside `ns`: a socket keeps the network namespace it was created in, so the test
// binary enters the namespace only for the socket() call. It is single-threaded; should the way back
// fail, carrying on in the wrong namespace would be worse than stopping.
int socket_in_netns(const Namespace& ns, int domain, int type) {
  static const int self_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self_ns < 0) throw HarnessError(std::string("open /proc/self/ns/net: ") + strerror(errno));
  const int target = open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) throw HarnessError("open " + ns.path() + ": " + strerror(errno));
  if (setns(target, CLONE_NEWNET) != 0) {
    const int e = errno;
    close(target);
    throw HarnessError("setns " + ns.path() + ": " + strerror(e));
  }
  const int fd = socket(domain, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int socket_errno = errno;
  if (setns(self_ns, CLONE_NEWNET) != 0) {
    perror("[agent harness] setns back to the test binary's namespace");
    abort();
  }
  close(target);
  if (fd < 0) throw HarnessError(std::string("socket in ") + ns.name() + ": " + strerror(socket_errno));
  return fd;
}

std::string hubprobed_binary() {
  if (const char* dir = getenv("HUBPROBE_BIN_DIR"); dir != nullptr && *dir != '\0') {
    std::filesystem::path direct = std::filesystem::path(dir) / "hubprobed";
    if (std::filesystem::exists(direct) && !std::filesystem::is_directory(direct)) return direct.string();
    return (std::filesystem::path(dir) / "agent" / "hubprobed").string();
  }
  return (std::filesystem::path(HUBPROBE_BINARY_DIR) / "agent" / "hubprobed").string();
}

std::optional<std::string> hubprobed_missing_reason() {
  const std::string path = hubprobed_binary();
  if (access(path.c_str(), X_OK) != 0) {
    return "hubprobed binary not found or not executable at " + path +
           " (build the `hubprobed` target, or point HUBPROBE_BIN_DIR at the directory holding it)";
  }
  return std::nullopt;
}

bool wait_until(const std::function<bool()>& condition, Seconds timeout, Seconds step) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  for (;;) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

// ---- HTTP ------------------------------------------------------------------------------------------

HttpResult http_get(const Namespace& ns, const std::string& host, uint16_t port, const std::string& target,
                    Seconds timeout, const std::string& authorization) {
  HttpResult result;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    result.error = "not an IPv4 address: " + host;
    return result;
  }
  Fd s{socket_in_netns(ns, AF_INET, SOCK_STREAM)};
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  auto remaining_ms = [&] {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::max<int64_t>(0, ms));
  };
  const std::string where = "http://" + host + ":" + std::to_string(port) + target + " in " + ns.name();
  if (connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      result.error = "connect " + where + ": " + strerror(errno);
      return result;
    }
    pollfd p{s.fd, POLLOUT, 0};
    if (poll(&p, 1, remaining_ms()) != 1) {
      result.error = "connect " + where + ": timed out";
      return result;
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      result.error = "connect " + where + ": " + strerror(err);
      return result;
    }
  }
  const std::string request = "GET " + target + " HTTP/1.0\r\nHost: " + host + ":" + std::to_string(port) +
                              (authorization.empty() ? "" : "\r\nAuthorization: " + authorization) +
                              "\r\nConnection: close\r\n\r\n";
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = send(s.fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{s.fd, POLLOUT, 0};
      if (poll(&p, 1, remaining_ms()) <= 0) {
        result.error = "send " + where + ": timed out";
        return result;
      }
      continue;
    }
    result.error = "send " + where + ": " + strerror(errno);
    return result;
  }
  std::string raw;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(s.fd, buf, sizeof buf, 0);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pollfd p{s.fd, POLLIN, 0};
      if (poll(&p, 1, remaining_ms()) <= 0) {
        result.error = "read " + where + ": timed out after " + std::to_string(raw.size()) + " octets";
        return result;
      }
      continue;
    }
    result.error = "read " + where + ": " + strerror(errno);
    return result;
  }
  const size_t head_end = raw.find("\r\n\r\n");
  int status = 0;
  if (head_end == std::string::npos || sscanf(raw.c_str(), "HTTP/%*d.%*d %d", &status) != 1) {
    result.error = "malformed response from " + where + ": " + raw.substr(0, 200);
    return result;
  }
  result.ok = true;
  result.status = status;
  result.body = raw.substr(head_end + 4);
  return result;
}

std::string basic_authorization(const std::string& user, const std::string& password) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string in = user + ":" + password;
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    const size_t n = std::min<size_t>(3, in.size() - i);
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (n > 1) v |= static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    if (n > 2) v |= static_cast<uint32_t>(static_cast<unsigned char>(in[i + 2]));
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += n > 1 ? kAlphabet[(v >> 6) & 63] : '=';
    out += n > 2 ? kAlphabet[v & 63] : '=';
  }
  return "Basic " + out;
}

HttpResult https_get(const Namespace& ns, const std::string& host, uint16_t port, const std::string& target,
                     const HttpAccess& access, Seconds timeout) {
  HttpResult result;
  const std::string url = "https://" + host + ":" + std::to_string(port) + target;
  const auto seconds = std::to_string(std::max<int64_t>(1, static_cast<int64_t>(std::ceil(timeout.count()))));
  // The status on a line of its own after the body; no --fail, so a 401 is a response like any other.
  std::vector<std::string> argv = {"curl",           "-sS",      "--max-time",  seconds, "-w",
                                   "\n%{http_code}", "--cacert", access.ca_file};
  if (!access.cert_file.empty()) argv.insert(argv.end(), {"--cert", access.cert_file, "--key", access.key_file});
  if (!access.user.empty()) argv.insert(argv.end(), {"-u", access.user + ":" + access.password});
  argv.push_back(url);
  const CommandResult r = ns.exec(argv, timeout + Seconds(5));
  const size_t last = r.out.rfind('\n');
  if (!r.ok() || last == std::string::npos) {
    result.error = "curl " + url + " in " + ns.name() + ": " + r.describe();
    return result;
  }
  result.status = std::atoi(r.out.c_str() + last + 1);
  result.body = r.out.substr(0, last);
  result.ok = result.status > 0;
  if (!result.ok) result.error = "curl " + url + " in " + ns.name() + ": no status\n" + r.describe();
  return result;
}

// ---- Prometheus text format ------------------------------------------------------------------------

std::vector<Sample> parse_exposition(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) break;
        std::string key = line.substr(i, eq - i);
        size_t j = eq + 2;  // after ="
        std::string raw;
        while (j < line.size() && line[j] != '"') {
          if (line[j] == '\\' && j + 1 < line.size()) raw += line[j++];
          raw += line[j++];
        }
        s.labels[key] = unescape_label(raw);
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    while (i < line.size() && line[i] == ' ') ++i;
    const std::string value = line.substr(i, line.find(' ', i) - i);
    if (value == "+Inf") {
      s.value = INFINITY;
    } else if (value == "-Inf") {
      s.value = -INFINITY;
    } else if (value == "NaN") {
      s.value = NAN;
    } else {
      s.value = strtod(value.c_str(), nullptr);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Sample> select(const std::vector<Sample>& samples, const std::string& name,
                           const std::map<std::string, std::string>& labels) {
  std::vector<Sample> out;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (match) out.push_back(s);
  }
  return out;
}

double only_value(const std::vector<Sample>& samples, const std::string& name,
                  const std::map<std::string, std::string>& labels) {
  auto found = select(samples, name, labels);
  return found.size() == 1 ? found[0].value : NAN;
}

// ---- configuration files ---------------------------------------------------------------------------

std::string AgentFile::toml() const {
  std::ostringstream t;
  t << "# written by the hubprobed integration tests\n"
    << "[agent]\nid = \"" << id << "\"\nhub = \"" << hub << "\"\n\n";
  if (!reflector.empty()) {
    t << "[reflector]\n";
    for (const auto& line : reflector) t << line << "\n";
    t << "\n";
  }
  t << "[probe]\ninterval = \"" << interval << "\"\ntimeout = \"" << timeout << "\"\ndown_after = " << down_after
    << "\nwindow = \"" << window << "\"\n\n";
  for (const auto& p : peers) {
    t << "[[peer]]\nname = \"" << p.name << "\"\nhub = \"" << p.hub << "\"\naddress = \"" << p.address << "\"\n";
    for (const auto& line : p.extra) t << line << "\n";
    t << "\n";
  }
  t << "[metrics]\nlisten = \"" << metrics_listen << "\"\n";
  if (!web_config_file.empty()) t << "web_config_file = \"" << web_config_file << "\"\n";
  if (rtt_buckets >= 0) t << "rtt_buckets = " << rtt_buckets << "\n";
  t << "\n[logging]\nlevel = \"" << log_level << "\"\n";
  if (!tail.empty()) t << "\n" << tail;
  return t.str();
}

int line_of(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.rfind(prefix, 0) == 0) return n;
  }
  return 0;
}

// ---- AgentProcess ----------------------------------------------------------------------------------

AgentProcess::AgentProcess(const Namespace& ns, const std::filesystem::path& config, const std::string& metrics_host,
                           uint16_t metrics_port, const std::filesystem::path& log_dir, const std::string& label,
                           const std::vector<std::string>& env, bool wait_ready, HttpAccess access)
    : ns_(ns), host_(metrics_host), port_(metrics_port), access_(std::move(access)) {
  std::vector<std::string> argv;
  if (!env.empty()) {
    argv.push_back("env");
    argv.insert(argv.end(), env.begin(), env.end());
  }
  argv.insert(argv.end(), {hubprobed_binary(), "-c", config.string()});
  process_ = std::make_unique<Process>(argv, ns.name(), log_dir, label);
  if (wait_ready && !wait_healthy(Seconds(10))) {
    throw HarnessError("agent " + label + " did not answer /healthz within 10 s\n" + process_->describe());
  }
}

bool AgentProcess::wait_healthy(Seconds timeout) {
  return wait_until(
      [&] {
        if (!process_->running()) {
          throw HarnessError("agent " + process_->label() + " exited before it was ready\n" + process_->describe());
        }
        HttpResult r = get("/healthz", Seconds(1));
        return r.ok && r.status == 200;
      },
      timeout);
}

HttpResult AgentProcess::get(const std::string& target, Seconds timeout) const {
  if (access_.tls()) return https_get(ns_, host_, port_, target, access_, timeout);
  return http_get(ns_, host_, port_, target, timeout,
                  access_.user.empty() ? std::string() : basic_authorization(access_.user, access_.password));
}

nlohmann::json AgentProcess::status() const {
  HttpResult r = get("/status");
  if (!r.ok || r.status != 200) {
    throw HarnessError("GET /status failed: " + (r.ok ? "HTTP " + std::to_string(r.status) : r.error) + "\n" +
                       process_->describe());
  }
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded()) throw HarnessError("/status is not JSON:\n" + r.body);
  return j;
}

std::string AgentProcess::metrics_text() const {
  HttpResult r = get("/metrics");
  if (!r.ok || r.status != 200) {
    throw HarnessError("GET /metrics failed: " + (r.ok ? "HTTP " + std::to_string(r.status) : r.error) + "\n" +
                       process_->describe());
  }
  return r.body;
}

std::vector<Sample> AgentProcess::metrics() const { return parse_exposition(metrics_text()); }

double metric_or_zero(const AgentProcess& agent, const std::string& name,
                      const std::map<std::string, std::string>& labels) {
  const double v = only_value(agent.metrics(), name, labels);
  return std::isnan(v) ? 0 : v;
}

::testing::AssertionResult replies_at_least(const AgentProcess& agent, const std::vector<std::string>& names,
                                            double count, Seconds timeout) {
  std::string seen;
  const bool enough = wait_until(
      [&] {
        seen.clear();
        const auto m = agent.metrics();
        bool all = true;
        for (const auto& name : names) {
          const double v = only_value(m, "hubprobe_replies_received_total", {{"peer", name}});
          seen += " " + name + "=" + std::to_string(v);
          all = all && v >= count;
        }
        return all;
      },
      timeout);
  if (enough) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "replies:" << seen << "\n" << agent.describe();
}

json peer_of(const json& status, const std::string& name) {
  if (!status.contains("peers") || !status["peers"].is_array()) return nullptr;
  for (const auto& p : status["peers"]) {
    if (p.value("name", "") == name) return p;
  }
  return nullptr;
}

int64_t peer_count(const json& status, const std::string& name, const std::string& field) {
  json p = peer_of(status, name);
  if (!p.is_object() || !p.contains(field) || !p[field].is_number_integer()) return -1;
  return p[field].get<int64_t>();
}

std::string peer_state(const json& status, const std::string& name) {
  json p = peer_of(status, name);
  return p.is_object() ? p.value("state", "") : "";
}

// ---- Mesh ------------------------------------------------------------------------------------------

Mesh::Mesh(size_t agents) {
  core_ = std::make_unique<Namespace>("core");
  core_->ip({"link", "add", "hpbr", "type", "bridge"});
  core_->ip({"addr", "add", std::string(kCoreV4) + "/24", "dev", "hpbr"});
  core_->ip({"link", "set", "hpbr", "up"});
  for (size_t i = 0; i < agents; ++i) {
    auto ns = std::make_unique<Namespace>(std::string(1, static_cast<char>('a' + i)));
    const std::string core_if = "hpm" + std::to_string(i + 1);
    ns->ip({"link", "add", "hpm0", "type", "veth", "peer", "name", core_if, "netns", core_->name()});
    ns->ip({"addr", "add", address(i) + "/24", "dev", "hpm0"});
    ns->ip({"link", "set", "hpm0", "up"});
    core_->ip({"link", "set", core_if, "master", "hpbr"});
    core_->ip({"link", "set", core_if, "up"});
    nodes_.push_back(std::move(ns));
  }
  // Carrier and bridge ports come up asynchronously: wait until the core reaches every node.
  for (size_t i = 0; i < agents; ++i) {
    CommandResult last;
    const bool reached = wait_until(
        [&] {
          last = core_->exec({"ping", "-n", "-q", "-c", "1", "-W", "1", address(i)}, Seconds(5));
          return last.ok();
        },
        Seconds(10), std::chrono::milliseconds(50));
    if (!reached) throw HarnessError("mesh: the core cannot reach " + address(i) + "\n" + last.describe());
  }
}

// ---- NotifySocket ----------------------------------------------------------------------------------

NotifySocket::NotifySocket(const std::filesystem::path& dir) : path_((dir / "notify.sock").string()) {
  created_ = Clock::now();
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw HarnessError(std::string("socket(AF_UNIX): ") + strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof addr.sun_path) throw HarnessError("notify socket path too long: " + path_);
  memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw HarnessError("bind " + path_ + ": " + strerror(errno));
  }
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
}

NotifySocket::~NotifySocket() {
  if (fd_ >= 0) close(fd_);
  unlink(path_.c_str());
}

std::map<std::string, std::string> NotifySocket::Message::fields() const {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    out[line.substr(0, eq)] = eq == std::string::npos ? "" : line.substr(eq + 1);
  }
  return out;
}

std::optional<NotifySocket::Message> NotifySocket::receive(Seconds timeout) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  for (;;) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (ms < 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(ms) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char data[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{data, sizeof data};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw HarnessError(std::string("recvmsg on notify socket: ") + strerror(errno));
    }
    Message m;
    m.text.assign(data, static_cast<size_t>(n));
    m.at = seconds_since(created_);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred{};
        memcpy(&cred, CMSG_DATA(c), sizeof cred);
        m.pid = cred.pid;
      }
    }
    return m;
  }
}

std::optional<NotifySocket::Message> NotifySocket::receive_with(const std::vector<std::string>& names, Seconds timeout,
                                                                std::vector<Message>* skipped) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  for (;;) {
    auto left = Seconds(deadline - Clock::now());
    if (left.count() < 0) return std::nullopt;
    auto m = receive(left);
    if (!m) return std::nullopt;
    const auto f = m->fields();
    for (const auto& name : names) {
      if (f.count(name)) return m;
    }
    if (skipped != nullptr) skipped->push_back(*m);
  }
}

std::optional<std::string> etcd_missing_reason() {
  if (access("/usr/bin/etcd", X_OK) != 0) return "etcd not installed (Debian package etcd-server; scripts/setup.sh)";
  return std::nullopt;
}

std::unique_ptr<Process> start_etcd(const Namespace& ns, const std::string& host, const std::filesystem::path& dir) {
  const std::string client_url = "http://" + host + ":2379";
  auto etcd = std::make_unique<Process>(
      std::vector<std::string>{"/usr/bin/etcd", "--name", "hp", "--data-dir", (dir / "etcd").string(),
                               "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                               "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls",
                               "http://127.0.0.1:2380", "--initial-cluster", "hp=http://127.0.0.1:2380", "--log-level",
                               "warn"},
      ns.name(), dir, "etcd");
  const bool up = wait_until(
      [&] {
        const HttpResult r = http_get(ns, host, 2379, "/health", Seconds(1));
        return (r.ok && r.status == 200) || !etcd->running();
      },
      Seconds(20));
  if (!up || !etcd->running()) throw HarnessError("etcd did not come up: " + etcd->describe());
  return etcd;
}

}  // namespace hubprobe::it::agent
