// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/cli_usage.h"

#include <ostream>

namespace hubprobe {

int usage_error(std::ostream& err, const std::string& message) {
  err << "hubprobe: " << message << "\n";
  return kUsageError;
}

Result<std::shared_ptr<const stamp::HmacKey>> load_key_flag(const std::string& path) {
  if (path.empty()) return std::shared_ptr<const stamp::HmacKey>();
  auto key = stamp::load_key_file(path);
  if (!key) return make_error("--auth-key-file: " + key.error().message);
  return std::make_shared<const stamp::HmacKey>(std::move(key.value()));
}

}  // namespace hubprobe
