// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * XDP STAMP session-reflector (RFC 8762, unauthenticated, stateless or stateful, RFC 8972 SSID)
 * and RX stamper for this host's own session-senders (see stamp_reflect.h).
 *
 * Unicast UDP to the configured port over Ethernet (+ at most one 802.1Q/802.1ad tag) and IPv4
 * without options or IPv6 without extension headers, carrying a base packet of at least 44 octets
 * followed only by zero padding, is answered in place with XDP_TX: MACs, addresses and ports
 * swapped, the reflector fields written over the sender packet, checksums fixed. The frame keeps
 * its length and VLAN tag, so the reply follows the request's L2 path back (the previous hop's MAC
 * becomes the destination). Everything else is passed to the stack, where the user-space reflector
 * answers what XDP does not: authenticated mode, TLVs, IPv4 options, fragments, bad checksums.
 *
 * In front of the reflection, as in the socket reflector: an allow list of source prefixes (any
 * request from elsewhere is dropped) and a per-source rate limit (requests over it are dropped).
 *
 * T2 is taken once the packet is known to be for the port (so other traffic never pays for a clock
 * read), T3 after all other rewriting: only writing T3 and adding it to the UDP checksum follow it.
 *
 * A datagram to a registered sender port is not reflected: its ingress time is recorded for the
 * sender (T4) and it is passed on unchanged.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "hubprobe/stamp_wire.h"
#include "stamp_reflect.h"

/* UAPI macros that vmlinux.h (types only) does not carry. */
#define ETH_ALEN 6
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#define NSEC_PER_SEC 1000000000ULL
/* Seconds from 1900-01-01 (NTP era 0) to 1970-01-01. */
#define NTP_UNIX_EPOCH_DELTA 2208988800ULL

/* UDP header (8) + base packet: the part of the datagram that is summed and rewritten. */
#define STAMP_UDP_BASE_LEN (8 + STAMP_UNAUTH_BASE_LEN)

/*
 * The wire structs are packed, so clang would access their fields byte by byte (4 loads and 3
 * shifts per 32-bit field). Every field is naturally aligned from the start of the UDP payload,
 * which the verifier's NET_IP_ALIGN model treats as 4-aligned (x86 and arm64 do not care anyway),
 * so fields are accessed through typed pointers at the structs' own offsets: one load or store
 * each. The types are may_alias: the same octets are written as 16-bit fields and summed as 32-bit
 * words, and without it clang may move the loads of the sum before the stores.
 */
typedef __u8 __attribute__((may_alias)) wire_u8;
typedef __u16 __attribute__((may_alias)) wire_u16;
typedef __u32 __attribute__((may_alias)) wire_u32;
#define WIRE(type, base, wire_struct, member)                                                      \
	(*(type *)((void *)(base) + __builtin_offsetof(struct wire_struct, member)))
#define ASSERT_ALIGNED(wire_struct, member, align)                                                 \
	_Static_assert(__builtin_offsetof(struct wire_struct, member) % (align) == 0,              \
		       #wire_struct "." #member " is not " #align "-aligned")
ASSERT_ALIGNED(stamp_sender_unauth, timestamp, 4);
ASSERT_ALIGNED(stamp_sender_unauth, error_estimate, 2);
ASSERT_ALIGNED(stamp_sender_unauth, ssid, 2);
ASSERT_ALIGNED(stamp_reflector_unauth, timestamp, 4);
ASSERT_ALIGNED(stamp_reflector_unauth, error_estimate, 2);
ASSERT_ALIGNED(stamp_reflector_unauth, ssid, 2);
ASSERT_ALIGNED(stamp_reflector_unauth, receive_timestamp, 4);
ASSERT_ALIGNED(stamp_reflector_unauth, sender_seq, 4);
ASSERT_ALIGNED(stamp_reflector_unauth, sender_timestamp, 4);
ASSERT_ALIGNED(stamp_reflector_unauth, sender_error_estimate, 2);
_Static_assert(STAMP_UNAUTH_BASE_LEN % 4 == 0, "base packet is zeroed and summed in 32-bit words");

const volatile struct stamp_reflect_config stamp_reflect_config = {
    .port = STAMP_DEFAULT_PORT,
    .reply_ttl = STAMP_REFLECT_DEFAULT_REPLY_TTL,
    .timestamp_format = STAMP_REFLECT_TS_NTP,
    .session_idle_s = STAMP_REFLECT_DEFAULT_SESSION_IDLE_S,
};

/* Written by user space through the mmap()ed .bss; see stamp_reflect.h. */
struct stamp_reflect_clock stamp_reflect_clock;
struct stamp_reflect_policy stamp_reflect_policy;
__u64 stamp_reflect_sender_ports[STAMP_REFLECT_PORT_WORDS];

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAMP_REFLECT_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* The two allow lists: user space fills the one the policy does not name, then switches. */
#define ALLOW_LIST_MAP(name)                                                                       \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                                               \
		__uint(max_entries, STAMP_REFLECT_MAX_ALLOW_PREFIXES);                             \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
		__type(key, struct stamp_reflect_prefix);                                          \
		__type(value, __u8);                                                               \
	} name SEC(".maps")
