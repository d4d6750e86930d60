/* Map layouts shared by the BPF programs in bpf/ and the Swift agent (through
 * the CBPF module). One definition: a key or value cannot drift between sides.
 * Addresses and ports are kept in network byte order, as the packet has them. */
#ifndef CILIUM_MAPS_H
#define CILIUM_MAPS_H
#include <linux/types.h>

/* Pipeline slots in the program array `cilium_calls`, in the order a packet
 * visits them. An empty slot means that subsystem is disabled. */
enum cilium_stage {
	CILIUM_STAGE_LB       = 0, /* LoadBalancer: service translation   */
	CILIUM_STAGE_POLICY   = 1, /* Policy: identity-based enforcement    */
	CILIUM_STAGE_HOSTFW   = 2, /* HostFirewall: host endpoint policy    */
	CILIUM_STAGE_ENCRYPT  = 3, /* Encryption: steer to the crypto device */
	CILIUM_STAGE_DELIVER  = 7, /* Networking: local delivery, always last */
	CILIUM_STAGE_MAX      = 8,
};

/* skb->cb words the stages share. */
enum cilium_cb {
	CILIUM_CB_NEXT_STAGE = 0,
	CILIUM_CB_SRC_IDENTITY = 1,
	CILIUM_CB_DST_IDENTITY = 2,
	CILIUM_CB_DIRECTION = 3,
	CILIUM_CB_HOOK = 4,           /* enum cilium_hook: where the entry program runs */
};

/* bpf_redirect_peer only works from a tc ingress hook. */
enum cilium_hook {
	CILIUM_HOOK_TC_INGRESS = 0,
	CILIUM_HOOK_TC_EGRESS = 1,
};

/* struct endpoint_value.flags */
enum cilium_endpoint_flags {
	CILIUM_ENDPOINT_F_HOST = 1, /* the node itself, not a workload */
};

/* Reserved identities (Cilium's numbering). */
enum cilium_reserved_identity {
	CILIUM_ID_UNKNOWN = 0,
	CILIUM_ID_HOST = 1,
	CILIUM_ID_WORLD = 2,
	CILIUM_ID_UNMANAGED = 3,
	CILIUM_ID_HEALTH = 4,
	CILIUM_ID_INIT = 5,
	CILIUM_ID_REMOTE_NODE = 6,
	CILIUM_ID_KUBE_APISERVER = 7,
	CILIUM_ID_INGRESS = 8,
};

/* Drop reasons (Cilium's numbers, so tools that know them agree). */
enum cilium_drop_reason {
	CILIUM_REASON_FORWARDED = 0,
	CILIUM_DROP_POLICY = 133,       /* Policy denied */
	CILIUM_DROP_INVALID = 134,      /* Invalid packet */
	CILIUM_DROP_NO_TUNNEL_KEY = 146,/* No tunnel/encapsulation endpoint (datapath BUG!) */
	CILIUM_DROP_NO_SERVICE = 158,   /* Service backend not found */
	CILIUM_DROP_POLICY_DENY = 181,  /* Policy denied by denylist */
};

enum cilium_direction {
	CILIUM_DIR_INGRESS = 0,
	CILIUM_DIR_EGRESS = 1,
};

/* cilium_ipcache: LPM trie, prefix -> identity and tunnel endpoint. */
struct ipcache_key {
	__u32 prefixlen; /* bits of `addr` that count */
	__u32 addr;      /* IPv4, network order */
};

struct ipcache_value {
	__u32 identity;
	__u32 tunnel_endpoint; /* IPv4 of the node hosting it, network order; 0 = local */
	__u8  flags;
	__u8  pad[3];
};

/* cilium_lxc: local endpoints by address. */
struct endpoint_key {
	__u32 addr; /* IPv4, network order */
};

struct endpoint_value {
	__u32 ifindex;   /* host-side veth */
	__u16 endpoint_id;
	__u16 flags;
	__u32 identity;
	__u8  mac[6];
	__u8  node_mac[6];
};

/* struct node_config.flags */
enum cilium_node_flags {
	/* Rewrite MACs of packets delivered with bpf_redirect_peer (bpf.rewriteDeliveryMAC). */
	CILIUM_NODE_F_REWRITE_MAC = 1,
};

/* cilium_node: this node's datapath settings, one entry (key 0). */
struct node_config {
	__u32 vxlan_ifindex; /* cilium_vxlan in tunnel mode, 0 otherwise */
	__u32 flags;
};

/* cilium_metrics: per-CPU array of counters, indexed by
 * CILIUM_METRICS_INDEX(reason, direction) (an array lookup costs less per
 * packet than hashing a key). */
#define CILIUM_METRICS_ENTRIES 512
#define CILIUM_METRICS_INDEX(reason, direction) ((((__u32)(reason)) << 1) | ((direction) & 1))

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* cilium_stage_stats: per-CPU, indexed by enum cilium_stage. */
struct stage_stats {
	__u64 packets;
	__u64 bytes;
};

