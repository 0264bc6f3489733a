// SPDX-License-Identifier: Apache-2.0
// etcd v3 over its JSON gateway (grpc-gateway): POST /v3/<service>/<method> with the protobuf message as
// JSON. What the answers mean (base64, int64 strings, members left out) is etcd_answers.cpp.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <optional>

#include <nlohmann/json.hpp>
#include "curl_post.h"

#include "hubprobe/etcd_answers.h"
#include "hubprobe/etcd_client.h"

namespace hubprobe {
namespace {

using etcd_gateway::base64_encode;
using etcd_gateway::excerpt;
using etcd_gateway::prefix_range_end;
using nlohmann::json;

}  // namespace

struct EtcdClient::Impl {
  explicit Impl(Options o)
      : options(std::move(o)),
        poster(detail::TlsFiles{options.ca_file, options.client_cert_file, options.client_key_file}) {
    for (auto& endpoint : options.endpoints) {
      while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    }
  }

  // POSTs `body` to `path` on the endpoint that answered last, then on the others in order. A transport
  // failure or an unavailable member (HTTP 502/503/504) moves on to the next endpoint; any other answer
  // is final. Errors name the endpoint: "etcd http://198.18.0.254:2379: connection refused".
  Result<json> call(const char* path, const json& body);

  Options options;
  std::mutex mutex;  // one request at a time through `poster`
  detail::Poster poster;
  std::atomic<size_t> current{0};
  std::atomic<int64_t> abort_at{0};  // steady ns, 0 = none
};

Result<json> EtcdClient::Impl::call(const char* path, const json& body) {
  const size_t count = options.endpoints.size();
  if (count == 0) return make_error("etcd: no endpoints configured");
  std::lock_guard lock(mutex);
  const std::string text = body.dump();
  const size_t first = current.load();
  std::string failures;
  int last_code = 0;
  for (size_t i = 0; i < count; ++i) {
    const size_t index = (first + i) % count;
    const std::string& endpoint = options.endpoints[index];
    detail::PostRequest request;
    request.url = endpoint + path;
    request.body = text;
    request.headers = {"Content-Type: application/json"};
    request.timeout_ns = options.timeout_ns;
    request.connect_timeout_ns = options.timeout_ns;
    auto reply = poster.post(request, &abort_at);
    std::string failure;
    if (!reply) {
      failure = reply.error().message;
      last_code = reply.error().code;
    } else if (reply->status == 502 || reply->status == 503 || reply->status == 504) {
      failure = "HTTP " + std::to_string(reply->status) + ": " + excerpt(reply->body);
      last_code = EAGAIN;
    } else {
      current.store(index);
      return etcd_gateway::parse_answer(endpoint, reply->status, reply->body);
    }
    if (!failures.empty()) failures += "; ";
    failures += endpoint + ": " + failure;
    if (last_code == ECANCELED) break;  // the deadline passed: no point trying the others
  }
  return make_error("etcd " + failures, last_code);
}

EtcdClient::EtcdClient(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

EtcdClient::~EtcdClient() = default;

Result<int64_t> EtcdClient::grant_lease(int64_t ttl_s) {
  auto answer = impl_->call("/v3/lease/grant", json{{"TTL", std::to_string(ttl_s)}});
  if (!answer) return answer.error();
  return etcd_gateway::lease_grant_id(*answer, endpoint());
}

Result<int64_t> EtcdClient::keep_alive(int64_t lease) {
  auto answer = impl_->call("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}});
  if (!answer) return answer.error();
  return etcd_gateway::keep_alive_ttl(*answer, endpoint());
}

Result<void> EtcdClient::put(const std::string& key, const std::string& value, int64_t lease) {
  json request{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) request["lease"] = std::to_string(lease);
  auto answer = impl_->call("/v3/kv/put", request);
  if (!answer) return answer.error();
  return {};
}

Result<std::vector<EtcdClient::KeyValue>> EtcdClient::get_prefix(const std::string& prefix) {
  auto answer = impl_->call("/v3/kv/range", json{{"key", base64_encode(prefix.empty() ? std::string(1, '\0') : prefix)},
                                                 {"range_end", base64_encode(prefix_range_end(prefix))}});
  if (!answer) return answer.error();
  return etcd_gateway::range_key_values(*answer, endpoint());
}

Result<EtcdClient::Range> EtcdClient::get_prefix_with_revision(const std::string& prefix) {
  auto answer = impl_->call("/v3/kv/range", json{{"key", base64_encode(prefix.empty() ? std::string(1, '\0') : prefix)},
                                                 {"range_end", base64_encode(prefix_range_end(prefix))}});
  if (!answer) return answer.error();
  auto kvs = etcd_gateway::range_key_values(*answer, endpoint());
  if (!kvs) return kvs.error();
  auto revision = etcd_gateway::header_revision(*answer, endpoint());
  if (!revision) return revision.error();
  return Range{std::move(*kvs), *revision};
}

Result<void> EtcdClient::watch_prefix(const std::string& prefix, int64_t start_revision,
                                      const std::function<bool(const etcd_gateway::WatchMessage&)>& on_message,
                                      const std::atomic<bool>& stop) {
  const auto& endpoints = impl_->options.endpoints;
  if (endpoints.empty()) return make_error("etcd: no endpoints configured");
  json create = {{"key", base64_encode(prefix.empty() ? std::string(1, '\0') : prefix)},
                 {"range_end", base64_encode(prefix_range_end(prefix))}};
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  const std::string body = json{{"create_request", create}}.dump();
  detail::Poster poster(
      detail::TlsFiles{impl_->options.ca_file, impl_->options.client_cert_file, impl_->options.client_key_file});
  std::string failures;
  int last_code = 0;
  const size_t first = impl_->current.load();
  for (size_t i = 0; i < endpoints.size() && !stop; ++i) {
    const size_t index = (first + i) % endpoints.size();
    const std::string& endpoint = endpoints[index];
    detail::PostRequest request;
    request.url = endpoint + "/v3/watch";
    request.body = body;
    request.headers = {"Content-Type: application/json"};
    request.connect_timeout_ns = impl_->options.timeout_ns;
    std::string pending;       // a line not yet complete
    std::optional<Error> bad;  // a message that could not be read, or the reader's wish to end
    bool answered = false;
    bool ended_by_reader = false;
    auto status = poster.post_stream(
        request,
        [&](std::string_view data) {
          pending.append(data);
          for (size_t end; (end = pending.find('\n')) != std::string::npos;) {
            const std::string line = pending.substr(0, end);
            pending.erase(0, end + 1);
            if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
            auto message = etcd_gateway::watch_message(line, endpoint);
            if (!message) {
              bad = message.error();
              return false;
            }
            answered = true;
            if (!on_message(*message)) {
              ended_by_reader = true;
              return false;
            }
          }
          return true;
        },
        stop);
    if (answered) impl_->current.store(index);
    if (ended_by_reader) return {};
    if (bad) return *bad;
    if (!status) {
      if (status.error().code == ECANCELED) return status.error();
      failures += (failures.empty() ? "" : "; ") + endpoint + ": " + status.error().message;
      last_code = status.error().code;
      if (answered) break;  // the stream was up and broke: the caller resumes from where it got
      continue;
    }
    if (*status != 200) {
      failures +=
          (failures.empty() ? "" : "; ") + endpoint + ": HTTP " + std::to_string(*status) + ": " + excerpt(pending);
      last_code = EPROTO;
      if (*status != 502 && *status != 503 && *status != 504) break;
      continue;
    }
    failures += (failures.empty() ? "" : "; ") + endpoint + ": the watch stream ended";
    last_code = EPIPE;
    break;
  }
  if (stop) return make_error("etcd watch: stopping", ECANCELED);
  return make_error("etcd " + failures, last_code);
}

Result<void> EtcdClient::revoke(int64_t lease) {
  auto answer = impl_->call("/v3/lease/revoke", json{{"ID", std::to_string(lease)}});
  if (!answer) return answer.error();
  return {};
}

std::string EtcdClient::endpoint() const {
  const auto& endpoints = impl_->options.endpoints;
  return endpoints.empty() ? std::string() : endpoints[impl_->current.load() % endpoints.size()];
}

void EtcdClient::set_deadline(std::chrono::steady_clock::time_point deadline) {
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  impl_->abort_at.store(std::max<int64_t>(ns, 1));
}

}  // namespace hubprobe
