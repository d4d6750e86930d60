import AgentModel
import API
import Config
import Reconciler

/// Cluster mesh (`clustermesh.enabled`): remote clusters' kvstores and global
/// services. This foundation validates the configured clusters and reports
/// them; connecting to remote etcd comes with the cluster-mesh issue.
public actor ClusterMeshSubsystem: AgentSubsystem {
    public nonisolated let name = "clustermesh"
    public nonisolated let owns = PinOwnership(maps: [], directory: "clustermesh")
    public nonisolated let dependencies = ["networking"]
    private var context: SubsystemContext<Section>?
    private var running = false

    public init() {}

    /// The settings cluster mesh reads (`clustermesh.enabled` switches it; the host reads that).
    public struct Section: Equatable, Sendable {
        public var clusters: [String]
        /// This cluster's name and id, which remote clusters must not share.
        public var clusterName: String
        public var clusterID: Int
    }

    public static func section(of c: AgentConfig) -> Section {
        Section(clusters: [], clusterName: c.cluster.name, clusterID: c.cluster.id)
    }

    public func configure(_ context: SubsystemContext<Section>) { self.context = context }

    public func start() async throws {
        guard context != nil else { throw SubsystemError("clustermesh: not configured") }
        running = true
    }

    public func stop() async { running = false }

    public func health() async -> Health {
        guard running else { return .stopped }
        let clusters = context?.section.clusters ?? []
        if clusters.isEmpty { return .ok }
        return Health(.degraded, "connecting to remote clusters is not implemented yet (\(clusters.count) configured)")
    }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let clusters = context?.section.clusters ?? []
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: "0/\(clusters.count) remote clusters ready, 0 global-services",
                               details: clusters.map { "\($0): not connected" })
    }
}
