// SPDX-License-Identifier: Apache-2.0
// The HTTP(S) POST sink. One thread per sink; publish() only swaps a pointer.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include "backoff.h"
#include "curl_post.h"
#include "hubprobe/scheduler_sink.h"

namespace hubprobe {
namespace {

using detail::steady_now_ns;

// "HTTP 503: overloaded" from a status and the start of the body, on one line.
std::string describe_status(long status, const std::string& body) {
  std::string text = "HTTP " + std::to_string(status);
  std::string excerpt = body.substr(0, 120);
  std::replace_if(
      excerpt.begin(), excerpt.end(), [](char c) { return c == '\r' || c == '\n' || c == '\t'; }, ' ');
  while (!excerpt.empty() && excerpt.back() == ' ') excerpt.pop_back();
  if (!excerpt.empty()) text += ": " + excerpt;
  return text;
}

class HttpSink final : public detail::LatestDocumentSink {
 public:
  explicit HttpSink(const HttpSinkConfig& config) : config_(config) {
    status_.name = config_.name.empty() ? "http" : config_.name;
    status_.kind = "http";
    status_.target = config_.url;
    thread_ = std::thread([this] { run(); });
  }

  ~HttpSink() override { stop(0); }

  SinkStatus status() const override {
    std::lock_guard lock(mutex_);
    return status_;
  }

 private:
  void run();
  // One POST of `document`; updates the status. Called without the lock.
  Result<void> deliver(detail::Poster& poster, const std::string& body, uint64_t generation);

  const HttpSinkConfig config_;
  // A request still running at the stop deadline is abandoned.
  void on_stop_requested(int64_t stop_at_ns) override { abort_at_.store(stop_at_ns); }

  std::atomic<int64_t> abort_at_{0};  // steady ns, 0 = none; read by libcurl's progress callback
};

Result<void> HttpSink::deliver(detail::Poster& poster, const std::string& body, uint64_t generation) {
  detail::PostRequest request;
  request.url = config_.url;
  request.body = body;
  request.timeout_ns = config_.timeout_ns;
  request.connect_timeout_ns = config_.connect_timeout_ns;
  request.headers = {"Content-Type: application/json", "X-Hubprobe-Generation: " + std::to_string(generation)};
  if (!config_.bearer_token.empty()) request.headers.push_back("Authorization: Bearer " + config_.bearer_token);
  auto reply = poster.post(request, &abort_at_);
  if (!reply) return reply.error();
  if (reply->status < 200 || reply->status > 299) return make_error(describe_status(reply->status, reply->body));
  return {};
}

void HttpSink::run() {
  detail::Poster poster(detail::TlsFiles{config_.ca_file, config_.client_cert_file, config_.client_key_file});
  std::mt19937_64 random(std::random_device{}());
  int failures = 0;        // in a row
  int64_t retry_at = 0;    // steady ns; no attempt before
  int64_t refresh_at = 0;  // steady ns; 0 = no refresh scheduled

  std::unique_lock lock(mutex_);
  while (true) {
    const int64_t now = steady_now_ns();
    const bool undelivered = document_ != nullptr && !delivered_;
    if (stopping_ && (!undelivered || now >= stop_at_)) break;
    const bool refresh_due = !stopping_ && document_ != nullptr && refresh_at > 0 && now >= refresh_at;

    if ((undelivered || refresh_due) && now >= retry_at) {
      const auto document = document_;
      const uint64_t generation = generation_;
      status_.last_attempt = wall_now();
      lock.unlock();
      const std::string body = document->dump();
      const Result<void> sent = deliver(poster, body, generation);
      lock.lock();
      const int64_t done = steady_now_ns();
      if (sent) {
        if (failures > 0) {
          spdlog::info("scheduler sink {}: delivered generation {} to {} after {} failed attempts", status_.name,
                       generation, config_.url, failures);
        }
        failures = 0;
        retry_at = 0;
        refresh_at = config_.refresh_ns > 0 ? done + config_.refresh_ns : 0;
        if (document_ == document) delivered_ = true;
        ++status_.pushes_ok;
        status_.last_success = wall_now();
        status_.delivered_generation = generation;
        status_.last_error.clear();
        status_.healthy = true;
      } else {
        if (sent.error().code == ECANCELED) {
          spdlog::debug("scheduler sink {}: POST {} {} on stop", status_.name, config_.url, sent.error().message);
        } else if (failures == 0) {
          spdlog::warn("scheduler sink {}: POST {} failed: {} (retrying with backoff)", status_.name, config_.url,
                       sent.error().message);
        }
        ++failures;
        retry_at = done + detail::backoff_delay_ns(config_.backoff, failures, random);
        ++status_.pushes_failed;
        status_.last_error = sent.error().message;
        status_.healthy = false;
      }
      continue;
    }

    int64_t wake_at = std::numeric_limits<int64_t>::max();
    if (undelivered || refresh_due) {
      wake_at = retry_at;
    } else if (!stopping_ && document_ != nullptr && refresh_at > 0) {
      wake_at = refresh_at;
    }
    sleep_until(lock, wake_at);
  }
}

}  // namespace

std::unique_ptr<SchedulerSink> make_http_sink(const HttpSinkConfig& config) {
  return std::make_unique<HttpSink>(config);
}

}  // namespace hubprobe
