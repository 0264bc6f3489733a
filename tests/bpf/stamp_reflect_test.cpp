// SPDX-License-Identifier: Apache-2.0
// The XDP STAMP reflector (bpf/stamp_reflect.bpf.c) run through BPF_PROG_TEST_RUN: a table of input
// packets built by a small packet builder, each with its expected XDP action and counter; replies are
// checked field by field, checksums recomputed here independently of the program's arithmetic.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

// The shared definitions come before the skeleton, which names them without defining them.
#include "hubprobe/stamp_wire.h"
#include "stamp_reflect.h"
#include "stamp_reflect.skel.h"

#include "hubprobe/clock.h"
#include "hubprobe/prefix.h"
#include "hubprobe/stamp.h"
#include "hubprobe/xdp_reflector.h"

namespace {

namespace stamp = hubprobe::stamp;

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint16_t kEtherType8021Q = 0x8100;
constexpr uint16_t kEtherType8021AD = 0x88A8;
constexpr uint8_t kProtoUdp = 17;
constexpr size_t kEthHeaderLen = 14;
constexpr size_t kVlanTagLen = 4;
constexpr size_t kIpv4HeaderLen = 20;
constexpr size_t kIpv6HeaderLen = 40;
constexpr size_t kUdpHeaderLen = 8;
constexpr uint16_t kSenderPort = 40862;
constexpr uint8_t kRequestTtl = 57;
constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int32_t kTaiMinusUtcSeconds = 37;
// S=1, Z=0, scale 20, multiplier 0x42: an arbitrary but valid Error Estimate for the reflector clock.
constexpr uint16_t kReflectorErrorEstimate = STAMP_EE_S_BIT | (20 << STAMP_EE_SCALE_SHIFT) | 0x42;

// Addresses from the documentation/benchmarking ranges only (198.18.0.0/15, 2001:db8::/32).
constexpr std::array<uint8_t, 6> kSenderMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr std::array<uint8_t, 6> kReflectorMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
constexpr std::array<uint8_t, 4> kSenderIpv4 = {198, 18, 0, 1};
constexpr std::array<uint8_t, 4> kReflectorIpv4 = {198, 18, 0, 2};
constexpr std::array<uint8_t, 16> kSenderIpv6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
constexpr std::array<uint8_t, 16> kReflectorIpv6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

constexpr const char* kCounterNames[] = {
#define HUBPROBE_COUNTER_NAME(id, name) #name,
    STAMP_REFLECT_COUNTERS(HUBPROBE_COUNTER_NAME)
#undef HUBPROBE_COUNTER_NAME
};
static_assert(std::size(kCounterNames) == STAMP_REFLECT_COUNTER_MAX);

using Bytes = std::vector<uint8_t>;
using Counters = std::array<uint64_t, STAMP_REFLECT_COUNTER_MAX>;

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
uint16_t get16(std::span<const uint8_t> b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }

// RFC 1071 checksum over `data` in 16-bit big-endian words, deliberately written the textbook way
// (not the program's 32-bit memory-image arithmetic). Returns the folded, complemented sum.
uint16_t internet_checksum(std::span<const uint8_t> data, uint32_t initial = 0) {
  uint64_t sum = initial;
  for (size_t i = 0; i + 1 < data.size(); i += 2) sum += get16(data, i);
  if (data.size() % 2) sum += static_cast<uint32_t>(data.back()) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint32_t sum_words(std::span<const uint8_t> data) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < data.size(); i += 2) sum += get16(data, i);
  return sum;
}

// ---- Packet builder ---------------------------------------------------------------------------------

struct PacketSpec {
  int family = 4;
  uint16_t vlan_ethertype = 0;  // 0: untagged; else 0x8100 or 0x88a8
  uint16_t ethertype_override = 0;
  Bytes ipv4_options;      // multiple of 4
  uint16_t ipv4_frag = 0;  // flags + offset, host order
  uint8_t ip_protocol = kProtoUdp;
  uint16_t src_port = kSenderPort;
  uint16_t dst_port = STAMP_DEFAULT_PORT;
  std::optional<std::array<uint8_t, 4>> ipv4_dst;
  std::optional<std::array<uint8_t, 16>> ipv6_dst;
  Bytes payload;                    // UDP payload (the STAMP packet)
  std::optional<uint16_t> udp_len;  // lie about the UDP length
  std::optional<uint16_t> ip_len;   // lie about IPv4 total / IPv6 payload length
  bool no_udp_checksum = false;     // checksum field 0
  bool corrupt_udp_checksum = false;
  std::optional<size_t> truncate_to;  // cut the frame after building it
};

struct Layout {
  size_t l3 = 0;  // offset of the IP header
  size_t l4 = 0;  // offset of the UDP header
};

Layout layout_of(const PacketSpec& spec) {
  Layout l;
  l.l3 = kEthHeaderLen + (spec.vlan_ethertype ? kVlanTagLen : 0);
  l.l4 = l.l3 + (spec.family == 4 ? kIpv4HeaderLen + spec.ipv4_options.size() : kIpv6HeaderLen);
  return l;
}

uint32_t pseudo_header_sum(std::span<const uint8_t> frame, int family, size_t l3, uint16_t udp_len) {
  if (family == 4) return sum_words(frame.subspan(l3 + 12, 8)) + kProtoUdp + udp_len;
  return sum_words(frame.subspan(l3 + 8, 32)) + kProtoUdp + udp_len;
}

Bytes build(const PacketSpec& spec) {
  const Layout l = layout_of(spec);
  const size_t udp_len = kUdpHeaderLen + spec.payload.size();
  Bytes f(l.l4 + udp_len, 0);

  std::copy(kReflectorMac.begin(), kReflectorMac.end(), f.begin());
  std::copy(kSenderMac.begin(), kSenderMac.end(), f.begin() + 6);
  const uint16_t ethertype = spec.ethertype_override ? spec.ethertype_override
                             : spec.family == 4      ? kEtherTypeIpv4
                                                     : kEtherTypeIpv6;
  if (spec.vlan_ethertype) {
    put16(f, 12, spec.vlan_ethertype);
    put16(f, 14, 0x0064);  // PCP 0, VLAN 100
    put16(f, 16, ethertype);
  } else {
    put16(f, 12, ethertype);
  }

  if (spec.family == 4) {
    const size_t ihl = kIpv4HeaderLen + spec.ipv4_options.size();
    f[l.l3] = static_cast<uint8_t>(0x40 | ihl / 4);
    f[l.l3 + 1] = 0xb8;  // DSCP EF: must survive reflection untouched
    put16(f, l.l3 + 2, spec.ip_len.value_or(static_cast<uint16_t>(ihl + udp_len)));
    put16(f, l.l3 + 4, 0x1234);
    put16(f, l.l3 + 6, spec.ipv4_frag);
    f[l.l3 + 8] = kRequestTtl;
    f[l.l3 + 9] = spec.ip_protocol;
    std::copy(kSenderIpv4.begin(), kSenderIpv4.end(), f.begin() + l.l3 + 12);
    const auto dst = spec.ipv4_dst.value_or(kReflectorIpv4);
    std::copy(dst.begin(), dst.end(), f.begin() + l.l3 + 16);
    std::copy(spec.ipv4_options.begin(), spec.ipv4_options.end(), f.begin() + l.l3 + kIpv4HeaderLen);
    put16(f, l.l3 + 10, internet_checksum(std::span(f).subspan(l.l3, ihl)));
  } else {
    put16(f, l.l3, 0x6b80);      // version 6, traffic class 0xb8
    put16(f, l.l3 + 2, 0x1234);  // flow label
    put16(f, l.l3 + 4, spec.ip_len.value_or(static_cast<uint16_t>(udp_len)));
    f[l.l3 + 6] = spec.ip_protocol;
    f[l.l3 + 7] = kRequestTtl;
    std::copy(kSenderIpv6.begin(), kSenderIpv6.end(), f.begin() + l.l3 + 8);
    const auto dst = spec.ipv6_dst.value_or(kReflectorIpv6);
    std::copy(dst.begin(), dst.end(), f.begin() + l.l3 + 24);
  }

  put16(f, l.l4, spec.src_port);
  put16(f, l.l4 + 2, spec.dst_port);
  put16(f, l.l4 + 4, spec.udp_len.value_or(static_cast<uint16_t>(udp_len)));
  std::copy(spec.payload.begin(), spec.payload.end(), f.begin() + l.l4 + kUdpHeaderLen);
  if (!spec.no_udp_checksum) {
    uint16_t check = internet_checksum(std::span(f).subspan(l.l4),
                                       pseudo_header_sum(f, spec.family, l.l3, static_cast<uint16_t>(udp_len)));
    if (check == 0) check = 0xffff;
    if (spec.corrupt_udp_checksum) check ^= 0x0101;
    put16(f, l.l4 + 6, check);
  }
  if (spec.truncate_to) f.resize(*spec.truncate_to);
  return f;
}

