// SPDX-License-Identifier: Apache-2.0
// The ranges the config loader accepts, in one place. Internal to hubprobe_config.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "hubprobe/config.h"

namespace hubprobe::config_detail {

inline constexpr int64_t kMicrosecond = 1'000;
inline constexpr int64_t kMinute = 60 * kSecond;
inline constexpr int64_t kHour = 60 * kMinute;
inline constexpr int64_t kMaxDuration = 1'000'000'000'000'000'000;  // ~31 years: far beyond any sane setting
inline constexpr size_t kMaxConfigOctets = 16u << 20;
inline constexpr off_t kMaxKeyFileOctets = 64 << 10;
inline constexpr size_t kMaxNameLength = 63;
inline constexpr int64_t kMaxRateLimitPps = 10'000'000;
inline constexpr int64_t kMinReceiveBuffer = 64 << 10;
inline constexpr int64_t kMaxReceiveBuffer = 1 << 30;
inline constexpr uint32_t kMaxPacketSize = 9000;
inline constexpr int64_t kMaxDownAfter = 1000;
inline constexpr size_t kMaxSourcePorts = 64;
inline constexpr int64_t kMaxDpdkLcore = 1023;  // the backend checks that the core exists
inline constexpr int64_t kMinDpdkDescriptors = 64;
inline constexpr int64_t kMaxDpdkDescriptors = 4096;

}  // namespace hubprobe::config_detail
