// SPDX-License-Identifier: Apache-2.0
// etcd v3's JSON gateway (grpc-gateway) answers: keys and values travel in base64, int64 fields come back
// as JSON strings, and members holding their zero value are left out of answers (an empty value, a lease
// of 0, a TTL of 0).
#include "hubprobe/etcd_answers.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

namespace hubprobe::etcd_gateway {
namespace {

using nlohmann::json;

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

// Keys and values: base64 strings; absent (or null) = empty, as etcd leaves empty values out.
Result<std::string> base64_member(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) return make_error(std::string("member \"") + name + "\" is not a string: " + it->dump());
  return base64_decode(it->get_ref<const std::string&>());
}

constexpr int kGrpcNotFound = 5;

}  // namespace

std::string base64_encode(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int length =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(data.data()),
                      static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(std::max(length, 0)));
  return out;
}

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

// The last octet that is not 0xff, plus one, with what follows it dropped. "\0" (every key) when none.
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

Result<json> parse_answer(const std::string& endpoint, int status, const std::string& body) {
  // Streaming methods (lease keepalive) answer one JSON object per line; we send one message.
  const std::string first_line = body.substr(0, body.find('\n'));
  json answer = json::parse(first_line, nullptr, false);
  if (answer.is_discarded() || !answer.is_object()) {
    return make_error("etcd " + endpoint + ": not an etcd v3 JSON gateway answer (HTTP " + std::to_string(status) +
                      "): " + excerpt(body));
  }
  // Unary errors: {"error": "...", "code": 5, "message": "..."}; streaming: {"error": {...}}.
  const json* error = nullptr;
  if (status != 200 || answer.contains("error")) error = &answer;
  if (answer.contains("error") && answer["error"].is_object()) error = &answer["error"];
  if (error != nullptr) {
    // Only a string is a message: anything else (a proxy's own JSON) falls back to the error or the body.
    std::string message;
    if (auto it = error->find("message"); it != error->end() && it->is_string()) message = it->get<std::string>();
    if (message.empty() && error->contains("error") && (*error)["error"].is_string()) {
      message = (*error)["error"].get<std::string>();
    }
    if (message.empty()) message = excerpt(body);
    int grpc_code = 0;
    if (auto it = error->find("code"); it != error->end() && it->is_number_integer()) grpc_code = it->get<int>();
    if (auto it = error->find("grpc_code"); it != error->end() && it->is_number_integer()) {
      grpc_code = it->get<int>();
    }
    return make_error("etcd " + endpoint + ": " + message + " (HTTP " + std::to_string(status) + ")",
                      grpc_code == kGrpcNotFound ? ENOENT : EPROTO);
  }
  return answer;
}

Result<int64_t> lease_grant_id(const json& answer, const std::string& endpoint) {
  auto id = int64_member(answer, "ID");
  if (!id) return make_error("etcd " + endpoint + ": lease grant: " + id.error().message, EPROTO);
  if (*id == 0) return make_error("etcd " + endpoint + ": lease grant answered without a lease ID", EPROTO);
  return *id;
}

Result<int64_t> keep_alive_ttl(const json& answer, const std::string& endpoint) {
  const json& result = answer.contains("result") ? answer["result"] : answer;
  auto ttl = int64_member(result, "TTL");
  if (!ttl) return make_error("etcd " + endpoint + ": lease keepalive: " + ttl.error().message, EPROTO);
  return std::max<int64_t>(*ttl, 0);  // absent = 0: etcd no longer knows the lease
}

Result<std::vector<EtcdKeyValue>> range_key_values(const json& answer, const std::string& endpoint) {
  std::vector<EtcdKeyValue> out;
  const auto kvs = answer.find("kvs");
  if (kvs == answer.end()) return out;  // no key: the member is left out
  if (!kvs->is_array()) return make_error("etcd " + endpoint + ": range: \"kvs\" is not an array", EPROTO);
  for (const auto& item : *kvs) {
    if (!item.is_object()) return make_error("etcd " + endpoint + ": range: an entry is not an object", EPROTO);
    EtcdKeyValue kv;
    auto key = base64_member(item, "key");
    auto value = base64_member(item, "value");
    auto lease = int64_member(item, "lease");
    auto revision = int64_member(item, "mod_revision");
    if (!key || !value || !lease || !revision) {
      const Error& error = !key ? key.error() : !value ? value.error() : !lease ? lease.error() : revision.error();
      return make_error("etcd " + endpoint + ": range: " + error.message, EPROTO);
    }
    kv.key = std::move(*key);
    kv.value = std::move(*value);
    kv.lease = *lease;
    kv.mod_revision = *revision;
    out.push_back(std::move(kv));
  }
  return out;
}

