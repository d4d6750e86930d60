/// Upstream's scenarios, by their names: each turns the deployment into actions.
public struct Scenario: Sendable {
    public var name: String
    /// Why it cannot run in this deployment (nil: it runs).
    public var skipReason: @Sendable (Deployment) -> String?
    public var actions: @Sendable (Deployment) -> [Action]
    /// Why it does not run in multi-cluster mode (nil: it runs there too).
    public var notInMultiCluster: String?

    init(_ name: String, skip: @escaping @Sendable (Deployment) -> String? = { _ in nil },
         _ pairs: @escaping @Sendable (Deployment) -> [(Peer, Destination, Probe, String)]) {
        self.name = name
        skipReason = skip
        actions = { d in pairs(d).map { Action(scenario: name, name: $0.3, source: $0.0, destination: $0.1, probe: $0.2) } }
    }
}

extension Destination {
    static func pod(_ p: Peer, port: UInt16? = Defaults.echoPort) -> Destination {
        Destination(display: p.display, address: p.address, port: port, kind: .pod, backend: p, flowAddresses: [p.address])
    }
    static func host(_ h: Peer) -> Destination {
        Destination(display: h.display, address: h.address, port: nil, kind: .host, backend: nil, flowAddresses: [h.address])
    }
}

private let needsServices: @Sendable (Deployment) -> String? = { $0.servicesServed ? nil : "Feature kube-proxy-replacement is disabled" }
/// Scenarios and tests from the node without Cilium (the sandbox's outside host).
let needsOutside: @Sendable (Deployment) -> String? = { $0.outside == nil ? "Feature node-without-cilium is disabled" : nil }

public enum Scenarios {
    /// Each client (with `source` label, if given) to each echo pod (with `destination` label), on 8080: `curl-ipv4-N`.
    public static func podToPod(source: String? = nil, destination: String? = nil) -> Scenario {
        Scenario("pod-to-pod") { d in
            let pairs = d.clients.filter { source.map($0.has) ?? true }.flatMap { c in
                d.echoes.filter { destination.map($0.has) ?? true }.map { (c, $0) }
            }
            return pairs.enumerated().map { i, p in (p.0, Destination.pod(p.1), Probe.http, "curl-ipv4-\(i)") }
        }
    }

    /// Each client pings every other client: `ping-ipv4-N`.
    public static let clientToClient = Scenario("client-to-client") { d in
        d.clients.flatMap { c in d.clients.filter { $0 != c }.map { (c, $0) } }.enumerated().map { i, p in
            (p.0, Destination.pod(p.1, port: nil), Probe.ping, "ping-ipv4-\(i)")
        }
    }

    /// Each client to each echo service's ClusterIP: `curl-N`.
    public static let podToService = Scenario("pod-to-service", skip: needsServices) { d in
        d.clients.flatMap { c in d.services.map { (c, $0) } }.enumerated().map { i, p in
            let s = p.1
            return (p.0, Destination(display: "\(Defaults.namespace)/\(s.name)", address: s.clusterIP, port: s.port, kind: .service,
                                     backend: s.backend, flowAddresses: [s.clusterIP, s.backend.address]), Probe.http, "curl-\(i)")
        }
    }

    /// Each client to each echo pod's hostPort (4000) on that pod's node: `curl-N`.
    public static let podToHostPort = Scenario("pod-to-hostport", skip: needsServices) { d in
        d.clients.flatMap { c in d.echoes.compactMap { e in d.host(e.node).map { (c, e, $0) } } }.enumerated().map { i, p in
            (p.0, Destination(display: "\(p.1.display) hostPort on \(p.2.display)", address: p.2.address, port: Defaults.hostPort,
                              kind: .hostPort, backend: p.1, flowAddresses: [p.2.address, p.1.address]), Probe.http, "curl-\(i)")
        }
    }

