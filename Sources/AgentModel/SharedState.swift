import API
import Reconciler

/// The state tables subsystems share (DESIGN.md: subsystems never import each
/// other; they cooperate through tables). The agent makes one set and hands
/// it to every subsystem; a table outlives the subsystems that fill it, so a
/// restarted subsystem finds what the others published.
public final class SharedState: Sendable {
    /// Security identities known on this node (local ones and those of other
    /// nodes' endpoints seen through the cluster state), with their labels.
    /// Written by Networking.
    public let identities = StateTable<IdentityRecord>(name: "identities")
    /// This node's workload endpoints. Written by Networking.
    public let endpoints = StateTable<EndpointRecord>(name: "shared-endpoints")
    /// Desired ipcache content, reconciled into the ipcache map by Networking.
    public let ipcache = StateTable<IPCacheEntry>(name: "ipcache")
    /// Per endpoint, what policy does to it. Written by Policy, shown by
    /// `cilium endpoint list`.
    public let endpointPolicy = StateTable<EndpointPolicyState>(name: "endpoint-policy")
    /// The rules verdicts name (rule id -> its policy). Written by Policy,
    /// read by Hubble to say which policy allowed or denied a flow.
    public let policyRules = StateTable<PolicyRuleRecord>(name: "policy-rules")
    /// The other nodes of the cluster, as their records say (with their encryption keys). Written by Networking
    /// (from the cluster state), read by Encryption (its peers).
    public let remoteNodes = StateTable<RemoteNodeRecord>(name: "remote-nodes")
    /// What this node publishes about its encryption in its node record (key 0). Written by Encryption,
    /// published by Networking.
    public let localEncryption = StateTable<LocalEncryptionRecord>(name: "local-encryption")
    /// This node as the cluster sees it (Networking writes it; Encryption reads its address and boot ID).
    public let localNode = StateTable<LocalNodeRecord>(name: "local-node")
    /// This cluster's global services (annotated `service.cilium.io/global`), with their local backends, in
    /// upstream's ClusterService shape. Written by LoadBalancer, published to this cluster's kvstore by ClusterMesh.
    public let globalServices = StateTable<ClusterService>(name: "global-services")
    /// The remote clusters' shared global services (key cluster/namespace/name). Written by ClusterMesh, merged into
    /// the local services of the same namespace/name by LoadBalancer. Not initialized until every remote cluster
    /// has been listed once: until then LoadBalancer keeps the remote backends it had.
    public let remoteServices = StateTable<ClusterService>(name: "remote-services")

    public init() {}
}

/// Another node, as its record in the cluster state describes it.
public struct RemoteNodeRecord: TableObject, Codable, Equatable {
    public var name: String
    public var address: String
    public var podCIDR: String
    /// Its WireGuard public key (base64), when it runs WireGuard.
    public var wireguardPubKey: String?
    /// Its record's EncryptionKey (255 with WireGuard, its SPI with IPsec, 0 without encryption).
    public var encryptionKey: UInt8
    /// Its kernel's boot ID (upstream's BootID: per-tunnel IPsec keys are derived from it).
    public var bootID: String?
    public var key: String { name }
    public init(name: String, address: String, podCIDR: String, wireguardPubKey: String? = nil, encryptionKey: UInt8 = 0,
                bootID: String? = nil) {
        self.name = name
        self.address = address
        self.podCIDR = podCIDR
        self.wireguardPubKey = wireguardPubKey
        self.encryptionKey = encryptionKey
        self.bootID = bootID
    }
}

public struct LocalNodeRecord: TableObject, Codable, Equatable {
    public var name: String
    public var address: String
    public var podCIDR: String
    public var bootID: String
    public var key: Int { 0 }
    public init(name: String, address: String, podCIDR: String, bootID: String) {
        self.name = name
        self.address = address
        self.podCIDR = podCIDR
        self.bootID = bootID
    }
}

/// This node's encryption fields for its node record: upstream's `WireguardPubKey` and `EncryptionKey`
/// (255 with WireGuard, the SPI with IPsec).
public struct LocalEncryptionRecord: TableObject, Codable, Equatable {
    public var wireguardPubKey: String?
    public var encryptionKey: UInt8
    /// Bytes encryption adds to a packet that leaves the node (pods' routes are that much smaller).
    public var overhead: UInt32
    public var key: Int { 0 }
    public init(wireguardPubKey: String?, encryptionKey: UInt8, overhead: UInt32 = 0) {
        self.wireguardPubKey = wireguardPubKey
        self.encryptionKey = encryptionKey
        self.overhead = overhead
    }
}

public struct IdentityRecord: TableObject, Codable, Equatable {
    public var id: UInt32
    /// "source:key=value" (e.g. "k8s:app=web", "reserved:host").
    public var labels: [String]
    public var key: UInt32 { id }
    public init(id: UInt32, labels: [String]) {
        self.id = id
        self.labels = labels
    }
}

public struct EndpointRecord: TableObject, Codable, Equatable {
    public var id: UInt16
    public var identity: UInt32
    public var labels: [String]
    public var address: String
    public var podNamespace: String?
    public var podName: String?
    /// hostPorts (CNI portMappings): the LoadBalancer subsystem serves them. nil for none.
    public var portMappings: [PortMapping]?
    /// Named container ports: ingress rules naming a port resolve it here. nil for none.
    public var namedPorts: [NamedPort]?
    public var key: UInt16 { id }
    public init(id: UInt16, identity: UInt32, labels: [String], address: String, podNamespace: String?, podName: String?,
                portMappings: [PortMapping]? = nil, namedPorts: [NamedPort]? = nil) {
        self.portMappings = portMappings
        self.namedPorts = namedPorts
        self.id = id
        self.identity = identity
        self.labels = labels
        self.address = address
        self.podNamespace = podNamespace
        self.podName = podName
    }
}

public struct EndpointPolicyState: TableObject, Codable, Equatable {
    public var endpointID: UInt16
    public var ingressEnforced: Bool
    public var egressEnforced: Bool
    /// The policy repository revision the endpoint's entries implement.
    public var revision: UInt64
    public var key: UInt16 { endpointID }
    public init(endpointID: UInt16, ingressEnforced: Bool, egressEnforced: Bool, revision: UInt64) {
        self.endpointID = endpointID
        self.ingressEnforced = ingressEnforced
        self.egressEnforced = egressEnforced
        self.revision = revision
    }

    /// As upstream's endpoint list columns: "Enabled" / "Disabled".
    public static func column(_ on: Bool) -> String { on ? "Enabled" : "Disabled" }
}

public struct PolicyRuleRecord: TableObject, Codable, Equatable {
    public var id: UInt32
    /// "CiliumNetworkPolicy" or "CiliumClusterwideNetworkPolicy".
    public var kind: String
    public var namespace: String?
    public var name: String
    /// The policy repository revision the rule arrived in.
    public var revision: UInt64
    public var key: UInt32 { id }
    public init(id: UInt32, kind: String, namespace: String?, name: String, revision: UInt64) {
        self.id = id
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.revision = revision
    }
}
