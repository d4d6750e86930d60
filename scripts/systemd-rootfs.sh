#!/bin/sh
# Builds (once) a minimal Debian root filesystem with a real systemd, in which
# the service tests boot with systemd-nspawn (PLATFORM.md: PID 1 here is not
# systemd). Prints the rootfs path. Cached under /var/cache/cilium-swift.
set -eu
ROOTFS=${CILIUM_SYSTEMD_ROOTFS:-/var/cache/cilium-swift/systemd-rootfs}
# The agent's shared libraries (libbpf, libelf, libcurl for etcd) must be in it: a cache without one is made again.
if [ -x "$ROOTFS/lib/systemd/systemd" ] && [ -x "$ROOTFS/bin/kill" ] && ls "$ROOTFS"/usr/lib/*/libbpf.so.1 >/dev/null 2>&1 \
    && ls "$ROOTFS"/usr/lib/*/libcurl.so.4 >/dev/null 2>&1; then
    echo "$ROOTFS"
    exit 0
fi
MIRROR=$(sed -n 's/^URIs: *\(.*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
[ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb \([^ ]*\) bookworm main.*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
rm -rf "$ROOTFS.tmp"
mkdir -p "$(dirname "$ROOTFS")"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps,libbpf1,libelf1,libcurl4 bookworm "$ROOTFS.tmp" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
    echo "debootstrap failed; see $ROOTFS.log" >&2
    exit 1
}
rm -rf "$ROOTFS"
mv "$ROOTFS.tmp" "$ROOTFS"
echo "$ROOTFS"
