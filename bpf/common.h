/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * common.h — small helpers shared by prtip's XDP programs: header views with
 * bounds checks the verifier accepts, and Internet checksum folding.
 * Owns nothing else: no maps, no program sections.
 */
#ifndef PRTIP_BPF_COMMON_H
#define PRTIP_BPF_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PRTIP_TCP_FIN 0x01
#define PRTIP_TCP_SYN 0x02
#define PRTIP_TCP_RST 0x04
#define PRTIP_TCP_PSH 0x08
#define PRTIP_TCP_ACK 0x10

/* ICMPv4 (linux/icmp.h drags in libc socket headers, which do not build for BPF). */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMP_TIMESTAMPREPLY 14
#define ICMP_ADDRESSREPLY 18

/* ICMPv6 error types (linux/icmpv6.h has the same values). */
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ECHO_REPLY 129

struct prtip_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;   /* echo: identifier; errors: unused */
	__be16 seq;  /* echo: sequence;   errors: unused */
};

/* Byte 13 of the TCP header holds the flags (CWR ECE URG ACK PSH RST SYN FIN). */
static __always_inline __u8 tcp_flags(const struct tcphdr *th)
{
	return ((const __u8 *)th)[13];
}

/* Fold a 32-bit one's complement accumulator into 16 bits and complement it. */
static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Sum of the 16-bit words of a 20-byte header in memory (IPv4 header, TCP header without options). */
static __always_inline __u32 csum_words20(const void *hdr)
{
	const __u16 *w = hdr;
	__u32 sum = 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < 10; i++)
		sum += w[i];
	return sum;
}

/* Locate the IPv4 header after an untagged Ethernet header; NULL if not IPv4 or truncated. */
static __always_inline struct iphdr *ipv4_after_eth(void *data, void *data_end, struct ethhdr **eth_out)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return NULL;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return NULL;
	if (ip->version != 4 || ip->ihl < 5)
		return NULL;
	*eth_out = eth;
	return ip;
}

/* True when the IPv4 packet is a non-first fragment (no L4 header to look at). */
static __always_inline int ipv4_is_later_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(0x1fff)) != 0;
}

#endif /* PRTIP_BPF_COMMON_H */
