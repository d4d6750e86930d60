import AgentModel
import API
import CBPF
import KVStore

/// Security identities: Cilium's reserved numbers and label sets -> numbers
/// from 256. New label sets are numbered by the cluster-wide allocator (the
/// kvstore, compare-and-swap), so every node gives a set the same number; the
/// answers are kept here too, so known sets resolve while the store is down.
actor LocalIdentityAllocator {
    struct Persisted: Codable {
        var identities: [String: UInt32] // canonical label set -> id
    }

    static let reserved: [(UInt32, String)] = [
        (1, "reserved:host"), (2, "reserved:world"), (3, "reserved:unmanaged"), (4, "reserved:health"),
        (5, "reserved:init"), (6, "reserved:remote-node"), (7, "reserved:kube-apiserver"), (8, "reserved:ingress"),
    ]
    static let firstClusterIdentity: UInt32 = 256

    private var byLabels: [String: UInt32] = [:]
    private var refs: [UInt32: Int] = [:]
    private let state: JSONState<Persisted>
    private let cluster: IdentityAllocator?

    /// The numbers this cluster allocates: kept answers outside it (another cluster.id's) are forgotten.
    private let range: ClosedRange<Int>

    init(stateFile: String, cluster: IdentityAllocator? = nil, range: ClosedRange<Int> = IdentityAllocator.range(clusterID: 0)) throws {
        state = JSONState(path: stateFile)
        self.range = range
        byLabels = (try state.load()?.identities ?? [:]).filter { range.contains(Int($0.value)) }
        self.cluster = cluster
    }

    /// Labels sorted and joined: the same set always gives the same key.
    static func canonical(_ labels: [String]) -> String {
        Set(labels.map(normalize)).sorted().joined(separator: ";")
    }

    /// "app=web" becomes "k8s:app=web" (upstream's default source); labels
    /// with a source ("reserved:host", "container:x=y") stay as they are.
    static func normalize(_ label: String) -> String {
        let key = label.split(separator: "=", maxSplits: 1).first ?? ""
        return key.contains(":") ? label : "k8s:" + label
    }

    /// The identity of a label set, allocating one when it is new. An endpoint
    /// without labels is "reserved:init" until it has some, as upstream.
    func identity(for labels: [String]) async throws -> UInt32 {
        if labels.isEmpty { return 5 }
        let key = Self.canonical(labels)
        if let r = Self.reserved.first(where: { $0.1 == key }) { return r.0 }
        if let id = byLabels[key] {
            refs[id, default: 0] += 1
            return id
        }
        let id: UInt32
        if let cluster {
            id = UInt32(try await cluster.allocate(key.split(separator: ";").map(String.init)))
        } else {
            id = (byLabels.values.max() ?? UInt32(range.lowerBound) - 1) + 1
        }
        byLabels[key] = id
        refs[id] = 1
        try state.save(Persisted(identities: byLabels))
        return id
    }

    func release(_ id: UInt32) {
        guard id >= Self.firstClusterIdentity, let n = refs[id] else { return }
        refs[id] = n > 1 ? n - 1 : nil
    }

    /// Every identity: reserved ones, then allocated ones with their labels.
    func all() -> [IdentityModel] {
        Self.reserved.map { IdentityModel(id: $0.0, labels: [$0.1], references: 0) }
            + byLabels.map { IdentityModel(id: $0.value, labels: $0.key.split(separator: ";").map(String.init),
                                           references: refs[$0.value] ?? 0) }
            .sorted { $0.id < $1.id }
    }
}
