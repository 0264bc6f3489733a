/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared by the XDP STAMP reflector (stamp_reflect.bpf.c) and its user-space loaders: the
 * load-time configuration (.rodata), the run-time clock state (.bss) and the counter indices. This
 * is the only definition; C++ includes it before stamp_reflect.skel.h, whose rodata/bss structs
 * name these types without redefining them.
 */
#ifndef HUBPROBE_BPF_STAMP_REFLECT_H
#define HUBPROBE_BPF_STAMP_REFLECT_H

/* The BPF side gets __u16 and friends from vmlinux.h, which must not meet the UAPI headers. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Timestamp format written into T2 and T3 (RFC 8762 section 4.2.1, Z bit of the Error Estimate). */
enum stamp_reflect_timestamp_format {
	STAMP_REFLECT_TS_NTP = 0, /* seconds since 1900 (UTC) + 2^-32 s fraction */
	STAMP_REFLECT_TS_PTP = 1, /* PTPv2 truncated: seconds since 1970 (TAI) + nanoseconds */
};

/*
 * Longest zero padding after the 44-octet base that XDP checks and reflects: a full 1500-octet IPv4
 * frame (1500 - 20 - 8 - 44 = 1428) rounded up to 8. Longer packets go to user space.
 */
#define STAMP_REFLECT_MAX_ZERO_PADDING 1432

/*
 * Default TTL / hop limit of reflected packets: what a Linux socket sends, so that an XDP reply and
 * a user-space reply look the same to the session-sender.
 */
#define STAMP_REFLECT_DEFAULT_REPLY_TTL 64

/* Load-time settings: the .rodata global `stamp_reflect_config`, set between open() and load(). */
struct stamp_reflect_config {
	__u16 port; /* UDP port of the reflector, host byte order */
	/*
	 * 1: reflect unauthenticated STAMP in XDP. 0 (the default, fail-safe): pass every packet to
	 * the port to the stack, e.g. because the reflector runs in authenticated mode, which XDP
	 * never does.
	 */
	__u8 reflect_unauth;
	__u8 reply_ttl;	       /* IPv4 TTL / IPv6 hop limit of replies */
	__u8 timestamp_format; /* enum stamp_reflect_timestamp_format */
	__u8 pad[3];
};

/*
 * Run-time clock state: the .bss global `stamp_reflect_clock`, written by user space through the
 * skeleton's memory-mapped .bss whenever the clock state changes (and periodically).
 *
 * XDP has no CLOCK_REALTIME. The program reads CLOCK_TAI (bpf_ktime_get_tai_ns(), kernel >= 6.1)
 * and adds offset_ns. CLOCK_TAI moves with CLOCK_REALTIME when the clock is stepped, so the offset
 * only changes with the kernel's TAI offset (adjtimex ADJ_TAI, leap seconds), unlike an offset
 * against CLOCK_MONOTONIC, which every clock step would invalidate until user space caught up.
 *   NTP format: offset_ns = CLOCK_REALTIME - CLOCK_TAI (0 or -37 s on most hosts), giving UTC.
 *   PTP format: offset_ns = CLOCK_REALTIME + (TAI - UTC) - CLOCK_TAI, giving true TAI even when
 *               the kernel's TAI offset was never set.
 * offset_ns is one aligned 64-bit store, so the program never sees a torn value.
 */
struct stamp_reflect_clock {
	__s64 offset_ns;
	/*
	 * RFC 4656 Error Estimate of this host's clock (S, Z, scale, multiplier), host byte order,
	 * computed in user space from adjtimex. RFC 4656 forbids a zero multiplier, so 0 here (the
	 * state after load) means "not published yet": the program passes STAMP packets to the
	 * stack until it is set.
	 */
	__u16 error_estimate;
	__u16 pad[3];
};

/*
 * Per-CPU counters (BPF_MAP_TYPE_PERCPU_ARRAY `counters`: one __u64 per index and CPU). Every
 * packet the program sees increments exactly one of them:
 *   reflected          sent back with XDP_TX
 *   passed_not_stamp   not a unicast UDP datagram to the port: other traffic, fragments, IPv6
 *                      extension headers, truncated headers (the stack drops and counts those)
 *   passed_auth        to the port, but reflect_unauth == 0
 *   passed_short       UDP payload shorter than the 44-octet base packet
 *   passed_tlv         non-zero octets after the base (RFC 8972 TLVs, authenticated packets),
 *                      or zero padding longer than STAMP_REFLECT_MAX_ZERO_PADDING: user space
 *   passed_ip_options  IPv4 options (source routes, record route...): the stack's policy applies
 *   passed_bad_csum    UDP checksum wrong, or only partial (locally generated with TX offload)
 *   passed_no_clock    user space has not published the clock state yet
 *   dropped_malformed  to the port, but the UDP length exceeds the IP payload or the frame, or the
 *                      source port is 0
 * X(ENUM_SUFFIX, metric_name) keeps the enum and the names in one list.
 */
#define STAMP_REFLECT_COUNTERS(X)                                                                  \
	X(REFLECTED, reflected)                                                                    \
	X(PASSED_NOT_STAMP, passed_not_stamp)                                                      \
	X(PASSED_AUTH, passed_auth)                                                                \
	X(PASSED_SHORT, passed_short)                                                              \
	X(PASSED_TLV, passed_tlv)                                                                  \
	X(PASSED_IP_OPTIONS, passed_ip_options)                                                    \
	X(PASSED_BAD_CSUM, passed_bad_csum)                                                        \
	X(PASSED_NO_CLOCK, passed_no_clock)                                                        \
	X(DROPPED_MALFORMED, dropped_malformed)

enum stamp_reflect_counter {
#define STAMP_REFLECT_COUNTER_ENUM(id, name) STAMP_REFLECT_##id,
	STAMP_REFLECT_COUNTERS(STAMP_REFLECT_COUNTER_ENUM)
#undef STAMP_REFLECT_COUNTER_ENUM
	    STAMP_REFLECT_COUNTER_MAX,
};

#endif /* HUBPROBE_BPF_STAMP_REFLECT_H */
