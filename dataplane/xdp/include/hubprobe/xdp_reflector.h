// SPDX-License-Identifier: Apache-2.0
// The XDP STAMP program (bpf/stamp_reflect.bpf.c) from user space: load it, attach it to one
// interface, keep its clock state and policy current, register the local ports of session-senders
// whose replies it stamps (T4), take those stamps, read its counters, and always detach it again.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/prefix.h"
#include "hubprobe/result.h"
#include "hubprobe/stamp.h"

struct stamp_reflect;  // the libbpf skeleton, kept out of this header

namespace hubprobe::xdp {

/// Native (driver) XDP, or generic XDP on the skb path: slower, but works on any device, and on veth it
/// is the mode whose XDP_TX delivers without an XDP program on the peer.
enum class AttachMode : uint8_t { kNative, kGeneric };

/// Whether the program answers requests to its port (ReflectorPolicy::mode).
enum class ReflectMode : uint8_t {
  kOff,            ///< every request goes to the stack (passed_off): no reflector answers in XDP here
  kAnswer,         ///< unauthenticated STAMP is answered with XDP_TX
  kAuthenticated,  ///< authenticated mode, which XDP never does: every request goes to the stack (passed_auth)
};

/// Load-time settings (the program's .rodata): fixed for the life of a loaded reflector.
struct ReflectorOptions {
  uint16_t port = kDefaultStampPort;
  /// The policy's mode right after load: true kAnswer, false kAuthenticated (set_policy changes it).
  bool reflect_unauthenticated = true;
  uint8_t reply_ttl = 64;  ///< TTL / hop limit of replies: what a Linux socket would send
  TimestampFormat format = TimestampFormat::kNtp;
  /// Bounds of the LRU maps: beyond them the least recently used entry is evicted (a stateful session
  /// then starts again at 0, a source's rate-limit bucket again full, an untaken RX stamp is lost).
  uint32_t max_sessions = 65536;
  uint32_t max_rate_buckets = 65536;
  uint32_t max_rx_stamps = 65536;
  /// A stateful session idle this long starts again at sequence number 0 (SessionReflector's default).
  uint32_t session_idle_s = 300;
};

/// Run-time settings: changeable while attached (set_policy), applied to the next packet.
struct ReflectorPolicy {
  ReflectMode mode = ReflectMode::kAnswer;
  /// Own sequence numbers per session (source and destination address and port, SSID), from 0.
  bool stateful = false;
  /// Requests per second per source address: a one-second token bucket that starts full and refills
  /// continuously, as in the socket reflector. 0 = unlimited. Over-limit requests are dropped
  /// (dropped_rate_limited). Only requests the program answers are charged; those it passes to the
  /// stack (TLVs, options...) are the socket reflector's to limit.
  uint32_t rate_limit_pps = 0;
  /// Sources answered; empty = every source. Any request to the port from elsewhere is dropped
  /// (dropped_not_allowed). IPv4 prefixes also match IPv4-mapped IPv6 sources, as IpPrefix does.
  std::vector<IpPrefix> allow = {};
};

/// What a session-sender knows of a reply after recvmsg(): its socket's local port, and from the reply
/// the SSID and the Session-Sender Sequence Number (the reflector packet's sender_seq field).
struct RxStampKey {
  uint16_t local_port = 0;
  uint16_t ssid = 0;
  uint32_t sender_seq = 0;
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
/// Thread-safety: publish_clock(), set_policy(), the sender-port and RX-stamp methods and counters() may
/// be called from any thread concurrently with each other and with packet processing; attach(),
/// attach_auto(), detach() and destruction need external serialisation.
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
  /// program is already attached there (never replaces one; the message names it: name, id, mode),
  /// and with EALREADY when this reflector is already attached somewhere.
  Result<void> attach(int ifindex, AttachMode mode);
  /// Native mode, or generic when the driver cannot run XDP itself; returns the mode chosen. Errors
  /// that generic mode would not fix (EBUSY, EALREADY, EPERM) are returned at once.
  Result<AttachMode> attach_auto(int ifindex);
  /// Detaches; a no-op when not attached.
  void detach();
  bool attached() const { return link_fd_ >= 0; }
  /// The mode of the current attachment; nullopt when not attached.
  std::optional<AttachMode> attach_mode() const;

  /// Publishes the host clock to the program: the CLOCK_TAI -> STAMP time scale offset (measured
  /// now) and the Error Estimate derived from `clock` (adjtimex). Call at start and whenever the
  /// clock state is refreshed; the offset only moves when the kernel's TAI offset changes.
  Result<void> publish_clock(const ClockState& clock);
  /// Lower level: the offset to add to CLOCK_TAI and the wire-format Error Estimate (non-zero
  /// multiplier).
  Result<void> publish_clock(int64_t offset_ns, uint16_t error_estimate);

  /// Replaces the run-time policy, all or nothing: on failure (EINVAL: more than 4096 allow prefixes; a
  /// map error) the previous policy stays in force. After load: stateless, unlimited, every source.
  Result<void> set_policy(const ReflectorPolicy& policy);
  /// The policy in force.
  ReflectorPolicy policy() const;
  /// The destination addresses answered (ports ignored); an unspecified address (0.0.0.0, ::) answers every
  /// address of its family. Requests to other addresses go to the stack (passed_other_address). After load:
  /// 0.0.0.0 and ::. At most STAMP_REFLECT_MAX_LISTEN (64).
  Result<void> set_listen(const std::vector<SocketAddress>& addresses);

  /// Replies to UDP `port` (host order) get their ingress time (T4) recorded; the packet itself goes on
  /// to the socket unchanged. One registration per port (not counted). EINVAL for port 0 and for the
  /// reflector's own port.
  Result<void> register_sender_port(uint16_t port);
  void unregister_sender_port(uint16_t port);
  /// The ingress time of the reply `key` names, as CLOCK_REALTIME ns, removed from the map; nullopt when
  /// the program recorded none (not stamped, already taken, or evicted). Call after recvmsg() returned
  /// the reply: the program records it before the stack sees the packet.
  std::optional<WallNs> take_rx_stamp(const RxStampKey& key);

  /// All counters, in the program's order. A map read per call: meant for scrapes, not per packet.
  Result<std::vector<Counter>> counters() const;
  /// The counter names alone, in the same order.
  static std::span<const std::string_view> counter_names();

  /// The program's file descriptor (BPF_PROG_TEST_RUN, diagnostics).
  int program_fd() const;
  const ReflectorOptions& options() const { return options_; }

 private:
  XdpReflector(stamp_reflect* skeleton, const ReflectorOptions& options);

  Result<void> fill_allow_list(uint8_t list, const std::vector<IpPrefix>& prefixes);

  stamp_reflect* skeleton_;
  ReflectorOptions options_;
  int link_fd_ = -1;
  int ifindex_ = 0;
  AttachMode mode_ = AttachMode::kNative;
  mutable std::mutex policy_mutex_;  ///< set_policy() and policy()
  ReflectorPolicy policy_;
};

/// CLOCK_REALTIME - CLOCK_TAI in nanoseconds: always a whole number of seconds (the kernel's TAI
/// offset, 0 when never set), measured by bracketing so it is exact.
int64_t realtime_minus_tai_ns();

}  // namespace hubprobe::xdp
