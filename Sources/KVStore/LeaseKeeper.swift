/// Keeps a lease alive: refreshes it every ttl/3 in a background task until
/// `stop()`, `revoke()` or deinit. When the store says the lease is gone
/// (it expired, e.g. because the store was unreachable for longer than the
/// TTL), the keeper stops and calls `onExpired`; the owner then grants a
/// new lease and writes its keys again. Other refresh errors are retried.
public final class LeaseKeeper: Sendable {
    public enum State: Sendable, Hashable {
        case running, stopped, expired
    }

    public let lease: Lease
    private let store: any KVStore
    private let shared: Locked<(state: State, task: Task<Void, Never>?)>

    public init(store: any KVStore, lease: Lease, interval: Duration? = nil,
                onExpired: (@Sendable (Lease) async -> Void)? = nil) {
        self.lease = lease
        self.store = store
        let shared = Locked<(state: State, task: Task<Void, Never>?)>((.running, nil))
        self.shared = shared
        let every = max(interval ?? lease.ttl / 3, .milliseconds(50))
        let task = Task {
            var delay = every
            while !Task.isCancelled {
                do { try await Task.sleep(for: delay) } catch { return }
                do {
                    try await store.keepAlive(lease)
                    delay = every
                } catch let error as KVStoreError where error.kind == .leaseNotFound {
                    let expired = shared.withLock { s -> Bool in
                        guard s.state == .running else { return false }
                        s.state = .expired
                        return true
                    }
                    if expired, let onExpired { await onExpired(lease) }
                    return
                } catch {
                    // Unreachable or slow: try again sooner; the lease
                    // survives as long as a refresh lands within its TTL.
                    delay = max(every / 2, .milliseconds(50))
                }
            }
        }
        shared.withLock { $0.task = task }
    }

    deinit {
        shared.withLock { $0.task?.cancel() }
    }

    public var state: State { shared.withLock { $0.state } }

    /// Stops refreshing; the lease then expires after its TTL.
    public func stop() {
        shared.withLock { s in
            s.task?.cancel()
            if s.state == .running { s.state = .stopped }
        }
    }

    /// Stops refreshing and revokes the lease, deleting its keys at once.
    public func revoke() async throws {
        stop()
        try await store.revoke(lease)
    }
}
