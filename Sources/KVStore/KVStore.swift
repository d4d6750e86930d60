import Foundation

/// The cluster-state store: the embedded single-node store or etcd. Both
/// follow etcd's v3 semantics (revisions, create-only-if-absent and
/// compare-and-swap through revisions, leases, watches from a revision).
public protocol KVStore: Sendable {
    /// The key, or nil when absent.
    func get(_ key: String) async throws -> KVPair?
    /// All keys under `prefix`, sorted by key, with the revision of the read.
    func list(prefix: String) async throws -> KVList
    /// Writes `value`; returns the new store revision. A lease attaches the
    /// key to it (a put without a lease detaches the key from any lease).
    @discardableResult
    func put(_ key: String, _ value: Data, lease: Lease?) async throws -> Int64
    /// Writes only if the key is absent (etcd: compare create_revision == 0).
    /// Returns false, changing nothing, when it exists.
    func create(_ key: String, _ value: Data, lease: Lease?) async throws -> Bool
    /// Writes only if the key's mod revision is `expectedModRevision`
    /// (0 means "absent"). Returns false, changing nothing, otherwise.
    func compareAndSwap(_ key: String, expectedModRevision: Int64, newValue: Data, lease: Lease?) async throws -> Bool
    /// Deletes only if the key's mod revision is `expectedModRevision`.
    func compareAndDelete(_ key: String, expectedModRevision: Int64) async throws -> Bool
    /// Deletes the key; returns whether it existed.
    @discardableResult
    func delete(_ key: String) async throws -> Bool
    /// Puts (a value) and deletes (nil) as one write: etcd makes it one transaction (at most
    /// 128 operations, its `--max-txn-ops`); the embedded store saves its file once.
    @discardableResult
    func write(batch: [(key: String, value: Data?)]) async throws -> Int64
    /// Deletes every key under `prefix`; returns how many there were.
    @discardableResult
    func deletePrefix(_ prefix: String) async throws -> Int
    /// Grants a lease. Keep it alive with `LeaseKeeper` (or `keepAlive`).
    func grantLease(ttl: Duration) async throws -> Lease
    /// Refreshes the lease once; returns the TTL it has again. Throws
    /// `KVStoreError` of kind `.leaseNotFound` when it has expired.
    @discardableResult
    func keepAlive(_ lease: Lease) async throws -> Duration
    /// Revokes the lease, deleting its keys. Revoking an expired lease succeeds.
    func revoke(_ lease: Lease) async throws
    /// Changes under `prefix`, in revision order. With `fromRevision` the
    /// stream starts with the events at that revision and later (throws
    /// `.compacted` when they are no longer kept); with nil it starts with
    /// changes after the watch is established. Use `list(prefix:)` then
    /// `watch(prefix:fromRevision: list.revision + 1)` to miss nothing.
    /// Ending the consumer (cancelling its task) ends the watch; a lost
    /// connection ends the stream with an error.
    func watch(prefix: String, fromRevision: Int64?) -> AsyncThrowingStream<KVEvent, any Error>
    /// The KVStore line of `cilium status`.
    func status() async -> KVStoreHealth
}

/// How many events a watch holds for a consumer that has not taken them yet. A consumer that
/// falls further behind gets `.fellBehind` (after the events before) and resumes from its last
/// revision: memory stays bounded during a burst, nothing is lost.
public enum KVWatchBuffer {
    public static let limit = 16_384

    static func fellBehind(at revision: Int64, source: String, operation: String) -> KVStoreError {
        KVStoreError(.fellBehind(resumeFrom: revision), source: source, operation: operation,
                     reason: "the watcher fell \(limit) events behind; resume from revision \(revision)")
    }
}

extension KVStore {
    @discardableResult
    public func put(_ key: String, _ value: Data) async throws -> Int64 {
        try await put(key, value, lease: nil)
    }

    @discardableResult
    public func put(_ key: String, _ value: String, lease: Lease? = nil) async throws -> Int64 {
        try await put(key, Data(value.utf8), lease: lease)
    }

    public func create(_ key: String, _ value: Data) async throws -> Bool {
        try await create(key, value, lease: nil)
    }

    public func create(_ key: String, _ value: String, lease: Lease? = nil) async throws -> Bool {
        try await create(key, Data(value.utf8), lease: lease)
    }

    public func compareAndSwap(_ key: String, expectedModRevision: Int64, newValue: Data) async throws -> Bool {
        try await compareAndSwap(key, expectedModRevision: expectedModRevision, newValue: newValue, lease: nil)
    }

    public func watch(prefix: String) -> AsyncThrowingStream<KVEvent, any Error> {
        watch(prefix: prefix, fromRevision: nil)
    }

    /// Grants a lease and keeps it alive in the background (refresh every
    /// ttl/3) until the keeper is stopped, revoked or deallocated.
    public func leaseKeeper(ttl: Duration,
                            onExpired: (@Sendable (Lease) async -> Void)? = nil) async throws -> LeaseKeeper {
        let lease = try await grantLease(ttl: ttl)
        return LeaseKeeper(store: self, lease: lease, onExpired: onExpired)
    }
}
