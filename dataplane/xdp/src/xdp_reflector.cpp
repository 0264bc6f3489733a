// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/xdp_reflector.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/types.h>
#include <net/if.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

// The shared definitions come before the skeleton, which names them without defining them.
#include "hubprobe/stamp_wire.h"
#include "stamp_reflect.h"
#include "stamp_reflect.skel.h"

namespace hubprobe::xdp {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;

// The defaults of the public header are the program's.
static_assert(ReflectorOptions{}.max_sessions == STAMP_REFLECT_DEFAULT_MAX_SESSIONS);
static_assert(ReflectorOptions{}.max_rate_buckets == STAMP_REFLECT_DEFAULT_MAX_RATE_BUCKETS);
static_assert(ReflectorOptions{}.max_rx_stamps == STAMP_REFLECT_DEFAULT_MAX_RX_STAMPS);
static_assert(ReflectorOptions{}.session_idle_s == STAMP_REFLECT_DEFAULT_SESSION_IDLE_S);
static_assert(ReflectorOptions{}.reply_ttl == STAMP_REFLECT_DEFAULT_REPLY_TTL);
static_assert(sizeof(stamp_reflect_policy) == sizeof(uint64_t), "stored with one 64-bit store");
static_assert(sizeof(RxStampKey) == sizeof(stamp_reflect_rx_key));

constexpr std::array<std::string_view, STAMP_REFLECT_COUNTER_MAX> kCounterNames = {
#define HUBPROBE_COUNTER_NAME(id, name) #name,
    STAMP_REFLECT_COUNTERS(HUBPROBE_COUNTER_NAME)
#undef HUBPROBE_COUNTER_NAME
};

// libbpf returns -errno; errno itself is positive: either way, the error's code is positive.
Error libbpf_error(const std::string& what, int err) { return errno_error(what, std::abs(err)); }

// libbpf's own messages (the verifier's log among them) do not go to stderr: the calling thread keeps the
// reason of a failure, which a failed load names in its error: the verifier's last line before its summary
// ("processed N insns"), or else libbpf's first error, or else its first warning.
struct LibbpfReason {
  std::string first_warning, first_error, previous_line, verifier;
  void line(std::string_view text) {
    while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.remove_suffix(1);
    if (text.starts_with("libbpf: ")) text.remove_prefix(8);
    if (text.empty()) return;
    if (text.starts_with("processed ")) verifier = previous_line;
    if (first_warning.empty()) first_warning = std::string(text);
    if (first_error.empty() && text.find("rror") != std::string_view::npos) first_error = std::string(text);
    previous_line = std::string(text);
  }
  std::string text() const { return !verifier.empty() ? verifier : !first_error.empty() ? first_error : first_warning; }
};
thread_local LibbpfReason libbpf_reason_kept;

int keep_libbpf_warning(libbpf_print_level level, const char* format, va_list args) {
  if (level != LIBBPF_WARN) return 0;
  va_list measure;
  va_copy(measure, args);
  const int length = std::vsnprintf(nullptr, 0, format, measure);
  va_end(measure);
  if (length <= 0) return 0;
  std::vector<char> buffer(static_cast<size_t>(length) + 1);
  std::vsnprintf(buffer.data(), buffer.size(), format, args);
  std::string_view text(buffer.data(), static_cast<size_t>(length));
  // One message may carry many lines (the verifier's log).
  while (!text.empty()) {
    const size_t end = text.find('\n');
    libbpf_reason_kept.line(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return 0;
}

// " (libbpf: REASON)" for the error of a failed load, or nothing.
std::string libbpf_reason() {
  const std::string reason = libbpf_reason_kept.text();
  return reason.empty() ? std::string() : " (libbpf: " + reason + ")";
}

int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsPerSecond + ts.tv_nsec;
}

std::string interface_name(int ifindex) {
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr) return "ifindex " + std::to_string(ifindex);
  return std::string(name) + " (ifindex " + std::to_string(ifindex) + ")";
}

const char* mode_name(AttachMode mode) { return mode == AttachMode::kNative ? "native" : "generic"; }

// The XDP program attached to `ifindex` in words: "program \"NAME\" (id N, MODE mode)", or a shorter
// form when it cannot be looked up further.
std::string attached_program(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, query);
  if (bpf_xdp_query(ifindex, 0, &query) != 0) return "an XDP program";
  const uint32_t id = query.prog_id       ? query.prog_id
                      : query.drv_prog_id ? query.drv_prog_id
                      : query.skb_prog_id ? query.skb_prog_id
                                          : query.hw_prog_id;
  const char* mode = query.attach_mode == XDP_ATTACHED_SKB   ? "generic"
                     : query.attach_mode == XDP_ATTACHED_HW  ? "offloaded"
                     : query.attach_mode == XDP_ATTACHED_DRV ? "native"
                                                             : "several";
  const std::string where = "id " + std::to_string(id) + ", " + mode + " mode";
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "XDP program " + where;
  bpf_prog_info info{};
  uint32_t length = sizeof(info);
  const int err = bpf_obj_get_info_by_fd(fd, &info, &length);
  close(fd);
  if (err != 0 || info.name[0] == 0) return "XDP program " + where;
  return "XDP program \"" + std::string(info.name) + "\" (" + where + ")";
}

