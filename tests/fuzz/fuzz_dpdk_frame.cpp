// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the dpdk backend's classifier and link layer on arbitrary frames. Any byte string
// parses to a kind or a drop reason without reading past it; what the link layer answers (ARP, ND, echo)
// is never larger than the frame that asked, and parses back as a frame of ours.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "hubprobe/dpdk_frames.h"
#include "hubprobe/dpdk_link.h"

namespace {
using namespace hubprobe;

dpdk::LinkLayer& link_layer() {
  static dpdk::LinkLayer link = [] {
    dp::DpdkOptions options;
    options.addresses = {dp::parse_interface_address("198.18.0.1/24").value(),
                         dp::parse_interface_address("2001:db8::1/64").value()};
    options.gateway4 = dp::parse_host("198.18.0.254").value();
    return dpdk::LinkLayer({0x02, 0, 0, 0, 0, 0x01}, options);
  }();
  return link;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dpdk::LinkLayer& link = link_layer();
  // A copy of exactly `size` octets, so that AddressSanitizer sees any read past the frame.
  const std::vector<uint8_t> frame(data, data + size);
  const dpdk::Frame parsed = dpdk::parse_frame(frame, link.station());
  if (parsed.kind == dpdk::FrameKind::kUdp) {
    if (parsed.payload < frame.data() || parsed.payload + parsed.payload_length > frame.data() + frame.size()) {
      std::abort();
    }
    return 0;
  }
  std::vector<uint8_t> answer(2048);
  const size_t length = link.handle(parsed, static_cast<MonoNs>(size) * 1000, answer);
  if (length > size) std::abort();  // a reply is never larger than its request
  if (length > 0) {
    // What we send is a well-formed frame: checksums hold when a peer parses it.
    const std::vector<SocketAddress> peer{parsed.source};
    const dpdk::Frame back =
        dpdk::parse_frame(std::span(answer.data(), length), dpdk::Station{parsed.source_mac, peer});
    if (back.drop == dpdk::Drop::kBadChecksum || back.drop == dpdk::Drop::kBadIpHeader ||
        back.drop == dpdk::Drop::kTruncated) {
      std::abort();
    }
  }
  return 0;
}
