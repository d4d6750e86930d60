/* The LoadBalancer stage (owned by the LoadBalancer subsystem), in slot
 * CILIUM_STAGE_LB of cilium_calls while kubeProxyReplacement is on.
 *
 * A packet for a frontend (ClusterIP, external IP, LoadBalancer IP, or a
 * NodePort on the node's address) gets a backend: the one its connection
 * already has, else the client's affinity, else Maglev or a random slot. The
 * destination becomes the backend (and, for a NodePort reaching another
 * node's backend, the source becomes this node: SNAT). Replies are rewritten
 * back to the frontend. Policy runs after this stage, on the backend. */
#include "lib/common.h"
#include "lib/pipeline.h"
#include "lib/endpoints.h"
#include "lib/ipcache.h"
#include "lib/lb.h"

char LICENSE[] SEC("license") = "GPL";

/* Sends the packet out of the device the node's routing table names for its
 * destination, with the neighbour's MAC (bpf_fib_lookup), bypassing the
 * stack; a neighbour not resolved yet is left to bpf_redirect_neigh. */
static __always_inline int redirect_by_fib(struct __sk_buff *skb, __u32 saddr, __u32 daddr)
{
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.ipv4_src = saddr;
	fib.ipv4_dst = daddr;
	fib.ifindex = skb->ingress_ifindex;
	int r = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (r == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
	if (r != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	/* A failed write leaves the packet to the stack, which routes it alike. */
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), fib.dmac, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), fib.smac, ETH_ALEN, 0) < 0)
		return -1;
	return bpf_redirect(fib.ifindex, 0);
}

/* DSR: inserts the frontend (network order) as an IPv4 option after the
 * base header. Returns 0, or the drop reason: a header with options of its
 * own has no room for it. */
static __always_inline __u8 dsr_insert_option(struct __sk_buff *skb, __u32 address, __u16 port)
{
	struct dsr_ip_header h;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &h.ip, sizeof(h.ip)) < 0)
		return CILIUM_DROP_INVALID;
	if (h.ip.ihl != CIL_IPV4_IHL_BASE)
		return CILIUM_DROP_DSR_IP_OPTIONS;
	if (bpf_skb_adjust_room(skb, DSR_IPV4_OPT_LEN, BPF_ADJ_ROOM_NET, 0) < 0)
		return CILIUM_DROP_WRITE_ERROR;
	dsr_fill_header(&h, address, port);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), 0) < 0)
		return CILIUM_DROP_WRITE_ERROR;
	return 0;
}

/* DSR, on the backend's node: a packet for a local workload that carries
 * the option leaves an entry so the workload's replies leave from the frontend. */
static __always_inline void dsr_learn(struct __sk_buff *skb, const struct packet_tuple *t)
{
	if (t->l4_off != ETH_HLEN + sizeof(struct iphdr) + DSR_IPV4_OPT_LEN)
		return;
	struct dsr_ipv4_opt opt;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(struct iphdr), &opt, sizeof(opt)) < 0 ||
	    opt.type != DSR_IPV4_OPT_TYPE || opt.len != DSR_IPV4_OPT_LEN || !local_workload(t->daddr))
		return;
	struct lb4_ct_key k = { .saddr = t->saddr, .daddr = t->daddr, .sport = t->sport, .dport = t->dport,
				.proto = t->protocol, .kind = LB_CT_DSR };
	struct lb4_ct_value v = { .flags = LB_CT_F_DSR, .client = opt.address, .client_port = opt.port };
	struct lb4_ct_value *known = bpf_map_lookup_elem(&cilium_lb4_ct, &k);
	if (!known || known->client != v.client || known->client_port != v.client_port)
		bpf_map_update_elem(&cilium_lb4_ct, &k, &v, BPF_ANY);
}

/* DSR, on the backend's node: a reply leaves from the frontend, straight to the client. */
static __always_inline int dsr_reverse(struct __sk_buff *skb, struct packet_tuple *t, const struct lb4_ct_value *ct)
{
	__u8 err;
	if ((err = nat_addr(skb, t, 0, t->saddr, ct->client)) || (err = nat_port(skb, t, 0, t->sport, ct->client_port)))
		return drop_packet(skb, CILIUM_STAGE_LB, err, t, 0);
	CB_SET(skb, CILIUM_CB_HOOK, skb->cb[CILIUM_CB_HOOK] | (CILIUM_CB_F_LB_REPLY << CILIUM_CB_FLAGS_SHIFT));
	int r = redirect_by_fib(skb, ct->client, t->daddr);
	if (r >= 0) {
		count_metric(skb, CILIUM_REASON_FORWARDED, skb->cb[CILIUM_CB_DIRECTION]);
		return r;
	}
	return pipeline_next(skb);
}