Result<int64_t> header_revision(const json& answer, const std::string& endpoint) {
  const auto header = answer.find("header");
  if (header == answer.end()) return int64_t{0};
  if (!header->is_object()) return make_error("etcd " + endpoint + ": \"header\" is not an object", EPROTO);
  auto revision = int64_member(*header, "revision");
  if (!revision) return make_error("etcd " + endpoint + ": header: " + revision.error().message, EPROTO);
  return *revision;
}

Result<WatchMessage> watch_message(const std::string& line, const std::string& endpoint) {
  const json message = json::parse(line, nullptr, false);
  if (message.is_discarded() || !message.is_object()) {
    return make_error("etcd " + endpoint + ": watch: not a JSON object: " + excerpt(line), EPROTO);
  }
  if (auto error = message.find("error"); error != message.end()) {
    std::string text = excerpt(error->dump(-1, ' ', false, json::error_handler_t::replace));
    if (error->is_object()) {
      if (auto it = error->find("message"); it != error->end() && it->is_string()) text = it->get<std::string>();
    }
    return make_error("etcd " + endpoint + ": watch: " + text, EPROTO);
  }
  const auto result_it = message.find("result");
  const json& result = result_it != message.end() ? *result_it : message;
  if (!result.is_object()) return make_error("etcd " + endpoint + ": watch: \"result\" is not an object", EPROTO);
  WatchMessage out;
  auto revision = header_revision(result, endpoint);
  if (!revision) return revision.error();
  out.header_revision = *revision;
  const auto flag = [&](const char* name) {
    const auto it = result.find(name);
    return it != result.end() && it->is_boolean() && it->get<bool>();
  };
  out.created = flag("created");
  out.canceled = flag("canceled");
  auto compact = int64_member(result, "compact_revision");
  if (!compact) return make_error("etcd " + endpoint + ": watch: " + compact.error().message, EPROTO);
  out.compact_revision = *compact;
  if (auto it = result.find("cancel_reason"); it != result.end() && it->is_string()) {
    out.cancel_reason = it->get<std::string>();
  }
  const auto events = result.find("events");
  if (events == result.end()) return out;
  if (!events->is_array()) return make_error("etcd " + endpoint + ": watch: \"events\" is not an array", EPROTO);
  for (const json& item : *events) {
    if (!item.is_object()) return make_error("etcd " + endpoint + ": watch: an event is not an object", EPROTO);
    WatchEvent event;
    // The event type is an enum whose zero (PUT) the gateway leaves out.
    if (auto type = item.find("type"); type != item.end()) {
      if (*type == "DELETE" || *type == 1) {
        event.type = WatchEvent::Type::kDelete;
      } else if (!(*type == "PUT" || *type == 0)) {
        return make_error("etcd " + endpoint + ": watch: unknown event type " + excerpt(type->dump()), EPROTO);
      }
    }
    const auto kv = item.find("kv");
    if (kv == item.end() || !kv->is_object()) {
      return make_error("etcd " + endpoint + ": watch: an event without \"kv\"", EPROTO);
    }
    auto key = base64_member(*kv, "key");
    auto value = base64_member(*kv, "value");
    auto lease = int64_member(*kv, "lease");
    auto mod_revision = int64_member(*kv, "mod_revision");
    if (!key || !value || !lease || !mod_revision) {
      const Error& error = !key ? key.error() : !value ? value.error() : !lease ? lease.error() : mod_revision.error();
      return make_error("etcd " + endpoint + ": watch: " + error.message, EPROTO);
    }
    event.kv.key = std::move(*key);
    event.kv.value = std::move(*value);
    event.kv.lease = *lease;
    event.kv.mod_revision = *mod_revision;
    out.events.push_back(std::move(event));
  }
  return out;
}

}  // namespace hubprobe::etcd_gateway
