// SPDX-License-Identifier: Apache-2.0
// What the commands of `hubprobe` share about their flags: how a usage error is reported, and the
// --auth-key-file flag and the dataplane flags.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hubprobe/dataplane.h"
#include "hubprobe/result.h"
#include "hubprobe/stamp.h"

namespace hubprobe {

/// Exit status for usage errors, as ping(8) does.
constexpr int kUsageError = 2;

/// Prints "hubprobe: MESSAGE" on one line of `err` (the full help is one --help away); returns kUsageError.
int usage_error(std::ostream& err, const std::string& message);

/// The HMAC key in the file of --auth-key-file; null when `path` is empty (unauthenticated).
Result<std::shared_ptr<const stamp::HmacKey>> load_key_flag(const std::string& path);

/// The dataplane flags ping and reflect share, as given (agent/cli/src/main.cpp defines them once, for both):
/// --backend, --xdp-mode, and the --dpdk-* flags, --eal-arg and --lcore of the dpdk backend. The interface is -I
/// (the xdp backend attaches there, and needs it; the dpdk backend refuses it).
struct DataplaneArgs {
  std::string backend = "kernel";
  std::string xdp_mode = "auto";
  std::string dpdk_port;                     ///< --dpdk-port: a PCI address or vdev
  std::vector<std::string> dpdk_addresses;   ///< --dpdk-address ADDR/LEN, repeatable
  std::vector<std::string> dpdk_gateways;    ///< --dpdk-gateway ADDR, repeatable (one per family)
  std::vector<std::string> dpdk_neighbours;  ///< --dpdk-neighbour ADDR=MAC, repeatable
  std::vector<std::string> eal_args;         ///< --eal-arg ARG, repeatable
  int lcore = -1;                            ///< --lcore; -1 = not given (the backend's choice)
};

/// The dataplane the flags ask for; the error is a usage error's message.
Result<dp::DataplaneOptions> dataplane_flags(const DataplaneArgs& args, const std::string& interface);

/// With --backend dpdk: `address` (of `flag`, e.g. "-S") must be one of the port's --dpdk-address addresses, or
/// a wildcard (0.0.0.0, ::) when `allow_wildcard`. Nothing with another backend.
Result<void> check_dpdk_local_address(const dp::DataplaneOptions& options, const SocketAddress& address,
                                      bool allow_wildcard, std::string_view flag);

}  // namespace hubprobe
