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

Result<dp::DataplaneOptions> dataplane_flags(const DataplaneArgs& args, const std::string& interface) {
  dp::DataplaneOptions options;
  options.backend = args.backend;
  if (args.backend == "kernel") {
    if (args.xdp_mode != "auto") return make_error("--xdp-mode: only with --backend xdp");
    return options;
  }
  if (args.backend != "xdp") return make_error("--backend: expected kernel or xdp, got \"" + args.backend + "\"");
  if (interface.empty()) return make_error("--backend xdp: give the interface to attach to with -I");
  options.xdp.interfaces = {interface};
  for (const auto mode : {dp::XdpAttachMode::kAuto, dp::XdpAttachMode::kNative, dp::XdpAttachMode::kGeneric}) {
    if (args.xdp_mode == dp::attach_mode_name(mode)) {
      options.xdp.mode = mode;
      return options;
    }
  }
  return make_error("--xdp-mode: expected auto, native or generic, got \"" + args.xdp_mode + "\"");
}

}  // namespace hubprobe
