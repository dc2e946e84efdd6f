// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policer.bpf.c — the lab's SYN policer (`prtip lab up --policer RATE/BURST`),
 * a test-only component attached to the target's veth: it drops TCP SYNs
 * (SYN set, ACK clear; IPv4 and IPv6) above a token-bucket rate, as a policer
 * on a real path would, and passes everything else to the target's kernel.
 *
 * The bucket holds up to `burst` tokens and gains `rate` tokens per second
 * (bpf_ktime_get_ns); a SYN passes when a whole token is there and takes it.
 * Tokens are kept in nano-tokens (1 token = 10^9) so refill needs no division
 * on the fast path. One bucket for all CPUs, under a spin lock.
 *
 * It may police only the SYNs to one network (`--policer-net`): the
 * configuration's `family` (0: every destination, 4 or 6) and a network and
 * mask as four big-endian words (IPv4: the first word only); a SYN to any
 * other destination passes without touching the bucket and is counted apart.
 *
 * Configuration lives in the array map `policer_cfg` (rate, burst, generation,
 * the network) that prtip-xdp writes at attach time and whenever the rate
 * changes; a new generation refills the bucket and restarts its bookkeeping. The bucket's
 * state (`policer_state`) records, for the current generation, the times of
 * the first and latest SYN seen and the nano-tokens lost to the cap (refill
 * that found the bucket full), so a test can check exactly that
 *   passed * 10^9 + tokens_left = burst * 10^9 + rate * (last - first) - lost.
 * Counters (per CPU, `policer_stats`): SYNs passed, SYNs dropped, other
 * frames, SYNs outside the policed network.
 */
#include "common.h"

#define NS_PER_SEC 1000000000ULL
#define ETH_P_IPV6_BE 0x86DD

struct policer_cfg {
	__u64 rate;       /* tokens (SYNs) per second */
	__u64 burst;      /* bucket size in tokens */
	__u64 generation; /* bumped by userspace on every change */
	__u32 family;     /* 0: police every SYN; 4 / 6: only those to the network */
	__u32 pad;
	__u32 net[4];     /* network, big-endian words (IPv4: net[0]) */
	__u32 mask[4];    /* its mask, likewise */
};

struct policer_state {
	struct bpf_spin_lock lock;
	__u64 generation; /* of the configuration the bucket follows */
	__u64 tokens;     /* nano-tokens */
	__u64 last_ns;    /* last refill */
	__u64 first_ns;   /* first SYN of this generation */
	__u64 lost;       /* nano-tokens of refill lost to the cap */
	__u64 passed;     /* SYNs passed in this generation */
	__u64 dropped;    /* SYNs dropped in this generation */
};

/* Only the fields the program reads: fixed IPv6 header, no extension headers. */
struct prtip_ipv6hdr {
	__u8 vtc;
	__u8 flow[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

enum policer_stat {
	POL_SYN_PASSED = 0,
	POL_SYN_DROPPED = 1,
	POL_OTHER = 2,
	POL_SYN_OUTSIDE = 3,
	POL_STAT_MAX = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, POL_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} policer_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct policer_cfg);
} policer_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct policer_state);
} policer_state SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&policer_stats, &idx);
	if (v)
		*v += 1;
}

/* Whether the destination `dst` (`words` big-endian words) lies in the
 * configured network of `family`. */
static __always_inline int in_net(const struct policer_cfg *cfg, __u32 family,
				  const __u32 *dst, int words)
{
	if (cfg->family == 0)
		return 1;
	if (cfg->family != family)
		return 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < 4; i++) {
		if (i < words && ((dst[i] ^ cfg->net[i]) & cfg->mask[i]))
			return 0;
	}
	return 1;
}

/* The TCP header of an IPv4 or IPv6 (no extension headers) TCP frame, or NULL;
 * `*inside` tells whether its destination is in the policed network. */
static __always_inline struct tcphdr *tcp_of(void *data, void *data_end, int *inside)
{
	__u32 zero = 0, dst[4];
	struct policer_cfg *cfg = bpf_map_lookup_elem(&policer_cfg, &zero);
	if (!cfg)
		return NULL;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return NULL;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return NULL;
		if (ip->protocol != IPPROTO_TCP || ipv4_is_later_fragment(ip))
			return NULL;
		struct tcphdr *th = (void *)ip + ip->ihl * 4;
		if ((void *)(th + 1) > data_end)
			return NULL;
		dst[0] = ip->daddr;
		*inside = in_net(cfg, 4, dst, 1);
		return th;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6_BE)) {
		struct prtip_ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end || (ip6->vtc >> 4) != 6)
			return NULL;
		if (ip6->nexthdr != IPPROTO_TCP)
			return NULL;
		struct tcphdr *th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > data_end)
			return NULL;
		__builtin_memcpy(dst, ip6->daddr, 16);
		*inside = in_net(cfg, 6, dst, 4);
		return th;
	}
	return NULL;
}

/* Take a token if there is one; 1 = pass. */
static __always_inline int take_token(void)
{
	__u32 zero = 0;
	struct policer_cfg *cfg = bpf_map_lookup_elem(&policer_cfg, &zero);
	struct policer_state *st = bpf_map_lookup_elem(&policer_state, &zero);
	if (!cfg || !st)
		return 1;
	__u64 rate = cfg->rate, burst = cfg->burst, gen = cfg->generation;
	__u64 cap = burst * NS_PER_SEC;
	__u64 now = bpf_ktime_get_ns();
	int pass;

	bpf_spin_lock(&st->lock);
	if (st->generation != gen) {
		st->generation = gen;
		st->tokens = cap;
		st->last_ns = now;
		st->first_ns = now;
		st->lost = 0;
		st->passed = 0;
		st->dropped = 0;
	}
	__u64 dt = now > st->last_ns ? now - st->last_ns : 0;
	st->last_ns = now;
	__u64 room = cap > st->tokens ? cap - st->tokens : 0;
	if (rate && dt > room / rate) {
		/* refill beyond the cap: what does not fit is lost. Kept exactly for
		 * gaps up to 8 s (rate <= 10^9, so rate * dt < 2^64); a longer gap
		 * makes `lost` saturate, which a test reads as "the books are off". */
		if (dt <= 8 * NS_PER_SEC && rate <= NS_PER_SEC && st->lost < (1ULL << 62))
			st->lost += rate * dt - room;
		else
			st->lost = ~0ULL;
		st->tokens = cap;
	} else {
		st->tokens += rate * dt;
	}
	if (st->tokens >= NS_PER_SEC) {
		st->tokens -= NS_PER_SEC;
		st->passed += 1;
		pass = 1;
	} else {
		st->dropped += 1;
		pass = 0;
	}
	bpf_spin_unlock(&st->lock);
	return pass;
}

SEC("xdp")
int prtip_policer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int inside = 0;
	struct tcphdr *th = tcp_of(data, data_end, &inside);

	if (!th || (tcp_flags(th) & (PRTIP_TCP_SYN | PRTIP_TCP_ACK)) != PRTIP_TCP_SYN) {
		count(POL_OTHER);
		return XDP_PASS;
	}
	if (!inside) {
		count(POL_SYN_OUTSIDE);
		return XDP_PASS;
	}
	if (take_token()) {
		count(POL_SYN_PASSED);
		return XDP_PASS;
	}
	count(POL_SYN_DROPPED);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
