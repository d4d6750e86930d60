/* Policy lookup: which entry of cilium_policy decides a packet for one
 * endpoint in one direction. Two longest-prefix lookups, one for the peer's
 * identity and one for "any identity"; a deny from either wins, then an
 * allow, then the endpoint's default (deny when policy selects it). */
#ifndef CILIUM_LIB_POLICY_H
#define CILIUM_LIB_POLICY_H
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1 << 20);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65535);
	__type(key, __u16);
	__type(value, struct policy_ep_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_policy_ep SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32); /* enum cilium_policy_node_state */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_policy_node SEC(".maps");

struct policy_result {
	__u8  allowed;
	__u8  reason;   /* drop reason when not allowed */
	__u8  audited;  /* not allowed, but audit mode let it pass */
	__u8  enforced; /* a rule or default deny decided (not "no policy") */
	__u32 rule_id;
};

static __always_inline __u16 policy_port(const struct packet_tuple *t)
{
	switch (t->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		return t->dport;
	case IPPROTO_ICMP:
		return bpf_htons(t->icmp_type);
	}
	return 0;
}

static __always_inline void policy_count(struct policy_entry *e, struct __sk_buff *skb)
{
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, skb->len);
}

static __always_inline void policy_decide(struct __sk_buff *skb, const struct packet_tuple *t,
					  __u16 endpoint_id, __u8 direction, __u32 peer_identity,
					  struct policy_result *res)
{
	res->allowed = 1;
	res->reason = 0;
	res->audited = 0;
	res->enforced = 0;
	res->rule_id = 0;
	struct policy_ep_value *cfg = bpf_map_lookup_elem(&cilium_policy_ep, &endpoint_id);
	if (!cfg)
		return;
	__u32 enforce = direction == CILIUM_DIR_INGRESS ? CILIUM_POLICY_F_INGRESS : CILIUM_POLICY_F_EGRESS;
	__u32 entries = direction == CILIUM_DIR_INGRESS ? CILIUM_POLICY_F_INGRESS_ENTRIES : CILIUM_POLICY_F_EGRESS_ENTRIES;
	__u32 flags = cfg->flags;
	if (!(flags & (enforce | entries)))
		return;

	struct policy_entry *exact = 0, *any = 0;
	if (flags & entries) {
		struct policy_key key = {
			.prefixlen = CILIUM_POLICY_PREFIX_FULL,
			.endpoint_id = bpf_htons(endpoint_id),
			.direction = direction,
			.identity = bpf_htonl(peer_identity),
			.protocol = t->protocol,
			.dport = policy_port(t),
		};
		exact = bpf_map_lookup_elem(&cilium_policy, &key);
		/* The second walk only when the endpoint has any-identity entries. */
		__u32 wild = direction == CILIUM_DIR_INGRESS ? CILIUM_POLICY_F_INGRESS_ANY : CILIUM_POLICY_F_EGRESS_ANY;
		if (flags & wild) {
			key.identity = 0;
			any = bpf_map_lookup_elem(&cilium_policy, &key);
		}
	}
	struct policy_entry *decided = 0;
	if (exact && exact->verdict == CILIUM_POLICY_DENY)
		decided = exact;
	else if (any && any->verdict == CILIUM_POLICY_DENY)
		decided = any;
	if (decided) {
		res->allowed = 0;
		res->reason = CILIUM_DROP_POLICY_DENY;
	} else if (exact) {
		decided = exact;
	} else if (any) {
		decided = any;
	} else if (flags & enforce) {
		res->allowed = 0;
		res->reason = CILIUM_DROP_POLICY;
		res->enforced = 1;
	}
	if (decided) {
		policy_count(decided, skb);
		res->rule_id = decided->rule_id;
		res->enforced = 1;
	}
	if (!res->allowed && (flags & CILIUM_POLICY_F_AUDIT)) {
		res->allowed = 1;
		res->audited = 1;
	}
}
#endif
