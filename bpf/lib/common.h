/* Shared includes and helpers for every datapath object. */
#ifndef CILIUM_LIB_COMMON_H
#define CILIUM_LIB_COMMON_H
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "../include/cilium_maps.h"

#define ENTRY_STAGE 0xff

/* Constants the uapi headers a BPF object can include do not carry. */
#ifndef AF_INET
#define AF_INET 2                 /* <sys/socket.h> (libc) */
#endif
#define CIL_IP_MF 0x2000          /* iphdr.frag_off: more fragments */
#define CIL_IP_OFFSET 0x1fff      /* iphdr.frag_off: fragment offset */
#define CIL_IPV4_IHL_BASE (sizeof(struct iphdr) / 4) /* ihl of a header without options */
#define CIL_IPV4_HOST_PREFIX 32   /* prefix length of one IPv4 address */
#define CIL_TCP_FLAGS_OFF 13      /* the flags byte in the TCP header (a bitfield in struct tcphdr) */

/* Maps shared by all objects are pinned by name under the agent's bpf root,
 * so every object that declares them gets the same map. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, CILIUM_STAGE_MAX);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CILIUM_METRICS_ENTRIES);
	__type(key, __u32);
	__type(value, struct metrics_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CILIUM_STAGE_MAX);
	__type(key, __u32);
	__type(value, struct stage_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_stage_stats SEC(".maps");

/* Stores into skb->cb must address the context directly (ctx + constant);
 * the verifier rejects a pointer into the context kept across a call, which
 * the compiler may otherwise produce. */
#define CB_SET(skb, idx, val) (*(volatile __u32 *)&(skb)->cb[(idx)] = (val))

struct packet_tuple {
	__u32 saddr, daddr;
	__u16 sport, dport; /* ICMP echo: the identifier in both */
	__u8 protocol;
	__u8 icmp_type;
	__u16 l4_off; /* offset of the TCP/UDP/ICMP header in the frame */
	__u8 tcp_flags;
};

#define CIL_TCP_SYN 0x02
#define CIL_TCP_ACK 0x10

#define ICMP_ECHOREPLY_TYPE 0
#define ICMP_ECHO_TYPE 8

/* The ICMP header as an echo request or reply has it (<linux/icmp.h> pulls
 * in libc headers a BPF object cannot use). */
struct cil_icmp_echo {
	__u8  type;
	__u8  code;
	__u16 checksum;
	__u16 id;
	__u16 sequence;
};

/* Parses Ethernet + IPv4 (+ TCP/UDP ports). Returns 1 for IPv4, 0 for other
 * traffic the datapath passes untouched, -1 for a truncated or bad packet. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct packet_tuple *t)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl < CIL_IPV4_IHL_BASE || ip->version != 4)
		return -1;
	t->saddr = ip->saddr;
	t->daddr = ip->daddr;
	t->protocol = ip->protocol;
	t->sport = t->dport = 0;
	t->l4_off = sizeof(struct ethhdr) + ip->ihl * 4;
	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
		__u16 *ports = (void *)ip + ip->ihl * 4;
		if ((void *)(ports + 2) > end)
			return -1;
		t->sport = ports[0];
		t->dport = ports[1];
		if (ip->protocol == IPPROTO_TCP) {
			__u8 *flags = (void *)ports + CIL_TCP_FLAGS_OFF;
			if ((void *)(flags + 1) <= end)
				t->tcp_flags = *flags;
		}
	} else if (ip->protocol == IPPROTO_ICMP) {
		struct cil_icmp_echo *icmp = (void *)ip + ip->ihl * 4;
		if ((void *)(icmp + 1) > end)
			return -1;
		t->icmp_type = icmp->type;
		if (icmp->type == ICMP_ECHO_TYPE || icmp->type == ICMP_ECHOREPLY_TYPE) {
			/* The identifier in both: a reply's reversed tuple is the request's. */
			t->sport = t->dport = icmp->id;
		}
	}
	return 1;
}

static __always_inline void count_metric_len(__u32 length, __u8 reason, __u8 dir)
{
	__u32 key = CILIUM_METRICS_INDEX(reason, dir);
	struct metrics_value *v = bpf_map_lookup_elem(&cilium_metrics, &key);
	if (v) {
		v->packets += 1;
		v->bytes += length;
	}
}

