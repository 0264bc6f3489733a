// SPDX-License-Identifier: Apache-2.0
// STAMP codec against packets written out octet by octet from the figures of RFC 8762 section 4
// (with the RFC 8972 SSID), never built with the encoder under test.
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "hubprobe/stamp.h"

namespace hubprobe::stamp {
namespace {

using Bytes = std::vector<uint8_t>;

// The HMAC key of every authenticated vector below: octets 0x00, 0x01, ..., 0x1f.
HmacKey test_key() {
  HmacKey key;
  for (uint8_t i = 0; i < 32; ++i) key.bytes.push_back(i);
  return key;
}

// The packets are laid out one field per line, as in the RFC figures.
// clang-format off
// ---- Session-sender, unauthenticated, NTP (RFC 8762 Figure 3 + RFC 8972 SSID) -----------------------
const TestPacket kSenderFields{
    .seq = 0x01020304,
    .timestamp = {.seconds = 0xEA1B2C3D, .fraction = 0x80000000},
    .error_estimate = 0x8587,  // S=1 Z=0 Scale=5 Multiplier=135 (about 1 us)
    .ssid = 0xBEEF,
};
const Bytes kSenderUnauthNtp = {
    /*  0 Sequence Number  */ 0x01, 0x02, 0x03, 0x04,
    /*  4 Timestamp (s)    */ 0xEA, 0x1B, 0x2C, 0x3D,
    /*  8 Timestamp (frac) */ 0x80, 0x00, 0x00, 0x00,
    /* 12 Error Estimate   */ 0x85, 0x87,
    /* 14 SSID             */ 0xBE, 0xEF,
    /* 16 MBZ (28 octets)  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* 30                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

// ---- Session-sender, unauthenticated, PTPv2 truncated (Z = 1) ----------------------------------------
const TestPacket kSenderPtpFields{
    .seq = 0x0A0B0C0D,
    .timestamp = {.seconds = 0x65A1B2C3, .fraction = 500000000},  // fraction in nanoseconds
    .error_estimate = 0xDD80,  // S=1 Z=1 Scale=29 Multiplier=128 (16 s)
    .ssid = 0x1234,
};
const Bytes kSenderUnauthPtp = {
    /*  0 Sequence Number  */ 0x0A, 0x0B, 0x0C, 0x0D,
    /*  4 Timestamp (s)    */ 0x65, 0xA1, 0xB2, 0xC3,
    /*  8 Timestamp (ns)   */ 0x1D, 0xCD, 0x65, 0x00,
    /* 12 Error Estimate   */ 0xDD, 0x80,
    /* 14 SSID             */ 0x12, 0x34,
    /* 16 MBZ (28 octets)  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* 30                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

// ---- Session-sender, authenticated, NTP (RFC 8762 Figure 4 + SSID at 26-27) ---------------------------
// HMAC: printf of octets 0..95 > f; openssl dgst -sha256 -mac HMAC -macopt
// hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f f
// = 6ad84cc764da4e0451bfc6aaf54dcd5b45fce15d7d2db164f1e79b78cc615834, first 16 octets kept.
const Bytes kSenderAuthNtp = {
    /*   0 Sequence Number  */ 0x01, 0x02, 0x03, 0x04,
    /*   4 MBZ (12 octets)  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  16 Timestamp (s)    */ 0xEA, 0x1B, 0x2C, 0x3D,
    /*  20 Timestamp (frac) */ 0x80, 0x00, 0x00, 0x00,
    /*  24 Error Estimate   */ 0x85, 0x87,
    /*  26 SSID             */ 0xBE, 0xEF,
    /*  28 MBZ (68 octets)  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  42                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  56                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  70                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  84                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  96 HMAC (16 octets) */ 0x6a, 0xd8, 0x4c, 0xc7, 0x64, 0xda, 0x4e, 0x04,
    /* 104                  */ 0x51, 0xbf, 0xc6, 0xaa, 0xf5, 0x4d, 0xcd, 0x5b,
};

// ---- Session-sender, authenticated, PTP ---------------------------------------------------------------
// HMAC as above over octets 0..95 = 34913e66bd83a2f26e0020e75b783a263e5b654efe0a96e4281a76471cfcf39d.
const Bytes kSenderAuthPtp = {
    /*   0 Sequence Number  */ 0x0A, 0x0B, 0x0C, 0x0D,
    /*   4 MBZ (12 octets)  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  16 Timestamp (s)    */ 0x65, 0xA1, 0xB2, 0xC3,
    /*  20 Timestamp (ns)   */ 0x1D, 0xCD, 0x65, 0x00,
    /*  24 Error Estimate   */ 0xDD, 0x80,
    /*  26 SSID             */ 0x12, 0x34,
    /*  28 MBZ (68 octets)  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  42                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  56                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  70                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  84                  */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  96 HMAC (16 octets) */ 0x34, 0x91, 0x3e, 0x66, 0xbd, 0x83, 0xa2, 0xf2,
    /* 104                  */ 0x6e, 0x00, 0x20, 0xe7, 0x5b, 0x78, 0x3a, 0x26,
};

// ---- Session-reflector: the answer to kSenderFields -------------------------------------------------
const ReflectionFields kReflection{
    .seq = 7,
    .timestamp = {.seconds = 0xEA1B2C40, .fraction = 0x00000001},  // T3
    .error_estimate = 0x0001,                                      // S=0 Z=0 Scale=0 Multiplier=1
    .receive_timestamp = {.seconds = 0xEA1B2C3F, .fraction = 0xFFFFFFFF},  // T2
    .sender_ttl = 63,
};

// RFC 8762 Figure 5 + SSID at 14-15.
const Bytes kReflectorUnauthNtp = {
    /*  0 Sequence Number         */ 0x00, 0x00, 0x00, 0x07,
    /*  4 Timestamp (s)           */ 0xEA, 0x1B, 0x2C, 0x40,
    /*  8 Timestamp (frac)        */ 0x00, 0x00, 0x00, 0x01,
    /* 12 Error Estimate          */ 0x00, 0x01,
    /* 14 SSID                    */ 0xBE, 0xEF,
    /* 16 Receive Timestamp (s)   */ 0xEA, 0x1B, 0x2C, 0x3F,
    /* 20 Receive Timestamp (frac)*/ 0xFF, 0xFF, 0xFF, 0xFF,
    /* 24 Session-Sender Seq      */ 0x01, 0x02, 0x03, 0x04,
    /* 28 Session-Sender Time (s) */ 0xEA, 0x1B, 0x2C, 0x3D,
    /* 32 Session-Sender Time (f) */ 0x80, 0x00, 0x00, 0x00,
    /* 36 Session-Sender Err Est  */ 0x85, 0x87,
    /* 38 MBZ                     */ 0x00, 0x00,
    /* 40 Ses-Sender TTL          */ 0x3F,
    /* 41 MBZ                     */ 0x00, 0x00, 0x00,
};

// RFC 8762 Figure 6 + SSID at 26-27.
// HMAC over octets 0..95 (same key, same openssl command)
// = 769a97b5cc8ff7af4a9c966905ab7cf545b557c95a476f1e8751559040e08217.
const Bytes kReflectorAuthNtp = {
    /*   0 Sequence Number          */ 0x00, 0x00, 0x00, 0x07,
    /*   4 MBZ (12 octets)          */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  16 Timestamp (s)            */ 0xEA, 0x1B, 0x2C, 0x40,
    /*  20 Timestamp (frac)         */ 0x00, 0x00, 0x00, 0x01,
    /*  24 Error Estimate           */ 0x00, 0x01,
    /*  26 SSID                     */ 0xBE, 0xEF,
    /*  28 MBZ (4 octets)           */ 0x00, 0x00, 0x00, 0x00,
    /*  32 Receive Timestamp (s)    */ 0xEA, 0x1B, 0x2C, 0x3F,
    /*  36 Receive Timestamp (frac) */ 0xFF, 0xFF, 0xFF, 0xFF,
    /*  40 MBZ (8 octets)           */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  48 Session-Sender Seq       */ 0x01, 0x02, 0x03, 0x04,
    /*  52 MBZ (12 octets)          */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  64 Session-Sender Time (s)  */ 0xEA, 0x1B, 0x2C, 0x3D,
    /*  68 Session-Sender Time (f)  */ 0x80, 0x00, 0x00, 0x00,
    /*  72 Session-Sender Err Est   */ 0x85, 0x87,
    /*  74 MBZ (6 octets)           */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  80 Ses-Sender TTL           */ 0x3F,
    /*  81 MBZ (15 octets)          */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /*  94                          */ 0x00, 0x00,
    /*  96 HMAC (16 octets)         */ 0x76, 0x9a, 0x97, 0xb5, 0xcc, 0x8f, 0xf7, 0xaf,
    /* 104                          */ 0x4a, 0x9c, 0x96, 0x69, 0x05, 0xab, 0x7c, 0xf5,
};

// A reflected packet whose reflector uses PTP (Z = 1 in its Error Estimate), written by hand.
const Bytes kReflectorUnauthPtp = {
    /*  0 Sequence Number         */ 0x00, 0x00, 0x01, 0x00,
    /*  4 Timestamp (s)           */ 0x65, 0xA1, 0xB2, 0xC4,
    /*  8 Timestamp (ns)          */ 0x00, 0x00, 0x03, 0xE8,
    /* 12 Error Estimate          */ 0xC0, 0x01,  // S=1 Z=1 Scale=0 Multiplier=1
    /* 14 SSID                    */ 0x12, 0x34,
    /* 16 Receive Timestamp (s)   */ 0x65, 0xA1, 0xB2, 0xC4,
    /* 20 Receive Timestamp (ns)  */ 0x00, 0x00, 0x00, 0x64,
    /* 24 Session-Sender Seq      */ 0x0A, 0x0B, 0x0C, 0x0D,
    /* 28 Session-Sender Time (s) */ 0x65, 0xA1, 0xB2, 0xC3,
    /* 32 Session-Sender Time (ns)*/ 0x1D, 0xCD, 0x65, 0x00,
    /* 36 Session-Sender Err Est  */ 0xDD, 0x80,
    /* 38 MBZ                     */ 0x00, 0x00,
    /* 40 Ses-Sender TTL          */ 0xFF,
    /* 41 MBZ                     */ 0x00, 0x00, 0x00,
};

// clang-format on

void expect_test_fields(const TestPacket& actual, const TestPacket& expected) {
  EXPECT_EQ(actual.seq, expected.seq);
  EXPECT_EQ(actual.timestamp, expected.timestamp);
  EXPECT_EQ(actual.error_estimate, expected.error_estimate);
  EXPECT_EQ(actual.ssid, expected.ssid);
}

void expect_reflection_of(const ReflectedPacket& actual, const TestPacket& request, const ReflectionFields& fields) {
  EXPECT_EQ(actual.seq, fields.seq);
  EXPECT_EQ(actual.timestamp, fields.timestamp);
  EXPECT_EQ(actual.error_estimate, fields.error_estimate);
  EXPECT_EQ(actual.ssid, request.ssid);
  EXPECT_EQ(actual.receive_timestamp, fields.receive_timestamp);
  EXPECT_EQ(actual.sender_seq, request.seq);
  EXPECT_EQ(actual.sender_timestamp, request.timestamp);
  EXPECT_EQ(actual.sender_error_estimate, request.error_estimate);
  EXPECT_EQ(actual.sender_ttl, fields.sender_ttl);
}

Bytes encode_sender(const TestPacket& fields, Mode mode, const HmacKey* key, size_t size) {
  Bytes out(size, 0xA5);  // junk, to prove the encoder zero-fills
  auto written = encode_test_packet(fields, mode, key, out);
  EXPECT_TRUE(written.ok()) << (written.ok() ? "" : written.error().message);
  if (written.ok()) {
    EXPECT_EQ(*written, size);
  }
  return out;
}

// Reflects `request` (decoded with `mode`) into a buffer of the same size.
struct Reflection {
  Bytes reply;
  TlvReport report;
};
Reflection reflect(const Bytes& request, Mode mode, const HmacKey* key) {
  const auto decoded = decode_test_packet(request, mode, key);
  EXPECT_TRUE(decoded.ok);
  Reflection reflection;
  reflection.reply.assign(request.size(), 0x5A);
  auto report = encode_reflection(decoded.parsed, request, kReflection, mode, key, reflection.reply);
  EXPECT_TRUE(report.ok()) << (report.ok() ? "" : report.error().message);
  if (report.ok()) reflection.report = *report;
  EXPECT_EQ(reflection.reply.size(), request.size());
  return reflection;
}

Bytes concat(Bytes head, const Bytes& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

// ---- Layout and known vectors -------------------------------------------------------------------------

TEST(StampCodecTest, BaseLengths) {
  EXPECT_EQ(base_length(Mode::kUnauthenticated), 44u);
  EXPECT_EQ(base_length(Mode::kAuthenticated), 112u);
  EXPECT_EQ(kSenderUnauthNtp.size(), 44u);
  EXPECT_EQ(kSenderAuthNtp.size(), 112u);
  EXPECT_EQ(kReflectorUnauthNtp.size(), 44u);
  EXPECT_EQ(kReflectorAuthNtp.size(), 112u);
}

TEST(StampCodecTest, Hmac16MatchesRfc4231TestCase2) {
  // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
  const std::string key_text = "Jefe";
  const std::string data = "what do ya want for nothing?";
  const HmacKey key{Bytes(key_text.begin(), key_text.end())};
  const std::array<uint8_t, 16> expected = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                            0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7};
  EXPECT_EQ(hmac16(key, std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size())), expected);
}

TEST(StampCodecTest, SenderUnauthenticatedNtpMatchesFigure) {
  EXPECT_EQ(encode_sender(kSenderFields, Mode::kUnauthenticated, nullptr, 44), kSenderUnauthNtp);
  const auto decoded = decode_test_packet(kSenderUnauthNtp, Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok);
  expect_test_fields(decoded.parsed.packet, kSenderFields);
  EXPECT_TRUE(decoded.parsed.tlvs.empty());
}

TEST(StampCodecTest, SenderUnauthenticatedPtpMatchesFigure) {
  EXPECT_EQ(encode_sender(kSenderPtpFields, Mode::kUnauthenticated, nullptr, 44), kSenderUnauthPtp);
  const auto decoded = decode_test_packet(kSenderUnauthPtp, Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok);
  expect_test_fields(decoded.parsed.packet, kSenderPtpFields);
  const ErrorEstimate estimate = ErrorEstimate::decode(decoded.parsed.packet.error_estimate);
  EXPECT_EQ(estimate.format, TimestampFormat::kPtp);
  EXPECT_TRUE(estimate.synchronized);
}

TEST(StampCodecTest, SenderAuthenticatedNtpMatchesFigureAndHmac) {
  const HmacKey key = test_key();
  EXPECT_EQ(encode_sender(kSenderFields, Mode::kAuthenticated, &key, 112), kSenderAuthNtp);
  const auto decoded = decode_test_packet(kSenderAuthNtp, Mode::kAuthenticated, &key);
  ASSERT_TRUE(decoded.ok);
  expect_test_fields(decoded.parsed.packet, kSenderFields);
  EXPECT_TRUE(decoded.parsed.tlvs.empty());
}

TEST(StampCodecTest, SenderAuthenticatedPtpMatchesFigureAndHmac) {
  const HmacKey key = test_key();
  EXPECT_EQ(encode_sender(kSenderPtpFields, Mode::kAuthenticated, &key, 112), kSenderAuthPtp);
  const auto decoded = decode_test_packet(kSenderAuthPtp, Mode::kAuthenticated, &key);
  ASSERT_TRUE(decoded.ok);
  expect_test_fields(decoded.parsed.packet, kSenderPtpFields);
}

TEST(StampCodecTest, ReflectorUnauthenticatedNtpMatchesFigure) {
  const Reflection reflection = reflect(kSenderUnauthNtp, Mode::kUnauthenticated, nullptr);
  EXPECT_EQ(reflection.reply, kReflectorUnauthNtp);
  EXPECT_EQ(reflection.report.count, 0u);

  const auto decoded = decode_reflected_packet(kReflectorUnauthNtp, Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok);
  expect_reflection_of(decoded.parsed.packet, kSenderFields, kReflection);
  EXPECT_TRUE(decoded.parsed.tlvs.empty());
}

TEST(StampCodecTest, ReflectorAuthenticatedNtpMatchesFigureAndHmac) {
  const HmacKey key = test_key();
  const Reflection reflection = reflect(kSenderAuthNtp, Mode::kAuthenticated, &key);
  EXPECT_EQ(reflection.reply, kReflectorAuthNtp);

  const auto decoded = decode_reflected_packet(kReflectorAuthNtp, Mode::kAuthenticated, &key);
  ASSERT_TRUE(decoded.ok);
  expect_reflection_of(decoded.parsed.packet, kSenderFields, kReflection);
}

TEST(StampCodecTest, ReflectorUnauthenticatedPtpDecodes) {
  const auto decoded = decode_reflected_packet(kReflectorUnauthPtp, Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok);
  const ReflectedPacket& packet = decoded.parsed.packet;
  EXPECT_EQ(packet.seq, 256u);
  EXPECT_EQ(packet.timestamp, (RawTimestamp{0x65A1B2C4, 1000}));
  EXPECT_EQ(packet.error_estimate, 0xC001);
  EXPECT_EQ(ErrorEstimate::decode(packet.error_estimate).format, TimestampFormat::kPtp);
  EXPECT_EQ(packet.ssid, 0x1234);
  EXPECT_EQ(packet.receive_timestamp, (RawTimestamp{0x65A1B2C4, 100}));
  EXPECT_EQ(packet.sender_seq, 0x0A0B0C0Du);
  EXPECT_EQ(packet.sender_timestamp, kSenderPtpFields.timestamp);
  EXPECT_EQ(packet.sender_error_estimate, 0xDD80);
  EXPECT_EQ(packet.sender_ttl, 255);
}

// ---- Length limits ------------------------------------------------------------------------------------

TEST(StampCodecTest, EveryLengthShorterThanTheBaseIsRefused) {
  const HmacKey key = test_key();
  for (Mode mode : {Mode::kUnauthenticated, Mode::kAuthenticated}) {
    const Bytes& full = mode == Mode::kAuthenticated ? kSenderAuthNtp : kSenderUnauthNtp;
    for (size_t length = 0; length < base_length(mode); ++length) {
      // A heap copy of exactly `length` octets, so ASan catches any read past it.
      const auto exact = std::make_unique<uint8_t[]>(length + 1);
      if (length > 0) std::memcpy(exact.get(), full.data(), length);
      const std::span<const uint8_t> in(exact.get(), length);
      const auto test = decode_test_packet(in, mode, &key);
      EXPECT_FALSE(test.ok) << length;
      EXPECT_EQ(test.error, ParseError::kTooShort) << length;
      const auto reflected = decode_reflected_packet(in, mode, &key);
      EXPECT_FALSE(reflected.ok) << length;
      EXPECT_EQ(reflected.error, ParseError::kTooShort) << length;
    }
  }
}

TEST(StampCodecTest, LongerThanTheUdpLimitIsRefused) {
  Bytes packet = kSenderUnauthNtp;
  packet.resize(65507);
  EXPECT_TRUE(decode_test_packet(packet, Mode::kUnauthenticated, nullptr).ok);
  EXPECT_TRUE(decode_reflected_packet(packet, Mode::kUnauthenticated, nullptr).ok);
  packet.resize(65508);
  const auto test = decode_test_packet(packet, Mode::kUnauthenticated, nullptr);
  EXPECT_FALSE(test.ok);
  EXPECT_EQ(test.error, ParseError::kTooLong);
  const auto reflected = decode_reflected_packet(packet, Mode::kUnauthenticated, nullptr);
  EXPECT_FALSE(reflected.ok);
  EXPECT_EQ(reflected.error, ParseError::kTooLong);

  Bytes out(65508);
  EXPECT_FALSE(encode_test_packet(kSenderFields, Mode::kUnauthenticated, nullptr, out).ok());
}

TEST(StampCodecTest, OctetsAfterTheBaseAreReturnedAsTlvs) {
  const Bytes tlvs = {0x80, 0x01, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF};
  const HmacKey key = test_key();
  for (Mode mode : {Mode::kUnauthenticated, Mode::kAuthenticated}) {
    const Bytes packet = concat(mode == Mode::kAuthenticated ? kSenderAuthNtp : kSenderUnauthNtp, tlvs);
    const auto decoded = decode_test_packet(packet, mode, &key);
    ASSERT_TRUE(decoded.ok);
    expect_test_fields(decoded.parsed.packet, kSenderFields);
    ASSERT_EQ(decoded.parsed.tlvs.size(), tlvs.size());
    EXPECT_EQ(decoded.parsed.tlvs.data(), packet.data() + base_length(mode));
    EXPECT_TRUE(std::equal(tlvs.begin(), tlvs.end(), decoded.parsed.tlvs.begin()));

    const Bytes reply = concat(mode == Mode::kAuthenticated ? kReflectorAuthNtp : kReflectorUnauthNtp, tlvs);
    const auto reflected = decode_reflected_packet(reply, mode, &key);
    ASSERT_TRUE(reflected.ok);
    EXPECT_EQ(reflected.parsed.tlvs.size(), tlvs.size());
  }
}

// ---- MBZ and HMAC -------------------------------------------------------------------------------------

TEST(StampCodecTest, MbzJunkIsIgnoredUnauthenticated) {
  Bytes sender = kSenderUnauthNtp;
  for (size_t i = 16; i < 44; ++i) sender[i] = 0xFF;
  const auto decoded = decode_test_packet(sender, Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok);
  expect_test_fields(decoded.parsed.packet, kSenderFields);

  Bytes reflector = kReflectorUnauthNtp;
  for (size_t i : {38, 39, 41, 42, 43}) reflector[i] = 0xFF;
  const auto reflected = decode_reflected_packet(reflector, Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(reflected.ok);
  expect_reflection_of(reflected.parsed.packet, kSenderFields, kReflection);
}

TEST(StampCodecTest, MbzJunkIsIgnoredAuthenticated) {
  // The HMAC covers MBZ too: junk that the sender signed is accepted (and ignored).
  const HmacKey key = test_key();
  Bytes sender = kSenderAuthNtp;
  for (size_t i = 4; i < 16; ++i) sender[i] = 0xFF;
  for (size_t i = 28; i < 96; ++i) sender[i] = static_cast<uint8_t>(i);
  const auto sender_mac = hmac16(key, std::span(sender).first(96));
  std::copy(sender_mac.begin(), sender_mac.end(), sender.begin() + 96);
  const auto decoded = decode_test_packet(sender, Mode::kAuthenticated, &key);
  ASSERT_TRUE(decoded.ok);
  expect_test_fields(decoded.parsed.packet, kSenderFields);

  Bytes reflector = kReflectorAuthNtp;
  for (size_t i : {4, 15, 28, 31, 40, 47, 52, 63, 74, 79, 81, 95}) reflector[i] = 0xEE;
  const auto reflector_mac = hmac16(key, std::span(reflector).first(96));
  std::copy(reflector_mac.begin(), reflector_mac.end(), reflector.begin() + 96);
  const auto reflected = decode_reflected_packet(reflector, Mode::kAuthenticated, &key);
  ASSERT_TRUE(reflected.ok);
  expect_reflection_of(reflected.parsed.packet, kSenderFields, kReflection);
}

TEST(StampCodecTest, BadHmacIsRefused) {
  const HmacKey key = test_key();
  Bytes sender = kSenderAuthNtp;
  sender[111] ^= 0x01;
  EXPECT_EQ(decode_test_packet(sender, Mode::kAuthenticated, &key).error, ParseError::kBadHmac);
  EXPECT_FALSE(decode_test_packet(sender, Mode::kAuthenticated, &key).ok);

  HmacKey other_key = test_key();
  other_key.bytes[0] ^= 0x80;
  EXPECT_EQ(decode_test_packet(kSenderAuthNtp, Mode::kAuthenticated, &other_key).error, ParseError::kBadHmac);
  EXPECT_EQ(decode_reflected_packet(kReflectorAuthNtp, Mode::kAuthenticated, &other_key).error, ParseError::kBadHmac);
}

TEST(StampCodecTest, AuthenticatedModeWithoutKeyIsRefused) {
  const HmacKey empty_key;
  for (const HmacKey* key : {static_cast<const HmacKey*>(nullptr), &empty_key}) {
    const auto test = decode_test_packet(kSenderAuthNtp, Mode::kAuthenticated, key);
    EXPECT_FALSE(test.ok);
    EXPECT_EQ(test.error, ParseError::kBadHmac);
    const auto reflected = decode_reflected_packet(kReflectorAuthNtp, Mode::kAuthenticated, key);
    EXPECT_FALSE(reflected.ok);
    EXPECT_EQ(reflected.error, ParseError::kBadHmac);

    Bytes out(112);
    EXPECT_FALSE(encode_test_packet(kSenderFields, Mode::kAuthenticated, key, out).ok());
    const HmacKey real_key = test_key();
    const auto request = decode_test_packet(kSenderAuthNtp, Mode::kAuthenticated, &real_key);
    ASSERT_TRUE(request.ok);
    EXPECT_FALSE(encode_reflection(request.parsed, kSenderAuthNtp, kReflection, Mode::kAuthenticated, key, out).ok());
  }
}

TEST(StampCodecTest, AnyFlippedBitInTheSignedOctetsIsRefused) {
  const HmacKey key = test_key();
  for (size_t bit = 0; bit < 96 * 8; ++bit) {
    Bytes sender = kSenderAuthNtp;
    sender[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    const auto test = decode_test_packet(sender, Mode::kAuthenticated, &key);
    ASSERT_FALSE(test.ok) << "sender bit " << bit;
    ASSERT_EQ(test.error, ParseError::kBadHmac);

    Bytes reflector = kReflectorAuthNtp;
    reflector[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    const auto reflected = decode_reflected_packet(reflector, Mode::kAuthenticated, &key);
    ASSERT_FALSE(reflected.ok) << "reflector bit " << bit;
    ASSERT_EQ(reflected.error, ParseError::kBadHmac);
  }
}

TEST(StampCodecTest, TlvsAfterTheAuthenticatedBaseAreNotCoveredByTheBaseHmac) {
  // RFC 8762 section 4.4: the base HMAC covers the first 96 octets only.
  const HmacKey key = test_key();
  Bytes packet = concat(kSenderAuthNtp, {0x80, 0x01, 0x00, 0x00});
  EXPECT_TRUE(decode_test_packet(packet, Mode::kAuthenticated, &key).ok);
  packet.back() ^= 0xFF;
  EXPECT_TRUE(decode_test_packet(packet, Mode::kAuthenticated, &key).ok);
}

// ---- Encoding errors -----------------------------------------------------------------------------------

TEST(StampCodecTest, EncodeRefusesBuffersShorterThanTheBase) {
  const HmacKey key = test_key();
  Bytes out(43);
  EXPECT_FALSE(encode_test_packet(kSenderFields, Mode::kUnauthenticated, nullptr, out).ok());
  out.resize(111);
  EXPECT_FALSE(encode_test_packet(kSenderFields, Mode::kAuthenticated, &key, out).ok());
}

TEST(StampCodecTest, EncodeZeroFillsPadding) {
  const Bytes packet = encode_sender(kSenderFields, Mode::kUnauthenticated, nullptr, 1400);
  EXPECT_TRUE(std::equal(kSenderUnauthNtp.begin(), kSenderUnauthNtp.end(), packet.begin()));
  EXPECT_TRUE(std::all_of(packet.begin() + 44, packet.end(), [](uint8_t octet) { return octet == 0; }));

  const HmacKey key = test_key();
  const Bytes auth = encode_sender(kSenderFields, Mode::kAuthenticated, &key, 200);
  EXPECT_TRUE(std::equal(kSenderAuthNtp.begin(), kSenderAuthNtp.end(), auth.begin()));
  EXPECT_TRUE(std::all_of(auth.begin() + 112, auth.end(), [](uint8_t octet) { return octet == 0; }));
}

TEST(StampCodecTest, ReflectionMustBeExactlyAsLongAsTheRequest) {
  const auto request = decode_test_packet(kSenderUnauthNtp, Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(request.ok);
  for (size_t size : {43, 45, 100}) {
    Bytes out(size);
    EXPECT_FALSE(
        encode_reflection(request.parsed, kSenderUnauthNtp, kReflection, Mode::kUnauthenticated, nullptr, out).ok())
        << size;
  }
  Bytes short_request(kSenderUnauthNtp.begin(), kSenderUnauthNtp.begin() + 43);
  Bytes out(43);
  EXPECT_FALSE(
      encode_reflection(request.parsed, short_request, kReflection, Mode::kUnauthenticated, nullptr, out).ok());
}

// ---- TLVs on reflection (RFC 8972 section 4) ------------------------------------------------------------

TEST(StampCodecTest, ZeroPaddingIsCopiedAsIs) {
  const Bytes request = concat(kSenderUnauthNtp, Bytes(1000, 0));
  const Reflection reflection = reflect(request, Mode::kUnauthenticated, nullptr);
  EXPECT_TRUE(reflection.report.zero_padding);
  EXPECT_EQ(reflection.report.count, 0u);
  EXPECT_EQ(reflection.reply, concat(kReflectorUnauthNtp, Bytes(1000, 0)));
}

TEST(StampCodecTest, UnknownTlvIsFlaggedUnrecognized) {
  const Bytes tlv = {0x80, 0x99, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04};  // flags U, type 0x99, length 4, value
  const Reflection reflection = reflect(concat(kSenderUnauthNtp, tlv), Mode::kUnauthenticated, nullptr);
  const Bytes expected_tlv = {0x80, 0x99, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04};
  EXPECT_EQ(reflection.reply, concat(kReflectorUnauthNtp, expected_tlv));
  EXPECT_FALSE(reflection.report.zero_padding);
  EXPECT_EQ(reflection.report.count, 1u);
  EXPECT_EQ(reflection.report.unrecognized, 1u);
  EXPECT_EQ(reflection.report.malformed, 0u);

  // A sender that left U clear still gets it set: the reflector decides.
  const Bytes tlv_without_u = {0x00, 0x99, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04};
  EXPECT_EQ(reflect(concat(kSenderUnauthNtp, tlv_without_u), Mode::kUnauthenticated, nullptr).reply,
            concat(kReflectorUnauthNtp, expected_tlv));
}

TEST(StampCodecTest, ExtraPaddingTlvIsUnderstoodSoUIsCleared) {
  // RFC 8972 section 4: senders set U; a reflector that understands the TLV sets it to 0. The
  // value is copied unchanged; reserved and I bits sent by the peer are not echoed.
  const Bytes tlv = {0xBF, 0x01, 0x00, 0x06, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
  const Reflection reflection = reflect(concat(kSenderUnauthNtp, tlv), Mode::kUnauthenticated, nullptr);
  const Bytes expected_tlv = {0x00, 0x01, 0x00, 0x06, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
  EXPECT_EQ(reflection.reply, concat(kReflectorUnauthNtp, expected_tlv));
  EXPECT_EQ(reflection.report.count, 1u);
  EXPECT_EQ(reflection.report.unrecognized, 0u);
}

TEST(StampCodecTest, OverlongTlvIsFlaggedMalformedWithoutReadingPastTheEnd) {
  // Length 16, but only 4 value octets follow.
  const Bytes tlv = {0x80, 0x01, 0x00, 0x10, 0x01, 0x02, 0x03, 0x04};
  const Bytes request = concat(kSenderUnauthNtp, tlv);
  const auto decoded = decode_test_packet(request, Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok);
  // Exact-size heap buffers: ASan reports any access past either end.
  const auto request_copy = std::make_unique<uint8_t[]>(request.size());
  std::memcpy(request_copy.get(), request.data(), request.size());
  const auto reply = std::make_unique<uint8_t[]>(request.size());
  const std::span<const uint8_t> request_span(request_copy.get(), request.size());
  auto report = encode_reflection(decoded.parsed, request_span, kReflection, Mode::kUnauthenticated, nullptr,
                                  std::span<uint8_t>(reply.get(), request.size()));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->count, 1u);
  EXPECT_EQ(report->malformed, 1u);
  EXPECT_EQ(report->unrecognized, 0u);  // Extra Padding is understood, only its length is wrong
  const Bytes expected = concat(kReflectorUnauthNtp, {0x40, 0x01, 0x00, 0x10, 0x01, 0x02, 0x03, 0x04});
  EXPECT_EQ(Bytes(reply.get(), reply.get() + request.size()), expected);

  const TlvWalk walk = walk_tlvs(std::span(request_copy.get() + 44, tlv.size()));
  EXPECT_TRUE(walk.malformed);
  EXPECT_EQ(walk.malformed_at, 0u);
  EXPECT_TRUE(walk.tlvs.empty());
}

TEST(StampCodecTest, SeveralTlvsAreWalkedInOrder) {
  const Bytes tlvs = {
      0x80, 0x01, 0x00, 0x02, 0xAA, 0xBB,              //  0: Extra Padding, U set by the sender
      0x80, 0x04, 0x00, 0x04, 0x12, 0x34, 0x56, 0x78,  //  6: Class of Service (not implemented here)
      0x80, 0xC8, 0x00, 0x00,                          // 14: unknown type 200, empty
      0x80, 0x01, 0x01, 0x00, 0x99,                    // 18: Extra Padding, length 256 runs past the end
  };
  const Reflection reflection = reflect(concat(kSenderUnauthNtp, tlvs), Mode::kUnauthenticated, nullptr);
  const Bytes expected_tlvs = {
      0x00, 0x01, 0x00, 0x02, 0xAA, 0xBB,              // understood: U cleared
      0x80, 0x04, 0x00, 0x04, 0x12, 0x34, 0x56, 0x78,  // not implemented here: U
      0x80, 0xC8, 0x00, 0x00,                          // unknown: U
      0x40, 0x01, 0x01, 0x00, 0x99,                    // malformed: M, rest copied as is
  };
  EXPECT_EQ(reflection.reply, concat(kReflectorUnauthNtp, expected_tlvs));
  EXPECT_EQ(reflection.report.count, 4u);
  EXPECT_EQ(reflection.report.unrecognized, 2u);
  EXPECT_EQ(reflection.report.malformed, 1u);

  const TlvWalk walk = walk_tlvs(tlvs);
  ASSERT_EQ(walk.tlvs.size(), 3u);
  EXPECT_EQ(walk.tlvs[0].type, 1);
  EXPECT_EQ(walk.tlvs[0].flags, 0x80);
  EXPECT_EQ(walk.tlvs[0].offset, 0u);
  EXPECT_EQ(walk.tlvs[0].value.size(), 2u);
  EXPECT_EQ(walk.tlvs[0].value.data(), tlvs.data() + 4);
  EXPECT_EQ(walk.tlvs[1].type, 4);
  EXPECT_EQ(walk.tlvs[1].offset, 6u);
  EXPECT_EQ(walk.tlvs[1].value.size(), 4u);
  EXPECT_EQ(walk.tlvs[2].type, 200);
  EXPECT_EQ(walk.tlvs[2].offset, 14u);
  EXPECT_TRUE(walk.tlvs[2].value.empty());
  EXPECT_TRUE(walk.malformed);
  EXPECT_EQ(walk.malformed_at, 18u);
}

TEST(StampCodecTest, TruncatedTlvHeaderIsFlaggedMalformed) {
  // One complete empty TLV, then three octets: too few for a header.
  const Bytes tlvs = {0x80, 0x01, 0x00, 0x00, 0x80, 0x77, 0x00};
  const Reflection reflection = reflect(concat(kSenderUnauthNtp, tlvs), Mode::kUnauthenticated, nullptr);
  EXPECT_EQ(reflection.reply, concat(kReflectorUnauthNtp, {0x00, 0x01, 0x00, 0x00, 0xC0, 0x77, 0x00}));
  EXPECT_EQ(reflection.report.count, 2u);
  EXPECT_EQ(reflection.report.malformed, 1u);
  EXPECT_EQ(reflection.report.unrecognized, 1u);  // type 0x77 is visible and unknown

  const TlvWalk walk = walk_tlvs(tlvs);
  EXPECT_EQ(walk.tlvs.size(), 1u);
  EXPECT_TRUE(walk.malformed);
  EXPECT_EQ(walk.malformed_at, 4u);

  const Bytes one_octet = {0x05};
  const Reflection single = reflect(concat(kSenderUnauthNtp, one_octet), Mode::kUnauthenticated, nullptr);
  EXPECT_EQ(single.reply, concat(kReflectorUnauthNtp, {0x40}));
  EXPECT_EQ(single.report.malformed, 1u);
}

TEST(StampCodecTest, WalkOfAnEmptySpanFindsNothing) {
  const TlvWalk walk = walk_tlvs({});
  EXPECT_TRUE(walk.tlvs.empty());
  EXPECT_FALSE(walk.malformed);
}

TEST(StampCodecTest, AuthenticatedReflectionWithTlvsIsSignedAndVerifies) {
  const HmacKey key = test_key();
  const Bytes tlvs = {0x80, 0x08, 0x00, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  const Reflection reflection = reflect(concat(kSenderAuthNtp, tlvs), Mode::kAuthenticated, &key);
  ASSERT_EQ(reflection.reply.size(), 112 + tlvs.size());
  // The base, HMAC included, is the same as without TLVs: the HMAC covers octets 0..95 only.
  EXPECT_TRUE(std::equal(kReflectorAuthNtp.begin(), kReflectorAuthNtp.end(), reflection.reply.begin()));
  EXPECT_EQ(reflection.reply[112], 0x80);  // HMAC TLV is not verified here: flagged unrecognized
  EXPECT_EQ(reflection.report.unrecognized, 1u);
  const auto decoded = decode_reflected_packet(reflection.reply, Mode::kAuthenticated, &key);
  ASSERT_TRUE(decoded.ok);
  expect_reflection_of(decoded.parsed.packet, kSenderFields, kReflection);
  EXPECT_EQ(decoded.parsed.tlvs.size(), tlvs.size());
}

TEST(StampCodecTest, ReflectionInPlaceGivesTheSameReply) {
  const Bytes tlvs = {0x80, 0x01, 0x00, 0x02, 0xAA, 0xBB, 0x80, 0x99, 0x00, 0x00};
  const Bytes request = concat(kSenderUnauthNtp, tlvs);
  const Bytes expected = reflect(request, Mode::kUnauthenticated, nullptr).reply;
  Bytes buffer = request;
  const auto decoded = decode_test_packet(buffer, Mode::kUnauthenticated, nullptr);
  ASSERT_TRUE(decoded.ok);
  const Parsed<TestPacket> parsed{decoded.parsed.packet, {}};
  ASSERT_TRUE(encode_reflection(parsed, buffer, kReflection, Mode::kUnauthenticated, nullptr, buffer).ok());
  EXPECT_EQ(buffer, expected);
}

TEST(StampCodecTest, ReplyLengthAlwaysEqualsRequestLength) {
  const HmacKey key = test_key();
  for (Mode mode : {Mode::kUnauthenticated, Mode::kAuthenticated}) {
    const Bytes& base = mode == Mode::kAuthenticated ? kSenderAuthNtp : kSenderUnauthNtp;
    for (size_t extra : {0, 1, 2, 3, 4, 5, 17, 100, 1400}) {
      Bytes request = base;
      for (size_t i = 0; i < extra; ++i) request.push_back(static_cast<uint8_t>(i * 37 + 11));
      const Reflection reflection = reflect(request, mode, &key);
      EXPECT_EQ(reflection.reply.size(), request.size());
      EXPECT_TRUE(decode_reflected_packet(reflection.reply, mode, &key).ok);
    }
  }
}

// ---- Key files and names --------------------------------------------------------------------------------

class KeyFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    path_ = ::testing::TempDir() + "hubprobe_key_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override {
    if (!path_.empty()) std::remove(path_.c_str());
  }
  std::string path_;
};

TEST_F(KeyFileTest, HexWithWhitespaceIsRead) {
  auto key = load_key_file(write("00010203 04050607\n08090a0b0C0D0E0F\r\n  1011\n"));
  ASSERT_TRUE(key.ok()) << key.error().message;
  ASSERT_EQ(key->bytes.size(), 18u);
  for (uint8_t i = 0; i < 18; ++i) EXPECT_EQ(key->bytes[i], i);
}

TEST_F(KeyFileTest, BadKeysAreRefused) {
  EXPECT_FALSE(load_key_file(write("000102030405060708090a0b0c0d0e")).ok());     // 15 octets
  EXPECT_FALSE(load_key_file(write("000102030405060708090a0b0c0d0e0f1")).ok());  // odd digit count
  auto bad_digit = load_key_file(write("000102030405060708090a0b0c0d0e0g"));
  ASSERT_FALSE(bad_digit.ok());
  EXPECT_NE(bad_digit.error().message.find("hexadecimal"), std::string::npos);
  EXPECT_FALSE(load_key_file(write("")).ok());
  EXPECT_FALSE(load_key_file("/nonexistent/hubprobe.key").ok());
}

TEST(StampCodecTest, ParseErrorNames) {
  EXPECT_STREQ(to_string(ParseError::kTooShort), "too_short");
  EXPECT_STREQ(to_string(ParseError::kTooLong), "too_long");
  EXPECT_STREQ(to_string(ParseError::kBadHmac), "bad_hmac");
  EXPECT_STREQ(to_string(ParseError::kMalformedTlv), "malformed_tlv");
}

// The SSID where RFC 8972 puts it: octets 14-15 (unauthenticated) and 26-27 (authenticated).
TEST(StampCodecTest, SsidIsReadWhereTheWireHeaderPutsIt) {
  std::vector<uint8_t> packet(112, 0);
  packet[14] = 0x12;
  packet[15] = 0x34;
  packet[26] = 0xab;
  packet[27] = 0xcd;
  EXPECT_EQ(read_ssid(packet, Mode::kUnauthenticated), 0x1234);
  EXPECT_EQ(read_ssid(packet, Mode::kAuthenticated), 0xabcd);
  EXPECT_EQ(read_ssid(std::span<const uint8_t>(packet).first(15), Mode::kUnauthenticated), std::nullopt);
  EXPECT_EQ(read_ssid(std::span<const uint8_t>(packet).first(27), Mode::kAuthenticated), std::nullopt);
}

}  // namespace
}  // namespace hubprobe::stamp