ALLOW_LIST_MAP(allow_list_0);
ALLOW_LIST_MAP(allow_list_1);

/* An address as a map key (IPv4 mapped into IPv6). */
struct source_key {
	__u8 addr[STAMP_REFLECT_ADDR_LEN];
};

/* The addresses answered on; see STAMP_REFLECT_MAX_LISTEN. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STAMP_REFLECT_MAX_LISTEN);
	__type(key, struct source_key);
	__type(value, __u8);
} listen_addrs SEC(".maps");

/* Stateful mode: the next reflector sequence number of each session. */
struct session {
	__u32 next_seq;
	__u32 pad;
	__u64 last_seen_ns; /* monotonic */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STAMP_REFLECT_DEFAULT_MAX_SESSIONS);
	__type(key, struct stamp_reflect_session_key);
	__type(value, struct session);
} sessions SEC(".maps");

/*
 * Rate limit: one bucket per source address. A token bucket of `rate` tokens refilled at `rate`
 * per second is kept as its theoretical arrival time (GCRA): the instant at which the bucket would
 * be full again, tat. A request at `now` is admitted when tat - now <= 1 s - 1/rate, and then moves
 * tat to max(tat, now) + 1/rate. One 64-bit word, so it is updated with compare-and-swap instead of
 * a lock (LRU hash values cannot hold a bpf_spin_lock). 1/rate is rounded down to the nanosecond.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STAMP_REFLECT_DEFAULT_MAX_RATE_BUCKETS);
	__type(key, struct source_key);
	__type(value, __u64); /* tat, monotonic ns */
} rate_buckets SEC(".maps");

/* Sender RX stamps; see stamp_reflect.h for the key and the lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STAMP_REFLECT_DEFAULT_MAX_RX_STAMPS);
	__type(key, struct stamp_reflect_rx_key);
	__type(value, __u64); /* CLOCK_TAI ns */
} rx_stamps SEC(".maps");

struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* One reflection: what the IP layer says of the datagram, then what finish_reflection() needs. */
struct reflection {
	struct udphdr *udp;
	/* Addresses and source port; the SSID once it is read. */
	struct stamp_reflect_session_key session;
	__u32 ip_payload_len;	/* what the IP header claims follows it */
	__u32 pseudo_sum;	/* pseudo-header sum, 32-bit (unchanged by the address swap) */
	__u8 ttl;		/* TTL / hop limit as received */
	bool checksum_required; /* IPv6; IPv4 allows "no checksum" (0) */
	__u64 sum;		/* UDP checksum sum of the reply without T3 */
	__s64 offset_ns;	/* clock offset read once for T2 and T3 */
};

static __always_inline int count(__u32 index, int action)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &index);

	if (value)
		*value += 1; /* per-CPU: no atomics needed */
	return action;
}

