#!/bin/sh
# The main job, on a fresh Debian 12 machine, as root: installs what is
# missing, builds, starts a two-node sandbox (namespaces only; the machine's
# own interfaces are not touched) and shows each agent's status.
# Leaves the sandbox running; remove it with:  .build/debug/cilium-sandbox down --name demo
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
swift build
BIN=.build/debug
$BIN/cilium-sandbox down --name demo >/dev/null
$BIN/cilium-sandbox up --name demo --nodes 2 "$@"
$BIN/cilium-sandbox status --name demo
for node in node1 node2; do
    echo
    echo "== cilium status on $node"
    $BIN/cilium-sandbox cilium --name demo $node -- status --verbose
done
echo
echo "Try: $BIN/cilium-sandbox cilium --name demo node1 -- config set hostFirewall.enabled=true"
echo "Remove: $BIN/cilium-sandbox down --name demo"
