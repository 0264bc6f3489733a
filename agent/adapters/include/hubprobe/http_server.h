// SPDX-License-Identifier: Apache-2.0
// The daemon's small HTTP server (/metrics, /healthz, /status; `hubprobe costmap`'s ALTO resources) over
// civetweb: one listen address, GET and HEAD, and POST with a bounded body where a handler asks for it,
// handlers registered by exact path. Start-up failures (port in use, bad address) come
// back as errors, never as output on stderr or an abort.
//
// With a web configuration (hubprobe/web_config.h) the listener speaks TLS only (its certificate, key,
// versions and client certificate policy; a listener of its own over OpenSSL, civetweb serves plain HTTP
// only), and every request, whatever its path, needs a user and
// password of basic_auth_users: 401 with `WWW-Authenticate: Basic realm="hubprobe"` otherwise.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "hubprobe/net.h"
#include "hubprobe/result.h"
#include "hubprobe/web_config.h"

struct mg_context;
struct mg_connection;

namespace hubprobe {

struct HttpRequest {
  std::string method;       ///< "GET" or "HEAD", or "POST" for a handler that takes it (others never reach one)
  std::string path;         ///< decoded, without the query string, e.g. "/metrics"
  std::string query;        ///< raw query string without '?', empty when none
  std::string remote_addr;  ///< peer address as text, for logs
  /// Request headers by lower-case name ("if-none-match", "accept", "content-type"); a repeated header's
  /// values joined with ", " (RFC 9110 section 5.3).
  std::map<std::string, std::string> headers;
  std::string body;  ///< POST only: the whole body (at most the handler's max_body octets)

  /// The header's value, empty when absent.
  std::string header(const std::string& lower_case_name) const {
    const auto it = headers.find(lower_case_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpResponse {
  HttpResponse() = default;
  // A constructor rather than aggregate initialization, so HttpResponse{status, type, body} stays short.
  HttpResponse(int status_code, std::string type, std::string text,
               std::vector<std::pair<std::string, std::string>> more_headers = {})
      : status(status_code), content_type(std::move(type)), body(std::move(text)), headers(std::move(more_headers)) {}
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  /// More headers ("ETag", "Vary", ...). A "Cache-Control" here replaces the default "no-store". A 304
  /// goes out without body, Content-Type and Content-Length.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// What a handler accepts beyond GET and HEAD.
struct HttpMethods {
  bool get = true;    ///< GET and HEAD
  bool post = false;  ///< POST with a Content-Length of at most max_body (413 beyond, 411 without)
  size_t max_body = 64 * 1024;
};

/// The largest request body the server reads for any handler.
inline constexpr size_t kMaxHttpRequestBody = 1 << 20;

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
  /// `web`: TLS and basic auth (default: neither). Its TLS part is fixed for the server's life; an error
  /// configuring it is an error here (load_web_config has checked it, so it should not happen).
  static Result<std::unique_ptr<HttpServer>> start(const std::string& listen, int threads, const WebConfig& web = {});
  static Result<std::unique_ptr<HttpServer>> start(const SocketAddress& listen, int threads, const WebConfig& web = {});

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Serves GET and HEAD of exactly `path` (e.g. "/metrics") with `handler`; replaces an earlier
  /// handler of the same path; an empty handler removes it. Other methods on a known path get 405 with
  /// "Allow: GET, HEAD"; unknown paths get 404.
  void handle(const std::string& path, HttpHandler handler);
  /// The same with other methods: e.g. {.get = false, .post = true} for a POST-only resource (405 with
  /// "Allow: POST" for the others). max_body is capped at kMaxHttpRequestBody.
  void handle(const std::string& path, HttpHandler handler, HttpMethods methods);

  void set_log_sink(HttpLogSink sink);

  /// Replaces basic_auth_users (user -> bcrypt hash; empty: no authentication) while serving: a reload
  /// that changes only the users does not restart the listener.
  void set_basic_auth_users(const std::map<std::string, std::string>& users);

  /// True when the listener speaks TLS.
  bool tls() const { return tls_.has_value(); }

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
  /// True when `authorization` (the Authorization header, null when none) carries the user and password
  /// of one of the users, or there are none.
  bool authorized(const char* authorization);
  struct Outcome {
    HttpResponse response;
    const char* allow = nullptr;  ///< the Allow header of a 405
    bool challenge = false;       ///< a 401: send WWW-Authenticate
  };
  struct Route {
    HttpHandler handler;
    HttpMethods methods;
  };
  /// What any request gets, over civetweb or the TLS listener alike. `content_length`: of the request
  /// (-1 when it had none); the body was read only when it is at most kMaxHttpRequestBody.
  Outcome respond(const HttpRequest& request, const char* authorization, int64_t content_length);

  // The TLS listener, over OpenSSL. Not civetweb's: Debian 12's civetweb 1.15 loads libssl with
  // dlopen and looks up OpenSSL 1.1 names (SSL_get_peer_certificate) that OpenSSL 3 no longer exports,
  // so its TLS cannot start (or crashes on the first connection). `threads` workers accept on one socket,
  // each serving one connection at a time (HTTP/1.x, one request, then close).
  Result<void> start_tls(const SocketAddress& listen, int threads);
  void stop_tls();
  void tls_worker();
  void serve_tls(int fd, const std::string& remote);

  struct Users {
    std::map<std::string, std::string, std::less<>> hashes;  // user -> bcrypt hash
    /// HMAC-SHA-256 under verified_key_ of "user:password" pairs bcrypt accepted: the next request of
    /// the same pair costs no bcrypt round (cost 10 is ~50 ms of CPU, every scrape).
    std::map<std::string, std::string, std::less<>> verified;
  };

  mg_context* context_ = nullptr;
  SocketAddress address_;
  uint16_t port_ = 0;
  std::optional<WebTlsConfig> tls_;
  ssl_ctx_st* ssl_context_ = nullptr;  // the TLS listener's
  int tls_fd_ = -1;
  std::atomic<bool> tls_stopping_{false};
  std::vector<std::thread> tls_workers_;
  std::mutex mutex_;  // guards handlers_, log_sink_ and users_
  std::map<std::string, std::shared_ptr<const Route>, std::less<>> handlers_;
  std::shared_ptr<const HttpLogSink> log_sink_;
  std::shared_ptr<Users> users_;  // null: no authentication
  std::string verified_key_;      // random, for Users::verified
};

}  // namespace hubprobe
