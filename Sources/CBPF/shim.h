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

#include <sys/syscall.h>
#include <unistd.h>

/* A copy of another process's descriptor (pidfd_open + pidfd_getfd, Linux 5.6+; syscall() is variadic, which
 * Swift cannot call): the agent tunes the UDP socket of the wireguard-go it runs. -1 and errno on failure. */
static inline int cil_copy_fd_of_process(int pid, int fd)
{
	int pidfd = (int)syscall(434 /* SYS_pidfd_open */, pid, 0);
	if (pidfd < 0)
		return -1;
	int copy = (int)syscall(438 /* SYS_pidfd_getfd */, pidfd, fd, 0);
	close(pidfd);
	return copy;
}

/* TCX attach types are missing from the 6.1 uapi headers Debian ships. */
#define CILIUM_BPF_TCX_INGRESS 46
#define CILIUM_BPF_TCX_EGRESS 47

#endif
