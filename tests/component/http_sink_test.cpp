// SPDX-License-Identifier: Apache-2.0
// The HTTP(S) POST sink against a real HTTP receiver on 127.0.0.1 in this process: what it sends, how it
// retries, that only the newest document ever goes out, that publish() never waits on the network and
// that stop() keeps its deadline.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../../agent/adapters/src/backoff.h"
#include "../support/etcd_process.h"  // free_loopback_port()
#include "hubprobe/scheduler_sink.h"

namespace hubprobe {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Polls `condition` every 5 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& condition, milliseconds timeout = milliseconds(5000)) {
  const auto give_up = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= give_up) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

struct ReceivedRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  Clock::time_point at;

  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string("<absent>") : it->second;
  }
};

// A minimal HTTP/1.1 receiver on 127.0.0.1, one connection at a time. Each request gets the next scripted
// answer (a status code, or kHang: keep the connection open without answering until the client gives
// up or the receiver is destroyed); when the script runs out, `fallback` applies.
class Receiver {
 public:
  static constexpr int kHang = -1;

  explicit Receiver(uint16_t port = 0, int fallback = 200) : fallback_(fallback) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    socklen_t length = sizeof(address);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(listener_, 64) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "receiver cannot listen on 127.0.0.1:" << port << ": " << std::strerror(errno);
      return;
    }
    port_ = ntohs(address.sin_port);
    if (pipe2(wake_pipe_, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    thread_ = std::thread([this] { serve(); });
  }

  ~Receiver() {
    stopping_.store(true);
    if (wake_pipe_[1] >= 0) (void)!write(wake_pipe_[1], "x", 1);
    if (thread_.joinable()) thread_.join();
    for (int fd : {listener_, wake_pipe_[0], wake_pipe_[1]}) {
      if (fd >= 0) close(fd);
    }
  }

  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/v1/preferences") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  void script(std::deque<int> answers, std::string body = {}) {
    std::lock_guard lock(mutex_);
    script_ = std::move(answers);
    answer_body_ = std::move(body);
  }

  std::vector<ReceivedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  size_t count() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
  }
  bool wait_for(size_t n, milliseconds timeout = milliseconds(5000)) const {
    std::unique_lock lock(mutex_);
    return arrived_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }

 private:
  // Waits until `fd` is readable; false when the receiver stops or `timeout_ms` passes.
  bool readable(int fd, int timeout_ms) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    const int n = poll(fds, 2, timeout_ms);
    return n > 0 && (fds[1].revents & POLLIN) == 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  }

  void serve() {
    while (!stopping_.load()) {
      if (!readable(listener_, -1)) continue;
      const int connection = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (connection < 0) continue;
      handle(connection);
      close(connection);
    }
  }

  // Serves the requests of one connection until the client closes it or an answer closes it.
  void handle(int connection) {
    std::string buffer;
    while (!stopping_.load()) {
      ReceivedRequest request;
      size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (!receive(connection, buffer)) return;
      }
      std::istringstream head(buffer.substr(0, header_end));
      std::string line;
      std::getline(head, line);
      std::istringstream request_line(line);
      request_line >> request.method >> request.path;
      size_t content_length = 0;
      while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        if (name == "content-length") content_length = std::stoul(value);
        request.headers[name] = value;
      }
      buffer.erase(0, header_end + 4);
      while (buffer.size() < content_length) {
        if (!receive(connection, buffer)) return;
      }
      request.body = buffer.substr(0, content_length);
      buffer.erase(0, content_length);
      request.at = Clock::now();
      int answer;
      std::string body;
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(std::move(request));
        if (script_.empty()) {
          answer = fallback_;
        } else {
          answer = script_.front();
          script_.pop_front();
        }
        body = answer_body_;
      }
      arrived_.notify_all();
      if (answer == kHang) {
        // Hold the request until the client hangs up (its timeout) or the receiver stops.
        while (receive(connection, buffer)) {
        }
        return;
      }
      const std::string reply = "HTTP/1.1 " + std::to_string(answer) +
                                " Scripted\r\nContent-Length: " + std::to_string(body.size()) +
                                "\r\nContent-Type: text/plain\r\n\r\n" + body;
      if (send(connection, reply.data(), reply.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(reply.size())) return;
    }
  }

  // Appends what arrives to `buffer`; false when the peer closed or the receiver stops.
  bool receive(int connection, std::string& buffer) {
    if (!readable(connection, -1)) return false;
    char chunk[4096];
    const ssize_t n = recv(connection, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int listener_ = -1;
  int wake_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  const int fallback_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  mutable std::condition_variable arrived_;
  std::deque<int> script_;
  std::string answer_body_;
  std::vector<ReceivedRequest> requests_;
  std::thread thread_;
};

HttpSinkConfig quick_config(const std::string& url) {
  HttpSinkConfig config;
  config.url = url;
  config.timeout_ns = 1'000'000'000;
  config.connect_timeout_ns = 500'000'000;
  config.refresh_ns = 0;
  config.backoff.initial_ns = 20'000'000;
  config.backoff.max_ns = 100'000'000;
  return config;
}

std::shared_ptr<const nlohmann::json> document(uint64_t generation) {
  return std::make_shared<const nlohmann::json>(nlohmann::json{
      {"schema", "hubprobe.preferences/v1"}, {"agent", {{"id", "hub-a-1"}}}, {"generation", generation}});
}

TEST(HttpSinkTest, PostsTheDocumentWithItsHeaders) {
  Receiver receiver;
  HttpSinkConfig config = quick_config(receiver.url());
  config.bearer_token = "s3cr3t-token";
  auto sink = make_http_sink(config);
  const auto doc = document(7);
  sink->publish(doc, 7);
  ASSERT_TRUE(receiver.wait_for(1));
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }));
  const ReceivedRequest request = receiver.requests().at(0);
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/v1/preferences");
  EXPECT_EQ(request.body, doc->dump());
  EXPECT_EQ(request.header("content-type"), "application/json");
  EXPECT_EQ(request.header("x-hubprobe-generation"), "7");
  EXPECT_EQ(request.header("authorization"), "Bearer s3cr3t-token");
  EXPECT_EQ(request.header("expect"), "<absent>");

  const SinkStatus status = sink->status();
  EXPECT_EQ(status.name, "http");
  EXPECT_EQ(status.kind, "http");
  EXPECT_EQ(status.target, receiver.url());
  EXPECT_EQ(status.pushes_failed, 0u);
  EXPECT_EQ(status.delivered_generation, 7u);
  EXPECT_EQ(status.pending_generation, 7u);
  EXPECT_TRUE(status.healthy);
  EXPECT_TRUE(status.last_error.empty());
  EXPECT_GT(status.last_success, 0);
  EXPECT_GE(status.last_success, status.last_attempt);
  sink->stop(1'000'000'000);
  EXPECT_EQ(receiver.count(), 1u) << "nothing new was published: stop() sends nothing";
}