/* Folds a sum of 16/32-bit memory images to 32 bits without losing carries. */
static __always_inline __u32 csum_fold32(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return (__u32)sum;
}

/* The 16-bit one's complement checksum of a sum: 0 when the summed data held a valid checksum. */
static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * Unfolded one's complement sum of the UDP header and the base packet as 32-bit memory images.
 * Inline rather than bpf_csum_diff(): the helper cost ~60 ns per call here, more than everything
 * else the reflector does.
 */
static __always_inline __u64 sum_udp_base(const void *udp)
{
	const wire_u32 *word = udp;
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < STAMP_UDP_BASE_LEN / 4; i++)
		sum += word[i];
	return sum;
}

/* Clock time on the STAMP time scale; see struct stamp_reflect_clock for the offset. */
static __always_inline void to_wire_timestamp(__u64 tai_ns, __s64 offset_ns, __be32 *seconds,
					      __be32 *fraction)
{
	__u64 ns = tai_ns + (__u64)offset_ns;
	/* Division by constants: the verifier accepts BPF_DIV with a non-zero immediate. */
	__u64 sec = ns / NSEC_PER_SEC;
	__u64 rem = ns - sec * NSEC_PER_SEC;

	if (stamp_reflect_config.timestamp_format == STAMP_REFLECT_TS_PTP) {
		*seconds = bpf_htonl((__u32)sec);
		*fraction = bpf_htonl((__u32)rem);
	} else {
		/*
		 * Rounded like the user-space codec, so both paths write the same value for the
		 * same instant. rem < 2^30, so rem << 32 cannot overflow, and rem <= 999999999
		 * rounds to at most 2^32 - 4: no carry into the seconds. NTP seconds wrap in 2036
		 * (era 1) by design.
		 */
		__u64 frac = ((rem << 32) + NSEC_PER_SEC / 2) / NSEC_PER_SEC;

		*seconds = bpf_htonl((__u32)(sec + NTP_UNIX_EPOCH_DELTA));
		*fraction = bpf_htonl((__u32)frac);
	}
}

/* The monotonic clock of the rate limit and the session idle time (tests may drive it). */
static __always_inline __u64 mono_ns(void)
{
	__u64 now = *(volatile __u64 *)&stamp_reflect_clock.mono_override_ns;

	return now ? now : bpf_ktime_get_ns();
}

/* The policy as one 64-bit load: all of the old one or all of the new one. */
static __always_inline struct stamp_reflect_policy read_policy(void)
{
	__u64 word = *(volatile __u64 *)&stamp_reflect_policy;
	struct stamp_reflect_policy policy;

	_Static_assert(sizeof(policy) == sizeof(word), "the policy is read as one word");
	__builtin_memcpy(&policy, &word, sizeof(policy));
	return policy;
}

/* The destination is an address the reflector listens on, or the listen set has its family's
 * wildcard. */
static __always_inline bool listening_on(const __u8 *destination)
{
	struct source_key key = {};
	int i;

	__builtin_memcpy(key.addr, destination, STAMP_REFLECT_ADDR_LEN);
	if (bpf_map_lookup_elem(&listen_addrs, &key))
		return true;
	/* The family's unspecified address: :: or ::ffff:0.0.0.0. */
	for (i = 12; i < STAMP_REFLECT_ADDR_LEN; i++)
		key.addr[i] = 0;
	if (!(key.addr[10] == 0xff && key.addr[11] == 0xff))
		__builtin_memset(key.addr, 0, STAMP_REFLECT_ADDR_LEN);
	for (i = 0; i < 10; i++)
		if (key.addr[i])
			__builtin_memset(key.addr, 0, STAMP_REFLECT_ADDR_LEN);
	return bpf_map_lookup_elem(&listen_addrs, &key) != NULL;
}

