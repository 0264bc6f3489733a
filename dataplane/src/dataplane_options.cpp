// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/dataplane.h"

namespace hubprobe::dp {

std::string_view attach_mode_name(XdpAttachMode mode) {
  switch (mode) {
    case XdpAttachMode::kAuto: return "auto";
    case XdpAttachMode::kNative: return "native";
    case XdpAttachMode::kGeneric: return "generic";
  }
  return "auto";
}

}  // namespace hubprobe::dp
