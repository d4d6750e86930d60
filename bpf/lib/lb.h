/* Load-balancer maps and helpers: frontends, backends, reverse NAT,
 * affinity, Maglev tables and the connections already translated. */
#ifndef CILIUM_LIB_LB_H
#define CILIUM_LIB_LB_H
#include <stddef.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include "common.h"
#include "ipcache.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65535);
	__type(key, __u16);
	__type(value, struct lb4_reverse_nat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_reverse_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb4_affinity_key);
	__type(value, struct lb4_affinity_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct lb4_ct_key);
	__type(value, struct lb4_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb4_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_config SEC(".maps");

/* Maglev: frontend id -> its table (an array of backend ids; its size is
 * maglev.tableSize, so the inner template allows any size). */
struct lb4_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 251);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 65535);
	__type(key, __u16);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct lb4_maglev_inner);
} cilium_lb4_maglev SEC(".maps");

#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))

static __always_inline int l4_csum_off(const struct packet_tuple *t)
{
	if (t->protocol == IPPROTO_TCP)
		return t->l4_off + offsetof(struct tcphdr, check);
	if (t->protocol == IPPROTO_UDP)
		return t->l4_off + offsetof(struct udphdr, check);
	return -1;
}

/* Rewrites the source (dst = 0) or destination address, fixing the IP
 * checksum and the TCP/UDP pseudo-header checksum. Returns 0, or the drop
 * reason of the step that failed. */
static __always_inline __u8 nat_addr(struct __sk_buff *skb, const struct packet_tuple *t, int dst, __u32 old, __u32 new)
{
	int csum = l4_csum_off(t);
	if (csum >= 0) {
		__u64 flags = BPF_F_PSEUDO_HDR | sizeof(new);
		if (t->protocol == IPPROTO_UDP)
			flags |= BPF_F_MARK_MANGLED_0;
		if (bpf_l4_csum_replace(skb, csum, old, new, flags) < 0)
			return CILIUM_DROP_CSUM_L4;
	}
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, sizeof(new)) < 0)
		return CILIUM_DROP_CSUM_L3;
	if (bpf_skb_store_bytes(skb, dst ? IP_DST_OFF : IP_SRC_OFF, &new, sizeof(new), 0) < 0)
		return CILIUM_DROP_WRITE_ERROR;
	return 0;
}

/* The same for the source or destination port: 0, or the drop reason. */
static __always_inline __u8 nat_port(struct __sk_buff *skb, const struct packet_tuple *t, int dst, __u16 old, __u16 new)
{
	if (old == new)
		return 0;
	int csum = l4_csum_off(t);
	if (csum >= 0) {
		__u64 flags = sizeof(new);
		if (t->protocol == IPPROTO_UDP)
			flags |= BPF_F_MARK_MANGLED_0;
		if (bpf_l4_csum_replace(skb, csum, old, new, flags) < 0)
			return CILIUM_DROP_CSUM_L4;
	}
	/* TCP and UDP both start with the source port, then the destination port. */
	int off = t->l4_off + (dst ? offsetof(struct udphdr, dest) : offsetof(struct udphdr, source));
	if (bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0) < 0)
		return CILIUM_DROP_WRITE_ERROR;
	return 0;
}

/* The Maglev hash of a flow, host-order fields: the same formula as
 * MaglevTable.flowHash in Swift, so the agent's tests and tools agree with
 * the datapath. */
static __always_inline __u32 maglev_flow_hash(__u32 saddr, __u32 daddr, __u16 sport, __u16 dport, __u8 proto, __u32 seed)
{
	__u64 h = ((__u64)saddr << 32 | daddr) ^ ((__u64)seed << 32 | ((__u32)sport << 16 | dport));
	h ^= (__u64)proto * 0x9E3779B97F4A7C15ULL;
	h ^= h >> 33;
	h *= 0xFF51AFD7ED558CCDULL;
	h ^= h >> 33;
	h *= 0xC4CEB9FE1A85EC53ULL;
	h ^= h >> 33;
	return (__u32)h;
}

/* ---- DSR: the IPv4 header with upstream's option (tc stage and XDP) ---- */

/* The option: DSR_IPV4_OPT_TYPE, DSR_IPV4_OPT_LEN, then the frontend. */
struct dsr_ipv4_opt {
	__u8  type;
	__u8  len;
	__u16 port;    /* network order */
	__u32 address; /* network order */
};
_Static_assert(sizeof(struct dsr_ipv4_opt) == DSR_IPV4_OPT_LEN, "the DSR option is DSR_IPV4_OPT_LEN bytes");

