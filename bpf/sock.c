/* Socket LB (owned by the LoadBalancer subsystem): cgroup v2 hooks that
 * translate a service address once, when a socket connects (or sends an
 * unconnected UDP datagram), so its packets go straight to the backend and
 * the per-packet LB stage has nothing to do. getpeername() and recvmsg()
 * show the service address again. Frontends with session affinity or Maglev
 * are left to the LB stage, which keeps those guarantees per flow. */
#include "lib/common.h"
#include "lib/lb.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb4_sock_key);
	__type(value, struct lb4_sock_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_sock_revnat SEC(".maps");

#define SOCK_PASS 1

static __always_inline int sock_translate(struct bpf_sock_addr *ctx)
{
	__u8 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return SOCK_PASS;
	struct lb4_key key = { .address = ctx->user_ip4, .dport = (__u16)ctx->user_port, .proto = proto };
	struct lb4_service *svc = lb4_lookup_frontend(&key);
	/* A NodePort on this node's own address is translated here for the node's own
	 * sockets: no device sees that traffic. Other NodePort traffic is the LB stage's. */
	__u32 frontends = key.address ? (LB_F_CLUSTER_IP | LB_F_EXTERNAL_IP | LB_F_LOADBALANCER) : LB_F_NODEPORT;
	if (!svc || !svc->count || (svc->flags & (LB_F_AFFINITY | LB_F_MAGLEV)) || !(svc->flags & frontends))
		return SOCK_PASS; /* the LB stage handles it (or drops it with a reason) */
	struct lb4_key slot = key;
	slot.backend_slot = (bpf_get_prandom_u32() % svc->count) + 1;
	struct lb4_service *s = bpf_map_lookup_elem(&cilium_lb4_services, &slot);
	if (!s)
		return SOCK_PASS;
	__u32 id = s->backend_id;
	struct lb4_backend *be = bpf_map_lookup_elem(&cilium_lb4_backends, &id);
	if (!be || be->state != LB_BACKEND_ACTIVE)
		return SOCK_PASS;
	struct lb4_sock_key rk = { .cookie = bpf_get_socket_cookie(ctx), .address = be->address, .port = be->port };
	struct lb4_sock_value rv = { .address = ctx->user_ip4, .port = key.dport, .rev_nat_index = svc->rev_nat_index };
	bpf_map_update_elem(&cilium_lb4_sock_revnat, &rk, &rv, BPF_ANY);
	ctx->user_ip4 = be->address;
	ctx->user_port = be->port;
	return SOCK_PASS;
}

static __always_inline int sock_reverse(struct bpf_sock_addr *ctx)
{
	struct lb4_sock_key rk = { .cookie = bpf_get_socket_cookie(ctx), .address = ctx->user_ip4,
				   .port = (__u16)ctx->user_port };
	struct lb4_sock_value *rv = bpf_map_lookup_elem(&cilium_lb4_sock_revnat, &rk);
	if (rv) {
		ctx->user_ip4 = rv->address;
		ctx->user_port = rv->port;
	}
	return SOCK_PASS;
}

SEC("cgroup/connect4")
int cil_sock4_connect(struct bpf_sock_addr *ctx) { return sock_translate(ctx); }

SEC("cgroup/sendmsg4")
int cil_sock4_sendmsg(struct bpf_sock_addr *ctx) { return sock_translate(ctx); }

SEC("cgroup/recvmsg4")
int cil_sock4_recvmsg(struct bpf_sock_addr *ctx) { return sock_reverse(ctx); }

SEC("cgroup/getpeername4")
int cil_sock4_getpeername(struct bpf_sock_addr *ctx) { return sock_reverse(ctx); }