static __always_inline void count_metric(struct __sk_buff *skb, __u8 reason, __u8 dir)
{
	count_metric_len(skb->len, reason, dir);
}

/* What an event says about the packet itself, from a tc program or XDP. */
struct event_source {
	__u32 ifindex;
	__u32 length;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 flags; /* enum cilium_event_flags the packet itself carries */
};

static __always_inline void skb_event_source(struct __sk_buff *skb, struct event_source *src)
{
	src->ifindex = skb->ifindex;
	src->length = skb->len;
	src->src_identity = skb->cb[CILIUM_CB_SRC_IDENTITY];
	src->dst_identity = skb->cb[CILIUM_CB_DST_IDENTITY];
	/* It came out of the encryption device (cil_from_wireguard marked it). */
	src->flags = (skb->mark & CILIUM_MARK_MAGIC_MASK) == CILIUM_MARK_DECRYPT ? CILIUM_EVENT_F_ENCRYPTED : 0;
}

static __always_inline void emit_record(const struct event_source *src, __u8 type, __u8 stage, __u8 reason,
					__u8 direction, __u8 flags, const struct packet_tuple *t, __u32 rule_id)
{
	struct cilium_event *e = bpf_ringbuf_reserve(&cilium_events, sizeof(*e), 0);
	if (!e) {
		__u32 lost = CILIUM_METRICS_INDEX(CILIUM_EVENTS_LOST, 0);
		struct metrics_value *v = bpf_map_lookup_elem(&cilium_metrics, &lost);
		if (v)
			v->packets += 1;
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->stage = stage;
	e->reason = reason;
	e->direction = direction;
	e->flags = flags | src->flags;
	e->ifindex = src->ifindex;
	e->src_identity = src->src_identity;
	e->dst_identity = src->dst_identity;
	if (t) {
		e->saddr = t->saddr;
		e->daddr = t->daddr;
		e->sport = t->sport;
		e->dport = t->dport;
		e->protocol = t->protocol;
		if (t->protocol == IPPROTO_TCP)
			e->tcp_flags = t->tcp_flags;
		if (t->protocol == IPPROTO_ICMP) {
			e->dport = t->icmp_type;
			e->flags |= CILIUM_EVENT_F_ICMP_TYPE_IN_DPORT;
		}
	}
	e->rule_id = rule_id;
	e->length = src->length;
	e->timestamp_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void emit_event_full(struct __sk_buff *skb, __u8 type, __u8 stage, __u8 reason,
					    __u8 direction, __u8 flags, const struct packet_tuple *t, __u32 rule_id)
{
	struct event_source src;
	skb_event_source(skb, &src);
	emit_record(&src, type, stage, reason, direction, flags, t, rule_id);
}

static __always_inline void emit_event(struct __sk_buff *skb, __u8 type, __u8 stage,
				       __u8 reason, const struct packet_tuple *t, __u32 rule_id)
{
	emit_event_full(skb, type, stage, reason, skb->cb[CILIUM_CB_DIRECTION], 0, t, rule_id);
}

/* Every drop, from tc or XDP, goes through here: counted by reason and
 * direction, and reported with its reason, stage and (a policy's) rule.
 * `reason` is an enum cilium_drop_reason, never 0. */
static __always_inline void drop_record(const struct event_source *src, __u8 stage, __u8 reason, __u8 direction,
					const struct packet_tuple *t, __u32 rule_id)
{
	count_metric_len(src->length, reason, direction);
	emit_record(src, CILIUM_EVENT_DROP, stage, reason, direction, 0, t, rule_id);
}

/* A tc drop in `direction`: the policy stage checks a packet leaving one
 * local workload for another in both, and reports the direction that
 * dropped it, which need not be the packet's. */
static __always_inline int drop_packet_dir(struct __sk_buff *skb, __u8 stage, __u8 reason, __u8 direction,
					   const struct packet_tuple *t, __u32 rule_id)
{
	struct event_source src;
	skb_event_source(skb, &src);
	drop_record(&src, stage, reason, direction, t, rule_id);
	return TC_ACT_SHOT;
}

/* A tc drop in the packet's direction. */
static __always_inline int drop_packet(struct __sk_buff *skb, __u8 stage, __u8 reason,
				       const struct packet_tuple *t, __u32 rule_id)
{
	return drop_packet_dir(skb, stage, reason, skb->cb[CILIUM_CB_DIRECTION], t, rule_id);
}
#endif
