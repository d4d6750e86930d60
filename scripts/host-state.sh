#!/bin/sh
# Prints what a test run must leave as it found it on this machine: the root namespace's
# network and BPF sysctls, named network namespaces, bpffs entries, the sandbox's state,
# qemu processes. scripts/test.sh compares it before and after the suite.
sysctl -a 2>/dev/null | grep -E '^(net\.(ipv4|ipv6|core)\.|kernel\.(bpf_stats_enabled|unprivileged_bpf_disabled) )' \
    | grep -vE 'nf_conntrack_count|\.stable_secret|tcp_fastopen_key|^net\.ipv6\.route\.(gc_|max_size)|^net\.core\.netdev_rss_key' | sort
echo "netns: $(ls /run/netns 2>/dev/null | sort | tr '\n' ' ')"
# bpffs may be mounted by the run (the agent mounts it where it is missing); its own
# iterators (maps.debug, progs.debug) come with the mount.
echo "bpffs: $(ls /sys/fs/bpf 2>/dev/null | grep -vxE 'maps\.debug|progs\.debug' | sort | tr '\n' ' ')"
echo "sandboxes: $(ls /run/cilium-sandbox 2>/dev/null | sort | tr '\n' ' ')"
echo "qemu: $(pgrep -f qemu-system-x86_64 | tr '\n' ' ')"
echo "links: $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')"
# Mount points, but for the two a first run may add for good (bpffs, where it was missing, and
# /run/netns made a shared mount point, as `ip netns add` does).
echo "mounts: $(awk '{print $5}' /proc/self/mountinfo | grep -vxE '/sys/fs/bpf|/run/netns' | sort | tr '\n' ' ')"
for p in cilium-agent etcd iperf3 conmon podman wireguard-go chromium; do
    echo "processes $p: $(pgrep -c -x "$p")"
done
