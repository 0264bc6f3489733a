// SPDX-License-Identifier: Apache-2.0
// hubprobed: the agent daemon. Start-up is the one place that fails loudly (exceptions stop here and
// become a message and an exit status); after that, everything is errors as values and log lines.
//
// Signals are taken synchronously (signalfd) in the main thread: SIGHUP reloads the configuration,
// SIGTERM and SIGINT stop. The main thread also pings the systemd watchdog.
#include <malloc.h>
#include <poll.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstring>
#include <iostream>

#include "hubprobe/agent.h"
#include "hubprobe/config.h"
#include "hubprobe/http_server.h"
#include "hubprobe/install_paths.h"
#include "hubprobe/systemd.h"
#include "hubprobe_version.h"

namespace {

using hubprobe::Agent;
using hubprobe::AgentConfig;

// Exit statuses besides kExitConfigError (78): 1 = could not start (port in use, unknown interface).
constexpr int kExitStartFailure = 1;

hubprobe::Result<std::unique_ptr<hubprobe::HttpServer>> start_http(const AgentConfig& config, Agent& agent) {
  auto server = hubprobe::HttpServer::start(config.metrics.listen, 4, config.metrics.web);
  if (!server) return hubprobe::make_error("metrics: " + server.error().message, server.error().code);
  (*server)->set_log_sink([](const std::string& message) { spdlog::debug("http: {}", message); });
  (*server)->handle("/metrics", [&agent](const hubprobe::HttpRequest&) {
    return hubprobe::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", agent.metrics_text()};
  });
  (*server)->handle("/status", [&agent](const hubprobe::HttpRequest&) {
    return hubprobe::HttpResponse{200, "application/json", agent.status().dump(2) + "\n"};
  });
  (*server)->handle("/healthz", [&agent](const hubprobe::HttpRequest&) {
    return agent.healthy() ? hubprobe::HttpResponse{200, "text/plain; charset=utf-8", "ok\n"}
                           : hubprobe::HttpResponse{503, "text/plain; charset=utf-8", "probe loop stalled\n"};
  });
  return std::move(*server);
}

// "https://198.18.0.1:9862/metrics (basic auth)", for the log: never a user name or anything secret.
std::string endpoint_url(const hubprobe::HttpServer& server) {
  return std::string(server.tls() ? "https://" : "http://") + server.address().to_string() + "/metrics";
}

std::string endpoint_description(const hubprobe::HttpServer& server, const AgentConfig& config) {
  std::string text = endpoint_url(server);
  if (!config.metrics.web.basic_auth_users.empty()) text += " (basic auth)";
  if (server.tls() && config.metrics.web.tls->client_auth != hubprobe::ClientAuth::kNoClientCert) {
    text += std::string(" (client certificates: ") + hubprobe::to_string(config.metrics.web.tls->client_auth) + ")";
  }
  return text;
}

// Keeps the agent's memory at what it holds. One malloc arena for all threads: the default gives each
// thread that allocates one of its own (civetweb's workers build the /metrics text), and each keeps its
// high-water mark. A fixed mmap threshold: blocks of 256 KiB and more (the text of a scrape) are mapped
// and unmapped, where glibc's default raises the threshold after the first such free and keeps them
// in the heap from then on (docs/benchmarks.md, "Where hubprobed's memory goes").
void tune_malloc() {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
}

void set_log_level(const AgentConfig& config) {
  spdlog::set_level(spdlog::level::from_str(hubprobe::to_string(config.logging.level)));
}

// SIGHUP: read the file again and apply the difference; a bad file or a change that cannot be applied
// leaves the running configuration as it is. The metrics endpoint: a new listen address gets a new
// server, started before the old one stops (a port in use refuses the reload); a new TLS setup on the same
// address (files, contents, versions, client certificates, TLS on or off) restarts the server there, the
// old one stopped first (the port is its); new basic_auth_users alone are swapped in while serving.
void reload(const std::string& path, Agent& agent, std::unique_ptr<hubprobe::HttpServer>& http) {
  (void)hubprobe::systemd::notify_reloading();
  const auto refuse = [&agent](const std::string& message) {
    spdlog::error("reload refused, keeping the running configuration: {}", message);
    agent.record_reload(false, message);
    (void)hubprobe::systemd::notify_ready();
  };
  auto next = hubprobe::load_config(path);
  if (!next) return refuse(next.error().message);
  const AgentConfig current = agent.config();
  // No server (a restart in place failed and so did the way back): start one as for a new address.
  const bool new_address = !http || !(next->metrics.listen == current.metrics.listen);
  const bool new_tls = !(next->metrics.web.tls == current.metrics.web.tls);
  std::unique_ptr<hubprobe::HttpServer> new_http;
  bool restarted_in_place = false;
  // Back to the running configuration's server after a restart in place, when the rest is refused.
  const auto restore = [&] {
    http.reset();
    auto again = start_http(current, agent);
    if (again) {
      http = std::move(again.value());
    } else {
      spdlog::error("metrics endpoint down until the next successful reload: {}", again.error().message);
    }
  };
  if (new_address) {
    auto started = start_http(*next, agent);
    if (!started) return refuse(started.error().message);
    new_http = std::move(started.value());
  } else if (new_tls) {
    http.reset();
    auto started = start_http(*next, agent);
    if (!started) {
      restore();
      return refuse(started.error().message);
    }
    http = std::move(started.value());
    restarted_in_place = true;
  }
  if (auto applied = agent.reload(*next); !applied) {
    if (restarted_in_place) restore();
    return refuse(applied.error().message);
  }
  if (new_http) {
    http = std::move(new_http);
  } else if (http && next->metrics.web.basic_auth_users != current.metrics.web.basic_auth_users) {
    http->set_basic_auth_users(next->metrics.web.basic_auth_users);
  }
  if (new_address || new_tls) spdlog::info("metrics on {}", endpoint_url(*http));
  set_log_level(*next);
  agent.record_reload(true, "");
  (void)hubprobe::systemd::notify_ready();
  (void)hubprobe::systemd::notify_status("running, " + std::to_string(next->peers.size()) + " peers");
}

}  // namespace

