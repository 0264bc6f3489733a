// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/dpdk_dataplane.h"

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <sched.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "hubprobe/dpdk_eal_args.h"
#include "hubprobe/dpdk_frames.h"
#include "hubprobe/dpdk_link.h"
#include "hubprobe/tsc_calibration.h"

namespace hubprobe::dpdk {

namespace {
constexpr uint16_t kBurst = 32;
constexpr size_t kQueueDepth = 512;  // datagrams waiting per endpoint
constexpr size_t kFrameRoom = 2048;  // a control frame's buffer
constexpr uint16_t kEphemeralFirst = 49152;

// --- EAL: once per process -------------------------------------------------------------------------------

std::mutex eal_mutex;
bool eal_started = false;
std::string eal_prefix;
std::string eal_runtime_dir;  // where the EAL keeps its files for the prefix (/var/run/dpdk/PREFIX, or under
                              // $RUNTIME_DIRECTORY when systemd gives one)
bool eal_ended = false;
bool eal_owned = false;  // started by start_eal() (else by the program around it)

std::string eal_error_text(int error, const std::vector<std::string>& arguments) {
  const std::string prefix = file_prefix(arguments);
  switch (error) {
    case EACCES:
    case EPERM:
      return "permission denied: the dpdk backend needs root (or CAP_SYS_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK and "
             "access to /dev/hugepages and, for a PCI port, /dev/vfio)";
    case ENOMEM:
      return "no memory for the EAL: reserve hugepages (echo 256 > /proc/sys/vm/nr_hugepages) or run without "
             "them with eal_args = [\"--no-huge\", \"-m\", \"256\"]";
    case EALREADY: return "the EAL was already started in this process (it starts once per process)";
    case EBUSY:
    case EAGAIN:
      return "another DPDK process uses the file prefix \"" + prefix + "\" (/var/run/dpdk/" + prefix +
             "): give this one its own --file-prefix in eal_args, or leave it out (each agent picks hubprobe-PID)";
    case EINVAL: return "the EAL arguments were refused (see the EAL's message above)";
    default: return std::string("the EAL did not start: ") + std::strerror(error);
  }
}

int64_t hugepages_free() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t value = 0;
  while (meminfo >> key >> value) {
    if (key == "HugePages_Free:") return value;
    meminfo.ignore(256, '\n');
  }
  return 0;
}

// rte_eal_init() pins the calling thread to the main lcore, and every thread it starts later inherits that:
// the caller gets its own affinity back, and only the poll loop is pinned (EngineLoopOptions::cpu).
Result<void> start_eal(const dp::DpdkOptions& options) {
  std::lock_guard lock(eal_mutex);
  if (eal_ended) return make_error("dpdk: the EAL was ended in this process and cannot start again", EALREADY);
  if (eal_started) return {};
  const auto arguments = eal_arguments(options, getpid(), online_cpus());
  if (!without_hugepages(arguments) && hugepages_free() == 0) {
    return make_error(
        "no free hugepages (HugePages_Free is 0 in /proc/meminfo): reserve some (echo 256 > "
        "/proc/sys/vm/nr_hugepages) or add \"--no-huge\", \"-m\", \"256\" to dataplane.dpdk.eal_args",
        ENOMEM);
  }
  std::vector<char*> argv;
  std::vector<std::string> storage = arguments;
  for (std::string& argument : storage) argv.push_back(argument.data());
  argv.push_back(nullptr);
  cpu_set_t affinity;
  const bool saved = sched_getaffinity(0, sizeof affinity, &affinity) == 0;
  const int parsed = rte_eal_init(static_cast<int>(argv.size() - 1), argv.data());
  if (saved) sched_setaffinity(0, sizeof affinity, &affinity);
  if (parsed < 0 && rte_errno == EALREADY) {
    eal_started = true;  // the program started the EAL itself (a test): it also ends it
    return {};
  }
  if (parsed < 0) {
    const int error = rte_errno;
    return make_error("dpdk: " + eal_error_text(error, arguments), error);
  }
  eal_started = true;
  eal_owned = true;
  eal_prefix = file_prefix(arguments);
  eal_runtime_dir = rte_eal_get_runtime_dir();
  return {};
}

// Ends the EAL (the port is closed by then) and removes its runtime directory when the prefix was ours.
void stop_eal() {
  std::lock_guard lock(eal_mutex);
  if (!eal_started || !eal_owned) return;
  rte_eal_cleanup();
  eal_started = false;
  eal_ended = true;
  const std::filesystem::path runtime(eal_runtime_dir);
  if (eal_prefix.rfind("hubprobe-", 0) == 0 && runtime.filename() == eal_prefix) {
    std::error_code ignored;
    std::filesystem::remove_all(eal_runtime_dir, ignored);
  }
}

// --- the TSC as a clock domain ---------------------------------------------------------------------------

// Readers on any thread see one of two calibrations; the loop's thread writes the other and flips, once a
// second, so a reader would have to stall a second inside to_wall() to see a half-written one.
class TscClock final : public dp::ClockDomain {
 public:
  TscClock() : slots_{TscCalibration(rte_get_tsc_hz(), read()), TscCalibration(rte_get_tsc_hz(), read())} {}
  int64_t now() const override { return static_cast<int64_t>(rte_rdtsc()); }
  dp::WallStamp to_wall(int64_t raw) const override {
    return slots_[current_.load(std::memory_order_acquire)].to_wall(raw);
  }

