// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the STAMP codec: every byte string must decode to a value or a failure, and
// every accepted test packet must reflect into an exact-size buffer without touching anything else.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>

#include "hubprobe/stamp.h"

namespace {

using hubprobe::stamp::Mode;

const hubprobe::stamp::HmacKey& fuzz_key() {
  static const hubprobe::stamp::HmacKey key{{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
                                             0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
                                             0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f}};
  return key;
}

void exercise(std::span<const uint8_t> input, Mode mode) {
  const auto* key = &fuzz_key();
  const auto reflected = hubprobe::stamp::decode_reflected_packet(input, mode, key);
  if (reflected.ok && reflected.parsed.tlvs.size() + hubprobe::stamp::base_length(mode) != input.size()) abort();

  const auto request = hubprobe::stamp::decode_test_packet(input, mode, key);
  if (!request.ok) return;
  if (request.parsed.tlvs.size() + hubprobe::stamp::base_length(mode) != input.size()) abort();

  // An exact-size heap buffer: ASan flags any write past it.
  const auto reply = std::make_unique<uint8_t[]>(input.size());
  const std::span<uint8_t> out(reply.get(), input.size());
  hubprobe::stamp::ReflectionFields fields;
  fields.seq = 1;
  fields.sender_ttl = 64;
  auto report = hubprobe::stamp::encode_reflection(request.parsed, input, fields, mode, key, out);
  if (!report.ok()) abort();  // an accepted request always reflects
  if (report->malformed > 1 || report->unrecognized > report->count) abort();

  // The reply must decode as a reflected packet carrying the request's fields and the same tail length.
  const auto answer = hubprobe::stamp::decode_reflected_packet(out, mode, key);
  if (!answer.ok || answer.parsed.packet.sender_seq != request.parsed.packet.seq ||
      answer.parsed.packet.ssid != request.parsed.packet.ssid ||
      answer.parsed.tlvs.size() != request.parsed.tlvs.size()) {
    abort();
  }
  // Reflection only rewrites TLV flag octets: the reply's tail has the same TLV structure.
  const auto request_walk = hubprobe::stamp::walk_tlvs(request.parsed.tlvs);
  const auto reply_walk = hubprobe::stamp::walk_tlvs(answer.parsed.tlvs);
  if (request_walk.tlvs.size() != reply_walk.tlvs.size() || request_walk.malformed != reply_walk.malformed ||
      request_walk.malformed_at != reply_walk.malformed_at) {
    abort();
  }
  if (!report->zero_padding && report->count != request_walk.tlvs.size() + (request_walk.malformed ? 1 : 0)) {
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy into an exact-size allocation so reads past the end are caught.
  const auto copy = std::make_unique<uint8_t[]>(size);
  if (size > 0) std::memcpy(copy.get(), data, size);
  const std::span<const uint8_t> input(copy.get(), size);

  exercise(input, Mode::kUnauthenticated);
  exercise(input, Mode::kAuthenticated);

  const auto walk = hubprobe::stamp::walk_tlvs(input);
  size_t covered = 0;
  for (const auto& tlv : walk.tlvs) {
    if (tlv.offset != covered || tlv.value.data() != input.data() + tlv.offset + 4) abort();
    covered = tlv.offset + 4 + tlv.value.size();
  }
  if (walk.malformed ? walk.malformed_at != covered : covered != size) abort();
  return 0;
}
