// SPDX-License-Identifier: Apache-2.0
#include <arpa/inet.h>
#include <linux/types.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>

#include "hubprobe/stamp.h"
#include "hubprobe/stamp_wire.h"

namespace hubprobe::stamp {
namespace {

constexpr size_t kMaxUdpPayload = 65507;  // 65535 - 8 (UDP) - 20 (IPv4)
constexpr size_t kMinKeyOctets = 16;

// Field offsets, taken from the wire structs shared with BPF so there is one layout definition.
struct TestPacketLayout {
  size_t seq;
  size_t timestamp;
  size_t error_estimate;
  size_t ssid;
};

struct ReflectedPacketLayout {
  size_t seq;
  size_t timestamp;
  size_t error_estimate;
  size_t ssid;
  size_t receive_timestamp;
  size_t sender_seq;
  size_t sender_timestamp;
  size_t sender_error_estimate;
  size_t sender_ttl;
};

template <class Wire>
constexpr TestPacketLayout test_layout_of() {
  return {offsetof(Wire, seq), offsetof(Wire, timestamp), offsetof(Wire, error_estimate), offsetof(Wire, ssid)};
}

template <class Wire>
constexpr ReflectedPacketLayout reflected_layout_of() {
  return {offsetof(Wire, seq),
          offsetof(Wire, timestamp),
          offsetof(Wire, error_estimate),
          offsetof(Wire, ssid),
          offsetof(Wire, receive_timestamp),
          offsetof(Wire, sender_seq),
          offsetof(Wire, sender_timestamp),
          offsetof(Wire, sender_error_estimate),
          offsetof(Wire, sender_ttl)};
}

constexpr TestPacketLayout kUnauthTestLayout = test_layout_of<stamp_sender_unauth>();
constexpr TestPacketLayout kAuthTestLayout = test_layout_of<stamp_sender_auth>();
constexpr ReflectedPacketLayout kUnauthReflectedLayout = reflected_layout_of<stamp_reflector_unauth>();
constexpr ReflectedPacketLayout kAuthReflectedLayout = reflected_layout_of<stamp_reflector_auth>();

static_assert(offsetof(stamp_sender_unauth, ssid) == 14, "RFC 8972 section 3: SSID at octets 14-15");
static_assert(offsetof(stamp_reflector_unauth, ssid) == 14, "RFC 8972 section 3: SSID at octets 14-15");
static_assert(offsetof(stamp_sender_auth, ssid) == 26, "RFC 8972 section 3: SSID at octets 26-27");
static_assert(offsetof(stamp_reflector_auth, ssid) == 26, "RFC 8972 section 3: SSID at octets 26-27");
static_assert(offsetof(stamp_sender_auth, hmac) == STAMP_AUTH_HMAC_OFFSET, "RFC 8762 section 4.4");
static_assert(offsetof(stamp_reflector_auth, hmac) == STAMP_AUTH_HMAC_OFFSET, "RFC 8762 section 4.4");
static_assert(offsetof(stamp_timestamp, fraction) == 4);
// RFC 8762 Figures 5 and 6: the reflector fields that follow the SSID.
static_assert(kUnauthReflectedLayout.receive_timestamp == 16 && kUnauthReflectedLayout.sender_seq == 24 &&
              kUnauthReflectedLayout.sender_timestamp == 28 && kUnauthReflectedLayout.sender_error_estimate == 36 &&
              kUnauthReflectedLayout.sender_ttl == 40);
static_assert(kAuthTestLayout.timestamp == 16 && kAuthTestLayout.error_estimate == 24);
static_assert(kAuthReflectedLayout.timestamp == 16 && kAuthReflectedLayout.receive_timestamp == 32 &&
              kAuthReflectedLayout.sender_seq == 48 && kAuthReflectedLayout.sender_timestamp == 64 &&
              kAuthReflectedLayout.sender_error_estimate == 72 && kAuthReflectedLayout.sender_ttl == 80);

const TestPacketLayout& test_layout(Mode mode) {
  return mode == Mode::kAuthenticated ? kAuthTestLayout : kUnauthTestLayout;
}
const ReflectedPacketLayout& reflected_layout(Mode mode) {
  return mode == Mode::kAuthenticated ? kAuthReflectedLayout : kUnauthReflectedLayout;
}

// Big-endian accessors. Callers have checked the span is long enough; memcpy keeps them alignment-safe.
uint8_t load_u8(std::span<const uint8_t> in, size_t offset) { return in[offset]; }
uint16_t load_be16(std::span<const uint8_t> in, size_t offset) {
  uint16_t value;
  std::memcpy(&value, in.data() + offset, sizeof(value));
  return ntohs(value);
}
uint32_t load_be32(std::span<const uint8_t> in, size_t offset) {
  uint32_t value;
  std::memcpy(&value, in.data() + offset, sizeof(value));
  return ntohl(value);
}
RawTimestamp load_timestamp(std::span<const uint8_t> in, size_t offset) {
  return RawTimestamp{load_be32(in, offset + offsetof(stamp_timestamp, seconds)),
                      load_be32(in, offset + offsetof(stamp_timestamp, fraction))};
}
void store_u8(std::span<uint8_t> out, size_t offset, uint8_t value) { out[offset] = value; }
void store_be16(std::span<uint8_t> out, size_t offset, uint16_t value) {
  const uint16_t wire = htons(value);
  std::memcpy(out.data() + offset, &wire, sizeof(wire));
}
void store_be32(std::span<uint8_t> out, size_t offset, uint32_t value) {
  const uint32_t wire = htonl(value);
  std::memcpy(out.data() + offset, &wire, sizeof(wire));
}
void store_timestamp(std::span<uint8_t> out, size_t offset, RawTimestamp value) {
  store_be32(out, offset + offsetof(stamp_timestamp, seconds), value.seconds);
  store_be32(out, offset + offsetof(stamp_timestamp, fraction), value.fraction);
}

bool has_key(const HmacKey* key) { return key != nullptr && !key->bytes.empty(); }

bool compute_hmac16(const HmacKey& key, std::span<const uint8_t> data, std::array<uint8_t, 16>& out) {
  static const uint8_t kNoData = 0;  // OpenSSL wants non-null pointers even for empty inputs
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  const uint8_t* key_bytes = key.bytes.empty() ? &kNoData : key.bytes.data();
  const uint8_t* data_bytes = data.empty() ? &kNoData : data.data();
  if (HMAC(EVP_sha256(), key_bytes, static_cast<int>(key.bytes.size()), data_bytes, data.size(), digest,
           &digest_length) == nullptr ||
      digest_length < out.size()) {
    return false;
  }
  std::memcpy(out.data(), digest, out.size());
  OPENSSL_cleanse(digest, sizeof(digest));
  return true;
}

// The HMAC of an authenticated base packet: over its first 96 octets (RFC 8762 section 4.4).
bool verify_base_hmac(const HmacKey& key, std::span<const uint8_t> packet) {
  std::array<uint8_t, STAMP_HMAC_LEN> expected{};
  if (!compute_hmac16(key, packet.first(STAMP_AUTH_HMAC_OFFSET), expected)) return false;
  return CRYPTO_memcmp(expected.data(), packet.data() + STAMP_AUTH_HMAC_OFFSET, STAMP_HMAC_LEN) == 0;
}

bool sign_base(const HmacKey& key, std::span<uint8_t> packet) {
  std::array<uint8_t, STAMP_HMAC_LEN> mac{};
  if (!compute_hmac16(key, packet.first(STAMP_AUTH_HMAC_OFFSET), mac)) return false;
  std::memcpy(packet.data() + STAMP_AUTH_HMAC_OFFSET, mac.data(), mac.size());
  return true;
}

// Length and HMAC checks shared by both decoders. Returns true when the packet may be parsed.
bool check_received(std::span<const uint8_t> in, Mode mode, const HmacKey* key, ParseError& error) {
  if (in.size() < base_length(mode)) {
    error = ParseError::kTooShort;
    return false;
  }
  if (in.size() > kMaxUdpPayload) {
    error = ParseError::kTooLong;
    return false;
  }
  if (mode == Mode::kAuthenticated && (!has_key(key) || !verify_base_hmac(*key, in))) {
    error = ParseError::kBadHmac;
    return false;
  }
  return true;
}

// Calls visit(header_offset, flags, type, value) for each complete TLV in `in`. Stops at the first TLV
// whose header or value runs past the end and returns its offset; returns in.size() when all fit.
template <class Visitor>
size_t for_each_tlv(std::span<const uint8_t> in, Visitor&& visit) {
  size_t offset = 0;
  while (offset < in.size()) {
    const size_t remaining = in.size() - offset;
    if (remaining < STAMP_TLV_HDR_LEN) return offset;
    const size_t value_length = load_be16(in, offset + offsetof(stamp_tlv_hdr, length));
    if (value_length > remaining - STAMP_TLV_HDR_LEN) return offset;
    visit(offset, load_u8(in, offset + offsetof(stamp_tlv_hdr, flags)),
          load_u8(in, offset + offsetof(stamp_tlv_hdr, type)), in.subspan(offset + STAMP_TLV_HDR_LEN, value_length));
    offset += STAMP_TLV_HDR_LEN + value_length;
  }
  return offset;
}

// TLV types this reflector understands (RFC 8972 section 4: it clears U for these, sets it for others).
bool reflector_understands(uint8_t type) { return type == STAMP_TLV_EXTRA_PADDING; }

Error too_long_error(size_t length) {
  return make_error("STAMP packet of " + std::to_string(length) + " octets exceeds the " +
                        std::to_string(kMaxUdpPayload) + "-octet UDP payload limit",
                    EMSGSIZE);
}

}  // namespace

size_t base_length(Mode mode) { return mode == Mode::kAuthenticated ? STAMP_AUTH_BASE_LEN : STAMP_UNAUTH_BASE_LEN; }

std::optional<uint16_t> read_ssid(std::span<const uint8_t> packet, Mode mode) {
  // Test and reflected packets hold the SSID at the same offset (static_asserts above).
  const size_t offset = mode == Mode::kAuthenticated ? kAuthTestLayout.ssid : kUnauthTestLayout.ssid;
  if (packet.size() < offset + 2) return std::nullopt;
  return static_cast<uint16_t>(packet[offset] << 8 | packet[offset + 1]);
}

Result<HmacKey> load_key_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return make_error("cannot open key file '" + path + "': " + std::strerror(errno), errno);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) return make_error("cannot read key file '" + path + "'", EIO);
  HmacKey key;
  int high_nibble = -1;
  for (size_t position = 0; position < text.size(); ++position) {
    const char c = text[position];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') continue;
    int nibble;
    if (c >= '0' && c <= '9') {
      nibble = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      nibble = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      nibble = c - 'A' + 10;
    } else {
      return make_error(
          "key file '" + path + "': character at offset " + std::to_string(position) + " is not a hexadecimal digit",
          EINVAL);
    }
    if (high_nibble < 0) {
      high_nibble = nibble;
    } else {
      key.bytes.push_back(static_cast<uint8_t>(high_nibble << 4 | nibble));
      high_nibble = -1;
    }
  }
  if (high_nibble >= 0) {
    return make_error("key file '" + path + "': odd number of hexadecimal digits", EINVAL);
  }
  if (key.bytes.size() < kMinKeyOctets) {
    return make_error("key file '" + path + "': key has " + std::to_string(key.bytes.size()) + " octets, at least " +
                          std::to_string(kMinKeyOctets) + " are required",
                      EINVAL);
  }
  return key;
}

