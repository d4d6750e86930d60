/* The local endpoint map (owned by Networking, pinned by name), shared by the
 * entry programs and every stage that needs to know who lives on this node. */
#ifndef CILIUM_LIB_ENDPOINTS_H
#define CILIUM_LIB_ENDPOINTS_H
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65535);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lxc SEC(".maps");

/* The workload endpoint at `addr`, or NULL (unknown, or the node itself). */
static __always_inline struct endpoint_value *local_workload(__u32 addr)
{
	struct endpoint_key key = { .addr = addr };
	struct endpoint_value *ep = bpf_map_lookup_elem(&cilium_lxc, &key);
	if (ep && (ep->flags & CILIUM_ENDPOINT_F_HOST))
		return 0;
	return ep;
}
#endif
