import ManifestYAML

/// Kubernetes Service and EndpointSlice manifests as the load balancer holds
/// them after parsing: only what the datapath needs, already validated.

public enum ServiceType: String, Codable, Sendable, Hashable {
    case clusterIP = "ClusterIP"
    case nodePort = "NodePort"
    case loadBalancer = "LoadBalancer"
}

public enum ServiceProtocol: String, Codable, Sendable, Hashable {
    case tcp = "TCP", udp = "UDP", sctp = "SCTP"
    public var number: UInt8 {
        switch self {
        case .tcp: 6
        case .udp: 17
        case .sctp: 132
        }
    }
}

public enum TrafficPolicy: String, Codable, Sendable, Hashable {
    case cluster = "Cluster", local = "Local"
}

/// One `spec.ports[]` entry.
public struct ServicePortSpec: Codable, Sendable, Hashable {
    public var name: String?
    public var port: UInt16
    public var proto: ServiceProtocol
    /// A number, or a port name to look up in the EndpointSlice ports; nil = same as `port`.
    public var targetPort: TargetPort?
    /// NodePort / LoadBalancer: the node port (30000-32767 as Kubernetes allocates; any given value is used).
    public var nodePort: UInt16?

    public enum TargetPort: Codable, Sendable, Hashable {
        case number(UInt16)
        case name(String)
    }

    public init(name: String? = nil, port: UInt16, proto: ServiceProtocol = .tcp, targetPort: TargetPort? = nil, nodePort: UInt16? = nil) {
        self.name = name
        self.port = port
        self.proto = proto
        self.targetPort = targetPort
        self.nodePort = nodePort
    }
}

/// A `v1 Service`.
public struct ServiceManifest: Codable, Sendable, Hashable {
    public var name: String
    /// metadata.namespace, "default" when absent.
    public var namespace: String
    public var type: ServiceType
    /// spec.clusterIP ("None" for headless: no load balancing; nil when not given).
    public var clusterIP: String?
    public var externalIPs: [String]
    /// status.loadBalancer.ingress[].ip (and spec.loadBalancerIP when given).
    public var loadBalancerIPs: [String]
    public var ports: [ServicePortSpec]
    /// spec.selector: backends are the endpoints whose labels match (when no EndpointSlice names them).
    public var selector: [String: String]?
    /// sessionAffinity: ClientIP, with sessionAffinityConfig.clientIP.timeoutSeconds (default 10800).
    public var affinityTimeout: UInt32?
    public var externalTrafficPolicy: TrafficPolicy
    public var internalTrafficPolicy: TrafficPolicy

    public init(name: String, namespace: String = "default", type: ServiceType = .clusterIP, clusterIP: String? = nil,
                externalIPs: [String] = [], loadBalancerIPs: [String] = [], ports: [ServicePortSpec],
                selector: [String: String]? = nil, affinityTimeout: UInt32? = nil,
                externalTrafficPolicy: TrafficPolicy = .cluster, internalTrafficPolicy: TrafficPolicy = .cluster) {
        self.name = name
        self.namespace = namespace
        self.type = type
        self.clusterIP = clusterIP
        self.externalIPs = externalIPs
        self.loadBalancerIPs = loadBalancerIPs
        self.ports = ports
        self.selector = selector
        self.affinityTimeout = affinityTimeout
        self.externalTrafficPolicy = externalTrafficPolicy
        self.internalTrafficPolicy = internalTrafficPolicy
    }

    public var qualifiedName: String { "\(namespace)/\(name)" }
}

/// A `discovery.k8s.io/v1 EndpointSlice`: backends of the service named by
/// its `kubernetes.io/service-name` label.
public struct EndpointSliceManifest: Codable, Sendable, Hashable {
    public struct Port: Codable, Sendable, Hashable {
        public var name: String?
        public var port: UInt16
        public var proto: ServiceProtocol
        public init(name: String? = nil, port: UInt16, proto: ServiceProtocol = .tcp) {
            self.name = name
            self.port = port
            self.proto = proto
        }
    }

    public struct Endpoint: Codable, Sendable, Hashable {
        /// IPv4 addresses (the slice's addressType must be IPv4).
        public var addresses: [String]
        /// conditions.ready (default true), .serving (default = ready), .terminating (default false).
        public var ready: Bool
        public var serving: Bool
        public var terminating: Bool
        /// nodeName, for traffic policy Local.
        public var nodeName: String?
        public init(addresses: [String], ready: Bool = true, serving: Bool? = nil, terminating: Bool = false, nodeName: String? = nil) {
            self.addresses = addresses
            self.ready = ready
            self.serving = serving ?? ready
            self.terminating = terminating
            self.nodeName = nodeName
        }
    }

    public var name: String
    public var namespace: String
    /// The `kubernetes.io/service-name` label.
    public var serviceName: String
    public var ports: [Port]
    public var endpoints: [Endpoint]

    public init(name: String, namespace: String = "default", serviceName: String, ports: [Port], endpoints: [Endpoint]) {
        self.name = name
        self.namespace = namespace
        self.serviceName = serviceName
        self.ports = ports
        self.endpoints = endpoints
    }
}

/// What one manifest file holds.
public struct ServiceDocuments: Sendable, Equatable {
    public var services: [ServiceManifest] = []
    public var slices: [EndpointSliceManifest] = []
    public init(services: [ServiceManifest] = [], slices: [EndpointSliceManifest] = []) {
        self.services = services
        self.slices = slices
    }
}

/// A Service or EndpointSlice manifest that cannot be used: `FILE:LINE:COLUMN: what is wrong; what would be valid`.
public typealias ServiceManifestError = ManifestError
