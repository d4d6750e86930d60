/* XDP acceleration of the load balancer (owned by the LoadBalancer
 * subsystem), on the node's devices while loadBalancer.acceleration is
 * native. It handles, before the stack allocates an skb, what the tc LB stage
 * would do with traffic from outside to a NodePort, external or LoadBalancer
 * frontend whose backend is on another node:
 *   - the request: translated (SNAT or DSR, as loadBalancer.mode says) and
 *     sent out again through the device the FIB names (XDP_TX or redirect);
 *   - SNAT replies coming back from the backend's node: reverse translated
 *     and sent to the client the same way.
 * Everything else (local backends, unknown neighbours, fragments, IP options,
 * drops that need a reason and an event) passes to tc unchanged, where the
 * same maps give the same answer. Every check comes before the first byte of
 * the packet changes, so a packet either leaves translated or passes to tc
 * exactly as it came; the one exception (a frame grown for the DSR option
 * that cannot be shrunk back) is a drop with its reason, like tc's.
 * Connections it opens are in cilium_lb4_ct exactly as the tc stage writes
 * them. */
#include "lib/common.h"
#include "lib/endpoints.h"
#include "lib/ipcache.h"
#include "lib/lb.h"
#include <linux/tcp.h>
#include <linux/udp.h>

char LICENSE[] SEC("license") = "GPL";

/* Per-CPU counters: enum lb_xdp_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_XDP_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_xdp_stats SEC(".maps");

static __always_inline void xdp_count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&cilium_lb4_xdp_stats, &which);
	if (v)
		*v += 1;
}

static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* A checksum after the covered words changed by `diff` (bpf_csum_diff). */
static __always_inline __u16 csum_apply(__u16 check, __s64 diff)
{
	return ~csum_fold((__u64)(__u16)~check + (__u64)(__u32)diff);
}

/* A drop in XDP: counted and reported like the tc stages' (the LB stage,
 * ingress), then dropped. */
static __always_inline int xdp_drop(struct xdp_md *ctx, __u8 reason, const struct packet_tuple *t)
{
	struct event_source src = {
		.ifindex = ctx->ingress_ifindex,
		.length = ctx->data_end - ctx->data,
		.src_identity = identity_of(t->saddr),
		.dst_identity = identity_of(t->daddr),
	};
	drop_record(&src, CILIUM_STAGE_LB, reason, CILIUM_DIR_INGRESS, t, 0);
	return XDP_DROP;
}

struct xdp_packet {
	struct ethhdr *eth;
	struct iphdr *ip;
	__u16 *ports;  /* source, destination */
	__u16 *l4_check;
	struct packet_tuple t;
};

/* Points p at the headers of the frame: Ethernet, `ip_len` bytes of IPv4
 * header, then p->t.protocol's header (TCP or UDP), all in bounds. */
static __always_inline int xdp_headers(struct xdp_md *ctx, struct xdp_packet *p, __u32 ip_len)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	void *l4 = data + sizeof(struct ethhdr) + ip_len;
	if (p->t.protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return -1;
		p->l4_check = &tcp->check;
	} else {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return -1;
		p->l4_check = &udp->check;
	}
	p->eth = data;
	p->ip = data + sizeof(struct ethhdr);
	p->ports = l4;
	return 0;
}

/* IPv4 TCP/UDP without options or fragmentation, headers in bounds. */
static __always_inline int xdp_parse(struct xdp_md *ctx, struct xdp_packet *p)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl != CIL_IPV4_IHL_BASE ||
	    (ip->frag_off & bpf_htons(CIL_IP_MF | CIL_IP_OFFSET)))
		return -1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return -1;
	p->t.saddr = ip->saddr;
	p->t.daddr = ip->daddr;
	p->t.protocol = ip->protocol;
	p->t.l4_off = sizeof(*eth) + sizeof(*ip);
	if (xdp_headers(ctx, p, sizeof(*ip)) < 0)
		return -1;
	if (p->t.protocol == IPPROTO_TCP)
		p->t.tcp_flags = ((__u8 *)p->ports)[CIL_TCP_FLAGS_OFF];
	p->t.sport = p->ports[0];
	p->t.dport = p->ports[1];
	return 0;
}

