// SPDX-License-Identifier: Apache-2.0
// The one dataplane interface. Every backend (kernel sockets now; XDP and DPDK later) moves STAMP
// datagrams in batches, says where each timestamp was taken and in which clock, and how it is woken
// (docs/architecture.md "The dataplane interface"); the STAMP engines above it are shared.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <vector>

#include "hubprobe/clock.h"
#include "hubprobe/net.h"
#include "hubprobe/packet.h"
#include "hubprobe/prefix.h"
#include "hubprobe/result.h"
#include "hubprobe/stamp.h"

namespace hubprobe::dp {

/// How a port is pinned to a path (docs/design.md "Dataplanes").
struct PortOptions {
  SocketAddress local;        ///< bind address and port; port 0 = ephemeral
  std::string device;         ///< SO_BINDTODEVICE, empty = any
  uint32_t fwmark = 0;        ///< SO_MARK, 0 = none
  int dscp = -1;              ///< DSCP 0..63 for every packet, -1 = leave the default
  bool tx_timestamps = true;  ///< request TX timestamps (sender ports)
  bool reuse_port = false;
};

/// Settings of the kernel backend ([dataplane.kernel]), applied to every port it opens.
struct KernelOptions {
  /// SO_RCVBUF in octets, forced past net.core.rmem_max where the process may (socket_buffer.h); 0 = the
  /// kernel's default (net.core.rmem_default).
  int receive_buffer = 0;
  /// NIC hardware timestamps (SIOCSHWTSTAMP) on ports bound to an interface that has a PTP hardware
  /// clock; every other port keeps kernel software timestamps, and each sample says which it got.
  bool hardware_timestamps = false;
};

/// How the xdp backend attaches its programs.
enum class XdpAttachMode : uint8_t {
  kAuto,     ///< native (driver) XDP where the driver has it, else generic; the choice is reported
  kNative,   ///< native only: fails on a driver without XDP support
  kGeneric,  ///< generic (skb) XDP: any device, a little later in the receive path
};

/// Settings of the xdp backend ([dataplane.xdp]). Its probe ports are kernel sockets (KernelOptions apply to
/// them) whose replies are stamped at XDP ingress; its reflector runs in the kernel on these interfaces.
struct XdpOptions {
  std::vector<std::string> interfaces;  ///< where the programs attach; at least one
  XdpAttachMode mode = XdpAttachMode::kAuto;
  /// The reflector's port and timestamp format ([reflector], not [dataplane.xdp]): the programs are built
  /// with them when the dataplane opens, so a reflector role with others is refused until a restart.
  uint16_t reflector_port = kDefaultStampPort;
  TimestampFormat reflector_format = TimestampFormat::kNtp;
  bool operator==(const XdpOptions&) const = default;
};

/// "auto", "native", "generic": the names the config and the command line use.
std::string_view attach_mode_name(XdpAttachMode mode);

/// An address a DPDK port owns: it answers ARP/ND and STAMP for it; the prefix says what is on-link.
struct InterfaceAddress {
  SocketAddress address;   ///< e.g. 198.18.0.1 (port unused)
  unsigned prefix_length;  ///< e.g. 24: what else is on-link
  bool operator==(const InterfaceAddress&) const = default;
};
/// Parses a bare IPv4 or IPv6 address (no port, no brackets).
Result<SocketAddress> parse_host(std::string_view text);
/// Parses "198.18.0.1/24", "2001:db8::1/64" (a bare address is a host prefix).
Result<InterfaceAddress> parse_interface_address(std::string_view text);
/// Parses "02:00:00:00:00:01".
Result<std::array<uint8_t, 6>> parse_mac(std::string_view text);

/// A neighbour whose MAC is configured rather than resolved.
struct StaticNeighbour {
  SocketAddress address;  ///< port unused
  std::array<uint8_t, 6> mac{};
  bool operator==(const StaticNeighbour&) const = default;
};

/// Settings of the dpdk backend ([dataplane.dpdk]). Its one port owns its addresses: it answers ARP and
/// IPv6 ND for them and resolves its next hops itself (or takes them from `neighbours`).
struct DpdkOptions {
  std::string port;                         ///< a PCI address or a vdev string ("net_af_packet0,iface=eth1")
  std::vector<InterfaceAddress> addresses;  ///< at least one
  SocketAddress gateway4;                   ///< off-link IPv4 destinations go here; invalid = none
  SocketAddress gateway6;                   ///< off-link IPv6 destinations go here; invalid = none
  std::vector<StaticNeighbour> neighbours;
  std::vector<std::string> eal_args;  ///< extra EAL arguments; a --file-prefix and -l are added unless given
  int lcore = -1;                     ///< the core the poll loop is pinned to (and EAL's -l); -1 = the last one
  /// The loop's pause after a pass with nothing to do, in µs; 0 = spin (a busy-polled core of its own).
  /// A pause saves the core but delays the RX stamp of what arrives during it by up to the pause.
  int idle_pause_us = 0;
  uint16_t rx_queues = 1;
  uint16_t tx_queues = 1;
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  bool operator==(const DpdkOptions&) const = default;
};

/// What make_dataplane() builds.
struct DataplaneOptions {
  std::string backend = "kernel";
  KernelOptions kernel;
  XdpOptions xdp;
  DpdkOptions dpdk;
  /// Told, once per distinct message, what the backend could not apply as asked and why (a setting
  /// named as in KernelOptions, e.g. "hardware_timestamps: ..."). May be called from any thread that
  /// opens ports. Empty = not told.
  std::function<void(const std::string& message)> notice;
};

/// A reading of a port's clock as wall-clock time.
struct WallStamp {
  WallNs ns = 0;
  /// How far off the conversion may be (calibration, drift since it), in ns. The wall clock's own error
  /// (ClockState, adjtimex) comes on top of it.
  int64_t error_ns = 0;
  bool operator==(const WallStamp&) const = default;
};

/// The clock a port's stamps are read from, and how a reading of it becomes wall-clock time (what STAMP
/// puts on the wire). The kernel backend's is CLOCK_REALTIME itself; a DPDK port's would be its TSC or
/// its NIC's clock, calibrated against the wall clock. Readings are int64 in the domain's own units.
/// Thread-safe.
class ClockDomain {
 public:
  virtual ~ClockDomain() = default;
  /// Reads the clock (a user-space T3, a send time): in the same units as the port's stamps.
  virtual int64_t now() const = 0;
  /// A reading as wall-clock time, with the bound of the conversion's own error.
  virtual WallStamp to_wall(int64_t raw) const = 0;
};

/// The realtime domain: readings are wall time; to_wall() is the identity with no error of its own.
const ClockDomain& realtime_clock();
/// A stamp of a port in `clock` as wall time (the source stays; an invalid stamp stays as it is). The
/// conversion's error bound is dropped: read to_wall() itself where the Error Estimate needs it.
Timestamp to_wall(const ClockDomain& clock, Timestamp stamp);

/// How the thread that owns a port waits for work.
enum class WaitKind : uint8_t {
  kPollFd,    ///< poll(2) on poll_fd(): the kernel wakes the thread
  kBusyPoll,  ///< poll_fd() is -1: call receive() and drain_tx_timestamps() in a loop on a core of its own
};

/// What a port does, as the engines need to know it: where each STAMP timestamp is taken, in which clock,
/// and how to wait. Fixed once the port is open.
struct PortCapabilities {
  TimestampSource rx_source = TimestampSource::kNone;  ///< RX stamps: T2 when the port reflects, T4 when it sends
  TimestampSource tx_source = TimestampSource::kNone;  ///< TX stamps (T1) from drain_tx_timestamps(); kNone = none
  /// T3 when the port reflects: kUser = the engine reads `clock` just before send() (it must be inside the
  /// packet); kXdp or kHardware = the backend writes it into the reply itself.
  TimestampSource t3_source = TimestampSource::kUser;
  WaitKind wait = WaitKind::kPollFd;
  /// The clock every stamp of the port is a reading of; never null, lives as long as the port.
  const ClockDomain* clock = &realtime_clock();

