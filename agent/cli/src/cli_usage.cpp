// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/cli_usage.h"

#include <algorithm>
#include <ostream>

#include "hubprobe/config.h"

namespace hubprobe {

int usage_error(std::ostream& err, const std::string& message) {
  err << "hubprobe: " << message << "\n";
  return kUsageError;
}

Result<std::shared_ptr<const stamp::HmacKey>> load_key_flag(const std::string& path) {
  if (path.empty()) return std::shared_ptr<const stamp::HmacKey>();
  auto key = stamp::load_key_file(path);
  if (!key) return make_error("--auth-key-file: " + key.error().message);
  return std::make_shared<const stamp::HmacKey>(std::move(key.value()));
}

namespace {

constexpr int kMaxLcore = 1023;  // as [dataplane.dpdk] lcore: the backend checks that the core exists

// The --dpdk-* flags, --eal-arg and --lcore as dp::DpdkOptions, with the rules of [dataplane.dpdk].
Result<dp::DpdkOptions> dpdk_flags(const DataplaneArgs& args) {
  dp::DpdkOptions options;
  if (args.dpdk_port.empty()) {
    return make_error(
        "--backend dpdk: give the port with --dpdk-port (a PCI address like 0000:03:00.0 or a vdev "
        "like net_af_packet0,iface=eth1)");
  }
  options.port = args.dpdk_port;
  if (args.dpdk_addresses.empty()) {
    return make_error("--backend dpdk: give the port's addresses with --dpdk-address ADDR/LEN (e.g. 198.18.0.1/24)");
  }
  for (const std::string& text : args.dpdk_addresses) {
    const std::string flag = "--dpdk-address " + text;
    if (text.find('/') == std::string::npos) {
      return make_error(flag + ": expected ADDR/LEN with the prefix length, e.g. 198.18.0.1/24 or 2001:db8::1/64");
    }
    auto address = dp::parse_interface_address(text);
    if (!address) return make_error(flag + ": " + address.error().message);
    if (!parse_unicast_host(address->address.host())) {
      return make_error(flag + ": expected a unicast address for the port");
    }
    if (dpdk_owns(options.addresses, address->address)) return make_error(flag + ": the address is given twice");
    options.addresses.push_back(*address);
  }
  for (const std::string& text : args.dpdk_gateways) {
    const std::string flag = "--dpdk-gateway " + text;
    auto gateway = parse_unicast_host(text);
    if (!gateway) return make_error(flag + ": " + gateway.error().message);
    gateway->set_port(0);
    SocketAddress& slot = gateway->is_v4() ? options.gateway4 : options.gateway6;
    if (slot.valid()) {
      return make_error(flag + ": at most one gateway per address family (the other is " + slot.host() + ")");
    }
    if (const std::string why = dpdk_off_link(options.addresses, *gateway, "a gateway", "--dpdk-address");
        !why.empty()) {
      return make_error(flag + ": expected " + why);
    }
    slot = *gateway;
  }
  for (const std::string& text : args.dpdk_neighbours) {
    const std::string flag = "--dpdk-neighbour " + text;
    const size_t equals = text.find('=');
    if (equals == std::string::npos) return make_error(flag + ": expected ADDR=MAC, e.g. 198.18.0.2=02:00:00:00:00:02");
    auto address = parse_unicast_host(text.substr(0, equals));
    if (!address) return make_error(flag + ": " + address.error().message);
    address->set_port(0);
    if (const std::string why = dpdk_off_link(options.addresses, *address, "a neighbour", "--dpdk-address");
        !why.empty()) {
      return make_error(flag + ": expected " + why);
    }
    for (const dp::StaticNeighbour& other : options.neighbours) {
      if (other.address == *address) return make_error(flag + ": the neighbour is given twice");
    }
    auto mac = dp::parse_mac(text.substr(equals + 1));
    if (!mac) return make_error(flag + ": " + mac.error().message);
    if (((*mac)[0] & 1) != 0 || std::all_of(mac->begin(), mac->end(), [](uint8_t octet) { return octet == 0; })) {
      return make_error(flag + ": expected a unicast MAC address");
    }
    options.neighbours.push_back(dp::StaticNeighbour{*address, *mac});
  }
  for (const std::string& arg : args.eal_args) {
    if (arg.empty()) return make_error("--eal-arg: expected an EAL argument, not an empty string");
    options.eal_args.push_back(arg);
  }
  if (args.lcore > kMaxLcore) {
    return make_error("--lcore " + std::to_string(args.lcore) + ": expected an lcore id 0.." +
                      std::to_string(kMaxLcore));
  }
  options.lcore = args.lcore;
  return options;
}

// The first --dpdk-* flag given (for "only with --backend dpdk"); empty when none is.
std::string_view dpdk_flag_given(const DataplaneArgs& args) {
  if (!args.dpdk_port.empty()) return "--dpdk-port";
  if (!args.dpdk_addresses.empty()) return "--dpdk-address";
  if (!args.dpdk_gateways.empty()) return "--dpdk-gateway";
  if (!args.dpdk_neighbours.empty()) return "--dpdk-neighbour";
  if (!args.eal_args.empty()) return "--eal-arg";
  if (args.lcore != -1) return "--lcore";
  return {};
}

}  // namespace

Result<dp::DataplaneOptions> dataplane_flags(const DataplaneArgs& args, const std::string& interface) {
  dp::DataplaneOptions options;
  options.backend = args.backend;
  if (args.backend != "kernel" && args.backend != "xdp" && args.backend != "dpdk") {
    return make_error("--backend: expected kernel, xdp or dpdk, got \"" + args.backend + "\"");
  }
  if (args.backend != "xdp" && args.xdp_mode != "auto") return make_error("--xdp-mode: only with --backend xdp");
  if (const std::string_view flag = dpdk_flag_given(args); args.backend != "dpdk" && !flag.empty()) {
    return make_error(std::string(flag) + ": only with --backend dpdk");
  }
  if (args.backend == "kernel") return options;
  if (args.backend == "dpdk") {
    if (!interface.empty()) {
      return make_error("-I: --backend dpdk has one port (--dpdk-port), which is no kernel interface: leave -I unset");
    }
    auto dpdk = dpdk_flags(args);
    if (!dpdk) return dpdk.error();
    options.dpdk = std::move(dpdk.value());
    return options;
  }
  if (interface.empty()) return make_error("--backend xdp: give the interface to attach to with -I");
  options.xdp.interfaces = {interface};
  for (const auto mode : {dp::XdpAttachMode::kAuto, dp::XdpAttachMode::kNative, dp::XdpAttachMode::kGeneric}) {
    if (args.xdp_mode == dp::attach_mode_name(mode)) {
      options.xdp.mode = mode;
      return options;
    }
  }
  return make_error("--xdp-mode: expected auto, native or generic, got \"" + args.xdp_mode + "\"");
}

Result<void> check_dpdk_local_address(const dp::DataplaneOptions& options, const SocketAddress& address,
                                      bool allow_wildcard, std::string_view flag) {
  if (options.backend != "dpdk") return {};
  const bool wildcard = address == SocketAddress::any(address.family(), address.port());
  if ((allow_wildcard && wildcard) || dpdk_owns(options.dpdk.addresses, address)) return {};
  std::string addresses;
  for (const dp::InterfaceAddress& own : options.dpdk.addresses) {
    addresses += (addresses.empty() ? "" : ", ") + own.address.host();
  }
  return make_error(std::string(flag) + " " + address.host() + ": expected " +
                    (allow_wildcard ? "a wildcard (0.0.0.0, ::) or " : "") +
                    "one of the port's addresses (--dpdk-address " + addresses + ")");
}

}  // namespace hubprobe
