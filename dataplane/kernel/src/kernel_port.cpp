// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/kernel_port.h"

#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <linux/ethtool.h>
#include <linux/net_tstamp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "hubprobe/socket_buffer.h"

namespace hubprobe::dp {

namespace {

// SCM_TS_OPT_ID (linux/socket.h, kernel 6.13+): a control message that sets a packet's timestamp key.
constexpr int kScmTsOptId = 81;

// Whether the running kernel accepts SCM_TS_OPT_ID (6.13 and later).
bool kernel_has_explicit_tx_id() {
  utsname name{};
  if (uname(&name) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(name.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 13);
}

WallNs to_ns(const timespec& ts) { return static_cast<WallNs>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec; }

Result<void> set_int_option(int fd, int level, int name, int value, const char* what) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) return errno_error(what);
  return {};
}

ifreq device_request(const std::string& device, void* data) {
  ifreq request{};
  std::memcpy(request.ifr_name, device.c_str(), std::min(device.size(), sizeof(request.ifr_name) - 1));
  request.ifr_data = static_cast<char*>(data);
  return request;
}

// Whether `device` can stamp every packet in hardware both ways (ethtool -T); the error says why not.
Result<void> check_hardware_timestamping(int fd, const std::string& device) {
  ethtool_ts_info info{};
  info.cmd = ETHTOOL_GET_TS_INFO;
  ifreq request = device_request(device, &info);
  if (ioctl(fd, SIOCETHTOOL, &request) != 0) return errno_error("ETHTOOL_GET_TS_INFO on " + device);
  constexpr unsigned kHardware =
      SOF_TIMESTAMPING_TX_HARDWARE | SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE;
  if (info.phc_index < 0 || (info.so_timestamping & kHardware) != kHardware) {
    return make_error(device + " has no hardware timestamping (no PTP hardware clock: ethtool -T " + device + ")");
  }
  if (!(info.tx_types & (1u << HWTSTAMP_TX_ON)) || !(info.rx_filters & (1u << HWTSTAMP_FILTER_ALL))) {
    return make_error(device + " stamps only some packets in hardware (no TX \"on\" / RX filter \"all\": ethtool -T " +
                      device + ")");
  }
  return {};
}

// Asks the driver of `device` to stamp every packet in hardware (SIOCSHWTSTAMP, a setting of the device
// that stays after we exit). The error says why not: no interface, no PTP hardware clock, no permission.
Result<void> enable_hardware_timestamps(int fd, const std::string& device) {
  if (device.empty()) return make_error("a port bound to no interface has none (SIOCSHWTSTAMP is per interface)");
  if (auto r = check_hardware_timestamping(fd, device); !r) return r;
  hwtstamp_config config{};
  config.tx_type = HWTSTAMP_TX_ON;
  config.rx_filter = HWTSTAMP_FILTER_ALL;
  ifreq request = device_request(device, &config);
  if (ioctl(fd, SIOCSHWTSTAMP, &request) != 0) {
    const int code = errno;
    std::string message = "SIOCSHWTSTAMP on " + device + ": " + std::strerror(code);
    if (code == EPERM) message += " (needs CAP_NET_ADMIN)";
    return make_error(message, code);
  }
  return {};
}

// Picks the best stamp of an SCM_TIMESTAMPING message: hardware (ts[2]) over software (ts[0]).
Timestamp from_scm_timestamping(const cmsghdr* cmsg) {
  scm_timestamping stamps;
  std::memcpy(&stamps, CMSG_DATA(cmsg), sizeof(stamps));
  if (stamps.ts[2].tv_sec != 0 || stamps.ts[2].tv_nsec != 0) return {to_ns(stamps.ts[2]), TimestampSource::kHardware};
  if (stamps.ts[0].tv_sec != 0 || stamps.ts[0].tv_nsec != 0) {
    return {to_ns(stamps.ts[0]), TimestampSource::kKernelSoftware};
  }
  return {};
}

template <class T>
T cmsg_value(const cmsghdr* cmsg) {
  T value{};
  std::memcpy(&value, CMSG_DATA(cmsg), std::min(sizeof(T), static_cast<size_t>(cmsg->cmsg_len - CMSG_LEN(0))));
  return value;
}

}  // namespace