stamp::TestPacket sender_fields() {
  stamp::TestPacket p;
  p.seq = 0xa1b2c3d4;
  p.timestamp = {0xe1234567, 0x89abcdef};
  p.error_estimate = 0x0123;
  p.ssid = 0xbeef;
  return p;
}

// An unauthenticated session-sender packet of `length` octets (zero padding after the base).
Bytes stamp_request(size_t length = STAMP_UNAUTH_BASE_LEN) {
  Bytes payload(length);
  auto encoded = stamp::encode_test_packet(sender_fields(), stamp::Mode::kUnauthenticated, nullptr, payload);
  EXPECT_TRUE(encoded.ok()) << encoded.error().message;
  return payload;
}

Bytes authenticated_request() {
  stamp::HmacKey key{Bytes(32, 0x5a)};
  Bytes payload(STAMP_AUTH_BASE_LEN);
  auto encoded = stamp::encode_test_packet(sender_fields(), stamp::Mode::kAuthenticated, &key, payload);
  EXPECT_TRUE(encoded.ok()) << encoded.error().message;
  return payload;
}

// A 44-octet base followed by an RFC 8972 Extra Padding TLV (type 1, 8 zero octets of value).
Bytes request_with_tlv() {
  Bytes payload = stamp_request(STAMP_UNAUTH_BASE_LEN + STAMP_TLV_HDR_LEN + 8);
  payload[STAMP_UNAUTH_BASE_LEN + 1] = STAMP_TLV_EXTRA_PADDING;
  payload[STAMP_UNAUTH_BASE_LEN + 3] = 8;
  return payload;
}

// A session-reflector packet as it reaches a session-sender, written from RFC 8762 4.3.1 offsets:
// reflector sequence number at octet 0, SSID at 14, Session-Sender Sequence Number at 24.
Bytes reflector_reply(uint32_t sender_seq, uint16_t ssid, size_t length = STAMP_UNAUTH_BASE_LEN) {
  Bytes payload(length, 0);
  put16(payload, 0, 0x7777);
  put16(payload, 2, 0x7777);
  put16(payload, 14, ssid);
  put16(payload, 24, static_cast<uint16_t>(sender_seq >> 16));
  put16(payload, 26, static_cast<uint16_t>(sender_seq));
  payload[40] = 61;
  return payload;
}

constexpr uint16_t kRegisteredPort = 40001;

Bytes with_last_byte_set(Bytes payload) {
  payload.back() = 1;
  return payload;
}

// ---- Loading and running the program ----------------------------------------------------------------

// An allow-list entry as the tries hold it, built here from the documented layout (stamp_reflect.h):
// IPv6 as is, IPv4 as ::ffff:a.b.c.d with 96 added to the length.
struct TestPrefix {
  std::array<uint8_t, 16> addr{};
  uint32_t length = 0;
};
TestPrefix v4_prefix(std::array<uint8_t, 4> a, uint32_t length) {
  TestPrefix p;
  p.addr[10] = p.addr[11] = 0xff;
  std::copy(a.begin(), a.end(), p.addr.begin() + 12);
  p.length = 96 + length;
  return p;
}
TestPrefix v6_prefix(std::array<uint8_t, 16> a, uint32_t length) { return TestPrefix{a, length}; }

// An IPv4 address as the program's 16-octet keys hold it (::ffff:a.b.c.d).
std::array<uint8_t, 16> mapped(std::array<uint8_t, 4> v4) {
  std::array<uint8_t, 16> a{};
  a[10] = a[11] = 0xff;
  std::copy(v4.begin(), v4.end(), a.begin() + 12);
  return a;
}

struct ReflectorConfig {
  uint16_t port = STAMP_DEFAULT_PORT;
  bool reflect_unauth = true;  // false: authenticated mode
  bool reflector_off = false;  // true: the policy says no reflector answers here (wins over reflect_unauth)
  hubprobe::TimestampFormat format = hubprobe::TimestampFormat::kNtp;
  bool publish_clock = true;
  uint8_t reply_ttl = STAMP_REFLECT_DEFAULT_REPLY_TTL;
  // Run-time policy, written before the first packet.
  bool stateful = false;
  uint32_t rate_limit_pps = 0;
  std::optional<std::vector<TestPrefix>> allow = std::nullopt;  // nullopt: no list (every source)
  std::vector<uint16_t> sender_ports = {};                      // registered for RX stamps
  // Destination addresses answered (16 octets, IPv4 mapped); nullopt: both families' wildcards.
  std::optional<std::vector<std::array<uint8_t, 16>>> listen = std::nullopt;
  uint32_t max_sessions = STAMP_REFLECT_DEFAULT_MAX_SESSIONS;
};

bool privileged_required() {
  const char* v = std::getenv("HUBPROBE_REQUIRE_PRIVILEGED");
  return v != nullptr && std::string(v) == "1";
}

int64_t timespec_ns(const timespec& ts) { return ts.tv_sec * kNsPerSecond + ts.tv_nsec; }

int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return timespec_ns(ts);
}

// CLOCK_REALTIME - CLOCK_TAI. The kernel keeps them a whole number of seconds apart, so rounding a
// bracketed reading gives the exact offset; this is what the xdp backend publishes too.
int64_t realtime_minus_tai_ns() {
  const int64_t tai_before = clock_ns(CLOCK_TAI);
  const int64_t realtime = clock_ns(CLOCK_REALTIME);
  const int64_t tai_after = clock_ns(CLOCK_TAI);
  const double diff = static_cast<double>(realtime - (tai_before + (tai_after - tai_before) / 2));
  return std::llround(diff / kNsPerSecond) * kNsPerSecond;
}

struct SkeletonDeleter {
  void operator()(stamp_reflect* skel) const { stamp_reflect__destroy(skel); }
};

struct RunResult {
  int error = 0;
  uint32_t action = 0;
  uint32_t duration_ns = 0;
  Bytes out;
};

// One BPF_PROG_TEST_RUN of the program `fd` over `in`.
RunResult run_program(int fd, const Bytes& in, int repeat = 1) {
  RunResult result;
  result.out.resize(in.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = result.out.data(),
              .data_size_in = static_cast<__u32>(in.size()), .data_size_out = static_cast<__u32>(result.out.size()),
              .repeat = repeat);
  result.error = bpf_prog_test_run_opts(fd, &opts);
  result.action = opts.retval;
  result.duration_ns = opts.duration;
  result.out.resize(opts.data_size_out);
  return result;
}

