// SPDX-License-Identifier: Apache-2.0
// The etcd v3 sink (docs/scheduler-api.md): PREFIX/preferences/AGENT_ID (the document) and PREFIX/agents/AGENT_ID
// (the registration), both attached to one lease that this sink keeps alive. When the agent dies the
// keepalives stop and etcd deletes both keys after the TTL; a clean stop leaves the last (stale) document
// until then, on purpose: nothing is revoked.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "backoff.h"
#include "curl_post.h"
#include "hubprobe/etcd_client.h"
#include "hubprobe/scheduler_sink.h"

namespace hubprobe {
namespace {

using detail::steady_now_ns;

constexpr int64_t kSecond = 1'000'000'000;

using detail::steady_time;

class EtcdSink final : public detail::LatestDocumentSink {
 public:
  EtcdSink(const EtcdSinkConfig& config, const std::string& agent_id, nlohmann::json registration)
      : config_(config),
        ttl_s_(std::max<int64_t>(2, (config.ttl_ns + kSecond / 2) / kSecond)),
        registration_key_(registration_key(config.prefix, agent_id)),
        preferences_key_(preferences_key(config.prefix, agent_id)),
        registration_(registration.dump()),
        client_(etcd_client_options(config)) {
    status_.name = config_.name.empty() ? "etcd" : config_.name;
    status_.kind = "etcd";
    status_.target = client_.endpoint();
    thread_ = std::thread([this] { run(); });
  }

  ~EtcdSink() override { stop(0); }

  SinkStatus status() const override {
    std::lock_guard lock(mutex_);
    SinkStatus copy = status_;
    copy.target = client_.endpoint();
    return copy;
  }

 private:
  enum class Step { kGrant, kRegister, kPutDocument, kKeepAlive };
  // What one request gave: a granted lease, the TTL a keepalive reported, or an error.
  struct Attempt {
    Result<void> outcome;
    int64_t granted = 0;
    int64_t ttl_left = -1;
    int64_t started = 0;  // steady ns
  };

  // The loop, step by step; all but perform() run with mutex_ held.
  void run();
  std::optional<Step> next_step(int64_t now) const;
  Attempt perform(Step step, const nlohmann::json* document);
  void on_success(Step step, const Attempt& attempt, const std::shared_ptr<const nlohmann::json>& document,
                  uint64_t generation);
  void on_failure(Step step, const Error& error, int64_t done);
  void forget_lease();

  // The lease and what is in etcd under it; the loop's state.
  int failures_ = 0;              // in a row
  int64_t retry_at_ = 0;          // steady ns; no request before
  int64_t lease_ = 0;             // 0 = none
  int64_t lease_expires_at_ = 0;  // steady ns: etcd drops the lease by then unless kept alive
  int64_t keep_alive_at_ = 0;     // steady ns
  bool registered_ = false;       // the registration is in etcd under lease_
  std::mt19937_64 random_{std::random_device{}()};

  const EtcdSinkConfig config_;
  const int64_t ttl_s_;
  const std::string registration_key_;
  const std::string preferences_key_;
  const std::string registration_;
  EtcdClient client_;

