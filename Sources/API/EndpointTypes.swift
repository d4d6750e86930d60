/// The local API between `cilium-cni` (and the sandbox) and the agent for
/// workload endpoints. Addresses are dotted IPv4 text, MACs aa:bb:cc:dd:ee:ff.

/// POST /v1/ipam: reserve an address for a container (idempotent per owner).
public struct IPAMRequest: Codable, Sendable {
    /// Who holds the address (the CNI container id); the same owner gets the same address back.
    public var owner: String
    public init(owner: String) { self.owner = owner }
}

public struct IPAMResponse: Codable, Sendable, Equatable {
    /// The endpoint's address, e.g. "10.0.1.17".
    public var address: String
    /// The node's pod CIDR it came from, e.g. "10.0.1.0/24".
    public var podCIDR: String
    /// The gateway the endpoint routes through (the node's router address on cilium_host).
    public var gateway: String
    /// The MTU a packet leaving the node may have before the tunnel's and encryption's headers (the node's device
    /// MTU less those): the plugin gives the endpoint's routes this MTU when it is below the interface's.
    public var routeMTU: UInt32?
    public init(address: String, podCIDR: String, gateway: String, routeMTU: UInt32? = nil) {
        self.address = address
        self.podCIDR = podCIDR
        self.gateway = gateway
        self.routeMTU = routeMTU
    }
}

/// PUT /v1/endpoint: the plugin has made the veth pair and configured the
/// container side; the agent creates (or updates) the endpoint: identity from
/// labels, ipcache and endpoint map entries, programs on the host-side veth.
public struct EndpointCreateRequest: Codable, Sendable {
    public var containerID: String
    /// The container's network namespace path (CNI_NETNS).
    public var netns: String
    /// Interface name inside the container (CNI_IFNAME).
    public var ifName: String
    /// Host-side veth name (lxc...).
    public var hostIfName: String
    public var address: String
    /// MAC of the container-side interface.
    public var mac: String
    /// "key=value" labels, as given by the runtime or the sandbox.
    public var labels: [String]
    /// From CNI_ARGS K8S_POD_NAMESPACE / K8S_POD_NAME when present.
    public var podNamespace: String?
    public var podName: String?

    /// The runtime's `portMappings` (CNI capability): hostPorts served by the datapath. nil for none.
    public var portMappings: [PortMapping]?
    /// The pod's named ports (`args.cni.namedPorts`). nil for none.
    public var namedPorts: [NamedPort]?

    public init(containerID: String, netns: String, ifName: String, hostIfName: String, address: String, mac: String,
                labels: [String], podNamespace: String? = nil, podName: String? = nil, portMappings: [PortMapping]? = nil,
                namedPorts: [NamedPort]? = nil) {
        self.portMappings = portMappings
        self.namedPorts = namedPorts
        self.containerID = containerID
        self.netns = netns
        self.ifName = ifName
        self.hostIfName = hostIfName
        self.address = address
        self.mac = mac
        self.labels = labels
        self.podNamespace = podNamespace
        self.podName = podName
    }
}

/// An endpoint as `cilium endpoint list/get` shows it.
public struct EndpointModel: Codable, Sendable, Equatable {
    public var id: Int
    public var containerID: String
    public var netns: String
    public var ifName: String
    public var hostIfName: String
    public var hostIfIndex: Int32
    public var address: String
    public var mac: String
    public var labels: [String]
    public var identity: UInt32
    public var podNamespace: String?
    public var podName: String?
    /// "ready", "waiting-for-identity", "regenerating", "disconnecting".
    public var state: String
    /// Policy enforcement ("Enabled"/"Disabled") per direction and the policy
    /// revision the endpoint's entries implement; nil while Policy is disabled.
    public var policyIngress: String?
    public var policyEgress: String?
    public var policyRevision: UInt64?

    public init(id: Int, containerID: String, netns: String, ifName: String, hostIfName: String, hostIfIndex: Int32,
                address: String, mac: String, labels: [String], identity: UInt32, podNamespace: String?, podName: String?,
                state: String) {
        self.id = id
        self.containerID = containerID
        self.netns = netns
        self.ifName = ifName
        self.hostIfName = hostIfName
        self.hostIfIndex = hostIfIndex
        self.address = address
        self.mac = mac
        self.labels = labels
        self.identity = identity
        self.podNamespace = podNamespace
        self.podName = podName
        self.state = state
    }
}

