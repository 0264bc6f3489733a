// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/xdp_reflector.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/types.h>
#include <net/if.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

// The shared definitions come before the skeleton, which names them without defining them.
#include "hubprobe/stamp_wire.h"
#include "stamp_reflect.h"
#include "stamp_reflect.skel.h"

namespace hubprobe::xdp {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;

constexpr std::array<std::string_view, STAMP_REFLECT_COUNTER_MAX> kCounterNames = {
#define HUBPROBE_COUNTER_NAME(id, name) #name,
    STAMP_REFLECT_COUNTERS(HUBPROBE_COUNTER_NAME)
#undef HUBPROBE_COUNTER_NAME
};

// libbpf returns -errno; errno itself is positive: either way, the error's code is positive.
Error libbpf_error(const std::string& what, int err) { return errno_error(what, std::abs(err)); }

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
  stamp_reflect* skeleton = stamp_reflect__open();
  if (skeleton == nullptr) return libbpf_error("opening the XDP STAMP reflector", errno);
  stamp_reflect_config& config = skeleton->rodata->stamp_reflect_config;
  config.port = options.port;
  config.reflect_unauth = options.reflect_unauthenticated ? 1 : 0;
  config.reply_ttl = options.reply_ttl;
  config.timestamp_format = options.format == TimestampFormat::kPtp ? STAMP_REFLECT_TS_PTP : STAMP_REFLECT_TS_NTP;
  if (const int err = stamp_reflect__load(skeleton); err != 0) {
    stamp_reflect__destroy(skeleton);
    return libbpf_error("loading the XDP STAMP reflector (needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; kernel >= 6.1)", err);
  }
  return std::unique_ptr<XdpReflector>(new XdpReflector(skeleton, options));
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
      return libbpf_error("attaching the XDP STAMP reflector to " + where + ": another XDP program is attached", fd);
    }
    return libbpf_error(std::string("attaching the XDP STAMP reflector to ") + where + " in " +
                            (mode == AttachMode::kNative ? "native" : "generic") + " mode",
                        fd);
  }
  link_fd_ = fd;
  ifindex_ = ifindex;
  return {};
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
