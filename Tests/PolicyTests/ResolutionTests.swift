import Manifests
import CBPF
import Datapath
import LinuxNet
import Testing
@testable import Policy

/// Truth tables for policy resolution: rules -> entries -> the verdict the
/// datapath's lookup reaches (PolicyTrace.decide mirrors the stage).
@Suite struct ResolutionTests {
    static let ns = "k8s:io.kubernetes.pod.namespace=default"
    static let client: UInt32 = 1000, other: UInt32 = 1001, echo: UInt32 = 1002, elsewhere: UInt32 = 1003
    static let echoEP: UInt16 = 1, clientEP: UInt16 = 2

    enum Dir { case ingress, egress }

    /// A resolver with four workload identities, two local endpoints (echo, client) and `policies`.
    struct World {
        var repo = PolicyRepository()
        var resolver = PolicyResolver()
        var lastDelta = PolicyDelta()

        init(_ policies: [Policy] = [], mode: PolicyResolver.Mode = .default) {
            resolver.mode = mode
            _ = resolver.upsertIdentity(1, labels: ["reserved:host"])
            _ = resolver.upsertIdentity(2, labels: ["reserved:world"])
            _ = resolver.upsertIdentity(6, labels: ["reserved:remote-node"])
            _ = resolver.upsertIdentity(ResolutionTests.client, labels: ["k8s:app=client", ResolutionTests.ns])
            _ = resolver.upsertIdentity(ResolutionTests.other, labels: ["k8s:other=client", ResolutionTests.ns])
            _ = resolver.upsertIdentity(ResolutionTests.echo, labels: ["k8s:app=echo", ResolutionTests.ns])
            _ = resolver.upsertIdentity(ResolutionTests.elsewhere, labels: ["k8s:app=client", "k8s:io.kubernetes.pod.namespace=prod"])
            _ = resolver.upsertEndpoint(ResolutionTests.echoEP, labels: ["k8s:app=echo", ResolutionTests.ns])
            _ = resolver.upsertEndpoint(ResolutionTests.clientEP, labels: ["k8s:app=client", ResolutionTests.ns])
            set(policies)
        }

        mutating func set(_ policies: [Policy]) {
            _ = repo.delete { _ in true }
            repo.apply(policies)
            let (specs, cidrs) = repo.compile()
            var next = IdentityScope.firstLocal
            for c in cidrs.sorted(by: { $0.length < $1.length }) {
                _ = resolver.upsertIdentity(next, labels: ["cidr:\(c)", "reserved:world"], cidr: c)
                next += 1
            }
            lastDelta = resolver.setSpecs(specs)
        }

        func cidrIdentity(_ prefix: String) -> UInt32 {
            resolver.cidrIdentities.first { $0.value == IPv4Prefix(prefix)! }!.key
        }

        /// The verdict for traffic of `peer` at endpoint `ep` in `dir`.
        func allowed(_ ep: UInt16, _ dir: Dir, peer: UInt32, proto: UInt8 = 6, port: UInt16 = 80) -> Bool {
            let trace = PolicyTrace(resolver: resolver, origins: repo.origins)
            return trace.decide(resolver.computed[ep]!, endpoint: ep, direction: dir == .ingress ? CILIUM_DIR_INGRESS : CILIUM_DIR_EGRESS, peer: peer,
                                proto: proto, port: port, what: "x").allowed
        }

        func flags(_ ep: UInt16) -> EndpointPolicy { resolver.computed[ep]! }
    }

    static func cnp(_ spec: PolicySpec, name: String = "p") -> Policy {
        Policy(kind: .namespaced, name: name, namespace: "default", specs: [spec])
    }

    static let selectEcho = LabelSelector(matchLabels: ["app": "echo"])
    static let selectClient = LabelSelector(matchLabels: ["app": "client"])
    static let fromClient = [LabelSelector(matchLabels: ["app": "client"])]

