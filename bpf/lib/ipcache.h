/* The ipcache (prefix -> identity, tunnel endpoint) and the node's datapath
 * settings: owned by Networking, pinned by name, read by every stage. */
#ifndef CILIUM_LIB_IPCACHE_H
#define CILIUM_LIB_IPCACHE_H
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 512000);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct node_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_node SEC(".maps");

static __always_inline __u32 identity_of(__u32 addr)
{
	struct ipcache_key key = { .prefixlen = CIL_IPV4_HOST_PREFIX, .addr = addr };
	struct ipcache_value *v = bpf_map_lookup_elem(&cilium_ipcache, &key);
	return v ? v->identity : CILIUM_ID_WORLD;
}

#endif