/* Rewrites addresses and ports, fixing both checksums incrementally. */
static __always_inline void xdp_nat(struct xdp_packet *p, __u32 saddr, __u16 sport, __u32 daddr, __u16 dport)
{
	__u32 from[3] = { p->ip->saddr, p->ip->daddr, (__u32)p->ports[0] | (__u32)p->ports[1] << 16 };
	__u32 to[3] = { saddr, daddr, (__u32)sport | (__u32)dport << 16 };
	__s64 l3 = bpf_csum_diff(from, 8, to, 8, 0);
	__s64 l4 = bpf_csum_diff(from, 12, to, 12, 0);
	p->ip->check = csum_apply(p->ip->check, l3);
	if (p->t.protocol == IPPROTO_TCP || *p->l4_check) {
		__u16 c = csum_apply(*p->l4_check, l4);
		*p->l4_check = (p->t.protocol == IPPROTO_UDP && !c) ? 0xffff : c;
	}
	p->ip->saddr = saddr;
	p->ip->daddr = daddr;
	p->ports[0] = sport;
	p->ports[1] = dport;
}

/* Where a packet from `saddr` to `daddr` leaves (device and MACs), only when
 * the neighbour is known: anything else goes to the stack. */
static __always_inline int xdp_fib(struct xdp_md *ctx, struct bpf_fib_lookup *fib, __u32 saddr, __u32 daddr)
{
	fib->family = AF_INET;
	fib->ipv4_src = saddr;
	fib->ipv4_dst = daddr;
	fib->ifindex = ctx->ingress_ifindex;
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0) == BPF_FIB_LKUP_RET_SUCCESS ? 0 : -1;
}

static __always_inline int xdp_send(struct xdp_md *ctx, struct xdp_packet *p, const struct bpf_fib_lookup *fib)
{
	__builtin_memcpy(p->eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, fib->smac, ETH_ALEN);
	if (fib->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib->ifindex, 0);
}

/* DSR: the frontend as IPv4 option 0x9a, 8 bytes, between the IP header
 * (xdp_parse let none with options through) and the TCP/UDP header: the same
 * bytes the tc stage writes. The first change to the packet, before the
 * addresses are rewritten. Returns 0 with p on the grown frame; -1 with the
 * frame as it came (no headroom: tc inserts the option); or a drop reason
 * when a grown frame cannot be put back as it was (not seen: it only grew). */
static __always_inline int xdp_insert_dsr_option(struct xdp_md *ctx, struct xdp_packet *p, __u32 address, __u16 port)
{
	struct ethhdr eth;
	struct dsr_ip_header h;
	__builtin_memcpy(&eth, p->eth, sizeof(eth));
	__builtin_memcpy(&h.ip, p->ip, sizeof(h.ip));
	if (bpf_xdp_adjust_head(ctx, -(int)DSR_IPV4_OPT_LEN) < 0)
		return -1;
	/* Nothing is written yet: the frame as it came starts DSR_IPV4_OPT_LEN bytes in. */
	if (xdp_headers(ctx, p, sizeof(h)) < 0)
		return bpf_xdp_adjust_head(ctx, DSR_IPV4_OPT_LEN) < 0 ? CILIUM_DROP_WRITE_ERROR : -1;
	dsr_fill_header(&h, address, port);
	__builtin_memcpy(p->eth, &eth, sizeof(eth));
	__builtin_memcpy(p->ip, &h, sizeof(h));
	p->t.l4_off = sizeof(eth) + sizeof(h);
	return 0;
}

