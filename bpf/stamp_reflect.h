/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared by the XDP STAMP program (stamp_reflect.bpf.c) and its user-space loaders: the
 * load-time configuration (.rodata), the run-time state user space writes (.bss), the keys of the
 * maps user space fills or reads, and the counter indices. This is the only definition; C++
 * includes it before stamp_reflect.skel.h, whose rodata/bss structs name these types without
 * redefining them.
 *
 * The program has two jobs on one interface:
 *   reflector  unauthenticated STAMP to the configured port is answered in place (XDP_TX),
 *              stateless or stateful, behind an allow list and a per-source rate limit;
 *   RX stamper replies to this host's own session-senders (UDP to a registered port) get their
 *              ingress time (T4) recorded in a map, and go on to the socket untouched (XDP_PASS).
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

/* Stateful sessions are forgotten after this long without a request, as by the SessionReflector. */
#define STAMP_REFLECT_DEFAULT_SESSION_IDLE_S 300

/* Default bounds of the LRU maps (user space may set others between open() and load()). */
#define STAMP_REFLECT_DEFAULT_MAX_SESSIONS 65536
#define STAMP_REFLECT_DEFAULT_MAX_RATE_BUCKETS 65536
#define STAMP_REFLECT_DEFAULT_MAX_RX_STAMPS 65536
/* Bound of each allow-list trie. */
#define STAMP_REFLECT_MAX_ALLOW_PREFIXES 4096

/*
 * Addresses the reflector answers on (the hash map `listen_addrs`, keyed by the 16-octet address,
 * IPv4 as ::ffff:a.b.c.d): a request to any other destination address goes to the stack. The
 * unspecified address of a family stands for every address of it: ::ffff:0.0.0.0 for IPv4, :: for
 * IPv6. After load both are in the map.
 */
#define STAMP_REFLECT_MAX_LISTEN 64

/* Load-time settings: the .rodata global `stamp_reflect_config`, set between open() and load(). */
struct stamp_reflect_config {
	__u16 port; /* UDP port of the reflector, host byte order */
	__u8 pad0;
	__u8 reply_ttl;	       /* IPv4 TTL / IPv6 hop limit of replies */
	__u8 timestamp_format; /* enum stamp_reflect_timestamp_format */
	__u8 pad[3];
	/*
	 * Stateful mode: a session not seen for this long (monotonic clock) starts again at
	 * sequence number 0, as the user-space SessionReflector forgets it.
	 */
	__u32 session_idle_s;
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
	/*
	 * Tests only: when non-zero, the program's monotonic clock (rate-limit buckets, session
	 * idle time) reads this value instead of bpf_ktime_get_ns(), so time can be driven exactly.
	 */
	__u64 mono_override_ns;
};

/*
 * Whether the program answers requests to the port (struct stamp_reflect_policy.reflect). The
 * zero value, the state after load, is the fail-safe one: every request goes to the stack.
 */
enum stamp_reflect_mode {
	STAMP_REFLECT_OFF =
	    0, /* pass requests to the stack (the reflector is not answering here) */
	STAMP_REFLECT_ANSWER = 1, /* answer unauthenticated STAMP with XDP_TX */
	STAMP_REFLECT_AUTH = 2,	  /* authenticated mode, which XDP never does: pass to the stack */
};

/* Which allow list applies (struct stamp_reflect_policy.allow_list). */
enum stamp_reflect_allow_list {
	STAMP_REFLECT_ALLOW_ALL = 0,	/* no list: every source is answered */
	STAMP_REFLECT_ALLOW_LIST_0 = 1, /* sources in the LPM trie allow_list_0 */
	STAMP_REFLECT_ALLOW_LIST_1 = 2, /* sources in the LPM trie allow_list_1 */
};

/*
 * Run-time policy: the .bss global `stamp_reflect_policy`. Eight octets, 8-aligned, written by user
 * space with one 64-bit store and read by the program with one 64-bit load, so a packet sees either
 * the whole old policy or the whole new one. Two allow-list tries make a list change atomic too:
 * user space fills the one not in use, then stores a policy naming it. (A packet that read the
 * policy just before a change and looks its trie up only after the next change, which refills that
 * trie, can see a partial list: changes microseconds apart are not meant to be atomic.)
 */
struct stamp_reflect_policy {
	/*
	 * Requests per second per source address (one-second token bucket, starting full, refilled
	 * continuously on the monotonic clock); 0 = unlimited. Applies to the requests the program
	 * answers; what it passes to the stack is the socket reflector's to limit.
	 */
	__u32 rate_limit_pps;
	__u8 stateful;	 /* 1: the reflector's own sequence number per session (RFC 8762 4.2) */
	__u8 allow_list; /* enum stamp_reflect_allow_list */
	__u8 reflect;	 /* enum stamp_reflect_mode */
	__u8 pad;
} __attribute__((aligned(8)));

/*
 * An address as every map key holds it: IPv6, or IPv4 as an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d), network byte order.
 */
#define STAMP_REFLECT_ADDR_LEN 16
/* Prefix length of ::ffff:0:0/96, the IPv4-mapped range: an IPv4 /n is a key of length 96 + n. */
#define STAMP_REFLECT_V4_MAPPED_PREFIX_LEN 96

/*
 * Key of the allow-list LPM tries (allow_list_0, allow_list_1; value: __u8, ignored). The source
 * address of a request to the port is looked up with prefixlen 128. A source not in the list in use
 * is dropped and counted (dropped_not_allowed), whatever the request is: the socket reflector would
 * drop it too.
 */
