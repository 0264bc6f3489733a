// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/reflect.h"

#include "hubprobe/dpdk_eal_args.h"

#include <ostream>

#include "hubprobe/cli_usage.h"
#include "hubprobe/dataplane.h"
#include "hubprobe/reflector_service.h"
#include "hubprobe/stamp.h"

namespace hubprobe {

Result<ReflectOptions> reflect_options(const ReflectArgs& args) {
  ReflectOptions options;
  for (const auto& text : args.listen) {
    auto address = SocketAddress::parse(text, kDefaultStampPort);
    if (!address) return make_error("--listen " + text + ": " + address.error().message);
    options.listen.push_back(*address);
  }
  auto key = load_key_flag(args.key_file);
  if (!key) return key.error();
  options.reflector.key = *key;
  options.reflector.mode = options.reflector.key ? stamp::Mode::kAuthenticated : stamp::Mode::kUnauthenticated;
  options.reflector.stateful = args.stateful;
  options.reflector.answer_short_requests = args.answer_short_requests;
  options.reflector.format = args.ptp ? TimestampFormat::kPtp : TimestampFormat::kNtp;
  options.interface = args.interface;
  auto dataplane = dataplane_flags(args, args.interface);
  if (!dataplane) return dataplane.error();
  options.dataplane = std::move(dataplane.value());
  options.dataplane.xdp.reflector_port = options.listen.empty() ? kDefaultStampPort : options.listen.front().port();
  options.dataplane.xdp.reflector_format = options.reflector.format;
  for (const SocketAddress& address : options.listen) {
    if (options.dataplane.backend == "xdp" && address.port() != options.listen.front().port()) {
      return make_error("--listen: the XDP reflector answers on one port: give every address the same one");
    }
    if (auto r = check_dpdk_local_address(options.dataplane, address, true, "--listen"); !r) return r.error();
  }
  return options;
}

int reflect_command(const ReflectArgs& args, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop) {
  auto options = reflect_options(args);
  if (!options) return usage_error(err, options.error().message);
  return run_reflector(*options, out, err, stop);
}

namespace {

// The flags as the backend's own reflector takes them (one port: the first listen address's).
dp::ReflectorRole backend_role(const ReflectOptions& options, const std::vector<SocketAddress>& listen) {
  dp::ReflectorRole role;
  role.port = listen.front().port();
  role.listen = listen;
  role.stateful = options.reflector.stateful;
  role.format = options.reflector.format;
  role.authenticated = options.reflector.mode == stamp::Mode::kAuthenticated;
  return role;
}

void print_backend_outcomes(const dp::BackendReflector& reflector, std::ostream& out) {
  auto outcomes = reflector.outcomes();
  if (!outcomes) {
    out << "in the kernel: counters unreadable: " << outcomes.error().message << "\n";
    return;
  }
  uint64_t reflected = 0, handed_up = 0, dropped = 0;
  for (const dp::ReflectorOutcome& o : *outcomes) {
    if (o.kind == dp::ReflectorOutcome::Kind::kReflected) reflected += o.value;
    if (o.kind == dp::ReflectorOutcome::Kind::kPassed) handed_up += o.value;
    if (o.kind == dp::ReflectorOutcome::Kind::kDropped) dropped += o.value;
  }
  out << "in the kernel: reflected " << reflected << ", handed to user space " << handed_up << ", dropped " << dropped
      << "\n";
}

}  // namespace

int run_reflector(const ReflectOptions& options, std::ostream& out, std::ostream& err, const std::atomic<bool>& stop) {
  auto dataplane = dp::make_dataplane(options.dataplane);
  if (!dataplane) {
    err << "hubprobe reflect: " << dataplane.error().message << "\n";
    return 3;
  }
  ReflectorServiceOptions service_options;
  service_options.listen = options.listen;
  if (service_options.listen.empty()) {
    service_options.listen = {SocketAddress::any(AF_INET, kDefaultStampPort),
                              SocketAddress::any(AF_INET6, kDefaultStampPort)};
  }
  service_options.interface = options.interface;
  service_options.reflector = options.reflector;
  auto service = ReflectorService::open(**dataplane, service_options);
  if (!service) {
    err << "hubprobe reflect: " << service.error().message << "\n";
    return 3;
  }
  auto in_backend = (*dataplane)->start_reflector(backend_role(options, service_options.listen));
  if (!in_backend) {
    err << "hubprobe reflect: " << in_backend.error().message << "\n";
    return 3;
  }
  for (const auto& address : (*service)->local_addresses())
    out << "reflecting STAMP on " << address.to_string() << "\n";
  if (*in_backend) out << "answering in the kernel first: " << (*in_backend)->describe() << "\n";
  out << "mode " << (options.reflector.key ? "authenticated" : "unauthenticated") << ", "
      << (options.reflector.stateful ? "stateful" : "stateless") << "\n";
  out.flush();

  // A busy-polled port's loop runs on its lcore, as the agent's does.
  const int cpu = options.dataplane.backend == "dpdk" ? dpdk::loop_lcore(options.dataplane.dpdk) : -1;
  if (auto ran = (*service)->run(stop, cpu); !ran) {
    err << "hubprobe reflect: " << ran.error().message << "\n";
    return 3;
  }

  const auto counters = (*service)->counters();
  const auto& c = counters.engine;
  out << "received " << c.received << ", reflected " << c.reflected << ", dropped " << c.dropped() << " (too short "
      << c.dropped_too_short << ", short request " << c.dropped_short_request << ", too long " << c.dropped_too_long
      << ", truncated " << c.dropped_truncated << ", bad HMAC " << c.dropped_bad_hmac << "), send errors "
      << counters.send_errors << ", TLVs unrecognized " << c.tlv_unrecognized << ", malformed " << c.tlv_malformed
      << "\n";
  if (*in_backend) print_backend_outcomes(**in_backend, out);
  out.flush();
  return 0;
}

}  // namespace hubprobe
