/* Entry programs (owned by Networking): attached to each endpoint's host-side
 * veth. They parse, resolve identities from the ipcache, and run the stages. */
#include "lib/common.h"
#include "lib/pipeline.h"
#include "lib/endpoints.h"
#include "lib/ipcache.h"

char LICENSE[] SEC("license") = "GPL";

/* The tunnels between this node and another known node, seen on a node device:
 * VXLAN on UDP 8472 (tunnel mode), whose inner packet runs the whole pipeline
 * on cilium_vxlan with the identity the sending node put in the VNI, and
 * WireGuard on UDP 51871, whose inner packet runs it when it comes out of
 * cilium_wg0. Running the stages again on the outer packet cost about 800 ns
 * per packet on the device (bpf_stats, iperf3 across two sandbox nodes) and
 * decided nothing. An outer packet from or to anything but a known node still
 * runs the pipeline. */
static __always_inline int is_node_tunnel(const struct packet_tuple *t, __u32 direction)
{
	if (t->protocol != IPPROTO_UDP ||
	    (t->dport != bpf_htons(CILIUM_TUNNEL_PORT) && t->dport != bpf_htons(CILIUM_WG_PORT)))
		return 0;
	__u32 zero = 0;
	struct node_config *cfg = bpf_map_lookup_elem(&cilium_node, &zero);
	if (!cfg || (t->dport == bpf_htons(CILIUM_TUNNEL_PORT) && !cfg->vxlan_ifindex))
		return 0;
	if (direction == CILIUM_DIR_INGRESS)
		return t->daddr == cfg->address && identity_of(t->saddr) == CILIUM_ID_REMOTE_NODE;
	return t->saddr == cfg->address && identity_of(t->daddr) == CILIUM_ID_REMOTE_NODE;
}

/* src_identity: 0 means resolve it from the ipcache; the overlay passes the
 * identity the sending node put in the VNI. netdev: on one of the node's devices. */
static __always_inline int run_entry_on(struct __sk_buff *skb, __u32 direction, __u32 hook, __u32 src_identity,
					int netdev)
{
	struct packet_tuple t = {};
	CB_SET(skb, CILIUM_CB_DIRECTION, direction);
	CB_SET(skb, CILIUM_CB_HOOK, hook | (netdev ? CILIUM_CB_F_NETDEV << CILIUM_CB_FLAGS_SHIFT : 0));
	CB_SET(skb, CILIUM_CB_SRC_IDENTITY, 0);
	CB_SET(skb, CILIUM_CB_DST_IDENTITY, 0);
	int r = parse_ipv4(skb, &t);
	if (r < 0)
		return drop_packet(skb, ENTRY_STAGE, CILIUM_DROP_INVALID, 0, 0);
	if (r == 0)
		return TC_ACT_OK; /* not IPv4: ARP and friends pass */
	if (netdev && is_node_tunnel(&t, direction)) {
		/* Leaving: only Encryption has a say (the VXLAN packet may go into WireGuard). */
		if (direction == CILIUM_DIR_EGRESS) {
			CB_SET(skb, CILIUM_CB_NEXT_STAGE, CILIUM_STAGE_ENCRYPT + 1);
			bpf_tail_call(skb, &cilium_calls, CILIUM_STAGE_ENCRYPT);
		}
		return TC_ACT_OK;
	}
	__u32 src = src_identity;
	if (!src && direction == CILIUM_DIR_EGRESS && hook == CILIUM_HOOK_TC_INGRESS) {
		/* From a local endpoint: its own entry (a hash lookup) has the identity. */
		struct endpoint_key ek = { .addr = t.saddr };
		struct endpoint_value *ep = bpf_map_lookup_elem(&cilium_lxc, &ek);
		if (ep)
			src = ep->identity;
	}
	if (!src)
		src = identity_of(t.saddr);
	/* A local endpoint's identity is in its own entry: a hash lookup costs
	 * less per packet than the ipcache's longest-prefix match. */
	struct endpoint_key dk = { .addr = t.daddr };
	struct endpoint_value *dep = bpf_map_lookup_elem(&cilium_lxc, &dk);
	__u32 dst = dep && dep->identity ? dep->identity : identity_of(t.daddr);
	CB_SET(skb, CILIUM_CB_SRC_IDENTITY, src);
	CB_SET(skb, CILIUM_CB_DST_IDENTITY, dst);
	CB_SET(skb, CILIUM_CB_NEXT_STAGE, 0);
	return pipeline_next(skb);
}

static __always_inline int run_entry_with(struct __sk_buff *skb, __u32 direction, __u32 hook, __u32 src_identity)
{
	return run_entry_on(skb, direction, hook, src_identity, 0);
}

static __always_inline int run_entry(struct __sk_buff *skb, __u32 direction, __u32 hook)
{
	return run_entry_with(skb, direction, hook, 0);
}

/* Traffic leaving the endpoint (host-side veth ingress). */
SEC("tc")
int cil_from_container(struct __sk_buff *skb)
{
	return run_entry(skb, CILIUM_DIR_EGRESS, CILIUM_HOOK_TC_INGRESS);
}

/* Traffic towards the endpoint from the node's stack (host-side veth egress). */
SEC("tc")
int cil_to_container(struct __sk_buff *skb)
{
	return run_entry(skb, CILIUM_DIR_INGRESS, CILIUM_HOOK_TC_EGRESS);
}

/* Traffic arriving at the node on one of its devices (`devices` in the config). */
SEC("tc")
int cil_from_netdev(struct __sk_buff *skb)
{
	return run_entry_on(skb, CILIUM_DIR_INGRESS, CILIUM_HOOK_TC_INGRESS, 0, 1);
}

