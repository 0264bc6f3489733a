// SPDX-License-Identifier: Apache-2.0
// Socket buffer sizes: the one place that sets them, for the kernel backend's ports and for the tools and
// tests that open sockets of their own (the link emulator, the integration tests' raw senders).
#pragma once

#include <cstdint>

#include "hubprobe/result.h"

namespace hubprobe::dp {

enum class SocketBuffer : uint8_t { kReceive, kSend };

/// Sets the receive (SO_RCVBUF) or send (SO_SNDBUF) buffer of `fd` to `octets`. A process with
/// CAP_NET_ADMIN gets the size asked for (SO_RCVBUFFORCE / SO_SNDBUFFORCE); any other is capped by the
/// kernel at net.core.rmem_max / wmem_max. Returns the size the kernel reports afterwards, which is twice
/// what it accepted (the rest is room for its bookkeeping, socket(7)): the `rb` / `tb` of `ss -m`.
Result<int> set_socket_buffer(int fd, SocketBuffer which, int octets);

/// Whether `granted` (what set_socket_buffer() returned) is less than `octets` asked for.
bool socket_buffer_capped(int granted, int octets);

}  // namespace hubprobe::dp
