import ManifestYAML

/// CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy as the agent holds
/// them after parsing: only what resolution needs, already validated.

/// Where a policy came from and which kind it is.
public enum PolicyKind: String, Codable, Sendable, Hashable {
    case namespaced = "CiliumNetworkPolicy"
    case clusterwide = "CiliumClusterwideNetworkPolicy"
}

/// One policy object (one YAML/JSON document). `specs` holds `spec` and/or
/// every element of `specs`, in that order.
public struct Policy: Codable, Sendable, Hashable {
    public var kind: PolicyKind
    public var name: String
    /// The namespace of a CiliumNetworkPolicy ("default" when metadata has
    /// none); nil for the cluster-wide kind.
    public var namespace: String?
    public var specs: [PolicySpec]
    /// metadata.labels, "key=value".
    public var labels: [String]

    public init(kind: PolicyKind, name: String, namespace: String?, specs: [PolicySpec], labels: [String] = []) {
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.specs = specs
        self.labels = labels
    }

    /// "namespace/name" for the namespaced kind, "name" for the cluster-wide one.
    public var qualifiedName: String { namespace.map { "\($0)/\(name)" } ?? name }
}

/// A Kubernetes label selector. Keys may carry a source prefix as upstream's
/// do ("k8s:app", "reserved:host", "any:app"); a key without one matches a
/// label of any source.
public struct LabelSelector: Codable, Sendable, Hashable {
    public enum Operator: String, Codable, Sendable, Hashable {
        case `in` = "In", notIn = "NotIn", exists = "Exists", doesNotExist = "DoesNotExist"
    }

    public struct Requirement: Codable, Sendable, Hashable {
        public var key: String
        public var op: Operator
        public var values: [String]
        public init(key: String, op: Operator, values: [String] = []) {
            self.key = key
            self.op = op
            self.values = values
        }
    }

    public var matchLabels: [String: String]
    public var matchExpressions: [Requirement]

    /// Whether plain `key: value` labels (an object's metadata.labels, not an endpoint's sourced labels) match.
    public func matchesPlain(_ labels: [String: String]) -> Bool {
        matchLabels.allSatisfy { labels[$0.key] == $0.value } && matchExpressions.allSatisfy { r in
            switch r.op {
            case .in: return labels[r.key].map(r.values.contains) ?? false
            case .notIn: return !(labels[r.key].map(r.values.contains) ?? false)
            case .exists: return labels[r.key] != nil
            case .doesNotExist: return labels[r.key] == nil
            }
        }
    }

    public init(matchLabels: [String: String] = [:], matchExpressions: [Requirement] = []) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    /// `{}`: selects everything (within the policy's namespace for the namespaced kind).
    public var isEmpty: Bool { matchLabels.isEmpty && matchExpressions.isEmpty }
}

/// Upstream's entity names.
public enum PolicyEntity: String, Codable, Sendable, Hashable, CaseIterable {
    case all, world, cluster, host
    case remoteNode = "remote-node"
    case `init`, health, unmanaged
    case kubeAPIServer = "kube-apiserver"
    case ingress
    /// Newer upstream spelling of world for IPv4.
    case worldIPv4 = "world-ipv4"
}

/// `fromCIDR` entries become `CIDRRule`s without exceptions.
public struct CIDRRule: Codable, Sendable, Hashable {
    /// Network address and length, host bits cleared ("10.0.0.0/8").
    public var cidr: String
    public var except: [String]
    public init(cidr: String, except: [String] = []) {
        self.cidr = cidr
        self.except = except
    }
}

public enum L4Protocol: String, Codable, Sendable, Hashable, CaseIterable {
    case tcp = "TCP", udp = "UDP", sctp = "SCTP", any = "ANY"

    /// IP protocol number (0 for ANY).
    public var number: UInt8 {
        switch self {
        case .tcp: 6
        case .udp: 17
        case .sctp: 132
        case .any: 0
        }
    }
}

/// One `toPorts[].ports[]` entry. `port` 0 means every port of the protocol.
public struct PortProtocol: Codable, Sendable, Hashable {
    public var port: UInt16
    /// Last port of a range (`endPort`); nil for a single port.
    public var endPort: UInt16?
    public var proto: L4Protocol
    /// A port named by the pod (`port: http-8080`): resolved per selected pod from its named container ports;
    /// `port` is 0 then. nil for a number.
    public var name: String?
    public init(port: UInt16, endPort: UInt16? = nil, proto: L4Protocol = .any, name: String? = nil) {
        self.port = port
        self.endPort = endPort
        self.proto = proto
        self.name = name
    }
}

