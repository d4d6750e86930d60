/// The local API of the LoadBalancer subsystem (`cilium service ...`, `cilium bpf lb ...`).

/// PUT /v1/service?source=NAME: the body is Service / EndpointSlice manifests.
public struct ServiceApplyResponse: Codable, Sendable {
    public var services: [String]
    public var endpointSlices: [String]
    public init(services: [String], endpointSlices: [String]) {
        self.services = services
        self.endpointSlices = endpointSlices
    }
}

/// One frontend, as `cilium service list` shows it (upstream's columns: ID, Frontend, Service Type, Backend).
public struct ServiceFrontendModel: Codable, Sendable, Equatable {
    public struct Backend: Codable, Sendable, Equatable {
        public var id: UInt32
        /// "10.0.1.5:8080/TCP"
        public var address: String
        /// "active", "terminating", "quarantined", "maintenance"
        public var state: String
        /// On the side the service's cluster-mesh affinity (`service.cilium.io/affinity: local|remote`) prefers
        /// (upstream's `Preferred`); nil (an older agent) reads as false.
        public var preferred: Bool?
        /// The cluster the backend is in, when it is a remote cluster's (a global service's merged backends).
        public var cluster: String?
        public init(id: UInt32, address: String, state: String, preferred: Bool? = nil, cluster: String? = nil) {
            self.id = id
            self.address = address
            self.state = state
            self.preferred = preferred
            self.cluster = cluster
        }
    }
    public var id: UInt16
    /// "namespace/name"
    public var service: String
    /// "10.96.0.10:80/TCP", or "0.0.0.0:30080/TCP" for a NodePort.
    public var frontend: String
    /// ClusterIP, NodePort, ExternalIP, LoadBalancer
    public var type: String
    public var backends: [Backend]
    public var sessionAffinityTimeout: UInt32?
    public var trafficPolicyLocal: Bool
    public var maglev: Bool
    public init(id: UInt16, service: String, frontend: String, type: String, backends: [Backend],
                sessionAffinityTimeout: UInt32?, trafficPolicyLocal: Bool, maglev: Bool) {
        self.id = id
        self.service = service
        self.frontend = frontend
        self.type = type
        self.backends = backends
        self.sessionAffinityTimeout = sessionAffinityTimeout
        self.trafficPolicyLocal = trafficPolicyLocal
        self.maglev = maglev
    }
}

/// `cilium bpf lb list`: a frontend slot of cilium_lb4_services as the map holds it.
public struct BPFLBEntry: Codable, Sendable, Equatable {
    /// "10.96.0.10:80/TCP"
    public var frontend: String
    public var slot: UInt16
    /// Slot 0: "(N backends, revnat ID, flags)"; others: "10.0.1.5:8080 (backend ID)".
    public var value: String
    public init(frontend: String, slot: UInt16, value: String) {
        self.frontend = frontend
        self.slot = slot
        self.value = value
    }
}

/// `cilium bpf lb maglev list SERVICE`
public struct MaglevTableModel: Codable, Sendable {
    public var frontendID: UInt16
    public var size: Int
    /// backend id -> how many slots it has
    public var shares: [String: Int]
    /// The table, slot by slot (backend ids).
    public var table: [UInt32]
    public init(frontendID: UInt16, size: Int, shares: [String: Int], table: [UInt32]) {
        self.frontendID = frontendID
        self.size = size
        self.shares = shares
        self.table = table
    }
}

/// PUT /v1/service/backend: set a backend's state (as upstream's `cilium service update --backends ... --states ...`).
public struct BackendStateRequest: Codable, Sendable {
    /// "10.0.1.5:8080/TCP"
    public var backend: String
    /// "active", "quarantined", "maintenance"
    public var state: String
    public init(backend: String, state: String) {
        self.backend = backend
        self.state = state
    }
}