const char* to_string(ParseError error) {
  switch (error) {
    case ParseError::kTooShort: return "too_short";
    case ParseError::kTooLong: return "too_long";
    case ParseError::kBadHmac: return "bad_hmac";
    case ParseError::kMalformedTlv: return "malformed_tlv";
  }
  return "unknown";
}

std::array<uint8_t, 16> hmac16(const HmacKey& key, std::span<const uint8_t> data) {
  std::array<uint8_t, 16> mac{};
  if (!compute_hmac16(key, data, mac)) mac.fill(0);
  return mac;
}

Result<size_t> encode_test_packet(const TestPacket& fields, Mode mode, const HmacKey* key, std::span<uint8_t> out) {
  if (out.size() < base_length(mode)) {
    return make_error("buffer of " + std::to_string(out.size()) + " octets is shorter than the " +
                          std::to_string(base_length(mode)) + "-octet STAMP base packet",
                      EINVAL);
  }
  if (out.size() > kMaxUdpPayload) return too_long_error(out.size());
  if (mode == Mode::kAuthenticated && !has_key(key)) {
    return make_error("authenticated STAMP needs an HMAC key", EINVAL);
  }
  std::fill(out.begin(), out.end(), uint8_t{0});
  const TestPacketLayout& layout = test_layout(mode);
  store_be32(out, layout.seq, fields.seq);
  store_timestamp(out, layout.timestamp, fields.timestamp);
  store_be16(out, layout.error_estimate, fields.error_estimate);
  store_be16(out, layout.ssid, fields.ssid);
  if (mode == Mode::kAuthenticated && !sign_base(*key, out)) return make_error("HMAC-SHA-256 failed", EIO);
  return out.size();
}