static __always_inline bool source_allowed(__u8 allow_list, const __u8 *source)
{
	struct stamp_reflect_prefix key = {.prefixlen = 8 * STAMP_REFLECT_ADDR_LEN};

	if (allow_list == STAMP_REFLECT_ALLOW_ALL)
		return true;
	__builtin_memcpy(key.addr, source, STAMP_REFLECT_ADDR_LEN);
	if (allow_list == STAMP_REFLECT_ALLOW_LIST_0)
		return bpf_map_lookup_elem(&allow_list_0, &key) != NULL;
	if (allow_list == STAMP_REFLECT_ALLOW_LIST_1)
		return bpf_map_lookup_elem(&allow_list_1, &key) != NULL;
	return false;
}

enum admission { ADMITTED, OVER_LIMIT, NO_BUCKET };

/* Bounded retries of the compare-and-swap; losing all of them means a flood from one source. */
#define BUCKET_CAS_TRIES 4

/* Takes one token from the bucket of `source` (see rate_buckets), creating a full one if needed. */
static __always_inline enum admission take_token(const __u8 *source, __u32 rate, __u64 now)
{
	__u64 interval = NSEC_PER_SEC / rate; /* rate != 0: checked by the caller */
	__u64 tolerance = NSEC_PER_SEC - interval;
	struct source_key key;
	__u64 *tat, seen, next;
	int i;

	__builtin_memcpy(key.addr, source, STAMP_REFLECT_ADDR_LEN);
	tat = bpf_map_lookup_elem(&rate_buckets, &key);
	if (!tat) {
		next = now + interval; /* a full bucket less this request's token */
		if (bpf_map_update_elem(&rate_buckets, &key, &next, BPF_NOEXIST) == 0)
			return ADMITTED;
		tat = bpf_map_lookup_elem(&rate_buckets, &key); /* another CPU made it first */
		if (!tat)
			return NO_BUCKET;
	}
	for (i = 0; i < BUCKET_CAS_TRIES; i++) {
		seen = *(volatile __u64 *)tat;
		if (seen > now && seen - now > tolerance)
			return OVER_LIMIT;
		next = (seen > now ? seen : now) + interval;
		if (__sync_val_compare_and_swap(tat, seen, next) == seen)
			return ADMITTED;
	}
	return OVER_LIMIT;
}

/*
 * Stateful mode: the reflector sequence number for the request's session, counting from 0 (a new
 * session, or one idle for longer than session_idle_s). Returns false when the map refused a new
 * session.
 */
static __always_inline bool next_session_seq(const struct stamp_reflect_session_key *key, __u64 now,
					     __u32 *seq)
{
	__u64 idle_ns = (__u64)stamp_reflect_config.session_idle_s * NSEC_PER_SEC;
	struct session *session = bpf_map_lookup_elem(&sessions, key);

	if (!session) {
		struct session fresh = {.next_seq = 1, .last_seen_ns = now};

		if (bpf_map_update_elem(&sessions, key, &fresh, BPF_NOEXIST) == 0) {
			*seq = 0;
			return true;
		}
		session = bpf_map_lookup_elem(&sessions, key); /* another CPU made it first */
		if (!session)
			return false;
	}
	if (now > session->last_seen_ns && now - session->last_seen_ns > idle_ns)
		session->next_seq = 0;
	session->last_seen_ns = now;
	*seq = __sync_fetch_and_add(&session->next_seq, 1);
	return true;
}

/* A datagram to a port that is not the reflector's: T4 for a registered sender, else nothing. */
static __always_inline int stamp_sender_rx(struct udphdr *udp, void *data_end)
{
	__u16 port = bpf_ntohs(udp->dest);
	__u64 word = stamp_reflect_sender_ports[port / 64];
	struct stamp_reflect_rx_key key;
	void *reply = udp + 1;
	__u64 t4_ns;

	if (!(word & (1ULL << (port % 64))))
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	t4_ns = bpf_ktime_get_tai_ns();
	if (reply + STAMP_UNAUTH_BASE_LEN > data_end || bpf_ntohs(udp->len) < STAMP_UDP_BASE_LEN)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	key.local_port = port;
	key.ssid = bpf_ntohs(WIRE(wire_u16, reply, stamp_reflector_unauth, ssid));
	key.sender_seq = bpf_ntohl(WIRE(wire_u32, reply, stamp_reflector_unauth, sender_seq));
	if (bpf_map_update_elem(&rx_stamps, &key, &t4_ns, BPF_ANY) != 0)
		return count(STAMP_REFLECT_PASSED_MAP_FULL, XDP_PASS);
	return count(STAMP_REFLECT_STAMPED_RX, XDP_PASS);
}