Result<std::unique_ptr<KernelPort>> KernelPort::open(const PortOptions& options, const KernelOptions& kernel) {
  if (!options.local.valid()) return make_error("port needs a local address (IPv4 or IPv6)");
  const int family = options.local.family();
  const int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return errno_error("socket");
  // The port object owns fd from here, so every early return closes it.
  std::unique_ptr<KernelPort> port(new KernelPort(fd, options.local, options.tx_timestamps, false));
  port->explicit_tx_id_ = options.tx_timestamps && kernel_has_explicit_tx_id();
  const std::string where = " on " + options.local.to_string();

  if (family == AF_INET6) {
    if (auto r = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY"); !r) return r.error();
  }
  // No SO_REUSEADDR: on UDP it would let a second reflector silently share the port.
  if (options.reuse_port) {
    if (auto r = set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"); !r) return r.error();
  }
  if (!options.device.empty()) {
    if (if_nametoindex(options.device.c_str()) == 0) {
      return make_error("unknown interface \"" + options.device + "\"", ENODEV);
    }
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, options.device.c_str(),
                   static_cast<socklen_t>(options.device.size())) != 0) {
      return errno_error("SO_BINDTODEVICE " + options.device);
    }
  }
  if (options.fwmark != 0) {
    if (auto r =
            set_int_option(fd, SOL_SOCKET, SO_MARK, static_cast<int>(options.fwmark), "SO_MARK (needs CAP_NET_ADMIN)");
        !r) {
      return r.error();
    }
  }
  if (options.dscp >= 0) {
    if (options.dscp > 63) return make_error("DSCP must be 0..63");
    const int tos = options.dscp << 2;
    auto r = family == AF_INET ? set_int_option(fd, IPPROTO_IP, IP_TOS, tos, "IP_TOS")
                               : set_int_option(fd, IPPROTO_IPV6, IPV6_TCLASS, tos, "IPV6_TCLASS");
    if (!r) return r.error();
  }
  if (kernel.receive_buffer > 0) port->set_receive_buffer(kernel.receive_buffer);
  // Ancillary data on receive: the local address asked (reply from it), TTL (reflected), TOS.
  if (family == AF_INET) {
    for (int name : {IP_PKTINFO, IP_RECVTTL, IP_RECVTOS}) {
      if (auto r = set_int_option(fd, IPPROTO_IP, name, 1, "IP_PKTINFO/RECVTTL/RECVTOS"); !r) return r.error();
    }
  } else {
    for (int name : {IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS}) {
      if (auto r = set_int_option(fd, IPPROTO_IPV6, name, 1, "IPV6_RECVPKTINFO/HOPLIMIT/TCLASS"); !r) {
        return r.error();
      }
    }
  }

  const unsigned flags = port->timestamping_flags(options, kernel);
  if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof(flags)) != 0) {
    return errno_error("SO_TIMESTAMPING");
  }

  if (bind(fd, options.local.sockaddr_ptr(), options.local.length()) != 0) {
    const int code = errno;
    std::string message = "bind" + where + ": " + std::strerror(code);
    if (code == EADDRINUSE) message += " (another process holds the port)";
    if (code == EADDRNOTAVAIL) message += " (the address is not configured on this host)";
    if (code == EACCES) message += " (ports below 1024 need CAP_NET_BIND_SERVICE)";
    return make_error(message, code);
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length) == 0) {
    port->local_ = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&bound), bound_length);
  }
  return port;
}

KernelPort::~KernelPort() {
  if (fd_ >= 0) close(fd_);
}

PortCapabilities KernelPort::capabilities() const {
  const TimestampSource kernel = hardware_ ? TimestampSource::kHardware : TimestampSource::kKernelSoftware;
  PortCapabilities capabilities;
  capabilities.rx_source = kernel;
  capabilities.tx_source = tx_timestamps_ ? kernel : TimestampSource::kNone;
  capabilities.t3_source = TimestampSource::kUser;
  capabilities.wait = WaitKind::kPollFd;
  capabilities.clock = &realtime_clock();
  return capabilities;
}

void KernelPort::set_receive_buffer(int octets) {
  auto granted = set_socket_buffer(fd_, SocketBuffer::kReceive, octets);
  if (!granted) {
    notices_.push_back("receive_buffer: " + granted.error().message);
  } else if (socket_buffer_capped(*granted, octets)) {
    notices_.push_back("receive_buffer: " + std::to_string(octets) + " octets asked, the kernel allows " +
                       std::to_string(*granted / 2) + " (net.core.rmem_max; more needs CAP_NET_ADMIN)");
  }
}

