// SPDX-License-Identifier: Apache-2.0
// The etcd key layout (hubprobe/sink_config.h): the one place that spells it.
#include <string>
#include <string_view>

#include "hubprobe/sink_config.h"

namespace hubprobe {
namespace {

std::string base(std::string_view prefix) {
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  return std::string(prefix);
}

}  // namespace

std::string preferences_prefix(std::string_view prefix) { return base(prefix) + "/preferences/"; }
std::string registrations_prefix(std::string_view prefix) { return base(prefix) + "/agents/"; }
std::string preferences_key(std::string_view prefix, std::string_view agent_id) {
  return preferences_prefix(prefix) + std::string(agent_id);
}
std::string registration_key(std::string_view prefix, std::string_view agent_id) {
  return registrations_prefix(prefix) + std::string(agent_id);
}

}  // namespace hubprobe
