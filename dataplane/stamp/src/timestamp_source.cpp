// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/packet.h"

namespace hubprobe::dp {

const char* to_string(TimestampSource source) {
  switch (source) {
    case TimestampSource::kNone: return "none";
    case TimestampSource::kUser: return "user";
    case TimestampSource::kKernelSoftware: return "kernel";
    case TimestampSource::kXdp: return "xdp";
    case TimestampSource::kTsc: return "tsc";
    case TimestampSource::kHardware: return "hardware";
  }
  return "unknown";
}

}  // namespace hubprobe::dp
