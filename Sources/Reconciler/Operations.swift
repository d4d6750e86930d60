/// What a reconciler needs from its target (a BPF map, a netlink object, a
/// device): the three operations of cilium/statedb's reconciler.
public protocol Operations<Object>: Sendable {
    associatedtype Object: TableObject

    /// Makes the target hold `object`. Must be idempotent.
    func update(_ object: Object) async throws
    /// Removes `object` from the target. Deleting what is absent succeeds.
    func delete(_ object: Object) async throws
    /// Removes from the target everything that is not in `desired`, leaving
    /// the rest untouched (a restarted agent drops stale entries this way
    /// without flushing live ones).
    func prune(desired: [Object]) async throws

    /// Batch variants; the defaults fall back to one call per object. Return
    /// the objects that failed, with their errors.
    func updateBatch(_ objects: [Object]) async -> [(Object, any Error)]
    func deleteBatch(_ objects: [Object]) async -> [(Object, any Error)]
}

extension Operations {
    public func updateBatch(_ objects: [Object]) async -> [(Object, any Error)] {
        var failed: [(Object, any Error)] = []
        for object in objects {
            do { try await update(object) } catch { failed.append((object, error)) }
        }
        return failed
    }

    public func deleteBatch(_ objects: [Object]) async -> [(Object, any Error)] {
        var failed: [(Object, any Error)] = []
        for object in objects {
            do { try await delete(object) } catch { failed.append((object, error)) }
        }
        return failed
    }
}