/// One `icmps[].fields[]` entry.
public struct ICMPField: Codable, Sendable, Hashable {
    public var type: UInt8
    /// "IPv4" (default) or "IPv6"; this datapath enforces IPv4 only.
    public var family: String
    public init(type: UInt8, family: String = "IPv4") {
        self.type = type
        self.family = family
    }
}

/// One element of `ingress`, `ingressDeny`, `egress` or `egressDeny`. The
/// peers are the union of the endpoint, entity and CIDR selections; none of
/// them given means any peer (an L4-only rule). No ports and no ICMP types
/// means every port and protocol (an L3-only rule).
public struct PeerRule: Codable, Sendable, Hashable {
    /// `fromEndpoints` / `toEndpoints`; nil when absent (an empty list is "no endpoint").
    public var endpoints: [LabelSelector]?
    public var entities: [PolicyEntity]
    /// `fromCIDR` + `fromCIDRSet` (or the `to` forms).
    public var cidrs: [CIDRRule]
    public var ports: [PortProtocol]
    public var icmps: [ICMPField]
    /// IPv6 peers as written (CIDRs, `world-ipv6`): accepted, as an IPv4-only upstream agent
    /// accepts them, and matched by no traffic until this datapath carries IPv6. A rule that
    /// names only these selects no peer (it is not an any-peer rule). nil when there are none.
    public var ipv6Peers: [String]?
    /// Peer fields that name no address (a `cidrGroupSelector` that no CiliumCIDRGroup of the file matches): the rule
    /// is not an any-peer rule because of them, and they match nothing. nil when there are none.
    public var emptyPeers: [String]?

    public init(endpoints: [LabelSelector]? = nil, entities: [PolicyEntity] = [], cidrs: [CIDRRule] = [],
                ports: [PortProtocol] = [], icmps: [ICMPField] = [], ipv6Peers: [String]? = nil) {
        self.endpoints = endpoints
        self.entities = entities
        self.cidrs = cidrs
        self.ports = ports
        self.icmps = icmps
        self.ipv6Peers = ipv6Peers
    }

    /// True when no peer field was given: the rule applies to every peer.
    public var selectsAnyPeer: Bool {
        endpoints == nil && entities.isEmpty && cidrs.isEmpty && (ipv6Peers ?? []).isEmpty && (emptyPeers ?? []).isEmpty
    }
}

/// One rule (`spec` or an element of `specs`).
public struct PolicySpec: Codable, Sendable, Hashable {
    public var endpointSelector: LabelSelector
    public var ingress: [PeerRule]?
    public var ingressDeny: [PeerRule]?
    public var egress: [PeerRule]?
    public var egressDeny: [PeerRule]?
    /// `enableDefaultDeny.ingress` / `.egress`; nil means true.
    public var defaultDenyIngress: Bool?
    public var defaultDenyEgress: Bool?
    public var labels: [String]
    public var description: String?

    public init(endpointSelector: LabelSelector, ingress: [PeerRule]? = nil, ingressDeny: [PeerRule]? = nil,
                egress: [PeerRule]? = nil, egressDeny: [PeerRule]? = nil, defaultDenyIngress: Bool? = nil,
                defaultDenyEgress: Bool? = nil, labels: [String] = [], description: String? = nil) {
        self.endpointSelector = endpointSelector
        self.ingress = ingress
        self.ingressDeny = ingressDeny
        self.egress = egress
        self.egressDeny = egressDeny
        self.defaultDenyIngress = defaultDenyIngress
        self.defaultDenyEgress = defaultDenyEgress
        self.labels = labels
        self.description = description
    }
}

/// A policy document that cannot be used: `FILE:LINE:COLUMN: what is wrong; what would be valid`.
public typealias PolicyError = ManifestError

extension Policy {
    /// What the policy names that this datapath does not match yet, for `cilium policy get` and
    /// `validate` to say.
    public var notes: [String] {
        let rules = specs.flatMap { [$0.ingress, $0.ingressDeny, $0.egress, $0.egressDeny].compactMap { $0 }.flatMap { $0 } }
        var seen = Set<String>()
        let v6 = rules.flatMap { $0.ipv6Peers ?? [] }.filter { seen.insert($0).inserted }
        var notes = rules.flatMap { $0.emptyPeers ?? [] }.map { "\($0): it matches no address" }
        if !v6.isEmpty {
            notes.append("IPv6 peers \(v6.joined(separator: ", ")) match no traffic: this datapath carries IPv4 only (until IPv6 lands)")
        }
        return notes
    }
}
