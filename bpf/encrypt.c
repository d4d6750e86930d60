/* The Encryption stage (owned by the Encryption subsystem), in slot CILIUM_STAGE_ENCRYPT of
 * cilium_calls while the subsystem is enabled.
 *
 * IPsec: a pod's packet for another node is marked with the XFRM OUT policy's mark for that
 * node (in tunnel mode the mark survives encapsulation, and the VXLAN device's route lookup
 * applies the policy to the VXLAN packet); an arriving ESP packet gets the mark of its
 * sender's IN state. WireGuard: 
 * A pod's packet for another node whose ipcache entry has a key is marked ENCRYPT; the mark
 * survives the tunnel's encapsulation (same namespace) and the node's routing. On the node's
 * device, a marked packet (in tunnel mode: the VXLAN packet itself, so the identity in the
 * VNI travels inside WireGuard) goes into cilium_wg0, and with nodeEncryption so does the
 * node's own traffic to a keyed node. WireGuard's own packets never go back in. In strict
 * mode, a pod's packet inside the CIDR that would leave unencrypted is dropped. */
#include "lib/common.h"
#include "lib/pipeline.h"
#include "lib/ipcache.h"
#include "lib/endpoints.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct encrypt_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_encrypt_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct encrypt_node_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_encrypt_nodes SEC(".maps");

static __always_inline void set_mark_magic(struct __sk_buff *skb, __u32 mark)
{
	/* A whole-word store: the verifier refuses byte stores into the context. */
	*(volatile __u32 *)&skb->mark = mark;
}

static __always_inline struct ipcache_value *ipcache_lookup(__u32 addr)
{
	struct ipcache_key key = { .prefixlen = CIL_IPV4_HOST_PREFIX, .addr = addr };
	return bpf_map_lookup_elem(&cilium_ipcache, &key);
}

static __always_inline int in_strict_cidr(const struct encrypt_config *cfg, __u32 addr)
{
	return (addr & cfg->strict_mask) == cfg->strict_addr;
}

/* A packet leaving one of this node's pods. */
static __always_inline int from_pod(struct __sk_buff *skb, const struct encrypt_config *cfg,
				    const struct packet_tuple *t)
{
	/* A pod of this node: delivered here, it never leaves. */
	struct endpoint_key ek = { .addr = t->daddr };
	if (bpf_map_lookup_elem(&cilium_lxc, &ek))
		return pipeline_next(skb);
	struct ipcache_value *dst = ipcache_lookup(t->daddr);
	/* What another node hosts (its pods, its address) is encrypted when that node has a key. */
	int remote = dst && (dst->tunnel_endpoint || dst->identity == CILIUM_ID_REMOTE_NODE);
	int encrypt = 0;
	if (!remote)
		goto strict;
	if (cfg->flags & CILIUM_ENCRYPT_F_IPSEC) {
		/* The node hosting it: the XFRM OUT policy for it matches the mark. */
		__u32 node = dst->tunnel_endpoint ? dst->tunnel_endpoint : t->daddr;
		struct encrypt_node_value *n = bpf_map_lookup_elem(&cilium_encrypt_nodes, &node);
		if (n && n->spi) {
			set_mark_magic(skb, CILIUM_MARK_ENCRYPT | ((__u32)(n->spi & 0xf) << 12) | ((__u32)n->node_id << 16));
			encrypt = 1;
		}
	} else if (dst->key && cfg->wg_ifindex) {
		set_mark_magic(skb, (skb->mark & ~CILIUM_MARK_MAGIC_MASK) | CILIUM_MARK_ENCRYPT);
		encrypt = 1;
	}
	if (encrypt) {
		if ((skb->cb[CILIUM_CB_HOOK] >> CILIUM_CB_FLAGS_SHIFT) & CILIUM_CB_F_NEW)
			emit_event_full(skb, CILIUM_EVENT_TRACE, CILIUM_STAGE_ENCRYPT, 0, CILIUM_DIR_EGRESS,
					CILIUM_EVENT_F_ENCRYPTED, t, 0);
		return pipeline_next(skb);
	}
strict:
	/* Strict mode: inside the CIDR, nothing leaves in clear, also to an address no node is known
	 * to host yet (the window before a new node's key arrives). */
	if ((cfg->flags & CILIUM_ENCRYPT_F_STRICT) && in_strict_cidr(cfg, t->saddr) && in_strict_cidr(cfg, t->daddr) &&
	    !((cfg->flags & CILIUM_ENCRYPT_F_STRICT_REMOTE_NODE) && dst && dst->identity == CILIUM_ID_REMOTE_NODE))
		return drop_packet_dir(skb, CILIUM_STAGE_ENCRYPT, CILIUM_DROP_UNENCRYPTED, CILIUM_DIR_EGRESS, t, 0);
	return pipeline_next(skb);
}