SEC("xdp")
int cil_xdp_lb(struct xdp_md *ctx)
{
	struct xdp_packet p = {};
	if (xdp_parse(ctx, &p) < 0)
		return XDP_PASS;
	struct packet_tuple *t = &p.t;
	__u32 zero = 0;
	struct node_config *node = bpf_map_lookup_elem(&cilium_node, &zero);
	if (!node || !node->address || node->vxlan_ifindex)
		return XDP_PASS; /* tunnel mode: encapsulation happens in tc */
	struct bpf_fib_lookup fib = {};

	/* A reply of a NodePort connection this node sent to another node's backend with SNAT. */
	struct lb4_ct_key rk = { .saddr = t->daddr, .daddr = t->saddr, .sport = t->dport, .dport = t->sport,
				 .proto = t->protocol, .kind = LB_CT_BACKEND };
	struct lb4_ct_value *reply = bpf_map_lookup_elem(&cilium_lb4_ct, &rk);
	if (reply) {
		if (!(reply->flags & LB_CT_F_SNAT) || t->daddr != node->address)
			goto pass;
		__u16 rev = reply->rev_nat_index;
		struct lb4_reverse_nat *nat = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev);
		if (!nat)
			goto pass;
		__u32 from = nat->address ? nat->address : node->address;
		__u32 client = reply->client;
		__u16 client_port = reply->client_port, from_port = nat->port;
		if (xdp_fib(ctx, &fib, from, client) < 0)
			goto pass;
		xdp_nat(&p, from, from_port, client, client_port);
		xdp_count(LB_XDP_REVERSED);
		return xdp_send(ctx, &p, &fib);
	}

	struct lb4_key key = { .address = t->daddr, .dport = t->dport, .proto = t->protocol };
	struct lb4_service *svc = lb4_lookup_frontend(&key);
	if (!svc || !(svc->flags & (LB_F_NODEPORT | LB_F_EXTERNAL_IP | LB_F_LOADBALANCER)))
		goto pass;

	struct lb4_ct_key fk = { .saddr = t->saddr, .daddr = t->daddr, .sport = t->sport, .dport = t->dport,
				 .proto = t->protocol, .kind = LB_CT_SERVICE };
	struct lb4_ct_value *known = bpf_map_lookup_elem(&cilium_lb4_ct, &fk);
	int syn = t->protocol == IPPROTO_TCP && (t->tcp_flags & (CIL_TCP_SYN | CIL_TCP_ACK)) == CIL_TCP_SYN;
	int opened = syn;
	__u32 id = known ? known->backend_id : 0;
	struct lb4_backend *be = id ? bpf_map_lookup_elem(&cilium_lb4_backends, &id) : 0;
	if (!be) {
		id = lb_select(t, &key, svc);
		be = id ? bpf_map_lookup_elem(&cilium_lb4_backends, &id) : 0;
		opened = 1;
	}
	/* No backend (tc drops it with the reason), or one on this node (tc delivers it). */
	if (!be || local_workload(be->address))
		goto pass;
	__u32 backend_addr = be->address;
	__u16 backend_port = be->port;

	struct lb4_config *cfg = lb_config();
	__u32 want = t->protocol == IPPROTO_TCP ? LB_CONFIG_F_DSR_TCP : LB_CONFIG_F_DSR_UDP;
	int dsr = cfg && (cfg->flags & want);
	__u32 src = dsr ? t->saddr : node->address;
	if (xdp_fib(ctx, &fib, src, backend_addr) < 0)
		goto pass;

	/* DSR: TCP names the frontend in its SYN only, UDP in every datagram. */
	if (dsr && (t->protocol == IPPROTO_UDP || syn)) {
		int r = xdp_insert_dsr_option(ctx, &p, t->daddr, t->dport);
		if (r < 0)
			goto pass;
		if (r > 0)
			return xdp_drop(ctx, r, t);
	}
	if (!known || known->backend_id != id) {
		struct lb4_ct_value v = { .backend_id = id, .rev_nat_index = svc->rev_nat_index };
		bpf_map_update_elem(&cilium_lb4_ct, &fk, &v, BPF_ANY);
	}
	if (opened && !dsr) {
		struct lb4_ct_key bk = { .saddr = node->address, .daddr = backend_addr, .sport = t->sport,
					 .dport = backend_port, .proto = t->protocol, .kind = LB_CT_BACKEND };
		struct lb4_ct_value bv = { .backend_id = id, .rev_nat_index = svc->rev_nat_index, .flags = LB_CT_F_SNAT,
					   .client = t->saddr, .client_port = t->sport };
		bpf_map_update_elem(&cilium_lb4_ct, &bk, &bv, BPF_ANY);
	}
	xdp_nat(&p, src, t->sport, backend_addr, backend_port);
	xdp_count(LB_XDP_TRANSLATED);
	return xdp_send(ctx, &p, &fib);
pass:
	xdp_count(LB_XDP_PASSED);
	return XDP_PASS;
}
