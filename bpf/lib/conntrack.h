/* Connection tracking: the first packet of a connection records its tuple;
 * a packet whose reversed tuple is recorded is a reply. LRU: the oldest
 * connections make room when the table is full. */
#ifndef CILIUM_LIB_CONNTRACK_H
#define CILIUM_LIB_CONNTRACK_H
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ct SEC(".maps");

enum ct_status {
	CT_NEW = 0,
	CT_ESTABLISHED = 1,
	CT_REPLY = 2,
};

static __always_inline void ct_key_of(struct ct_key *k, const struct packet_tuple *t, int reversed)
{
	k->saddr = reversed ? t->daddr : t->saddr;
	k->daddr = reversed ? t->saddr : t->daddr;
	k->sport = reversed ? t->dport : t->sport;
	k->dport = reversed ? t->sport : t->dport;
	k->protocol = t->protocol;
}

/* Entries are read-mostly: both directions of a connection meet in one
 * entry, often on two CPUs, so writing it on every packet would bounce its
 * cache line between them. last_seen moves in steps of CT_TOUCH_NS. */
#define CT_TOUCH_NS 1000000000ULL

static __always_inline void ct_touch(struct ct_value *v)
{
	__u64 now = bpf_ktime_get_ns();
	if (now - v->last_seen_ns > CT_TOUCH_NS)
		v->last_seen_ns = now;
}

static __always_inline int ct_lookup(const struct packet_tuple *t)
{
	struct ct_key k = {};
	ct_key_of(&k, t, 0);
	struct ct_value *v = bpf_map_lookup_elem(&cilium_ct, &k);
	if (v) {
		ct_touch(v);
		return CT_ESTABLISHED;
	}
	ct_key_of(&k, t, 1);
	v = bpf_map_lookup_elem(&cilium_ct, &k);
	if (v) {
		if (!(v->flags & CILIUM_CT_F_SEEN_REPLY))
			v->flags |= CILIUM_CT_F_SEEN_REPLY;
		ct_touch(v);
		return CT_REPLY;
	}
	return CT_NEW;
}

static __always_inline void ct_create(const struct packet_tuple *t, __u32 src_identity)
{
	struct ct_key k = {};
	ct_key_of(&k, t, 0);
	__u64 now = bpf_ktime_get_ns();
	struct ct_value v = { .created_ns = now, .last_seen_ns = now, .src_identity = src_identity };
	bpf_map_update_elem(&cilium_ct, &k, &v, BPF_NOEXIST);
}
#endif