  /// From the loop's thread: a new paired reading once a second.
  void refresh(int64_t now_tsc) {
    if (now_tsc - refreshed_at_ < static_cast<int64_t>(rte_get_tsc_hz())) return;
    refreshed_at_ = now_tsc;
    const int next = 1 - current_.load(std::memory_order_relaxed);
    slots_[next] = slots_[1 - next];
    slots_[next].update(read());
    current_.store(next, std::memory_order_release);
  }

 private:
  static TscReading read() {
    timespec ts{};
    const uint64_t before = rte_rdtsc();
    clock_gettime(CLOCK_REALTIME, &ts);
    const uint64_t after = rte_rdtsc();
    const double ns_per_tick = 1e9 / static_cast<double>(rte_get_tsc_hz());
    return {static_cast<int64_t>(before + (after - before) / 2), ts.tv_sec * 1'000'000'000LL + ts.tv_nsec,
            static_cast<int64_t>(static_cast<double>(after - before) / 2 * ns_per_tick) + 1};
  }

  std::array<TscCalibration, 2> slots_;
  std::atomic<int> current_{0};
  int64_t refreshed_at_ = 0;
};

/// A datagram waiting for its endpoint: the frame stays in its mbuf until handed out.
struct Waiting {
  rte_mbuf* mbuf = nullptr;
  const uint8_t* payload = nullptr;
  uint32_t length = 0;
  SocketAddress source;
  SocketAddress destination;
  int ttl = -1;
  int tos = -1;
  int64_t tsc = 0;
  Mac source_mac{};
};

/// A fixed ring of waiting datagrams (allocated once, when the endpoint opens).
class WaitQueue {
 public:
  WaitQueue() : slots_(kQueueDepth) {}
  bool push(Waiting&& waiting) {
    if (size_ == slots_.size()) return false;
    slots_[(head_ + size_++) % slots_.size()] = std::move(waiting);
    return true;
  }
  Waiting* front() { return size_ == 0 ? nullptr : &slots_[head_]; }
  void pop() {
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }
  bool empty() const { return size_ == 0; }

