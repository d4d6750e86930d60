#!/bin/sh
# Installs what building and testing the project needs (Debian 12, as root).
# Idempotent: packages already present are left alone.
set -eu
PKGS="libbpf-dev tcpdump libelf-dev zlib1g-dev libsystemd-dev pkg-config iproute2 iptables util-linux bpftool \
      systemd-container debootstrap etcd-server etcd-client curl busybox iperf3 wireguard-go wireguard-tools \
      podman runc conmon containernetworking-plugins nftables kmod cpio xz-utils \
      libcurl4-openssl-dev openssl"
# promtool (in the prometheus package) checks the metrics; chromium runs the
# service map page test; qemu runs the second-kernel tier (scripts/kernel-vm).
# Installed without recommends and without starting their services.
EXTRA="prometheus chromium qemu-system-x86"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
extra=""
for p in $EXTRA; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || extra="$extra $p"
done
if [ -n "$missing$extra" ]; then
    echo "installing:$missing$extra"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    [ -z "$missing" ] || apt-get install -y -qq $missing >/dev/null
    if [ -n "$extra" ]; then
        guard=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1
        fi
        apt-get install -y -qq --no-install-recommends $extra >/dev/null
        [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
    fi
fi
if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        echo "note: add /opt/swift/usr/bin to PATH" >&2
    else
        echo "error: Swift 6 toolchain not found (expected at /opt/swift)" >&2
        exit 1
    fi
fi
