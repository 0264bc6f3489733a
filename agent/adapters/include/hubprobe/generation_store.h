// SPDX-License-Identifier: Apache-2.0
// The preference document's generation number, kept durably in the state directory.
#pragma once

#include <cstdint>
#include <string>

#include "hubprobe/result.h"

namespace hubprobe {

/// The generation counter in `state_dir/generation`. open() reads it (a missing file = 0; an unreadable
/// or corrupt file is an error, never a silent reset) and next() returns the stored value + 1 after
/// writing it durably (write to a temporary file, fsync, rename, fsync the folder): a generation handed
/// out is never handed out again, even after a crash.
class GenerationStore {
 public:
  static Result<GenerationStore> open(const std::string& state_dir);
  Result<uint64_t> next();
  uint64_t current() const { return current_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  uint64_t current_ = 0;
};

}  // namespace hubprobe