    /// Each client to the world: the outside host's HTTP servers on 80 and 443.
    public static let podToWorld = Scenario("pod-to-world", skip: needsOutside) { d in
        d.clients.enumerated().flatMap { i, c in
            [(Defaults.worldPort, "http-to-outside-ipv4-\(i)"), (Defaults.worldOtherPort, "http-443-to-outside-ipv4-\(i)")].map { port, name in
                (c, Destination(display: "outside-\(port)", address: d.externalIP, port: port, kind: .world, backend: nil,
                                flowAddresses: [d.externalIP]), Probe.http, name)
            }
        }
    }

    /// Each client pings every node: `ping-ipv4-internal-ip`.
    public static let podToHost = Scenario("pod-to-host") { d in
        d.clients.flatMap { c in d.hosts.map { (c, Destination.host($0), Probe.ping, "ping-ipv4-internal-ip") } }
    }

    /// Each node (host network) to each echo pod: `curl-ipv4-N`.
    public static let hostToPod = Scenario("host-to-pod") { d in
        d.hosts.flatMap { h in d.echoes.map { (h, $0) } }.enumerated().map { i, p in (p.0, Destination.pod(p.1), Probe.http, "curl-ipv4-\(i)") }
    }

    /// Each client to the external IP and the other external IP (upstream's 1.1.1.1 and 1.0.0.1): `external-<digits>-N`.
    public static let podToCIDR = Scenario("pod-to-cidr", skip: needsOutside) { d in
        [d.externalIP, d.externalOtherIP].flatMap { ip in
            d.clients.enumerated().map { i, c in
                (c, Destination(display: "external-\(ip)", address: ip, port: Defaults.worldPort, kind: .world, backend: nil, flowAddresses: [ip],
                                isExternalOther: ip == d.externalOtherIP),
                 Probe.http, "external-\(ip.filter(\.isNumber))-\(i)")
            }
        }
    }

    /// The outside host (a node without Cilium, routed to the pod CIDRs through the first node) to each echo pod.
    public static let fromCIDRToPod = Scenario("from-cidr-to-pod", skip: needsOutside) { d in
        d.outside.map { o in d.echoes.enumerated().map { i, e in (o, Destination.pod(e), Probe.http, "curl-ipv4-\(i)") } } ?? []
    }

    private static func nodePorts(_ scenario: String, skip: @escaping @Sendable (Deployment) -> String?, from sources: @escaping @Sendable (Deployment) -> [Peer],
                                  nodes: @escaping @Sendable (Deployment, Peer) -> [Peer]) -> Scenario {
        Scenario(scenario, skip: skip) { d in
            sources(d).flatMap { src in nodes(d, src).flatMap { h in d.services.map { (src, h, $0) } } }.enumerated().map { i, p in
                let (src, h, s) = p
                return (src, Destination(display: "\(Defaults.namespace)/\(s.name) NodePort on \(h.display)", address: h.address, port: s.nodePort,
                                         kind: .nodePort, backend: s.backend, flowAddresses: [h.address, s.backend.address]), Probe.http, "curl-\(i)")
            }
        }
    }

    /// Each client to each service's NodePort on its own node.
    public static let podToLocalNodePort = nodePorts("pod-to-local-nodeport", skip: needsServices, from: { $0.clients }) { d, c in
        d.hosts.filter { $0.target == c.node }
    }
    /// Each client to each service's NodePort on the other nodes.
    public static let podToRemoteNodePort = nodePorts("pod-to-remote-nodeport", skip: { d in needsServices(d) ?? (d.singleNode ? "one node" : nil) },
                                                      from: { $0.clients }) { d, c in d.hosts.filter { $0.target != c.node } }
    /// The outside host to each service's NodePort on every node (north-south).
    public static let outsideToNodePort = nodePorts("outside-to-nodeport", skip: { d in needsServices(d) ?? needsOutside(d) },
                                                    from: { d in d.outside.map { [$0] } ?? [] }) { d, _ in d.hosts }
}