// The key of an allow-list trie: IPv6 as is, IPv4 as an IPv4-mapped IPv6 prefix.
stamp_reflect_prefix prefix_key(const IpPrefix& prefix) {
  stamp_reflect_prefix key{};
  if (prefix.family() == AF_INET6) {
    std::memcpy(key.addr, prefix.bytes().data(), sizeof(key.addr));
    key.prefixlen = prefix.length();
  } else {
    key.addr[10] = 0xff;
    key.addr[11] = 0xff;
    std::memcpy(key.addr + 12, prefix.bytes().data(), 4);
    key.prefixlen = STAMP_REFLECT_V4_MAPPED_PREFIX_LEN + prefix.length();
  }
  return key;
}

// An address as the listen map's key: IPv6 as is, IPv4 as ::ffff:a.b.c.d.
std::array<uint8_t, STAMP_REFLECT_ADDR_LEN> address_key(const SocketAddress& address) {
  std::array<uint8_t, STAMP_REFLECT_ADDR_LEN> key{};
  if (address.is_v6()) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddr_ptr());
    std::memcpy(key.data(), &in6->sin6_addr, key.size());
  } else {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(address.sockaddr_ptr());
    key[10] = key[11] = 0xff;
    std::memcpy(key.data() + 12, &in4->sin_addr, 4);
  }
  return key;
}

int set_max_entries(bpf_map* map, uint32_t entries) {
  return entries == 0 ? -EINVAL : bpf_map__set_max_entries(map, entries);
}

}  // namespace

int64_t realtime_minus_tai_ns() {
  const int64_t tai_before = clock_ns(CLOCK_TAI);
  const int64_t realtime = clock_ns(CLOCK_REALTIME);
  const int64_t tai_after = clock_ns(CLOCK_TAI);
  const int64_t diff = realtime - (tai_before + (tai_after - tai_before) / 2);
  // The two clocks differ by the kernel's TAI offset, whole seconds: round away the reading jitter.
  return static_cast<int64_t>(std::llround(static_cast<double>(diff) / kNsPerSecond)) * kNsPerSecond;
}

