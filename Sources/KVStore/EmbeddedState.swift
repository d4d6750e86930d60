import Foundation

/// The embedded store's data and etcd's rules for it: one revision counter
/// for the whole store, bumped once per write (a delete of several keys is
/// one revision), create/mod revisions per key, leases owning keys, and a
/// bounded history of events for watches that start in the past.
struct EmbeddedState: Sendable {
    struct Entry: Sendable, Hashable {
        var value: Data
        var createRevision: Int64
        var modRevision: Int64
        var version: Int64
        var lease: Int64?
    }

    struct LeaseEntry: Sendable, Hashable {
        var ttl: Duration
        var expiresAt: ContinuousClock.Instant
        var keys: Set<String> = []
    }

    enum Failure: Error { case leaseNotFound(Int64) }

    var revision: Int64 = 1
    var entries: [String: Entry] = [:]
    var leases: [Int64: LeaseEntry] = [:]
    var nextLeaseID: Int64 = 1
    /// Events in revision order; complete from `oldestKeptRevision` on.
    var history: [KVEvent] = []
    var oldestKeptRevision: Int64 = 1
    var historyLimit = 10_000
    /// Set by every change that must reach the file.
    var dirty = false

    static func matches(_ key: String, prefix: String) -> Bool {
        key.utf8.starts(with: prefix.utf8)
    }

    func pair(_ key: String) -> KVPair? {
        entries[key].map { KVPair(key: key, value: $0.value, modRevision: $0.modRevision,
                                  createRevision: $0.createRevision, lease: $0.lease) }
    }

    /// Keys under `prefix` in etcd's order (bytewise).
    func keys(prefix: String) -> [String] {
        entries.keys.filter { Self.matches($0, prefix: prefix) }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    mutating func put(_ key: String, _ value: Data, lease: Int64?) throws(Failure) -> [KVEvent] {
        if let lease, leases[lease] == nil { throw .leaseNotFound(lease) }
        revision += 1
        dirty = true
        var entry = entries[key] ?? Entry(value: value, createRevision: revision, modRevision: revision, version: 0)
        if let old = entry.lease, old != lease { leases[old]?.keys.remove(key) }
        entry.value = value
        entry.modRevision = revision
        entry.version += 1
        entry.lease = lease
        if let lease { leases[lease]?.keys.insert(key) }
        entries[key] = entry
        return [.put(pair(key)!)]
    }

    /// Deletes the keys that exist, all at one new revision.
    mutating func delete(_ keys: [String]) -> [KVEvent] {
        let present = keys.filter { entries[$0] != nil }
        guard !present.isEmpty else { return [] }
        revision += 1
        dirty = true
        return present.map { key in
            if let lease = entries[key]?.lease { leases[lease]?.keys.remove(key) }
            entries[key] = nil
            return .delete(key: key, revision: revision)
        }
    }

    mutating func grant(ttl: Duration, now: ContinuousClock.Instant) -> Int64 {
        let id = nextLeaseID
        nextLeaseID += 1
        leases[id] = LeaseEntry(ttl: ttl, expiresAt: now + ttl)
        dirty = true
        return id
    }

    mutating func keepAlive(_ id: Int64, now: ContinuousClock.Instant) throws(Failure) -> Duration {
        guard let ttl = leases[id]?.ttl else { throw .leaseNotFound(id) }
        leases[id]?.expiresAt = now + ttl
        dirty = true
        return ttl
    }

    mutating func revoke(_ id: Int64) -> [KVEvent] {
        guard let lease = leases.removeValue(forKey: id) else { return [] }
        dirty = true
        return delete(lease.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    /// Revokes the leases whose time is up, each at its own revision.
    mutating func expire(now: ContinuousClock.Instant) -> [KVEvent] {
        let due = leases.filter { $0.value.expiresAt <= now }.map(\.key).sorted()
        return due.flatMap { revoke($0) }
    }

    /// The earliest lease deadline.
    var nextExpiry: ContinuousClock.Instant? { leases.values.map(\.expiresAt).min() }

    mutating func record(_ events: [KVEvent]) {
        history.append(contentsOf: events)
        // Trim in batches (a quarter of the limit at a time), whole revisions
        // from the front, so that appending stays cheap.
        guard history.count > historyLimit + max(historyLimit / 4, 1) else { return }
        var cut = history.count - historyLimit
        while cut < history.count && history[cut].revision == history[cut - 1].revision { cut += 1 }
        history.removeFirst(cut)
        oldestKeptRevision = history.first?.revision ?? revision + 1
    }

    /// Events at `revision` and later, or nil when some are no longer kept.
    func events(from revision: Int64) -> [KVEvent]? {
        guard revision >= oldestKeptRevision else { return nil }
        return history.filter { $0.revision >= revision }
    }
}
