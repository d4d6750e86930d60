#!/bin/sh
# The main job, on a fresh Debian 12 machine, as root: installs what is
# missing, builds, starts a two-node sandbox (namespaces only; the machine's
# own interfaces are not touched) with etcd, adds pods through cilium-cni,
# shows pods talking on one node and across nodes, a service (ClusterIP and
# NodePort), a network policy at work, the flows Hubble saw (allowed and
# dropped, with the policy that decided), and each agent's status.
# Leaves the sandbox running; remove it with:  .build/debug/cilium-sandbox down --name demo
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
swift build
S=.build/debug/cilium-sandbox
$S down --name demo >/dev/null
$S up --name demo --nodes 2 --set kubeProxyReplacement=true --set hubble.ui.enabled=true \
    --set 'hubble.metrics.enabled={flow,drop,tcp,port-distribution,icmp}' --set prometheus.enabled=true "$@"
$S pod add --name demo --node node1 --pod web --labels app=web
$S pod add --name demo --node node1 --pod client --labels app=client
$S pod add --name demo --node node2 --pod intruder --labels app=intruder
$S pod add --name demo --node node2 --pod web2 --labels app=web
$S status --name demo
addr() { $S status --name demo -o json | tr -d ' \n' | sed -n "s/.*\"address\":\"\([0-9.]*\)\",\"endpointID\":[0-9]*,\"identity\":[0-9]*,\"labels\":\[[^]]*\],\"name\":\"$1\".*/\1/p"; }
WEB=$(addr web); WEB2=$(addr web2)
echo
echo "== traffic (a tiny HTTP server in pods web and web2)"
WWW=/run/cilium-sandbox/demo/www
mkdir -p $WWW && echo "hello from a pod" > $WWW/index.html
$S exec --name demo web -- busybox httpd -p 8080 -h $WWW
$S exec --name demo web2 -- busybox httpd -p 8080 -h $WWW
sleep 0.5
$S exec --name demo client -- curl -s -o /dev/null -m 5 -w "client (node1) -> web  (node1) $WEB:8080  HTTP %{http_code} in %{time_total}s\n" "http://$WEB:8080/" || true
$S exec --name demo client -- curl -s -o /dev/null -m 5 -w "client (node1) -> web2 (node2) $WEB2:8080 HTTP %{http_code} in %{time_total}s (VXLAN)\n" "http://$WEB2:8080/" || true
$S exec --name demo node1 -- curl -s -o /dev/null -m 5 -w "node1 -> web (node1)                 HTTP %{http_code}\n" "http://$WEB:8080/" || true
echo
echo "== a service: examples/services/web.yaml (ClusterIP 10.96.0.10, NodePort 30080) on every node"
$S cilium --name demo all -- service apply -f examples/services/web.yaml >/dev/null
$S cilium --name demo node1 -- service list
$S exec --name demo client -- curl -s -o /dev/null -m 5 -w "client  (node1) -> 10.96.0.10:80 (ClusterIP)  HTTP %{http_code}\n" "http://10.96.0.10/" || true
$S exec --name demo outside -- curl -s -o /dev/null -m 5 -w "outside         -> 172.30.0.12:30080 (NodePort on node2) HTTP %{http_code}\n" "http://172.30.0.12:30080/" || true
echo
echo "== policy: examples/policies/web-from-client.yaml on every node"
$S cilium --name demo all -- policy import examples/policies/web-from-client.yaml
$S exec --name demo client -- curl -s -o /dev/null -m 3 -w "client   (node1) -> web  (node1) HTTP %{http_code}   allowed by default/web-from-client\n" "http://$WEB:8080/" || true
$S exec --name demo intruder -- curl -s -o /dev/null -m 3 -w "intruder (node2) -> web  (node1) HTTP %{http_code}\n" "http://$WEB:8080/" || echo "   (dropped: Policy denied, as the policy says)"
$S cilium --name demo node1 -- policy trace --src-labels app=intruder --dst-labels app=web --dport 8080/TCP
EP=$($S cilium --name demo node1 -- endpoint list | awk -v a="$WEB" '$0 ~ a {print $1}')
$S cilium --name demo node1 -- bpf policy get "$EP"
echo
echo "== flows (hubble observe, both nodes merged): traffic to web, with the policy that decided"
$S hubble --name demo -- observe --last 12 --to-pod default/web --print-policy-names --print-node-name
echo
echo "== dropped flows only, as JSON (upstream's field names)"
$S hubble --name demo node1 -- observe --last 1 --verdict DROPPED -o json
echo
echo "== Hubble metrics on node1 (:9965), drops"
$S exec --name demo node1 -- curl -s localhost:9965/metrics | grep '^hubble_drop_total' || true
for node in node1 node2; do
    echo
    echo "== cilium status on $node"
    $S cilium --name demo $node -- status
    $S cilium --name demo $node -- endpoint list
done
echo
echo "Try: $S cilium --name demo node1 -- bpf ipcache list"
echo "     $S cilium --name demo all -- policy delete web-from-client"
echo "     $S cilium --name demo node1 -- config set hostFirewall.enabled=true"
echo "     $S hubble --name demo -- observe --follow              (Ctrl-C to stop)"
echo "     $S exec --name demo node1 -- chromium --headless --no-sandbox --screenshot=/tmp/map.png http://127.0.0.1:8081/"
echo "Remove: $S down --name demo   (also stops what runs in the pods)"
