// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/xdp_dataplane.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>

#include "hubprobe/stamp_wire.h"

namespace hubprobe::xdp {
namespace {

constexpr auto kClockRefresh = std::chrono::seconds(1);

std::string_view mode_name(AttachMode mode) { return mode == AttachMode::kNative ? "native" : "generic"; }

// Attaches `program` to `ifindex` as `mode` asks (auto: XdpReflector::attach_auto, native then generic).
Result<AttachMode> attach_one(XdpReflector& program, int ifindex, dp::XdpAttachMode mode) {
  if (mode == dp::XdpAttachMode::kAuto) return program.attach_auto(ifindex);
  const AttachMode fixed = mode == dp::XdpAttachMode::kNative ? AttachMode::kNative : AttachMode::kGeneric;
  if (auto r = program.attach(ifindex, fixed); !r) return r.error();
  return fixed;
}

// The program's counter names say what each counts (bpf/stamp_reflect.h): reflected, dropped_REASON and
// passed_REASON; passed_not_stamp, passed_off, passed_other_address and anything else is not a request the
// reflector was asked (it listens on no such address, or not at all).
dp::ReflectorOutcome outcome_of(std::string_view name, uint64_t value) {
  using Kind = dp::ReflectorOutcome::Kind;
  constexpr std::string_view kDropped = "dropped_", kPassed = "passed_";
  if (name == "reflected") return {Kind::kReflected, "", value};
  if (name.starts_with(kDropped)) return {Kind::kDropped, std::string(name.substr(kDropped.size())), value};
  if (name.starts_with(kPassed) && name != "passed_not_stamp" && name != "passed_off" &&
      name != "passed_other_address") {
    return {Kind::kPassed, std::string(name.substr(kPassed.size())), value};
  }
  return {Kind::kOther, std::string(name), value};
}

// The key of a reply's XDP RX stamp: the port's local port, and the SSID and Session-Sender Sequence Number
// the reply carries (unauthenticated layout: the program stamps only those). Nullopt when it is no reply.
std::optional<RxStampKey> rx_stamp_key(const dp::RxPacket& packet, uint16_t local_port) {
  if (packet.length < sizeof(stamp_reflector_unauth)) return std::nullopt;
  const auto ssid = stamp::read_ssid({packet.data, packet.length}, stamp::Mode::kUnauthenticated);
  if (!ssid) return std::nullopt;
  uint32_t sender_seq = 0;
  std::memcpy(&sender_seq, packet.data + offsetof(stamp_reflector_unauth, sender_seq), sizeof(sender_seq));
  return RxStampKey{local_port, *ssid, ntohl(sender_seq)};
}

// A kernel port whose replies get their T4 from the XDP program where it stamped them (else the kernel's).
class XdpPort final : public dp::Port {
 public:
  XdpPort(std::unique_ptr<dp::Port> inner, std::shared_ptr<XdpPrograms> programs, bool stamped)
      : inner_(std::move(inner)), programs_(std::move(programs)), stamped_(stamped) {}
  ~XdpPort() override {
    if (stamped_) programs_->unregister_sender_port(inner_->local_address().port());
  }

  Result<size_t> send(std::span<dp::TxPacket> batch) override { return inner_->send(batch); }
  Result<size_t> receive(std::span<dp::RxPacket> batch) override {
    auto received = inner_->receive(batch);
    if (!received || !stamped_) return received;
    const uint16_t local_port = inner_->local_address().port();
    for (size_t i = 0; i < received.value(); ++i) {
      const auto key = rx_stamp_key(batch[i], local_port);
      if (!key) continue;
      if (const auto at = programs_->take_rx_stamp(*key)) batch[i].rx = dp::Timestamp{*at, dp::TimestampSource::kXdp};
    }
    return received;
  }
  size_t drain_tx_timestamps(std::span<dp::TxTimestamp> out) override { return inner_->drain_tx_timestamps(out); }
  int poll_fd() const override { return inner_->poll_fd(); }
  dp::PortCapabilities capabilities() const override {
    dp::PortCapabilities c = inner_->capabilities();
    // A reply the program did not stamp (authenticated, IPv4 options, evicted) keeps the kernel's stamp,
    // which says so in its own source.
    if (stamped_) c.rx_source = dp::TimestampSource::kXdp;
    return c;
  }
  SocketAddress local_address() const override { return inner_->local_address(); }
  const dp::PortCounters& counters() const override { return inner_->counters(); }

