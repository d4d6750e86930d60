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
	CILIUM_CB_HOOK = 4,           /* low byte: enum cilium_hook; bits 8+: enum cilium_cb_flags */
};

#define CILIUM_CB_HOOK_MASK 0xff
#define CILIUM_CB_FLAGS_SHIFT 8

/* bpf_redirect_peer only works from a tc ingress hook. */
enum cilium_hook {
	CILIUM_HOOK_TC_INGRESS = 0,
	CILIUM_HOOK_TC_EGRESS = 1,
};

/* Flags in cb[CILIUM_CB_FLAGS]. */
enum cilium_cb_flags {
	CILIUM_CB_F_LB_REPLY = 1, /* a reply of a connection the load balancer translated */
	CILIUM_CB_F_NETDEV = 2,   /* on one of the node's devices (not an endpoint's veth) */
	CILIUM_CB_F_NEW = 4,      /* the first packet of a connection (the policy stage's conntrack says so) */
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
	/* Node-local identities (CIDRs named by policies) start here, as upstream's local scope;
	 * they never leave the node (the tunnel carries world instead). */
	CILIUM_IDENTITY_LOCAL_SCOPE = 1 << 24,
};

/* Drop reasons (Cilium's numbers, so tools that know them agree; a reason
 * upstream has no number for takes one from 240 up). Every one has its name
 * and text in the agent's DropReasons table (Hubble, `cilium monitor`,
 * metrics). INVALID is for malformed or short packets only: a failure to
 * change a packet has a reason of its own. */
