// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sink.bpf.c — the send-only benchmark sink: XDP_DROP every frame that
 * arrives on the interface it is attached to (the target's veth), counting
 * frames and bytes per CPU so the benchmark can read how many arrived.
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

SEC("xdp")
int prtip_sink(struct xdp_md *ctx)
{
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
