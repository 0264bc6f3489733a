// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the config loader: any text gives a config or exactly one one-line error that
// names the source, and never a crash or an escaping exception. An accepted config keeps its invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "hubprobe/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto config = hubprobe::parse_config(text, "fuzz.toml");
  if (!config.ok()) {
    const std::string& message = config.error().message;
    if (message.rfind("fuzz.toml:", 0) != 0) abort();
    if (message.find('\n') != std::string::npos) abort();
    return 0;
  }
  if (config->agent.id.empty() || config->agent.hub.empty()) abort();
  if (config->reflector.listen.empty()) abort();
  for (const auto& peer : config->peers) {
    const auto& probe = peer.probe;
    if (probe.size < hubprobe::stamp::base_length(probe.mode()) || probe.size > 9000) abort();
    if (probe.interval_ns < hubprobe::kMillisecond || probe.interval_ns > probe.window_ns) abort();
    if (probe.timeout_ns <= 0 || probe.timeout_ns > probe.window_ns) abort();
    if (probe.dscp < 0 || probe.dscp > 63 || probe.down_after < 1) abort();
    if (peer.address.port() == 0 || !hubprobe::same_session(peer, peer)) abort();
  }
  if (!hubprobe::diff_configs(*config, *config).empty()) abort();
  return 0;
}
