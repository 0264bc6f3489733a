// SPDX-License-Identifier: Apache-2.0
#include <string>

#include "hubprobe/dataplane.h"
#include "hubprobe/kernel_port.h"

namespace hubprobe::dp {

Result<std::unique_ptr<Dataplane>> make_dataplane(std::string_view backend) {
  if (backend == "kernel") return std::unique_ptr<Dataplane>(std::make_unique<KernelDataplane>());
  return make_error("unknown dataplane backend \"" + std::string(backend) + "\" (this build has: kernel)");
}

}  // namespace hubprobe::dp