TEST(HttpSinkTest, NoAuthorizationHeaderWithoutToken) {
  Receiver receiver;
  auto sink = make_http_sink(quick_config(receiver.url()));
  sink->publish(document(1), 1);
  ASSERT_TRUE(receiver.wait_for(1));
  EXPECT_EQ(receiver.requests().at(0).header("authorization"), "<absent>");
}

TEST(HttpSinkTest, RetriesWithBackoffUntilTheReceiverAccepts) {
  Receiver receiver;
  receiver.script({503, 503, 503}, "overloaded");
  HttpSinkConfig config = quick_config(receiver.url());
  config.backoff.initial_ns = 40'000'000;
  config.backoff.max_ns = 120'000'000;
  auto sink = make_http_sink(config);
  sink->publish(document(3), 3);
  ASSERT_TRUE(receiver.wait_for(4)) << "got " << receiver.count() << " requests";
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }));
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 4u);
  // Full jitter: retry n waits at most min(max, initial * 2^(n-1)), plus scheduling slack.
  const double caps_s[] = {0.040, 0.080, 0.120};
  for (size_t i = 1; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i].body, requests[0].body);
    EXPECT_EQ(requests[i].header("x-hubprobe-generation"), "3");
    const double gap = std::chrono::duration<double>(requests[i].at - requests[i - 1].at).count();
    EXPECT_LT(gap, caps_s[i - 1] + 0.25) << "retry " << i;
  }
  const SinkStatus status = sink->status();
  EXPECT_EQ(status.pushes_failed, 3u);
  EXPECT_EQ(status.pushes_ok, 1u);
  EXPECT_TRUE(status.healthy);
  EXPECT_TRUE(status.last_error.empty());
  EXPECT_EQ(status.delivered_generation, 3u);
}