unsigned KernelPort::timestamping_flags(const PortOptions& options, const KernelOptions& kernel) {
  unsigned flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
  if (kernel.hardware_timestamps) {
    if (auto enabled = enable_hardware_timestamps(fd_, options.device); enabled) {
      hardware_ = true;
      flags |= SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE;
    } else {
      notices_.push_back("hardware_timestamps: " + enabled.error().message + ": kernel software timestamps instead");
    }
  }
  if (options.tx_timestamps) {
    // One TX stamp per packet: hardware when the NIC does it, else the driver's software stamp.
    flags |= (hardware_ ? SOF_TIMESTAMPING_TX_HARDWARE : SOF_TIMESTAMPING_TX_SOFTWARE) | SOF_TIMESTAMPING_OPT_ID |
             SOF_TIMESTAMPING_OPT_TSONLY;
  }
  return flags;
}

namespace {

// Appends one control message to a packet's ancillary data.
class ControlWriter {
 public:
  explicit ControlWriter(char* buffer) : buffer_(buffer) {}
  void add(int level, int type, const void* data, size_t size) {
    auto* cmsg = reinterpret_cast<cmsghdr*>(buffer_ + length_);
    cmsg->cmsg_level = level;
    cmsg->cmsg_type = type;
    cmsg->cmsg_len = CMSG_LEN(size);
    std::memcpy(CMSG_DATA(cmsg), data, size);
    length_ += CMSG_SPACE(size);
  }
  size_t length() const { return length_; }

