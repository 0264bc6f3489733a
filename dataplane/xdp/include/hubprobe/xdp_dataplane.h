// SPDX-License-Identifier: Apache-2.0
// The `xdp` backend: probe ports are kernel UDP sockets (the kernel backend's, with its options), and the
// reflector runs in the kernel: the XDP STAMP program (bpf/stamp_reflect.bpf.c) attached to every interface of
// [dataplane.xdp], answering with XDP_TX and handing what it does not answer to the user-space reflector
// (docs/architecture.md "The xdp backend").
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

/// Loads one program per interface and attaches it in `mode` (auto: native, else generic). All or nothing:
/// on failure nothing stays attached and the error names the interface.
Result<std::vector<Attachment>> attach_all(const dp::XdpOptions& options, const ReflectorOptions& program_options);

/// The reflector role in the kernel: the attachments, with their clock state kept current by a thread of its own
/// (the Error Estimate from adjtimex, the TAI offset; once a second).
class XdpBackendReflector final : public dp::BackendReflector {
 public:
  static Result<std::unique_ptr<XdpBackendReflector>> start(const dp::XdpOptions& options,
                                                            const dp::ReflectorRole& role);
  ~XdpBackendReflector() override;

  std::string describe() const override;
  Result<void> update(const dp::ReflectorRole& role) override;
  Result<std::vector<dp::ReflectorOutcome>> outcomes() const override;
  const std::vector<Attachment>& attachments() const { return attachments_; }

 private:
  XdpBackendReflector(std::vector<Attachment> attachments, dp::ReflectorRole role);
  Result<void> publish_clock();
  /// Stateful numbering, rate limit and allow list on every attachment.
  Result<void> apply_policy(const dp::ReflectorRole& role);
  void clock_loop();

  std::vector<Attachment> attachments_;
  dp::ReflectorRole role_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread clock_thread_;
};

/// The backend object: ports from the kernel backend, the reflector in XDP.
class XdpDataplane final : public dp::Dataplane {
 public:
  XdpDataplane(dp::XdpOptions xdp, dp::KernelOptions kernel, std::function<void(const std::string&)> notice);
  std::string_view name() const override { return "xdp"; }
  std::string_view port_backend() const override { return "kernel"; }
  Result<std::unique_ptr<dp::Port>> open_port(const dp::PortOptions& options) override;
  Result<std::unique_ptr<dp::BackendReflector>> start_reflector(const dp::ReflectorRole& role) override;

 private:
  dp::XdpOptions xdp_;
  dp::KernelDataplane kernel_;
  std::function<void(const std::string&)> notice_;
};

/// The program's settings for a role: its port, format, and whether it may answer at all (not in
/// authenticated mode, which only user space does).
ReflectorOptions program_options(const dp::ReflectorRole& role);

}  // namespace hubprobe::xdp
