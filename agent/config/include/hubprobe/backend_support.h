// SPDX-License-Identifier: Apache-2.0
// Whether the selected dataplane backend can honour what a [[path]] or the [reflector] asks of it, judged
// from the backend's traits (hubprobe/backend_traits.h). Pure: the loader calls these and reports a
// refusal at the key it names; tests call them with traits of their own.
#pragma once

#include <optional>
#include <string>

#include "hubprobe/backend_traits.h"
#include "hubprobe/config.h"

namespace hubprobe {

/// A setting the backend cannot honour: the key of the section that asks for it, and why.
struct Refusal {
  std::string key;     ///< e.g. "fwmark" (of a [[path]]) or "mode" (of [reflector])
  std::string reason;  ///< "the NAME dataplane cannot ...", with what to do instead when there is a way
  bool operator==(const Refusal&) const = default;
};

/// Keys of a [[path]] that have no field in PathConfig: every backend of this build refuses them, so they
/// are judged by being written at all.
struct PathKeysWithoutField {
  bool vlan = false;
  bool next_hop = false;
};

/// The first pinning of `path` (in the order of PathTraits) that `backend` cannot honour; a setting left at
/// its "none" (fwmark 0, dscp -1, no source ports, ...) asks for nothing.
std::optional<Refusal> refuse_path(const dp::BackendTraits& backend, const PathConfig& path,
                                   PathKeysWithoutField written);

/// The first option of an enabled `reflector` (in the order of ReflectorTraits) that `backend` cannot honour.
/// The key is "auth_key_file" or "auth" for authenticated mode, whichever is set.
std::optional<Refusal> refuse_reflector(const dp::BackendTraits& backend, const ReflectorConfig& reflector);

}  // namespace hubprobe