  /// drain_tx_timestamps() delivers a stamp for sent packets (else T1 stays the send time, `sent_at`).
  bool tx_timestamps() const { return tx_source != TimestampSource::kNone; }
};

/// Per-port counters. Written by the owning thread only; read for metrics.
struct PortCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_truncated = 0;
  uint64_t rx_errors = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_errors = 0;
  uint64_t tx_timestamps = 0;
  uint64_t rx_without_timestamp = 0;
};

/// A bound endpoint. Not thread-safe: one owner thread drives it.
class Port {
 public:
  virtual ~Port() = default;
  Port() = default;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  /// Sends a batch; returns how many left. A packet that fails (a firewall's EPERM, an unreachable
  /// destination) gets its `error` set and the rest of the batch still goes; when the socket is full, the
  /// packets from there on get EAGAIN. Never blocks.
  virtual Result<size_t> send(std::span<TxPacket> batch) = 0;
  /// Receives up to batch.size() datagrams without blocking; 0 when none are waiting.
  virtual Result<size_t> receive(std::span<RxPacket> batch) = 0;
  /// Collects TX timestamps that have arrived since the last call.
  virtual size_t drain_tx_timestamps(std::span<TxTimestamp> out) = 0;
  /// A file descriptor that becomes readable when receive() or drain_tx_timestamps() has work
  /// (POLLIN for data, POLLERR for TX timestamps); -1 for busy-polled backends (WaitKind::kBusyPoll).
  virtual int poll_fd() const = 0;
  /// Where this port's timestamps are taken, in which clock, and how to wait for it.
  virtual PortCapabilities capabilities() const = 0;
  virtual SocketAddress local_address() const = 0;
  virtual const PortCounters& counters() const = 0;
};

