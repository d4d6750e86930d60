import API
import Manifests
import Foundation

/// The Service and EndpointSlice manifests in force, by namespace/name, where
/// each came from, and the ids the resolver handed out; persisted in the
/// agent's state directory so a restarted agent keeps them.
struct ServiceStore: Sendable {
    struct Persisted: Codable, Equatable {
        var services: [ServiceManifest]
        var slices: [EndpointSliceManifest]
        var sources: [String: String]
        var ids: ServiceResolver.IDs
        var backendStates: [String: UInt32]?
        /// The remote clusters' records the global services used last: a restarted agent keeps their backends
        /// until cluster mesh has listed every remote cluster again.
        var remoteServices: [ClusterService]?
    }

    private(set) var services: [String: ServiceManifest] = [:]
    private(set) var slices: [String: EndpointSliceManifest] = [:]
    /// "svc:ns/name" or "slice:ns/name" -> "api" or "directory".
    private(set) var sources: [String: String] = [:]
    /// Operator-set backend states ("10.0.1.5:8080/TCP" -> maintenance/quarantined/active).
    var backendStates: [String: UInt32] = [:] {
        didSet { if backendStates != oldValue { revision += 1 } }
    }
    /// The remote clusters' records (cluster/namespace/name) the local global services were last resolved with.
    var remoteServices: [String: ClusterService] = [:] {
        didSet { if remoteServices != oldValue { revision += 1 } }
    }
    /// Grows with every change of what services.json holds (but the resolver's ids).
    private(set) var revision = 0

    static func sliceKey(_ s: EndpointSliceManifest) -> String { "\(s.namespace)/\(s.name)" }

    /// Adds or replaces; with `replacingSource`, what came from `source` before and is not in `docs` goes.
    mutating func apply(_ docs: ServiceDocuments, source: String, replacingSource: Bool = false) {
        if replacingSource {
            let svcNames = Set(docs.services.map(\.qualifiedName)), sliceNames = Set(docs.slices.map(Self.sliceKey))
            for (k, _) in services where sources["svc:" + k] == source && !svcNames.contains(k) {
                services[k] = nil
                sources["svc:" + k] = nil
                revision += 1
            }
            for (k, _) in slices where sources["slice:" + k] == source && !sliceNames.contains(k) {
                slices[k] = nil
                sources["slice:" + k] = nil
                revision += 1
            }
        }
        for s in docs.services where services[s.qualifiedName] != s || sources["svc:" + s.qualifiedName] != source {
            services[s.qualifiedName] = s
            sources["svc:" + s.qualifiedName] = source
            revision += 1
        }
        for s in docs.slices where slices[Self.sliceKey(s)] != s || sources["slice:" + Self.sliceKey(s)] != source {
            slices[Self.sliceKey(s)] = s
            sources["slice:" + Self.sliceKey(s)] = source
            revision += 1
        }
    }

    /// Deletes a service (and the EndpointSlices that belong to it); returns whether it existed.
    mutating func delete(name: String, namespace: String) -> Bool {
        let key = "\(namespace)/\(name)"
        guard services.removeValue(forKey: key) != nil else { return false }
        revision += 1
        sources["svc:" + key] = nil
        for (k, s) in slices where s.namespace == namespace && s.serviceName == name {
            slices[k] = nil
            sources["slice:" + k] = nil
        }
        return true
    }

    /// Frontends two services would share (the second one would shadow the first).
    func conflicts(with docs: ServiceDocuments) -> String? {
        var owner: [String: String] = [:]
        var all = services
        for s in docs.services { all[s.qualifiedName] = s }
        for s in all.values.sorted(by: { $0.qualifiedName < $1.qualifiedName }) {
            for p in s.ports {
                var fronts = ([s.clusterIP].compactMap { $0 }.filter { $0 != "None" } + s.externalIPs + s.loadBalancerIPs)
                    .map { "\($0):\(p.port)/\(p.proto.rawValue)" }
                if let np = p.nodePort, s.type != .clusterIP { fronts.append("NodePort \(np)/\(p.proto.rawValue)") }
                for f in fronts {
                    if let other = owner[f], other != s.qualifiedName {
                        return "\(f) is used by both \(other) and \(s.qualifiedName); a frontend belongs to one service"
                    }
                    owner[f] = s.qualifiedName
                }
            }
        }
        return nil
    }

    func persisted(ids: ServiceResolver.IDs) -> Persisted {
        Persisted(services: services.values.sorted { $0.qualifiedName < $1.qualifiedName },
                  slices: slices.values.sorted { Self.sliceKey($0) < Self.sliceKey($1) },
                  sources: sources, ids: ids, backendStates: backendStates,
                  remoteServices: remoteServices.isEmpty ? nil : remoteServices.values.sorted { $0.key < $1.key })
    }

    init() {}

    init(_ p: Persisted) {
        for s in p.services { services[s.qualifiedName] = s }
        for s in p.slices { slices[Self.sliceKey(s)] = s }
        sources = p.sources
        backendStates = p.backendStates ?? [:]
        for r in p.remoteServices ?? [] { remoteServices[r.key] = r }
    }

    /// The local services annotated global (namespace/name).
    var globalServiceNames: Set<String> {
        Set(services.values.filter { GlobalServiceSettings($0).global }.map(\.qualifiedName))
    }

    /// The remote records to resolve with: with `initialized` (cluster mesh has listed every remote cluster),
    /// `table`'s records alone; before, `table`'s and, for what it does not hold yet, the ones used last.
    /// Only records of other clusters naming a local global service count (and are kept).
    mutating func remoteRecords(table: [ClusterService], initialized: Bool, localCluster: String) -> [ClusterService] {
        let global = globalServiceNames
        var use: [String: ClusterService] = [:]
        if !initialized { use = remoteServices }
        for r in table { use[r.key] = r }
        use = use.filter { $0.value.cluster != localCluster && global.contains($0.value.qualifiedName) }
        remoteServices = use
        return use.values.sorted { $0.key < $1.key }
    }
}
