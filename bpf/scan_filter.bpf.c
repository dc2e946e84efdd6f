// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * scan_filter.bpf.c — the scanner-side XDP program of `prtip scan --xdp`.
 *
 * Redirects into the AF_XDP socket of the receiving queue (XSKMAP `xsks`,
 * key = rx queue index) only the frames that answer our probes:
 *   - TCP and UDP addressed to our source-port range [sport_lo, sport_hi]
 *     (and to our address, when one is configured);
 *   - ICMP errors (unreachable, time exceeded, parameter problem, source quench)
 *     whose quoted datagram is one of our TCP/UDP probes (quoted source port in
 *     our range, quoted source address ours);
 *   - ICMP echo, timestamp and address mask replies whose identifier is in our
 *     source-port range (host discovery carries the cookie's port there);
 *   - with `v6` set, instead, the same over IPv6 (no extension headers) to our IPv6
 *     address `our_addr6`: TCP and UDP to our ports, and ICMPv6 errors
 *     (destination unreachable, packet too big, time exceeded, parameter
 *     problem) quoting one of our probes, and ICMPv6 echo replies whose
 *     identifier is in our source-port range; no IPv4 frame is taken.
 * Everything else — ARP, NDP, other flows of the host, later fragments — is
 * XDP_PASS'ed to the kernel untouched. When no socket is bound on a queue the
 * redirect falls back to XDP_PASS too, so the program alone is a pass-through.
 *
 * Configured once at load time through read-only globals (rodata): the Rust
 * loader (prtip-xdp) sets them before the object is loaded.
 */
#include "common.h"

/* First and last source port our probes use (host byte order, inclusive). */
const volatile __u16 sport_lo = 1;
const volatile __u16 sport_hi = 0;
/* Our IPv4 address in network byte order; 0 accepts any destination address. */
const volatile __u32 our_addr = 0;
/* 1: take IPv6 replies to our_addr6 too (0: IPv6 is passed to the kernel). */
const volatile __u8 v6 = 0;
/* Our IPv6 address (network byte order), with v6 set. */
const volatile __u8 our_addr6[16] = {};

/* One AF_XDP socket per receive queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* Per-CPU counters; indices below (read and summed by prtip-xdp). */
enum filter_stat {
	FILTER_REDIRECT_TCP = 0,
	FILTER_REDIRECT_UDP = 1,
	FILTER_REDIRECT_ICMP = 2,
	FILTER_PASS = 3,
	FILTER_NO_SOCKET = 4,
	FILTER_STAT_MAX = 5,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FILTER_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} filter_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&filter_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline int ours(__u16 port_be)
{
	__u16 p = bpf_ntohs(port_be);
	return p >= sport_lo && p <= sport_hi;
}

static __always_inline int to_us(__u32 addr_be)
{
	return our_addr == 0 || addr_be == our_addr;
}

static __always_inline int redirect(struct xdp_md *ctx, __u32 stat)
{
	int act = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	count(act == XDP_REDIRECT ? stat : FILTER_NO_SOCKET);
	return act;
}

/* Does this ICMP error quote one of our probes? `inner` points after the ICMP header. */
static __always_inline int quotes_our_probe(void *inner, void *data_end)
{
	struct iphdr *qip = inner;
	if ((void *)(qip + 1) > data_end)
		return 0;
	if (qip->version != 4 || qip->ihl < 5)
		return 0;
	if (qip->protocol != IPPROTO_TCP && qip->protocol != IPPROTO_UDP)
		return 0;
	if (!to_us(qip->saddr))
		return 0;
	/* The quoted L4 header starts after the quoted IP header (options included);
	 * only its first 4 bytes (the ports) are needed and always quoted. */
	__u32 ihl = (qip->ihl & 0x0f) * 4;
	__u16 *ports = (void *)qip + ihl;
	if ((void *)(ports + 2) > data_end)
		return 0;
	return ours(ports[0]);
}

/* Is `a` (16 bytes, bounds checked by the caller) our IPv6 address? */
static __always_inline int is_our_addr6(const __u8 *a)
{
#pragma clang loop unroll(full)
	for (int i = 0; i < 16; i++)
		if (a[i] != our_addr6[i])
			return 0;
	return 1;
}

/* Does this ICMPv6 error quote one of our probes? `inner` points after the
 * 8-byte ICMPv6 header: the quoted IPv6 header (no extension headers) and at
 * least the 4 bytes of ports. */
static __always_inline int quotes_our_probe6(void *inner, void *data_end)
{
	struct ipv6hdr *qip = inner;
	if ((void *)(qip + 1) > data_end)
		return 0;
	if (qip->nexthdr != IPPROTO_TCP && qip->nexthdr != IPPROTO_UDP)
		return 0;
	if (!is_our_addr6((const __u8 *)&qip->saddr))
		return 0;
	__u16 *ports = (void *)(qip + 1);
	if ((void *)(ports + 2) > data_end)
		return 0;
	return ours(ports[0]);
}

/* The IPv6 half: frames whose Ethernet type is IPv6. */
static __always_inline int filter_ipv6(struct xdp_md *ctx, struct ipv6hdr *ip6, void *data_end)
{
	if ((void *)(ip6 + 1) > data_end || !is_our_addr6((const __u8 *)&ip6->daddr))
		return -1;
	void *l4 = ip6 + 1;
	switch (ip6->nexthdr) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end)
			return -1;
		if (ours(th->dest))
			return redirect(ctx, FILTER_REDIRECT_TCP);
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > data_end)
			return -1;
		if (ours(uh->dest))
			return redirect(ctx, FILTER_REDIRECT_UDP);
		break;
	}
	case IPPROTO_ICMPV6: {
		struct prtip_icmphdr *ih = l4;
		if ((void *)(ih + 1) > data_end)
			return -1;
		if (ih->type >= ICMPV6_DEST_UNREACH && ih->type <= ICMPV6_PARAMPROB &&
		    quotes_our_probe6((void *)(ih + 1), data_end))
			return redirect(ctx, FILTER_REDIRECT_ICMP);
		/* Host discovery's echo replies: the identifier is our port. */
		if (ih->type == ICMPV6_ECHO_REPLY && ours(ih->id))
			return redirect(ctx, FILTER_REDIRECT_ICMP);
		break;
	}
	}
	return -1;
}

