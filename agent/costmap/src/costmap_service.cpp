// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/costmap_service.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "hubprobe/clock.h"
#include "hubprobe/sink_config.h"

namespace hubprobe::costmap {
namespace {

using Clock = std::chrono::steady_clock;

HttpResponse plain(int status, std::string body) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::move(body), {}};
}

// The part of `key` after `prefix` when it is one agent id (no further '/'), else empty.
std::string agent_of(const std::string& key, const std::string& prefix) {
  if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix) != 0) return {};
  std::string id = key.substr(prefix.size());
  return id.find('/') == std::string::npos ? id : std::string();
}

}  // namespace

Result<std::unique_ptr<Service>> Service::start(ServiceOptions options, ServiceLog log) {
  std::unique_ptr<Service> service(new Service());
  service->options_ = std::move(options);
  service->log_ = std::move(log);
  service->maps_ = FleetMaps::build({}, service->options_.layout);
  auto server =
      HttpServer::start(service->options_.listen, std::max(service->options_.threads, 1), service->options_.web);
  if (!server) return server.error();
  service->server_ = std::move(*server);
  service->server_->set_log_sink([raw = service.get()](const std::string& message) { raw->log(message); });
  service->etcd_ = std::make_unique<EtcdClient>(service->options_.etcd);
  service->serve_routes();
  service->watcher_ = std::thread([raw = service.get()] { raw->watch_loop(); });
  return service;
}

Service::~Service() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  // The watch first (it registers handlers on the server; it sees stop_ within about a second), then the
  // server, which waits for running handlers (long polls see stop_ and answer at once).
  if (watcher_.joinable()) watcher_.join();
  server_.reset();
}

std::shared_ptr<const FleetMaps> Service::maps() const {
  std::lock_guard lock(mutex_);
  return maps_;
}

void Service::log(const std::string& message) const {
  if (log_) {
    log_(message);
  } else {
    std::fprintf(stderr, "hubprobe costmap: %s\n", message.c_str());
  }
}

void Service::publish(const FleetState& state, int64_t revision) {
  std::shared_ptr<const FleetMaps> maps = FleetMaps::build(state, options_.layout);
  std::vector<std::string> added;
  {
    std::lock_guard lock(mutex_);
    maps_ = maps;
    ++generation_;
    for (const std::string& metric : maps->metrics()) {
      if (registered_metrics_.insert(metric).second) added.push_back(metric);
    }
    revision_ = revision;
    synced_ = true;
  }
  changed_.notify_all();
  // A cost map's path is registered the first time its metric appears; when it disappears, 404.
  for (const std::string& metric : added) {
    server_->handle(options_.layout.cost_map_path(metric), [this, metric](const HttpRequest& request) {
      return serve_get(request, [metric](const FleetMaps& current, WallNs) -> std::optional<Resource> {
        const Resource* resource = current.cost_map(metric);
        if (resource == nullptr) return std::nullopt;
        return *resource;
      });
    });
  }
}

HttpResponse Service::serve_get(const HttpRequest& request, const Pick& pick) {
  std::shared_ptr<const FleetMaps> maps;
  uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    maps = maps_;
    generation = generation_;
  }
  std::optional<Resource> resource = pick(*maps, wall_now());
  if (!resource) return plain(404, "not found: " + request.path + " (no such resource now)\n");
  if (!accepts_media_type(request.header("accept"), resource->content_type)) {
    return plain(406, "not acceptable: this resource is " + resource->content_type + "\n");
  }
  const std::string condition = request.header("if-none-match");
  bool matches = !condition.empty() && if_none_match(condition, resource->etag);
  // A long poll: the client has this version and is prepared to wait for the next one.
  const int64_t wait_s =
      std::min<int64_t>(preferred_wait_seconds(request.header("prefer")), options_.max_wait_ns / 1'000'000'000);
  if (matches && wait_s > 0) {
    const auto deadline = Clock::now() + std::chrono::seconds(wait_s);
    std::unique_lock lock(mutex_);
    while (matches && !stop_) {
      if (!changed_.wait_until(lock, deadline, [&] { return stop_ || generation_ != generation; })) break;
      if (stop_) break;
      maps = maps_;
      generation = generation_;
      lock.unlock();
      resource = pick(*maps, wall_now());
      if (!resource) return plain(404, "not found: " + request.path + " (no such resource now)\n");
      matches = if_none_match(condition, resource->etag);
      lock.lock();
    }
  }
  HttpResponse response;
  response.headers = {{"ETag", resource->etag}, {"Cache-Control", "no-cache"}};
  if (matches) {
    response.status = 304;
    return response;
  }
  response.content_type = resource->content_type;
  response.body = std::move(resource->body);
  return response;
}