/* Traffic leaving the node through one of its devices. */
SEC("tc")
int cil_to_netdev(struct __sk_buff *skb)
{
	return run_entry_on(skb, CILIUM_DIR_EGRESS, CILIUM_HOOK_TC_EGRESS, 0, 1);
}

/* Traffic arriving through the overlay (cilium_vxlan ingress): the sending
 * node carried the source identity in the VNI. */
SEC("tc")
int cil_from_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return drop_packet(skb, ENTRY_STAGE, CILIUM_DROP_NO_TUNNEL_KEY, 0, 0);
	__u32 src = key.tunnel_id ? (__u32)key.tunnel_id : CILIUM_ID_WORLD;
	/* Another node's own traffic: "host" there is a remote node here. */
	if (src == CILIUM_ID_HOST)
		src = CILIUM_ID_REMOTE_NODE;
	/* World as the sender saw it: a CIDR this node's policies name has an identity of
	 * this node's own (node-local scope), found in this node's ipcache. Nothing else is
	 * taken from there: the sender's word that the source is outside the cluster stands. */
	if (src == CILIUM_ID_WORLD) {
		struct packet_tuple t = {};
		if (parse_ipv4(skb, &t) > 0) {
			__u32 local = identity_of(t.saddr);
			if (local >= CILIUM_IDENTITY_LOCAL_SCOPE)
				src = local;
		}
	}
	/* The inner frame still carries the sending node's MACs; what goes on to
	 * this node's stack (its router address) must count as addressed to us. */
	bpf_skb_change_type(skb, PACKET_HOST);
	return run_entry_with(skb, CILIUM_DIR_INGRESS, CILIUM_HOOK_TC_INGRESS, src);
}

/* To a workload on another node in tunnel mode: encapsulate towards that
 * node with our source identity as the VNI (as upstream does). */
static __always_inline int encapsulate(struct __sk_buff *skb, const struct packet_tuple *t,
				       const struct ipcache_value *dst)
{
	__u32 zero = 0;
	struct node_config *cfg = bpf_map_lookup_elem(&cilium_node, &zero);
	if (!cfg || !cfg->vxlan_ifindex)
		return -1; /* native routing: the node's stack routes it */
	struct bpf_tunnel_key key = {};
	key.remote_ipv4 = bpf_ntohl(dst->tunnel_endpoint);
	key.tunnel_id = skb->cb[CILIUM_CB_SRC_IDENTITY];
	/* A node-local identity (a CIDR's) means nothing on the other node: it goes as world,
	 * and the other node finds its own identity for the address (cil_from_overlay). */
	if (key.tunnel_id >= CILIUM_IDENTITY_LOCAL_SCOPE)
		key.tunnel_id = CILIUM_ID_WORLD;
	key.tunnel_ttl = CILIUM_TUNNEL_TTL;
	/* Retrieving a key (cil_from_overlay) is NO_TUNNEL_KEY; failing to set one is a write error, as upstream says. */
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return drop_packet(skb, CILIUM_STAGE_DELIVER, CILIUM_DROP_WRITE_ERROR, t, 0);
	stage_account(skb, CILIUM_STAGE_DELIVER);
	count_metric(skb, CILIUM_REASON_FORWARDED, skb->cb[CILIUM_CB_DIRECTION]);
	return bpf_redirect(cfg->vxlan_ifindex, 0);
}

/* The last stage: a packet for a workload on this node goes straight into
 * that workload's namespace (bpf_redirect_peer skips the host-side veth and
 * the node's stack); one for a workload on another node goes into the tunnel;
 * everything else continues to the node's stack. */
SEC("tc")
int cil_deliver(struct __sk_buff *skb)
{
	struct packet_tuple t = {};
	if (parse_ipv4(skb, &t) <= 0 || (skb->cb[CILIUM_CB_HOOK] & CILIUM_CB_HOOK_MASK) != CILIUM_HOOK_TC_INGRESS)
		return pipeline_next(skb);
	struct endpoint_key key = { .addr = t.daddr };
	struct endpoint_value *ep = bpf_map_lookup_elem(&cilium_lxc, &key);
	if (!ep) {
		struct ipcache_key ik = { .prefixlen = CIL_IPV4_HOST_PREFIX, .addr = t.daddr };
		struct ipcache_value *remote = bpf_map_lookup_elem(&cilium_ipcache, &ik);
		if (remote && remote->tunnel_endpoint) {
			int r = encapsulate(skb, &t, remote);
			if (r >= 0)
				return r;
		}
		return pipeline_next(skb);
	}
	if ((ep->flags & CILIUM_ENDPOINT_F_HOST) || ep->ifindex == skb->ifindex)
		return pipeline_next(skb);
	/* The workload expects its gateway's MAC as source and its own as destination. */
	/* The pod's stack takes the packet as it is (the host-side veth already
	 * classified it as addressed to us); rewriting the MACs is optional
	 * because it copies the header of every cloned (TCP) skb. mac and
	 * node_mac are adjacent: destination then source, one store. */
	__u32 zero = 0;
	struct node_config *cfg = bpf_map_lookup_elem(&cilium_node, &zero);
	if (cfg && (cfg->flags & CILIUM_NODE_F_REWRITE_MAC) &&
	    bpf_skb_store_bytes(skb, 0, ep->mac, 2 * ETH_ALEN, 0) < 0)
		return drop_packet(skb, CILIUM_STAGE_DELIVER, CILIUM_DROP_WRITE_ERROR, &t, 0);
	stage_account(skb, CILIUM_STAGE_DELIVER);
	count_metric(skb, CILIUM_REASON_FORWARDED, skb->cb[CILIUM_CB_DIRECTION]);
	return bpf_redirect_peer(ep->ifindex, 0);
}