  // Requests still running at the stop deadline give up then. (delivered_: document_, this very pointer,
  // is in etcd under the current lease.)
  void on_stop_requested(int64_t stop_at_ns) override { client_.set_deadline(steady_time(stop_at_ns)); }
};

// Without the lease, etcd has dropped both keys: everything is written again under a new one.
void EtcdSink::forget_lease() {
  lease_ = 0;
  registered_ = false;
  delivered_ = false;
}

// Grant a lease, register, put the document, keep the lease alive: the first that is due.
std::optional<EtcdSink::Step> EtcdSink::next_step(int64_t now) const {
  if (lease_ == 0) {
    if (document_ != nullptr || (config_.register_agent && !stopping_)) return Step::kGrant;
    return std::nullopt;
  }
  if (config_.register_agent && !registered_) return Step::kRegister;
  if (document_ != nullptr && !delivered_) return Step::kPutDocument;
  if (!stopping_ && now >= keep_alive_at_) return Step::kKeepAlive;
  return std::nullopt;
}

// The request itself, without the lock.
EtcdSink::Attempt EtcdSink::perform(Step step, const nlohmann::json* document) {
  Attempt attempt;
  attempt.started = steady_now_ns();
  switch (step) {
    case Step::kGrant: {
      auto id = client_.grant_lease(ttl_s_);
      if (id) attempt.granted = *id;
      if (!id) attempt.outcome = id.error();
      break;
    }
    case Step::kRegister: attempt.outcome = client_.put(registration_key_, registration_, lease_); break;
    case Step::kPutDocument: attempt.outcome = client_.put(preferences_key_, document->dump(), lease_); break;
    case Step::kKeepAlive: {
      auto ttl = client_.keep_alive(lease_);
      if (ttl) attempt.ttl_left = *ttl;
      if (!ttl) attempt.outcome = ttl.error();
      break;
    }
  }
  return attempt;
}

void EtcdSink::on_success(Step step, const Attempt& attempt, const std::shared_ptr<const nlohmann::json>& document,
                          uint64_t generation) {
  if (failures_ > 0) {
    spdlog::info("scheduler sink {}: etcd {} answers again after {} failed requests", status_.name, client_.endpoint(),
                 failures_);
  }
  failures_ = 0;
  retry_at_ = 0;
  status_.last_success = wall_now();
  status_.last_error.clear();
  status_.healthy = true;
  switch (step) {
    case Step::kGrant:
      forget_lease();
      lease_ = attempt.granted;
      lease_expires_at_ = attempt.started + ttl_s_ * kSecond;
      keep_alive_at_ = attempt.started + ttl_s_ * kSecond / 3;
      spdlog::debug("scheduler sink {}: lease {:x} granted, TTL {} s", status_.name, lease_, ttl_s_);
      break;
    case Step::kRegister: registered_ = true; break;
    case Step::kPutDocument:
      if (document_ == document) delivered_ = true;
      ++status_.pushes_ok;
      status_.delivered_generation = generation;
      break;
    case Step::kKeepAlive:
      if (attempt.ttl_left > 0) {
        lease_expires_at_ = attempt.started + attempt.ttl_left * kSecond;
        keep_alive_at_ = attempt.started + ttl_s_ * kSecond / 3;
        break;
      }
      // etcd lost its data, or we were cut off longer than the TTL: start over.
      spdlog::warn(
          "scheduler sink {}: etcd {} no longer knows lease {:x}; granting a new one and writing the keys again",
          status_.name, client_.endpoint(), lease_);
      forget_lease();
      break;
  }
}

void EtcdSink::on_failure(Step step, const Error& error, int64_t done) {
  if (error.code == ECANCELED) {
    spdlog::debug("scheduler sink {}: {} on stop", status_.name, error.message);
  } else if (failures_ == 0) {
    spdlog::warn("scheduler sink {}: {} (retrying with backoff)", status_.name, error.message);
  }
  ++failures_;
  ++status_.pushes_failed;
  status_.last_error = error.message;
  status_.healthy = false;
  int64_t delay = detail::backoff_delay_ns(config_.backoff, failures_, random_);
  if (error.code == ENOENT && (step == Step::kRegister || step == Step::kPutDocument)) {
    forget_lease();  // "requested lease not found": the lease is gone, get a new one
  } else if (lease_ != 0) {
    delay = std::min(delay, ttl_s_ * kSecond / 3);  // often enough that a short outage does not cost the lease
  }
  retry_at_ = done + delay;
}

void EtcdSink::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    const int64_t now = steady_now_ns();
    const bool need_put = document_ != nullptr && !delivered_;
    if (stopping_ && (!need_put || now >= stop_at_)) break;
    // No keepalive got through for a whole TTL: etcd has dropped the lease and both keys.
    if (lease_ != 0 && now >= lease_expires_at_) forget_lease();

    const std::optional<Step> step = next_step(now);
    if (step && now >= retry_at_) {
      const auto document = document_;
      const uint64_t generation = generation_;
      status_.last_attempt = wall_now();
      lock.unlock();
      const Attempt attempt = perform(*step, document.get());
      lock.lock();
      if (attempt.outcome) {
        on_success(*step, attempt, document, generation);
      } else {
        on_failure(*step, attempt.outcome.error(), steady_now_ns());
      }
      continue;
    }
    int64_t wake_at = std::numeric_limits<int64_t>::max();
    if (step) {
      wake_at = retry_at_;
    } else if (lease_ != 0 && !stopping_) {
      wake_at = std::min(keep_alive_at_, lease_expires_at_);
    }
    sleep_until(lock, wake_at);
  }
}

}  // namespace

EtcdClient::Options etcd_client_options(const EtcdSinkConfig& config) {
  EtcdClient::Options options;
  options.endpoints = config.endpoints;
  options.timeout_ns = config.timeout_ns;
  options.ca_file = config.ca_file;
  options.client_cert_file = config.client_cert_file;
  options.client_key_file = config.client_key_file;
  return options;
}

std::unique_ptr<SchedulerSink> make_etcd_sink(const EtcdSinkConfig& config, const std::string& agent_id,
                                              nlohmann::json registration) {
  return std::make_unique<EtcdSink>(config, agent_id, std::move(registration));
}

}  // namespace hubprobe