 private:
  std::vector<Waiting> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

class Endpoint;
}  // namespace

// --- the device: the port, its link layer and its endpoints ----------------------------------------------

struct DpdkDataplane::Device {
  dp::DpdkOptions options;
  uint16_t port_id = 0;
  std::string port_name;
  rte_mempool* pool = nullptr;
  bool started = false;
  std::unique_ptr<LinkLayer> link;
  TscClock clock;
  std::map<std::pair<int, uint16_t>, Endpoint*> endpoints;
  uint16_t next_ephemeral = kEphemeralFirst;
  std::array<std::atomic<uint64_t>, kDropCount> drops{};
  std::atomic<uint64_t> no_listener{0};
  std::atomic<uint64_t> queue_full{0};
  std::atomic<uint64_t> multi_segment{0};
  std::atomic<uint64_t> tx_no_mbuf{0};
  std::atomic<uint64_t> tx_full{0};
  std::atomic<uint64_t> unresolved{0};
  std::array<std::atomic<uint64_t>, 6> link_published{};  ///< LinkCounters, copied for readers on other threads
  std::array<uint8_t, kFrameRoom> control{};

  ~Device();
  size_t pump();
  void deliver(rte_mbuf* mbuf, const Frame& frame, int64_t tsc);
  void send_control(std::span<const uint8_t> frame);
  void publish_link();
  std::optional<Mac> next_hop_mac(const Route& route);
  Result<uint16_t> allocate_port(int family);
};

namespace {
class Endpoint final : public dp::Port {
 public:
  Endpoint(std::shared_ptr<DpdkDataplane::Device> device, SocketAddress local, bool listening, int dscp)
      : device_(std::move(device)), local_(local), listening_(listening), tos_(dscp >= 0 ? dscp << 2 : 0) {
    device_->endpoints[{local_.family(), local_.port()}] = this;
  }
  ~Endpoint() override {
    device_->endpoints.erase({local_.family(), local_.port()});
    while (Waiting* waiting = queue_.front()) {
      rte_pktmbuf_free(waiting->mbuf);
      queue_.pop();
    }
  }

  bool accepts(const SocketAddress& destination) const {
    return same_host(local_, SocketAddress::any(local_.family(), 0)) || same_host(local_, destination);
  }
  bool enqueue(Waiting&& waiting) { return queue_.push(std::move(waiting)); }

  Result<size_t> send(std::span<dp::TxPacket> batch) override;
  Result<size_t> receive(std::span<dp::RxPacket> batch) override;
  size_t drain_tx_timestamps(std::span<dp::TxTimestamp> /*out*/) override { return 0; }
  int poll_fd() const override { return -1; }
  dp::PortCapabilities capabilities() const override {
    dp::PortCapabilities capabilities;
    capabilities.rx_source = dp::TimestampSource::kTsc;
    capabilities.tx_source = dp::TimestampSource::kNone;  // sent_at is the TSC read just before the TX burst
    capabilities.t3_source = dp::TimestampSource::kUser;
    capabilities.wait = dp::WaitKind::kBusyPoll;
    capabilities.clock = &device_->clock;
    return capabilities;
  }
  SocketAddress local_address() const override {
    if (!same_host(local_, SocketAddress::any(local_.family(), 0)) || listening_) return local_;
    // An ephemeral endpoint on a wildcard says which of the port's addresses it sends from by default.
    for (const SocketAddress& own : device_->link->addresses()) {
      if (own.family() != local_.family()) continue;
      SocketAddress address = own;
      address.set_port(local_.port());
      return address;
    }
    return local_;
  }
  const dp::PortCounters& counters() const override { return counters_; }

 private:
  rte_mbuf* build(dp::TxPacket& packet);

