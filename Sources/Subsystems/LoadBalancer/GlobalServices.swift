import API
import Manifests

/// A service's cluster-mesh settings, read from its annotations as upstream reads them
/// (`service.cilium.io/global`, `/shared`, `/affinity`, and their older `io.cilium/` spellings).
package struct GlobalServiceSettings: Sendable, Equatable {
    /// `service.cilium.io/affinity`: which cluster's backends a global service prefers.
    package enum Affinity: String, Sendable, CaseIterable {
        case none, local, remote
    }

    /// Annotated global ("true", any case): it merges the remote clusters' backends of the same namespace/name.
    package var global: Bool
    /// Global and not annotated shared "false": its local backends are published to the mesh.
    package var shared: Bool
    package var affinity: Affinity
    /// An affinity value none of local, remote, none (the annotation is ignored: affinity none).
    package var invalidAffinity: String?

    package init(global: Bool = false, shared: Bool = true, affinity: Affinity = .none) {
        self.global = global
        self.shared = global && shared
        self.affinity = global ? affinity : .none
    }

    package init(_ service: ServiceManifest) {
        self.init(annotations: service.annotations)
    }

    package init(annotations a: [String: String]) {
        func value(_ name: String, _ alias: String) -> String? { (a[name] ?? a[alias]).map { $0.lowercased() } }
        global = value(GlobalServiceAnnotation.global, GlobalServiceAnnotation.globalAlias) == "true"
        shared = global && (value(GlobalServiceAnnotation.shared, GlobalServiceAnnotation.sharedAlias).map { $0 == "true" } ?? true)
        affinity = .none
        invalidAffinity = nil
        // The affinity means something only for a global service (upstream ignores it otherwise).
        if global, let v = value(GlobalServiceAnnotation.affinity, GlobalServiceAnnotation.affinityAlias) {
            if let parsed = Affinity(rawValue: v) { affinity = parsed } else { invalidAffinity = a[GlobalServiceAnnotation.affinity] ?? a[GlobalServiceAnnotation.affinityAlias] }
        }
    }

    /// What the status says about an affinity value that is ignored.
    package static func invalidAffinityMessage(service: String, value: String) -> String {
        "service \(service): \(GlobalServiceAnnotation.affinity) \"\(value)\" is not one of "
            + "\(Affinity.allCases.map(\.rawValue).joined(separator: ", ")); ignored (affinity none: local and remote backends alike)"
    }
}

extension ServiceResolver {
    /// The identity label every pod of a cluster mesh carries (`k8s:io.cilium.k8s.policy.cluster=<cluster>`).
    package static let clusterLabelPrefix = "k8s:io.cilium.k8s.policy.cluster="

    /// Whether labels say the workload runs in another cluster than `local` (no cluster label: this one).
    package static func isOtherCluster(_ labels: [String], local: String) -> Bool {
        guard let l = labels.first(where: { $0.hasPrefix(clusterLabelPrefix) }) else { return false }
        return l.dropFirst(clusterLabelPrefix.count) != local[...]
    }

    /// The remote clusters' records that back local global services, by namespace/name: this cluster's
    /// own records (and not-shared ones) never count.
    package static func remoteByService(_ remote: [ClusterService], localCluster: String) -> [String: [ClusterService]] {
        Dictionary(grouping: remote.filter { $0.cluster != localCluster && $0.shared }, by: \.qualifiedName)
            .mapValues { $0.sorted { $0.cluster < $1.cluster } }
    }
}