class LoadedReflector {
 public:
  // Returns nullptr with *error set (negative errno) when open or load fails.
  static std::unique_ptr<LoadedReflector> load(const ReflectorConfig& config, int* error) {
    std::unique_ptr<stamp_reflect, SkeletonDeleter> skel(stamp_reflect__open());
    if (!skel) {
      *error = -errno;
      return nullptr;
    }
    skel->rodata->stamp_reflect_config.port = config.port;
    skel->rodata->stamp_reflect_config.reply_ttl = config.reply_ttl;
    bpf_map__set_max_entries(skel->maps.sessions, config.max_sessions);
    skel->rodata->stamp_reflect_config.timestamp_format =
        config.format == hubprobe::TimestampFormat::kPtp ? STAMP_REFLECT_TS_PTP : STAMP_REFLECT_TS_NTP;
    if (int err = stamp_reflect__load(skel.get()); err != 0) {
      *error = err;
      return nullptr;
    }
    auto loaded = std::unique_ptr<LoadedReflector>(new LoadedReflector(std::move(skel), config));
    if (config.publish_clock) loaded->publish_clock();
    const uint8_t mode = config.reflector_off    ? STAMP_REFLECT_OFF
                         : config.reflect_unauth ? STAMP_REFLECT_ANSWER
                                                 : STAMP_REFLECT_AUTH;
    loaded->set_policy(mode, config.stateful, config.rate_limit_pps, config.allow);
    for (const uint16_t port : config.sender_ports) loaded->register_sender_port(port);
    const std::array<uint8_t, 16> any_v4 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}, any_v6{};
    for (const auto& address : config.listen.value_or(std::vector{any_v4, any_v6})) {
      const uint8_t present = 1;
      EXPECT_EQ(
          bpf_map__update_elem(loaded->skel_->maps.listen_addrs, address.data(), address.size(), &present, 1, BPF_ANY),
          0);
    }
    return loaded;
  }

  // Writes the policy; an allow list goes into trie 0, which the policy then names.
  void set_policy(uint8_t reflect, bool stateful, uint32_t rate_limit_pps,
                  const std::optional<std::vector<TestPrefix>>& allow) {
    stamp_reflect_policy& policy = skel_->bss->stamp_reflect_policy;
    policy.reflect = reflect;
    policy.stateful = stateful ? 1 : 0;
    policy.rate_limit_pps = rate_limit_pps;
    policy.allow_list = STAMP_REFLECT_ALLOW_ALL;
    if (!allow) return;
    for (const TestPrefix& prefix : *allow) {
      stamp_reflect_prefix key{};
      key.prefixlen = prefix.length;
      std::copy(prefix.addr.begin(), prefix.addr.end(), key.addr);
      const uint8_t value = 1;
      EXPECT_EQ(bpf_map__update_elem(skel_->maps.allow_list_0, &key, sizeof(key), &value, 1, BPF_ANY), 0);
    }
    policy.allow_list = STAMP_REFLECT_ALLOW_LIST_0;
  }

  void register_sender_port(uint16_t port) {
    skel_->bss->stamp_reflect_sender_ports[port / 64] |= uint64_t{1} << (port % 64);
  }

  // The program's monotonic clock from now on (0: the real one again).
  void set_mono_ns(uint64_t ns) { skel_->bss->stamp_reflect_clock.mono_override_ns = ns; }

  std::optional<uint64_t> rx_stamp(uint16_t port, uint16_t ssid, uint32_t sender_seq) const {
    const stamp_reflect_rx_key key{.local_port = port, .ssid = ssid, .sender_seq = sender_seq};
    uint64_t value = 0;
    if (bpf_map__lookup_elem(skel_->maps.rx_stamps, &key, sizeof(key), &value, sizeof(value), 0) != 0) {
      return std::nullopt;
    }
    return value;
  }

  size_t map_entries(const bpf_map* map) const {
    std::vector<uint8_t> key(bpf_map__key_size(map)), next(key.size());
    size_t n = 0;
    for (const void* previous = nullptr;
         bpf_map__get_next_key(map, previous, next.data(), next.size()) == 0 && n < 1'000'000; previous = key.data()) {
      key = next;
      ++n;
    }
    return n;
  }
  size_t sessions() const { return map_entries(skel_->maps.sessions); }
  size_t rx_stamps() const { return map_entries(skel_->maps.rx_stamps); }

  void publish_clock() {
    int64_t offset = realtime_minus_tai_ns();
    if (config_.format == hubprobe::TimestampFormat::kPtp) offset += int64_t{kTaiMinusUtcSeconds} * kNsPerSecond;
    skel_->bss->stamp_reflect_clock.offset_ns = offset;
    skel_->bss->stamp_reflect_clock.error_estimate = config_.format == hubprobe::TimestampFormat::kPtp
                                                         ? (kReflectorErrorEstimate | STAMP_EE_Z_BIT)
                                                         : kReflectorErrorEstimate;
  }

  RunResult run(const Bytes& in, int repeat = 1) {
    return run_program(bpf_program__fd(skel_->progs.stamp_reflect_xdp), in, repeat);
  }

  Counters counters() const {
    Counters total{};
    const int cpus = libbpf_num_possible_cpus();
    std::vector<uint64_t> per_cpu(static_cast<size_t>(std::max(cpus, 1)));
    for (uint32_t i = 0; i < STAMP_REFLECT_COUNTER_MAX; ++i) {
      if (bpf_map__lookup_elem(skel_->maps.counters, &i, sizeof(i), per_cpu.data(), per_cpu.size() * sizeof(uint64_t),
                               0) != 0) {
        ADD_FAILURE() << "reading counter " << kCounterNames[i] << ": " << strerror(errno);
        continue;
      }
      for (uint64_t v : per_cpu) total[i] += v;
    }
    return total;
  }

  const ReflectorConfig& config() const { return config_; }

 private:
  LoadedReflector(std::unique_ptr<stamp_reflect, SkeletonDeleter> skel, ReflectorConfig config)
      : skel_(std::move(skel)), config_(config) {}

  std::unique_ptr<stamp_reflect, SkeletonDeleter> skel_;
  ReflectorConfig config_;
};

