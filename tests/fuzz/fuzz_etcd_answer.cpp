// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for what the etcd v3 JSON gateway answers (etcd_answers.h, behind EtcdClient): the
// input's first octet picks the HTTP status, the rest is the body. Any answer gives a value or an error
// naming the endpoint, never a crash or an escaping exception, through every method's reader (lease
// grant, keepalive, range, a watch stream's line). Also: base64 as the gateway carries keys and values round-trips any
// octets, and a prefix's range end is greater than every key starting with the prefix.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "hubprobe/etcd_answers.h"

namespace {

using namespace hubprobe;

constexpr int kStatuses[] = {200, 200, 200, 200, 400, 404, 500, 501, 401, 200};
const std::string kEndpoint = "http://198.18.0.254:2379";

bool names_endpoint(const Error& error) { return error.message.rfind("etcd " + kEndpoint + ": ", 0) == 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int status = kStatuses[data[0] % (sizeof(kStatuses) / sizeof(kStatuses[0]))];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);

  const auto answer = etcd_gateway::parse_answer(kEndpoint, status, body);
  if (!answer) {
    if (!names_endpoint(answer.error())) abort();
  } else {
    if (!answer->is_object() || status != 200 || answer->contains("error")) abort();
    const auto id = etcd_gateway::lease_grant_id(*answer, kEndpoint);
    if (id ? *id == 0 : (!names_endpoint(id.error()) || id.error().code != EPROTO)) abort();
    const auto ttl = etcd_gateway::keep_alive_ttl(*answer, kEndpoint);
    if (ttl ? *ttl < 0 : (!names_endpoint(ttl.error()) || ttl.error().code != EPROTO)) abort();
    const auto kvs = etcd_gateway::range_key_values(*answer, kEndpoint);
    if (!kvs && (!names_endpoint(kvs.error()) || kvs.error().code != EPROTO)) abort();
  }

  // A line of a watch stream (hubprobe costmap's watch): a message or an error naming the endpoint.
  const auto message = etcd_gateway::watch_message(body, kEndpoint);
  if (!message && (!names_endpoint(message.error()) || message.error().code != EPROTO)) abort();

  // Keys and values: any octets survive the gateway's base64; decoding any text never throws.
  const std::string encoded = etcd_gateway::base64_encode(body);
  const auto decoded = etcd_gateway::base64_decode(encoded);
  if (!decoded || *decoded != body) abort();
  (void)etcd_gateway::base64_decode(body);

  const std::string end = etcd_gateway::prefix_range_end(body);
  if (!(end.size() == 1 && end[0] == '\0') && !(body < end && body.substr(0, end.size()) < end)) abort();
  return 0;
}