/* cilium_policy: LPM trie with every local endpoint's policy entries (one
 * map for all endpoints, the endpoint id leading the key, where upstream has
 * one map per endpoint). Data bits after prefixlen, most significant first:
 *   endpoint_id 16 | direction 8 | pad 8 | identity 32 | protocol 8 | pad 8 | dport 16
 * An entry always covers endpoint, direction and identity (identity 0 = any
 * peer: the stage looks up the peer's identity and 0). Prefix 64: every
 * protocol and port; 72: one protocol, every port; 80 + n: the first n bits
 * of the port (ranges are split into such blocks). ICMP types sit in dport. */
#define CILIUM_POLICY_PREFIX_ANY_PROTO 64
#define CILIUM_POLICY_PREFIX_ANY_PORT  72
#define CILIUM_POLICY_PREFIX_FULL      96

struct policy_key {
	__u32 prefixlen;
	__u16 endpoint_id; /* network order */
	__u8  direction;   /* enum cilium_direction */
	__u8  pad1;
	__u32 identity;    /* network order; 0 = any */
	__u8  protocol;    /* IP protocol; 0 = any */
	__u8  pad2;
	__u16 dport;       /* network order; ICMP: the type */
	/* Never part of a prefix. Keeps the key data a multiple of 8 bytes, so
	 * the value after it in the trie node is 8-aligned: the datapath's atomic
	 * counter adds must not straddle a cache line (a split lock costs ~1 us). */
	__u32 pad3;
};

enum cilium_policy_verdict {
	CILIUM_POLICY_ALLOW = 0,
	CILIUM_POLICY_DENY = 1,
};

struct policy_entry {
	__u8  verdict;   /* enum cilium_policy_verdict */
	__u8  pad[3];
	__u32 rule_id;   /* the rule that produced it (agent's rule table) */
	__u64 packets;   /* counted by the datapath */
	__u64 bytes;
};

/* cilium_policy_ep: per local endpoint, whether policy applies. */
enum cilium_policy_ep_flags {
	CILIUM_POLICY_F_INGRESS = 1, /* default deny on ingress: only entries allow */
	CILIUM_POLICY_F_EGRESS  = 2,
	CILIUM_POLICY_F_AUDIT   = 4, /* report what would be dropped, drop nothing */
	CILIUM_POLICY_F_INGRESS_ENTRIES = 8,  /* cilium_policy holds ingress entries for it */
	CILIUM_POLICY_F_EGRESS_ENTRIES  = 16, /* ... egress entries */
	CILIUM_POLICY_F_INGRESS_ANY = 32, /* ... ingress entries for any identity (0) */
	CILIUM_POLICY_F_EGRESS_ANY  = 64,
};

struct policy_ep_value {
	__u32 flags;
	__u32 revision; /* the policy revision these entries implement */
};

/* cilium_ct: connection tracking. The key is the tuple of the packet that
 * opened the connection; a packet whose reversed tuple is known is a reply.
 * ICMP echo uses the identifier as both ports. */
struct ct_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8  protocol;
	__u8  pad[3];
};

enum cilium_ct_flags {
	CILIUM_CT_F_SEEN_REPLY = 1,
};

struct ct_value {
	__u64 created_ns;
	__u64 last_seen_ns; /* within a second */
	__u32 src_identity;
	__u32 flags;
};

/* Policy verdict reasons in events (cilium_event.reason for POLICY_VERDICT). */
enum cilium_verdict {
	CILIUM_VERDICT_FORWARDED = 0,
	CILIUM_VERDICT_AUDIT = 1,
};

/* Records in the cilium_events ring buffer. */
enum cilium_event_type {
	CILIUM_EVENT_DROP = 1,
	CILIUM_EVENT_TRACE = 2,
	CILIUM_EVENT_POLICY_VERDICT = 3,
};

enum cilium_event_flags {
	CILIUM_EVENT_F_REPLY = 1,  /* the packet is a reply of a tracked connection */
	CILIUM_EVENT_F_AUDIT = 2,  /* policy would have dropped it; audit mode let it pass */
	CILIUM_EVENT_F_ICMP_TYPE_IN_DPORT = 4,
};

struct cilium_event {
	__u8  type;        /* enum cilium_event_type */
	__u8  stage;       /* enum cilium_stage, or 0xff for the entry */
	__u8  reason;      /* enum cilium_drop_reason */
	__u8  direction;   /* enum cilium_direction */
	__u32 ifindex;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8  protocol;
	__u8  flags;       /* enum cilium_event_flags */
	__u8  pad[2];
	__u32 rule_id;
	__u32 length;
	__u64 timestamp_ns;
};

#endif