// Loads the program or ends the test: skip without privileges (fail when CI demands them).
#define LOAD_REFLECTOR_OR_RETURN(var, config)                                                                     \
  int var##_error = 0;                                                                                            \
  auto var = LoadedReflector::load((config), &var##_error);                                                       \
  if (!var) {                                                                                                     \
    const std::string message = std::string("loading the XDP STAMP reflector failed: ") + strerror(-var##_error); \
    /* EPERM: no CAP_BPF/CAP_SYS_ADMIN. Not EACCES: that is the verifier rejecting the program. */                \
    if (var##_error == -EPERM && !privileged_required()) {                                                        \
      GTEST_SKIP() << message                                                                                     \
                   << " (needs root or CAP_BPF + CAP_NET_ADMIN; set "                                             \
                      "HUBPROBE_REQUIRE_PRIVILEGED=1 to make this a failure)";                                    \
    }                                                                                                             \
    FAIL() << message;                                                                                            \
  }

// ---- Checks ---------------------------------------------------------------------------------------

std::string counters_text(const Counters& c) {
  std::string s;
  for (size_t i = 0; i < c.size(); ++i) {
    if (c[i]) s += std::string(s.empty() ? "" : ", ") + kCounterNames[i] + "=" + std::to_string(c[i]);
  }
  return s.empty() ? "none" : s;
}

void expect_only_counter(const Counters& delta, stamp_reflect_counter index, uint64_t times = 1) {
  Counters expected{};
  expected[index] = times;
  EXPECT_EQ(delta, expected) << "expected " << kCounterNames[index] << "=" << times << ", got " << counters_text(delta);
}

// Everything a correct reflection of `in` must satisfy, checked on `out`.
void expect_reflection(const PacketSpec& spec, const Bytes& in, const Bytes& out, const ReflectorConfig& config,
                       int64_t wall_before, int64_t wall_after) {
  ASSERT_EQ(out.size(), in.size()) << "a reply is exactly as long as the request";
  const Layout l = layout_of(spec);
  const std::span<const uint8_t> o(out), i(in);

  EXPECT_TRUE(std::equal(o.begin(), o.begin() + 6, i.begin() + 6)) << "destination MAC = request source";
  EXPECT_TRUE(std::equal(o.begin() + 6, o.begin() + 12, i.begin())) << "source MAC = request destination";
  EXPECT_TRUE(std::equal(o.begin() + 12, o.begin() + l.l3, i.begin() + 12)) << "EtherType and VLAN tag kept";

  if (spec.family == 4) {
    EXPECT_TRUE(std::equal(o.begin() + l.l3, o.begin() + l.l3 + 8, i.begin() + l.l3))
        << "version, DSCP, length, ID, fragment field kept";
    EXPECT_EQ(o[l.l3 + 8], config.reply_ttl);
    EXPECT_EQ(o[l.l3 + 9], kProtoUdp);
    EXPECT_TRUE(std::equal(o.begin() + l.l3 + 12, o.begin() + l.l3 + 16, i.begin() + l.l3 + 16));
    EXPECT_TRUE(std::equal(o.begin() + l.l3 + 16, o.begin() + l.l3 + 20, i.begin() + l.l3 + 12));
    EXPECT_EQ(internet_checksum(o.subspan(l.l3, l.l4 - l.l3)), 0) << "IPv4 header checksum";
  } else {
    EXPECT_TRUE(std::equal(o.begin() + l.l3, o.begin() + l.l3 + 7, i.begin() + l.l3))
        << "version, traffic class, flow label, payload length, next header kept";
    EXPECT_EQ(o[l.l3 + 7], config.reply_ttl);
    EXPECT_TRUE(std::equal(o.begin() + l.l3 + 8, o.begin() + l.l3 + 24, i.begin() + l.l3 + 24));
    EXPECT_TRUE(std::equal(o.begin() + l.l3 + 24, o.begin() + l.l3 + 40, i.begin() + l.l3 + 8));
  }

  EXPECT_EQ(get16(o, l.l4), get16(i, l.l4 + 2)) << "source port = request destination port";
  EXPECT_EQ(get16(o, l.l4 + 2), get16(i, l.l4)) << "destination port = request source port";
  const uint16_t udp_len = get16(o, l.l4 + 4);
  EXPECT_EQ(udp_len, get16(i, l.l4 + 4));
  EXPECT_NE(get16(o, l.l4 + 6), 0) << "the reply always carries a UDP checksum";
  EXPECT_EQ(internet_checksum(o.subspan(l.l4, udp_len), pseudo_header_sum(o, spec.family, l.l3, udp_len)), 0)
      << "UDP checksum";

  const size_t payload_at = l.l4 + kUdpHeaderLen;
  const auto reply_bytes = o.subspan(payload_at, udp_len - kUdpHeaderLen);
  const auto decoded = stamp::decode_reflected_packet(reply_bytes, stamp::Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok) << stamp::to_string(decoded.error);
  const stamp::ReflectedPacket& r = decoded.parsed.packet;
  const stamp::TestPacket sent = sender_fields();
  if (config.stateful) {
    EXPECT_EQ(r.seq, 0u) << "stateful reflector: a new session's first sequence number";
  } else {
    EXPECT_EQ(r.seq, sent.seq) << "stateless reflector: sequence number = sender's";
  }
  EXPECT_EQ(r.sender_seq, sent.seq);
  EXPECT_EQ(r.sender_timestamp, sent.timestamp);
  EXPECT_EQ(r.sender_error_estimate, sent.error_estimate);
  EXPECT_EQ(r.ssid, sent.ssid);
  EXPECT_EQ(r.sender_ttl, kRequestTtl);
  EXPECT_EQ(reply_bytes[40], kRequestTtl) << "Ses-Sender TTL in octet 40 (RFC 8762 4.3.1)";
  const bool ptp = config.format == hubprobe::TimestampFormat::kPtp;
  EXPECT_EQ(r.error_estimate, ptp ? (kReflectorErrorEstimate | STAMP_EE_Z_BIT) : kReflectorErrorEstimate);

  stamp_reflector_unauth raw{};
  std::memcpy(&raw, reply_bytes.data(), sizeof(raw));
  EXPECT_EQ(raw.mbz1[0] | raw.mbz1[1] | raw.mbz2[0] | raw.mbz2[1] | raw.mbz2[2], 0) << "MBZ octets zero";
  EXPECT_TRUE(std::equal(o.begin() + payload_at + STAMP_UNAUTH_BASE_LEN, o.end(),
                         i.begin() + payload_at + STAMP_UNAUTH_BASE_LEN))
      << "octets after the base packet are copied unchanged";

  // T2 <= T3, both inside the wall-clock interval around the run. The rounding to 2^-32 s (NTP) and
  // the kernel's NMI-safe clock accessor allow a few nanoseconds of slack.
  const hubprobe::WallNs t2 =
      hubprobe::decode_timestamp(r.receive_timestamp, config.format, kTaiMinusUtcSeconds, wall_before);
  const hubprobe::WallNs t3 = hubprobe::decode_timestamp(r.timestamp, config.format, kTaiMinusUtcSeconds, wall_before);
  constexpr int64_t kSlackNs = 1000;
  EXPECT_LE(t2, t3) << "T2 <= T3";
  EXPECT_GE(t2, wall_before - kSlackNs) << "T2 " << t2 - wall_before << " ns after the run started";
  EXPECT_LE(t3, wall_after + kSlackNs) << "T3 " << t3 - wall_after << " ns after the run ended";
}

// ---- The table ----------------------------------------------------------------------------------

struct Case {
  const char* name;
  PacketSpec spec;
  uint32_t action;
  stamp_reflect_counter counter;
  ReflectorConfig config = {};
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

PacketSpec v4(Bytes payload) {
  PacketSpec s;
  s.payload = std::move(payload);
  return s;
}
PacketSpec v6(Bytes payload) {
  PacketSpec s;
  s.family = 6;
  s.payload = std::move(payload);
  return s;
}
template <class F>
PacketSpec with(PacketSpec s, F change) {
  change(s);
  return s;
}

std::vector<Case> cases() {
  const Bytes base = stamp_request();
  const size_t v4_udp_at = kEthHeaderLen + kIpv4HeaderLen;
  const size_t v6_udp_at = kEthHeaderLen + kIpv6HeaderLen;
  std::vector<Case> c = {
      // Reflected.
      {"ipv4_base", v4(base), XDP_TX, STAMP_REFLECT_REFLECTED},
      {"ipv6_base", v6(base), XDP_TX, STAMP_REFLECT_REFLECTED},
      // The listen set: the exact address, the family's wildcard, or the stack.
      {"ipv4_listen_exact", v4(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.listen = std::vector{mapped(kReflectorIpv4)}}},
      {"ipv4_listen_other_address",
       v4(base),
       XDP_PASS,
       STAMP_REFLECT_PASSED_OTHER_ADDRESS,
       {.listen = std::vector{mapped({198, 18, 0, 9})}}},
      {"ipv4_listen_only_ipv6",
       v4(base),
       XDP_PASS,
       STAMP_REFLECT_PASSED_OTHER_ADDRESS,
       {.listen = std::vector{std::array<uint8_t, 16>{}}}},
      {"ipv6_listen_exact", v6(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.listen = std::vector{kReflectorIpv6}}},
      {"ipv6_listen_only_ipv4",
       v6(base),
       XDP_PASS,
       STAMP_REFLECT_PASSED_OTHER_ADDRESS,
       {.listen = std::vector{mapped({0, 0, 0, 0})}}},
      {"ipv4_vlan_8021q", with(v4(base), [](auto& s) { s.vlan_ethertype = kEtherType8021Q; }), XDP_TX,
       STAMP_REFLECT_REFLECTED},
      {"ipv6_vlan_8021ad", with(v6(base), [](auto& s) { s.vlan_ethertype = kEtherType8021AD; }), XDP_TX,
       STAMP_REFLECT_REFLECTED},
      {"ipv4_zero_padding", v4(stamp_request(STAMP_UNAUTH_BASE_LEN + 101)), XDP_TX, STAMP_REFLECT_REFLECTED},
      {"ipv6_zero_padding", v6(stamp_request(STAMP_UNAUTH_BASE_LEN + 7)), XDP_TX, STAMP_REFLECT_REFLECTED},
      {"ipv4_max_zero_padding", v4(stamp_request(STAMP_UNAUTH_BASE_LEN + STAMP_REFLECT_MAX_ZERO_PADDING)), XDP_TX,
       STAMP_REFLECT_REFLECTED},
      {"ipv4_no_udp_checksum", with(v4(base), [](auto& s) { s.no_udp_checksum = true; }), XDP_TX,
       STAMP_REFLECT_REFLECTED},
      {"ipv4_other_configured_port",
       with(v4(base), [](auto& s) { s.dst_port = 8620; }),
       XDP_TX,
       STAMP_REFLECT_REFLECTED,
       {.port = 8620}},
      {"ipv4_ptp_timestamps", v4(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.format = hubprobe::TimestampFormat::kPtp}},
      {"ipv6_ptp_timestamps", v6(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.format = hubprobe::TimestampFormat::kPtp}},

      // Not STAMP for this program.
      {"ipv4_wrong_port", with(v4(base), [](auto& s) { s.dst_port = 863; }), XDP_PASS, STAMP_REFLECT_PASSED_NOT_STAMP},
      {"ipv6_wrong_port", with(v6(base), [](auto& s) { s.dst_port = 863; }), XDP_PASS, STAMP_REFLECT_PASSED_NOT_STAMP},
      {"ipv4_default_port_when_configured_other", v4(base), XDP_PASS, STAMP_REFLECT_PASSED_NOT_STAMP, {.port = 8620}},
      {"ipv4_tcp", with(v4(base), [](auto& s) { s.ip_protocol = 6; }), XDP_PASS, STAMP_REFLECT_PASSED_NOT_STAMP},
      {"arp", with(v4(base), [](auto& s) { s.ethertype_override = kEtherTypeArp; }), XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP},
      {"ipv4_more_fragments", with(v4(base), [](auto& s) { s.ipv4_frag = 0x2000; }), XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP},
      {"ipv4_later_fragment", with(v4(base), [](auto& s) { s.ipv4_frag = 0x0010; }), XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP},
      {"ipv4_dont_fragment_is_fine", with(v4(base), [](auto& s) { s.ipv4_frag = 0x4000; }), XDP_TX,
       STAMP_REFLECT_REFLECTED},
      {"ipv6_extension_header",
       with(v6(base),
            [](auto& s) {
              s.ip_protocol = 0; /* hop-by-hop */
            }),
       XDP_PASS, STAMP_REFLECT_PASSED_NOT_STAMP},
      {"ipv4_multicast_destination",
       with(v4(base),
            [](auto& s) {
              s.ipv4_dst = std::array<uint8_t, 4>{239, 1, 2, 3};
            }),
       XDP_PASS, STAMP_REFLECT_PASSED_NOT_STAMP},
      {"ipv6_multicast_destination",
       with(
           v6(base),
           [](auto& s) { s.ipv6_dst = std::array<uint8_t, 16>{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}; }),
       XDP_PASS, STAMP_REFLECT_PASSED_NOT_STAMP},
      {"ipv4_options_other_port",
       with(v4(base),
            [](auto& s) {
              s.ipv4_options = {1, 1, 1, 0};
              s.dst_port = 863;
            }),
       XDP_PASS, STAMP_REFLECT_PASSED_NOT_STAMP},

      // Truncated headers: the stack drops them and counts them in its own statistics.
      {"ethernet_only", with(v4(base), [](auto& s) { s.truncate_to = kEthHeaderLen; }), XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP},
      {"truncated_vlan_tag",
       with(v4(base),
            [](auto& s) {
              s.vlan_ethertype = kEtherType8021Q;
              s.truncate_to = kEthHeaderLen + 2;
            }),
       XDP_PASS, STAMP_REFLECT_PASSED_NOT_STAMP},
      {"truncated_ipv4_header", with(v4(base), [](auto& s) { s.truncate_to = kEthHeaderLen + 19; }), XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP},
      {"truncated_ipv6_header", with(v6(base), [](auto& s) { s.truncate_to = kEthHeaderLen + 39; }), XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP},
      {"truncated_udp_header", with(v4(base), [=](auto& s) { s.truncate_to = v4_udp_at + 7; }), XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP},
      {"truncated_udp_header_v6", with(v6(base), [=](auto& s) { s.truncate_to = v6_udp_at + 7; }), XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP},

      // STAMP port, but not for XDP.
      {"authenticated_mode",
       v4(authenticated_request()),
       XDP_PASS,
       STAMP_REFLECT_PASSED_AUTH,
       {.reflect_unauth = false}},
      {"authenticated_mode_unauth_length", v6(base), XDP_PASS, STAMP_REFLECT_PASSED_AUTH, {.reflect_unauth = false}},
      {"reflector_off", v4(base), XDP_PASS, STAMP_REFLECT_PASSED_OFF, {.reflector_off = true}},
      {"reflector_off_v6_stateful",
       v6(base),
       XDP_PASS,
       STAMP_REFLECT_PASSED_OFF,
       {.reflector_off = true, .stateful = true}},
      {"authenticated_packet_to_unauth_reflector", v4(authenticated_request()), XDP_PASS, STAMP_REFLECT_PASSED_TLV},
      {"ipv4_payload_43", v4(Bytes(base.begin(), base.end() - 1)), XDP_PASS, STAMP_REFLECT_PASSED_SHORT},
      {"ipv6_payload_43", v6(Bytes(base.begin(), base.end() - 1)), XDP_PASS, STAMP_REFLECT_PASSED_SHORT},
      {"ipv4_empty_payload", v4({}), XDP_PASS, STAMP_REFLECT_PASSED_SHORT},
      {"ipv4_tlv_after_base", v4(request_with_tlv()), XDP_PASS, STAMP_REFLECT_PASSED_TLV},
      {"ipv6_tlv_after_base", v6(request_with_tlv()), XDP_PASS, STAMP_REFLECT_PASSED_TLV},
      // Last octet of a padding that is not a multiple of 8: exercises the byte-wise tail of the check.
      {"ipv4_nonzero_last_padding_octet", v4(with_last_byte_set(stamp_request(STAMP_UNAUTH_BASE_LEN + 13))), XDP_PASS,
       STAMP_REFLECT_PASSED_TLV},
      {"ipv4_nonzero_last_word", v4(with_last_byte_set(stamp_request(STAMP_UNAUTH_BASE_LEN + 16))), XDP_PASS,
       STAMP_REFLECT_PASSED_TLV},
      {"ipv4_padding_beyond_xdp_limit", v4(stamp_request(STAMP_UNAUTH_BASE_LEN + STAMP_REFLECT_MAX_ZERO_PADDING + 8)),
       XDP_PASS, STAMP_REFLECT_PASSED_TLV},
      {"ipv4_options_nop",
       with(v4(base),
            [](auto& s) {
              s.ipv4_options = {1, 1, 1, 0};
            }),
       XDP_PASS, STAMP_REFLECT_PASSED_IP_OPTIONS},
      {"ipv4_options_record_route", with(v4(base), [](auto& s) { s.ipv4_options = {7, 7, 4, 0, 0, 0, 0, 0}; }),
       XDP_PASS, STAMP_REFLECT_PASSED_IP_OPTIONS},
      {"ipv4_bad_udp_checksum", with(v4(base), [](auto& s) { s.corrupt_udp_checksum = true; }), XDP_PASS,
       STAMP_REFLECT_PASSED_BAD_CSUM},
      {"ipv6_bad_udp_checksum", with(v6(base), [](auto& s) { s.corrupt_udp_checksum = true; }), XDP_PASS,
       STAMP_REFLECT_PASSED_BAD_CSUM},
      {"ipv6_zero_udp_checksum", with(v6(base), [](auto& s) { s.no_udp_checksum = true; }), XDP_PASS,
       STAMP_REFLECT_PASSED_BAD_CSUM},
      {"clock_not_published", v4(base), XDP_PASS, STAMP_REFLECT_PASSED_NO_CLOCK, {.publish_clock = false}},

      // Reply TTL / hop limit as configured.
      {"ipv4_reply_ttl_255", v4(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.reply_ttl = 255}},
      {"ipv6_reply_hop_limit_1", v6(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.reply_ttl = 1}},

      // Allow list: IPv4 prefixes are IPv4-mapped keys, so they never match IPv6 sources and back.
      {"ipv4_allowed",
       v4(base),
       XDP_TX,
       STAMP_REFLECT_REFLECTED,
       {.allow = std::vector{v4_prefix({198, 18, 0, 0}, 15)}}},
      {"ipv4_allowed_host_prefix",
       v4(base),
       XDP_TX,
       STAMP_REFLECT_REFLECTED,
       {.allow = std::vector{v4_prefix({198, 19, 0, 0}, 16), v4_prefix(kSenderIpv4, 32)}}},
      {"ipv4_not_allowed",
       v4(base),
       XDP_DROP,
       STAMP_REFLECT_DROPPED_NOT_ALLOWED,
       {.allow = std::vector{v4_prefix({198, 19, 0, 0}, 16)}}},
      {"ipv4_not_allowed_by_ipv6_list",
       v4(base),
       XDP_DROP,
       STAMP_REFLECT_DROPPED_NOT_ALLOWED,
       {.allow = std::vector{v6_prefix(kSenderIpv6, 32)}}},
      {"ipv6_allowed", v6(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.allow = std::vector{v6_prefix(kSenderIpv6, 32)}}},
      {"ipv6_not_allowed",
       v6(base),
       XDP_DROP,
       STAMP_REFLECT_DROPPED_NOT_ALLOWED,
       {.allow = std::vector{v6_prefix({0x20, 0x01, 0x0d, 0xb8, 0, 1}, 48)}}},
      {"ipv6_not_allowed_by_ipv4_list",
       v6(base),
       XDP_DROP,
       STAMP_REFLECT_DROPPED_NOT_ALLOWED,
       {.allow = std::vector{v4_prefix({198, 18, 0, 0}, 15)}}},
      {"ipv4_vlan_not_allowed",
       with(v4(base), [](auto& s) { s.vlan_ethertype = kEtherType8021Q; }),
       XDP_DROP,
       STAMP_REFLECT_DROPPED_NOT_ALLOWED,
       {.allow = std::vector{v4_prefix({198, 19, 0, 0}, 16)}}},
      // The socket reflector drops every datagram from such a source, not only those XDP answers.
      {"tlv_request_not_allowed",
       v4(request_with_tlv()),
       XDP_DROP,
       STAMP_REFLECT_DROPPED_NOT_ALLOWED,
       {.allow = std::vector{v4_prefix({198, 19, 0, 0}, 16)}}},
      {"allow_list_in_use_but_empty",
       v4(base),
       XDP_DROP,
       STAMP_REFLECT_DROPPED_NOT_ALLOWED,
       {.allow = std::vector<TestPrefix>{}}},
      {"authenticated_mode_not_judged",
       v4(authenticated_request()),
       XDP_PASS,
       STAMP_REFLECT_PASSED_AUTH,
       {.reflect_unauth = false, .allow = std::vector{v4_prefix({198, 19, 0, 0}, 16)}}},
      {"other_port_not_judged",
       with(v4(base), [](auto& s) { s.dst_port = 863; }),
       XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP,
       {.allow = std::vector{v4_prefix({198, 19, 0, 0}, 16)}}},

      // Stateful and rate-limited: a first request of a session and of a source.
      {"ipv4_stateful_first", v4(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.stateful = true}},
      {"ipv6_vlan_stateful_first",
       with(v6(base), [](auto& s) { s.vlan_ethertype = kEtherType8021AD; }),
       XDP_TX,
       STAMP_REFLECT_REFLECTED,
       {.stateful = true}},
      {"ipv4_rate_limited_first", v4(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.rate_limit_pps = 1}},
      {"ipv6_rate_limited_first", v6(base), XDP_TX, STAMP_REFLECT_REFLECTED, {.rate_limit_pps = 1}},

      // Replies to a registered sender port: stamped, passed untouched. The rest is not stamped.
      {"ipv4_reply_to_sender_port",
       with(v4(reflector_reply(5, 7)),
            [](auto& s) {
              s.src_port = STAMP_DEFAULT_PORT;
              s.dst_port = kRegisteredPort;
            }),
       XDP_PASS,
       STAMP_REFLECT_STAMPED_RX,
       {.sender_ports = {kRegisteredPort}}},
      {"ipv6_vlan_reply_to_sender_port",
       with(v6(reflector_reply(5, 7, 100)),
            [](auto& s) {
              s.vlan_ethertype = kEtherType8021Q;
              s.dst_port = kRegisteredPort;
            }),
       XDP_PASS,
       STAMP_REFLECT_STAMPED_RX,
       {.sender_ports = {kRegisteredPort}}},
      {"reply_to_unregistered_port",
       with(v4(reflector_reply(5, 7)), [](auto& s) { s.dst_port = kRegisteredPort + 1; }),
       XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP,
       {.sender_ports = {kRegisteredPort}}},
      {"short_reply_to_sender_port",
       with(v4(reflector_reply(5, 7, STAMP_UNAUTH_BASE_LEN - 1)), [](auto& s) { s.dst_port = kRegisteredPort; }),
       XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP,
       {.sender_ports = {kRegisteredPort}}},
      {"reply_with_ip_options_to_sender_port",
       with(v4(reflector_reply(5, 7)),
            [](auto& s) {
              s.dst_port = kRegisteredPort;
              s.ipv4_options = {1, 1, 1, 0};
            }),
       XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP,
       {.sender_ports = {kRegisteredPort}}},
      {"fragment_to_sender_port",
       with(v4(reflector_reply(5, 7)),
            [](auto& s) {
              s.dst_port = kRegisteredPort;
              s.ipv4_frag = 0x2000;
            }),
       XDP_PASS,
       STAMP_REFLECT_PASSED_NOT_STAMP,
       {.sender_ports = {kRegisteredPort}}},

      // STAMP port, lengths that lie.
      {"ipv4_udp_length_beyond_ip", with(v4(base), [](auto& s) { s.udp_len = 8 + 44 + 4; }), XDP_DROP,
       STAMP_REFLECT_DROPPED_MALFORMED},
      {"ipv6_udp_length_beyond_ip", with(v6(base), [](auto& s) { s.udp_len = 8 + 44 + 4; }), XDP_DROP,
       STAMP_REFLECT_DROPPED_MALFORMED},
      {"ipv4_udp_length_below_header", with(v4(base), [](auto& s) { s.udp_len = 7; }), XDP_DROP,
       STAMP_REFLECT_DROPPED_MALFORMED},
      {"ipv4_frame_cut_in_payload", with(v4(base), [=](auto& s) { s.truncate_to = v4_udp_at + 8 + 30; }), XDP_DROP,
       STAMP_REFLECT_DROPPED_MALFORMED},
      {"ipv6_frame_cut_in_payload", with(v6(base), [=](auto& s) { s.truncate_to = v6_udp_at + 8 + 30; }), XDP_DROP,
       STAMP_REFLECT_DROPPED_MALFORMED},
      {"ipv4_total_length_below_header", with(v4(base), [](auto& s) { s.ip_len = 16; }), XDP_DROP,
       STAMP_REFLECT_DROPPED_MALFORMED},
      {"ipv4_source_port_zero", with(v4(base), [](auto& s) { s.src_port = 0; }), XDP_DROP,
       STAMP_REFLECT_DROPPED_MALFORMED},
  };
  return c;
}

class StampReflectTable : public ::testing::TestWithParam<Case> {};

TEST_P(StampReflectTable, ActionCounterAndReply) {
  const Case& c = GetParam();
  LOAD_REFLECTOR_OR_RETURN(reflector, c.config);
  const Bytes in = build(c.spec);
  const Counters before = reflector->counters();

  const int64_t wall_before = clock_ns(CLOCK_REALTIME);
  const RunResult run = reflector->run(in);
  const int64_t wall_after = clock_ns(CLOCK_REALTIME);
  ASSERT_EQ(run.error, 0) << "bpf_prog_test_run_opts: " << strerror(-run.error);

  EXPECT_EQ(run.action, c.action);
  Counters delta = reflector->counters();
  for (size_t i = 0; i < delta.size(); ++i) delta[i] -= before[i];
  expect_only_counter(delta, c.counter);

  if (c.action == XDP_TX) {
    expect_reflection(c.spec, in, run.out, c.config, wall_before, wall_after);
  } else {
    EXPECT_EQ(run.out, in) << "a packet that is not reflected is not modified";
  }
  EXPECT_EQ(reflector->rx_stamps(), c.counter == STAMP_REFLECT_STAMPED_RX ? 1u : 0u) << "RX stamps recorded";
}

INSTANTIATE_TEST_SUITE_P(Packets, StampReflectTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return std::string(param_info.param.name);
                         });

// The clock state is live: user space can change it after load and the next packet uses it.
TEST(StampReflect, ClockStateCanBePublishedAfterLoad) {
  LOAD_REFLECTOR_OR_RETURN(reflector, (ReflectorConfig{.publish_clock = false}));
  const Bytes in = build(v4(stamp_request()));
  EXPECT_EQ(reflector->run(in).action, XDP_PASS);
  reflector->publish_clock();
  EXPECT_EQ(reflector->run(in).action, XDP_TX);
  const Counters counters = reflector->counters();
  EXPECT_EQ(counters[STAMP_REFLECT_PASSED_NO_CLOCK], 1u);
  EXPECT_EQ(counters[STAMP_REFLECT_REFLECTED], 1u);
}

// ---- Stateful numbering -------------------------------------------------------------------------------

// A request of session (family, source port, SSID) from the usual sender to the usual reflector.
Bytes session_request(int family, uint16_t src_port, uint16_t ssid) {
  Bytes payload = stamp_request();
  put16(payload, 14, ssid);  // RFC 8762 4.2.1 with RFC 8972: SSID at octet 14
  PacketSpec spec = family == 4 ? v4(payload) : v6(payload);
  spec.src_port = src_port;
  return build(spec);
}

// The reflector sequence number of the reply, or nullopt when the request was not reflected.
std::optional<uint32_t> reflector_seq(LoadedReflector& reflector, const Bytes& request) {
  const RunResult run = reflector.run(request);
  EXPECT_EQ(run.error, 0);
  if (run.action != XDP_TX) return std::nullopt;
  const size_t payload_at = run.out.size() - STAMP_UNAUTH_BASE_LEN;  // no padding in these requests
  return static_cast<uint32_t>(get16(run.out, payload_at) << 16 | get16(run.out, payload_at + 2));
}

TEST(StampReflectStateful, SessionsCountSeparatelyFromZero) {
  LOAD_REFLECTOR_OR_RETURN(reflector, (ReflectorConfig{.stateful = true}));
  // Sessions differ by source port, by SSID, by address family; each counts 0, 1, 2 on its own.
  const std::vector<Bytes> sessions = {session_request(4, 40000, 1), session_request(4, 40001, 1),
                                       session_request(4, 40000, 2), session_request(6, 40000, 1)};
  for (uint32_t round = 0; round < 3; ++round) {
    for (size_t i = 0; i < sessions.size(); ++i) {
      EXPECT_EQ(reflector_seq(*reflector, sessions[i]), round) << "session " << i << ", round " << round;
    }
  }
  EXPECT_EQ(reflector->sessions(), sessions.size());
}

TEST(StampReflectStateful, StatelessAgainUsesTheSendersNumber) {
  LOAD_REFLECTOR_OR_RETURN(reflector, (ReflectorConfig{.stateful = true}));
  const Bytes request = session_request(4, 40000, 1);
  EXPECT_EQ(reflector_seq(*reflector, request), 0u);
  reflector->set_policy(STAMP_REFLECT_ANSWER, false, 0, std::nullopt);
  EXPECT_EQ(reflector_seq(*reflector, request), sender_fields().seq);
}

TEST(StampReflectStateful, IdleSessionStartsAgainAtZero) {
  LOAD_REFLECTOR_OR_RETURN(reflector, (ReflectorConfig{.stateful = true}));
  const uint64_t t0 = 1000 * kNsPerSecond;
  const uint64_t idle = uint64_t{STAMP_REFLECT_DEFAULT_SESSION_IDLE_S} * kNsPerSecond;
  const Bytes request = session_request(4, 40000, 1);
  reflector->set_mono_ns(t0);
  EXPECT_EQ(reflector_seq(*reflector, request), 0u);
  reflector->set_mono_ns(t0 + idle);  // idle exactly the limit: still the same session
  EXPECT_EQ(reflector_seq(*reflector, request), 1u);
  reflector->set_mono_ns(t0 + 2 * idle + 1);
  EXPECT_EQ(reflector_seq(*reflector, request), 0u) << "idle for longer than session_idle_s";
  EXPECT_EQ(reflector_seq(*reflector, request), 1u);
}

TEST(StampReflectStateful, SessionTableIsBounded) {
  constexpr uint32_t kMaxSessions = 16;
  LOAD_REFLECTOR_OR_RETURN(reflector, (ReflectorConfig{.stateful = true, .max_sessions = kMaxSessions}));
  constexpr uint16_t kSessions = 200;
  for (uint16_t i = 0; i < kSessions; ++i) {
    EXPECT_EQ(reflector_seq(*reflector, session_request(4, 40000, static_cast<uint16_t>(i + 1))), 0u);
    EXPECT_LE(reflector->sessions(), kMaxSessions);
  }
  // The newest session was not evicted; the first one was, and starts again at 0.
  EXPECT_EQ(reflector_seq(*reflector, session_request(4, 40000, kSessions)), 1u);
  EXPECT_EQ(reflector_seq(*reflector, session_request(4, 40000, 1)), 0u);
  EXPECT_EQ(reflector->counters()[STAMP_REFLECT_PASSED_MAP_FULL], 0u) << "the LRU evicts instead of refusing";
}

// ---- Rate limit -------------------------------------------------------------------------------------

TEST(StampReflectRateLimit, BurstThenDropThenRefill) {
  constexpr uint32_t kRate = 4;
  LOAD_REFLECTOR_OR_RETURN(reflector, (ReflectorConfig{.rate_limit_pps = kRate}));
  const Bytes v4_request = session_request(4, 40000, 1);
  const Bytes v4_other_port = session_request(4, 40001, 2);
  const Bytes v6_request = session_request(6, 40000, 1);
  uint64_t now = 5000 * kNsPerSecond;
  reflector->set_mono_ns(now);
  const auto action = [&](const Bytes& request) { return reflector->run(request).action; };

  // A new source's bucket is full: kRate requests at once, whatever their ports and sessions.
  for (uint32_t i = 0; i < kRate; ++i) EXPECT_EQ(action(i % 2 ? v4_other_port : v4_request), XDP_TX) << i;
  EXPECT_EQ(action(v4_request), XDP_DROP);
  EXPECT_EQ(action(v4_other_port), XDP_DROP) << "the bucket is per source address";
  EXPECT_EQ(action(v6_request), XDP_TX) << "another source has its own bucket";

  // One token back per 1/rate seconds, not before.
  now += kNsPerSecond / kRate - 1000;
  reflector->set_mono_ns(now);
  EXPECT_EQ(action(v4_request), XDP_DROP);
  now += 1000;
  reflector->set_mono_ns(now);
  EXPECT_EQ(action(v4_request), XDP_TX);
  EXPECT_EQ(action(v4_request), XDP_DROP);

  // Idle for long: the bucket holds one second's worth, no more.
  now += 60 * kNsPerSecond;
  reflector->set_mono_ns(now);
  for (uint32_t i = 0; i < kRate; ++i) EXPECT_EQ(action(v4_request), XDP_TX) << i;
  EXPECT_EQ(action(v4_request), XDP_DROP);

  const Counters counters = reflector->counters();
  EXPECT_EQ(counters[STAMP_REFLECT_REFLECTED], 2 * kRate + 2);
  EXPECT_EQ(counters[STAMP_REFLECT_DROPPED_RATE_LIMITED], 5u);

  // Run time: 0 lifts the limit without reloading.
  reflector->set_policy(STAMP_REFLECT_ANSWER, false, 0, std::nullopt);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(action(v4_request), XDP_TX);
}

// A dropped request does not consume the session's sequence number (the guard comes first).
TEST(StampReflectRateLimit, DroppedRequestsDoNotAdvanceSessions) {
  LOAD_REFLECTOR_OR_RETURN(reflector, (ReflectorConfig{.stateful = true, .rate_limit_pps = 1}));
  reflector->set_mono_ns(7 * kNsPerSecond);
  const Bytes request = session_request(4, 40000, 1);
  EXPECT_EQ(reflector_seq(*reflector, request), 0u);
  EXPECT_EQ(reflector_seq(*reflector, request), std::nullopt);
  reflector->set_mono_ns(8 * kNsPerSecond);
  EXPECT_EQ(reflector_seq(*reflector, request), 1u);
}

// ---- Sender RX stamps ---------------------------------------------------------------------------------

TEST(StampReflectRxStamp, RegisteredPortIsStampedWithIngressTai) {
  LOAD_REFLECTOR_OR_RETURN(reflector, (ReflectorConfig{.publish_clock = false, .sender_ports = {kRegisteredPort}}));
  for (const int family : {4, 6}) {
    const uint32_t seq = 0x01020304u + static_cast<uint32_t>(family);
    PacketSpec spec = family == 4 ? v4(reflector_reply(seq, 0x0a0b)) : v6(reflector_reply(seq, 0x0a0b));
    spec.src_port = STAMP_DEFAULT_PORT;
    spec.dst_port = kRegisteredPort;
    const Bytes in = build(spec);
    const int64_t tai_before = clock_ns(CLOCK_TAI);
    const RunResult run = reflector->run(in);
    const int64_t tai_after = clock_ns(CLOCK_TAI);
    EXPECT_EQ(run.action, XDP_PASS);
    EXPECT_EQ(run.out, in) << "a stamped reply goes to its socket unchanged";
    const auto stamp = reflector->rx_stamp(kRegisteredPort, 0x0a0b, seq);
    ASSERT_TRUE(stamp.has_value()) << "no stamp under {port, ssid, sender_seq}, IPv" << family;
    EXPECT_GE(static_cast<int64_t>(*stamp), tai_before) << "raw CLOCK_TAI, without the published offset";
    EXPECT_LE(static_cast<int64_t>(*stamp), tai_after);
    EXPECT_FALSE(reflector->rx_stamp(kRegisteredPort, 0x0a0b, seq + 1).has_value());
  }
  EXPECT_EQ(reflector->counters()[STAMP_REFLECT_STAMPED_RX], 2u);
  EXPECT_EQ(reflector->counters()[STAMP_REFLECT_PASSED_NO_CLOCK], 0u) << "stamping needs no published clock";
}

// ---- hubprobe::xdp::XdpReflector's policy and RX-stamp API, through BPF_PROG_TEST_RUN ------------------

using hubprobe::IpPrefix;
using hubprobe::xdp::ReflectorPolicy;
using hubprobe::xdp::XdpReflector;

// Loads through the API, with the clock published; skips without privileges like LOAD_REFLECTOR_OR_RETURN.
#define LOAD_XDP_REFLECTOR_OR_RETURN(var, options)                      \
  auto var##_loaded = XdpReflector::load(options);                      \
  if (!var##_loaded) {                                                  \
    if (var##_loaded.error().code == EPERM && !privileged_required()) { \
      GTEST_SKIP() << var##_loaded.error().message;                     \
    }                                                                   \
    FAIL() << var##_loaded.error().message;                             \
  }                                                                     \
  XdpReflector& var = **var##_loaded;                                   \
  ASSERT_TRUE(var.publish_clock(hubprobe::read_clock_state()).ok())

std::vector<IpPrefix> prefixes(std::initializer_list<const char*> texts) {
  std::vector<IpPrefix> result;
  for (const char* text : texts) {
    auto prefix = IpPrefix::parse(text);
    EXPECT_TRUE(prefix.ok()) << text;
    if (prefix) result.push_back(*prefix);
  }
  return result;
}

std::array<uint32_t, 2> v4_v6_actions(XdpReflector& reflector) {
  return {run_program(reflector.program_fd(), build(v4(stamp_request()))).action,
          run_program(reflector.program_fd(), build(v6(stamp_request()))).action};
}

constexpr std::array<uint32_t, 2> kBothReflected = {XDP_TX, XDP_TX};
constexpr std::array<uint32_t, 2> kBothDropped = {XDP_DROP, XDP_DROP};

TEST(XdpReflectorApi, AllowListPolicyIsReplacedWhole) {
  LOAD_XDP_REFLECTOR_OR_RETURN(reflector, hubprobe::xdp::ReflectorOptions{});
  EXPECT_EQ(v4_v6_actions(reflector), kBothReflected) << "after load: every source";

  ASSERT_TRUE(reflector.set_policy({.allow = prefixes({"198.18.0.0/15", "2001:db8::/32"})}).ok());
  EXPECT_EQ(v4_v6_actions(reflector), kBothReflected);
  ASSERT_TRUE(reflector.set_policy({.allow = prefixes({"198.19.0.0/16", "2001:db8:1::/48"})}).ok());
  EXPECT_EQ(v4_v6_actions(reflector), kBothDropped);
  // The third list reuses the first trie: nothing of the first list may survive in it.
  ASSERT_TRUE(reflector.set_policy({.allow = prefixes({"198.18.0.1", "2001:db8::2"})}).ok());
  EXPECT_EQ(v4_v6_actions(reflector), (std::array<uint32_t, 2>{XDP_TX, XDP_DROP}));

  // Refused whole: the list in force stays, and so does the rest of the policy.
  std::vector<IpPrefix> too_many(STAMP_REFLECT_MAX_ALLOW_PREFIXES + 1, prefixes({"198.18.0.0/15"})[0]);
  auto refused = reflector.set_policy({.stateful = true, .allow = too_many});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, EINVAL) << refused.error().message;
  EXPECT_EQ(v4_v6_actions(reflector), (std::array<uint32_t, 2>{XDP_TX, XDP_DROP}));
  EXPECT_FALSE(reflector.policy().stateful);

  ASSERT_TRUE(reflector.set_policy({}).ok());
  EXPECT_EQ(v4_v6_actions(reflector), kBothReflected) << "an empty list: every source again";
  const auto counters = reflector.counters();
  ASSERT_TRUE(counters.ok()) << counters.error().message;
  uint64_t not_allowed = 0;
  for (const auto& c : *counters) {
    if (c.name == "dropped_not_allowed") not_allowed = c.value;
  }
  EXPECT_EQ(not_allowed, 4u);
}

TEST(XdpReflectorApi, StatefulAndRateLimitAtRunTime) {
  LOAD_XDP_REFLECTOR_OR_RETURN(reflector, hubprobe::xdp::ReflectorOptions{});
  const Bytes request = session_request(4, 40000, 9);
  const auto seq = [&] {
    const RunResult run = run_program(reflector.program_fd(), request);
    return run.action == XDP_TX ? std::optional<uint32_t>(get16(run.out, run.out.size() - 44) << 16 |
                                                          get16(run.out, run.out.size() - 42))
                                : std::nullopt;
  };
  EXPECT_EQ(seq(), sender_fields().seq);
  ASSERT_TRUE(reflector.set_policy({.stateful = true}).ok());
  EXPECT_EQ(seq(), 0u);
  EXPECT_EQ(seq(), 1u);
  // A one-request-per-second limit, set while loaded: the next request within the second is dropped.
  ASSERT_TRUE(reflector.set_policy({.stateful = true, .rate_limit_pps = 1}).ok());
  EXPECT_EQ(seq(), 2u);
  EXPECT_EQ(seq(), std::nullopt);
}

TEST(XdpReflectorApi, RxStampIsTakenOnceAsWallTime) {
  LOAD_XDP_REFLECTOR_OR_RETURN(reflector, hubprobe::xdp::ReflectorOptions{});
  EXPECT_EQ(reflector.register_sender_port(STAMP_DEFAULT_PORT).error().code, EINVAL);
  EXPECT_EQ(reflector.register_sender_port(0).error().code, EINVAL);
  ASSERT_TRUE(reflector.register_sender_port(kRegisteredPort).ok());
  const Bytes reply = build(with(v4(reflector_reply(77, 5)), [](auto& s) { s.dst_port = kRegisteredPort; }));

  const int64_t before = clock_ns(CLOCK_REALTIME);
  EXPECT_EQ(run_program(reflector.program_fd(), reply).action, XDP_PASS);
  const int64_t after = clock_ns(CLOCK_REALTIME);
  const auto t4 = reflector.take_rx_stamp({.local_port = kRegisteredPort, .ssid = 5, .sender_seq = 77});
  ASSERT_TRUE(t4.has_value());
  EXPECT_GE(*t4, before);
  EXPECT_LE(*t4, after);
  EXPECT_FALSE(reflector.take_rx_stamp({.local_port = kRegisteredPort, .ssid = 5, .sender_seq = 77}).has_value())
      << "taken once";

  reflector.unregister_sender_port(kRegisteredPort);
  EXPECT_EQ(run_program(reflector.program_fd(), reply).action, XDP_PASS);
  EXPECT_FALSE(reflector.take_rx_stamp({.local_port = kRegisteredPort, .ssid = 5, .sender_seq = 77}).has_value())
      << "unregistered: not stamped";
}

TEST(XdpReflectorApi, MapBoundsAreChecked) {
  auto refused = XdpReflector::load({.max_sessions = 0});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, EINVAL) << refused.error().message;
}