struct dsr_ip_header {
	struct iphdr ip;
	struct dsr_ipv4_opt opt;
};

/* Turns a base IPv4 header (ihl 5) into one with the DSR option naming the
 * frontend (network order), with its checksum; the TCP/UDP checksum does
 * not cover IP options. */
static __always_inline void dsr_fill_header(struct dsr_ip_header *h, __u32 address, __u16 port)
{
	h->ip.ihl = CIL_IPV4_IHL_BASE + DSR_IPV4_OPT_LEN / 4;
	h->ip.tot_len = bpf_htons(bpf_ntohs(h->ip.tot_len) + DSR_IPV4_OPT_LEN);
	h->ip.check = 0;
	h->opt.type = DSR_IPV4_OPT_TYPE;
	h->opt.len = DSR_IPV4_OPT_LEN;
	h->opt.port = port;
	h->opt.address = address;
	__u32 s = 0;
	__u16 *w = (__u16 *)h;
#pragma unroll
	for (int i = 0; i < (int)sizeof(*h) / 2; i++)
		s += w[i];
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	h->ip.check = (__u16)~s;
}

/* ---- Backend selection, shared by the tc stage and the XDP program ---- */

/* Maglev flow hash over the client and the frontend (its key address: 0 for
 * a NodePort), so the same flow finds the same backend through any node. */
static __always_inline __u32 lb_flow_hash(const struct packet_tuple *t, const struct lb4_key *frontend, __u32 seed)
{
	return maglev_flow_hash(bpf_ntohl(t->saddr), bpf_ntohl(frontend->address), bpf_ntohs(t->sport),
				bpf_ntohs(frontend->dport), t->protocol, seed);
}

/* The frontend a destination names: the exact (address, port, protocol), else a
 * NodePort when the address is the node's own (key->address becomes 0, as NodePorts
 * are keyed). Address 0 itself names no frontend: only the NodePort entries have it,
 * and a packet or socket aimed at 0.0.0.0 must not reach them. */
static __always_inline struct lb4_service *lb4_lookup_frontend(struct lb4_key *key)
{
	if (!key->address)
		return 0;
	struct lb4_service *svc = bpf_map_lookup_elem(&cilium_lb4_services, key);
	if (svc)
		return svc;
	__u32 zero = 0;
	struct node_config *node = bpf_map_lookup_elem(&cilium_node, &zero);
	if (!node || node->address != key->address)
		return 0;
	key->address = 0;
	return bpf_map_lookup_elem(&cilium_lb4_services, key);
}

static __always_inline struct lb4_config *lb_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&cilium_lb4_config, &zero);
}

static __always_inline __u32 lb_select(const struct packet_tuple *t, const struct lb4_key *frontend,
				       const struct lb4_service *svc)
{
	__u16 rev = svc->rev_nat_index;
	struct lb4_affinity_key ak = { .client = t->saddr, .rev_nat_index = rev };
	__u64 now = 0;
	if (svc->affinity_timeout) {
		now = bpf_ktime_get_ns();
		struct lb4_affinity_value *av = bpf_map_lookup_elem(&cilium_lb4_affinity, &ak);
		if (av && now - av->last_used_ns < (__u64)svc->affinity_timeout * 1000000000ULL) {
			__u32 id = av->backend_id;
			struct lb4_backend *b = bpf_map_lookup_elem(&cilium_lb4_backends, &id);
			if (b && b->state == LB_BACKEND_ACTIVE) {
				av->last_used_ns = now;
				return id;
			}
		}
	}
	if (svc->count == 0)
		return 0;
	__u32 id = 0;
	if (svc->flags & LB_F_MAGLEV) {
		struct lb4_config *cfg = lb_config();
		void *table = bpf_map_lookup_elem(&cilium_lb4_maglev, &rev);
		if (cfg && table && cfg->maglev_size) {
			__u32 slot = lb_flow_hash(t, frontend, cfg->maglev_seed) % cfg->maglev_size;
			__u32 *b = bpf_map_lookup_elem(table, &slot);
			if (b)
				id = *b;
		}
	}
	if (!id) {
		struct lb4_key k = *frontend;
		k.backend_slot = (bpf_get_prandom_u32() % svc->count) + 1;
		struct lb4_service *s = bpf_map_lookup_elem(&cilium_lb4_services, &k);
		if (s)
			id = s->backend_id;
	}
	if (id && svc->affinity_timeout) {
		struct lb4_affinity_value nv = { .last_used_ns = now, .backend_id = id };
		bpf_map_update_elem(&cilium_lb4_affinity, &ak, &nv, BPF_ANY);
	}
	return id;
}
#endif