  std::shared_ptr<DpdkDataplane::Device> device_;
  SocketAddress local_;
  bool listening_;
  int tos_;
  WaitQueue queue_;
  dp::PortCounters counters_;
  uint32_t next_tx_id_ = 1;
};
}  // namespace

DpdkDataplane::Device::~Device() {
  if (started) {
    rte_eth_dev_stop(port_id);
    rte_eth_dev_close(port_id);
  }
  if (pool != nullptr) rte_mempool_free(pool);
  stop_eal();
}

void DpdkDataplane::Device::publish_link() {
  const LinkCounters& c = link->counters();
  const uint64_t values[] = {
      c.arp_replies_sent,   c.neighbour_advertisements_sent, c.echo_replies_sent, c.requests_sent, c.learnt,
      c.unsolicited_ignored};
  for (size_t i = 0; i < link_published.size(); ++i) link_published[i].store(values[i], std::memory_order_relaxed);
}

void DpdkDataplane::Device::send_control(std::span<const uint8_t> frame) {
  rte_mbuf* mbuf = rte_pktmbuf_alloc(pool);
  if (mbuf == nullptr) {
    tx_no_mbuf.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  char* data = rte_pktmbuf_append(mbuf, static_cast<uint16_t>(frame.size()));
  if (data == nullptr) {
    rte_pktmbuf_free(mbuf);
    return;
  }
  std::memcpy(data, frame.data(), frame.size());
  if (rte_eth_tx_burst(port_id, 0, &mbuf, 1) != 1) {
    rte_pktmbuf_free(mbuf);
    tx_full.fetch_add(1, std::memory_order_relaxed);
  }
}

void DpdkDataplane::Device::deliver(rte_mbuf* mbuf, const Frame& frame, int64_t tsc) {
  auto it = endpoints.find({frame.destination.family(), frame.destination.port()});
  if (it == endpoints.end() || !it->second->accepts(frame.destination)) {
    no_listener.fetch_add(1, std::memory_order_relaxed);
    rte_pktmbuf_free(mbuf);
    return;
  }
  Waiting waiting{mbuf,      frame.payload, frame.payload_length, frame.source, frame.destination, frame.ttl,
                  frame.tos, tsc,           frame.source_mac};
  if (!it->second->enqueue(std::move(waiting))) {
    queue_full.fetch_add(1, std::memory_order_relaxed);
    rte_pktmbuf_free(mbuf);
  }
}

size_t DpdkDataplane::Device::pump() {
  std::array<rte_mbuf*, kBurst> mbufs;
  const uint16_t received = rte_eth_rx_burst(port_id, 0, mbufs.data(), kBurst);
  const auto tsc = static_cast<int64_t>(rte_rdtsc());
  clock.refresh(tsc);
  if (received == 0) return 0;
  const MonoNs now = mono_now();
  const Station station = link->station();
  for (uint16_t i = 0; i < received; ++i) {
    rte_mbuf* mbuf = mbufs[i];
    if (mbuf->nb_segs != 1) {
      multi_segment.fetch_add(1, std::memory_order_relaxed);
      rte_pktmbuf_free(mbuf);
      continue;
    }
    const Frame frame =
        parse_frame(std::span(rte_pktmbuf_mtod(mbuf, const uint8_t*), rte_pktmbuf_data_len(mbuf)), station);
    if (frame.kind == FrameKind::kUdp) {
      deliver(mbuf, frame, tsc);
      continue;
    }
    if (frame.kind == FrameKind::kDropped) {
      drops[static_cast<size_t>(frame.drop)].fetch_add(1, std::memory_order_relaxed);
    } else if (const size_t answer = link->handle(frame, now, control); answer != 0) {
      send_control(std::span(control.data(), answer));
    }
    rte_pktmbuf_free(mbuf);
  }
  publish_link();
  return received;
}

std::optional<Mac> DpdkDataplane::Device::next_hop_mac(const Route& route) {
  size_t request = 0;
  auto mac = link->resolve(route, mono_now(), control, request);
  if (request != 0) {
    send_control(std::span(control.data(), request));
    publish_link();
  }
  return mac;
}

Result<uint16_t> DpdkDataplane::Device::allocate_port(int family) {
  for (uint32_t tries = 0; tries < 65536 - kEphemeralFirst; ++tries) {
    const uint16_t candidate = next_ephemeral;
    next_ephemeral = next_ephemeral == 65535 ? kEphemeralFirst : static_cast<uint16_t>(next_ephemeral + 1);
    if (endpoints.count({family, candidate}) == 0) return candidate;
  }
  return make_error("no free UDP port on the dpdk port", EADDRINUSE);
}

rte_mbuf* Endpoint::build(dp::TxPacket& packet) {
  const SocketAddress from = packet.source.valid() ? packet.source : local_address();
  Route route{from, packet.destination};
  std::optional<Mac> mac;
  if (packet.link_destination.valid && device_->link->station().owns(from)) {
    mac = packet.link_destination.octets;  // a reply: back to the MAC its request came from, no routing
  } else {
    auto routed = device_->link->route(packet.destination, from);
    if (!routed) {
      packet.error = routed.error().code;
      return nullptr;
    }
    route = *routed;
    mac = device_->next_hop_mac(route);
  }
  if (!mac) {
    device_->unresolved.fetch_add(1, std::memory_order_relaxed);
    packet.error = EHOSTUNREACH;
    return nullptr;
  }
  rte_mbuf* mbuf = rte_pktmbuf_alloc(device_->pool);
  if (mbuf == nullptr) {
    device_->tx_no_mbuf.fetch_add(1, std::memory_order_relaxed);
    packet.error = ENOBUFS;
    return nullptr;
  }
  UdpHeader header;
  header.source_mac = device_->link->mac();
  header.destination_mac = *mac;
  header.source = route.source;
  header.source.set_port(local_.port());
  header.destination = packet.destination;
  header.tos = packet.tos >= 0 ? packet.tos : tos_;
  const size_t length = build_udp(header, std::span(packet.data, packet.length),
                                  std::span(rte_pktmbuf_mtod(mbuf, uint8_t*), rte_pktmbuf_tailroom(mbuf)));
  if (length == 0) {
    rte_pktmbuf_free(mbuf);
    packet.error = EMSGSIZE;
    return nullptr;
  }
  mbuf->data_len = static_cast<uint16_t>(length);
  mbuf->pkt_len = static_cast<uint32_t>(length);
  return mbuf;
}

Result<size_t> Endpoint::send(std::span<dp::TxPacket> batch) {
  std::array<rte_mbuf*, kBurst> mbufs;
  std::array<dp::TxPacket*, kBurst> owners;
  size_t left = 0;
  for (size_t first = 0; first < batch.size(); first += kBurst) {
    const size_t count = std::min<size_t>(kBurst, batch.size() - first);
    uint16_t built = 0;
    for (size_t i = first; i < first + count; ++i) {
      dp::TxPacket& packet = batch[i];
      packet.error = 0;
      packet.tx_id = next_tx_id_++;
      if (rte_mbuf* mbuf = build(packet)) {
        mbufs[built] = mbuf;
        owners[built++] = &packet;
      } else {
        ++counters_.tx_errors;
      }
    }
    const int64_t tsc = static_cast<int64_t>(rte_rdtsc());
    const uint16_t sent = built == 0 ? 0 : rte_eth_tx_burst(device_->port_id, 0, mbufs.data(), built);
    for (uint16_t i = 0; i < built; ++i) {
      if (i < sent) {
        owners[i]->sent_at = {tsc, dp::TimestampSource::kTsc};
        ++counters_.tx_packets;
        ++left;
      } else {
        rte_pktmbuf_free(mbufs[i]);
        owners[i]->error = EAGAIN;
        device_->tx_full.fetch_add(1, std::memory_order_relaxed);
        ++counters_.tx_errors;
      }
    }
  }
  return left;
}

Result<size_t> Endpoint::receive(std::span<dp::RxPacket> batch) {
  if (queue_.empty()) device_->pump();
  size_t handed = 0;
  while (handed < batch.size()) {
    Waiting* waiting = queue_.front();
    if (waiting == nullptr) break;
    dp::RxPacket& packet = batch[handed++];
    packet.length = std::min(waiting->length, packet.capacity);
    packet.truncated = waiting->length > packet.capacity;
    if (packet.length > 0) std::memcpy(packet.data, waiting->payload, packet.length);
    packet.source = waiting->source;
    packet.destination = waiting->destination;
    packet.ifindex = 0;
    packet.ttl = waiting->ttl;
    packet.tos = waiting->tos;
    packet.rx = {waiting->tsc, dp::TimestampSource::kTsc};
    packet.link_source = {waiting->source_mac, true};
    ++counters_.rx_packets;
    if (packet.truncated) ++counters_.rx_truncated;
    rte_pktmbuf_free(waiting->mbuf);
    queue_.pop();
  }
  return handed;
}

// --- the dataplane ---------------------------------------------------------------------------------------

namespace {
Result<uint16_t> find_port(const std::string& port) {
  const std::string name = port.substr(0, port.find(','));
  uint16_t id = 0;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) == 0) return id;
  if (const int probed = rte_dev_probe(port.c_str()); probed < 0) {
    return make_error("dpdk: port \"" + port + "\" not found: " + std::strerror(-probed) +
                          (name.rfind("net_", 0) == 0 ? " (does the vdev's interface exist in this namespace?)"
                                                      : " (is the PCI device bound to vfio-pci or uio, and "
                                                        "allowed with -a in eal_args?)"),
                      -probed);
  }
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0) {
    return make_error("dpdk: port \"" + port + "\" probed but no ethdev named \"" + name + "\" appeared", ENODEV);
  }
  return id;
}

