// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

namespace hubprobe {
namespace {

// civetweb reports start-up failures (the bind error among them) only through the log callback, on
// the thread that calls mg_start2: collect them there to build the error value.
thread_local std::vector<std::string>* start_log = nullptr;

void init_civetweb_once() {
  static std::once_flag once;
  // Never paired with mg_exit_library: prometheus-cpp's exposer may share the same library.
  std::call_once(once, [] { mg_init_library(0); });
}

// "cannot bind to 127.0.0.1:9862: 98 (Address already in use)" → 98; 0 when there is no such number.
int errno_in(std::string_view message) {
  for (size_t colon = message.find(": "); colon != std::string_view::npos; colon = message.find(": ", colon + 1)) {
    size_t i = colon + 2;
    int value = 0;
    size_t digits = 0;
    while (i < message.size() && std::isdigit(static_cast<unsigned char>(message[i])) != 0 && digits < 5) {
      value = value * 10 + (message[i] - '0');
      ++i;
      ++digits;
    }
    if (digits > 0 && message.substr(i, 2) == " (" && value > 0) return value;
  }
  return 0;
}

std::string lowercase_first(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

// "Tue, 24 Nov 2026 08:43:00 GMT" (RFC 9110 IMF-fixdate).
std::string http_date() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[64];
  const size_t length = std::strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return std::string(text, length);
}

// The whole response in one piece. Not through civetweb's mg_response_header_* functions: the Debian
// build formats their Date header with gmtime(), whose static buffer concurrent workers share.
std::string header_text(std::string text) {
  std::erase_if(text, [](char c) { return c == '\r' || c == '\n'; });
  return text;
}

std::string format_response(const char* reason, const HttpResponse& response, bool with_body, const char* allow,
                            const char* authenticate) {
  const bool not_modified = response.status == 304;  // no body, and nothing that describes one
  std::string message =
      "HTTP/1.1 " + std::to_string(response.status) + " " + (reason != nullptr ? reason : "") + "\r\n";
  message += "Date: " + http_date() + "\r\n";
  if (!not_modified) {
    message += "Content-Type: " + header_text(response.content_type) + "\r\n";
    message += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  }
  bool cache_control = false;
  for (const auto& [name, value] : response.headers) {
    message += header_text(name) + ": " + header_text(value) + "\r\n";
    cache_control = cache_control || strcasecmp(name.c_str(), "Cache-Control") == 0;
  }
  if (!cache_control) message += "Cache-Control: no-store\r\n";
  if (not_modified) with_body = false;
  if (allow != nullptr) message += std::string("Allow: ") + allow + "\r\n";
  if (authenticate != nullptr) message += std::string("WWW-Authenticate: ") + authenticate + "\r\n";
  message += "Connection: close\r\n\r\n";  // keep-alive is off (see start())
  if (with_body) message += response.body;
  return message;
}

constexpr const char* kChallenge = "Basic realm=\"hubprobe\"";

// One request header into `headers` (lower-case names; repeated headers joined with ", ").
void add_header(std::map<std::string, std::string>& headers, std::string name, std::string_view value) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  auto [it, inserted] = headers.emplace(name, std::string(value));
  if (!inserted) it->second += ", " + std::string(value);
}

HttpResponse plain(int status, std::string body) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::move(body)};
}

