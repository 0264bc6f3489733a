// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/dpdk_eal_args.h"

#include <unistd.h>

#include <algorithm>

namespace hubprobe::dpdk {

namespace {
bool starts_with_any(const std::string& argument, std::initializer_list<std::string_view> options) {
  return std::any_of(options.begin(), options.end(), [&](std::string_view option) {
    return argument == option || (argument.size() > option.size() && argument.compare(0, option.size(), option) == 0 &&
                                  (option.size() == 2 || argument[option.size()] == '='));
  });
}
bool has(const std::vector<std::string>& arguments, std::initializer_list<std::string_view> options) {
  return std::any_of(arguments.begin(), arguments.end(),
                     [&](const std::string& argument) { return starts_with_any(argument, options); });
}
}  // namespace

int loop_lcore(const dp::DpdkOptions& options, int cpus) { return options.lcore >= 0 ? options.lcore : cpus - 1; }

int online_cpus() { return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)); }

int loop_lcore(const dp::DpdkOptions& options) { return loop_lcore(options, online_cpus()); }

std::vector<std::string> eal_arguments(const dp::DpdkOptions& options, int pid, int cpus) {
  std::vector<std::string> arguments{"hubprobe"};
  arguments.insert(arguments.end(), options.eal_args.begin(), options.eal_args.end());
  if (!has(arguments, {"--file-prefix"})) arguments.push_back("--file-prefix=hubprobe-" + std::to_string(pid));
  if (!has(arguments, {"-l", "-c", "--lcores"})) {
    arguments.push_back("-l");
    arguments.push_back(std::to_string(loop_lcore(options, cpus)));
  }
  return arguments;
}

std::string file_prefix(const std::vector<std::string>& arguments) {
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument.rfind("--file-prefix=", 0) == 0) return argument.substr(14);
    if (argument == "--file-prefix" && i + 1 < arguments.size()) return arguments[i + 1];
  }
  return "rte";
}

bool without_hugepages(const std::vector<std::string>& arguments) { return has(arguments, {"--no-huge"}); }

}  // namespace hubprobe::dpdk