/* An IPv4 address as a map key holds it: ::ffff:a.b.c.d. */
static __always_inline void map_ipv4(__u8 *out, __be32 addr)
{
	wire_u32 *word = (wire_u32 *)out;

	word[0] = 0;
	word[1] = 0;
	word[2] = bpf_htonl(0xffff);
	word[3] = addr;
}

/*
 * Checks that the `len` octets at `offset` (the end of the base packet up to the end of the UDP
 * datagram) are all zero: plain padding, which an RFC 8972 reflector copies unchanged. Anything
 * else (TLVs, an authenticated packet's fields and HMAC) is left to user space, and so is padding
 * longer than STAMP_REFLECT_MAX_ZERO_PADDING.
 *
 * A global function, so the verifier checks it once with unknown arguments instead of once per
 * inlined call path (VLAN or not, IPv4 or IPv6), which multiplied by the loop exceeded its budget.
 * Returns 1 when the padding is zero, 0 otherwise. The arguments are 64-bit on purpose: clang
 * re-zero-extends 32-bit ones after the range checks, and the verifier then loses the bounds.
 */
__noinline int stamp_reflect_padding_is_zero(struct xdp_md *ctx, __u64 offset, __u64 len)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	void *padding;
	__u64 i;

	if (len == 0)
		return 1;
	/*
	 * The padding starts right after the headers and the base (at most 110 octets in). The
	 * explicit bound keeps offset + len far below the verifier's 64 KiB packet-offset limit.
	 */
	if (len > STAMP_REFLECT_MAX_ZERO_PADDING || offset > 255)
		return 0;
	padding = data + offset;

	if (len < 8) {
		for (i = 0; i < 7; i++) {
			__u8 *byte = padding + i;

			if (i >= len)
				break;
			if ((void *)(byte + 1) > data_end || *byte)
				return 0;
		}
		return 1;
	}
	/* Whole words, then the last 8 octets (overlapping the previous word when len % 8 != 0). */
	for (i = 0; i < STAMP_REFLECT_MAX_ZERO_PADDING / 8; i++) {
		__u64 *word = padding + i * 8;

		if (i * 8 + 8 > len)
			break;
		if ((void *)(word + 1) > data_end || *word)
			return 0;
	}
	/* barrier_var: computed as one offset, or clang folds it into a negative pointer offset. */
	i = offset + len - 8;
	barrier_var(i);
	padding = data + i;
	if (padding + 8 > data_end || *(__u64 *)padding)
		return 0;
	return 1;
}

/*
 * The rate limit, then the reflector's sequence number (the sender's own when stateless), for a
 * request that is otherwise answered. Returns XDP_TX with *reflector_seq set, or the counted
 * action.
 */
static __always_inline int admit_and_number(struct reflection *in,
					    struct stamp_reflect_policy policy, __be32 seq,
					    __be16 ssid, __u32 *reflector_seq)
{
	__u64 now = 0;

	if (policy.rate_limit_pps || policy.stateful)
		now = mono_ns();
	if (policy.rate_limit_pps) {
		enum admission admission;

		admission = take_token(in->session.source, policy.rate_limit_pps, now);
		if (admission == OVER_LIMIT)
			return count(STAMP_REFLECT_DROPPED_RATE_LIMITED, XDP_DROP);
		if (admission == NO_BUCKET)
			return count(STAMP_REFLECT_PASSED_MAP_FULL, XDP_PASS);
	}
	*reflector_seq = bpf_ntohl(seq);
	if (policy.stateful) {
		in->session.ssid = ssid;
		if (!next_session_seq(&in->session, now, reflector_seq))
			return count(STAMP_REFLECT_PASSED_MAP_FULL, XDP_PASS);
	}
	return XDP_TX;
}

