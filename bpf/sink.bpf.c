// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sink.bpf.c — the send-only benchmark sink: XDP_DROP every frame that
 * arrives on the interface it is attached to (the target's veth), counting
 * frames and bytes per CPU so the benchmark can read how many arrived.
 *
 * ARP and IPv6 neighbour discovery pass to the kernel uncounted: the sink is a
 * next hop behind which every target is silent, and a next hop answers ARP
 * and NDP (a scanner whose uplink watch saw it stop answering would hold).
 */
#include "common.h"

enum sink_stat {
	SINK_FRAMES = 0,
	SINK_BYTES = 1,
	SINK_STAT_MAX = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SINK_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sink_stats SEC(".maps");

/* ARP, or an ICMPv6 neighbour solicitation/advertisement (no extension headers). */
static __always_inline int is_neighbour_discovery(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return 1;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return 0;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	__u8 *icmp = (void *)(ip6 + 1);
	if ((void *)(icmp + 1) > data_end || ip6->nexthdr != IPPROTO_ICMPV6)
		return 0;
	return icmp[0] == 135 || icmp[0] == 136;
}

SEC("xdp")
int prtip_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (is_neighbour_discovery(data, data_end))
		return XDP_PASS;
	__u32 k = SINK_FRAMES;
	__u64 *v = bpf_map_lookup_elem(&sink_stats, &k);
	if (v)
		*v += 1;
	k = SINK_BYTES;
	v = bpf_map_lookup_elem(&sink_stats, &k);
	if (v)
		*v += ctx->data_end - ctx->data;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
