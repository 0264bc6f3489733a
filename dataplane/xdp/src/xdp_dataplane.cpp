// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/xdp_dataplane.h"

#include <net/if.h>

#include <cerrno>
#include <chrono>

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

// The role's run-time settings as the program takes them.
ReflectorPolicy policy_of(const dp::ReflectorRole& role) {
  ReflectorPolicy policy;
  policy.stateful = role.stateful;
  policy.rate_limit_pps = role.rate_limit_pps;
  policy.allow = role.allow;
  return policy;
}

// The program's counter names say what each counts (bpf/stamp_reflect.h): reflected, dropped_REASON and
// passed_REASON; passed_not_stamp and anything else is traffic that was not a request to the reflector.
dp::ReflectorOutcome outcome_of(std::string_view name, uint64_t value) {
  using Kind = dp::ReflectorOutcome::Kind;
  constexpr std::string_view kDropped = "dropped_", kPassed = "passed_";
  if (name == "reflected") return {Kind::kReflected, "", value};
  if (name.starts_with(kDropped)) return {Kind::kDropped, std::string(name.substr(kDropped.size())), value};
  if (name.starts_with(kPassed) && name != "passed_not_stamp") {
    return {Kind::kPassed, std::string(name.substr(kPassed.size())), value};
  }
  return {Kind::kOther, std::string(name), value};
}

}  // namespace

ReflectorOptions program_options(const dp::ReflectorRole& role) {
  ReflectorOptions options;
  options.port = role.port;
  options.reflect_unauthenticated = !role.authenticated;
  options.format = role.format;
  return options;
}

Result<std::vector<Attachment>> attach_all(const dp::XdpOptions& options, const ReflectorOptions& program_options) {
  std::vector<Attachment> attachments;
  for (const std::string& interface : options.interfaces) {
    const int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
    if (ifindex == 0) return errno_error("dataplane.xdp.interfaces: interface " + interface, errno);
    auto program = XdpReflector::load(program_options);
    if (!program) return program.error();
    auto mode = attach_one(*program.value(), ifindex, options.mode);
    if (!mode) return mode.error();  // the attachments so far detach as they go out of scope
    attachments.push_back(Attachment{interface, ifindex, mode.value(), std::move(program.value())});
  }
  return attachments;
}

Result<std::unique_ptr<XdpBackendReflector>> XdpBackendReflector::start(const dp::XdpOptions& options,
                                                                        const dp::ReflectorRole& role) {
  auto attachments = attach_all(options, program_options(role));
  if (!attachments) return attachments.error();
  std::unique_ptr<XdpBackendReflector> reflector(new XdpBackendReflector(std::move(attachments.value()), role));
  if (auto r = reflector->apply_policy(role); !r) return r.error();
  // The program hands every request up until it has a clock: publish before anything is answered.
  if (auto r = reflector->publish_clock(); !r) return r.error();
  reflector->clock_thread_ = std::thread([r = reflector.get()] { r->clock_loop(); });
  return reflector;
}

XdpBackendReflector::XdpBackendReflector(std::vector<Attachment> attachments, dp::ReflectorRole role)
    : attachments_(std::move(attachments)), role_(std::move(role)) {}

XdpBackendReflector::~XdpBackendReflector() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (clock_thread_.joinable()) clock_thread_.join();
  for (Attachment& a : attachments_) a.program->detach();
}

std::string XdpBackendReflector::describe() const {
  std::string text = "xdp";
  for (size_t i = 0; i < attachments_.size(); ++i) {
    text += (i == 0 ? " " : ", ");
    text += std::string(mode_name(attachments_[i].mode)) + " on " + attachments_[i].interface;
  }
  return text;
}

Result<void> XdpBackendReflector::publish_clock() {
  const ClockState clock = read_clock_state();
  for (Attachment& a : attachments_) {
    if (auto r = a.program->publish_clock(clock); !r) return r;
  }
  return {};
}

void XdpBackendReflector::clock_loop() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, kClockRefresh, [this] { return stop_; })) {
    lock.unlock();
    (void)publish_clock();  // a failure leaves the last published state, which the program keeps using
    lock.lock();
  }
}

Result<void> XdpBackendReflector::update(const dp::ReflectorRole& role) {
  const ReflectorOptions now = program_options(role_), next = program_options(role);
  if (now.port != next.port || now.reflect_unauthenticated != next.reflect_unauthenticated ||
      now.format != next.format) {
    return make_error("the XDP reflector's port, timestamp format and mode are fixed while it runs: restart the agent",
                      EINVAL);
  }
  if (auto r = apply_policy(role); !r) {
    (void)apply_policy(role_);  // all or nothing: the interfaces that took the new one go back
    return r;
  }
  std::lock_guard lock(mutex_);
  role_ = role;
  return {};
}

Result<void> XdpBackendReflector::apply_policy(const dp::ReflectorRole& role) {
  const ReflectorPolicy policy = policy_of(role);
  for (Attachment& a : attachments_) {
    if (auto r = a.program->set_policy(policy); !r) return r;
  }
  return {};
}

Result<std::vector<dp::ReflectorOutcome>> XdpBackendReflector::outcomes() const {
  std::vector<dp::ReflectorOutcome> total;
  for (const Attachment& a : attachments_) {
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

XdpDataplane::XdpDataplane(dp::XdpOptions xdp, dp::KernelOptions kernel, std::function<void(const std::string&)> notice)
    : xdp_(std::move(xdp)), kernel_(kernel, notice), notice_(std::move(notice)) {}

Result<std::unique_ptr<dp::Port>> XdpDataplane::open_port(const dp::PortOptions& options) {
  return kernel_.open_port(options);
}

Result<std::unique_ptr<dp::BackendReflector>> XdpDataplane::start_reflector(const dp::ReflectorRole& role) {
  auto reflector = XdpBackendReflector::start(xdp_, role);
  if (!reflector) return reflector.error();
  return std::unique_ptr<dp::BackendReflector>(std::move(reflector.value()));
}

}  // namespace hubprobe::xdp
