// SPDX-License-Identifier: Apache-2.0
#include <string>

#include "hubprobe/dataplane.h"
#include "hubprobe/dpdk_dataplane.h"
#include "hubprobe/kernel_port.h"
#include "hubprobe/xdp_dataplane.h"

namespace hubprobe::dp {

Result<std::unique_ptr<Dataplane>> make_dataplane(const DataplaneOptions& options) {
  if (options.backend == "kernel") {
    return std::unique_ptr<Dataplane>(std::make_unique<KernelDataplane>(options.kernel, options.notice));
  }
  if (options.backend == "xdp") {
    auto xdp = xdp::XdpDataplane::open(options.xdp, options.kernel, options.notice);
    if (!xdp) return xdp.error();
    return std::unique_ptr<Dataplane>(std::move(xdp.value()));
  }
  if (options.backend == "dpdk") {
    auto dpdk = dpdk::DpdkDataplane::open(options.dpdk, options.notice);
    if (!dpdk) return dpdk.error();
    return std::unique_ptr<Dataplane>(std::move(dpdk.value()));
  }
  return make_error("unknown dataplane backend \"" + options.backend + "\" (this build has: kernel, xdp, dpdk)");
}

Result<std::unique_ptr<Dataplane>> make_dataplane(std::string_view backend) {
  DataplaneOptions options;
  options.backend = std::string(backend);
  return make_dataplane(options);
}

}  // namespace hubprobe::dp
