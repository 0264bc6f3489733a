// SPDX-License-Identifier: Apache-2.0
// The EAL command line the dpdk backend builds from [dataplane.dpdk]. Pure.
#pragma once

#include <string>
#include <vector>

#include "hubprobe/dataplane.h"

namespace hubprobe::dpdk {

/// The program name, `eal_args`, then --file-prefix=hubprobe-PID and -l LCORE unless `eal_args` has them.
std::vector<std::string> eal_arguments(const dp::DpdkOptions& options, int pid, int cpus);
/// The core the poll loop runs on: `lcore`, or the last of `cpus` when -1.
int loop_lcore(const dp::DpdkOptions& options, int cpus);
/// The same on this host (its online CPUs).
int loop_lcore(const dp::DpdkOptions& options);
/// The host's online CPUs.
int online_cpus();
/// The --file-prefix value in `arguments` (as eal_arguments() built them).
std::string file_prefix(const std::vector<std::string>& arguments);
/// True when `arguments` run the EAL without hugepages (--no-huge).
bool without_hugepages(const std::vector<std::string>& arguments);

}  // namespace hubprobe::dpdk
