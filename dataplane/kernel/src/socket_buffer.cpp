// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/socket_buffer.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>

namespace hubprobe::dp {

Result<int> set_socket_buffer(int fd, SocketBuffer which, int octets) {
  const bool receive = which == SocketBuffer::kReceive;
  const int plain = receive ? SO_RCVBUF : SO_SNDBUF;
  const int forced = receive ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
  if (setsockopt(fd, SOL_SOCKET, forced, &octets, sizeof(octets)) != 0) {
    if (errno != EPERM) return errno_error(receive ? "SO_RCVBUFFORCE" : "SO_SNDBUFFORCE");
    // Without CAP_NET_ADMIN: the kernel caps the size at net.core.rmem_max / wmem_max.
    if (setsockopt(fd, SOL_SOCKET, plain, &octets, sizeof(octets)) != 0) {
      return errno_error(receive ? "SO_RCVBUF" : "SO_SNDBUF");
    }
  }
  int granted = 0;
  socklen_t length = sizeof(granted);
  if (getsockopt(fd, SOL_SOCKET, plain, &granted, &length) != 0) {
    return errno_error(receive ? "getsockopt SO_RCVBUF" : "getsockopt SO_SNDBUF");
  }
  return granted;
}

bool socket_buffer_capped(int granted, int octets) {
  // The kernel keeps at most INT_MAX / 2 of what it is asked for, and reports it doubled.
  return granted / 2 < std::min(octets, INT_MAX / 2);
}

}  // namespace hubprobe::dp