static __always_inline int lb_reverse(struct __sk_buff *skb, struct packet_tuple *t, struct lb4_ct_value *ct)
{
	__u16 rev = ct->rev_nat_index;
	struct lb4_reverse_nat *nat = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev);
	if (!nat)
		return pipeline_next(skb);
	__u32 from = nat->address;
	if (!from) {
		__u32 zero = 0;
		struct node_config *node = bpf_map_lookup_elem(&cilium_node, &zero);
		from = node ? node->address : 0;
	}
	__u32 to = t->daddr;
	__u16 flags = nat->flags;
	__u8 err;
	if ((err = nat_addr(skb, t, 0, t->saddr, from)) || (err = nat_port(skb, t, 0, t->sport, nat->port)))
		return drop_packet(skb, CILIUM_STAGE_LB, err, t, 0);
	if (ct->flags & LB_CT_F_SNAT) {
		to = ct->client;
		if ((err = nat_addr(skb, t, 1, t->daddr, ct->client)) || (err = nat_port(skb, t, 1, t->dport, ct->client_port)))
			return drop_packet(skb, CILIUM_STAGE_LB, err, t, 0);
		CB_SET(skb, CILIUM_CB_DST_IDENTITY, identity_of(ct->client));
	}
	CB_SET(skb, CILIUM_CB_HOOK, skb->cb[CILIUM_CB_HOOK] | (CILIUM_CB_F_LB_REPLY << CILIUM_CB_FLAGS_SHIFT));
	if (flags & LB_REVNAT_F_FIB) {
		int r = redirect_by_fib(skb, from, to);
		if (r >= 0) {
			count_metric(skb, CILIUM_REASON_FORWARDED, skb->cb[CILIUM_CB_DIRECTION]);
			return r;
		}
	}
	return pipeline_next(skb);
}

static __always_inline int lb_forward(struct __sk_buff *skb, struct packet_tuple *t, const struct lb4_key *frontend,
				      const struct lb4_service *svc)
{
	struct lb4_ct_key fk = { .saddr = t->saddr, .daddr = t->daddr, .sport = t->sport, .dport = t->dport,
				 .proto = t->protocol, .kind = LB_CT_SERVICE };
	struct lb4_ct_value *known = bpf_map_lookup_elem(&cilium_lb4_ct, &fk);
	struct lb4_backend *be = 0;
	__u32 id = 0;
	/* An open connection keeps its backend, whatever its state now. A TCP
	 * SYN (a new connection on a tuple an older one used, or a retransmit)
	 * keeps it too, but writes the reply entry again: it may have gone. */
	int syn = t->protocol == IPPROTO_TCP && (t->tcp_flags & (CIL_TCP_SYN | CIL_TCP_ACK)) == CIL_TCP_SYN;
	if (known) {
		id = known->backend_id;
		be = bpf_map_lookup_elem(&cilium_lb4_backends, &id);
	}
	int opened = syn;
	if (!be) {
		id = lb_select(t, frontend, svc);
		be = id ? bpf_map_lookup_elem(&cilium_lb4_backends, &id) : 0;
		if (!be)
			return drop_packet(skb, CILIUM_STAGE_LB, CILIUM_DROP_NO_SERVICE, t, 0);
		struct lb4_ct_value v = { .backend_id = id, .rev_nat_index = svc->rev_nat_index };
		bpf_map_update_elem(&cilium_lb4_ct, &fk, &v, BPF_ANY);
		opened = 1;
	}
	__u32 backend_addr = be->address;
	__u16 backend_port = be->port;

	/* Traffic from outside to another node's backend: the reply must come
	 * back through this node, so the source becomes this node (SNAT); or,
	 * in DSR, the source stays and the first packet names the frontend. */
	__u32 snat_to = 0;
	int dsr = 0, snat_by_fib = 0;
	if ((svc->flags & (LB_F_NODEPORT | LB_F_EXTERNAL_IP | LB_F_LOADBALANCER)) &&
	    skb->cb[CILIUM_CB_DIRECTION] == CILIUM_DIR_INGRESS && !local_workload(backend_addr)) {
		struct lb4_config *cfg = lb_config();
		__u32 want = t->protocol == IPPROTO_TCP ? LB_CONFIG_F_DSR_TCP : LB_CONFIG_F_DSR_UDP;
		if (cfg && (cfg->flags & want)) {
			dsr = 1;
		} else {
			__u32 zero = 0;
			struct node_config *node = bpf_map_lookup_elem(&cilium_node, &zero);
			if (node && node->address) {
				snat_to = node->address;
				/* Native routing: the node's stack would take a packet from
				 * its own address arriving on its device for a martian. */
				snat_by_fib = !node->vxlan_ifindex;
			}
		}
	}
	__u32 frontend_addr = t->daddr;
	__u16 frontend_port = t->dport;

	/* Where replies go back to: written when the connection opens, not on
	 * every packet (every reply looks it up, which keeps it fresh in the LRU). */
	struct lb4_ct_key bk = { .saddr = snat_to ? snat_to : t->saddr, .daddr = backend_addr, .sport = t->sport,
				 .dport = backend_port, .proto = t->protocol, .kind = LB_CT_BACKEND };
	if (opened && !dsr) {
		struct lb4_ct_value bv = { .backend_id = id, .rev_nat_index = svc->rev_nat_index };
		if (snat_to) {
			bv.flags = LB_CT_F_SNAT;
			bv.client = t->saddr;
			bv.client_port = t->sport;
		}
		bpf_map_update_elem(&cilium_lb4_ct, &bk, &bv, BPF_ANY);
	}

	__u8 err;
	if ((err = nat_addr(skb, t, 1, t->daddr, backend_addr)) || (err = nat_port(skb, t, 1, t->dport, backend_port)))
		return drop_packet(skb, CILIUM_STAGE_LB, err, t, 0);
	if (snat_to) {
		if ((err = nat_addr(skb, t, 0, t->saddr, snat_to)))
			return drop_packet(skb, CILIUM_STAGE_LB, err, t, 0);
		/* The far node sees this node's traffic (host -> remote-node there). */
		CB_SET(skb, CILIUM_CB_SRC_IDENTITY, CILIUM_ID_HOST);
		if (snat_by_fib) {
			int r = redirect_by_fib(skb, snat_to, backend_addr);
			if (r >= 0) {
				count_metric(skb, CILIUM_REASON_FORWARDED, skb->cb[CILIUM_CB_DIRECTION]);
				return r;
			}
		}
	}
	/* DSR: TCP names the frontend in its SYN only (later packets reach the
	 * backend's node as a connection it already knows), UDP in every datagram. */
	if (dsr && (t->protocol == IPPROTO_UDP || syn) && (err = dsr_insert_option(skb, frontend_addr, frontend_port)))
		return drop_packet(skb, CILIUM_STAGE_LB, err, t, 0);
	CB_SET(skb, CILIUM_CB_DST_IDENTITY, identity_of(backend_addr));
	return pipeline_next(skb);
}

