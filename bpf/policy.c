/* The Policy stage (owned by the Policy subsystem), in slot CILIUM_STAGE_POLICY
 * of cilium_calls while the subsystem is enabled.
 *
 * For each packet: replies of tracked connections pass. Otherwise the egress
 * policy of the sending endpoint (when the packet leaves a local workload)
 * and the ingress policy of the receiving endpoint (when it is a local
 * workload) decide; a packet both allow opens a connection. Every packet that
 * is not a reply is checked, so a policy change applies to open connections
 * too, as upstream's datapath does. */
#include "lib/common.h"
#include "lib/pipeline.h"
#include "lib/endpoints.h"
#include "lib/conntrack.h"
#include "lib/policy.h"

char LICENSE[] SEC("license") = "GPL";

/* Reports the verdict of a new connection (or an audited one) with the rule
 * that decided it; a drop goes through drop_packet_dir with its reason, the
 * direction that decided it and the rule. Returns -1 dropped (the caller
 * returns TC_ACT_SHOT), 1 allowed and reported, 0 allowed. */
static __always_inline int enforce(struct __sk_buff *skb, const struct packet_tuple *t, int ct,
				   __u16 endpoint_id, __u8 direction, __u32 peer_identity)
{
	struct policy_result res;
	policy_decide(skb, t, endpoint_id, direction, peer_identity, &res);
	if (!res.allowed) {
		drop_packet_dir(skb, CILIUM_STAGE_POLICY, res.reason, direction, t, res.rule_id);
		return -1;
	}
	if (res.audited) {
		emit_event_full(skb, CILIUM_EVENT_POLICY_VERDICT, CILIUM_STAGE_POLICY, res.reason, direction,
				CILIUM_EVENT_F_AUDIT, t, res.rule_id);
		return 1;
	}
	if (ct == CT_NEW && res.enforced) {
		emit_event_full(skb, CILIUM_EVENT_POLICY_VERDICT, CILIUM_STAGE_POLICY, 0, direction, 0, t, res.rule_id);
		return 1;
	}
	return 0;
}

SEC("tc")
int cil_stage_policy(struct __sk_buff *skb)
{
	struct packet_tuple t = {};
	if (parse_ipv4(skb, &t) <= 0)
		return pipeline_next(skb);
	stage_account(skb, CILIUM_STAGE_POLICY);
	int ct = ct_lookup(&t);
	/* A reply the load balancer already rewrote (backend -> frontend
	 * address) no longer matches the connection's tuple; it said so. */
	if (ct == CT_REPLY || (skb->cb[CILIUM_CB_HOOK] >> CILIUM_CB_FLAGS_SHIFT) & CILIUM_CB_F_LB_REPLY)
		return pipeline_next(skb);

	__u32 src_identity = skb->cb[CILIUM_CB_SRC_IDENTITY];
	__u32 dst_identity = skb->cb[CILIUM_CB_DST_IDENTITY];
	int reported = 0, r;
	/* No endpoint of the node has policy: nothing to look up per endpoint. */
	__u32 zero = 0;
	__u32 *node = bpf_map_lookup_elem(&cilium_policy_node, &zero);
	if (node && *node == CILIUM_POLICY_NODE_NONE)
		goto track;
	/* Egress: the packet is leaving a workload of this node (its veth's ingress). */
	if (skb->cb[CILIUM_CB_DIRECTION] == CILIUM_DIR_EGRESS && (skb->cb[CILIUM_CB_HOOK] & CILIUM_CB_HOOK_MASK) == CILIUM_HOOK_TC_INGRESS) {
		struct endpoint_value *src = local_workload(t.saddr);
		if (src) {
			if ((r = enforce(skb, &t, ct, src->endpoint_id, CILIUM_DIR_EGRESS, dst_identity)) < 0)
				return TC_ACT_SHOT;
			reported |= r;
		}
	}
	/* Ingress: the packet is for a workload of this node. */
	struct endpoint_value *dst = local_workload(t.daddr);
	if (dst) {
		if ((r = enforce(skb, &t, ct, dst->endpoint_id, CILIUM_DIR_INGRESS, src_identity)) < 0)
			return TC_ACT_SHOT;
		reported |= r;
	}

track:
	if (ct == CT_NEW) {
		ct_create(&t, src_identity);
		/* Later stages report what they do to a connection once, on its first packet. */
		CB_SET(skb, CILIUM_CB_HOOK, skb->cb[CILIUM_CB_HOOK] | (CILIUM_CB_F_NEW << CILIUM_CB_FLAGS_SHIFT));
		/* A new connection no policy spoke about is still a flow. */
		if (!reported)
			emit_event(skb, CILIUM_EVENT_TRACE, CILIUM_STAGE_POLICY, 0, &t, 0);
	}
	return pipeline_next(skb);
}
