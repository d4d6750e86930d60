import API
import CBPF
import Manifests
import Testing
@testable import Policy

/// Ports named by the pod (`port: http-8080` in an ingress rule): each selected endpoint's own named ports give the
/// number; an endpoint without the name gets nothing from the rule (not every port).
@Suite struct NamedPortTests {
    static let policy = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: deny-named
        spec:
          endpointSelector:
            matchLabels:
              kind: echo
          ingressDeny:
          - toPorts:
            - ports:
              - { port: http-8080, protocol: TCP }
            fromEndpoints:
            - matchLabels:
                name: client
        """

    @Test func aNamedPortResolvesPerEndpoint() throws {
        var repo = PolicyRepository()
        repo.apply(try PolicyParser.parse(Self.policy, file: "t.yaml"))
        var resolver = PolicyResolver()
        let ns = "k8s:io.kubernetes.pod.namespace=default"
        _ = resolver.upsertIdentity(1000, labels: ["k8s:name=client", ns])
        _ = resolver.upsertEndpoint(1, labels: ["k8s:kind=echo", ns], namedPorts: [NamedPort(name: "http-8080", port: 8080)])
        _ = resolver.upsertEndpoint(2, labels: ["k8s:kind=echo", ns], namedPorts: [NamedPort(name: "http-8080", port: 9090)])
        _ = resolver.upsertEndpoint(3, labels: ["k8s:kind=echo", ns])
        _ = resolver.setSpecs(repo.compile().specs)
        func denies(_ ep: UInt16) -> [(UInt8, UInt16)] {
            resolver.computed[ep]!.entries.values.filter { $0.deny && $0.key.identity == 1000 }.map { ($0.key.proto, $0.key.port) }
        }
        #expect(denies(1).map(\.1) == [8080] && denies(1).map(\.0) == [6])
        #expect(denies(2).map(\.1) == [9090])
        #expect(denies(3).isEmpty, "an endpoint without the name: the rule covers nothing there")
        // The pod's ports change: the entries follow.
        let delta = resolver.upsertEndpoint(3, labels: ["k8s:kind=echo", ns], namedPorts: [NamedPort(name: "http-8080", port: 8081)])
        #expect(delta.upserts.contains { $0.key.endpoint == 3 && $0.key.port == 8081 && $0.deny })
    }
}
