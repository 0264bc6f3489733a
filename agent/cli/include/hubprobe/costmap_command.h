// SPDX-License-Identifier: Apache-2.0
// `hubprobe costmap`: the fleet view as an ALTO service (hubprobe/costmap_service.h, docs/costmap.md).
#pragma once

#include <atomic>
#include <iosfwd>
#include <string>

#include "hubprobe/etcd_client.h"

namespace hubprobe {

/// The flags of `hubprobe costmap` as given (agent/cli/src/main.cpp binds them). Flags win over --config.
struct CostmapArgs {
  std::string config;  ///< an agent's TOML: etcd endpoints, prefix and TLS of its first [[scheduler.etcd]],
                       ///< [metrics] web_config_file and the [costmap] table
  std::string etcd;    ///< endpoints URL[,URL...]
  std::string prefix;  ///< default /hubprobe
  // Empty (or negative) = not given: --config's [costmap] table, else its default.
  std::string listen;       ///< default 127.0.0.1:9863
  std::string web_config;   ///< web-config.yml: TLS and basic auth
  std::string base_path;    ///< default /alto
  std::string public_url;   ///< makes the directory's URIs absolute
  int threads = 0;          ///< default 16
  double max_wait_s = -1;   ///< default 60
  EtcdClient::Options tls;  ///< CA and client certificate for https etcd endpoints
};

/// Runs the service until `stop`. Exit status: 0 after a clean stop, 2 on a usage error, 78 for a bad
/// configuration file, 3 when it cannot listen.
int costmap_command(const CostmapArgs& args, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop);

}  // namespace hubprobe