/*
 * The part shared by IPv4 and IPv6: UDP to the port, and STAMP. Returns the XDP action, counted
 * unless it is XDP_TX; then the datagram is rewritten except for T3 and the UDP checksum, the
 * caller swaps the L2 and L3 addresses, and finish_reflection() completes the reply.
 */
static __always_inline int prepare_reflection(struct xdp_md *ctx, struct reflection *in,
					      void *data_end)
{
	struct udphdr *udp = in->udp;
	struct stamp_sender_unauth *request;
	__be32 seq, t1_seconds, t1_fraction;
	__be32 t2_seconds, t2_fraction;
	__be16 t1_error_estimate, ssid, port;
	struct stamp_reflect_policy policy;
	__u32 udp_len, reflector_seq;
	__u16 error_estimate;
	int action, i;
	__u64 t2_ns;
	void *reply;

	policy = read_policy();
	if (policy.reflect != STAMP_REFLECT_ANSWER)
		return count(policy.reflect == STAMP_REFLECT_AUTH ? STAMP_REFLECT_PASSED_AUTH
								  : STAMP_REFLECT_PASSED_OFF,
			     XDP_PASS);
	if (!listening_on(in->session.destination))
		return count(STAMP_REFLECT_PASSED_OTHER_ADDRESS, XDP_PASS);

	t2_ns = bpf_ktime_get_tai_ns();

	udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(*udp) || udp_len > in->ip_payload_len ||
	    (void *)udp + udp_len > data_end || udp->source == 0)
		return count(STAMP_REFLECT_DROPPED_MALFORMED, XDP_DROP);
	if (!source_allowed(policy.allow_list, in->session.source))
		return count(STAMP_REFLECT_DROPPED_NOT_ALLOWED, XDP_DROP);
	if (udp_len < STAMP_UDP_BASE_LEN)
		return count(STAMP_REFLECT_PASSED_SHORT, XDP_PASS);

	request = (void *)(udp + 1);
	if ((void *)(request + 1) > data_end) /* implied by udp_len; the verifier needs it */
		return count(STAMP_REFLECT_DROPPED_MALFORMED, XDP_DROP);
	if (!stamp_reflect_padding_is_zero(ctx, (void *)(request + 1) - (void *)(long)ctx->data,
					   udp_len - STAMP_UDP_BASE_LEN))
		return count(STAMP_REFLECT_PASSED_TLV, XDP_PASS);

	/*
	 * Verify the request's checksum before writing a fresh one: a corrupted request must not
	 * become a well-formed reply. Zero padding adds nothing to the sum. IPv4 may carry no
	 * checksum (0); an IPv6 datagram without one is invalid and the stack drops it. A partial
	 * checksum (a local sender with TX offload, e.g. over veth) also fails here and is answered
	 * by user space instead.
	 */
	if (udp->check || in->checksum_required) {
		if (csum_fold(in->pseudo_sum + sum_udp_base(udp)) != 0)
			return count(STAMP_REFLECT_PASSED_BAD_CSUM, XDP_PASS);
	}

	error_estimate = *(volatile __u16 *)&stamp_reflect_clock.error_estimate;
	if ((error_estimate & STAMP_EE_MULT_MASK) == 0)
		return count(STAMP_REFLECT_PASSED_NO_CLOCK, XDP_PASS);
	in->offset_ns = *(volatile __s64 *)&stamp_reflect_clock.offset_ns;

	seq = WIRE(wire_u32, request, stamp_sender_unauth, seq);
	t1_seconds = WIRE(wire_u32, request, stamp_sender_unauth, timestamp.seconds);
	t1_fraction = WIRE(wire_u32, request, stamp_sender_unauth, timestamp.fraction);
	t1_error_estimate = WIRE(wire_u16, request, stamp_sender_unauth, error_estimate);
	ssid = WIRE(wire_u16, request, stamp_sender_unauth, ssid);

	action = admit_and_number(in, policy, seq, ssid, &reflector_seq);
	if (action != XDP_TX)
		return action;

	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	udp->check = 0;

	to_wire_timestamp(t2_ns, in->offset_ns, &t2_seconds, &t2_fraction);

	/* All MBZ octets and T3 start as zero. */
	reply = request;
