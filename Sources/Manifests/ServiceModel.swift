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

        /// As in a manifest: 8080 or "http".
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .number(let n): try c.encode(n)
            case .name(let n): try c.encode(n)
            }
        }

        private enum Old: Codable { case number(UInt16), name(String) }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(UInt16.self) { self = .number(n) }
            else if let n = try? c.decode(String.self) { self = .name(n) }
            else {
                // The form services.json had before ({"number": {"_0": 8080}}).
                switch try c.decode(Old.self) {
                case .number(let n): self = .number(n)
                case .name(let n): self = .name(n)
                }
            }
        }
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
    /// metadata.labels (a global service publishes them to the cluster mesh).
    public var labels: [String: String]
    /// metadata.annotations (`service.cilium.io/global`, `/shared`, `/affinity`, ...).
    public var annotations: [String: String]

    public init(name: String, namespace: String = "default", type: ServiceType = .clusterIP, clusterIP: String? = nil,
                externalIPs: [String] = [], loadBalancerIPs: [String] = [], ports: [ServicePortSpec],
                selector: [String: String]? = nil, affinityTimeout: UInt32? = nil,
                externalTrafficPolicy: TrafficPolicy = .cluster, internalTrafficPolicy: TrafficPolicy = .cluster,
                labels: [String: String] = [:], annotations: [String: String] = [:]) {
        self.labels = labels
        self.annotations = annotations
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

    private enum CodingKeys: String, CodingKey {
        case name, namespace, type, clusterIP, externalIPs, loadBalancerIPs, ports, selector, affinityTimeout
        case externalTrafficPolicy, internalTrafficPolicy, labels, annotations
    }

    /// What is at its default is left out (services.json holds 10k of these at scale).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        if namespace != "default" { try c.encode(namespace, forKey: .namespace) }
        if type != .clusterIP { try c.encode(type, forKey: .type) }
        try c.encodeIfPresent(clusterIP, forKey: .clusterIP)
        if !externalIPs.isEmpty { try c.encode(externalIPs, forKey: .externalIPs) }
        if !loadBalancerIPs.isEmpty { try c.encode(loadBalancerIPs, forKey: .loadBalancerIPs) }
        try c.encode(ports, forKey: .ports)
        try c.encodeIfPresent(selector, forKey: .selector)
        try c.encodeIfPresent(affinityTimeout, forKey: .affinityTimeout)
        if externalTrafficPolicy != .cluster { try c.encode(externalTrafficPolicy, forKey: .externalTrafficPolicy) }
        if internalTrafficPolicy != .cluster { try c.encode(internalTrafficPolicy, forKey: .internalTrafficPolicy) }
        if !labels.isEmpty { try c.encode(labels, forKey: .labels) }
        if !annotations.isEmpty { try c.encode(annotations, forKey: .annotations) }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name),
                  namespace: try c.decodeIfPresent(String.self, forKey: .namespace) ?? "default",
                  type: try c.decodeIfPresent(ServiceType.self, forKey: .type) ?? .clusterIP,
                  clusterIP: try c.decodeIfPresent(String.self, forKey: .clusterIP),
                  externalIPs: try c.decodeIfPresent([String].self, forKey: .externalIPs) ?? [],
                  loadBalancerIPs: try c.decodeIfPresent([String].self, forKey: .loadBalancerIPs) ?? [],
                  ports: try c.decode([ServicePortSpec].self, forKey: .ports),
                  selector: try c.decodeIfPresent([String: String].self, forKey: .selector),
                  affinityTimeout: try c.decodeIfPresent(UInt32.self, forKey: .affinityTimeout),
                  externalTrafficPolicy: try c.decodeIfPresent(TrafficPolicy.self, forKey: .externalTrafficPolicy) ?? .cluster,
                  internalTrafficPolicy: try c.decodeIfPresent(TrafficPolicy.self, forKey: .internalTrafficPolicy) ?? .cluster,
                  labels: try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:],
                  annotations: try c.decodeIfPresent([String: String].self, forKey: .annotations) ?? [:])
    }
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

        private enum CodingKeys: String, CodingKey { case addresses, ready, serving, terminating, nodeName }

        /// The usual endpoint (one address, ready, on no named node) is stored as its address
        /// alone: services.json at 10k services x 10 backends is a tenth of the size, and the
        /// agent reads it again on every start.
        public func encode(to encoder: any Encoder) throws {
            if addresses.count == 1, ready, serving, !terminating, nodeName == nil {
                var c = encoder.singleValueContainer()
                try c.encode(addresses[0])
                return
            }
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(addresses, forKey: .addresses)
            try c.encode(ready, forKey: .ready)
            try c.encode(serving, forKey: .serving)
            try c.encode(terminating, forKey: .terminating)
            try c.encodeIfPresent(nodeName, forKey: .nodeName)
        }

        public init(from decoder: any Decoder) throws {
            if let address = try? decoder.singleValueContainer().decode(String.self) {
                self.init(addresses: [address])
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(addresses: try c.decode([String].self, forKey: .addresses), ready: try c.decode(Bool.self, forKey: .ready),
                      serving: try c.decode(Bool.self, forKey: .serving), terminating: try c.decode(Bool.self, forKey: .terminating),
                      nodeName: try c.decodeIfPresent(String.self, forKey: .nodeName))
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