DecodeTestResult decode_test_packet(std::span<const uint8_t> in, Mode mode, const HmacKey* key) {
  DecodeTestResult result;
  if (!check_received(in, mode, key, result.error)) return result;
  const TestPacketLayout& layout = test_layout(mode);
  TestPacket& packet = result.parsed.packet;
  packet.seq = load_be32(in, layout.seq);
  packet.timestamp = load_timestamp(in, layout.timestamp);
  packet.error_estimate = load_be16(in, layout.error_estimate);
  packet.ssid = load_be16(in, layout.ssid);
  result.parsed.tlvs = in.subspan(base_length(mode));
  result.ok = true;
  return result;
}

DecodeReflectedResult decode_reflected_packet(std::span<const uint8_t> in, Mode mode, const HmacKey* key) {
  DecodeReflectedResult result;
  if (!check_received(in, mode, key, result.error)) return result;
  const ReflectedPacketLayout& layout = reflected_layout(mode);
  ReflectedPacket& packet = result.parsed.packet;
  packet.seq = load_be32(in, layout.seq);
  packet.timestamp = load_timestamp(in, layout.timestamp);
  packet.error_estimate = load_be16(in, layout.error_estimate);
  packet.ssid = load_be16(in, layout.ssid);
  packet.receive_timestamp = load_timestamp(in, layout.receive_timestamp);
  packet.sender_seq = load_be32(in, layout.sender_seq);
  packet.sender_timestamp = load_timestamp(in, layout.sender_timestamp);
  packet.sender_error_estimate = load_be16(in, layout.sender_error_estimate);
  packet.sender_ttl = load_u8(in, layout.sender_ttl);
  // The octets after the base are returned as they are: the measurement is in the base packet, and a
  // reflector's TLV flags (even M) are for the engine to count, not a reason to lose the sample.
  result.parsed.tlvs = in.subspan(base_length(mode));
  result.ok = true;
  return result;
}