#pragma unroll
	for (i = 0; i < STAMP_UNAUTH_BASE_LEN / 4; i++)
		((wire_u32 *)reply)[i] = 0;
	WIRE(wire_u32, reply, stamp_reflector_unauth, seq) = bpf_htonl(reflector_seq);
	WIRE(wire_u16, reply, stamp_reflector_unauth, error_estimate) = bpf_htons(error_estimate);
	WIRE(wire_u16, reply, stamp_reflector_unauth, ssid) = ssid;
	WIRE(wire_u32, reply, stamp_reflector_unauth, receive_timestamp.seconds) = t2_seconds;
	WIRE(wire_u32, reply, stamp_reflector_unauth, receive_timestamp.fraction) = t2_fraction;
	WIRE(wire_u32, reply, stamp_reflector_unauth, sender_seq) = seq;
	WIRE(wire_u32, reply, stamp_reflector_unauth, sender_timestamp.seconds) = t1_seconds;
	WIRE(wire_u32, reply, stamp_reflector_unauth, sender_timestamp.fraction) = t1_fraction;
	WIRE(wire_u16, reply, stamp_reflector_unauth, sender_error_estimate) = t1_error_estimate;
	WIRE(wire_u8, reply, stamp_reflector_unauth, sender_ttl) = in->ttl;

	/* Sum all but T3 (still zero): T3 is added last, so it is taken as late as possible. */
	in->sum = in->pseudo_sum + sum_udp_base(udp);
	return XDP_TX;
}

/* Takes T3, writes it, completes the UDP checksum. The last thing before XDP_TX. */
static __always_inline int finish_reflection(struct reflection *r)
{
	void *reply = r->udp + 1;
	__be32 t3_seconds, t3_fraction;
	__u64 sum = r->sum;

	count(STAMP_REFLECT_REFLECTED, XDP_TX);
	to_wire_timestamp(bpf_ktime_get_tai_ns(), r->offset_ns, &t3_seconds, &t3_fraction);
	WIRE(wire_u32, reply, stamp_reflector_unauth, timestamp.seconds) = t3_seconds;
	WIRE(wire_u32, reply, stamp_reflector_unauth, timestamp.fraction) = t3_fraction;
	sum += (__u32)t3_seconds;
	sum += (__u32)t3_fraction;
	r->udp->check = csum_fold(sum) ?: 0xffff; /* RFC 768: a computed 0 is sent as all ones */
	return XDP_TX;
}

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 mac[ETH_ALEN];

	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
}

