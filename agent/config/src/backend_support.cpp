// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/backend_support.h"

#include <initializer_list>

namespace hubprobe {
namespace {

// One option a section asks for: whether it does, the backend's support, its key and the generic reason.
struct Ask {
  bool asked;
  const dp::Support& support;
  const char* key;
  const char* cannot;  // completes "the NAME dataplane cannot ..."
};

std::optional<Refusal> first_refused(const dp::BackendTraits& backend, std::initializer_list<Ask> asks) {
  for (const Ask& ask : asks) {
    if (!ask.asked || ask.support.honoured) continue;
    const std::string why =
        ask.support.why_not.empty() ? "cannot " + std::string(ask.cannot) : std::string(ask.support.why_not);
    return Refusal{ask.key, "the " + backend.name + " dataplane " + why};
  }
  return std::nullopt;
}

}  // namespace

std::optional<Refusal> refuse_path(const dp::BackendTraits& backend, const PathConfig& path,
                                   PathKeysWithoutField written) {
  const dp::PathTraits& can = backend.path;
  return first_refused(
      backend, {
                   {!path.interface.empty(), can.interface, "interface", "pin probes to an interface"},
                   {path.source.valid(), can.source_address, "source", "choose the source address"},
                   {path.fwmark != 0, can.fwmark, "fwmark", "mark probes for policy routing"},
                   {path.dscp >= 0, can.dscp, "dscp", "set the DSCP of probes"},
                   {!path.source_ports.empty(), can.source_ports, "source_ports", "send from chosen source ports"},
                   {written.vlan, can.vlan, "vlan", "tag probes with a VLAN"},
                   {written.next_hop, can.next_hop, "next_hop", "pin a next hop"},
               });
}

std::optional<Refusal> refuse_reflector(const dp::BackendTraits& backend, const ReflectorConfig& reflector) {
  if (!reflector.enabled) return std::nullopt;
  const dp::ReflectorTraits& can = backend.reflector;
  return first_refused(
      backend, {
                   {reflector.stateful, can.stateful, "mode",
                    "reflect statefully (mode = \"stateful\" is the default): set mode = \"stateless\""},
                   {!reflector.allow.empty(), can.allow_list, "allow", "answer only the sources of an allow list"},
                   {reflector.rate_limit_pps != 0, can.rate_limit, "rate_limit_pps", "limit the rate per source"},
                   {reflector.authenticated(), can.authenticated, reflector.auth_key ? "auth_key_file" : "auth",
                    "reflect in authenticated mode"},
                   {reflector.answer_short_requests, can.short_requests, "answer_short_requests",
                    "answer short TWAMP-Light requests"},
                   {!reflector.interface.empty(), can.interface, "interface", "answer on one interface only"},
               });
}

}  // namespace hubprobe