/// The reflector's options as every implementation of the role takes them ([reflector]; docs/architecture.md
/// "The reflector role").
struct ReflectorRole {
  uint16_t port = kDefaultStampPort;
  /// Addresses answered; an unspecified address (0.0.0.0, ::) answers every address of its family.
  std::vector<SocketAddress> listen;
  bool stateful = true;
  std::vector<IpPrefix> allow;  ///< empty = every source
  uint32_t rate_limit_pps = 0;  ///< per source address; 0 = unlimited
  TimestampFormat format = TimestampFormat::kNtp;
  /// Authenticated mode: a backend reflector hands every request to the user-space reflector.
  bool authenticated = false;
};

/// One outcome counter of a backend reflector, as the reflector metrics name it.
struct ReflectorOutcome {
  enum class Kind : uint8_t {
    kReflected,  ///< answered by the backend
    kDropped,    ///< not answered, `reason` says why (the socket reflector's reasons where they agree)
    kPassed,     ///< handed to the user-space reflector, `reason` says why
    kOther,      ///< not a request to the reflector at all (other traffic the program saw)
  };
  Kind kind = Kind::kOther;
  std::string reason;
  uint64_t value = 0;
};

/// A reflector the backend runs itself (in the kernel, on an lcore), in front of the user-space reflector
/// (ReflectorService), which answers what it hands up. Thread-safe.
class BackendReflector {
 public:
  virtual ~BackendReflector() = default;
  /// E.g. "xdp native on eth1, generic on eth2".
  virtual std::string describe() const = 0;
  /// Reload: new options, all or nothing.
  virtual Result<void> update(const ReflectorRole& role) = 0;
  /// Counters since start, read now (meant for scrapes).
  virtual Result<std::vector<ReflectorOutcome>> outcomes() const = 0;
};

/// Where a backend has attached programs of its own: an interface and how (the xdp backend: "native" or
/// "generic", the auto mode resolved).
struct Attachment {
  std::string interface;
  std::string mode;
  bool operator==(const Attachment&) const = default;
};

/// A counter of a backend that runs its own link (dpdk): frames it dropped, by reason, and the link-layer
/// frames it answered or sent, by kind. Read from any thread.
struct LinkCounter {
  enum class Family : uint8_t { kDropped, kLink };
  Family family = Family::kDropped;
  std::string name;  ///< the reason (kDropped) or kind (kLink) label
  uint64_t value = 0;
};

/// A backend. Opening ports is a start-up action; the ports then run without the backend object.
class Dataplane {
 public:
  virtual ~Dataplane() = default;
  virtual std::string_view name() const = 0;
  /// The backend's own attachments (none for sockets), fixed once the dataplane is open.
  virtual std::vector<Attachment> attachments() const { return {}; }
  /// Counters of the backend's own link layer; none for backends whose link the kernel runs.
  virtual std::vector<LinkCounter> link_counters() const { return {}; }
  /// The backend whose ports open_port() opens: name(), or the backend this one builds on (xdp: kernel).
  virtual std::string_view port_backend() const { return name(); }
  virtual Result<std::unique_ptr<Port>> open_port(const PortOptions& options) = 0;
  /// Starts the backend's own reflector for `role`; null when the backend has none (the user-space reflector on
  /// its ports answers everything). It lives until destroyed (and detaches then, also when the process dies).
  virtual Result<std::unique_ptr<BackendReflector>> start_reflector(const ReflectorRole& /*role*/) {
    return std::unique_ptr<BackendReflector>();
  }
};

/// The backends this build knows: "kernel", "xdp".
Result<std::unique_ptr<Dataplane>> make_dataplane(const DataplaneOptions& options);
/// The backend with its default settings.
Result<std::unique_ptr<Dataplane>> make_dataplane(std::string_view backend);

}  // namespace hubprobe::dp
