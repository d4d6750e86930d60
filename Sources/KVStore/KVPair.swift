import Foundation

/// One key with its value and etcd's revision bookkeeping.
public struct KVPair: Sendable, Hashable, Codable {
    public var key: String
    public var value: Data
    /// Revision of the last change to this key.
    public var modRevision: Int64
    /// Revision at which the key was created (0 means "absent" in comparisons).
    public var createRevision: Int64
    /// The lease the key is attached to, if any.
    public var lease: Int64?

    public init(key: String, value: Data, modRevision: Int64, createRevision: Int64, lease: Int64? = nil) {
        self.key = key
        self.value = value
        self.modRevision = modRevision
        self.createRevision = createRevision
        self.lease = lease
    }

    /// The value as UTF-8 text.
    public var string: String { String(decoding: value, as: UTF8.self) }
}

/// The result of a prefix read: the pairs sorted by key, and the store
/// revision the read saw. Watching from `revision + 1` continues exactly
/// where the read ended (the list-then-watch pattern).
public struct KVList: Sendable, Hashable {
    public var pairs: [KVPair]
    public var revision: Int64

    public init(pairs: [KVPair], revision: Int64) {
        self.pairs = pairs
        self.revision = revision
    }
}

/// A change seen by a watch, in revision order.
public enum KVEvent: Sendable, Hashable {
    case put(KVPair)
    case delete(key: String, revision: Int64)

    public var key: String {
        switch self {
        case .put(let pair): pair.key
        case .delete(let key, _): key
        }
    }

    public var revision: Int64 {
        switch self {
        case .put(let pair): pair.modRevision
        case .delete(_, let revision): revision
        }
    }
}

/// A lease granted by the store. Keys put with a lease disappear when it
/// expires or is revoked; `LeaseKeeper` keeps one alive.
public struct Lease: Sendable, Hashable, Codable {
    public var id: Int64
    /// The TTL the store granted (etcd may round it up: its minimum is 2 s).
    public var ttl: Duration

    public init(id: Int64, ttl: Duration) {
        self.id = id
        self.ttl = ttl
    }
}
