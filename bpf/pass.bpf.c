// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pass.bpf.c — XDP_PASS everything. Attached to the scanner's veth when the
 * lab's target answers with XDP_TX (responder.bpf.c): on kernel 6.18 frames
 * XDP_TX'd into a veth are delivered to the peer only when the peer has an XDP
 * program of its own. Counts frames per CPU.
 */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pass_stats SEC(".maps");

SEC("xdp")
int prtip_pass(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&pass_stats, &k);
	if (v)
		*v += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