// RFC 4648 base64, padding optional; nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  size_t end = text.size();
  while (end > 0 && text[end - 1] == '=') --end;
  if (text.size() - end > 2) return std::nullopt;
  for (size_t i = 0; i < end; ++i) {
    const char c = text[i];
    uint32_t value = 0;
    if (c >= 'A' && c <= 'Z') {
      value = static_cast<uint32_t>(c - 'A');
    } else if (c >= 'a' && c <= 'z') {
      value = static_cast<uint32_t>(c - 'a' + 26);
    } else if (c >= '0' && c <= '9') {
      value = static_cast<uint32_t>(c - '0' + 52);
    } else if (c == '+') {
      value = 62;
    } else if (c == '/') {
      value = 63;
    } else {
      return std::nullopt;
    }
    bits = (bits << 6) | value;
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

// bcrypt of `password` with the salt and cost of `hash` (libxcrypt); true when it gives `hash`. The
// comparison takes the same time wherever the two differ.
bool bcrypt_matches(const std::string& password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();
  const char* computed = crypt_rn(password.c_str(), hash.c_str(), data.get(), static_cast<int>(sizeof(crypt_data)));
  if (computed == nullptr) return false;
  const size_t length = std::strlen(computed);
  return length == hash.size() && CRYPTO_memcmp(computed, hash.data(), length) == 0;
}

std::string hmac(const std::string& key, const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(text.data()),
       text.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

// Opens and drops a TCP connection to `address` (its loopback when it is a wildcard); errors ignored.
void knock(const SocketAddress& address) {
  SocketAddress target = address;
  if (address.host() == "0.0.0.0") {
    target = *SocketAddress::parse("127.0.0.1", address.port());
  } else if (address.host() == "::") {
    target = *SocketAddress::parse("::1", address.port());
  }
  const int fd = socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  (void)connect(fd, target.sockaddr_ptr(), target.length());
  close(fd);
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& listen, int threads, const WebConfig& web) {
  auto address = SocketAddress::parse(listen, 0);
  if (!address) return make_error("cannot listen on " + listen + ": " + address.error().message, EINVAL);
  return start(*address, threads, web);
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const SocketAddress& listen, int threads, const WebConfig& web) {
  const std::string where = listen.to_string();
  if (!listen.valid()) return make_error("cannot listen on " + where + ": not an IPv4 or IPv6 address", EINVAL);
  if (threads < 1) return make_error("cannot listen on " + where + ": need at least one HTTP thread", EINVAL);
  init_civetweb_once();
  if (listen.is_v6() && mg_check_feature(MG_FEATURES_IPV6) == 0) {
    return make_error("cannot listen on " + where +
                          ": IPv6 is not supported by the civetweb library in use (Debian 12 builds it "
                          "without); use an IPv4 address such as 127.0.0.1 or 0.0.0.0",
                      EAFNOSUPPORT);
  }

  std::unique_ptr<HttpServer> server(new HttpServer());
  server->tls_ = web.tls;
  unsigned char key[32];
  if (RAND_bytes(key, sizeof(key)) != 1) return make_error("cannot listen on " + where + ": no random octets", EIO);
  server->verified_key_.assign(reinterpret_cast<const char*>(key), sizeof(key));
  server->set_basic_auth_users(web.basic_auth_users);
  if (web.tls) {
    if (auto started = server->start_tls(listen, threads); !started) return started.error();
    return server;
  }
  // civetweb's own syntax: "ADDR:PORT" for IPv4, "[ADDR]:PORT" for IPv6 (the same as to_string()).
  const std::string ports = where;
  const std::string thread_count = std::to_string(threads);
  // No document_root: nothing but our handlers is ever served. A request that does not arrive within
  // 10 s frees its worker, so a slow client cannot hold the scrape endpoint.
  const char* options[] = {
      "listening_ports",   ports.c_str(), "num_threads", thread_count.c_str(), "request_timeout_ms", "10000",
      "enable_keep_alive", "no",          nullptr};
  mg_callbacks callbacks{};
  callbacks.begin_request = &HttpServer::on_request;
  callbacks.log_message = &HttpServer::on_log;
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = options;
  unsigned error_code = 0;
  char error_text[256] = "";
  mg_error_data error{};
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);

  std::vector<std::string> messages;
  start_log = &messages;
  server->context_ = mg_start2(&init, &error);
  start_log = nullptr;

  if (server->context_ == nullptr) {
    for (const std::string& message : messages) {
      if (const int code = errno_in(message); code != 0) {
        return make_error("cannot listen on " + where + ": " + lowercase_first(std::strerror(code)), code);
      }
    }
    std::string detail = error_text[0] != '\0' ? error_text : "civetweb failed to start";
    for (const std::string& message : messages) {
      if (message != detail) detail += "; " + message;
    }
    return make_error("cannot listen on " + where + ": " + detail);
  }

  mg_server_port bound[4]{};
  const int count = mg_get_server_ports(server->context_, 4, bound);
  server->address_ = listen;
  server->port_ = listen.port();
  if (count >= 1 && bound[0].port > 0 && bound[0].port <= 65535) {
    server->port_ = static_cast<uint16_t>(bound[0].port);
    server->address_.set_port(server->port_);
  }
  return server;
}

HttpServer::~HttpServer() {
  stop_tls();
  if (context_ == nullptr) return;
  // mg_stop joins the workers, so no handler runs after it. Its listener thread notices the stop only
  // when poll() returns, every 2 s or on a new connection: knock until it is done to stop promptly.
  std::atomic<bool> stopped{false};
  std::thread stopper([this, &stopped] {
    mg_stop(context_);
    stopped = true;
  });
  while (!stopped) {
    knock(address_);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stopper.join();
}

void HttpServer::handle(const std::string& path, HttpHandler handler) {
  handle(path, std::move(handler), HttpMethods{});
}

void HttpServer::handle(const std::string& path, HttpHandler handler, HttpMethods methods) {
  methods.max_body = std::min(methods.max_body, kMaxHttpRequestBody);
  std::lock_guard lock(mutex_);
  if (handler) {
    handlers_[path] = std::make_shared<const Route>(Route{std::move(handler), methods});
  } else {
    handlers_.erase(path);
  }
}

void HttpServer::set_log_sink(HttpLogSink sink) {
  std::lock_guard lock(mutex_);
  log_sink_ = sink ? std::make_shared<const HttpLogSink>(std::move(sink)) : nullptr;
}

void HttpServer::set_basic_auth_users(const std::map<std::string, std::string>& users) {
  std::shared_ptr<Users> next;
  if (!users.empty()) {
    next = std::make_shared<Users>();
    next->hashes.insert(users.begin(), users.end());
  }
  std::lock_guard lock(mutex_);
  users_ = std::move(next);
}

// Basic auth as exporter-toolkit does it: every path; an unknown user costs a bcrypt round too, so the
// time of a refusal does not tell which users exist.
bool HttpServer::authorized(const char* header) {
  std::shared_ptr<Users> users;
  {
    std::lock_guard lock(mutex_);
    users = users_;
  }
  if (!users) return true;
  if (header == nullptr) return false;
  std::string_view value(header);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (value.size() < 6 || strncasecmp(value.data(), "basic ", 6) != 0) return false;
  value.remove_prefix(6);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  const auto decoded = base64_decode(value);
  if (!decoded) return false;
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return false;
  const std::string user = decoded->substr(0, colon);
  const std::string password = decoded->substr(colon + 1);
  const std::string mac = hmac(verified_key_, *decoded);
  const auto hash = users->hashes.find(user);
  {
    std::lock_guard lock(mutex_);
    if (auto it = users->verified.find(user); hash != users->hashes.end() && it != users->verified.end() &&
                                              it->second.size() == mac.size() &&
                                              CRYPTO_memcmp(it->second.data(), mac.data(), mac.size()) == 0) {
      return true;
    }
  }
  const bool known = hash != users->hashes.end();
  const bool matches = bcrypt_matches(password, known ? hash->second : users->hashes.begin()->second) && known;
  if (matches) {
    std::lock_guard lock(mutex_);
    users->verified[user] = mac;
  }
  return matches;
}

void HttpServer::log(const std::string& message) {
  std::shared_ptr<const HttpLogSink> sink;
  {
    std::lock_guard lock(mutex_);
    sink = log_sink_;
  }
  if (sink) {
    (*sink)(message);
  } else {
    std::fprintf(stderr, "http server: %s\n", message.c_str());
  }
}

int HttpServer::on_log(const mg_connection* conn, const char* message) {
  std::string text = message != nullptr ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (start_log != nullptr) {
    start_log->push_back(std::move(text));
    return 1;
  }
  mg_context* context = conn != nullptr ? mg_get_context(conn) : nullptr;
  auto* server = context != nullptr ? static_cast<HttpServer*>(mg_get_user_data(context)) : nullptr;
  if (server != nullptr) {
    server->log(text);
  } else {
    std::fprintf(stderr, "http server: %s\n", text.c_str());
  }
  return 1;  // handled: civetweb writes nothing itself
}

int HttpServer::on_request(mg_connection* conn) {
  auto* server = static_cast<HttpServer*>(mg_get_user_data(mg_get_context(conn)));
  if (server == nullptr) return 0;
  return server->serve(conn);
}

int HttpServer::serve(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  HttpRequest request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  request.path = info->local_uri != nullptr ? info->local_uri : "";
  request.query = info->query_string != nullptr ? info->query_string : "";
  request.remote_addr = info->remote_addr;
  for (int i = 0; i < info->num_headers; ++i) {
    if (info->http_headers[i].name == nullptr || info->http_headers[i].value == nullptr) continue;
    add_header(request.headers, info->http_headers[i].name, info->http_headers[i].value);
  }
  const int64_t content_length = info->content_length;
  if (content_length > 0 && static_cast<uint64_t>(content_length) <= kMaxHttpRequestBody) {
    request.body.resize(static_cast<size_t>(content_length));
    size_t got = 0;
    while (got < request.body.size()) {
      const int n = mg_read(conn, request.body.data() + got, request.body.size() - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    request.body.resize(got);
  }
  const Outcome outcome = respond(request, mg_get_header(conn, "Authorization"), content_length);
  const std::string message =
      format_response(mg_get_response_code_text(conn, outcome.response.status), outcome.response,
                      request.method != "HEAD", outcome.allow, outcome.challenge ? kChallenge : nullptr);
  mg_write(conn, message.data(), message.size());
  return outcome.response.status;
}

HttpServer::Outcome HttpServer::respond(const HttpRequest& request, const char* authorization, int64_t content_length) {
  Outcome outcome;
  HttpResponse& response = outcome.response;
  if (!authorized(authorization)) {
    // No path, user or password in the log: the first two could be anything a client sends.
    log("401 from " + request.remote_addr);
    response = plain(401, "unauthorized\n");
    outcome.challenge = true;
    return outcome;
  }
  std::shared_ptr<const Route> route;
  {
    std::lock_guard lock(mutex_);
    if (auto it = handlers_.find(request.path); it != handlers_.end()) route = it->second;
  }
  const bool get = request.method == "GET" || request.method == "HEAD";
  const bool post = request.method == "POST";
  if (!route) {
    response = plain(404, "not found: " + request.path + "\n");
  } else if (!(get && route->methods.get) && !(post && route->methods.post)) {
    outcome.allow = route->methods.get && route->methods.post ? "GET, HEAD, POST"
                    : route->methods.post                     ? "POST"
                                                              : "GET, HEAD";
    response = plain(405, "method not allowed: " + request.method + " (" + outcome.allow + ")\n");
  } else if (post && content_length < 0) {
    response = plain(411, "a POST needs a Content-Length\n");
  } else if (post && static_cast<uint64_t>(content_length) > route->methods.max_body) {
    response = plain(413, "request body larger than " + std::to_string(route->methods.max_body) + " octets\n");
  } else if (post && request.body.size() != static_cast<size_t>(content_length)) {
    response = plain(400, "request body shorter than its Content-Length\n");
  } else {
    try {
      response = route->handler(request);
    } catch (const std::exception& e) {
      response = plain(500, std::string("internal error: ") + e.what() + "\n");
    } catch (...) {
      response = plain(500, "internal error\n");
    }
    if (response.status < 100 || response.status > 999) {
      response = plain(500, "internal error: handler returned status " + std::to_string(response.status) + "\n");
    }
  }
  return outcome;
}

// ---- the TLS listener --------------------------------------------------------------------------------

namespace {

constexpr size_t kMaxRequestHead = 16 * 1024;  // request line and headers; far more than a scrape sends
constexpr int kTlsTimeoutSeconds = 10;         // handshake, request and response each: as civetweb's 10 s

std::string tls_reason() {
  std::string reason;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    reason = text;
  }
  return reason.empty() ? "connection closed" : reason;
}

// "%2Fa" -> "/a"; a bad escape is kept as written.
std::string url_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) != 0 &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2])) != 0) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
  }
}

}  // namespace

