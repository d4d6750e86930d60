/* Not part of the datapath: the floor cilium-bench measures pod-to-pod
 * delivery against. On a host-side veth's ingress it does the least a
 * veth-based datapath can do: one map lookup (the device the packet came in
 * on -> the host-side veth of the other pod) and bpf_redirect_peer into that
 * pod's namespace. No identity, policy, conntrack or events. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);   /* ingress ifindex */
	__type(value, __u32); /* ifindex whose peer receives the packet */
} bench_peer SEC(".maps");

SEC("tc")
int bench_redirect_peer(struct __sk_buff *skb)
{
	__u32 in = skb->ingress_ifindex;
	__u32 *out = bpf_map_lookup_elem(&bench_peer, &in);

	if (!out)
		return TC_ACT_OK;
	return bpf_redirect_peer(*out, 0);
}