 private:
  char* buffer_;
  size_t length_ = 0;
};

// The source address a reflector answers from (the address asked), unless it is multicast or broadcast.
void add_source(ControlWriter& control, const TxPacket& packet) {
  if (!packet.source.valid() || packet.source.family() != packet.destination.family()) return;
  if (packet.destination.is_v4()) {
    in_pktinfo info{};
    info.ipi_spec_dst = reinterpret_cast<const sockaddr_in*>(packet.source.sockaddr_ptr())->sin_addr;
    if (IN_MULTICAST(ntohl(info.ipi_spec_dst.s_addr)) || info.ipi_spec_dst.s_addr == INADDR_BROADCAST) return;
    control.add(IPPROTO_IP, IP_PKTINFO, &info, sizeof(info));
    return;
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(packet.source.sockaddr_ptr());
  if (IN6_IS_ADDR_MULTICAST(&sin6->sin6_addr)) return;
  in6_pktinfo info{};
  info.ipi6_addr = sin6->sin6_addr;
  info.ipi6_ifindex = sin6->sin6_scope_id;
  control.add(IPPROTO_IPV6, IPV6_PKTINFO, &info, sizeof(info));
}

void add_tos(ControlWriter& control, const TxPacket& packet) {
  if (packet.tos < 0) return;
  const int tos = packet.tos & 0xff;
  if (packet.destination.is_v4()) {
    control.add(IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
  } else {
    control.add(IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
  }
}

}  // namespace

// One message of a sendmmsg batch: destination, payload and per-packet ancillary data (source, TOS, and
// the TX timestamp's key where the kernel lets us name it).
void KernelPort::prepare(size_t slot, TxPacket& packet) {
  mmsghdr& header = headers_[slot];
  header = {};
  iovecs_[slot] = {const_cast<uint8_t*>(packet.data), packet.length};
  std::memcpy(&names_[slot], packet.destination.sockaddr_ptr(), packet.destination.length());
  header.msg_hdr.msg_name = &names_[slot];
  header.msg_hdr.msg_namelen = packet.destination.length();
  header.msg_hdr.msg_iov = &iovecs_[slot];
  header.msg_hdr.msg_iovlen = 1;
  ControlWriter control(controls_[slot].data());
  add_source(control, packet);
  add_tos(control, packet);
  packet.error = 0;
  if (tx_timestamps_ && explicit_tx_id_) {
    // Name the TX timestamp ourselves where the kernel lets us (6.13+): a packet dropped after the
    // kernel counted it can then never shift the match of later stamps.
    packet.tx_id = next_tx_id_++;
    control.add(SOL_SOCKET, kScmTsOptId, &packet.tx_id, sizeof(packet.tx_id));
  }
  header.msg_hdr.msg_control = control.length() ? controls_[slot].data() : nullptr;
  header.msg_hdr.msg_controllen = control.length();
}

Result<size_t> KernelPort::send(std::span<TxPacket> batch) {
  size_t done = 0;
  size_t sent_total = 0;
  while (done < batch.size()) {
    const size_t count = std::min(kBatch, batch.size() - done);
    for (size_t i = 0; i < count; ++i) prepare(i, batch[done + i]);

    const Timestamp sent_at{wall_now(), TimestampSource::kUser};
    const int sent = sendmmsg(fd_, headers_.data(), static_cast<unsigned>(count), MSG_DONTWAIT);
    if (sent <= 0) {
      const int code = sent == 0 ? EAGAIN : errno;
      if (code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS) {
        // The socket is full: nothing more leaves in this call.
        for (size_t i = done; i < batch.size(); ++i) batch[i].error = code;
        counters_.tx_errors += batch.size() - done;
        return sent_total;
      }
      // This one message failed (a firewall's EPERM, an unreachable destination): skip it, send the rest.
      batch[done].error = code;
      ++counters_.tx_errors;
      ++done;
      continue;
    }
    for (int i = 0; i < sent; ++i) {
      TxPacket& packet = batch[done + static_cast<size_t>(i)];
      packet.sent_at = sent_at;
      // Older kernels number the TX timestamps of a socket 0, 1, 2, ... in the order packets were sent.
      if (tx_timestamps_ && !explicit_tx_id_) packet.tx_id = next_tx_id_++;
    }
    counters_.tx_packets += static_cast<uint64_t>(sent);
    sent_total += static_cast<size_t>(sent);
    done += static_cast<size_t>(sent);
    if (static_cast<size_t>(sent) < count) {
      // Message `done` failed after others left; sendmmsg(2) drops its error code. Trying it again would
      // send it twice if it did reach the wire (a firewall counts it, then refuses it): skip it.
      batch[done].error = EIO;
      ++counters_.tx_errors;
      ++done;
    }
  }
  return sent_total;
}

Result<size_t> KernelPort::receive(std::span<RxPacket> batch) {
  const size_t count = std::min(kBatch, batch.size());
  for (size_t i = 0; i < count; ++i) {
    mmsghdr& header = headers_[i];
    header = {};
    iovecs_[i] = {batch[i].data, batch[i].capacity};
    header.msg_hdr.msg_name = &names_[i];
    header.msg_hdr.msg_namelen = sizeof(names_[i]);
    header.msg_hdr.msg_iov = &iovecs_[i];
    header.msg_hdr.msg_iovlen = 1;
    header.msg_hdr.msg_control = controls_[i].data();
    header.msg_hdr.msg_controllen = kControlSize;
  }
  const int received = recvmmsg(fd_, headers_.data(), static_cast<unsigned>(count), MSG_DONTWAIT, nullptr);
  if (received < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    ++counters_.rx_errors;
    return errno_error("recvmmsg");
  }

  const uint16_t local_port = local_.port();
  for (int i = 0; i < received; ++i) {
    const msghdr& message = headers_[static_cast<size_t>(i)].msg_hdr;
    RxPacket& packet = batch[static_cast<size_t>(i)];
    const uint32_t length = headers_[static_cast<size_t>(i)].msg_len;
    packet.truncated = (message.msg_flags & MSG_TRUNC) != 0;
    packet.length = std::min(length, packet.capacity);
    packet.source = SocketAddress::from_sockaddr(static_cast<const sockaddr*>(message.msg_name), message.msg_namelen);
    packet.destination = SocketAddress();
    packet.ifindex = 0;
    packet.ttl = -1;
    packet.tos = -1;
    packet.rx = {};
    for (cmsghdr* cmsg = CMSG_FIRSTHDR(&message); cmsg != nullptr;
         cmsg = CMSG_NXTHDR(const_cast<msghdr*>(&message), cmsg)) {
      if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_TIMESTAMPING) {
        packet.rx = from_scm_timestamping(cmsg);
      } else if (cmsg->cmsg_level == IPPROTO_IP && cmsg->cmsg_type == IP_PKTINFO) {
        const auto info = cmsg_value<in_pktinfo>(cmsg);
        sockaddr_in local{};
        local.sin_family = AF_INET;
        local.sin_addr = info.ipi_addr;
        local.sin_port = htons(local_port);
        packet.destination = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&local), sizeof(local));
        packet.ifindex = info.ipi_ifindex;
      } else if (cmsg->cmsg_level == IPPROTO_IP && cmsg->cmsg_type == IP_TTL) {
        packet.ttl = cmsg_value<int>(cmsg);
      } else if (cmsg->cmsg_level == IPPROTO_IP && cmsg->cmsg_type == IP_TOS) {
        packet.tos = cmsg_value<uint8_t>(cmsg);
      } else if (cmsg->cmsg_level == IPPROTO_IPV6 && cmsg->cmsg_type == IPV6_PKTINFO) {
        const auto info = cmsg_value<in6_pktinfo>(cmsg);
        sockaddr_in6 local{};
        local.sin6_family = AF_INET6;
        local.sin6_addr = info.ipi6_addr;
        local.sin6_port = htons(local_port);
        if (IN6_IS_ADDR_LINKLOCAL(&info.ipi6_addr)) local.sin6_scope_id = static_cast<uint32_t>(info.ipi6_ifindex);
        packet.destination = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&local), sizeof(local));
        packet.ifindex = static_cast<int>(info.ipi6_ifindex);
      } else if (cmsg->cmsg_level == IPPROTO_IPV6 && cmsg->cmsg_type == IPV6_HOPLIMIT) {
        packet.ttl = cmsg_value<int>(cmsg);
      } else if (cmsg->cmsg_level == IPPROTO_IPV6 && cmsg->cmsg_type == IPV6_TCLASS) {
        packet.tos = cmsg_value<int>(cmsg);
      }
    }
    if (!packet.rx.valid()) ++counters_.rx_without_timestamp;
    if (packet.truncated) ++counters_.rx_truncated;
  }
  counters_.rx_packets += static_cast<uint64_t>(received);
  return static_cast<size_t>(received);
}

