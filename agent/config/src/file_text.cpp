// SPDX-License-Identifier: Apache-2.0
#include "file_text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hubprobe {

Result<std::string> read_text_file(const std::string& path, size_t max_octets) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(std::string("cannot open: ") + std::strerror(errno), errno);
  struct stat info {};
  if (::fstat(fd, &info) == 0 && !S_ISREG(info.st_mode)) {
    ::close(fd);
    if (S_ISDIR(info.st_mode)) return make_error("cannot read: is a directory", EISDIR);
    return make_error("cannot read: not a regular file", EINVAL);
  }
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      return make_error(std::string("cannot read: ") + std::strerror(error), error);
    }
    if (got == 0) break;
    text.append(buffer, static_cast<size_t>(got));
    if (text.size() > max_octets) {
      ::close(fd);
      return make_error("cannot read: larger than " + std::to_string(max_octets >> 20) + " MiB", EFBIG);
    }
  }
  ::close(fd);
  return text;
}

}  // namespace hubprobe
