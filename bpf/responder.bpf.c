// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * responder.bpf.c — the stateless line-rate target of the prtip lab
 * (`prtip lab up --responder xdp`), attached to the target's veth.
 *
 * Every TCP SYN (SYN set, ACK clear) to an address of the target network is
 * answered in place with XDP_TX, without the kernel's TCP stack:
 *   - destination port in the open set: SYN-ACK, seq = a keyed hash of the
 *     4-tuple (a SYN-cookie-like value), ack = their seq + 1, window 65535;
 *   - any other port: RST+ACK, seq 0, ack = their seq + 1, window 0.
 * The reply reuses the frame: MACs, addresses and ports swapped, TTL 64, DF,
 * IP id 0, no IP or TCP options, the frame trimmed to 54 bytes, both checksums
 * computed from scratch (incoming checksums may be CHECKSUM_PARTIAL on veth).
 * Everything else (ARP, non-SYN TCP, UDP, ICMP, other addresses, IP options,
 * fragments) is XDP_PASS'ed to the target namespace's kernel untouched.
 *
 * Configured at load time through read-only globals set by prtip-xdp:
 * the target network (address and mask, network byte order), the open TCP
 * ports (a 65536-bit bitmap, bit p = port p open) and the cookie key.
 * Note: XDP_TX'd frames reach the veth peer only if the peer has an XDP
 * program of its own (see pass.bpf.c).
 */
#include "common.h"

const volatile __u32 net_addr = 0;  /* network byte order */
const volatile __u32 net_mask = 0xffffffff; /* network byte order; default: matches nothing but net_addr */
const volatile __u32 cookie_key = 0x9e3779b9;
const volatile __u64 open_tcp[1024] = {};
/* Sparse mode: only addresses whose index in the target network is 1 modulo
 * live_every answer; SYNs to the others are dropped (1: every address answers). */
const volatile __u32 live_every = 1;

enum responder_stat {
	RESP_SYNACK = 0,
	RESP_RST = 1,
	RESP_PASS = 2,
	RESP_SILENT = 3,
	RESP_STAT_MAX = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RESP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} responder_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&responder_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline __u32 rol32(__u32 w, unsigned s)
{
	return (w << s) | (w >> (32 - s));
}

/* Bob Jenkins' final mix (as jhash_3words), keyed: deterministic per 4-tuple. */
static __always_inline __u32 cookie(__u32 a, __u32 b, __u32 c)
{
	a += cookie_key;
	b += cookie_key;
	c += cookie_key;
	c ^= b; c -= rol32(b, 14);
	a ^= c; a -= rol32(c, 11);
	b ^= a; b -= rol32(a, 25);
	c ^= b; c -= rol32(b, 16);
	a ^= c; a -= rol32(c, 4);
	b ^= a; b -= rol32(a, 14);
	c ^= b; c -= rol32(b, 24);
	return c;
}

static __always_inline int port_open(__u16 port)
{
	__u32 word = port >> 6;
	if (word >= 1024)
		return 0;
	return (open_tcp[word] >> (port & 63)) & 1;
}

SEC("xdp")
int prtip_responder(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth;
	struct iphdr *ip = ipv4_after_eth(data, data_end, &eth);

	if (!ip || ip->ihl != 5 || ip->protocol != IPPROTO_TCP || ipv4_is_later_fragment(ip))
		goto pass;
	if ((ip->daddr & net_mask) != (net_addr & net_mask))
		goto pass;
	struct tcphdr *th = (void *)(ip + 1);
	if ((void *)(th + 1) > data_end)
		goto pass;
	if ((tcp_flags(th) & (PRTIP_TCP_SYN | PRTIP_TCP_ACK | PRTIP_TCP_RST)) != PRTIP_TCP_SYN)
		goto pass;

	if (live_every > 1) {
		__u32 idx = bpf_ntohl(ip->daddr & ~net_mask);
		if (idx % live_every != 1) {
			count(RESP_SILENT);
			return XDP_DROP;
		}
	}

	int open = port_open(bpf_ntohs(th->dest));

	/* Ethernet: back where it came from. */
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	/* IPv4: swap addresses, fixed 40-byte datagram. */
	__u32 saddr = ip->saddr, daddr = ip->daddr;
	ip->saddr = daddr;
	ip->daddr = saddr;
	ip->tos = 0;
	ip->tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct tcphdr));
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->check = 0;
	ip->check = csum_fold32(csum_words20(ip));

	/* TCP: swap ports, answer the SYN, no options. */
	__u16 sport = th->source, dport = th->dest;
	__u32 their_seq = bpf_ntohl(th->seq);
	th->source = dport;
	th->dest = sport;
	th->ack_seq = bpf_htonl(their_seq + 1);
	/* data offset 5 words, then flags */
	((__u8 *)th)[12] = 5 << 4;
	if (open) {
		th->seq = bpf_htonl(cookie(daddr, saddr, ((__u32)dport << 16) | sport));
		((__u8 *)th)[13] = PRTIP_TCP_SYN | PRTIP_TCP_ACK;
		th->window = bpf_htons(65535);
	} else {
		th->seq = 0;
		((__u8 *)th)[13] = PRTIP_TCP_RST | PRTIP_TCP_ACK;
		th->window = 0;
	}
	th->urg_ptr = 0;
	th->check = 0;
	__u32 sum = csum_words20(th);
	sum += (daddr & 0xffff) + (daddr >> 16) + (saddr & 0xffff) + (saddr >> 16);
	sum += bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(struct tcphdr));
	th->check = csum_fold32(sum);

	/* Trim options/payload/padding: the reply is exactly Ethernet + IPv4 + TCP. */
	int len = (int)(data_end - data);
	int want = (int)(sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct tcphdr));
	if (len > want && bpf_xdp_adjust_tail(ctx, want - len) != 0)
		return XDP_ABORTED;

	count(open ? RESP_SYNACK : RESP_RST);
	return XDP_TX;
pass:
	count(RESP_PASS);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
