import Foundation

/// The single-node store: in memory, with etcd's revision, create, CAS,
/// lease and watch semantics, persisted to a JSON file after every change
/// (see `EmbeddedSnapshot`) so its content survives an agent restart. Leases
/// expire in-process; leases still alive when the process stops keep their
/// wall-clock deadline and expire after a restart like etcd's would.
/// One process owns the file.
public final class EmbeddedKVStore: KVStore {
    /// The file, or nil for a store that lives in memory only.
    public let path: String?

    private struct Watcher {
        var prefix: String
        var continuation: AsyncThrowingStream<KVEvent, any Error>.Continuation
    }

    private struct Inner: Sendable {
        var state: EmbeddedState
        var watchers: [Int: Watcher] = [:]
        var nextWatcherID = 0
        var closed = false
        var timer: Task<Void, Never>?
    }

    private let inner: Locked<Inner>
    private var source: String { "embedded \(path ?? "memory")" }

    /// Opens (or creates) the store at `path`; nil keeps it in memory.
    /// `historyLimit` bounds the events kept for watches from a past revision.
    public init(path: String?, historyLimit: Int = 10_000) throws {
        self.path = path
        var state = EmbeddedState()
        if let path {
            let source = "embedded \(path)"
            do {
                let dir = (path as NSString).deletingLastPathComponent
                if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
                if let snapshot = try EmbeddedSnapshot.load(path: path) {
                    state = snapshot.state()
                } else {
                    try EmbeddedSnapshot(state).write(path: path)
                }
            } catch {
                throw KVStoreError(.storage, source: source, operation: "open", reason: "\(error)")
            }
        }
        state.historyLimit = historyLimit
        inner = Locked(Inner(state: state))
        let timer = Task.detached { [weak self] in
            while !Task.isCancelled {
                guard let delay = self?.expireTick() else { return }
                try? await Task.sleep(for: delay)
            }
        }
        inner.withLock { $0.timer = timer }
    }

    deinit {
        close()
    }

    /// Ends all watches and the lease timer; later calls throw `.closed`.
    public func close() {
        let ending = inner.withLock { inner in
            inner.closed = true
            inner.timer?.cancel()
            let all = inner.watchers.values.map(\.continuation)
            inner.watchers = [:]
            return all
        }
        for continuation in ending { continuation.finish() }
    }

    // MARK: Core

    /// Runs `body` on the state after expiring due leases; persists and
    /// publishes the changes, or leaves everything as it was on failure.
    /// The state is changed in place (a copy is kept only while a file
    /// write may still fail), so reads copy nothing.
    private func mutate<R: Sendable>(_ operation: String,
                                     _ body: (inout EmbeddedState, ContinuousClock.Instant) throws -> (R, [KVEvent])) throws -> R {
        let source = self.source, path = self.path
        // Watchers that fell behind are told after the lock is released (ending a stream runs its
        // onTermination, which takes the lock).
        var behind: [(AsyncThrowingStream<KVEvent, any Error>.Continuation, KVStoreError)] = []
        defer { for (c, e) in behind { c.finish(throwing: e) } }
        return try inner.withLock { inner in
            guard !inner.closed else {
                throw KVStoreError(.closed, source: source, operation: operation, reason: "store is closed")
            }
            let now = ContinuousClock.now
            var before: EmbeddedState? = path == nil ? nil : inner.state
            var events = inner.state.expire(now: now)
            let result: R
            do {
                let (r, more) = try body(&inner.state, now)
                result = r
                events += more
            } catch EmbeddedState.Failure.leaseNotFound(let id) {
                // `body` checks before it changes anything; only expiries to undo.
                if let before { inner.state = before }
                throw KVStoreError(.leaseNotFound, source: source, operation: operation,
                                   reason: "requested lease \(String(id, radix: 16)) not found")
            }
            if inner.state.dirty, let path {
                do {
                    try EmbeddedSnapshot(inner.state, now: now).write(path: path)
                } catch {
                    if let before { inner.state = before }
                    throw KVStoreError(.storage, source: source, operation: operation, reason: "\(error)")
                }
            }
            before = nil
            inner.state.dirty = false
            if !events.isEmpty {
                inner.state.record(events)
                behind = publish(events, to: &inner.watchers)
            }
            return result
        }
    }

    private func read<R: Sendable>(_ operation: String, _ body: (EmbeddedState) -> R) throws -> R {
        try mutate(operation) { state, _ in (body(state), []) }
    }

    /// Hands the events to their watchers; returns those that fell behind, to be told so.
    private func publish(_ events: [KVEvent], to watchers: inout [Int: Watcher])
        -> [(AsyncThrowingStream<KVEvent, any Error>.Continuation, KVStoreError)] {
        var behind: [(AsyncThrowingStream<KVEvent, any Error>.Continuation, KVStoreError)] = []
        for event in events {
            for (id, watcher) in watchers where EmbeddedState.matches(event.key, prefix: watcher.prefix) {
                switch Self.offer(event, to: watcher.continuation, source: source, prefix: watcher.prefix) {
                case .taken: continue
                case .gone: watchers[id] = nil
                case .behind(let e):
                    watchers[id] = nil
                    behind.append((watcher.continuation, e))
                }
            }
        }
        return behind
    }

    private enum Offer { case taken, gone, behind(KVStoreError) }

    /// Hands `event` to a watcher's buffer.
    private static func offer(_ event: KVEvent, to continuation: AsyncThrowingStream<KVEvent, any Error>.Continuation,
                              source: String, prefix: String) -> Offer {
        switch continuation.yield(event) {
        case .enqueued: return .taken
        case .dropped: return .behind(KVWatchBuffer.fellBehind(at: event.revision, source: source, operation: "watch \(prefix)"))
        case .terminated: return .gone
        @unknown default: return .taken
        }
    }

