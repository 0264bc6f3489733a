// SPDX-License-Identifier: Apache-2.0
// The daemon's small HTTP server (/metrics, /healthz, /status) over civetweb: one listen address, GET
// and HEAD only, handlers registered by exact path. Start-up failures (port in use, bad address) come
// back as errors, never as output on stderr or an abort.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "hubprobe/net.h"
#include "hubprobe/result.h"

struct mg_context;
struct mg_connection;

namespace hubprobe {

struct HttpRequest {
  std::string method;       ///< "GET" or "HEAD" (others never reach a handler)
  std::string path;         ///< decoded, without the query string, e.g. "/metrics"
  std::string query;        ///< raw query string without '?', empty when none
  std::string remote_addr;  ///< peer address as text, for logs
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

/// Handlers run on civetweb's worker threads, possibly several at once: they must be thread-safe.
/// An exception escaping a handler becomes a 500 with its message.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

/// Where civetweb's run-time messages go (a client that vanished mid-response, ...). Called from worker
/// threads. Default: stderr, prefixed "http server: ".
using HttpLogSink = std::function<void(const std::string& message)>;

/// Thread-safe: handle() and set_log_sink() may be called from any thread, before or after start, while
/// requests are served. The destructor stops the server and waits for running handlers to return, so
/// whatever the handlers capture must outlive it.
class HttpServer {
 public:
  /// Listens on `listen`: "127.0.0.1:9862", "0.0.0.0:9862", "[::1]:9862" (IPv6 only when the civetweb
  /// library was built with IPv6; Debian 12's is not, and the error says so). Port 0, or no port,
  /// picks a free port: see port(). `threads` = civetweb worker threads (at least 1); each serves one
  /// connection at a time. Errors: "cannot listen on 127.0.0.1:9862: address already in use"
  /// (code EADDRINUSE), an unparsable address, an IPv6 address without IPv6 support.
  static Result<std::unique_ptr<HttpServer>> start(const std::string& listen, int threads);
  static Result<std::unique_ptr<HttpServer>> start(const SocketAddress& listen, int threads);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Serves GET and HEAD of exactly `path` (e.g. "/metrics") with `handler`; replaces an earlier
  /// handler of the same path; an empty handler removes it. Other methods on a known path get 405 with
  /// "Allow: GET, HEAD"; unknown paths get 404.
  void handle(const std::string& path, HttpHandler handler);

  void set_log_sink(HttpLogSink sink);

  /// The port actually bound (the kernel's choice when started with port 0).
  uint16_t port() const { return port_; }
  /// The address actually bound, e.g. "127.0.0.1:41234".
  const SocketAddress& address() const { return address_; }

 private:
  HttpServer() = default;
  static int on_request(mg_connection* conn);
  static int on_log(const mg_connection* conn, const char* message);
  int serve(mg_connection* conn);
  void log(const std::string& message);

  mg_context* context_ = nullptr;
  SocketAddress address_;
  uint16_t port_ = 0;
  std::mutex mutex_;  // guards handlers_ and log_sink_
  std::map<std::string, std::shared_ptr<const HttpHandler>, std::less<>> handlers_;
  std::shared_ptr<const HttpLogSink> log_sink_;
};

}  // namespace hubprobe
