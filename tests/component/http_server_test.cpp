// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/http_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hubprobe {
namespace {

struct Reply {
  long status = 0;  // 0: no HTTP answer at all (see error)
  std::string body;
  std::string headers;  // raw header block, lower-cased
  std::string error;
};

size_t append(char* data, size_t size, size_t count, void* target) {
  static_cast<std::string*>(target)->append(data, size * count);
  return size * count;
}

// A blocking one-shot HTTP client over libcurl: GET unless `method` says otherwise.
Reply fetch(uint16_t port, const std::string& path, const std::string& method = "GET") {
  static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  Reply reply;
  if (!initialized) {
    reply.error = "curl_global_init failed";
    return reply;
  }
  CURL* curl = curl_easy_init();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &append);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
  if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "x=1");
  } else if (method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  const CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  } else {
    reply.error = curl_easy_strerror(rc);
  }
  curl_easy_cleanup(curl);
  for (char& c : reply.headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return reply;
}

std::unique_ptr<HttpServer> start_or_fail(const std::string& listen = "127.0.0.1:0", int threads = 2) {
  auto server = HttpServer::start(listen, threads);
  if (!server) throw std::runtime_error("HttpServer::start(" + listen + "): " + server.error().message);
  return std::move(server).value();
}

HttpHandler text(std::string body) {
  return [body](const HttpRequest&) { return HttpResponse{200, "text/plain; version=0.0.4", body}; };
}

TEST(HttpServerTest, ServesARegisteredPath) {
  auto server = start_or_fail();
  ASSERT_NE(server->port(), 0);
  EXPECT_EQ(server->address().to_string(), "127.0.0.1:" + std::to_string(server->port()));
  server->handle("/metrics", text("hubprobe_up 1\n"));

  const Reply reply = fetch(server->port(), "/metrics");
  ASSERT_EQ(reply.status, 200) << reply.error;
  EXPECT_EQ(reply.body, "hubprobe_up 1\n");
  EXPECT_NE(reply.headers.find("content-type: text/plain; version=0.0.4"), std::string::npos) << reply.headers;
  EXPECT_NE(reply.headers.find("content-length: 14"), std::string::npos) << reply.headers;
}

TEST(HttpServerTest, HandlerSeesPathAndQuery) {
  auto server = start_or_fail();
  server->handle("/status", [](const HttpRequest& request) {
    return HttpResponse{200, "application/json", request.method + " " + request.path + " ? " + request.query};
  });
  const Reply reply = fetch(server->port(), "/status?peer=hub-b&x=1");
  ASSERT_EQ(reply.status, 200) << reply.error;
  EXPECT_EQ(reply.body, "GET /status ? peer=hub-b&x=1");
}

TEST(HttpServerTest, UnknownPathIs404) {
  auto server = start_or_fail();
  server->handle("/metrics", text("x\n"));
  EXPECT_EQ(fetch(server->port(), "/nothing").status, 404);
  EXPECT_EQ(fetch(server->port(), "/").status, 404);
  EXPECT_EQ(fetch(server->port(), "/metrics/sub").status, 404);  // exact paths, no prefixes
}

TEST(HttpServerTest, OtherMethodsAre405WithAllow) {
  auto server = start_or_fail();
  std::atomic<int> calls{0};
  server->handle("/healthz", [&calls](const HttpRequest&) {
    ++calls;
    return HttpResponse{200, "text/plain", "ok\n"};
  });
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    const Reply reply = fetch(server->port(), "/healthz", method);
    EXPECT_EQ(reply.status, 405) << method << " " << reply.error;
    EXPECT_NE(reply.headers.find("allow: get, head"), std::string::npos) << reply.headers;
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServerTest, HeadSendsHeadersWithoutBody) {
  auto server = start_or_fail();
  server->handle("/healthz", text("ok\n"));
  const Reply reply = fetch(server->port(), "/healthz", "HEAD");
  ASSERT_EQ(reply.status, 200) << reply.error;
  EXPECT_EQ(reply.body, "");
  EXPECT_NE(reply.headers.find("content-length: 3"), std::string::npos) << reply.headers;
}