    /// Expires due leases; returns how long to sleep, nil once closed.
    private func expireTick() -> Duration? {
        do {
            return try mutate("expire leases") { state, now in
                let next = state.nextExpiry.map { $0 - now } ?? .milliseconds(500)
                return (min(max(next, .milliseconds(10)), .milliseconds(250)), [])
            }
        } catch let e as KVStoreError where e.kind == .closed {
            return nil
        } catch {
            return .milliseconds(250)  // storage failure: retry
        }
    }

    // MARK: KVStore

    public func get(_ key: String) async throws -> KVPair? {
        try read("get \(key)") { $0.pair(key) }
    }

    public func list(prefix: String) async throws -> KVList {
        try read("list \(prefix)") { state in
            KVList(pairs: state.keys(prefix: prefix).map { state.pair($0)! }, revision: state.revision)
        }
    }

    @discardableResult
    public func put(_ key: String, _ value: Data, lease: Lease?) async throws -> Int64 {
        try mutate("put \(key)") { state, _ in
            let events = try state.put(key, value, lease: lease?.id)
            return (state.revision, events)
        }
    }

    @discardableResult
    public func write(batch: [(key: String, value: Data?)]) async throws -> Int64 {
        try mutate("write \(batch.count) keys") { state, _ in
            var events: [KVEvent] = []
            for op in batch {
                if let value = op.value { events += try state.put(op.key, value, lease: nil) } else { events += state.delete([op.key]) }
            }
            return (state.revision, events)
        }
    }

    public func create(_ key: String, _ value: Data, lease: Lease?) async throws -> Bool {
        try mutate("create \(key)") { state, _ in
            guard state.entries[key] == nil else { return (false, []) }
            return (true, try state.put(key, value, lease: lease?.id))
        }
    }

    public func compareAndSwap(_ key: String, expectedModRevision: Int64, newValue: Data, lease: Lease?) async throws -> Bool {
        try mutate("compare-and-swap \(key)") { state, _ in
            guard (state.entries[key]?.modRevision ?? 0) == expectedModRevision else { return (false, []) }
            return (true, try state.put(key, newValue, lease: lease?.id))
        }
    }

    public func compareAndDelete(_ key: String, expectedModRevision: Int64) async throws -> Bool {
        try mutate("compare-and-delete \(key)") { state, _ in
            guard (state.entries[key]?.modRevision ?? 0) == expectedModRevision else { return (false, []) }
            return (true, state.delete([key]))
        }
    }

    @discardableResult
    public func delete(_ key: String) async throws -> Bool {
        try mutate("delete \(key)") { state, _ in
            let events = state.delete([key])
            return (!events.isEmpty, events)
        }
    }

    @discardableResult
    public func deletePrefix(_ prefix: String) async throws -> Int {
        try mutate("delete prefix \(prefix)") { state, _ in
            let events = state.delete(state.keys(prefix: prefix))
            return (events.count, events)
        }
    }

    public func grantLease(ttl: Duration) async throws -> Lease {
        try mutate("grant lease") { state, now in
            (Lease(id: state.grant(ttl: ttl, now: now), ttl: ttl), [])
        }
    }

    @discardableResult
    public func keepAlive(_ lease: Lease) async throws -> Duration {
        try mutate("keep-alive lease \(String(lease.id, radix: 16))") { state, now in
            (try state.keepAlive(lease.id, now: now), [])
        }
    }

    public func revoke(_ lease: Lease) async throws {
        try mutate("revoke lease \(String(lease.id, radix: 16))") { state, _ in
            ((), state.revoke(lease.id))
        }
    }

    public func watch(prefix: String, fromRevision: Int64?) -> AsyncThrowingStream<KVEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: KVEvent.self, bufferingPolicy: .bufferingOldest(KVWatchBuffer.limit))
        let id = inner.withLock { inner in
            inner.nextWatcherID += 1
            return inner.nextWatcherID
        }
        continuation.onTermination = { [weak self] _ in
            self?.inner.withLock { _ = $0.watchers.removeValue(forKey: id) }
        }
        let source = self.source
        let failure: KVStoreError? = inner.withLock { inner in
            guard !inner.closed else {
                return KVStoreError(.closed, source: source, operation: "watch \(prefix)", reason: "store is closed")
            }
            if let fromRevision {
                guard let past = inner.state.events(from: fromRevision) else {
                    let compacted = inner.state.oldestKeptRevision - 1
                    return KVStoreError(.compacted(revision: compacted), source: source, operation: "watch \(prefix)",
                                        reason: "required revision \(fromRevision) has been compacted (kept from \(compacted + 1))")
                }
                for event in past where EmbeddedState.matches(event.key, prefix: prefix) {
                    switch Self.offer(event, to: continuation, source: source, prefix: prefix) {
                    case .taken: continue
                    case .gone: return nil
                    case .behind(let e): return e
                    }
                }
            }
            inner.watchers[id] = Watcher(prefix: prefix, continuation: continuation)
            return nil
        }
        if let failure { continuation.finish(throwing: failure) }
        return stream
    }

    public func status() async -> KVStoreHealth {
        let (closed, revision) = inner.withLock { ($0.closed, $0.state.revision) }
        if closed { return .failure(message: "Err: embedded store is closed") }
        return .ok(endpoint: path ?? "memory", revision: revision,
                   message: path.map { "Embedded (file \($0))" } ?? "Embedded (in memory)")
    }
}
