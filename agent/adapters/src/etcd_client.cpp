// SPDX-License-Identifier: Apache-2.0
// etcd v3 over its JSON gateway (grpc-gateway): POST /v3/<service>/<method> with the protobuf message as
// JSON. Keys and values travel in base64, int64 fields come back as JSON strings, and members holding
// their zero value are left out of answers (an empty value, a lease of 0, a TTL of 0).
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <mutex>

#include <nlohmann/json.hpp>
#include "curl_post.h"

#include "hubprobe/etcd_client.h"

namespace hubprobe {
namespace {

using nlohmann::json;

std::string base64_encode(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int length =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(data.data()),
                      static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(std::max(length, 0)));
  return out;
}

// Strict: the gateway always pads to a multiple of 4.
Result<std::string> base64_decode(const std::string& text) {
  if (text.size() % 4 != 0) return make_error("invalid base64 (length " + std::to_string(text.size()) + ")");
  std::string out(text.size() / 4 * 3, '\0');
  const int length =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                      static_cast<int>(text.size()));
  if (length < 0) return make_error("invalid base64");
  // EVP_DecodeBlock counts the padding as zero octets.
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<size_t>(length) - padding);
  return out;
}

// int64 members: strings in etcd's answers ("7587869786596421000"), numbers accepted too; absent = 0.
Result<int64_t> int64_member(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return int64_t{0};
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const auto& text = it->get_ref<const std::string&>();
    int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error == std::errc() && end == text.data() + text.size()) return value;
  }
  return make_error(std::string("member \"") + name + "\" is not an int64: " + it->dump());
}

// The smallest key greater than every key starting with `prefix` (etcd's range_end for a prefix):
// the last octet that is not 0xff, plus one, with what follows it dropped. "\0" (every key) when none.
std::string prefix_range_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return std::string(1, '\0');
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

std::string excerpt(const std::string& text) {
  std::string out = text.substr(0, 120);
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\r' || c == '\n' || c == '\t'; }, ' ');
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

constexpr int kGrpcNotFound = 5;

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
      // Streaming methods (lease keepalive) answer one JSON object per line; we send one message.
      const std::string first_line = reply->body.substr(0, reply->body.find('\n'));
      json answer = json::parse(first_line, nullptr, false);
      if (answer.is_discarded() || !answer.is_object()) {
        return make_error("etcd " + endpoint + ": not an etcd v3 JSON gateway answer (HTTP " +
                          std::to_string(reply->status) + "): " + excerpt(reply->body));
      }
      // Unary errors: {"error": "...", "code": 5, "message": "..."}; streaming: {"error": {...}}.
      const json* error = nullptr;
      if (reply->status != 200 || answer.contains("error")) error = &answer;
      if (answer.contains("error") && answer["error"].is_object()) error = &answer["error"];
      if (error != nullptr) {
        std::string message = error->value("message", std::string());
        if (message.empty() && error->contains("error") && (*error)["error"].is_string()) {
          message = (*error)["error"].get<std::string>();
        }
        if (message.empty()) message = excerpt(reply->body);
        int grpc_code = 0;
        if (auto it = error->find("code"); it != error->end() && it->is_number_integer()) grpc_code = it->get<int>();
        if (auto it = error->find("grpc_code"); it != error->end() && it->is_number_integer()) {
          grpc_code = it->get<int>();
        }
        return make_error("etcd " + endpoint + ": " + message + " (HTTP " + std::to_string(reply->status) + ")",
                          grpc_code == kGrpcNotFound ? ENOENT : EPROTO);
      }
      return answer;
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
  auto id = int64_member(*answer, "ID");
  if (!id) return make_error("etcd " + endpoint() + ": lease grant: " + id.error().message, EPROTO);
  if (*id == 0) return make_error("etcd " + endpoint() + ": lease grant answered without a lease ID", EPROTO);
  return *id;
}

Result<int64_t> EtcdClient::keep_alive(int64_t lease) {
  auto answer = impl_->call("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}});
  if (!answer) return answer.error();
  const json& result = answer->contains("result") ? (*answer)["result"] : *answer;
  auto ttl = int64_member(result, "TTL");
  if (!ttl) return make_error("etcd " + endpoint() + ": lease keepalive: " + ttl.error().message, EPROTO);
  return std::max<int64_t>(*ttl, 0);  // absent = 0: etcd no longer knows the lease
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
  std::vector<KeyValue> out;
  const auto kvs = answer->find("kvs");
  if (kvs == answer->end()) return out;  // no key: the member is left out
  if (!kvs->is_array()) return make_error("etcd " + endpoint() + ": range: \"kvs\" is not an array", EPROTO);
  for (const auto& item : *kvs) {
    if (!item.is_object()) return make_error("etcd " + endpoint() + ": range: an entry is not an object", EPROTO);
    KeyValue kv;
    auto key = base64_decode(item.value("key", std::string()));
    auto value = base64_decode(item.value("value", std::string()));
    auto lease = int64_member(item, "lease");
    auto revision = int64_member(item, "mod_revision");
    if (!key || !value || !lease || !revision) {
      const Error& error = !key ? key.error() : !value ? value.error() : !lease ? lease.error() : revision.error();
      return make_error("etcd " + endpoint() + ": range: " + error.message, EPROTO);
    }
    kv.key = std::move(*key);
    kv.value = std::move(*value);
    kv.lease = *lease;
    kv.mod_revision = *revision;
    out.push_back(std::move(kv));
  }
  return out;
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
