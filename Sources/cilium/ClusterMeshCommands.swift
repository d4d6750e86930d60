import API
import HTTPTransport
import ArgumentParser
import Foundation

/// `cilium clustermesh status`: this agent's view of the mesh (its cluster, each remote cluster's connection).
struct ClusterMeshCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clustermesh", abstract: "Cluster mesh: remote clusters and global services.",
                                                    subcommands: [Status.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "This cluster, each remote cluster (connection, what was synchronized) and the global services.")
        @OptionGroup var agent: AgentOptions
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text

        func run() throws {
            try reportingErrors {
                let (status, data) = try agent.client.send(method: "GET", path: "/v1/clustermesh", body: nil)
                if status == 503 || status == 404 {
                    throw CLIError("cluster mesh is disabled on this node; set clustermesh.enabled=true and a cluster.id (cilium config set)")
                }
                guard (200..<300).contains(status) else { throw CLIError(APIClientError.message(fromBody: data)) }
                let value = try JSONDecoder().decode(ClusterMeshStatus.self, from: data)
                if output == .json { return try printJSON(value) }
                print(Self.text(value), terminator: "")
            }
        }

        static func text(_ s: ClusterMeshStatus) -> String {
            var out = "Cluster: \(s.clusterName) (ID \(s.clusterID), max \(s.maxConnectedClusters) clusters), identities \(s.identityRange)\n"
            let ready = s.clusters.filter(\.ready).count
            if s.clusters.isEmpty {
                out += "ℹ️  No remote cluster configured (clustermesh-config directory is empty)\n"
            } else if ready == s.clusters.count {
                out += "✅ All \(s.clusters.count) remote clusters ready\n"
            } else {
                out += "❌ \(ready)/\(s.clusters.count) remote clusters ready\n"
            }
            if !s.clusters.isEmpty { out += "🔌 Cluster Connections:\n" }
            for c in s.clusters {
                let sync = c.synced
                out += "  - \(c.name): \(c.ready ? "ready" : "not ready"), \(c.numNodes) nodes, \(c.numEndpoints) endpoints, "
                    + "\(c.numIdentities) identities, \(c.numSharedServices) services, \(c.numFailures) reconnections"
                    + " (last: \(c.lastFailureTime ?? "never"))\n"
                out += "    etcd: \(c.status)\n"
                if let cfg = c.config {
                    out += "    remote configuration: retrieved=\(cfg.retrieved), cluster-id=\(cfg.clusterID), "
                        + "max-connected-clusters=\(cfg.maxConnectedClusters), sync-canaries=\(cfg.syncCanaries)\n"
                }
                out += "    synchronization: nodes=\(sync.nodes), endpoints=\(sync.endpoints), identities=\(sync.identities), services=\(sync.services)\n"
                if let last = c.lastFailure, !c.ready { out += "    last error: \(last)\n" }
            }
            out += "🔀 Global services: \(s.globalServices)\n"
            return out
        }
    }
}