Result<void> HttpServer::start_tls(const SocketAddress& listen, int threads) {
  const std::string where = listen.to_string();
  ssl_context_ = SSL_CTX_new(TLS_server_method());
  if (ssl_context_ == nullptr) return make_error("cannot listen on " + where + ": " + tls_reason(), ENOMEM);
  if (auto configured = configure_tls_context(ssl_context_, *tls_); !configured) {
    return make_error("cannot listen on " + where + ": " + configured.error().message, EINVAL);
  }
  const int fd = ::socket(listen.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error("cannot listen on " + where + ": socket");
  const int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, listen.sockaddr_ptr(), listen.length()) != 0 || ::listen(fd, 128) != 0) {
    const int code = errno;
    ::close(fd);
    return make_error("cannot listen on " + where + ": " + lowercase_first(std::strerror(code)), code);
  }
  tls_fd_ = fd;
  address_ = listen;
  port_ = listen.port();
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    address_.set_port(port_);
  }
  for (int i = 0; i < threads; ++i) tls_workers_.emplace_back([this] { tls_worker(); });
  return {};
}

void HttpServer::stop_tls() {
  if (tls_fd_ >= 0) {
    tls_stopping_ = true;
    // Wakes the workers blocked in accept() (EINVAL on Linux); one serving a connection finishes it first
    // (at most the 10 s timeouts).
    ::shutdown(tls_fd_, SHUT_RDWR);
    for (std::thread& worker : tls_workers_) worker.join();
    tls_workers_.clear();
    ::close(tls_fd_);
    tls_fd_ = -1;
  }
  if (ssl_context_ != nullptr) SSL_CTX_free(ssl_context_);
  ssl_context_ = nullptr;
}