TEST(HttpSinkTest, ClientErrorIsAFailureWithTheStatusInTheError) {
  Receiver receiver(0, Receiver::kHang);
  receiver.script({400}, "bad document\n");
  auto sink = make_http_sink(quick_config(receiver.url()));
  sink->publish(document(9), 9);
  ASSERT_TRUE(receiver.wait_for(2)) << "a 4xx must be retried too";
  const SinkStatus status = sink->status();  // the retry hangs: the status is the 400's
  EXPECT_EQ(status.pushes_failed, 1u);
  EXPECT_EQ(status.pushes_ok, 0u);
  EXPECT_FALSE(status.healthy);
  EXPECT_EQ(status.last_error, "HTTP 400: bad document");
  EXPECT_EQ(status.delivered_generation, 0u);
  EXPECT_EQ(status.pending_generation, 9u);
  EXPECT_GT(status.last_attempt, 0);
  EXPECT_EQ(status.last_success, 0);
}

TEST(HttpSinkTest, ConnectionRefusedIsReportedPlainly) {
  const uint16_t port = test::free_loopback_port();
  auto sink = make_http_sink(quick_config("http://127.0.0.1:" + std::to_string(port) + "/"));
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_failed >= 1; }));
  EXPECT_EQ(sink->status().last_error, "connection refused");
}

TEST(HttpSinkTest, OnlyTheLatestDocumentIsSentAfterTheReceiverWasDown) {
  const uint16_t port = test::free_loopback_port();
  ASSERT_NE(port, 0);
  auto sink = make_http_sink(quick_config("http://127.0.0.1:" + std::to_string(port) + "/v1/preferences"));
  for (uint64_t generation = 1; generation <= 50; ++generation) sink->publish(document(generation), generation);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_failed >= 2; }));

  Receiver receiver(port);
  ASSERT_EQ(receiver.port(), port);
  ASSERT_TRUE(receiver.wait_for(1));
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }));
  std::this_thread::sleep_for(milliseconds(300));  // a backlog would show up by now
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].header("x-hubprobe-generation"), "50");
  EXPECT_EQ(requests[0].body, document(50)->dump());
  const SinkStatus status = sink->status();
  EXPECT_EQ(status.superseded, 49u);
  EXPECT_EQ(status.delivered_generation, 50u);
  EXPECT_GE(status.pushes_failed, 2u);
}

TEST(HttpSinkTest, PublishNeverWaitsOnTheNetwork) {
  Receiver receiver(0, Receiver::kHang);
  auto sink = make_http_sink(quick_config(receiver.url()));
  const std::vector<std::shared_ptr<const nlohmann::json>> documents = {document(1), document(2)};
  double slowest_s = 0;
  for (uint64_t generation = 1; generation <= 10000; ++generation) {
    const auto start = Clock::now();
    sink->publish(documents[generation % 2], generation);
    slowest_s = std::max(slowest_s, seconds_since(start));
  }
  ASSERT_TRUE(receiver.wait_for(1));
  // A behaviour check, not a benchmark: microseconds are expected, a network wait would be >= 1 s (the
  // request timeout). The bound is half of that, so a preempted call on a loaded host does not fail it.
  EXPECT_LT(slowest_s, 0.5) << "slowest publish()";
  RecordProperty("slowest_publish_us", std::to_string(static_cast<int64_t>(slowest_s * 1e6)));
  EXPECT_LE(receiver.count(), 2u);
  const SinkStatus status = sink->status();
  EXPECT_EQ(status.pending_generation, 10000u);
  EXPECT_GE(status.superseded, 9998u);
}

TEST(HttpSinkTest, StopKeepsItsDeadlineWhenTheReceiverHangs) {
  Receiver receiver(0, Receiver::kHang);
  HttpSinkConfig config = quick_config(receiver.url());
  config.timeout_ns = 1'500'000'000;
  auto sink = make_http_sink(config);
  sink->publish(document(1), 1);
  ASSERT_TRUE(receiver.wait_for(1));
  sink->publish(document(2), 2);  // the stale document the agent hands over on shutdown
  const auto start = Clock::now();
  sink->stop(300'000'000);
  const double elapsed = seconds_since(start);
  // Deadline + one request timeout; 1 s of slack for a loaded host, less than a second request (1.5 s).
  EXPECT_LT(elapsed, 0.3 + 1.5 + 1.0) << "deadline + one request timeout";
  RecordProperty("stop_s", std::to_string(elapsed));
  EXPECT_EQ(sink->status().pushes_ok, 0u);
}