 private:
  std::unique_ptr<dp::Port> inner_;
  std::shared_ptr<XdpPrograms> programs_;
  bool stamped_;
};

}  // namespace

ReflectorPolicy policy_of(const dp::ReflectorRole& role) {
  ReflectorPolicy policy;
  policy.mode = role.authenticated ? ReflectMode::kAuthenticated : ReflectMode::kAnswer;
  policy.stateful = role.stateful;
  policy.rate_limit_pps = role.rate_limit_pps;
  policy.allow = role.allow;
  return policy;
}

// ---- XdpPrograms ----------------------------------------------------------------------------------

Result<std::shared_ptr<XdpPrograms>> XdpPrograms::open(const dp::XdpOptions& options) {
  ReflectorOptions load_options;
  load_options.port = options.reflector_port;
  load_options.format = options.reflector_format;
  std::vector<Attachment> attachments;
  for (const std::string& interface : options.interfaces) {
    const int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
    if (ifindex == 0) return errno_error("dataplane.xdp.interfaces: interface " + interface, errno);
    auto program = XdpReflector::load(load_options);
    if (!program) return program.error();
    if (auto off = program.value()->set_policy({.mode = ReflectMode::kOff}); !off) return off.error();
    auto mode = attach_one(*program.value(), ifindex, options.mode);
    if (!mode) return mode.error();  // the attachments so far detach as they go out of scope
    attachments.push_back(Attachment{interface, ifindex, mode.value(), std::move(program.value())});
  }
  std::shared_ptr<XdpPrograms> programs(new XdpPrograms(std::move(attachments), options));
  programs->policy_.mode = ReflectMode::kOff;
  if (auto r = programs->publish_clock(); !r) return r.error();
  programs->clock_thread_ = std::thread([p = programs.get()] { p->clock_loop(); });
  return programs;
}

XdpPrograms::XdpPrograms(std::vector<Attachment> attachments, dp::XdpOptions options)
    : attachments_(std::move(attachments)), options_(std::move(options)) {}

XdpPrograms::~XdpPrograms() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (clock_thread_.joinable()) clock_thread_.join();
  for (Attachment& a : attachments_) a.program->detach();
}

std::string XdpPrograms::describe() const {
  std::string text;
  for (const Attachment& a : attachments_) {
    text += (text.empty() ? "" : ", ") + std::string(mode_name(a.mode)) + " on " + a.interface;
  }
  return text;
}

Result<void> XdpPrograms::set_policy(const ReflectorPolicy& policy) {
  std::lock_guard lock(mutex_);
  for (Attachment& a : attachments_) {
    if (auto r = a.program->set_policy(policy); !r) {
      for (Attachment& back : attachments_) (void)back.program->set_policy(policy_);
      return r;
    }
  }
  policy_ = policy;
  return {};
}

Result<void> XdpPrograms::set_listen(const std::vector<SocketAddress>& addresses) {
  for (Attachment& a : attachments_) {
    if (auto r = a.program->set_listen(addresses); !r) return r;
  }
  return {};
}

ReflectorPolicy XdpPrograms::policy() const {
  std::lock_guard lock(mutex_);
  return policy_;
}

Result<void> XdpPrograms::register_sender_port(uint16_t port) {
  for (Attachment& a : attachments_) {
    if (auto r = a.program->register_sender_port(port); !r) {
      unregister_sender_port(port);
      return r;
    }
  }
  return {};
}

void XdpPrograms::unregister_sender_port(uint16_t port) {
  for (Attachment& a : attachments_) a.program->unregister_sender_port(port);
}

std::optional<WallNs> XdpPrograms::take_rx_stamp(const RxStampKey& key) {
  for (Attachment& a : attachments_) {
    if (auto at = a.program->take_rx_stamp(key)) return at;
  }
  return std::nullopt;
}