Result<void> start_port(DpdkDataplane::Device& device) {
  const dp::DpdkOptions& options = device.options;
  rte_eth_conf conf{};
  if (const int r = rte_eth_dev_configure(device.port_id, 1, 1, &conf); r < 0) {
    return make_error("dpdk: cannot configure port " + device.port_name + ": " + std::strerror(-r), -r);
  }
  uint16_t rx = options.rx_descriptors;
  uint16_t tx = options.tx_descriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(device.port_id, &rx, &tx);
  const int socket = rte_eth_dev_socket_id(device.port_id);
  const std::string pool_name = "hubprobe" + std::to_string(device.port_id);
  device.pool = rte_pktmbuf_pool_create(pool_name.c_str(), 2 * (rx + tx) + 4 * kQueueDepth + 1023, 256, 0,
                                        RTE_MBUF_DEFAULT_BUF_SIZE, socket < 0 ? SOCKET_ID_ANY : socket);
  if (device.pool == nullptr) {
    return make_error(std::string("dpdk: cannot create the packet pool: ") + rte_strerror(rte_errno) +
                          " (give the EAL more memory: -m in eal_args)",
                      rte_errno);
  }
  if (const int r = rte_eth_rx_queue_setup(device.port_id, 0, rx, socket, nullptr, device.pool); r < 0) {
    return make_error("dpdk: RX queue of " + device.port_name + ": " + std::strerror(-r), -r);
  }
  if (const int r = rte_eth_tx_queue_setup(device.port_id, 0, tx, socket, nullptr); r < 0) {
    return make_error("dpdk: TX queue of " + device.port_name + ": " + std::strerror(-r), -r);
  }
  if (const int r = rte_eth_dev_start(device.port_id); r < 0) {
    return make_error("dpdk: cannot start " + device.port_name + ": " + std::strerror(-r), -r);
  }
  device.started = true;
  rte_eth_allmulticast_enable(device.port_id);  // solicited-node groups for ND; vdevs see everything anyway
  return {};
}
}  // namespace

