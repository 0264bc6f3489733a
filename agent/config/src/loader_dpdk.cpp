// SPDX-License-Identifier: Apache-2.0
// The loader's [dataplane.dpdk] table, and what the dpdk backend's one port asks of the rest of the file:
// a [[path]] source and the reflector's listen addresses are addresses the port owns.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "config_limits.h"
#include "loader.h"
#include "toml_report.h"
#include "value_readers.h"

namespace hubprobe {
namespace {

// The address's octets in network order (4 for IPv4, 16 for IPv6).
std::array<uint8_t, 16> octets(const SocketAddress& address, size_t& count) {
  std::array<uint8_t, 16> bytes{};
  if (address.is_v4()) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address.sockaddr_ptr());
    std::memcpy(bytes.data(), &v4->sin_addr, 4);
    count = 4;
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddr_ptr());
    std::memcpy(bytes.data(), &v6->sin6_addr, 16);
    count = 16;
  }
  return bytes;
}

// The same address, ports ignored.
bool same_host(SocketAddress a, SocketAddress b) {
  a.set_port(0);
  b.set_port(0);
  return a == b;
}

// True when `address` lies in the prefix of `own` (same family, the first prefix_length bits equal).
bool on_link(const dp::InterfaceAddress& own, const SocketAddress& address) {
  if (own.address.family() != address.family()) return false;
  size_t count = 0;
  const std::array<uint8_t, 16> a = octets(own.address, count);
  const std::array<uint8_t, 16> b = octets(address, count);
  unsigned bits = own.prefix_length;
  for (size_t i = 0; i < count && bits > 0; ++i) {
    const unsigned take = std::min(bits, 8u);
    const auto mask = static_cast<uint8_t>(0xff00u >> take);
    if ((a[i] & mask) != (b[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

std::string family_name(int family) { return family == AF_INET ? "IPv4" : "IPv6"; }

// "198.18.0.1/24, 2001:db8::1/64": the port's addresses of `family` (0 = all), for messages.
std::string list_addresses(const std::vector<dp::InterfaceAddress>& port, int family) {
  std::string text;
  for (const dp::InterfaceAddress& own : port) {
    if (family != 0 && own.address.family() != family) continue;
    if (!text.empty()) text += ", ";
    text += own.address.host() + "/" + std::to_string(own.prefix_length);
  }
  return text;
}

bool has_family(const std::vector<dp::InterfaceAddress>& port, int family) {
  return std::any_of(port.begin(), port.end(),
                     [&](const dp::InterfaceAddress& own) { return own.address.family() == family; });
}

}  // namespace

std::string dpdk_off_link(const std::vector<dp::InterfaceAddress>& port, const SocketAddress& address,
                          std::string_view what, std::string_view addresses) {
  const int family = address.family();
  if (!has_family(port, family)) {
    return std::string(what) + " of a family the port has an address of (" + std::string(addresses) + " has no " +
           family_name(family) + " address)";
  }
  if (dpdk_owns(port, address)) return std::string(what) + " other than the port's own addresses";
  if (std::none_of(port.begin(), port.end(), [&](const dp::InterfaceAddress& own) { return on_link(own, address); })) {
    return std::string(what) + " on-link of one of the port's " + family_name(family) + " addresses (" +
           list_addresses(port, family) + ")";
  }
  return {};
}

bool dpdk_owns(const std::vector<dp::InterfaceAddress>& port, const SocketAddress& address) {
  return std::any_of(port.begin(), port.end(),
                     [&](const dp::InterfaceAddress& own) { return same_host(own.address, address); });
}

namespace config_detail {
namespace {

constexpr std::string_view kTable = "dataplane.dpdk";
constexpr std::string_view kAddressesWhat =
    "an array of the port's addresses with prefix lengths like [\"198.18.0.1/24\", \"2001:db8::1/64\"]";
constexpr std::string_view kMacWhat = "a unicast MAC address like \"02:00:00:00:00:02\"";

std::string key_path(std::string_view key) { return join(std::string(kTable), key); }

bool owned(const dp::DpdkOptions& options, const SocketAddress& address) {
  return dpdk_owns(options.addresses, address);
}

std::string off_link(const SocketAddress& address, const dp::DpdkOptions& options, std::string_view what) {
  return dpdk_off_link(options.addresses, address, what, key_path("addresses"));
}

dp::InterfaceAddress read_interface_address(const toml::node& node, const std::string& path) {
  constexpr std::string_view kWhat = "an address with its prefix length like \"198.18.0.1/24\" or \"2001:db8::1/64\"";
  const std::string_view text = read_string(node, path, kWhat);
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) expected(node, path, std::string(kWhat) + " (the prefix length is required)");
  auto host = dp::parse_host(text.substr(0, slash));
  if (!host || !unicast(*host, false)) expected(node, path, kWhat);
  auto parsed = dp::parse_interface_address(text);
  if (!parsed) {
    expected(node, path,
             "a prefix length 0.." + std::string(host->is_v4() ? "32" : "128") + " after the " +
                 family_name(host->family()) + " address");
  }
  return *parsed;
}

void read_addresses(const toml::table& dpdk, dp::DpdkOptions& options) {
  const std::string path = key_path("addresses");
  const toml::node* node = dpdk.get("addresses");
  if (node == nullptr) missing(dpdk, path, std::string(kAddressesWhat) + ": the addresses the port answers ARP/ND for");
  if (!node->is_array() || node->as_array()->empty()) expected(*node, path, kAddressesWhat);
  const toml::array& array = *node->as_array();
  for (size_t i = 0; i < array.size(); ++i) {
    const std::string element_path = indexed(path, i);
    const dp::InterfaceAddress address = read_interface_address(*array.get(i), element_path);
    if (owned(options, address.address)) expected(*array.get(i), element_path, "an address not listed before");
    options.addresses.push_back(address);
  }
}

void read_gateways(const toml::node& node, dp::DpdkOptions& options) {
  const std::string path = key_path("gateway");
  constexpr std::string_view kWhat =
      "a gateway address like \"198.18.0.254\", or an array of one IPv4 and one IPv6 gateway";
  if (!node.is_string() && !(node.is_array() && !node.as_array()->empty())) expected(node, path, kWhat);
  const auto read_one = [&](const toml::node& element, const std::string& element_path) {
    SocketAddress gateway = read_host(element, element_path, "198.18.0.254", false);
    gateway.set_port(0);
    SocketAddress& slot = gateway.is_v4() ? options.gateway4 : options.gateway6;
    if (slot.valid()) {
      expected(element, element_path,
               "at most one gateway per address family (the " + family_name(gateway.family()) + " gateway is " +
                   slot.host() + ")");
    }
    if (const std::string why = off_link(gateway, options, "a gateway"); !why.empty()) {
      expected(element, element_path, why);
    }
    slot = gateway;
  };
  if (node.is_string()) {
    read_one(node, path);
    return;
  }
  const toml::array& array = *node.as_array();
  for (size_t i = 0; i < array.size(); ++i) read_one(*array.get(i), indexed(path, i));
}

void read_neighbours(const toml::node& node, dp::DpdkOptions& options) {
  const std::string path = key_path("neighbours");
  if (!node.is_table()) {
    expected(node, path,
             "a table of neighbour addresses and their MACs like { \"198.18.0.2\" = \"02:00:00:00:00:02\" }");
  }
  // In file order (a table iterates its keys sorted), so the first problem in the file is the one reported.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, value] : *node.as_table()) entries.emplace_back(&key, &value);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return position_of(a.first->source()) < position_of(b.first->source());
  });
  std::vector<std::string_view> written;  // each neighbour's key as the file writes it
  for (const auto& [key, value] : entries) {
    const std::string entry_path = join(path, key->str());
    auto address = dp::parse_host(key->str());
    if (!address || !unicast(*address, false)) {
      fail(key->source(), entry_path,
           "expected a numeric IPv4 or IPv6 neighbour address as the key, like \"198.18.0.2\" = "
           "\"02:00:00:00:00:02\", got " +
               quote(key->str()));
    }
    if (const std::string why = off_link(*address, options, "a neighbour"); !why.empty()) {
      fail(key->source(), entry_path, "expected " + why + ", got " + quote(key->str()));
    }
    for (size_t i = 0; i < options.neighbours.size(); ++i) {
      if (same_host(options.neighbours[i].address, *address)) {
        fail(key->source(), entry_path,
             "expected a neighbour not listed before, got " + quote(key->str()) + " (the same address as " +
                 quote(written[i]) + ")");
      }
    }
    auto mac = dp::parse_mac(read_string(*value, entry_path, kMacWhat));
    const bool zero = mac && std::all_of(mac->begin(), mac->end(), [](uint8_t octet) { return octet == 0; });
    if (!mac || zero || ((*mac)[0] & 1) != 0) expected(*value, entry_path, kMacWhat);
    options.neighbours.push_back(dp::StaticNeighbour{*address, *mac});
    written.push_back(key->str());
  }
}

uint16_t read_descriptors(const toml::node& node, const std::string& path) {
  constexpr std::string_view kWhat = "a ring size that is a power of two from 64 to 4096, like 1024";
  const int64_t value = read_integer(node, path, kMinDpdkDescriptors, kMaxDpdkDescriptors, kWhat);
  if ((value & (value - 1)) != 0) expected(node, path, kWhat);
  return static_cast<uint16_t>(value);
}

}  // namespace

void Loader::read_dpdk_options(const toml::table& dataplane, const toml::table* dpdk, dp::DpdkOptions& options) {
  constexpr std::string_view kPortWhat =
      "a PCI address like \"0000:03:00.0\" or a vdev like \"net_af_packet0,iface=eth1\"";
  if (dpdk == nullptr) missing(dataplane, key_path("port"), std::string(kPortWhat) + ": the port the backend drives");
  check_keys(*dpdk, std::string(kTable),
             {"port", "addresses", "gateway", "neighbours", "eal_args", "lcore", "rx_queues", "tx_queues",
              "rx_descriptors", "tx_descriptors", "idle_pause_us"});
  const toml::node* port = dpdk->get("port");
  if (port == nullptr) missing(*dpdk, key_path("port"), std::string(kPortWhat) + ": the port the backend drives");
  options.port = std::string(read_string(*port, key_path("port"), kPortWhat));
  if (options.port.empty()) expected(*port, key_path("port"), kPortWhat);
  read_addresses(*dpdk, options);
  if (const toml::node* node = dpdk->get("gateway")) read_gateways(*node, options);
  if (const toml::node* node = dpdk->get("neighbours")) read_neighbours(*node, options);
  if (const toml::node* node = dpdk->get("eal_args")) {
    constexpr std::string_view kWhat = "an array of EAL arguments like [\"--no-huge\", \"-m\", \"256\"]";
    if (!node->is_array()) expected(*node, key_path("eal_args"), kWhat);
    const toml::array& array = *node->as_array();
    for (size_t i = 0; i < array.size(); ++i) {
      const std::string path = indexed(key_path("eal_args"), i);
      const std::string_view arg = read_string(*array.get(i), path, "an EAL argument (a string) like \"--no-huge\"");
      if (arg.empty()) expected(*array.get(i), path, "an EAL argument, not an empty string");
      options.eal_args.emplace_back(arg);
    }
  }
  if (const toml::node* node = dpdk->get("lcore")) {
    options.lcore = static_cast<int>(
        read_integer(*node, key_path("lcore"), 0, kMaxDpdkLcore,
                     "an lcore id 0.." + std::to_string(kMaxDpdkLcore) + " (leave lcore out for the last core)"));
  }
  if (const toml::node* node = dpdk->get("idle_pause_us")) {
    options.idle_pause_us = static_cast<int>(read_integer(
        *node, key_path("idle_pause_us"), 0, 1000,
        "0..1000 microseconds (0 = spin; a pause saves the core and delays RX stamps by up to the pause)"));
  }
  // 1 is the only count the backend implements: a larger one would be read and then ignored.
  const auto read_queues = [&](std::string_view key, uint16_t& field) {
    if (const toml::node* node = dpdk->get(key)) {
      field = static_cast<uint16_t>(read_integer(
          *node, key_path(key), 1, 1, "1 (multi-queue is not implemented: the backend polls one RX and one TX queue)"));
    }
  };
  read_queues("rx_queues", options.rx_queues);
  read_queues("tx_queues", options.tx_queues);
  if (const toml::node* node = dpdk->get("rx_descriptors")) {
    options.rx_descriptors = read_descriptors(*node, key_path("rx_descriptors"));
  }
  if (const toml::node* node = dpdk->get("tx_descriptors")) {
    options.tx_descriptors = read_descriptors(*node, key_path("tx_descriptors"));
  }
}

void Loader::check_dpdk_address(const toml::node& node, const std::string& path, const SocketAddress& host,
                                bool allow_wildcard, const DataplaneConfig& dataplane) const {
  if (dataplane.backend != "dpdk") return;
  if (allow_wildcard && !unicast(host, false) && unicast(host, true)) return;  // 0.0.0.0 or ::
  if (owned(dataplane.dpdk, host)) return;
  expected(node, path,
           std::string(allow_wildcard ? "a wildcard (\"0.0.0.0\", \"::\") or " : "") +
               "one of the dpdk port's addresses (" + key_path("addresses") + ": " +
               list_addresses(dataplane.dpdk.addresses, 0) + ")");
}

void Loader::check_dpdk_family(const toml::node& node, const std::string& path, const SocketAddress& host,
                               const DataplaneConfig& dataplane) const {
  if (dataplane.backend != "dpdk" || has_family(dataplane.dpdk.addresses, host.family())) return;
  expected(node, path,
           "an address of a family the dpdk port has an address of (" + key_path("addresses") + " has no " +
               family_name(host.family()) + " address)");
}

}  // namespace config_detail
}  // namespace hubprobe
