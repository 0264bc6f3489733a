/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only) */
/*
 * STAMP (RFC 8762, RFC 8972) wire layout: the one definition shared by the C++ codec and the BPF
 * programs. Plain C, no libc: include <linux/types.h> or <stdint.h>-style __u8/__be16 types before it.
 * All multi-byte fields are big-endian on the wire.
 */
/* Kernel style, shared with bpf/: not reformatted as C++. */
/* clang-format off */
#ifndef HUBPROBE_STAMP_WIRE_H
#define HUBPROBE_STAMP_WIRE_H

#define STAMP_DEFAULT_PORT 862

/* Base packet sizes. Replies are always exactly as long as the request. */
#define STAMP_UNAUTH_BASE_LEN 44
#define STAMP_AUTH_BASE_LEN 112
#define STAMP_HMAC_LEN 16
/* The HMAC covers everything before it: the first 96 octets of an authenticated base packet. */
#define STAMP_AUTH_HMAC_OFFSET 96

/* Error Estimate (RFC 4656 section 4.1.2): S(1) Z(1) Scale(6) Multiplier(8). */
#define STAMP_EE_S_BIT 0x8000
#define STAMP_EE_Z_BIT 0x4000
#define STAMP_EE_SCALE_MASK 0x3f00
#define STAMP_EE_SCALE_SHIFT 8
#define STAMP_EE_MULT_MASK 0x00ff

/* RFC 8972 TLV header: Flags(8) Type(8) Length(16, value octets). */
#define STAMP_TLV_HDR_LEN 4
#define STAMP_TLV_FLAG_U 0x80 /* unrecognized */
#define STAMP_TLV_FLAG_M 0x40 /* malformed */
#define STAMP_TLV_FLAG_I 0x20 /* integrity check failed */

/* RFC 8972 TLV types (IANA "STAMP TLV Types"). */
#define STAMP_TLV_EXTRA_PADDING 1
#define STAMP_TLV_LOCATION 2
#define STAMP_TLV_TIMESTAMP_INFO 3
#define STAMP_TLV_CLASS_OF_SERVICE 4
#define STAMP_TLV_DIRECT_MEASUREMENT 5
#define STAMP_TLV_ACCESS_REPORT 6
#define STAMP_TLV_FOLLOWUP_TELEMETRY 7
#define STAMP_TLV_HMAC 8

struct stamp_timestamp {
	__be32 seconds;
	__be32 fraction; /* NTP: 2^-32 s units; PTPv2 truncated: nanoseconds */
} __attribute__((packed));

/* RFC 8762 section 4.2.1 with RFC 8972 SSID: 44 octets. */
struct stamp_sender_unauth {
	__be32 seq;
	struct stamp_timestamp timestamp;
	__be16 error_estimate;
	__be16 ssid;
	__u8 mbz[28];
} __attribute__((packed));

/* RFC 8762 section 4.3.1 with RFC 8972 SSID: 44 octets. */
struct stamp_reflector_unauth {
	__be32 seq;
	struct stamp_timestamp timestamp; /* T3 */
	__be16 error_estimate;
	__be16 ssid;
	struct stamp_timestamp receive_timestamp; /* T2 */
	__be32 sender_seq;
	struct stamp_timestamp sender_timestamp; /* T1 */
	__be16 sender_error_estimate;
	__u8 mbz1[2];
	__u8 sender_ttl;
	__u8 mbz2[3];
} __attribute__((packed));

/* RFC 8762 section 4.2.2 with RFC 8972 SSID: 112 octets. */
struct stamp_sender_auth {
	__be32 seq;
	__u8 mbz1[12];
	struct stamp_timestamp timestamp;
	__be16 error_estimate;
	__be16 ssid;
	__u8 mbz2[68];
	__u8 hmac[STAMP_HMAC_LEN];
} __attribute__((packed));

/* RFC 8762 section 4.3.2 with RFC 8972 SSID: 112 octets. */
struct stamp_reflector_auth {
	__be32 seq;
	__u8 mbz1[12];
	struct stamp_timestamp timestamp; /* T3 */
	__be16 error_estimate;
	__be16 ssid;
	__u8 mbz2[4];
	struct stamp_timestamp receive_timestamp; /* T2 */
	__u8 mbz3[8];
	__be32 sender_seq;
	__u8 mbz4[12];
	struct stamp_timestamp sender_timestamp; /* T1 */
	__be16 sender_error_estimate;
	__u8 mbz5[6];
	__u8 sender_ttl;
	__u8 mbz6[15];
	__u8 hmac[STAMP_HMAC_LEN];
} __attribute__((packed));

struct stamp_tlv_hdr {
	__u8 flags;
	__u8 type;
	__be16 length;
} __attribute__((packed));

#ifdef __cplusplus
static_assert(sizeof(struct stamp_sender_unauth) == STAMP_UNAUTH_BASE_LEN, "RFC 8762 4.2.1");
static_assert(sizeof(struct stamp_reflector_unauth) == STAMP_UNAUTH_BASE_LEN, "RFC 8762 4.3.1");
static_assert(sizeof(struct stamp_sender_auth) == STAMP_AUTH_BASE_LEN, "RFC 8762 4.2.2");
static_assert(sizeof(struct stamp_reflector_auth) == STAMP_AUTH_BASE_LEN, "RFC 8762 4.3.2");
#else
_Static_assert(sizeof(struct stamp_sender_unauth) == STAMP_UNAUTH_BASE_LEN, "RFC 8762 4.2.1");
_Static_assert(sizeof(struct stamp_reflector_unauth) == STAMP_UNAUTH_BASE_LEN, "RFC 8762 4.3.1");
_Static_assert(sizeof(struct stamp_sender_auth) == STAMP_AUTH_BASE_LEN, "RFC 8762 4.2.2");
_Static_assert(sizeof(struct stamp_reflector_auth) == STAMP_AUTH_BASE_LEN, "RFC 8762 4.3.2");
#endif

#endif /* HUBPROBE_STAMP_WIRE_H */
/* clang-format on */
