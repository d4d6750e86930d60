import AgentModel
import API
import Config
import Foundation
import KVStore

/// This cluster, as the other clusters of the mesh read it from its etcd: its configuration
/// (`cilium/cluster-config/<name>`: ID and capabilities), its global services (upstream's ClusterService
/// under `cilium/state/services/v1/<name>/`) and the sync canaries. Every agent of the cluster writes the same.
actor MeshPublisher {
    private let section: ClusterMeshSubsystem.Section
    private let shared: SharedState
    private let store: any KVStore
    private var loop: Task<Void, Never>?
    private(set) var lastError: String?
    private var published: [String: ClusterService] = [:]

    init(section: ClusterMeshSubsystem.Section, shared: SharedState) throws {
        self.section = section
        self.shared = shared
        store = try EtcdKVStore(endpoints: section.etcd.endpoints, timeout: .seconds(3),
                                tls: section.etcd.ssl ? EtcdTLSConfig(caFile: section.etcd.tls.caFile, certFile: section.etcd.tls.certFile,
                                                                      keyFile: section.etcd.tls.keyFile) : nil)
    }

    func start() {
        loop = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                await self.runOnce()
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    func stop() {
        loop?.cancel()
        loop = nil
    }

    private func runOnce() async {
        do {
            let config = KVClusterConfig(id: section.clusterID,
                                         capabilities: .init(syncedCanaries: true, maxConnectedClusters: section.maxConnectedClusters))
            try await store.put(KVKeys.clusterConfig(section.clusterName), try JSONEncoder().encode(config), lease: nil)
            published = [:]
            var canariesWritten = false
            for await _ in await shared.globalServices.changes(includeExisting: true) {
                try await sync()
                if !canariesWritten {
                    // Nodes, endpoints and identities are each node's own records (Networking writes them as they
                    // come); services are complete once this first export is in.
                    let now = ISO8601DateFormatter().string(from: Date())
                    try await store.write(batch: KVKeys.Synced.allCases.map { (KVKeys.synced(cluster: section.clusterName, $0), Data(now.utf8)) })
                    canariesWritten = true
                }
                lastError = nil
            }
        } catch {
            lastError = "\(error)"
        }
    }

    /// Puts what changed and deletes what left (only this cluster's own services).
    private func sync() async throws {
        let want = Dictionary(await shared.globalServices.all().filter { $0.cluster == section.clusterName }.map { ($0.key, $0) },
                              uniquingKeysWith: { a, _ in a })
        var batch: [(key: String, value: Data?)] = []
        for (k, svc) in want where published[k] != svc {
            batch.append((KVKeys.service(cluster: section.clusterName, namespace: svc.namespace, name: svc.name), try JSONEncoder().encode(svc)))
        }
        for (k, svc) in published where want[k] == nil {
            batch.append((KVKeys.service(cluster: section.clusterName, namespace: svc.namespace, name: svc.name), nil))
        }
        for chunk in stride(from: 0, to: batch.count, by: 100) {
            try await store.write(batch: Array(batch[chunk..<min(chunk + 100, batch.count)]))
        }
        published = want
    }
}