SEC("tc")
int cil_stage_lb(struct __sk_buff *skb)
{
	struct packet_tuple t = {};
	if (parse_ipv4(skb, &t) <= 0 || (t.protocol != IPPROTO_TCP && t.protocol != IPPROTO_UDP))
		return pipeline_next(skb);
	stage_account(skb, CILIUM_STAGE_LB);

	/* A reply of a translated connection: back to the frontend's address. */
	struct lb4_ct_key rk = { .saddr = t.daddr, .daddr = t.saddr, .sport = t.dport, .dport = t.sport,
				 .proto = t.protocol, .kind = LB_CT_BACKEND };
	struct lb4_ct_value *reply = bpf_map_lookup_elem(&cilium_lb4_ct, &rk);
	if (reply)
		return lb_reverse(skb, &t, reply);
	struct lb4_config *cfg = lb_config();
	if (cfg && (cfg->flags & (LB_CONFIG_F_DSR_TCP | LB_CONFIG_F_DSR_UDP))) {
		rk.kind = LB_CT_DSR;
		reply = bpf_map_lookup_elem(&cilium_lb4_ct, &rk);
		if (reply)
			return dsr_reverse(skb, &t, reply);
		dsr_learn(skb, &t);
	}

	/* A NodePort is found whoever sends to the node's address: a packet arriving
	 * on a device, or a pod of this node (on its way out of the pod). */
	struct lb4_key key = { .address = t.daddr, .dport = t.dport, .proto = t.protocol };
	struct lb4_service *svc = lb4_lookup_frontend(&key);
	if (!svc) {
		/* A new TCP connection straight to an address (a backend reached
		 * directly, e.g. translated by the socket LB): a reply entry left by an
		 * older translated connection on the same tuple must not rewrite its replies.
		 * Only where connections start (a hook's ingress): a SYN this stage
		 * translated and sent out of a device meets the stage again there. */
		if (t.protocol == IPPROTO_TCP && (t.tcp_flags & (CIL_TCP_SYN | CIL_TCP_ACK)) == CIL_TCP_SYN &&
		    (skb->cb[CILIUM_CB_HOOK] & CILIUM_CB_HOOK_MASK) == CILIUM_HOOK_TC_INGRESS) {
			struct lb4_ct_key own = { .saddr = t.saddr, .daddr = t.daddr, .sport = t.sport, .dport = t.dport,
						  .proto = t.protocol, .kind = LB_CT_BACKEND };
			bpf_map_delete_elem(&cilium_lb4_ct, &own);
		}
		return pipeline_next(skb);
	}
	return lb_forward(skb, &t, &key, svc);
}
