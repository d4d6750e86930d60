import Manifests
import Testing
import TestSupport

/// The policy and service readers under the mutation fuzzer (issue 16): no trap, no input over
/// 1 s, no runaway memory. `CILIUM_FUZZ_INPUTS=100000 swift test --filter FuzzTests` for a long run.
@Suite(.serialized) struct FuzzTests {
    static let policySeeds = [
        Fuzzer.repositoryFile("examples/policies/web-from-client.yaml"),
        // Issue 17's shapes: a native rule list (any case), a file with a CIDR group, IPv6 peers and other objects.
        #"[{"endpointSelector": {"matchLabels": {"app": "echo"}}, "Ingress": [{"FromEndpoints": [{}], "toCIDR": ["::/0", "10.0.0.0/8"]}], "labels": [{"key": "io.cilium.k8s.policy.name", "value": "n"}]}]"#,
        MultiObjectFileTests.file,
        """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: mixed, namespace: prod, labels: {team: a}}
        specs:
        - endpointSelector: {matchExpressions: [{key: app, operator: In, values: [web, api]}]}
          ingress:
          - fromCIDRSet: [{cidr: 10.0.0.0/8, except: [10.96.0.0/12]}]
            toPorts: [{ports: [{port: "80", endPort: 90, protocol: TCP}]}]
          - fromEntities: [world, cluster, host]
          ingressDeny:
          - fromEndpoints: [{matchLabels: {k8s:app: bad}}]
          egress:
          - toEndpoints: [{}]
            icmps: [{fields: [{type: 8, family: IPv4}]}]
        ---
        apiVersion: cilium.io/v2
        kind: CiliumClusterwideNetworkPolicy
        metadata: {name: cw}
        spec: {endpointSelector: {}, enableDefaultDeny: {ingress: true, egress: false}, egress: [{toEntities: [all]}]}
        """,
        #"{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "j"}, "spec": {"endpointSelector": {"matchLabels": {"app": "x"}}, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "y"}}], "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}]}}"#,
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: a}\nspec:\n  endpointSelector: &s {matchLabels: {app: x}}\n  ingress: [{fromEndpoints: [*s, *s]}]\n",
    ]

    static let serviceSeeds = [
        Fuzzer.repositoryFile("examples/services/web.yaml"),
        """
        apiVersion: v1
        kind: Service
        metadata: {name: np, namespace: prod}
        spec:
          type: NodePort
          clusterIP: 10.96.0.20
          externalIPs: [192.0.2.1]
          externalTrafficPolicy: Local
          sessionAffinity: ClientIP
          sessionAffinityConfig: {clientIP: {timeoutSeconds: 30}}
          ports: [{name: http, port: 80, targetPort: http, nodePort: 30080, protocol: TCP}]
        status: {loadBalancer: {ingress: [{ip: 192.0.2.2}]}}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: np-1, namespace: prod, labels: {kubernetes.io/service-name: np}}
        addressType: IPv4
        ports: [{name: http, port: 8080}]
        endpoints:
        - addresses: [10.0.1.5]
          conditions: {ready: true, serving: true, terminating: false}
          nodeName: node1
        """,
    ]

    @Test func policyReader() {
        let report = Fuzzer.run("policy reader", seeds: Self.policySeeds) { text in _ = try? PolicyParser.parse(text, file: "fuzz.yaml") }
        #expect(report.slowest < Fuzzer.slowest)
    }

    @Test func serviceReader() {
        let report = Fuzzer.run("service reader", seeds: Self.serviceSeeds) { text in _ = try? ServiceManifestParser.parse(text, file: "fuzz.yaml") }
        #expect(report.slowest < Fuzzer.slowest)
    }
}