Result<void> XdpPrograms::publish_clock() {
  const ClockState clock = read_clock_state();
  for (Attachment& a : attachments_) {
    if (auto r = a.program->publish_clock(clock); !r) return r;
  }
  return {};
}

void XdpPrograms::clock_loop() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, kClockRefresh, [this] { return stop_; })) {
    lock.unlock();
    (void)publish_clock();  // a failure leaves the last published state, which the program keeps using
    lock.lock();
  }
}

// ---- XdpBackendReflector --------------------------------------------------------------------------

Result<std::unique_ptr<XdpBackendReflector>> XdpBackendReflector::start(std::shared_ptr<XdpPrograms> programs,
                                                                        const dp::ReflectorRole& role) {
  std::unique_ptr<XdpBackendReflector> reflector(new XdpBackendReflector(std::move(programs)));
  if (auto r = reflector->update(role); !r) {
    reflector->programs_.reset();  // nothing to turn off
    return r.error();
  }
  return reflector;
}

XdpBackendReflector::~XdpBackendReflector() {
  if (!programs_) return;
  ReflectorPolicy off = programs_->policy();
  off.mode = ReflectMode::kOff;
  (void)programs_->set_policy(off);
}

std::string XdpBackendReflector::describe() const { return "xdp " + programs_->describe(); }

Result<void> XdpBackendReflector::update(const dp::ReflectorRole& role) {
  const dp::XdpOptions& built = programs_->options();
  if (role.port != built.reflector_port || role.format != built.reflector_format) {
    return make_error("the XDP programs answer port " + std::to_string(built.reflector_port) + " in the " +
                          (built.reflector_format == TimestampFormat::kPtp ? "PTP" : "NTP") +
                          " format they were loaded with: a new reflector port or timestamp format needs a restart",
                      EINVAL);
  }
  if (auto r = programs_->set_listen(role.listen); !r) return r;
  return programs_->set_policy(policy_of(role));
}

Result<std::vector<dp::ReflectorOutcome>> XdpBackendReflector::outcomes() const {
  std::vector<dp::ReflectorOutcome> total;
  for (const Attachment& a : programs_->attachments()) {
    auto counters = a.program->counters();
    if (!counters) return counters.error();
    for (size_t i = 0; i < counters.value().size(); ++i) {
      const Counter& c = counters.value()[i];
      if (i == total.size()) total.push_back(outcome_of(c.name, 0));
      total[i].value += c.value;
    }
  }
  return total;
}

// ---- XdpDataplane ---------------------------------------------------------------------------------

Result<std::unique_ptr<XdpDataplane>> XdpDataplane::open(dp::XdpOptions xdp, dp::KernelOptions kernel,
                                                         std::function<void(const std::string&)> notice) {
  if (xdp.interfaces.empty()) return make_error("the xdp dataplane needs at least one interface to attach to", EINVAL);
  auto programs = XdpPrograms::open(xdp);
  if (!programs) return programs.error();
  return std::unique_ptr<XdpDataplane>(new XdpDataplane(std::move(programs.value()), kernel, std::move(notice)));
}

std::vector<dp::Attachment> XdpDataplane::attachments() const {
  std::vector<dp::Attachment> all;
  for (const Attachment& a : programs_->attachments()) all.push_back({a.interface, std::string(mode_name(a.mode))});
  return all;
}

Result<std::unique_ptr<dp::Port>> XdpDataplane::open_port(const dp::PortOptions& options) {
  auto port = kernel_.open_port(options);
  if (!port) return port.error();
  const uint16_t local = port.value()->local_address().port();
  // The reflector's own ports receive requests, not replies: nothing to stamp there.
  const bool stamped = local != programs_->reflector_port();
  if (stamped) {
    if (auto r = programs_->register_sender_port(local); !r) return r.error();
  }
  return std::unique_ptr<dp::Port>(std::make_unique<XdpPort>(std::move(port.value()), programs_, stamped));
}

Result<std::unique_ptr<dp::BackendReflector>> XdpDataplane::start_reflector(const dp::ReflectorRole& role) {
  auto reflector = XdpBackendReflector::start(programs_, role);
  if (!reflector) return reflector.error();
  return std::unique_ptr<dp::BackendReflector>(std::move(reflector.value()));
}

}  // namespace hubprobe::xdp
