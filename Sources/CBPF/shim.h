#ifndef CILIUM_SWIFT_CBPF_SHIM_H
#define CILIUM_SWIFT_CBPF_SHIM_H
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/vfs.h>
#include <sys/mount.h>
/* Map layouts: the one definition, shared with the BPF C in bpf/. */
#include "../../bpf/include/cilium_maps.h"

/* TCX attach types are missing from the 6.1 uapi headers Debian ships. */
#define CILIUM_BPF_TCX_INGRESS 46
#define CILIUM_BPF_TCX_EGRESS 47

#endif