enum cilium_drop_reason {
	CILIUM_REASON_FORWARDED = 0,
	CILIUM_DROP_POLICY = 133,       /* Policy denied */
	CILIUM_DROP_INVALID = 134,      /* Invalid packet */
	CILIUM_DROP_WRITE_ERROR = 141,  /* Error writing to packet (store, adjust room/head) */
	CILIUM_DROP_NO_TUNNEL_KEY = 147,/* Error retrieving tunnel key */
	CILIUM_DROP_CSUM_L3 = 153,      /* Error while correcting L3 checksum */
	CILIUM_DROP_CSUM_L4 = 154,      /* Error while correcting L4 checksum */
	CILIUM_DROP_NO_SERVICE = 158,   /* Service backend not found */
	CILIUM_DROP_POLICY_DENY = 181,  /* Policy denied by denylist */
	CILIUM_DROP_UNENCRYPTED = 195,  /* Traffic is unencrypted (encryption strict mode) */
	/* Not upstream's: DSR names the frontend in an IPv4 option of a header
	 * that has none, and this one already has some. */
	CILIUM_DROP_DSR_IP_OPTIONS = 240,
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
	__u8  key;             /* the hosting node's encryption key (its record's EncryptionKey); 0 = none */
	__u8  pad[2];
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

/* The VXLAN port between nodes (upstream's). */
#define CILIUM_TUNNEL_PORT 8472
/* The outer TTL of tunnelled packets. */
#define CILIUM_TUNNEL_TTL 64

/* cilium_node: this node's datapath settings, one entry (key 0). */
struct node_config {
	__u32 vxlan_ifindex; /* cilium_vxlan in tunnel mode, 0 otherwise */
	__u32 flags;
	__u32 address;       /* the node's own IPv4 (its first device), network order */
	__u32 pad;
};

/* cilium_metrics: per-CPU array of counters, indexed by
 * CILIUM_METRICS_INDEX(reason, direction) (an array lookup costs less per
 * packet than hashing a key). */
#define CILIUM_METRICS_ENTRIES 512
/* Not a drop: events the ring buffer had no room for (Hubble's lost events),
 * counted at CILIUM_METRICS_INDEX(CILIUM_EVENTS_LOST, 0). */
#define CILIUM_EVENTS_LOST 255
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

/* cilium_policy_node: one entry. NONE: no endpoint of this node has any
 * policy flag (nothing to enforce, audit or count), so the stage only tracks
 * connections; SOME or UNKNOWN (0, before the agent said): the full lookup. */
enum cilium_policy_node_state {
	CILIUM_POLICY_NODE_UNKNOWN = 0,
	CILIUM_POLICY_NODE_NONE = 1,
	CILIUM_POLICY_NODE_SOME = 2,
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

/* ---- LoadBalancer (kube-proxy replacement) ---- */

/* cilium_lb4_services: a frontend (address, port, protocol) and its backend
 * slots, as upstream lays them out: slot 0 holds the service (count, flags,
 * reverse-NAT index), slots 1..count hold backend ids, active ones first.
 * address 0 with LB_F_NODEPORT: a NodePort on every address of the node. */
struct lb4_key {
	__u32 address;      /* network order */
	__u16 dport;        /* network order */
	__u16 backend_slot;
	__u8  proto;
	__u8  pad[3];
};

enum lb_service_flags {
	LB_F_CLUSTER_IP = 1,
	LB_F_NODEPORT = 2,
	LB_F_EXTERNAL_IP = 4,
	LB_F_LOADBALANCER = 8,
	LB_F_AFFINITY = 16,
	LB_F_MAGLEV = 32,
	LB_F_LOCAL = 64,    /* traffic policy Local: only this node's backends */
};

struct lb4_service {
	__u32 backend_id;       /* slots 1..count */
	__u16 count;            /* slot 0: backends that take new connections */
	__u16 rev_nat_index;    /* slot 0: frontend id (reverse NAT, affinity, Maglev) */
	__u32 affinity_timeout; /* slot 0: seconds; 0 = no session affinity */
	__u32 flags;            /* slot 0: enum lb_service_flags */
};

enum lb_backend_state {
	LB_BACKEND_ACTIVE = 0,
	LB_BACKEND_TERMINATING = 1,  /* open connections only */
	LB_BACKEND_QUARANTINED = 2,
	LB_BACKEND_MAINTENANCE = 3,
};

/* cilium_lb4_backends: backend id -> where it is. */
struct lb4_backend {
	__u32 address;  /* network order */
	__u16 port;     /* network order */
	__u8  proto;
	__u8  state;    /* enum lb_backend_state */
};

/* cilium_lb4_reverse_nat: frontend id -> the address replies come from. */
struct lb4_reverse_nat {
	__u32 address;  /* 0: the node's own address (NodePort) */
	__u16 port;
	__u16 flags;    /* enum lb_revnat_flags */
};

enum lb_revnat_flags {
	/* Replies leave through the node's device straight away (a FIB lookup
	 * and a redirect): their source is now one of the node's own
	 * addresses, which the node's stack would refuse to forward. */
	LB_REVNAT_F_FIB = 1,
};

/* cilium_lb4_affinity: (client, frontend) -> the backend it stays with. */
struct lb4_affinity_key {
	__u32 client;
	__u16 rev_nat_index;
	__u16 pad;
};

struct lb4_affinity_value {
	__u64 last_used_ns;
	__u32 backend_id;
	__u32 pad;
};

/* cilium_lb4_ct: connections the load balancer translated. kind SERVICE:
 * the client's tuple towards the frontend -> the backend chosen. kind
 * BACKEND: the tuple as it leaves (client or SNAT address -> backend) ->
 * what replies are rewritten back to. */
enum lb_ct_kind {
	LB_CT_SERVICE = 0,
	LB_CT_BACKEND = 1,
	/* On a DSR backend's node: the tuple as it reached the backend (client
	 * -> backend) -> the frontend its replies leave from (client, client_port). */
	LB_CT_DSR = 2,
};

struct lb4_ct_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8  proto;
	__u8  kind;   /* enum lb_ct_kind */
	__u8  pad[2];
};

struct lb4_ct_value {
	__u32 backend_id;
	__u16 rev_nat_index;
	__u16 flags;         /* LB_CT_F_SNAT: the source was rewritten too */
	__u32 client;        /* BACKEND entries with SNAT: the original client; DSR entries: the frontend */
	__u16 client_port;
	__u16 pad;
	__u64 last_seen_ns;
};

enum lb_ct_flags {
	LB_CT_F_SNAT = 1,
	LB_CT_F_DSR = 2,
};

/* cilium_lb4_sock_revnat: socket LB. A socket whose connect()/sendmsg() went
 * to a frontend and was sent to a backend instead: what getpeername() and
 * recvmsg() must show (the frontend). */
struct lb4_sock_key {
	__u64 cookie;   /* bpf_get_socket_cookie */
	__u32 address;  /* the backend, network order */
	__u16 port;     /* network order */
	__u16 pad;
};

struct lb4_sock_value {
	__u32 address;  /* the frontend */
	__u16 port;
	__u16 rev_nat_index;
};

/* cilium_lb4_config: one entry. */
struct lb4_config {
	__u32 maglev_size;  /* slots per Maglev table (maglev.tableSize) */
	__u32 maglev_seed;  /* from maglev.hashSeed: every node hashes alike */
	__u32 flags;        /* enum lb_config_flags */
	__u32 pad;
};

enum lb_config_flags {
	/* loadBalancer.mode: how traffic from outside reaches another node's
	 * backend. Neither flag: SNAT (replies come back through this node).
	 * dsr sets both, hybrid only TCP: the destination becomes the backend,
	 * the source stays the client, and the first packet (every UDP one)
	 * carries the frontend in an IPv4 option; the backend's node answers
	 * the client directly from the frontend's address. */
	LB_CONFIG_F_DSR_TCP = 1,
	LB_CONFIG_F_DSR_UDP = 2,
};

/* cilium_lb4_xdp_stats (per-CPU): what the XDP program did. */
enum lb_xdp_counter {
	LB_XDP_TRANSLATED = 0, /* a request sent on to another node's backend */
	LB_XDP_REVERSED = 1,   /* a SNAT reply sent back to its client */
	LB_XDP_PASSED = 2,     /* left to the stack and the tc stages */
	LB_XDP_COUNTERS = 3,
};

/* The IPv4 option upstream's DSR uses: copied flag | 0x1a, length 8, then
 * the frontend's port and address (network order). */
#define DSR_IPV4_OPT_TYPE 0x9a
#define DSR_IPV4_OPT_LEN  8

/* ---- Encryption ---- */

/* The UDP port of WireGuard between nodes (upstream's). */
#define CILIUM_WG_PORT 51871
/* skb->mark, bits 8-15 (upstream's magic values): ENCRYPT is set on a pod's packet that
 * must leave the node encrypted (it survives the tunnel's encapsulation and routing);
 * DECRYPT on a packet that came out of the encryption device; WIREGUARD is on the
 * packets cilium_wg0 itself emits. */
#define CILIUM_MARK_MAGIC_MASK 0xff00
#define CILIUM_MARK_DECRYPT    0x0d00
#define CILIUM_MARK_ENCRYPT    0x0e00
#define CILIUM_MARK_WIREGUARD  0x1e00

/* struct encrypt_config.flags */
enum cilium_encrypt_flags {
	CILIUM_ENCRYPT_F_NODE = 1,               /* encryption.nodeEncryption: node-to-node traffic too */
	CILIUM_ENCRYPT_F_STRICT = 2,             /* encryption.strictMode.enabled */
	CILIUM_ENCRYPT_F_STRICT_REMOTE_NODE = 4, /* .strictMode.allowRemoteNodeIdentities */
	CILIUM_ENCRYPT_F_IPSEC = 8,              /* encryption.type ipsec: marks for the kernel's XFRM, no device */
};

/* cilium_encrypt_nodes (owned by Encryption, IPsec): per other node, by its address (network
 * order): the node ID in this node's numbering and the SPI to send to it with. A pod's packet
 * for it is marked 0x0E00 | spi << 12 | node_id << 16 (the XFRM OUT policy's mark); an ESP
 * packet from it is marked 0x0D00 | node_id << 16 (its IN state's mark). */
struct encrypt_node_value {
	__u16 node_id;
	__u8  spi;
	__u8  pad;
};
#define CILIUM_IPPROTO_ESP 50

/* cilium_encrypt_state (owned by Encryption): one entry, key 0. */
struct encrypt_config {
	__u32 wg_ifindex;  /* cilium_wg0 in this namespace; 0 = no device (nothing is steered) */
	__u32 flags;       /* enum cilium_encrypt_flags */
	__u32 strict_addr; /* strict mode's CIDR, network order */
	__u32 strict_mask; /* its netmask, network order */
};

/* Records in the cilium_events ring buffer. */
enum cilium_event_type {
	CILIUM_EVENT_DROP = 1,
	CILIUM_EVENT_TRACE = 2,
	CILIUM_EVENT_POLICY_VERDICT = 3,
};
/* TRACE: a new connection no policy decided on (the policy stage saw it
 * allowed by default); POLICY_VERDICT: one a policy allowed or audited;
 * DROP: every drop, with its reason. Established traffic and replies are not
 * reported (upstream's monitor aggregation does the same). */

enum cilium_event_flags {
	CILIUM_EVENT_F_REPLY = 1,  /* the packet is a reply of a tracked connection */
	CILIUM_EVENT_F_AUDIT = 2,  /* policy would have dropped it; audit mode let it pass */
	CILIUM_EVENT_F_ICMP_TYPE_IN_DPORT = 4,
	CILIUM_EVENT_F_ENCRYPTED = 8, /* the packet leaves the node encrypted (the encryption stage's TRACE) or arrived so */
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
	__u8  tcp_flags;   /* TCP: the header's flags byte (FIN 0x01 ... CWR 0x80) */
	__u8  pad;
	__u32 rule_id;
	__u32 length;
	__u64 timestamp_ns;
};

#endif