TEST(HttpSinkTest, StopKeepsItsDeadlineWhenTheReceiverIsDown) {
  const uint16_t port = test::free_loopback_port();
  HttpSinkConfig config = quick_config("http://127.0.0.1:" + std::to_string(port) + "/");
  config.backoff.initial_ns = 100'000'000;
  auto sink = make_http_sink(config);
  sink->publish(document(1), 1);
  const auto start = Clock::now();
  sink->stop(400'000'000);
  const double elapsed = seconds_since(start);
  // Refused connections fail at once: the deadline, plus 1 s of slack for a loaded host (a sink that
  // ignored its deadline would never return: the receiver stays down).
  EXPECT_LT(elapsed, 0.4 + 1.0);
  EXPECT_GE(elapsed, 0.35) << "it keeps trying until the deadline";
  EXPECT_GE(sink->status().pushes_failed, 2u);
}

TEST(HttpSinkTest, StopDeliversTheLastDocument) {
  Receiver receiver;
  auto sink = make_http_sink(quick_config(receiver.url()));
  sink->publish(document(1), 1);
  ASSERT_TRUE(eventually([&] { return sink->status().pushes_ok == 1; }));
  auto stale = std::make_shared<nlohmann::json>(*document(2));
  (*stale)["stale"] = true;
  sink->publish(stale, 2);
  const auto start = Clock::now();
  sink->stop(5'000'000'000);
  // Returns once delivered, not at the deadline (5 s); a local delivery takes milliseconds, the rest is
  // slack for a loaded host.
  EXPECT_LT(seconds_since(start), 2.5);
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].body, stale->dump());
  EXPECT_EQ(sink->status().delivered_generation, 2u);
}

TEST(HttpSinkTest, StopWithNothingPublishedReturnsAtOnce) {
  Receiver receiver;
  auto sink = make_http_sink(quick_config(receiver.url()));
  const auto start = Clock::now();
  sink->stop(5'000'000'000);
  sink->stop(5'000'000'000);  // a second stop is harmless
  // At once, not at a deadline (5 s): milliseconds, and slack for a loaded host.
  EXPECT_LT(seconds_since(start), 2.5);
  EXPECT_EQ(receiver.count(), 0u);
}

TEST(HttpSinkTest, RefreshResendsTheCurrentDocument) {
  Receiver receiver;
  HttpSinkConfig config = quick_config(receiver.url());
  config.refresh_ns = 150'000'000;
  auto sink = make_http_sink(config);
  sink->publish(document(4), 4);
  ASSERT_TRUE(receiver.wait_for(4, milliseconds(3000)));
  const auto requests = receiver.requests();
  for (size_t i = 1; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i].body, requests[0].body);
    EXPECT_EQ(requests[i].header("x-hubprobe-generation"), "4");
    const double gap = std::chrono::duration<double>(requests[i].at - requests[i - 1].at).count();
    EXPECT_GE(gap, 0.140) << "refresh " << i << " came early";
  }
  EXPECT_EQ(sink->status().superseded, 0u);
}

TEST(HttpSinkTest, ANewerDocumentIsSentAtOnce) {
  Receiver receiver;
  HttpSinkConfig config = quick_config(receiver.url());
  config.refresh_ns = 60'000'000'000;
  auto sink = make_http_sink(config);
  for (uint64_t generation = 1; generation <= 3; ++generation) {
    sink->publish(document(generation), generation);
    ASSERT_TRUE(eventually([&] { return sink->status().delivered_generation == generation; }));
  }
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2].header("x-hubprobe-generation"), "3");
}

TEST(BackoffTest, FullJitterStaysWithinTheExponentialCap) {
  BackoffConfig config;
  config.initial_ns = 500'000'000;
  config.max_ns = 30'000'000'000;
  std::mt19937_64 random(42);
  for (int failures = 1; failures <= 100; ++failures) {
    const int64_t cap = failures >= 7 ? config.max_ns : config.initial_ns << (failures - 1);
    int64_t largest = 0;
    for (int i = 0; i < 200; ++i) {
      const int64_t delay = detail::backoff_delay_ns(config, failures, random);
      ASSERT_GE(delay, 0);
      ASSERT_LE(delay, cap) << "failures " << failures;
      largest = std::max(largest, delay);
    }
    EXPECT_GT(largest, cap / 2) << "failures " << failures << ": the whole range should be used";
  }
}

}  // namespace
}  // namespace hubprobe