struct stamp_reflect_prefix {
	__u32 prefixlen; /* bits of addr that count, 0..128 */
	__u8 addr[STAMP_REFLECT_ADDR_LEN];
};

/*
 * Key of the stateful sessions (LRU hash `sessions`, max entries set at load): the same session as
 * the user-space SessionReflector's, the request's source and destination socket addresses and its
 * SSID (the destination port is the program's one port, so it is left out). The reflector's
 * sequence numbers of a session count from 0.
 */
struct stamp_reflect_session_key {
	__u8 source[STAMP_REFLECT_ADDR_LEN];
	__u8 destination[STAMP_REFLECT_ADDR_LEN];
	__be16 source_port;
	__be16 ssid;
};

/*
 * Sender RX stamps. User space registers the local UDP port of each of its session-sender sockets
 * by setting bit (port % 64) of word (port / 64) of the .bss array `stamp_reflect_sender_ports`
 * (atomic OR / AND-NOT: no system call, one load per packet in the program). A UDP datagram to a
 * registered port that carries at least the 44-octet base of a reflector packet gets its ingress
 * time recorded in the LRU hash `rx_stamps` and is passed on untouched; only unicast IPv4 without
 * options and IPv6 without extension headers are stamped (the sender falls back to its socket's
 * timestamp for the rest).
 *
 * Key: what the sender knows after recvmsg(): its own local port and, from the reply, the SSID and
 * the Session-Sender Sequence Number (the reflector packet's sender_seq field), all in host byte
 * order. The agent's senders share a port only between sessions of different SSIDs, so the key is
 * unique while the sequence number does not wrap.
 * Value: __u64, the raw CLOCK_TAI time in nanoseconds (bpf_ktime_get_tai_ns(), no offset: it needs
 * no published clock state). CLOCK_REALTIME = value + (CLOCK_REALTIME - CLOCK_TAI).
 * The sender looks the key up and deletes it (BPF_MAP_LOOKUP_AND_DELETE_ELEM); a stamp never taken
 * is evicted by the LRU.
 */
#define STAMP_REFLECT_PORT_WORDS (65536 / 64)
struct stamp_reflect_rx_key {
	__u16 local_port; /* UDP destination port of the reply */
	__u16 ssid;
	__u32 sender_seq;
};

/*
 * Per-CPU counters (BPF_MAP_TYPE_PERCPU_ARRAY `counters`: one __u64 per index and CPU). Every
 * packet the program sees increments exactly one of them:
 *   reflected            sent back with XDP_TX
 *   passed_not_stamp     not a unicast UDP datagram to the port or to a registered sender port
 *                        with a reflector packet: other traffic, fragments, IPv6 extension
 *                        headers, truncated headers (the stack drops and counts those)
 *   passed_auth          to the port, but the reflector runs in authenticated mode
 *   passed_off           to the port, but the policy says the reflector is not answering here
 *   passed_other_address to the port, at an address the reflector does not listen on (listen_addrs)
 *   passed_short         UDP payload shorter than the 44-octet base packet
 *   passed_tlv           non-zero octets after the base (RFC 8972 TLVs, authenticated packets),
 *                        or zero padding longer than STAMP_REFLECT_MAX_ZERO_PADDING: user space
 *   passed_ip_options    IPv4 options (source routes, record route...): the stack's policy applies
 *   passed_bad_csum      UDP checksum wrong, or only partial (locally generated with TX offload)
 *   passed_no_clock      user space has not published the clock state yet
 *   passed_map_full      an LRU map (sessions, rate-limit buckets, RX stamps) refused a new entry
 *   dropped_malformed    to the port, but the UDP length exceeds the IP payload or the frame,
 *                        or the source port is 0
 *   dropped_not_allowed  to the port, from a source outside the allow list in use
 *   dropped_rate_limited to the port, over its source's rate limit
 *   stamped_rx           a reply to a registered sender port: T4 recorded, passed on
 * X(ENUM_SUFFIX, metric_name) keeps the enum and the names in one list.
 */
#define STAMP_REFLECT_COUNTERS(X)                                                                  \
	X(REFLECTED, reflected)                                                                    \
	X(PASSED_NOT_STAMP, passed_not_stamp)                                                      \
	X(PASSED_AUTH, passed_auth)                                                                \
	X(PASSED_OFF, passed_off)                                                                  \
	X(PASSED_OTHER_ADDRESS, passed_other_address)                                              \
	X(PASSED_SHORT, passed_short)                                                              \
	X(PASSED_TLV, passed_tlv)                                                                  \
	X(PASSED_IP_OPTIONS, passed_ip_options)                                                    \
	X(PASSED_BAD_CSUM, passed_bad_csum)                                                        \
	X(PASSED_NO_CLOCK, passed_no_clock)                                                        \
	X(PASSED_MAP_FULL, passed_map_full)                                                        \
	X(DROPPED_MALFORMED, dropped_malformed)                                                    \
	X(DROPPED_NOT_ALLOWED, dropped_not_allowed)                                                \
	X(DROPPED_RATE_LIMITED, dropped_rate_limited)                                              \
	X(STAMPED_RX, stamped_rx)

enum stamp_reflect_counter {
#define STAMP_REFLECT_COUNTER_ENUM(id, name) STAMP_REFLECT_##id,
	STAMP_REFLECT_COUNTERS(STAMP_REFLECT_COUNTER_ENUM)
#undef STAMP_REFLECT_COUNTER_ENUM
	    STAMP_REFLECT_COUNTER_MAX,
};

#endif /* HUBPROBE_BPF_STAMP_REFLECT_H */
