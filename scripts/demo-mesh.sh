#!/bin/sh
# Cluster mesh, on a fresh Debian 12 machine, as root: installs what is missing, builds, starts two clusters
# of one node each in the sandbox (each its own etcd, over TLS with client certificates), joins them, and shows
# pods talking across clusters, a global service spread over both clusters (and its affinity), a policy that
# selects by cluster, the flows Hubble saw (naming the other cluster's pods) and cilium clustermesh status.
# Leaves the sandbox running; remove it with:  .build/debug/cilium-sandbox down --name mesh
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
swift build
S=.build/debug/cilium-sandbox
$S down --name mesh >/dev/null
$S up --name mesh --clusters 2 --nodes 1 --set kubeProxyReplacement=true "$@"
$S pod add --name mesh --node node1 --pod web1 --labels app=web
$S pod add --name mesh --node node1 --pod client1 --labels app=client
$S pod add --name mesh --node node2 --pod web2 --labels app=web
$S pod add --name mesh --node node2 --pod client2 --labels app=client
addr() { $S status --name mesh -o json | tr -d ' \n' | sed -n "s/.*\"address\":\"\([0-9.]*\)\",\"endpointID\":[0-9]*,\"identity\":[0-9]*,\"labels\":\[[^]]*\],\"name\":\"$1\".*/\1/p"; }
WEB1=$(addr web1); WEB2=$(addr web2)
WWW=/run/cilium-sandbox/mesh/www
for w in web1 web2; do mkdir -p $WWW/$w && echo "hello from $w" > $WWW/$w/index.html; $S exec --name mesh $w -- busybox httpd -p 8080 -h $WWW/$w; done
echo
echo "== join the clusters: each node reads the other cluster's etcd (upstream's clustermesh-config files)"
$S clustermesh connect --name mesh
for i in $(seq 1 50); do
    $S cilium --name mesh node1 -- status | grep -q "ClusterMesh:.*1/1 remote clusters ready" && break
    sleep 0.2
done
$S cilium --name mesh node1 -- clustermesh status
echo
echo "== pods across clusters (cluster1 is 10.0.x.x, cluster2 10.1.x.x; identities in each cluster's range)"
$S exec --name mesh client1 -- curl -s -m 5 -w "   client1 (cluster1) -> web2 (cluster2) $WEB2:8080 HTTP %{http_code}\n" "http://$WEB2:8080/" || true
$S exec --name mesh client2 -- curl -s -m 5 -w "   client2 (cluster2) -> web1 (cluster1) $WEB1:8080 HTTP %{http_code}\n" "http://$WEB1:8080/" || true
echo
echo "== a global service: examples/clustermesh/echo-global.yaml in both clusters"
$S cilium --name mesh all -- service apply -f examples/clustermesh/echo-global.yaml >/dev/null
sleep 1
$S cilium --name mesh node1 -- service list
for i in 1 2 3 4 5 6; do $S exec --name mesh client1 -- curl -s -m 3 http://10.96.0.50/ || true; done
echo "   with service.cilium.io/affinity: local, cluster1's clients stay in cluster1 while it has a backend:"
sed 's|service.cilium.io/global: "true"|service.cilium.io/global: "true"\n    service.cilium.io/affinity: local|' examples/clustermesh/echo-global.yaml \
    > /run/cilium-sandbox/mesh/echo-local.yaml
$S cilium --name mesh all -- service apply -f /run/cilium-sandbox/mesh/echo-local.yaml >/dev/null
sleep 1
$S cilium --name mesh node1 -- service list --clustermesh-affinity
for i in 1 2 3 4; do $S exec --name mesh client1 -- curl -s -m 3 http://10.96.0.50/ || true; done
echo
echo "== policy by cluster: examples/clustermesh/web-from-cluster1.yaml on node2 (cluster2)"
$S cilium --name mesh node2 -- policy import examples/clustermesh/web-from-cluster1.yaml
$S exec --name mesh client1 -- curl -s -o /dev/null -m 3 -w "   client1 (cluster1) -> web2 HTTP %{http_code}   allowed\n" "http://$WEB2:8080/" || true
$S exec --name mesh client2 -- curl -s -o /dev/null -m 3 "http://$WEB2:8080/" && echo "   client2 (cluster2) -> web2 allowed?!" \
    || echo "   client2 (cluster2) -> web2 dropped: Policy denied (it is not cluster1's)"
echo
echo "== flows on node2: the other cluster's pods are named with their cluster"
$S hubble --name mesh node2 -- observe --last 8 --to-pod default/web2 --print-policy-names
echo
echo "== cilium status on node1"
$S cilium --name mesh node1 -- status --verbose | sed -n '/ClusterMesh/,/Modules/p'
echo
echo "Try: $S etcd --name mesh --cluster 2 stop     (node1 keeps cluster2's state; clustermesh.cacheTTL drops it after a while)"
echo "     $S clustermesh disconnect --name mesh"
echo "     .build/debug/cilium connectivity test --multi-cluster"
echo "Remove: $S down --name mesh"