Result<std::unique_ptr<DpdkDataplane>> DpdkDataplane::open(const dp::DpdkOptions& options,
                                                           std::function<void(const std::string&)> notice) {
  if (options.addresses.empty()) return make_error("dpdk: the port needs at least one address", EINVAL);
  if (auto r = start_eal(options); !r) return r.error();
  auto device = std::make_shared<Device>();
  device->options = options;
  auto port = find_port(options.port);
  if (!port) return port.error();
  device->port_id = *port;
  device->port_name = options.port.substr(0, options.port.find(','));
  if (auto r = start_port(*device); !r) return r.error();
  rte_ether_addr mac{};
  rte_eth_macaddr_get(device->port_id, &mac);
  Mac own;
  std::memcpy(own.data(), mac.addr_bytes, own.size());
  device->link = std::make_unique<LinkLayer>(own, options);
  if (notice && rte_eth_timesync_enable(device->port_id) == 0) {
    rte_eth_timesync_disable(device->port_id);
    notice("hardware_timestamps: " + device->port_name +
           " has a NIC clock (timesync), but this build stamps with the TSC only");
  }
  return std::unique_ptr<DpdkDataplane>(new DpdkDataplane(std::move(device)));
}

DpdkDataplane::DpdkDataplane(std::shared_ptr<Device> device) : device_(std::move(device)) {}

