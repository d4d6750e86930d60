import Foundation

/// Maps label sets to numeric security identities, cluster-wide, through
/// the kvstore (upstream's layout, see `KVKeys`):
/// - `identities/v1/id/<n>` holds the label list of identity n;
/// - `identities/v1/value/<label list>/` holds n.
///
/// Allocation, for a label set L:
/// 1. if L's key exists, its number is the answer (after checking the id key
///    holds L, repairing a missing one);
/// 2. otherwise pick a number: an id key that already holds L but that no
///    L key points to (left over by an agent that stopped half-way), or the
///    lowest free number in `range`, claimed with `create` (only if absent):
///    two label sets can never own the same id key;
/// 3. `create` L's key with that number. If another agent created it first,
///    take its number and delete the id key we created for nothing.
/// Agents racing on the same label set thus end with the same number, and
/// different label sets never share one. Conflicts retry from step 1.
///
/// Identities are not released here: upstream's operator garbage-collects
/// unused ones.
public actor IdentityAllocator {
    public let store: any KVStore
    public let range: ClosedRange<Int>
    private let maxAttempts: Int
    /// How often another agent got a number or a label set first (each
    /// such conflict meant a retry).
    public private(set) var conflicts = 0
    private var byLabels: [String: Int] = [:]
    private var byID: [Int: String] = [:]

    /// The numeric identities a cluster allocates, as upstream: 24 bits, the cluster ID in bits 16-23
    /// (255 clusters) or 15-23 (511); cluster 1 of 255 allocates 65536-131071. Cluster 0 (no mesh) starts at 256.
    public static func range(clusterID: Int, maxConnectedClusters: Int = 255) -> ClosedRange<Int> {
        let shift = maxConnectedClusters > 255 ? 15 : 16
        let base = clusterID << shift
        return max(base, 256)...(base | (1 << shift - 1))
    }

    /// The cluster ID a numeric identity carries (0 for reserved, local and cluster-0 identities).
    public static func clusterID(of identity: UInt32, maxConnectedClusters: Int = 255) -> Int {
        let shift: UInt32 = maxConnectedClusters > 255 ? 15 : 16
        return Int((identity & 0xFF_FFFF) >> shift)
    }

    /// `range`: upstream's cluster-wide identities start at 256 and, in one
    /// cluster, fit in 16 bits (see `range(clusterID:maxConnectedClusters:)`).
    public init(store: any KVStore, range: ClosedRange<Int> = 256...65535, maxAttempts: Int = 100) {
        self.store = store
        self.range = range
        self.maxAttempts = maxAttempts
    }

    /// The identity of `labels` (order and duplicates do not matter),
    /// allocating one when the cluster has none yet.
    public func allocate(_ labels: [String]) async throws -> Int {
        let list = KVKeys.labelList(labels)
        if let id = byLabels[list] { return id }
        let valueKey = KVKeys.identityByLabels(labels)
        let listBytes = Data(list.utf8)
        var taken: Set<Int> = []
        for _ in 0..<maxAttempts {
            // 1. Already allocated?
            if let existing = try await store.get(valueKey) {
                if let id = try await verify(existing, list: list, valueKey: valueKey) { return remember(id, list) }
                continue
            }
            // 2. Pick a number.
            let ids = try await store.list(prefix: KVKeys.identitiesPrefix)
            let candidate: Int
            var ownIDKey: KVPair?
            if let orphan = ids.pairs.first(where: { $0.value == listBytes }),
               let id = Int(KVKeys.suffix(of: orphan.key, after: KVKeys.identitiesPrefix) ?? "") {
                candidate = id
            } else {
                let used = Set(ids.pairs.compactMap { Int(KVKeys.suffix(of: $0.key, after: KVKeys.identitiesPrefix) ?? "") })
                    .union(taken)
                guard let free = range.first(where: { !used.contains($0) }) else {
                    throw KVStoreError(.invalidArgument, source: "identity allocator", operation: "allocate \(list)",
                                       reason: "no free identity in \(range.lowerBound)...\(range.upperBound)")
                }
                candidate = free
                guard try await store.create(KVKeys.identity(free), listBytes) else {
                    taken.insert(free)   // another agent got it first
                    conflicts += 1
                    continue
                }
                ownIDKey = try await store.get(KVKeys.identity(free))
            }
            // 3. Point the label set at it.
            if try await store.create(valueKey, Data(String(candidate).utf8)) { return remember(candidate, list) }
            let winner = try await store.get(valueKey)
            if winner?.string == String(candidate) { return remember(candidate, list) }
            conflicts += 1
            if let ownIDKey, ownIDKey.value == listBytes {
                _ = try await store.compareAndDelete(ownIDKey.key, expectedModRevision: ownIDKey.modRevision)
            }
        }
        throw KVStoreError(.timeout, source: "identity allocator", operation: "allocate \(list)",
                           reason: "gave up after \(maxAttempts) conflicting attempts")
    }

    /// Checks that the id a label-set key names holds those labels. Returns
    /// the id, or nil after removing or repairing an inconsistency (retry).
    private func verify(_ valuePair: KVPair, list: String, valueKey: String) async throws -> Int? {
        guard let id = Int(valuePair.string) else {
            _ = try await store.compareAndDelete(valueKey, expectedModRevision: valuePair.modRevision)
            return nil
        }
        if let idPair = try await store.get(KVKeys.identity(id)) {
            if idPair.string == list { return id }
            // Points at another label set's number: drop the bad pointer.
            _ = try await store.compareAndDelete(valueKey, expectedModRevision: valuePair.modRevision)
            return nil
        }
        // The id key is missing: claim it again for these labels.
        if try await store.create(KVKeys.identity(id), Data(list.utf8)) { return id }
        return nil
    }

    private func remember(_ id: Int, _ list: String) -> Int {
        byLabels[list] = id
        byID[id] = list
        return id
    }

    /// The identity of `labels` if the cluster has one.
    public func lookup(labels: [String]) async throws -> Int? {
        let list = KVKeys.labelList(labels)
        if let id = byLabels[list] { return id }
        guard let pair = try await store.get(KVKeys.identityByLabels(labels)), let id = Int(pair.string) else { return nil }
        return remember(id, list)
    }

    /// The labels of identity `id` if it exists.
    public func lookup(id: Int) async throws -> [String]? {
        if let list = byID[id] { return KVKeys.labels(fromList: list) }
        guard let pair = try await store.get(KVKeys.identity(id)) else { return nil }
        return KVKeys.labels(fromList: pair.string)
    }

    /// Every identity in the cluster.
    public func all() async throws -> [Int: [String]] {
        var result: [Int: [String]] = [:]
        for pair in try await store.list(prefix: KVKeys.identitiesPrefix).pairs {
            if let id = Int(KVKeys.suffix(of: pair.key, after: KVKeys.identitiesPrefix) ?? "") {
                result[id] = KVKeys.labels(fromList: pair.string)
            }
        }
        return result
    }
}
