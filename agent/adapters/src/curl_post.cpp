// SPDX-License-Identifier: Apache-2.0
#include "curl_post.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "hubprobe_version.h"

namespace hubprobe::detail {
namespace {

// A reply larger than this is cut off as an error: no sink or etcd answer we read comes close.
constexpr size_t kMaxReplyBytes = 64u << 20;

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct ReplyBody {
  std::string* text;
  bool too_large = false;
};

size_t append_reply(char* data, size_t size, size_t count, void* target) {
  auto* body = static_cast<ReplyBody*>(target);
  const size_t bytes = size * count;
  if (body->text->size() + bytes > kMaxReplyBytes) {
    body->too_large = true;
    return 0;  // makes libcurl fail with CURLE_WRITE_ERROR
  }
  body->text->append(data, bytes);
  return bytes;
}

// libcurl calls this about once a second while waiting, more often while data moves.
int check_abort(void* clientp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* abort_at = static_cast<const std::atomic<int64_t>*>(clientp);
  const int64_t bound = abort_at->load(std::memory_order_relaxed);
  return bound > 0 && steady_now_ns() >= bound ? 1 : 0;
}

// "Connection refused" -> "connection refused", but "SSL certificate problem" stays as it is.
std::string lowercase_first(std::string text) {
  if (text.size() >= 2 && std::islower(static_cast<unsigned char>(text[1])) != 0) {
    text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  }
  return text;
}

long to_ms(int64_t ns) { return static_cast<long>(std::max<int64_t>(1, (ns + 999'999) / 1'000'000)); }

struct HeaderList {
  curl_slist* list = nullptr;
  ~HeaderList() { curl_slist_free_all(list); }
  void add(const std::string& header) {
    if (curl_slist* grown = curl_slist_append(list, header.c_str()); grown != nullptr) list = grown;
  }
};

// What every POST of a Poster sets: the request (URL, body, headers), who we are, no proxy from the
// environment, no signals, where libcurl's error text goes, and the TLS files.
void set_post(CURL* curl, const PostRequest& request, const TlsFiles& tls, HeaderList& headers, char* error_buffer) {
  for (const auto& header : request.headers) headers.add(header);
  headers.add("Expect:");  // no "100-continue" round trip for larger bodies
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.list);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "hubprobe/" HUBPROBE_VERSION);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");  // never a proxy from the environment
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  if (!tls.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, tls.ca_file.c_str());
  if (!tls.client_cert_file.empty()) curl_easy_setopt(curl, CURLOPT_SSLCERT, tls.client_cert_file.c_str());
  if (!tls.client_key_file.empty()) curl_easy_setopt(curl, CURLOPT_SSLKEY, tls.client_key_file.c_str());
}

}  // namespace

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Poster::Poster(TlsFiles tls) : tls_(std::move(tls)) {
  init_curl_once();
  curl_ = curl_easy_init();
}

Poster::~Poster() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

Result<PostReply> Poster::post(const PostRequest& request, const std::atomic<int64_t>* abort_at_ns) {
  CURL* curl = static_cast<CURL*>(curl_);
  if (curl == nullptr) return make_error("cannot initialise libcurl");
  // A zero timeout means "none" to libcurl: never hand it one.
  int64_t timeout_ns = std::max<int64_t>(request.timeout_ns, 1'000'000);
  int64_t connect_timeout_ns = std::clamp<int64_t>(request.connect_timeout_ns, 1'000'000, timeout_ns);
  const int64_t bound = abort_at_ns != nullptr ? abort_at_ns->load() : 0;
  if (bound > 0) {
    const int64_t left = bound - steady_now_ns();
    if (left <= 0) return make_error("abandoned: the stop deadline passed", ECANCELED);
    timeout_ns = std::min(timeout_ns, left);
    connect_timeout_ns = std::min(connect_timeout_ns, left);
  }

  curl_easy_reset(curl);  // keeps the connection cache
  PostReply reply;
  ReplyBody reply_body{&reply.body};
  char error_buffer[CURL_ERROR_SIZE] = {0};
  HeaderList headers;
  set_post(curl, request, tls_, headers, error_buffer);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, to_ms(timeout_ns));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, to_ms(connect_timeout_ns));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &append_reply);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply_body);
  if (abort_at_ns != nullptr) {
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &check_abort);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, const_cast<std::atomic<int64_t>*>(abort_at_ns));
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  }

  const CURLcode code = curl_easy_perform(curl);
  // The options point into this frame: leave no dangling pointers behind in the handle.
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  if (code == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    return reply;
  }
  long os_errno = 0;
  curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return make_error("timed out after " + std::to_string(to_ms(timeout_ns)) + " ms", ETIMEDOUT);
    case CURLE_ABORTED_BY_CALLBACK: return make_error("abandoned: the stop deadline passed", ECANCELED);
    case CURLE_COULDNT_CONNECT:
      if (os_errno != 0) return make_error(lowercase_first(std::strerror(static_cast<int>(os_errno))), os_errno);
      break;
    case CURLE_WRITE_ERROR:
      if (reply_body.too_large) {
        return make_error("reply larger than " + std::to_string(kMaxReplyBytes >> 20) + " MiB", EMSGSIZE);
      }
      break;
    default: break;
  }
  std::string message = error_buffer[0] != '\0' ? std::string(error_buffer) : curl_easy_strerror(code);
  return make_error(lowercase_first(std::move(message)), static_cast<int>(os_errno));
}

namespace {

struct StreamTarget {
  const std::function<bool(std::string_view)>* on_data;
  bool ended_by_reader = false;
};

size_t deliver_stream(char* data, size_t size, size_t count, void* target) {
  auto* stream = static_cast<StreamTarget*>(target);
  const size_t bytes = size * count;
  if (!(*stream->on_data)(std::string_view(data, bytes))) {
    stream->ended_by_reader = true;
    return 0;
  }
  return bytes;
}

int check_stop(void* clientp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(clientp)->load(std::memory_order_relaxed) ? 1 : 0;
}

}  // namespace

Result<long> Poster::post_stream(const PostRequest& request, const std::function<bool(std::string_view)>& on_data,
                                 const std::atomic<bool>& stop) {
  CURL* curl = static_cast<CURL*>(curl_);
  if (curl == nullptr) return make_error("cannot initialise libcurl");
  curl_easy_reset(curl);
  StreamTarget target{&on_data};
  char error_buffer[CURL_ERROR_SIZE] = {0};
  HeaderList headers;
  set_post(curl, request, tls_, headers, error_buffer);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, to_ms(request.connect_timeout_ns));
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 10L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 5L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &deliver_stream);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &target);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &check_stop);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(&stop));
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);

  const CURLcode code = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && target.ended_by_reader)) return status;
  if (code == CURLE_ABORTED_BY_CALLBACK) return make_error("abandoned: stopping", ECANCELED);
  long os_errno = 0;
  curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
  if (code == CURLE_COULDNT_CONNECT && os_errno != 0) {
    return make_error(lowercase_first(std::strerror(static_cast<int>(os_errno))), static_cast<int>(os_errno));
  }
  std::string message = error_buffer[0] != '\0' ? std::string(error_buffer) : curl_easy_strerror(code);
  return make_error(lowercase_first(std::move(message)), os_errno != 0 ? static_cast<int>(os_errno) : EIO);
}

}  // namespace hubprobe::detail
