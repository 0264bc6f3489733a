// SPDX-License-Identifier: Apache-2.0
// Internal: one blocking HTTP(S) POST over libcurl, shared by the HTTP sink and the etcd client.
// A Poster owns a curl easy handle, so consecutive requests of one thread reuse the connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "hubprobe/result.h"

namespace hubprobe::detail {

/// TLS material for https URLs (all optional).
struct TlsFiles {
  std::string ca_file;           ///< verify the server with this CA bundle instead of the system's
  std::string client_cert_file;  ///< mTLS client certificate (PEM)
  std::string client_key_file;   ///< mTLS client key (PEM)
};

struct PostRequest {
  std::string url;
  std::string body;
  std::vector<std::string> headers;  ///< "Name: value"
  int64_t timeout_ns = 2'000'000'000;
  int64_t connect_timeout_ns = 1'000'000'000;
};

struct PostReply {
  long status = 0;  ///< HTTP status code
  std::string body;
};

/// std::chrono::steady_clock in nanoseconds: the time base of the sinks' timers.
int64_t steady_now_ns();

/// Not thread-safe: one Poster per thread (or behind a mutex).
class Poster {
 public:
  explicit Poster(TlsFiles tls);
  ~Poster();
  Poster(const Poster&) = delete;
  Poster& operator=(const Poster&) = delete;

  /// Any HTTP answer is a PostReply (the caller judges the status); a transport failure is an Error
  /// whose message says what happened in lower case: "connection refused", "timed out after 2000 ms".
  /// The request never runs past `abort_at_ns` (steady_now_ns() scale; 0 = no bound): its timeouts are
  /// shortened to fit and it is abandoned (checked about once a second by libcurl) when the bound moves
  /// closer while it runs.
  Result<PostReply> post(const PostRequest& request, const std::atomic<int64_t>* abort_at_ns = nullptr);

  /// A POST whose answer is a stream (etcd's watch): `on_data` gets the answer's octets as they arrive and
  /// returns false to end the transfer. No overall timeout (request.timeout_ns is ignored), only the
  /// connect timeout and TCP keepalives; `stop` (checked about once a second) abandons it. Returns the
  /// HTTP status once the stream ends (the server closed it, or on_data ended it), or the transport error
  /// (ECANCELED after `stop`).
  Result<long> post_stream(const PostRequest& request, const std::function<bool(std::string_view)>& on_data,
                           const std::atomic<bool>& stop);

 private:
  void* curl_ = nullptr;  // CURL*
  TlsFiles tls_;
};

}  // namespace hubprobe::detail