/// DELETE /v1/endpoint?containerID=ID: removes the endpoint and releases its
/// address; deleting what is absent succeeds (CNI DEL is idempotent). The
/// answer names the host-side veth so the plugin can delete the pair.
public struct EndpointDeleteResponse: Codable, Sendable {
    public var hostIfName: String?
    public var released: String?
    public init(hostIfName: String?, released: String?) {
        self.hostIfName = hostIfName
        self.released = released
    }
}

/// An identity as `cilium identity list/get` shows it.
public struct IdentityModel: Codable, Sendable, Equatable {
    public var id: UInt32
    public var labels: [String]
    /// Endpoints on this node using it.
    public var references: Int
    public init(id: UInt32, labels: [String], references: Int) {
        self.id = id
        self.labels = labels
        self.references = references
    }
}

/// `cilium bpf ipcache list`
public struct BPFIPCacheEntry: Codable, Sendable, Equatable {
    public var prefix: String
    public var identity: UInt32
    public var tunnelEndpoint: String?
    /// The hosting node's encryption key (0 = none).
    public var encryptKey: UInt8?
    public init(prefix: String, identity: UInt32, tunnelEndpoint: String?, encryptKey: UInt8 = 0) {
        self.prefix = prefix
        self.identity = identity
        self.tunnelEndpoint = tunnelEndpoint
        self.encryptKey = encryptKey
    }
}

/// `cilium bpf metrics list`: one row of the datapath's `cilium_metrics` map (summed over CPUs).
public struct BPFMetricEntry: Codable, Sendable, Equatable {
    /// 0 for forwarded packets, else the drop reason's code.
    public var reasonCode: UInt8
    /// "Forwarded", or the drop reason's text ("Policy denied").
    public var reason: String
    /// "INGRESS" or "EGRESS".
    public var direction: String
    public var packets: UInt64
    public var bytes: UInt64
    public init(reasonCode: UInt8, reason: String, direction: String, packets: UInt64, bytes: UInt64) {
        self.reasonCode = reasonCode
        self.reason = reason
        self.direction = direction
        self.packets = packets
        self.bytes = bytes
    }
}

/// `cilium bpf endpoint list`
public struct BPFEndpointEntry: Codable, Sendable, Equatable {
    public var address: String
    public var id: Int
    public var ifindex: Int
    public var identity: UInt32
    public var mac: String
    public var nodeMac: String
    public init(address: String, id: Int, ifindex: Int, identity: UInt32, mac: String, nodeMac: String) {
        self.address = address
        self.id = id
        self.ifindex = ifindex
        self.identity = identity
        self.mac = mac
        self.nodeMac = nodeMac
    }
}

/// `cilium node list`
public struct NodeModel: Codable, Sendable, Equatable {
    public var name: String
    public var address: String
    public var podCIDR: String
    public var local: Bool
    public init(name: String, address: String, podCIDR: String, local: Bool) {
        self.name = name
        self.address = address
        self.podCIDR = podCIDR
        self.local = local
    }
}

/// A named container port of a pod (Kubernetes' `ports[].name`): policies may name the port instead of its
/// number (`port: http-8080`). The runtime passes them in `args.cni.namedPorts`, beside the labels.
public struct NamedPort: Codable, Sendable, Hashable {
    public var name: String
    public var port: UInt16
    /// "TCP", "UDP" or "SCTP".
    public var protocol_: String

    enum CodingKeys: String, CodingKey {
        case name, port, protocol_ = "protocol"
    }

    public init(name: String, port: UInt16, protocol_: String = "TCP") {
        self.name = name
        self.port = port
        self.protocol_ = protocol_
    }
}

/// One hostPort of a pod (the CNI `portMappings` capability): the node's port `hostPort` on
/// `hostIP` (or on every address of the node when it is empty or 0.0.0.0) forwards to the pod's
/// `containerPort`.
public struct PortMapping: Codable, Sendable, Hashable {
    public var hostPort: UInt16
    public var containerPort: UInt16
    /// "tcp" or "udp".
    public var protocol_: String
    public var hostIP: String?

    enum CodingKeys: String, CodingKey {
        case hostPort, containerPort, protocol_ = "protocol", hostIP
    }

    public init(hostPort: UInt16, containerPort: UInt16, protocol_: String = "tcp", hostIP: String? = nil) {
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.protocol_ = protocol_
        self.hostIP = hostIP
    }

    /// "8080 -> 80/tcp", with the host address when one is named.
    public var description: String {
        "\(hostIP.map { $0.isEmpty || $0 == "0.0.0.0" ? "" : "\($0):" } ?? "")\(hostPort) -> \(containerPort)/\(protocol_)"
    }
}