size_t KernelPort::drain_tx_timestamps(std::span<TxTimestamp> out) {
  size_t produced = 0;
  while (produced < out.size()) {
    const size_t count = std::min(kBatch, out.size() - produced);
    for (size_t i = 0; i < count; ++i) {
      mmsghdr& header = headers_[i];
      header = {};
      // OPT_TSONLY: no payload comes back, only the control messages.
      header.msg_hdr.msg_control = controls_[i].data();
      header.msg_hdr.msg_controllen = kControlSize;
    }
    const int received =
        recvmmsg(fd_, headers_.data(), static_cast<unsigned>(count), MSG_ERRQUEUE | MSG_DONTWAIT, nullptr);
    if (received <= 0) break;
    for (int i = 0; i < received; ++i) {
      msghdr& message = headers_[static_cast<size_t>(i)].msg_hdr;
      Timestamp stamp;
      bool is_timestamp = false;
      uint32_t id = 0;
      for (cmsghdr* cmsg = CMSG_FIRSTHDR(&message); cmsg != nullptr; cmsg = CMSG_NXTHDR(&message, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_TIMESTAMPING) {
          stamp = from_scm_timestamping(cmsg);
        } else if ((cmsg->cmsg_level == IPPROTO_IP && cmsg->cmsg_type == IP_RECVERR) ||
                   (cmsg->cmsg_level == IPPROTO_IPV6 && cmsg->cmsg_type == IPV6_RECVERR)) {
          const auto error = cmsg_value<sock_extended_err>(cmsg);
          if (error.ee_errno == ENOMSG && error.ee_origin == SO_EE_ORIGIN_TIMESTAMPING) {
            is_timestamp = true;
            id = error.ee_data;
          }
        }
      }
      if (is_timestamp && stamp.valid()) {
        out[produced++] = TxTimestamp{id, stamp};
        ++counters_.tx_timestamps;
      }
    }
    if (static_cast<size_t>(received) < count) break;
  }
  return produced;
}

Result<std::unique_ptr<Port>> KernelDataplane::open_port(const PortOptions& options) {
  auto port = KernelPort::open(options, options_);
  if (!port) return port.error();
  for (const std::string& message : (*port)->notices()) tell_once(message);
  return std::unique_ptr<Port>(std::move(port.value()));
}

void KernelDataplane::tell_once(const std::string& message) {
  if (!notice_) return;
  {
    std::lock_guard lock(told_mutex_);
    if (!told_.insert(message).second) return;
  }
  notice_(message);
}

}  // namespace hubprobe::dp
