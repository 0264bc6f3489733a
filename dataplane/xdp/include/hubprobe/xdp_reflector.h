// SPDX-License-Identifier: Apache-2.0
// The XDP STAMP reflector (bpf/stamp_reflect.bpf.c) from user space: load it, attach it to one
// interface, keep its clock state current, read its counters, and always detach it again.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/result.h"
#include "hubprobe/stamp.h"

struct stamp_reflect;  // the libbpf skeleton, kept out of this header

namespace hubprobe::xdp {

/// Native (driver) XDP, or generic XDP on the skb path: slower, but works on any device, and on veth it
/// is the mode whose XDP_TX delivers without an XDP program on the peer.
enum class AttachMode : uint8_t { kNative, kGeneric };

/// Load-time settings (the program's .rodata): fixed for the life of a loaded reflector.
struct ReflectorOptions {
  uint16_t port = kDefaultStampPort;
  /// false: every packet to the port goes to the stack, e.g. because the reflector runs in
  /// authenticated mode, which XDP never does.
  bool reflect_unauthenticated = true;
  uint8_t reply_ttl = 64;  ///< TTL / hop limit of replies: what a Linux socket would send
  TimestampFormat format = TimestampFormat::kNtp;
};

/// One per-CPU counter of the program, summed over CPUs.
struct Counter {
  std::string_view name;  ///< metric-style name, e.g. "passed_tlv" (see bpf/stamp_reflect.h)
  uint64_t value = 0;
};

/// Owns one loaded instance of the program and at most one attachment.
///
/// Attachment is a BPF link: the kernel detaches the program when the link's file descriptor closes,
/// so it is gone even when the process dies without running destructors (SIGKILL, crash). detach() and
/// the destructor close it explicitly.
///
/// Thread-safety: publish_clock() and counters() may be called from any thread concurrently with each
/// other and with packet processing; attach(), detach() and destruction need external serialisation.
class XdpReflector {
 public:
  /// Opens the embedded object, applies `options` and loads it into the kernel (not attached). Fails
  /// with EPERM without CAP_BPF + CAP_NET_ADMIN. The program passes STAMP packets to the stack until
  /// publish_clock() has been called once.
  static Result<std::unique_ptr<XdpReflector>> load(const ReflectorOptions& options);

  ~XdpReflector();
  XdpReflector(const XdpReflector&) = delete;
  XdpReflector& operator=(const XdpReflector&) = delete;

  /// Attaches to `ifindex` in the calling thread's network namespace. Fails with EBUSY when any XDP
  /// program is already attached there (never replaces one), and with EALREADY when this reflector
  /// is already attached somewhere.
  Result<void> attach(int ifindex, AttachMode mode);
  /// Detaches; a no-op when not attached.
  void detach();
  bool attached() const { return link_fd_ >= 0; }

  /// Publishes the host clock to the program: the CLOCK_TAI -> STAMP time scale offset (measured
  /// now) and the Error Estimate derived from `clock` (adjtimex). Call at start and whenever the
  /// clock state is refreshed; the offset only moves when the kernel's TAI offset changes.
  Result<void> publish_clock(const ClockState& clock);
  /// Lower level: the offset to add to CLOCK_TAI and the wire-format Error Estimate (non-zero
  /// multiplier).
  Result<void> publish_clock(int64_t offset_ns, uint16_t error_estimate);

  /// All counters, in the program's order. A map read per call: meant for scrapes, not per packet.
  Result<std::vector<Counter>> counters() const;
  /// The counter names alone, in the same order.
  static std::span<const std::string_view> counter_names();

  /// The program's file descriptor (BPF_PROG_TEST_RUN, diagnostics).
  int program_fd() const;
  const ReflectorOptions& options() const { return options_; }

 private:
  XdpReflector(stamp_reflect* skeleton, const ReflectorOptions& options);

  stamp_reflect* skeleton_;
  ReflectorOptions options_;
  int link_fd_ = -1;
  int ifindex_ = 0;
};

/// CLOCK_REALTIME - CLOCK_TAI in nanoseconds: always a whole number of seconds (the kernel's TAI
/// offset, 0 when never set), measured by bracketing so it is exact.
int64_t realtime_minus_tai_ns();

}  // namespace hubprobe::xdp