Result<std::unique_ptr<XdpReflector>> XdpReflector::load(const ReflectorOptions& options) {
  libbpf_set_print(keep_libbpf_warning);
  libbpf_reason_kept = LibbpfReason{};
  stamp_reflect* skeleton = stamp_reflect__open();
  if (skeleton == nullptr) return libbpf_error("opening the XDP STAMP reflector", errno);
  stamp_reflect_config& config = skeleton->rodata->stamp_reflect_config;
  config.port = options.port;
  config.reply_ttl = options.reply_ttl;
  config.timestamp_format = options.format == TimestampFormat::kPtp ? STAMP_REFLECT_TS_PTP : STAMP_REFLECT_TS_NTP;
  config.session_idle_s = options.session_idle_s;
  const std::pair<bpf_map*, uint32_t> bounds[] = {{skeleton->maps.sessions, options.max_sessions},
                                                  {skeleton->maps.rate_buckets, options.max_rate_buckets},
                                                  {skeleton->maps.rx_stamps, options.max_rx_stamps}};
  for (const auto& [map, entries] : bounds) {
    if (const int err = set_max_entries(map, entries); err != 0) {
      const std::string name = bpf_map__name(map);
      stamp_reflect__destroy(skeleton);
      return libbpf_error("sizing the XDP STAMP reflector's map " + name + " (the bound must be at least 1)", err);
    }
  }
  if (const int err = stamp_reflect__load(skeleton); err != 0) {
    stamp_reflect__destroy(skeleton);
    return libbpf_error(
        "loading the XDP STAMP reflector (needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; kernel >= 6.1 "
        "with BTF)" +
            libbpf_reason(),
        err);
  }
  std::unique_ptr<XdpReflector> reflector(new XdpReflector(skeleton, options));
  if (auto r = reflector->set_listen({SocketAddress::any(AF_INET, 0), SocketAddress::any(AF_INET6, 0)}); !r) {
    return r.error();
  }
  ReflectorPolicy initial;
  initial.mode = options.reflect_unauthenticated ? ReflectMode::kAnswer : ReflectMode::kAuthenticated;
  if (auto r = reflector->set_policy(initial); !r) return r.error();
  return reflector;
}

XdpReflector::XdpReflector(stamp_reflect* skeleton, const ReflectorOptions& options)
    : skeleton_(skeleton), options_(options) {}

XdpReflector::~XdpReflector() {
  detach();
  stamp_reflect__destroy(skeleton_);
}

