/// An object that can live in a `StateTable`: it has a primary key.
public protocol TableObject: Sendable {
    associatedtype Key: Hashable & Sendable
    var key: Key { get }
}

public typealias Revision = UInt64

/// One change to a table, as delivered to watchers.
public enum Change<Object: TableObject>: Sendable {
    case upsert(Object, Revision)
    case delete(Object, Revision)

    public var object: Object {
        switch self { case .upsert(let o, _), .delete(let o, _): return o }
    }
    public var revision: Revision {
        switch self { case .upsert(_, let r), .delete(_, let r): return r }
    }
}

/// A change set with the table revision it brings the table to: the
/// reconciler's watermark (it has processed the table up to `revision`).
struct ChangeSet<Object: TableObject>: Sendable {
    var changes: [Change<Object>]
    var revision: Revision
}

/// Desired state: objects by key, a revision that grows with every change, and
/// change streams for watchers. A new watcher first receives every current
/// object (as upserts), then each change as it happens; changes made in one call
/// arrive together, so consumers can batch.
public actor StateTable<Object: TableObject> {
    public nonisolated let name: String
    private var rows: [Object.Key: (object: Object, revision: Revision)] = [:]
    public private(set) var revision: Revision = 0
    private enum Watcher {
        case changes(AsyncStream<[Change<Object>]>.Continuation)
        case changeSets(AsyncStream<ChangeSet<Object>>.Continuation)
    }
    private var watchers: [Int: Watcher] = [:]
    private var nextWatcher = 0

    /// Sources that have not finished their first full sync into this table (a kvstore's
    /// initial listing). Until they have, the table is not initialized: its reconcilers
    /// apply what is there but prune nothing, so a restarted agent keeps the datapath's
    /// entries from those sources (statedb: prune waits until the table is initialized).
    private var pendingInitializers: Set<String> = []
    private var initializationWatchers: [AsyncStream<Void>.Continuation] = []

    public init(name: String) {
        self.name = name
    }

    /// `source` will fill this table; it is not initialized until `source` says so.
    public func registerInitializer(_ source: String) {
        pendingInitializers.insert(source)
    }

    /// `source` has written its first full view.
    public func markInitialized(_ source: String) {
        guard pendingInitializers.remove(source) != nil, pendingInitializers.isEmpty else { return }
        initializationFailure = nil
        for w in initializationWatchers + settleWatchers {
            w.yield()
            w.finish()
        }
        initializationWatchers = []
        settleWatchers = []
    }

    /// `source` cannot give its first full view now (its store is unreachable): the table stays
    /// uninitialized (nothing is pruned), but whoever waits to report readiness need not wait on.
    public func initializationFailed(_ source: String, reason: String) {
        guard pendingInitializers.contains(source) else { return }
        initializationFailure = "\(source): \(reason)"
        for w in settleWatchers {
            w.yield()
            w.finish()
        }
        settleWatchers = []
    }

    private var initializationFailure: String?
    private var settleWatchers: [AsyncStream<Void>.Continuation] = []

    /// Every registered source has written its first full view.
    public var isInitialized: Bool { pendingInitializers.isEmpty }

    /// Why the table is not initialized yet (nil: it is).
    public var initializationPending: String? {
        guard !pendingInitializers.isEmpty else { return nil }
        return initializationFailure ?? "waiting for the first full view of \(pendingInitializers.sorted().joined(separator: ", "))"
    }

    /// Yields once (and ends) when the table is initialized or a source said it cannot be yet.
    public func initializationSettled() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        if pendingInitializers.isEmpty || initializationFailure != nil {
            continuation.yield()
            continuation.finish()
        } else {
            settleWatchers.append(continuation)
        }
        return stream
    }

    /// Yields once (and ends) when the table is initialized; at once if it is.
    public func initialization() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        if pendingInitializers.isEmpty {
            continuation.yield()
            continuation.finish()
        } else {
            initializationWatchers.append(continuation)
        }
        return stream
    }

    @discardableResult
    public func upsert(_ object: Object) -> Revision {
        upsert(contentsOf: [object])
    }

    /// Inserts or replaces many objects as one change set. A change set never
    /// names a key twice (a key given twice counts with its last object), so
    /// consumers can apply it without coalescing.
    @discardableResult
    public func upsert<S: Sequence>(contentsOf objects: S) -> Revision where S.Element == Object {
        upsertAll(objects)
    }

    private func upsertAll<S: Sequence>(_ objects: S) -> Revision where S.Element == Object {
        let start = revision
        var changes: [Change<Object>] = []
        changes.reserveCapacity(objects.underestimatedCount)
        rows.reserveCapacity(rows.count + objects.underestimatedCount)
        var repeated = false
        for object in objects {
            revision += 1
            if let old = rows.updateValue((object, revision), forKey: object.key), old.revision > start {
                repeated = true
            }
            changes.append(.upsert(object, revision))
        }
        if repeated {
            changes.removeAll { rows[$0.object.key]?.revision != $0.revision }
        }
        publish(changes)
        return revision
    }

    /// As `upsert(_:)`; an object equal to the stored one is no change (see `upsert(contentsOf:)`).
    @discardableResult
    public func upsert(_ object: Object) -> Revision where Object: Equatable {
        upsert(contentsOf: [object])
    }

    /// As the general `upsert(contentsOf:)`, but an object equal to the one stored under its key
    /// is no change: it keeps its revision and is not announced, so a no-op event (a kvstore key
    /// put again unchanged) costs no reconciler, recompute or file write downstream.
    @discardableResult
    public func upsert<S: Sequence>(contentsOf objects: S) -> Revision where S.Element == Object, Object: Equatable {
        var pending: [Object.Key: Object] = [:]
        var changed: [Object] = []
        pending.reserveCapacity(objects.underestimatedCount)
        changed.reserveCapacity(objects.underestimatedCount)
        for object in objects {
            let current = pending[object.key] ?? rows[object.key]?.object
            guard current != object else { continue }
            pending[object.key] = object
            changed.append(object)
        }
        return upsertAll(changed)
    }

    @discardableResult
    public func delete(key: Object.Key) -> Revision {
        delete(keys: [key])
    }

    @discardableResult
    public func delete<S: Sequence>(keys: S) -> Revision where S.Element == Object.Key {
        var changes: [Change<Object>] = []
        for key in keys {
            guard let row = rows.removeValue(forKey: key) else { continue }
            revision += 1
            changes.append(.delete(row.object, revision))
        }
        publish(changes)
        return revision
    }

    /// Replaces the whole content: objects not in `objects` are deleted.
    @discardableResult
    public func replaceAll(_ objects: [Object]) -> Revision {
        deleteAllBut(objects)
        return upsert(contentsOf: objects)
    }

    /// Makes the content `objects`, touching only what differs: unchanged
    /// objects keep their revision (their reconcilers do nothing).
    @discardableResult
    public func replaceChanged(_ objects: [Object]) -> Revision where Object: Equatable {
        deleteAllBut(objects)
        return upsert(contentsOf: objects)
    }

    private func deleteAllBut(_ objects: [Object]) {
        guard !rows.isEmpty else { return }
        let keep = Set(objects.map(\.key))
        delete(keys: rows.keys.filter { !keep.contains($0) })
    }

    public func get(_ key: Object.Key) -> Object? { rows[key]?.object }
    public func revision(of key: Object.Key) -> Revision? { rows[key]?.revision }
    func row(_ key: Object.Key) -> (object: Object, revision: Revision)? { rows[key] }
    public func all() -> [Object] { rows.values.map(\.object) }
    public var count: Int { rows.count }

    /// A stream of change sets. With `includeExisting` the first set is the
    /// current content (possibly empty).
    public func changes(includeExisting: Bool = true) -> AsyncStream<[Change<Object>]> {
        let (stream, continuation) = AsyncStream<[Change<Object>]>.makeStream()
        let id = nextWatcher
        nextWatcher += 1
        if includeExisting {
            continuation.yield(rows.values.map { .upsert($0.object, $0.revision) })
        }
        watchers[id] = .changes(continuation)
        continuation.onTermination = { [weak self] _ in
            Task { await self?.removeWatcher(id) }
        }
        return stream
    }

    /// As `changes(includeExisting: true)`, each set with the revision it
    /// brings the table to. The first (the current content) carries the
    /// revision at subscription, which deletes may have raised above every
    /// row's own.
    func changeSets() -> AsyncStream<ChangeSet<Object>> {
        let (stream, continuation) = AsyncStream<ChangeSet<Object>>.makeStream()
        let id = nextWatcher
        nextWatcher += 1
        continuation.yield(ChangeSet(changes: rows.values.map { .upsert($0.object, $0.revision) }, revision: revision))
        watchers[id] = .changeSets(continuation)
        continuation.onTermination = { [weak self] _ in
            Task { await self?.removeWatcher(id) }
        }
        return stream
    }

    /// Every row as an upsert with its own revision (a refresh).
    func allAsUpserts() -> [Change<Object>] {
        rows.values.map { .upsert($0.object, $0.revision) }
    }

    public var watcherCount: Int { watchers.count }

    private func removeWatcher(_ id: Int) {
        watchers.removeValue(forKey: id)
    }

    private func publish(_ changes: [Change<Object>]) {
        guard !changes.isEmpty else { return }
        for watcher in watchers.values {
            switch watcher {
            case .changes(let c): c.yield(changes)
            case .changeSets(let c): c.yield(ChangeSet(changes: changes, revision: revision))
            }
        }
    }

    deinit {
        for watcher in watchers.values {
            switch watcher {
            case .changes(let c): c.finish()
            case .changeSets(let c): c.finish()
            }
        }
    }
}

extension StateTable {
    /// Waits until the table is initialized, a source said it cannot be yet, or `deadline`.
    public nonisolated func initializationSettled(until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for await _ in await self.initializationSettled() { break } }
            group.addTask { try? await Task.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }
}