static __always_inline int reflect_ipv4(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip,
					void *data_end)
{
	struct reflection in;
	__u32 ihl_len, tot_len;
	__u16 old_ttl_word, new_ttl_word;
	__be32 addr;
	__u32 sum;
	int action;

	if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	if (ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	/* Multicast and limited broadcast: a reply would come from that address. */
	if ((ip->daddr & bpf_htonl(0xf0000000)) == bpf_htonl(0xe0000000) || ip->daddr == 0xffffffff)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);

	ihl_len = ip->ihl * 4;
	tot_len = bpf_ntohs(ip->tot_len);
	in.udp = (void *)ip + ihl_len;
	in.ttl = ip->ttl;
	in.ip_payload_len = tot_len > ihl_len ? tot_len - ihl_len : 0;
	if ((void *)(in.udp + 1) > data_end)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	/* IHL is respected to find the port; options themselves stay the stack's business. */
	if (ihl_len > sizeof(*ip)) {
		if (in.udp->dest == bpf_htons(stamp_reflect_config.port))
			return count(STAMP_REFLECT_PASSED_IP_OPTIONS, XDP_PASS);
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	}
	if (in.udp->dest != bpf_htons(stamp_reflect_config.port))
		return stamp_sender_rx(in.udp, data_end);
	map_ipv4(in.session.source, ip->saddr);
	map_ipv4(in.session.destination, ip->daddr);
	in.session.source_port = in.udp->source;

	/*
	 * Pseudo-header: saddr, daddr, zero, protocol, UDP length. One's complement sums do not
	 * care where a 16-bit word sits, so the memory images are simply added.
	 */
	in.checksum_required = false;
	in.pseudo_sum =
	    csum_fold32((__u64)ip->saddr + ip->daddr + bpf_htons(IPPROTO_UDP) + in.udp->len);

	action = prepare_reflection(ctx, &in, data_end);
	if (action != XDP_TX)
		return action;

	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;

	/*
	 * RFC 1624 incremental update for the TTL; the address swap leaves the sum unchanged. A
	 * request with a wrong header checksum keeps a wrong one, and the next hop drops the reply.
	 */
	old_ttl_word = *(__u16 *)&ip->ttl;
	ip->ttl = stamp_reflect_config.reply_ttl;
	new_ttl_word = *(__u16 *)&ip->ttl;
	sum = (__u16)~ip->check + (__u16)~old_ttl_word + new_ttl_word;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = (__u16)~sum;

	swap_macs(eth);
	return finish_reflection(&in);
}

static __always_inline int reflect_ipv6(struct xdp_md *ctx, struct ethhdr *eth, struct ipv6hdr *ip6,
					void *data_end)
{
	struct reflection in;
	struct in6_addr addr;
	int action, i;
	__u64 sum;

	if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	/* No extension headers; a zero payload length is a jumbogram. */
	if (ip6->nexthdr != IPPROTO_UDP || ip6->payload_len == 0)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	if (ip6->daddr.in6_u.u6_addr8[0] == 0xff)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);

	in.udp = (void *)(ip6 + 1);
	in.ttl = ip6->hop_limit;
	in.ip_payload_len = bpf_ntohs(ip6->payload_len);
	in.checksum_required = true;
	if ((void *)(in.udp + 1) > data_end)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	if (in.udp->dest != bpf_htons(stamp_reflect_config.port))
		return stamp_sender_rx(in.udp, data_end);
	__builtin_memcpy(in.session.source, &ip6->saddr, STAMP_REFLECT_ADDR_LEN);
	__builtin_memcpy(in.session.destination, &ip6->daddr, STAMP_REFLECT_ADDR_LEN);
	in.session.source_port = in.udp->source;
	/* Pseudo-header: saddr, daddr, upper-layer length (the UDP length), zero, next header. */
	sum = bpf_htons(IPPROTO_UDP) + in.udp->len;
	for (i = 0; i < 4; i++)
		sum += (__u64)ip6->saddr.in6_u.u6_addr32[i] + ip6->daddr.in6_u.u6_addr32[i];
	in.pseudo_sum = csum_fold32(sum);

	action = prepare_reflection(ctx, &in, data_end);
	if (action != XDP_TX)
		return action;

	addr = ip6->saddr;
	ip6->saddr = ip6->daddr;
	ip6->daddr = addr;
	ip6->hop_limit = stamp_reflect_config.reply_ttl;

	swap_macs(eth);
	return finish_reflection(&in);
}

SEC("xdp")
int stamp_reflect_xdp(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__be16 proto;

	if (l3 > data_end)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
	/* A multicast/broadcast source MAC is invalid; never answer to it. */
	if (eth->h_source[0] & 1)
		return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);

	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *tag = l3;

		if ((void *)(tag + 1) > data_end)
			return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
		proto = tag->encapsulated_proto;
		l3 = tag + 1;
	}

	if (proto == bpf_htons(ETH_P_IP))
		return reflect_ipv4(ctx, eth, l3, data_end);
	if (proto == bpf_htons(ETH_P_IPV6))
		return reflect_ipv6(ctx, eth, l3, data_end);
	return count(STAMP_REFLECT_PASSED_NOT_STAMP, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
