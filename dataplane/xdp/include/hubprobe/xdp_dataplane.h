// SPDX-License-Identifier: Apache-2.0
// The `xdp` backend: the XDP STAMP program (bpf/stamp_reflect.bpf.c) attached to every interface of
// [dataplane.xdp] for the life of the dataplane, probe ports that are kernel UDP sockets whose replies
// the program stamps at XDP ingress (T4), and the reflector in the kernel: the same program answering
// with XDP_TX once the reflector role is started, handing what it does not answer to the user-space
// reflector (docs/architecture.md "The xdp backend").
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hubprobe/dataplane.h"
#include "hubprobe/kernel_port.h"
#include "hubprobe/xdp_reflector.h"

namespace hubprobe::xdp {

/// One interface the program is attached to.
struct Attachment {
  std::string interface;
  int ifindex = 0;
  AttachMode mode = AttachMode::kGeneric;  ///< the mode chosen (auto resolved)
  std::unique_ptr<XdpReflector> program;
};

/// The programs of one dataplane: attached at open(), their clock state republished once a second by a
/// thread of their own (the Error Estimate from adjtimex, the TAI offset), detached on destruction.
/// Thread-safe.
class XdpPrograms {
 public:
  /// Loads one program per interface (reflection off) and attaches it in `options.mode` (auto: native,
  /// else generic). All or nothing: on failure nothing stays attached and the error names the interface.
  static Result<std::shared_ptr<XdpPrograms>> open(const dp::XdpOptions& options);
  ~XdpPrograms();

  const std::vector<Attachment>& attachments() const { return attachments_; }
  /// "native on eth1, generic on eth2".
  std::string describe() const;
  /// The same policy on every attachment, all or nothing (the previous one restored on failure).
  Result<void> set_policy(const ReflectorPolicy& policy);
  /// The addresses answered, on every attachment.
  Result<void> set_listen(const std::vector<SocketAddress>& addresses);
  ReflectorPolicy policy() const;
  /// Registers a session-sender's local port on every attachment (its replies get stamped).
  Result<void> register_sender_port(uint16_t port);
  void unregister_sender_port(uint16_t port);
  /// The XDP ingress time of a reply, from whichever interface it came in on.
  std::optional<WallNs> take_rx_stamp(const RxStampKey& key);
  uint16_t reflector_port() const { return options_.reflector_port; }
  const dp::XdpOptions& options() const { return options_; }

 private:
  XdpPrograms(std::vector<Attachment> attachments, dp::XdpOptions options);
  Result<void> publish_clock();
  void clock_loop();

  std::vector<Attachment> attachments_;
  dp::XdpOptions options_;
  mutable std::mutex mutex_;  ///< the policy, the clock thread's stop flag
  ReflectorPolicy policy_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread clock_thread_;
};

/// The reflector role in the kernel: while it lives, the programs answer requests to the reflector port.
class XdpBackendReflector final : public dp::BackendReflector {
 public:
  static Result<std::unique_ptr<XdpBackendReflector>> start(std::shared_ptr<XdpPrograms> programs,
                                                            const dp::ReflectorRole& role);
  /// Turns reflection off again (requests go to the stack); the programs stay attached.
  ~XdpBackendReflector() override;

  std::string describe() const override;
  Result<void> update(const dp::ReflectorRole& role) override;
  Result<std::vector<dp::ReflectorOutcome>> outcomes() const override;

 private:
  explicit XdpBackendReflector(std::shared_ptr<XdpPrograms> programs) : programs_(std::move(programs)) {}

  std::shared_ptr<XdpPrograms> programs_;
};

/// The backend object.
class XdpDataplane final : public dp::Dataplane {
 public:
  static Result<std::unique_ptr<XdpDataplane>> open(dp::XdpOptions xdp, dp::KernelOptions kernel,
                                                    std::function<void(const std::string&)> notice);
  std::string_view name() const override { return "xdp"; }
  std::string_view port_backend() const override { return "kernel"; }
  std::vector<dp::Attachment> attachments() const override;
  /// A kernel socket; a port other than the reflector's is registered for XDP RX stamps.
  Result<std::unique_ptr<dp::Port>> open_port(const dp::PortOptions& options) override;
  Result<std::unique_ptr<dp::BackendReflector>> start_reflector(const dp::ReflectorRole& role) override;
  const XdpPrograms& programs() const { return *programs_; }

 private:
  XdpDataplane(std::shared_ptr<XdpPrograms> programs, dp::KernelOptions kernel,
               std::function<void(const std::string&)> notice)
      : programs_(std::move(programs)), kernel_(kernel, std::move(notice)) {}

  std::shared_ptr<XdpPrograms> programs_;
  dp::KernelDataplane kernel_;
};

/// The policy a reflector role asks of the programs.
ReflectorPolicy policy_of(const dp::ReflectorRole& role);

}  // namespace hubprobe::xdp