Result<void> XdpReflector::attach(int ifindex, AttachMode mode) {
  if (attached()) {
    return make_error("the XDP STAMP reflector is already attached to " + interface_name(ifindex_), EALREADY);
  }
  // A link, not a netlink attachment: it dies with its file descriptor, so with this process. Without
  // XDP_FLAGS_REPLACE the kernel refuses when another program is attached: we never replace one.
  LIBBPF_OPTS(bpf_link_create_opts, link_options,
              .flags = mode == AttachMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
  const int fd = bpf_link_create(program_fd(), ifindex, BPF_XDP, &link_options);
  if (fd < 0) {
    const std::string where = interface_name(ifindex);
    if (fd == -EBUSY || fd == -EEXIST) {
      return libbpf_error("attaching the XDP STAMP reflector to " + where + ": " + attached_program(ifindex) +
                              " is attached there already (detach it, or run the reflector on another interface)",
                          EBUSY);
    }
    return libbpf_error("attaching the XDP STAMP reflector to " + where + " in " + mode_name(mode) + " mode", fd);
  }
  link_fd_ = fd;
  ifindex_ = ifindex;
  mode_ = mode;
  return {};
}

Result<AttachMode> XdpReflector::attach_auto(int ifindex) {
  auto native = attach(ifindex, AttachMode::kNative);
  if (native) return AttachMode::kNative;
  const int code = native.error().code;
  if (code == EBUSY || code == EALREADY || code == EPERM) return native.error();
  auto generic = attach(ifindex, AttachMode::kGeneric);
  if (!generic) return make_error(native.error().message + "; then " + generic.error().message, generic.error().code);
  return AttachMode::kGeneric;
}

std::optional<AttachMode> XdpReflector::attach_mode() const {
  if (!attached()) return std::nullopt;
  return mode_;
}

void XdpReflector::detach() {
  if (link_fd_ < 0) return;
  // Closing the only reference to the link detaches the program. bpf_link_detach() first, so the
  // program is gone from the interface even if a forked child inherited the descriptor.
  bpf_link_detach(link_fd_);
  close(link_fd_);
  link_fd_ = -1;
  ifindex_ = 0;
}

Result<void> XdpReflector::publish_clock(const ClockState& clock) {
  int64_t offset_ns = realtime_minus_tai_ns();
  // PTP timestamps are on the TAI scale, which needs the true TAI - UTC even when the kernel's TAI
  // offset (and thus CLOCK_TAI) was never set.
  if (options_.format == TimestampFormat::kPtp) offset_ns += int64_t{clock.tai_offset_s} * kNsPerSecond;
  return publish_clock(offset_ns, ErrorEstimate::from_clock(clock, options_.format).encode());
}

Result<void> XdpReflector::publish_clock(int64_t offset_ns, uint16_t error_estimate) {
  if ((error_estimate & STAMP_EE_MULT_MASK) == 0) {
    return make_error("an Error Estimate with a zero multiplier is invalid (RFC 4656)", EINVAL);
  }
  stamp_reflect_clock& clock = skeleton_->bss->stamp_reflect_clock;
  // The program reads each field with one load; aligned atomic stores keep each value whole. The
  // offset goes first so that the first published Error Estimate (which enables reflection) never
  // meets an unset offset.
  __atomic_store_n(&clock.offset_ns, offset_ns, __ATOMIC_RELEASE);
  __atomic_store_n(&clock.error_estimate, error_estimate, __ATOMIC_RELEASE);
  return {};
}

Result<void> XdpReflector::fill_allow_list(uint8_t list, const std::vector<IpPrefix>& prefixes) {
  bpf_map* trie = list == STAMP_REFLECT_ALLOW_LIST_0 ? skeleton_->maps.allow_list_0 : skeleton_->maps.allow_list_1;
  stamp_reflect_prefix key{};
  // Empty it first: it holds the list before the one in force.
  while (bpf_map__get_next_key(trie, nullptr, &key, sizeof(key)) == 0) {
    if (const int err = bpf_map__delete_elem(trie, &key, sizeof(key), 0); err != 0) {
      return libbpf_error("clearing an XDP allow list", err);
    }
  }
  const uint8_t present = 1;
  for (const IpPrefix& prefix : prefixes) {
    key = prefix_key(prefix);
    if (const int err = bpf_map__update_elem(trie, &key, sizeof(key), &present, sizeof(present), BPF_ANY); err != 0) {
      return libbpf_error("adding " + prefix.to_string() + " to the XDP allow list", err);
    }
  }
  return {};
}

Result<void> XdpReflector::set_policy(const ReflectorPolicy& policy) {
  if (policy.allow.size() > STAMP_REFLECT_MAX_ALLOW_PREFIXES) {
    return make_error("the XDP allow list takes at most " + std::to_string(STAMP_REFLECT_MAX_ALLOW_PREFIXES) +
                          " prefixes, not " + std::to_string(policy.allow.size()),
                      EINVAL);
  }
  std::lock_guard lock(policy_mutex_);
  stamp_reflect_policy& live = skeleton_->bss->stamp_reflect_policy;
  stamp_reflect_policy next{};
  next.rate_limit_pps = policy.rate_limit_pps;
  next.stateful = policy.stateful ? 1 : 0;
  next.reflect = policy.mode == ReflectMode::kAnswer          ? STAMP_REFLECT_ANSWER
                 : policy.mode == ReflectMode::kAuthenticated ? STAMP_REFLECT_AUTH
                                                              : STAMP_REFLECT_OFF;
  next.allow_list = STAMP_REFLECT_ALLOW_ALL;
  if (!policy.allow.empty()) {
    // The trie not in force is filled; the store below switches to it.
    next.allow_list =
        live.allow_list == STAMP_REFLECT_ALLOW_LIST_0 ? STAMP_REFLECT_ALLOW_LIST_1 : STAMP_REFLECT_ALLOW_LIST_0;
    if (auto filled = fill_allow_list(next.allow_list, policy.allow); !filled) return filled.error();
  }
  // One 64-bit store: the program reads the policy with one load.
  __atomic_store(&live, &next, __ATOMIC_RELEASE);
  policy_ = policy;
  return {};
}

Result<void> XdpReflector::set_listen(const std::vector<SocketAddress>& addresses) {
  if (addresses.size() > STAMP_REFLECT_MAX_LISTEN) {
    return make_error("the XDP reflector listens on at most " + std::to_string(STAMP_REFLECT_MAX_LISTEN) + " addresses",
                      EINVAL);
  }
  bpf_map* map = skeleton_->maps.listen_addrs;
  std::array<uint8_t, STAMP_REFLECT_ADDR_LEN> key{};
  // New ones first, then the old ones not in the new set go: an address in both never stops answering.
  const uint8_t present = 1;
  std::vector<std::array<uint8_t, STAMP_REFLECT_ADDR_LEN>> wanted;
  for (const SocketAddress& address : addresses) {
    wanted.push_back(address_key(address));
    if (const int err = bpf_map__update_elem(map, wanted.back().data(), key.size(), &present, 1, BPF_ANY); err != 0) {
      return libbpf_error("adding " + address.to_string() + " to the XDP reflector's addresses", err);
    }
  }
  std::vector<std::array<uint8_t, STAMP_REFLECT_ADDR_LEN>> present_keys;
  for (int err = bpf_map__get_next_key(map, nullptr, key.data(), key.size()); err == 0;
       err = bpf_map__get_next_key(map, present_keys.back().data(), key.data(), key.size())) {
    present_keys.push_back(key);
  }
  for (const auto& old : present_keys) {
    if (std::find(wanted.begin(), wanted.end(), old) == wanted.end()) {
      (void)bpf_map__delete_elem(map, old.data(), old.size(), 0);
    }
  }
  return {};
}

ReflectorPolicy XdpReflector::policy() const {
  std::lock_guard lock(policy_mutex_);
  return policy_;
}

Result<void> XdpReflector::register_sender_port(uint16_t port) {
  if (port == 0 || port == options_.port) {
    return make_error("cannot stamp replies to UDP port " + std::to_string(port) +
                          (port == 0 ? "" : ": it is the reflector's own port"),
                      EINVAL);
  }
  __atomic_fetch_or(&skeleton_->bss->stamp_reflect_sender_ports[port / 64], uint64_t{1} << (port % 64),
                    __ATOMIC_RELEASE);
  return {};
}

void XdpReflector::unregister_sender_port(uint16_t port) {
  __atomic_fetch_and(&skeleton_->bss->stamp_reflect_sender_ports[port / 64], ~(uint64_t{1} << (port % 64)),
                     __ATOMIC_RELEASE);
}

std::optional<WallNs> XdpReflector::take_rx_stamp(const RxStampKey& key) {
  const stamp_reflect_rx_key map_key{.local_port = key.local_port, .ssid = key.ssid, .sender_seq = key.sender_seq};
  uint64_t tai_ns = 0;
  if (bpf_map__lookup_and_delete_elem(skeleton_->maps.rx_stamps, &map_key, sizeof(map_key), &tai_ns, sizeof(tai_ns),
                                      0) != 0) {
    return std::nullopt;
  }
  return static_cast<WallNs>(tai_ns) + realtime_minus_tai_ns();
}

Result<std::vector<Counter>> XdpReflector::counters() const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return libbpf_error("counting possible CPUs", cpus);
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  std::vector<Counter> result;
  result.reserve(kCounterNames.size());
  for (uint32_t index = 0; index < kCounterNames.size(); ++index) {
    if (bpf_map__lookup_elem(skeleton_->maps.counters, &index, sizeof(index), per_cpu.data(),
                             per_cpu.size() * sizeof(uint64_t), 0) != 0) {
      return libbpf_error("reading XDP reflector counter " + std::string(kCounterNames[index]), errno);
    }
    uint64_t total = 0;
    for (const uint64_t value : per_cpu) total += value;
    result.push_back(Counter{kCounterNames[index], total});
  }
  return result;
}

std::span<const std::string_view> XdpReflector::counter_names() { return kCounterNames; }

int XdpReflector::program_fd() const { return bpf_program__fd(skeleton_->progs.stamp_reflect_xdp); }

}  // namespace hubprobe::xdp