// Not a timed test (docs/design.md, "Measuring performance"): reports the per-run cost and checks the counters
// kept up.
TEST(StampReflect, RepeatedRunCost) {
  LOAD_REFLECTOR_OR_RETURN(reflector, ReflectorConfig{});
  constexpr int kRepeat = 100000;
  // Source port = destination port, so the reply of each run is again a valid request for the next:
  // BPF_PROG_TEST_RUN repeats the program over the same, already rewritten buffer.
  const Bytes reflected = build(with(v4(stamp_request()), [](auto& s) { s.src_port = STAMP_DEFAULT_PORT; }));
  const Bytes other = build(with(v4(stamp_request()), [](auto& s) { s.dst_port = 53; }));

  const RunResult tx = reflector->run(reflected, kRepeat);
  ASSERT_EQ(tx.error, 0) << strerror(-tx.error);
  EXPECT_EQ(tx.action, XDP_TX);
  const RunResult pass = reflector->run(other, kRepeat);
  ASSERT_EQ(pass.error, 0) << strerror(-pass.error);
  EXPECT_EQ(pass.action, XDP_PASS);

  const Counters counters = reflector->counters();
  EXPECT_EQ(counters[STAMP_REFLECT_REFLECTED], static_cast<uint64_t>(kRepeat));
  EXPECT_EQ(counters[STAMP_REFLECT_PASSED_NOT_STAMP], static_cast<uint64_t>(kRepeat));
  std::cout << "[ measure  ] bpf_prog_test_run repeat=" << kRepeat << ": reflected IPv4 44-octet STAMP "
            << tx.duration_ns << " ns/run, other UDP (XDP_PASS) " << pass.duration_ns << " ns/run\n";
  ::testing::Test::RecordProperty("reflect_ns_per_run", static_cast<int>(tx.duration_ns));
  ::testing::Test::RecordProperty("pass_ns_per_run", static_cast<int>(pass.duration_ns));
}

}  // namespace