DpdkDataplane::~DpdkDataplane() = default;

std::vector<dp::Attachment> DpdkDataplane::attachments() const { return {{device_->port_name, "poll"}}; }

std::vector<dp::LinkCounter> DpdkDataplane::link_counters() const {
  using Family = dp::LinkCounter::Family;
  std::vector<dp::LinkCounter> out;
  for (size_t i = 1; i < kDropCount; ++i) {
    out.push_back({Family::kDropped, std::string(drop_name(static_cast<Drop>(i))),
                   device_->drops[i].load(std::memory_order_relaxed)});
  }
  const auto add = [&](Family family, const char* name, const std::atomic<uint64_t>& value) {
    out.push_back({family, name, value.load(std::memory_order_relaxed)});
  };
  add(Family::kDropped, "no_listener", device_->no_listener);
  add(Family::kDropped, "queue_full", device_->queue_full);
  add(Family::kDropped, "multi_segment", device_->multi_segment);
  add(Family::kDropped, "tx_no_buffer", device_->tx_no_mbuf);
  add(Family::kDropped, "tx_ring_full", device_->tx_full);
  add(Family::kDropped, "tx_unresolved_next_hop", device_->unresolved);
  static constexpr const char* kLink[] = {"arp_reply_sent",    "neighbour_advertisement_sent",
                                          "echo_reply_sent",   "resolution_sent",
                                          "resolution_learnt", "unsolicited_ignored"};
  for (size_t i = 0; i < device_->link_published.size(); ++i) add(Family::kLink, kLink[i], device_->link_published[i]);
  return out;
}

Result<std::unique_ptr<dp::Port>> DpdkDataplane::open_port(const dp::PortOptions& options) {
  if (!options.device.empty()) {
    return make_error("the dpdk backend has one port: a path's interface means nothing here", EINVAL);
  }
  if (options.fwmark != 0) return make_error("the dpdk backend has no routing table: fwmark means nothing", EINVAL);
  SocketAddress local = options.local.valid() ? options.local : SocketAddress::any(AF_INET, 0);
  const bool wildcard = same_host(local, SocketAddress::any(local.family(), 0));
  if (!wildcard && !device_->link->station().owns(local)) {
    return make_error("cannot open " + local.to_string() + ": not an address of the dpdk port", EADDRNOTAVAIL);
  }
  const bool listening = local.port() != 0;
  if (!listening) {
    auto port = device_->allocate_port(local.family());
    if (!port) return port.error();
    local.set_port(*port);
  } else if (device_->endpoints.count({local.family(), local.port()}) != 0) {
    return make_error("cannot open " + local.to_string() + ": " + std::strerror(EADDRINUSE), EADDRINUSE);
  }
  return std::unique_ptr<dp::Port>(std::make_unique<Endpoint>(device_, local, listening, options.dscp));
}

}  // namespace hubprobe::dpdk