/* A packet leaving through one of the node's devices. */
static __always_inline int to_device(struct __sk_buff *skb, const struct encrypt_config *cfg,
				     const struct packet_tuple *t)
{
	__u32 magic = skb->mark & CILIUM_MARK_MAGIC_MASK;
	/* WireGuard's own datagrams carry its fwmark (wireguard-go's socket and the kernel's device
	 * both set it); a port says nothing (a pod or the VXLAN source port may use 51871). */
	if (!cfg->wg_ifindex || magic == CILIUM_MARK_WIREGUARD)
		return pipeline_next(skb);
	if (magic != CILIUM_MARK_ENCRYPT && !(cfg->flags & CILIUM_ENCRYPT_F_NODE))
		return pipeline_next(skb);
	struct ipcache_value *dst = ipcache_lookup(t->daddr);
	if (!dst || !dst->key)
		return pipeline_next(skb);
	stage_account(skb, CILIUM_STAGE_ENCRYPT);
	count_metric(skb, CILIUM_REASON_FORWARDED, CILIUM_DIR_EGRESS);
	/* An L3 device: the kernel takes the Ethernet header off. */
	return bpf_redirect(cfg->wg_ifindex, 0);
}

/* An ESP packet arriving from another node (IPsec): marked with that node's ID, which its
 * IN state's mark asks for. */
static __always_inline int from_device(struct __sk_buff *skb, const struct encrypt_config *cfg,
				       const struct packet_tuple *t)
{
	if ((cfg->flags & CILIUM_ENCRYPT_F_IPSEC) && t->protocol == CILIUM_IPPROTO_ESP) {
		__u32 node = t->saddr;
		struct encrypt_node_value *n = bpf_map_lookup_elem(&cilium_encrypt_nodes, &node);
		if (n) {
			stage_account(skb, CILIUM_STAGE_ENCRYPT);
			set_mark_magic(skb, CILIUM_MARK_DECRYPT | ((__u32)n->node_id << 16));
		}
	}
	return pipeline_next(skb);
}

SEC("tc")
int cil_stage_encrypt(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct encrypt_config *cfg = bpf_map_lookup_elem(&cilium_encrypt_state, &zero);
	struct packet_tuple t = {};
	if (!cfg || parse_ipv4(skb, &t) <= 0)
		return pipeline_next(skb);
	int netdev = (skb->cb[CILIUM_CB_HOOK] >> CILIUM_CB_FLAGS_SHIFT) & CILIUM_CB_F_NETDEV;
	if (skb->cb[CILIUM_CB_DIRECTION] != CILIUM_DIR_EGRESS)
		return netdev ? from_device(skb, cfg, &t) : pipeline_next(skb);
	if (netdev)
		return to_device(skb, cfg, &t);
	if ((skb->cb[CILIUM_CB_HOOK] & CILIUM_CB_HOOK_MASK) == CILIUM_HOOK_TC_INGRESS) {
		stage_account(skb, CILIUM_STAGE_ENCRYPT);
		return from_pod(skb, cfg, &t);
	}
	return pipeline_next(skb);
}

/* On cilium_wg0's ingress: what comes out was decrypted. The mark survives the
 * tunnel's decapsulation and the node's routing, and the events of the packet
 * say it arrived encrypted. */
SEC("tc")
int cil_from_wireguard(struct __sk_buff *skb)
{
	*(volatile __u32 *)&skb->mark = (skb->mark & ~CILIUM_MARK_MAGIC_MASK) | CILIUM_MARK_DECRYPT;
	return TC_ACT_OK;
}