SEC("xdp")
int prtip_scan_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		goto pass;
	if (v6) {
		/* An IPv6 scan takes nothing of IPv4: the host's own flows stay its own. */
		if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
			int act = filter_ipv6(ctx, (void *)(eth + 1), data_end);
			if (act >= 0)
				return act;
		}
		goto pass;
	}
	struct iphdr *ip = ipv4_after_eth(data, data_end, &eth);

	if (!ip || ipv4_is_later_fragment(ip) || !to_us(ip->daddr))
		goto pass;

	void *l4 = (void *)ip + (ip->ihl & 0x0f) * 4;
	switch (ip->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end)
			goto pass;
		if (ours(th->dest))
			return redirect(ctx, FILTER_REDIRECT_TCP);
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > data_end)
			goto pass;
		if (ours(uh->dest))
			return redirect(ctx, FILTER_REDIRECT_UDP);
		break;
	}
	case IPPROTO_ICMP: {
		struct prtip_icmphdr *ih = l4;
		if ((void *)(ih + 1) > data_end)
			goto pass;
		switch (ih->type) {
		case ICMP_ECHOREPLY:
		case ICMP_TIMESTAMPREPLY:
		case ICMP_ADDRESSREPLY:
			if (ours(ih->id))
				return redirect(ctx, FILTER_REDIRECT_ICMP);
			break;
		case ICMP_DEST_UNREACH:
		case ICMP_SOURCE_QUENCH:
		case ICMP_TIME_EXCEEDED:
		case ICMP_PARAMETERPROB:
			if (quotes_our_probe((void *)(ih + 1), data_end))
				return redirect(ctx, FILTER_REDIRECT_ICMP);
			break;
		}
		break;
	}
	}
pass:
	count(FILTER_PASS);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
