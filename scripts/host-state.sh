#!/bin/sh
# Prints what a test run must leave as it found it on this machine: the root namespace's
# network and BPF sysctls, named network namespaces, bpffs entries, the sandbox's state,
# qemu processes. scripts/test.sh compares it before and after the suite.
sysctl -a 2>/dev/null | grep -E '^(net\.(ipv4|ipv6|core)\.|kernel\.(bpf_stats_enabled|unprivileged_bpf_disabled) )' \
    | grep -vE 'nf_conntrack_count|\.stable_secret|^net\.ipv6\.route\.(gc_|max_size)|^net\.core\.(netdev_rss_key)' | sort
echo "netns: $(ls /run/netns 2>/dev/null | sort | tr '\n' ' ')"
echo "bpffs: $(ls /sys/fs/bpf 2>/dev/null | sort | tr '\n' ' ')"
echo "sandboxes: $(ls /run/cilium-sandbox 2>/dev/null | sort | tr '\n' ' ')"
echo "qemu: $(pgrep -f qemu-system-x86_64 | tr '\n' ' ')"