TEST(HttpServerTest, HandlerStatusAndReplacementAndRemoval) {
  auto server = start_or_fail();
  server->handle("/healthz", [](const HttpRequest&) { return HttpResponse{503, "text/plain", "starting\n"}; });
  Reply reply = fetch(server->port(), "/healthz");
  EXPECT_EQ(reply.status, 503);
  EXPECT_EQ(reply.body, "starting\n");

  server->handle("/healthz", text("ok\n"));
  reply = fetch(server->port(), "/healthz");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "ok\n");

  server->handle("/healthz", nullptr);
  EXPECT_EQ(fetch(server->port(), "/healthz").status, 404);
}

TEST(HttpServerTest, ThrowingHandlerIs500) {
  auto server = start_or_fail();
  server->handle("/status", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("no state yet"); });
  const Reply reply = fetch(server->port(), "/status");
  EXPECT_EQ(reply.status, 500);
  EXPECT_NE(reply.body.find("no state yet"), std::string::npos) << reply.body;
}

TEST(HttpServerTest, ConcurrentRequestsWhileHandlersChange) {
  auto server = start_or_fail("127.0.0.1:0", 4);
  server->handle("/metrics", text("a\n"));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      server->handle("/metrics", text(i % 2 == 0 ? "a\n" : "b\n"));
      server->handle("/other" + std::to_string(i % 8), text("x\n"));
    }
  });
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        const Reply reply = fetch(server->port(), "/metrics");
        if (reply.status == 200 && (reply.body == "a\n" || reply.body == "b\n")) ++good;
      }
    });
  }
  for (auto& client : clients) client.join();
  stop = true;
  writer.join();
  EXPECT_EQ(good.load(), 80);
}

TEST(HttpServerTest, PortInUseIsAnErrorValue) {
  // Hold a listening socket on a kernel-chosen port, then ask the server for that same port.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string where = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  testing::internal::CaptureStderr();
  auto server = HttpServer::start(where, 2);
  const std::string printed = testing::internal::GetCapturedStderr();
  close(fd);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().message, "cannot listen on " + where + ": address already in use");
  EXPECT_EQ(server.error().code, EADDRINUSE);
  EXPECT_EQ(printed, "") << "civetweb must not print on its own";
}

TEST(HttpServerTest, SecondServerOnTheSamePortFails) {
  auto first = start_or_fail();
  auto second = HttpServer::start("127.0.0.1:" + std::to_string(first->port()), 1);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("address already in use"), std::string::npos) << second.error().message;
}

TEST(HttpServerTest, BadAddressesAreErrorValues) {
  for (const char* listen : {"localhost:9862", "127.0.0.1:99999", "", "127.0.0.1:abc"}) {
    auto server = HttpServer::start(listen, 1);
    ASSERT_FALSE(server.ok()) << listen;
    EXPECT_EQ(server.error().message.rfind(std::string("cannot listen on ") + listen, 0), 0) << server.error().message;
  }
  auto no_threads = HttpServer::start("127.0.0.1:0", 0);
  EXPECT_FALSE(no_threads.ok());
}

TEST(HttpServerTest, Ipv6WorksOrSaysWhyNot) {
  auto server = HttpServer::start("[::1]:0", 1);
  if (server.ok()) {
    EXPECT_TRUE((*server)->address().is_v6());
    EXPECT_NE((*server)->port(), 0);
  } else {
    EXPECT_NE(server.error().message.find("IPv6 is not supported"), std::string::npos) << server.error().message;
    EXPECT_EQ(server.error().code, EAFNOSUPPORT);
  }
}

TEST(HttpServerTest, DestructorStopsListening) {
  auto server = start_or_fail();
  server->handle("/healthz", text("ok\n"));
  const uint16_t port = server->port();
  ASSERT_EQ(fetch(port, "/healthz").status, 200);
  server.reset();
  const Reply reply = fetch(port, "/healthz");
  EXPECT_EQ(reply.status, 0);
  EXPECT_FALSE(reply.error.empty());
}

}  // namespace
}  // namespace hubprobe