Result<TlvReport> encode_reflection(const Parsed<TestPacket>& request, std::span<const uint8_t> request_bytes,
                                    const ReflectionFields& fields, Mode mode, const HmacKey* key,
                                    std::span<uint8_t> out) {
  const size_t base = base_length(mode);
  if (request_bytes.size() < base) {
    return make_error("request of " + std::to_string(request_bytes.size()) + " octets is shorter than the " +
                          std::to_string(base) + "-octet STAMP base packet",
                      EINVAL);
  }
  if (request_bytes.size() > kMaxUdpPayload) return too_long_error(request_bytes.size());
  if (out.size() != request_bytes.size()) {
    return make_error("reply buffer of " + std::to_string(out.size()) + " octets differs from the " +
                          std::to_string(request_bytes.size()) + "-octet request (STAMP replies are symmetric)",
                      EINVAL);
  }
  if (mode == Mode::kAuthenticated && !has_key(key)) {
    return make_error("authenticated STAMP needs an HMAC key", EINVAL);
  }

  // The tail first, with memmove: `out` may be the request buffer itself (in-place reflection). The
  // base fields come from `request`, already parsed, so overwriting the request's base is safe.
  const std::span<uint8_t> tail = out.subspan(base);
  std::memmove(tail.data(), request_bytes.data() + base, tail.size());

  std::fill(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(base), uint8_t{0});
  const ReflectedPacketLayout& layout = reflected_layout(mode);
  store_be32(out, layout.seq, fields.seq);
  store_timestamp(out, layout.timestamp, fields.timestamp);
  store_be16(out, layout.error_estimate, fields.error_estimate);
  store_be16(out, layout.ssid, request.packet.ssid);  // RFC 8972 section 3: copied from the request
  store_timestamp(out, layout.receive_timestamp, fields.receive_timestamp);
  store_be32(out, layout.sender_seq, request.packet.seq);
  store_timestamp(out, layout.sender_timestamp, request.packet.timestamp);
  store_be16(out, layout.sender_error_estimate, request.packet.error_estimate);
  store_u8(out, layout.sender_ttl, fields.sender_ttl);

  TlvReport report;
  report.zero_padding = std::all_of(tail.begin(), tail.end(), [](uint8_t octet) { return octet == 0; });
  if (!report.zero_padding) {
    // RFC 8972 section 4: the reflector sets each TLV's flags itself. U = not understood, M = malformed,
    // I = 0 (this reflector verifies no HMAC TLV), reserved bits zeroed on transmit. Values stay as sent.
    const size_t malformed_at = for_each_tlv(tail, [&](size_t offset, uint8_t, uint8_t type, auto) {
      ++report.count;
      uint8_t flags = 0;
      if (!reflector_understands(type)) {
        flags |= STAMP_TLV_FLAG_U;
        ++report.unrecognized;
      }
      tail[offset + offsetof(stamp_tlv_hdr, flags)] = flags;
    });
    if (malformed_at < tail.size()) {
      // A length past the end (or a header cut short): flag it M and stop; the rest is copied as is.
      const size_t remaining = tail.size() - malformed_at;
      uint8_t flags = STAMP_TLV_FLAG_M;
      ++report.count;
      ++report.malformed;
      if (remaining > offsetof(stamp_tlv_hdr, type) &&
          !reflector_understands(tail[malformed_at + offsetof(stamp_tlv_hdr, type)])) {
        flags |= STAMP_TLV_FLAG_U;
        ++report.unrecognized;
      }
      tail[malformed_at + offsetof(stamp_tlv_hdr, flags)] = flags;
    }
  }

  if (mode == Mode::kAuthenticated && !sign_base(*key, out)) return make_error("HMAC-SHA-256 failed", EIO);
  return report;
}

TlvWalk walk_tlvs(std::span<const uint8_t> in) {
  TlvWalk walk;
  const size_t end = for_each_tlv(in, [&](size_t offset, uint8_t flags, uint8_t type, std::span<const uint8_t> value) {
    walk.tlvs.push_back(Tlv{flags, type, offset, value});
  });
  if (end < in.size()) {
    walk.malformed = true;
    walk.malformed_at = end;
  }
  return walk;
}

}  // namespace hubprobe::stamp
