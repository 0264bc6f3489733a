// SPDX-License-Identifier: Apache-2.0
// STAMP codec (RFC 8762 with RFC 8972 extensions): pure functions over byte spans, no I/O.
// Every function is thread-safe and never reads or writes outside the spans it is given.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <linux/types.h>

#include "hubprobe/clock.h"
#include "hubprobe/result.h"
#include "hubprobe/stamp_wire.h"

namespace hubprobe {

/// The STAMP port (RFC 8762 section 4.1): the default of every reflector and target, from the wire
/// header that the BPF programs share.
inline constexpr uint16_t kDefaultStampPort = STAMP_DEFAULT_PORT;

}  // namespace hubprobe

namespace hubprobe::stamp {

enum class Mode : uint8_t { kUnauthenticated, kAuthenticated };

/// Base packet length of a mode (44 or 112 octets).
size_t base_length(Mode mode);

/// The Session-Sender Identifier (RFC 8972) of a test or reflected packet of `mode`, read at the offset
/// the wire header gives; nullopt when the packet is too short to hold it.
std::optional<uint16_t> read_ssid(std::span<const uint8_t> packet, Mode mode);

/// An HMAC-SHA-256 key. Loaded from a file, never from the config text.
struct HmacKey {
  std::vector<uint8_t> bytes;
};

/// Reads a key file: hexadecimal digits (whitespace and newlines ignored), at least 16 octets.
Result<HmacKey> load_key_file(const std::string& path);

/// Session-sender test packet fields (RFC 8762 4.2, RFC 8972 SSID).
struct TestPacket {
  uint32_t seq = 0;
  RawTimestamp timestamp;
  uint16_t error_estimate = 0;
  uint16_t ssid = 0;
};

/// Session-reflector test packet fields (RFC 8762 4.3).
struct ReflectedPacket {
  uint32_t seq = 0;             ///< reflector's own sequence number (stateful) or the sender's (stateless)
  RawTimestamp timestamp;       ///< T3
  uint16_t error_estimate = 0;  ///< reflector clock
  uint16_t ssid = 0;
  RawTimestamp receive_timestamp;  ///< T2
  uint32_t sender_seq = 0;
  RawTimestamp sender_timestamp;  ///< T1 as the sender wrote it
  uint16_t sender_error_estimate = 0;
  uint8_t sender_ttl = 0;
};

/// Why a packet was refused. Each value is counted by the engines (drop reasons).
enum class ParseError : uint8_t {
  kTooShort,      ///< shorter than the base packet of the mode
  kTooLong,       ///< longer than the buffer or the 65507-octet UDP limit
  kBadHmac,       ///< HMAC mismatch, or authenticated mode without a key
  kMalformedTlv,  ///< TLV walk ran past the end (sender side only; reflectors flag it instead)
};
const char* to_string(ParseError error);

struct ParseFailure {
  ParseError reason;
};

template <class T>
struct Parsed {
  T packet;
  std::span<const uint8_t> tlvs;  ///< octets after the base packet (TLVs or padding), may be empty
};

/// Builds a session-sender packet of `out.size()` octets (>= base length): fields, then zero padding,
/// then the HMAC in authenticated mode. Extra octets are zero-filled, which is valid TWAMP-Light padding
/// and an RFC 8972 reflector accepts. Returns the length written or an error (buffer too small, no key).
Result<size_t> encode_test_packet(const TestPacket& fields, Mode mode, const HmacKey* key, std::span<uint8_t> out);

/// Parses a session-sender packet (reflector side). Any byte string gives a value or a failure.
/// MBZ fields are ignored whatever they hold.
struct DecodeTestResult {
  bool ok = false;
  ParseError error = ParseError::kTooShort;
  Parsed<TestPacket> parsed;
};
DecodeTestResult decode_test_packet(std::span<const uint8_t> in, Mode mode, const HmacKey* key);

/// Parses a session-reflector packet (sender side). The octets after the base are returned unwalked:
/// TLV flags set by the reflector (even M) do not invalidate the measurement; use walk_tlvs to read them.
struct DecodeReflectedResult {
  bool ok = false;
  ParseError error = ParseError::kTooShort;
  Parsed<ReflectedPacket> parsed;
};
DecodeReflectedResult decode_reflected_packet(std::span<const uint8_t> in, Mode mode, const HmacKey* key);

/// What the reflector fills in when it answers.
struct ReflectionFields {
  uint32_t seq = 0;        ///< reflector sequence number
  RawTimestamp timestamp;  ///< T3, taken as late as possible
  uint16_t error_estimate = 0;
  RawTimestamp receive_timestamp;  ///< T2
  uint8_t sender_ttl = 0;          ///< TTL / hop limit of the received request
};

/// Outcome of the TLV walk on a reflection.
struct TlvReport {
  unsigned count = 0;         ///< TLVs seen
  unsigned unrecognized = 0;  ///< flagged U
  unsigned malformed = 0;     ///< flagged M (walk stopped there)
  bool zero_padding = false;  ///< the octets after the base were all zero: plain padding, copied as is
};

/// Builds the reflection of `request` into `out`, which must be exactly as long as the request.
/// Copies SSID and the sender fields, copies the octets after the base packet and, unless they are all
/// zero (plain padding), walks them as RFC 8972 TLVs and sets each TLV's flags as section 4 asks of a
/// reflector: U for types it does not implement (all but Extra Padding, whose U is cleared), M on a TLV
/// whose length runs past the end (the walk stops there, the rest is copied as is), I and the reserved
/// bits zero. TLV values are never changed. Then signs the base packet in authenticated mode.
/// `request` must have been accepted by decode_test_packet. `out` may be the request buffer itself.
Result<TlvReport> encode_reflection(const Parsed<TestPacket>& request, std::span<const uint8_t> request_bytes,
                                    const ReflectionFields& fields, Mode mode, const HmacKey* key,
                                    std::span<uint8_t> out);

/// One TLV found by walk_tlvs.
struct Tlv {
  uint8_t flags = 0;
  uint8_t type = 0;
  size_t offset = 0;  ///< offset of the TLV header within the walked span
  std::span<const uint8_t> value;
};

/// Walks RFC 8972 TLVs. Stops at the first TLV whose length runs past the end and reports it through
/// `malformed_at` (offset) — never reads beyond `in`.
struct TlvWalk {
  std::vector<Tlv> tlvs;
  bool malformed = false;
  size_t malformed_at = 0;
};
TlvWalk walk_tlvs(std::span<const uint8_t> in);

/// HMAC-SHA-256 over `data`, truncated to 16 octets (RFC 8762 4.4).
std::array<uint8_t, 16> hmac16(const HmacKey& key, std::span<const uint8_t> data);

}  // namespace hubprobe::stamp
