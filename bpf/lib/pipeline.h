/* The stage pipeline: the entry program sets cb[NEXT_STAGE] = 0 and calls
 * pipeline_next(); each stage does its work and calls pipeline_next() again.
 * Empty slots (disabled subsystems) are skipped. When no stage is left the
 * packet is forwarded. */
#ifndef CILIUM_LIB_PIPELINE_H
#define CILIUM_LIB_PIPELINE_H
#include "common.h"

static __always_inline void stage_account(struct __sk_buff *skb, __u32 stage)
{
	struct stage_stats *s = bpf_map_lookup_elem(&cilium_stage_stats, &stage);
	if (s) {
		s->packets += 1;
		s->bytes += skb->len;
	}
}

static __always_inline int pipeline_next(struct __sk_buff *skb)
{
	__u32 slot = skb->cb[CILIUM_CB_NEXT_STAGE];
#pragma unroll
	for (int i = 0; i < CILIUM_STAGE_MAX; i++) {
		if (slot >= CILIUM_STAGE_MAX)
			break;
		CB_SET(skb, CILIUM_CB_NEXT_STAGE, slot + 1);
		bpf_tail_call(skb, &cilium_calls, slot);
		/* Only reached when the slot is empty. */
		slot++;
	}
	count_metric(skb, CILIUM_REASON_FORWARDED, skb->cb[CILIUM_CB_DIRECTION]);
	return TC_ACT_OK;
}

/* A stage whose subsystem has no per-packet logic yet counts the packet and
 * hands it on; the subsystem's own issue replaces the body. */
#define CILIUM_PASS_STAGE(fn, stage)                             \
	SEC("tc") int fn(struct __sk_buff *skb)                      \
	{                                                            \
		stage_account(skb, stage);                               \
		return pipeline_next(skb);                               \
	}
#endif
