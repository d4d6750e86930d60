import Reconciler

/// A port of a service or backend, as upstream's `L4Addr` is written in the kvstore: `{"Protocol":"TCP","Port":80}`.
public struct ClusterServicePort: Codable, Sendable, Hashable {
    public var `Protocol`: String
    public var Port: UInt16
    public init(protocol proto: String, port: UInt16) {
        self.Protocol = proto
        self.Port = port
    }
}

/// A service of one cluster of the mesh, in upstream's `ClusterService` shape
/// (`cilium/state/services/v1/<cluster>/<namespace>/<name>`): frontends and backends are
/// address -> port name -> port. Only services marked global are published.
public struct ClusterService: TableObject, Codable, Sendable, Equatable {
    public var cluster: String
    public var namespace: String
    public var name: String
    public var frontends: [String: [String: ClusterServicePort]]
    public var backends: [String: [String: ClusterServicePort]]
    public var labels: [String: String]?
    public var selector: [String: String]?
    public var includeExternal: Bool
    /// `service.cilium.io/shared`: false means the cluster consumes the others' backends but exports none of its own.
    public var shared: Bool
    public var clusterID: UInt32

    public var key: String { "\(cluster)/\(namespace)/\(name)" }
    /// namespace/name: services of the same name merge across clusters.
    public var qualifiedName: String { "\(namespace)/\(name)" }

    public init(cluster: String, namespace: String, name: String, frontends: [String: [String: ClusterServicePort]] = [:],
                backends: [String: [String: ClusterServicePort]] = [:], labels: [String: String]? = nil,
                selector: [String: String]? = nil, includeExternal: Bool = true, shared: Bool = true, clusterID: UInt32 = 0) {
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.frontends = frontends
        self.backends = backends
        self.labels = labels
        self.selector = selector
        self.includeExternal = includeExternal
        self.shared = shared
        self.clusterID = clusterID
    }
}

/// Upstream's annotations of a global service.
public enum GlobalServiceAnnotation {
    public static let global = "service.cilium.io/global"
    /// The older spelling of `global`, still honoured upstream.
    public static let globalAlias = "io.cilium/global-service"
    public static let shared = "service.cilium.io/shared"
    public static let sharedAlias = "io.cilium/shared-service"
    /// local | remote | none
    public static let affinity = "service.cilium.io/affinity"
    public static let affinityAlias = "io.cilium/service-affinity"
}

/// One remote cluster, as `cilium clustermesh status` and `cilium status --verbose` show it
/// (upstream's `RemoteCluster` model).
public struct RemoteClusterStatus: Codable, Sendable, Equatable {
    public struct Synced: Codable, Sendable, Equatable {
        public var nodes = false
        public var endpoints = false
        public var identities = false
        public var services = false
        public init() {}
    }
    public struct RemoteConfig: Codable, Sendable, Equatable {
        /// Whether this agent requires the remote cluster's configuration (it does).
        public var required = true
        public var retrieved = false
        public var clusterID: Int = 0
        public var syncCanaries = false
        public var maxConnectedClusters: Int = 0
        public init() {}
    }
    public var name: String
    public var ready: Bool
    /// The etcd line: endpoint, and what happened last (upstream's "status").
    public var status: String
    public var connected: Bool
    public var numNodes: Int
    public var numEndpoints: Int
    public var numIdentities: Int
    public var numSharedServices: Int
    /// Connection attempts that failed (upstream's numFailures), and the last error.
    public var numFailures: Int
    public var lastFailure: String?
    public var lastFailureTime: String?
    public var synced: Synced
    public var config: RemoteConfig?
    /// Records under the cluster's keys that are not in upstream's shapes (each logged with its key), and the last.
    public var recordErrors: Int = 0
    public var lastRecordError: String?
    public init(name: String, ready: Bool, status: String, connected: Bool, numNodes: Int = 0, numEndpoints: Int = 0,
                numIdentities: Int = 0, numSharedServices: Int = 0, numFailures: Int = 0, lastFailure: String? = nil,
                lastFailureTime: String? = nil, synced: Synced = Synced(), config: RemoteConfig? = nil) {
        self.name = name
        self.ready = ready
        self.status = status
        self.connected = connected
        self.numNodes = numNodes
        self.numEndpoints = numEndpoints
        self.numIdentities = numIdentities
        self.numSharedServices = numSharedServices
        self.numFailures = numFailures
        self.lastFailure = lastFailure
        self.lastFailureTime = lastFailureTime
        self.synced = synced
        self.config = config
    }
}

/// `GET /v1/clustermesh`: this cluster and its remote clusters.
public struct ClusterMeshStatus: Codable, Sendable, Equatable {
    public var clusterName: String
    public var clusterID: Int
    public var maxConnectedClusters: Int
    /// The numeric identities this cluster allocates ("65536-131071" for cluster 1 of 255).
    public var identityRange: String
    public var globalServices: Int
    public var clusters: [RemoteClusterStatus]
    public init(clusterName: String, clusterID: Int, maxConnectedClusters: Int, identityRange: String, globalServices: Int,
                clusters: [RemoteClusterStatus]) {
        self.clusterName = clusterName
        self.clusterID = clusterID
        self.maxConnectedClusters = maxConnectedClusters
        self.identityRange = identityRange
        self.globalServices = globalServices
        self.clusters = clusters
    }
}