    @Test func noPolicyAllowsEverything() {
        let w = World()
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.other))
        #expect(w.allowed(Self.echoEP, .egress, peer: 2))
        #expect(!w.flags(Self.echoEP).ingressEnforced)
    }

    @Test func l3OnlyL4OnlyAndL3L4IngressAllows() {
        // L3 only: every port from the client, nothing from others.
        var w = World([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingress: [PeerRule(endpoints: Self.fromClient)]))])
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 80))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client, proto: 17, port: 53))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.other))
        // Namespaced: the same labels in another namespace are not selected.
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.elsewhere))
        // Egress untouched.
        #expect(w.allowed(Self.echoEP, .egress, peer: Self.other))

        // L4 only: port 80/TCP from anyone.
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingress: [PeerRule(ports: [PortProtocol(port: 80, proto: .tcp)])]))])
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.other, port: 80))
        #expect(w.allowed(Self.echoEP, .ingress, peer: 2, port: 80))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.other, port: 81))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.other, proto: 17, port: 80))

        // L3 + L4: only the client, only on 80 (ANY = TCP, UDP and SCTP).
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho,
                                   ingress: [PeerRule(endpoints: Self.fromClient, ports: [PortProtocol(port: 80)])]))])
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 80))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client, proto: 17, port: 80))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 81))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.other, port: 80))
    }

    @Test func egressMirrorsIngress() {
        let w = World([Self.cnp(PolicySpec(endpointSelector: Self.selectClient,
                                           egress: [PeerRule(endpoints: [Self.selectEcho], ports: [PortProtocol(port: 80, proto: .tcp)])]))])
        #expect(w.allowed(Self.clientEP, .egress, peer: Self.echo, port: 80))
        #expect(!w.allowed(Self.clientEP, .egress, peer: Self.echo, port: 443))
        #expect(!w.allowed(Self.clientEP, .egress, peer: Self.other, port: 80))
        #expect(w.allowed(Self.clientEP, .ingress, peer: Self.other))
        #expect(w.flags(Self.clientEP).egressEnforced && !w.flags(Self.clientEP).ingressEnforced)
    }

    @Test func denyRulesWinInEveryCombination() {
        // L3 deny beside an allow-all: the client is denied on every port, others pass.
        var w = World([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho,
                                           ingress: [PeerRule(entities: [.all])],
                                           ingressDeny: [PeerRule(endpoints: Self.fromClient)]))])
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 80))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.other, port: 80))

        // A wider deny (all ports of the client) over a narrower allow (client on 80).
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho,
                                   ingress: [PeerRule(endpoints: Self.fromClient, ports: [PortProtocol(port: 80, proto: .tcp)])],
                                   ingressDeny: [PeerRule(endpoints: Self.fromClient)]))])
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 80))

        // L4 deny for everyone on 80 over an L3 allow of the client: 80 denied, 81 allowed.
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho,
                                   ingress: [PeerRule(endpoints: Self.fromClient)],
                                   ingressDeny: [PeerRule(ports: [PortProtocol(port: 80, proto: .tcp)])]))])
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 80))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 81))

        // L3+L4 deny under an L3+L4 allow of a range: 8080 denied, the rest of the range allowed.
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho,
                                   ingress: [PeerRule(endpoints: Self.fromClient, ports: [PortProtocol(port: 8000, endPort: 8100, proto: .tcp)])],
                                   ingressDeny: [PeerRule(endpoints: Self.fromClient, ports: [PortProtocol(port: 8080, proto: .tcp)])]))])
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 8080))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 8081))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 8000))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 8100))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 8101))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client, port: 7999))

        // Egress deny to a port range beside an allow-all.
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectClient,
                                   egress: [PeerRule(entities: [.all])],
                                   egressDeny: [PeerRule(ports: [PortProtocol(port: 9000, endPort: 9099, proto: .tcp)])]))])
        #expect(!w.allowed(Self.clientEP, .egress, peer: Self.echo, port: 9050))
        #expect(w.allowed(Self.clientEP, .egress, peer: Self.echo, port: 9100))
        #expect(w.allowed(Self.clientEP, .egress, peer: 2, proto: 17, port: 9050))
    }

    @Test func defaultDenyFollowsRulesAndEnableDefaultDeny() {
        var w = World()
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.other))
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingress: [PeerRule(endpoints: Self.fromClient)]))])
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.other))
        #expect(w.flags(Self.echoEP).ingressEnforced)
        w.set([])
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.other))
        #expect(!w.flags(Self.echoEP).ingressEnforced)
        #expect(w.resolver.computed[Self.echoEP]!.entries.isEmpty)

        // enableDefaultDeny.ingress false: the allow adds nothing, others still pass.
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingress: [PeerRule(endpoints: Self.fromClient)],
                                   defaultDenyIngress: false))])
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.other))
        #expect(!w.flags(Self.echoEP).ingressEnforced)
        // ... and a deny in such a policy still denies.
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingressDeny: [PeerRule(endpoints: Self.fromClient)],
                                   defaultDenyIngress: false))])
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.other))
        // One rule with default deny is enough, even beside one without.
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingress: [PeerRule(endpoints: Self.fromClient)],
                                        defaultDenyIngress: false), name: "a"),
               Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingress: [PeerRule(entities: [.host])]), name: "b")])
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.other))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client))
        #expect(w.allowed(Self.echoEP, .ingress, peer: 1))

        // `ingress: [{}]` selects the endpoint and allows nothing.
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingress: [PeerRule()]))])
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client))
        #expect(w.flags(Self.echoEP).ingressEnforced)
    }

    @Test func enforcementModes() {
        var w = World([], mode: .always)
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client))
        #expect(!w.allowed(Self.echoEP, .egress, peer: 2))
        _ = w.resolver.setMode(.never, audit: false)
        w.set([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingress: [PeerRule()]))])
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client))
    }

    @Test func entities() {
        let w = World([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho,
                                           ingress: [PeerRule(entities: [.host, .remoteNode])],
                                           egress: [PeerRule(entities: [.cluster])]))])
        #expect(w.allowed(Self.echoEP, .ingress, peer: 1))
        #expect(w.allowed(Self.echoEP, .ingress, peer: 6))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: 2))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client))
        #expect(w.allowed(Self.echoEP, .egress, peer: Self.client))
        #expect(w.allowed(Self.echoEP, .egress, peer: Self.elsewhere))
        #expect(w.allowed(Self.echoEP, .egress, peer: 1))
        #expect(!w.allowed(Self.echoEP, .egress, peer: 2))

        let world = World([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, egress: [PeerRule(entities: [.world])]))])
        #expect(world.allowed(Self.echoEP, .egress, peer: 2))
        #expect(!world.allowed(Self.echoEP, .egress, peer: Self.client))
        #expect(!world.allowed(Self.echoEP, .egress, peer: 1))
    }

    @Test func cidrRulesWithExceptUseCIDRIdentities() {
        let w = World([Self.cnp(PolicySpec(endpointSelector: Self.selectClient, egress: [
            PeerRule(cidrs: [CIDRRule(cidr: "10.0.0.0/8", except: ["10.96.0.0/12"])]),
            PeerRule(cidrs: [CIDRRule(cidr: "192.0.2.7/32")], ports: [PortProtocol(port: 53, proto: .udp)]),
        ]))])
        let wide = w.cidrIdentity("10.0.0.0/8"), hole = w.cidrIdentity("10.96.0.0/12"), one = w.cidrIdentity("192.0.2.7/32")
        #expect(w.allowed(Self.clientEP, .egress, peer: wide))
        #expect(!w.allowed(Self.clientEP, .egress, peer: hole))
        #expect(!w.allowed(Self.clientEP, .egress, peer: 2))
        #expect(w.allowed(Self.clientEP, .egress, peer: one, proto: 17, port: 53))
        #expect(!w.allowed(Self.clientEP, .egress, peer: one, proto: 6, port: 53))
        // Pods inside the CIDR keep their own identity: not selected by a CIDR rule.
        #expect(!w.allowed(Self.clientEP, .egress, peer: Self.echo))

        // 0.0.0.0/0 is the world identity (and every CIDR identity within it).
        let all = World([Self.cnp(PolicySpec(endpointSelector: Self.selectClient, egress: [
            PeerRule(cidrs: [CIDRRule(cidr: "0.0.0.0/0", except: ["10.0.0.0/8"])])]))])
        #expect(all.allowed(Self.clientEP, .egress, peer: 2))
        #expect(!all.allowed(Self.clientEP, .egress, peer: all.cidrIdentity("10.0.0.0/8")))
    }

    @Test func icmpAllowedWhileTCPDenied() {
        let w = World([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho,
                                           ingress: [PeerRule(endpoints: Self.fromClient, icmps: [ICMPField(type: 8)])]))])
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client, proto: 1, port: 8))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client, proto: 1, port: 13))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.client, proto: 6, port: 80))
    }

    @Test func portBlocksCoverRangesExactly() {
        for range in [UInt16(1)...UInt16(1), 80...81, 8000...8100, 1...65535, 0...65535, 1024...2047, 65535...65535, 3...17] {
            let blocks = portBlocks(range)
            var covered = Set<UInt32>()
            for b in blocks {
                let span = UInt32(1) << UInt32(16 - b.bits)
                #expect(UInt32(b.port) % span == 0, "block \(b) is not aligned")
                for p in UInt32(b.port)..<(UInt32(b.port) + span) { #expect(covered.insert(p).inserted) }
            }
            #expect(covered == Set((UInt32(range.lowerBound)...UInt32(range.upperBound))))
        }
        #expect(portBlocks(8000...8100).count <= 16)
    }

    @Test func newIdentityRecomputesOnlyAffectedEndpoints() {
        var w = World([Self.cnp(PolicySpec(endpointSelector: Self.selectEcho, ingress: [PeerRule(endpoints: Self.fromClient)]))])
        // A second client pod with new labels (same app=client): only echo's entries change.
        let d = w.resolver.upsertIdentity(2000, labels: ["k8s:app=client", "k8s:tier=b", Self.ns])
        #expect(d.recomputedEndpoints == 1)
        #expect(d.upserts.count == 1)
        #expect(d.upserts.first?.key.identity == 2000)
        #expect(d.upserts.first?.key.endpoint == Self.echoEP)
        #expect(d.deletes.isEmpty)
        // An identity no rule selects touches nothing.
        let none = w.resolver.upsertIdentity(2001, labels: ["k8s:app=db", Self.ns])
        #expect(none.isEmpty)
        #expect(none.recomputedEndpoints == 0)
        // It goes away again: its entry is deleted.
        let gone = w.resolver.removeIdentity(2000)
        #expect(gone.deletes.count == 1)
    }

    @Test func matchExpressionsAndClusterwideScope() {
        let ccnp = Policy(kind: .clusterwide, name: "c", namespace: nil, specs: [PolicySpec(
            endpointSelector: LabelSelector(matchExpressions: [.init(key: "app", op: .in, values: ["echo", "web"])]),
            ingress: [PeerRule(endpoints: [LabelSelector(matchExpressions: [.init(key: "app", op: .exists),
                                                                            .init(key: "other", op: .doesNotExist)])])])])
        let w = World([ccnp])
        // Cluster-wide: selects app=client in every namespace.
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.client))
        #expect(w.allowed(Self.echoEP, .ingress, peer: Self.elsewhere))
        #expect(!w.allowed(Self.echoEP, .ingress, peer: Self.other))
        #expect(!w.flags(Self.clientEP).ingressEnforced)
    }
}
