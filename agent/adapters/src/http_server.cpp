// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/http_server.h"

#include <civetweb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
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

// Writes the whole response in one piece. Not through civetweb's mg_response_header_* functions: the
// Debian build formats their Date header with gmtime(), whose static buffer concurrent workers share.
void send(mg_connection* conn, const HttpResponse& response, bool with_body, const char* allow = nullptr) {
  std::string content_type = response.content_type;
  std::erase_if(content_type, [](char c) { return c == '\r' || c == '\n'; });
  const char* reason = mg_get_response_code_text(conn, response.status);
  std::string message =
      "HTTP/1.1 " + std::to_string(response.status) + " " + (reason != nullptr ? reason : "") + "\r\n";
  message += "Date: " + http_date() + "\r\n";
  message += "Content-Type: " + content_type + "\r\n";
  message += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  message += "Cache-Control: no-store\r\n";
  if (allow != nullptr) message += std::string("Allow: ") + allow + "\r\n";
  message += "Connection: close\r\n\r\n";  // keep-alive is off (see start())
  if (with_body) message += response.body;
  mg_write(conn, message.data(), message.size());
}

HttpResponse plain(int status, std::string body) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::move(body)};
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

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& listen, int threads) {
  auto address = SocketAddress::parse(listen, 0);
  if (!address) return make_error("cannot listen on " + listen + ": " + address.error().message, EINVAL);
  return start(*address, threads);
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const SocketAddress& listen, int threads) {
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
  std::lock_guard lock(mutex_);
  if (handler) {
    handlers_[path] = std::make_shared<const HttpHandler>(std::move(handler));
  } else {
    handlers_.erase(path);
  }
}

void HttpServer::set_log_sink(HttpLogSink sink) {
  std::lock_guard lock(mutex_);
  log_sink_ = sink ? std::make_shared<const HttpLogSink>(std::move(sink)) : nullptr;
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
  const bool is_head = request.method == "HEAD";

  std::shared_ptr<const HttpHandler> handler;
  {
    std::lock_guard lock(mutex_);
    if (auto it = handlers_.find(request.path); it != handlers_.end()) handler = it->second;
  }
  HttpResponse response;
  const char* allow = nullptr;
  if (!handler) {
    response = plain(404, "not found: " + request.path + "\n");
  } else if (request.method != "GET" && !is_head) {
    response = plain(405, "method not allowed: " + request.method + " (GET or HEAD)\n");
    allow = "GET, HEAD";
  } else {
    try {
      response = (*handler)(request);
    } catch (const std::exception& e) {
      response = plain(500, std::string("internal error: ") + e.what() + "\n");
    } catch (...) {
      response = plain(500, "internal error\n");
    }
    if (response.status < 100 || response.status > 999) {
      response = plain(500, "internal error: handler returned status " + std::to_string(response.status) + "\n");
    }
  }
  send(conn, response, !is_head, allow);
  return response.status;
}

}  // namespace hubprobe
