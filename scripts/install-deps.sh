#!/bin/sh
# Installs what building and testing the project needs (Debian 12, as root).
# Idempotent: packages already present are left alone.
set -eu
PKGS="libbpf-dev libelf-dev zlib1g-dev libsystemd-dev pkg-config iproute2 iptables util-linux bpftool \
      systemd-container debootstrap etcd-server etcd-client curl busybox iperf3 \
      podman runc conmon containernetworking-plugins"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
fi
if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        echo "note: add /opt/swift/usr/bin to PATH" >&2
    else
        echo "error: Swift 6 toolchain not found (expected at /opt/swift)" >&2
        exit 1
    fi
fi
