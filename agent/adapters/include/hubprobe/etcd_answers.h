// SPDX-License-Identifier: Apache-2.0
// What the etcd v3 JSON gateway answers, read without any I/O: the EtcdClient (etcd_client.h) posts the
// requests and hands the answers to these functions, which tests/fuzz/fuzz_etcd_answer.cpp feeds directly.
// Error messages name `endpoint` (the member that answered) as the client's do: "etcd URL: ...".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hubprobe/result.h"
#include "hubprobe/sink_config.h"

namespace hubprobe::etcd_gateway {

/// Base64 as the gateway carries keys and values (RFC 4648, padded).
std::string base64_encode(const std::string& data);
/// Strict: the gateway always pads to a multiple of 4.
Result<std::string> base64_decode(const std::string& text);

/// The smallest key greater than every key starting with `prefix` (etcd's range_end for a prefix).
std::string prefix_range_end(const std::string& prefix);

/// The first 120 characters of `text` on one line (for error messages).
std::string excerpt(const std::string& text);

/// One answer (HTTP `status`, `body`) of a member that was reachable and not unavailable (not 502, 503 or
/// 504): the answer's JSON object, or the error it reports (Error::code ENOENT for gRPC NOT_FOUND, else
/// EPROTO; none for a body that is not a gateway answer). Streaming methods answer one object per line:
/// the first line counts.
Result<nlohmann::json> parse_answer(const std::string& endpoint, int status, const std::string& body);

/// The lease ID of a /v3/lease/grant answer (EPROTO when missing or malformed).
Result<int64_t> lease_grant_id(const nlohmann::json& answer, const std::string& endpoint);
/// The remaining TTL of a /v3/lease/keepalive answer, 0 when absent (the lease is gone).
Result<int64_t> keep_alive_ttl(const nlohmann::json& answer, const std::string& endpoint);
/// The keys and values of a /v3/kv/range answer (none when "kvs" is absent).
Result<std::vector<EtcdKeyValue>> range_key_values(const nlohmann::json& answer, const std::string& endpoint);
/// The store revision of an answer's "header" (0 when absent).
Result<int64_t> header_revision(const nlohmann::json& answer, const std::string& endpoint);

/// One event of a watch: a key put (created or changed) or deleted (also by its lease expiring).
struct WatchEvent {
  enum class Type : uint8_t { kPut, kDelete };
  Type type = Type::kPut;
  EtcdKeyValue kv;  ///< a delete carries the key and its mod_revision (the revision of the delete)
};

/// One message of a /v3/watch stream (a JSON object per line: {"result": {...}} or {"error": {...}}).
struct WatchMessage {
  int64_t header_revision = 0;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;  ///< > 0: the start revision was compacted away; read everything again
  std::string cancel_reason;
  std::vector<WatchEvent> events;
};
/// Reads one line of a watch stream. An {"error": ...} line is an error (EPROTO).
Result<WatchMessage> watch_message(const std::string& line, const std::string& endpoint);

}  // namespace hubprobe::etcd_gateway