int main(int argc, char** argv) {
  tune_malloc();
  CLI::App app{"hubprobed: the hubprobe agent (STAMP sender, reflector, Prometheus exporter)", "hubprobed"};
  app.set_version_flag("--version", std::string(HUBPROBE_VERSION));
  // The prefix this program is installed in decides the default (install_paths.h). The help text, which
  // hubprobed(8) is made from, says so rather than naming the file of one prefix.
  std::string config_path = hubprobe::default_config_file();
  bool check_only = false;
  app.add_option("-c,--config", config_path,
                 "configuration file (TOML); default: SYSCONFDIR/hubprobe/hubprobe.toml of the install prefix "
                 "(/etc/hubprobe/hubprobe.toml for /usr)")
      ->type_name("FILE");
  app.add_flag("--check-config", check_only, "validate the configuration file and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "hubprobed: " << e.what() << "\n";
    return 2;
  }
  if (check_only) return hubprobe::check_config_command(config_path, std::cout, std::cerr);

  auto logger = spdlog::stderr_color_mt("hubprobed");
  spdlog::set_default_logger(logger);
  // journald adds its own timestamps; a terminal gets them from here.
  spdlog::set_pattern(isatty(STDERR_FILENO) ? "%Y-%m-%d %H:%M:%S.%e %^%l%$ %v" : "%l: %v");

  auto config = hubprobe::load_config(config_path);
  if (!config) {
    std::cerr << config.error().message << "\n";
    return hubprobe::kExitConfigError;
  }
  set_log_level(*config);

  // Signals go to the signalfd, not to handlers: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::cerr << "hubprobed: signalfd: " << std::strerror(errno) << "\n";
    return kExitStartFailure;
  }

  auto agent = Agent::start(*config);
  if (!agent) {
    std::cerr << "hubprobed: " << agent.error().message << "\n";
    return kExitStartFailure;
  }
  auto started_http = start_http(*config, **agent);
  if (!started_http) {
    std::cerr << "hubprobed: " << started_http.error().message << "\n";
    (*agent)->stop();
    return kExitStartFailure;
  }
  std::unique_ptr<hubprobe::HttpServer> http = std::move(started_http.value());
  // The file read is named here; a bad or missing one is named by its one error line instead.
  spdlog::info("hubprobed {} started: configuration {}, agent {} hub {}, {} peers, metrics on {}", HUBPROBE_VERSION,
               config_path, config->agent.id, config->agent.hub, config->peers.size(),
               endpoint_description(*http, *config));
  (void)hubprobe::systemd::notify_ready();
  (void)hubprobe::systemd::notify_status("running, " + std::to_string(config->peers.size()) + " peers");

  const auto watchdog = hubprobe::systemd::watchdog_ping_period();
  const int timeout_ms = watchdog ? static_cast<int>(std::max<int64_t>(1, watchdog->count() / 1000)) : 1000;
  bool running = true;
  while (running) {
    pollfd descriptor{signal_fd, POLLIN, 0};
    const int ready = poll(&descriptor, 1, timeout_ms);
    // The watchdog is fed only while the probe loop is alive: a stuck agent gets restarted.
    if (watchdog && (*agent)->healthy()) (void)hubprobe::systemd::notify_watchdog();
    if (ready <= 0) continue;
    signalfd_siginfo info{};
    if (read(signal_fd, &info, sizeof(info)) != sizeof(info)) continue;
    if (info.ssi_signo == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", config_path);
      reload(config_path, **agent, http);
    } else {
      spdlog::info("{}: stopping", strsignal(static_cast<int>(info.ssi_signo)));
      running = false;
    }
  }
  (void)hubprobe::systemd::notify_stopping();
  http.reset();
  (*agent)->stop();
  close(signal_fd);
  spdlog::info("stopped");
  return 0;
}
