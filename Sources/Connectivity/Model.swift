import Foundation

/// Something traffic starts from or goes to: a pod, a node's own namespace (host network), the host outside the cluster.
public struct Peer: Sendable, Equatable {
    public enum Kind: Sendable { case pod, host, outside }
    /// As printed: `cilium-test-1/client`, `node1`, `outside`.
    public var display: String
    /// The sandbox's name for it (`cilium-sandbox exec NAME TARGET`).
    public var target: String
    public var address: String
    /// The Cilium node it runs on (nil: outside the cluster).
    public var node: String?
    public var kind: Kind
    public var labels: [String] = []

    /// Whether it carries `key=value` (pods only).
    public func has(_ label: String) -> Bool { labels.contains(label) }
}

/// Where an action goes.
public struct Destination: Sendable {
    public enum Kind: Sendable { case pod, host, service, nodePort, hostPort, world }
    public var display: String
    public var address: String
    public var port: UInt16?
    public var kind: Kind
    /// The pod that answers (a service's or a NodePort's backend; the pod itself), for ingress verdicts and flows.
    public var backend: Peer?
    /// Addresses a flow of this action may name as its destination (the frontend's and the backend's).
    public var flowAddresses: [String]
    /// Upstream's --external-other-ip (1.0.0.1), which CIDR policies tell from --external-ip (1.1.1.1).
    public var isExternalOther = false
}

/// How an action probes: an HTTP request with curl, or one ICMP echo.
public enum Probe: Sendable {
    case http
    case ping
}

/// What a test's policies make of an action, per side (upstream's egress/ingress expectations).
public enum Verdict: Sendable, Equatable {
    case success
    /// Dropped with this Hubble `drop_reason_desc` ("POLICY_DENIED", "POLICY_DENY").
    case drop(reason: String)

    public static let policyDenied = Verdict.drop(reason: "POLICY_DENIED")
    public static let denylisted = Verdict.drop(reason: "POLICY_DENY")
}

public struct Expectation: Sendable {
    public var egress: Verdict
    public var ingress: Verdict
    public static let success = Expectation(egress: .success, ingress: .success)
    public static func egress(_ v: Verdict) -> Expectation { Expectation(egress: v, ingress: .success) }
    public static func ingress(_ v: Verdict) -> Expectation { Expectation(egress: .success, ingress: v) }

    /// The verdict that decides, and the node whose datapath gives it: egress first, on the source's node.
    func decisive(_ a: Action) -> (verdict: Verdict, node: String?) {
        if case .drop = egress { return (egress, a.source.node) }
        if case .drop = ingress { return (ingress, a.destination.backend?.node ?? nodeOfHost(a.destination)) }
        return (.success, nil)
    }

    private func nodeOfHost(_ d: Destination) -> String? { d.kind == .host ? d.display : nil }
}

/// One request of a scenario.
public struct Action: Sendable {
    public var scenario: String
    public var name: String
    public var source: Peer
    public var destination: Destination
    public var probe: Probe
    /// curl binds this source port, so the action's flows are told apart from its neighbours'.
    public var sourcePort: UInt16 = 0

    /// Upstream's form: `scenario:action: source (address) -> destination (address:port)`.
    public var title: String {
        "\(scenario):\(name): \(source.display) (\(source.address)) -> \(destination.display) (\(destination.address):\(destination.port ?? 0))"
    }
}

/// The ports and addresses the suite uses (upstream's defaults where the sandbox allows them).
public enum Defaults {
    public static let namespace = "cilium-test-1"
    public static let echoPort: UInt16 = 8080
    public static let hostPort: UInt16 = 4000
    /// The outside host serves plain HTTP on 80 and on 443 (upstream's world targets are http on 80 and https on 443;
    /// the sandbox's world has no TLS, the port is what policies tell apart).
    public static let worldPort: UInt16 = 80
    public static let worldOtherPort: UInt16 = 443
}
