// SPDX-License-Identifier: Apache-2.0
// The generation counter file (hubprobe/generation_store.h): read at start, written durably before use.
#include "hubprobe/generation_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

namespace hubprobe {
namespace {

// mkdir -p, with 0750 for every folder it creates (umask or not).
Result<void> make_directories(const std::string& dir) {
  std::string prefix;
  size_t pos = 0;
  while (pos <= dir.size()) {
    size_t next = dir.find('/', pos);
    if (next == std::string::npos) next = dir.size();
    prefix = dir.substr(0, next);
    pos = next + 1;
    if (prefix.empty()) continue;  // the root
    if (::mkdir(prefix.c_str(), 0750) == 0) {
      if (::chmod(prefix.c_str(), 0750) != 0) return errno_error("state directory " + prefix);
      continue;
    }
    if (errno != EEXIST) return errno_error("cannot create state directory " + prefix);
    struct stat info {};
    if (::stat(prefix.c_str(), &info) != 0) return errno_error("state directory " + prefix);
    if (!S_ISDIR(info.st_mode)) return make_error("state directory " + prefix + ": not a directory", ENOTDIR);
  }
  return {};
}

Result<void> write_all(int fd, const std::string& text, const std::string& path) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot write " + path);
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Result<GenerationStore> GenerationStore::open(const std::string& state_dir) {
  if (state_dir.empty()) return make_error("generation store: the state directory is not set");
  std::string dir = state_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (auto made = make_directories(dir); !made) return made.error();

  GenerationStore store;
  store.path_ = (dir == "/" ? "" : dir) + "/generation";
  const int fd = ::open(store.path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return store;  // a fresh state directory: the first generation will be 1
    return errno_error("cannot read the generation file " + store.path_);
  }
  std::string text;
  char buffer[64];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Error error = errno_error("cannot read the generation file " + store.path_);
      ::close(fd);
      return error;
    }
    if (n == 0 || text.size() > 64) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);

  // Exactly what next() writes: decimal digits and one newline. Anything else is refused, never reset:
  // handing out a generation again would make the scheduler drop our documents as old.
  std::string digits = text;
  if (!digits.empty() && digits.back() == '\n') digits.pop_back();
  bool valid = !digits.empty() && digits.size() <= 20 &&
               std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  uint64_t value = 0;
  for (size_t i = 0; valid && i < digits.size(); ++i) {
    const auto digit = static_cast<uint64_t>(digits[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) valid = false;
    value = value * 10 + digit;
  }
  if (!valid) {
    return make_error(
        "corrupt generation file " + store.path_ + ": expected a decimal number and a newline, found " +
            nlohmann::json(text.substr(0, 40)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
            " (fix or remove it; removing restarts generations at 1)",
        EINVAL);
  }
  store.current_ = value;
  return store;
}

Result<uint64_t> GenerationStore::next() {
  if (current_ == std::numeric_limits<uint64_t>::max()) {
    return make_error("generation file " + path_ + ": the generation cannot grow any further", EOVERFLOW);
  }
  const uint64_t next_value = current_ + 1;
  const std::string temporary = path_ + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return errno_error("cannot write the generation file " + temporary);
  auto written = write_all(fd, std::to_string(next_value) + "\n", temporary);
  if (written && ::fsync(fd) != 0) written = errno_error("cannot sync " + temporary);
  if (::close(fd) != 0 && written) written = errno_error("cannot write " + temporary);
  if (written && ::rename(temporary.c_str(), path_.c_str()) != 0) {
    written = errno_error("cannot replace the generation file " + path_);
  }
  if (!written) {
    ::unlink(temporary.c_str());
    return written.error();
  }
  // The rename is durable only once the folder is synced.
  const std::string dir = path_.substr(0, path_.rfind('/'));
  const int dir_fd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return errno_error("cannot open the state directory " + dir);
  const bool synced = ::fsync(dir_fd) == 0;
  Error sync_error = synced ? Error{} : errno_error("cannot sync the state directory " + dir);
  ::close(dir_fd);
  if (!synced) return sync_error;
  current_ = next_value;
  return next_value;
}

}  // namespace hubprobe