void HttpServer::tls_worker() {
  // A client gone mid-response must not kill the process: SIGPIPE stays pending on this thread instead,
  // and the write fails with EPIPE.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  while (!tls_stopping_) {
    sockaddr_storage peer{};
    socklen_t length = sizeof(peer);
    const int fd = ::accept4(tls_fd_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC);
    if (fd < 0) {
      if (tls_stopping_) break;
      if (errno != EINTR && errno != ECONNABORTED) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    char host[INET6_ADDRSTRLEN] = "";
    if (peer.ss_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, host, sizeof(host));
    } else if (peer.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&peer)->sin6_addr, host, sizeof(host));
    }
    timeval timeout{kTlsTimeoutSeconds, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    serve_tls(fd, host);
    ::close(fd);
  }
}

void HttpServer::serve_tls(int fd, const std::string& remote) {
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ssl_context_), &SSL_free);
  if (!ssl) return;
  ERR_clear_error();
  SSL_set_fd(ssl.get(), fd);
  if (SSL_accept(ssl.get()) != 1) {
    log("TLS handshake with " + remote + " failed: " + tls_reason());
    return;
  }
  std::string head;
  char buffer[4096];
  size_t end = std::string::npos;
  while ((end = head.find("\r\n\r\n")) == std::string::npos && head.size() < kMaxRequestHead) {
    const int got = SSL_read(ssl.get(), buffer, sizeof(buffer));
    if (got <= 0) {
      log("TLS read from " + remote + " failed: " + tls_reason());
      return;
    }
    head.append(buffer, static_cast<size_t>(got));
  }
  HttpRequest request;
  request.remote_addr = remote;
  std::string authorization;
  bool has_authorization = false;
  int64_t content_length = -1;
  Outcome outcome;
  bool valid = end != std::string::npos;
  if (valid) {
    std::istringstream lines(head.substr(0, end));
    std::string line;
    std::getline(lines, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream first(line);
    std::string target, version;
    first >> request.method >> target >> version;
    valid = !request.method.empty() && !target.empty() && target.front() == '/' && version.rfind("HTTP/1.", 0) == 0;
    const size_t question = target.find('?');
    request.path = url_decode(target.substr(0, question));
    if (question != std::string::npos) request.query = target.substr(question + 1);
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      if (strncasecmp(line.c_str(), "authorization", colon) == 0 && colon == 13) {
        size_t start = colon + 1;
        while (start < line.size() && line[start] == ' ') ++start;
        authorization = line.substr(start);
        has_authorization = true;
      }
      add_header(request.headers, line.substr(0, colon), std::string_view(line).substr(colon + 1));
    }
    if (auto it = request.headers.find("content-length"); it != request.headers.end()) {
      int64_t length = 0;
      const auto [last, error] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), length);
      valid = error == std::errc() && last == it->second.data() + it->second.size() && length >= 0;
      content_length = length;
    }
  }
  if (valid && content_length > 0 && static_cast<uint64_t>(content_length) <= kMaxHttpRequestBody) {
    request.body = head.substr(end + 4);
    while (request.body.size() < static_cast<size_t>(content_length)) {
      const int got = SSL_read(ssl.get(), buffer, sizeof(buffer));
      if (got <= 0) break;
      request.body.append(buffer, static_cast<size_t>(got));
    }
    if (request.body.size() > static_cast<size_t>(content_length))
      request.body.resize(static_cast<size_t>(content_length));
  }
  if (valid) {
    outcome = respond(request, has_authorization ? authorization.c_str() : nullptr, content_length);
  } else {
    outcome.response = plain(400, "bad request\n");
  }
  const std::string message =
      format_response(reason_phrase(outcome.response.status), outcome.response, request.method != "HEAD", outcome.allow,
                      outcome.challenge ? kChallenge : nullptr);
  size_t sent = 0;
  while (sent < message.size()) {
    const int wrote = SSL_write(ssl.get(), message.data() + sent, static_cast<int>(message.size() - sent));
    if (wrote <= 0) {
      log("TLS write to " + remote + " failed: " + tls_reason());
      return;
    }
    sent += static_cast<size_t>(wrote);
  }
  (void)SSL_shutdown(ssl.get());
}

}  // namespace hubprobe