void Service::serve_routes() {
  const ServiceLayout& layout = options_.layout;
  server_->handle(layout.directory_path(), [this](const HttpRequest& request) {
    return serve_get(request, [](const FleetMaps& maps, WallNs) { return std::optional<Resource>(maps.directory()); });
  });
  server_->handle(layout.network_map_path(), [this](const HttpRequest& request) {
    return serve_get(request,
                     [](const FleetMaps& maps, WallNs) { return std::optional<Resource>(maps.network_map()); });
  });
  server_->handle(layout.path_map_path(), [this](const HttpRequest& request) {
    return serve_get(request,
                     [](const FleetMaps& maps, WallNs now) { return std::optional<Resource>(maps.path_map(now)); });
  });
  server_->handle(
      layout.filtered_cost_map_path(),
      [this](const HttpRequest& request) {
        const std::string type = request.header("content-type");
        const std::string bare = type.substr(0, type.find(';'));
        if (!type.empty() && bare != kCostMapFilterMediaType && bare != "application/json") {
          return plain(415, std::string("unsupported media type: send ") + kCostMapFilterMediaType + "\n");
        }
        if (!accepts_media_type(request.header("accept"), kCostMapMediaType) &&
            !accepts_media_type(request.header("accept"), kErrorMediaType)) {
          return plain(406, std::string("not acceptable: this resource is ") + kCostMapMediaType + "\n");
        }
        const FilterAnswer answer = maps()->filter(request.body);
        HttpResponse response{answer.status, answer.resource.content_type, answer.resource.body, {}};
        response.headers = {{"Cache-Control", "no-store"}};
        return response;
      },
      HttpMethods{.get = false, .post = true, .max_body = 64 * 1024});
  server_->handle("/healthz", [this](const HttpRequest&) {
    if (!synced_) return plain(503, "waiting for the first read of etcd\n");
    return plain(200, "ok revision " + std::to_string(revision_.load()) + "\n");
  });
}

void Service::watch_loop() {
  std::string base = options_.prefix;
  while (!base.empty() && base.back() == '/') base.pop_back();
  base += "/";
  const std::string documents = preferences_prefix(options_.prefix);
  const std::string registrations = registrations_prefix(options_.prefix);
  FleetState state;
  int64_t revision = 0;
  bool read_again = true;
  int64_t backoff_ns = options_.retry_initial_ns;
  std::string last_failure;

  const auto apply = [&](const EtcdKeyValue& kv, bool deleted) {
    const std::string document = agent_of(kv.key, documents);
    const std::string registration = agent_of(kv.key, registrations);
    auto* target = !document.empty() ? &state.documents : !registration.empty() ? &state.registrations : nullptr;
    const std::string& id = !document.empty() ? document : registration;
    if (target == nullptr) return;
    if (deleted) {
      target->erase(id);
    } else {
      (*target)[id] = kv.value;
    }
  };
  const auto pause = [&] {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::nanoseconds(backoff_ns), [&] { return stop_.load(); });
    backoff_ns = std::min(backoff_ns * 2, options_.retry_max_ns);
  };
  const auto failed = [&](const std::string& message) {
    if (message != last_failure) log(message);
    last_failure = message;
  };

  while (!stop_) {
    if (read_again) {
      auto range = etcd_->get_prefix_with_revision(base);
      if (!range) {
        failed("reading " + base + ": " + range.error().message);
        pause();
        continue;
      }
      state = FleetState{};
      for (const EtcdKeyValue& kv : range->kvs) apply(kv, false);
      revision = range->revision;
      ++full_reads_;
      publish(state, revision);
      read_again = false;
      if (!last_failure.empty()) log("etcd read again at revision " + std::to_string(revision));
      last_failure.clear();
      backoff_ns = options_.retry_initial_ns;
    }
    std::string reset_reason;
    auto watched = etcd_->watch_prefix(
        base, revision + 1,
        [&](const etcd_gateway::WatchMessage& message) {
          if (message.compact_revision > 0) {
            reset_reason = "revision " + std::to_string(revision + 1) + " was compacted (oldest kept " +
                           std::to_string(message.compact_revision) + ")";
            return false;
          }
          if (message.canceled) {
            reset_reason = "etcd canceled the watch: " + message.cancel_reason;
            return false;
          }
          if (message.created && message.header_revision > 0 && message.header_revision < revision) {
            reset_reason = "the store went back from revision " + std::to_string(revision) + " to " +
                           std::to_string(message.header_revision) + " (a new cluster)";
            return false;
          }
          if (message.created && !last_failure.empty()) {
            log("watch reconnected, from revision " + std::to_string(revision + 1));
            last_failure.clear();
          }
          backoff_ns = options_.retry_initial_ns;
          if (!message.events.empty()) {
            for (const auto& event : message.events) {
              apply(event.kv, event.type == etcd_gateway::WatchEvent::Type::kDelete);
              revision = std::max(revision, event.kv.mod_revision);
            }
            publish(state, revision);
          }
          return !stop_;
        },
        stop_);
    if (stop_) break;
    if (!reset_reason.empty()) {
      log(reset_reason + ": reading " + base + " again");
      read_again = true;
      continue;
    }
    failed("watching " + base + " from revision " + std::to_string(revision + 1) + ": " +
           (watched ? std::string("the stream ended") : watched.error().message));
    pause();
  }
}

}  // namespace hubprobe::costmap
