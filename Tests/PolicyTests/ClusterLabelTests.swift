import CBPF
import Manifests
import Testing
@testable import Policy

/// Issue 17, gap 2: upstream's connectivity manifests select workloads by their cluster label
/// (`io.cilium.k8s.policy.cluster` Exists). Every endpoint now carries it (EndpointManager), so
/// the same manifest selects here what it selects upstream.
@Suite struct ClusterLabelTests {
    static let allowAllIngress = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: allow-all-ingress
        spec:
          endpointSelector:
            matchExpressions:
            - {key: io.cilium.k8s.policy.cluster, operator: Exists}
          ingress:
          - fromEndpoints:
            - matchExpressions:
              - {key: io.cilium.k8s.policy.cluster, operator: Exists}
        """

    /// Whether client -> echo (TCP 8080) is allowed when the workloads carry `labels` besides app.
    static func allowed(extraLabels: [String]) throws -> Bool {
        var repo = PolicyRepository()
        // Echo's ingress is enforced by a policy that allows nobody else; allow-all-ingress must
        // then be what lets the client in.
        let onlyNobody = """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: echo-only-from-nobody}
            spec:
              endpointSelector: {matchLabels: {app: echo}}
              ingress: [{fromEndpoints: [{matchLabels: {app: nobody}}]}]
            """
        repo.apply(try PolicyParser.parse(allowAllIngress, file: "allow-all-ingress.yaml")
                   + PolicyParser.parse(onlyNobody, file: "only-nobody.yaml"))
        var resolver = PolicyResolver()
        let ns = "k8s:io.kubernetes.pod.namespace=default"
        _ = resolver.upsertIdentity(1000, labels: ["k8s:app=client", ns] + extraLabels)
        _ = resolver.upsertIdentity(1002, labels: ["k8s:app=echo", ns] + extraLabels)
        _ = resolver.upsertEndpoint(1, labels: ["k8s:app=echo", ns] + extraLabels)
        _ = resolver.setSpecs(repo.compile().0)
        let trace = PolicyTrace(resolver: resolver, origins: repo.origins)
        return trace.decide(resolver.computed[1]!, endpoint: 1, direction: CILIUM_DIR_INGRESS, peer: 1000,
                            proto: 6, port: 8080, what: "client -> echo").allowed
    }

    @Test func upstreamsClusterSelectorsSelectLabelledWorkloads() throws {
        #expect(try Self.allowed(extraLabels: ["k8s:io.cilium.k8s.policy.cluster=default"]))
        // Without the label (this agent before): allow-all-ingress selects nothing, and the
        // client is dropped, as issue 17 saw in the sandbox.
        #expect(try !Self.allowed(extraLabels: []))
    }
}

/// Issue 17, gap 3: a rule whose only peers are IPv6 selects no IPv4 peer (it must not become an
/// any-peer rule), while the rule still puts the endpoint's direction under policy, as upstream.
@Suite struct IPv6PeerResolutionTests {
    @Test func anIPv6OnlyRuleAllowsNoIPv4Peer() throws {
        let text = """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: v6-only}
            spec:
              endpointSelector: {matchLabels: {app: echo}}
              egress: [{toCIDR: ["::/0"]}, {toEntities: [world-ipv6]}]
            """
        let w = ResolutionTests.World(try PolicyParser.parse(text, file: "v6.yaml"))
        #expect(w.flags(ResolutionTests.echoEP).egressEnforced)
        #expect(!w.allowed(ResolutionTests.echoEP, .egress, peer: 2))  // world (IPv4)
        #expect(!w.allowed(ResolutionTests.echoEP, .egress, peer: ResolutionTests.client))
    }
}

/// Issue 19: clustermesh.policyDefaultLocalCluster (upstream's default since 1.18): a peer selector that does not
/// name io.cilium.k8s.policy.cluster selects the local cluster's endpoints only; one that names it selects there.
@Suite struct DefaultLocalClusterTests {
    static func allowed(policy: String, clientCluster: String, localCluster: String?) throws -> Bool {
        var repo = PolicyRepository()
        repo.localCluster = localCluster
        repo.apply(try PolicyParser.parse(policy, file: "p.yaml"))
        var resolver = PolicyResolver()
        let ns = "k8s:io.kubernetes.pod.namespace=default"
        _ = resolver.upsertIdentity(131_072 + 5, labels: ["k8s:app=client", ns, "k8s:io.cilium.k8s.policy.cluster=\(clientCluster)"])
        _ = resolver.upsertEndpoint(1, labels: ["k8s:app=echo", ns, "k8s:io.cilium.k8s.policy.cluster=cluster1"])
        _ = resolver.setSpecs(repo.compile().0)
        let trace = PolicyTrace(resolver: resolver, origins: repo.origins)
        return trace.decide(resolver.computed[1]!, endpoint: 1, direction: CILIUM_DIR_INGRESS, peer: 131_072 + 5,
                            proto: 6, port: 80, what: "client -> echo").allowed
    }

    static let plain = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: from-client}
        spec:
          endpointSelector: {matchLabels: {app: echo}}
          ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
        """
    static let fromCluster2 = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: from-client-of-cluster2}
        spec:
          endpointSelector: {matchLabels: {app: echo}}
          ingress: [{fromEndpoints: [{matchLabels: {app: client, io.cilium.k8s.policy.cluster: cluster2}}]}]
        """

    @Test func aSelectorWithoutClusterSelectsTheLocalClusterOnly() throws {
        #expect(try Self.allowed(policy: Self.plain, clientCluster: "cluster1", localCluster: "cluster1"))
        #expect(try !Self.allowed(policy: Self.plain, clientCluster: "cluster2", localCluster: "cluster1"))
        // policyDefaultLocalCluster false: any cluster.
        #expect(try Self.allowed(policy: Self.plain, clientCluster: "cluster2", localCluster: nil))
    }

    /// Upstream's `cluster` entity is the local cluster's endpoints (cluster-entity-multi-cluster expects a drop).
    @Test func theClusterEntityIsTheLocalCluster() throws {
        var resolver = PolicyResolver()
        resolver.clusterName = "cluster1"
        let ns = "k8s:io.kubernetes.pod.namespace=default"
        _ = resolver.upsertIdentity(65_536 + 1, labels: ["k8s:app=a", ns, "k8s:io.cilium.k8s.policy.cluster=cluster1"])
        _ = resolver.upsertIdentity(131_072 + 1, labels: ["k8s:app=a", ns, "k8s:io.cilium.k8s.policy.cluster=cluster2"])
        #expect(resolver.selects(.entity(.cluster), 65_537))
        #expect(!resolver.selects(.entity(.cluster), 131_073))
        #expect(resolver.selects(.entity(.cluster), 6))
    }

    @Test func aSelectorNamingAClusterSelectsThatCluster() throws {
        #expect(try Self.allowed(policy: Self.fromCluster2, clientCluster: "cluster2", localCluster: "cluster1"))
        #expect(try !Self.allowed(policy: Self.fromCluster2, clientCluster: "cluster1", localCluster: "cluster1"))
    }
}
