import Reconciler

/// Reconciles a state table into a BPF map: objects become (key, value) pairs
/// through two pure functions. Updates go through the batch syscall; prune
/// deletes only the keys the table does not want, so live entries are never
/// flushed (what lets a restarted agent adopt its pinned maps).
public struct BPFMapOperations<Object: TableObject, Key: BitwiseCopyable, Value: BitwiseCopyable>: Operations {
    public let map: BPFMap<Key, Value>
    private let toKey: @Sendable (Object) -> Key
    private let toValue: @Sendable (Object) -> Value

    public init(map: BPFMap<Key, Value>,
                key: @escaping @Sendable (Object) -> Key,
                value: @escaping @Sendable (Object) -> Value) {
        self.map = map
        self.toKey = key
        self.toValue = value
    }

    public func update(_ object: Object) async throws {
        try map.update(toKey(object), toValue(object))
    }

    public func delete(_ object: Object) async throws {
        try map.delete(toKey(object))
    }

    public func updateBatch(_ objects: [Object]) async -> [(Object, any Error)] {
        do {
            try map.updateBatch(keys: objects.map(toKey), values: objects.map(toValue))
            return []
        } catch {
            // Find the culprits one by one so the good ones still land.
            var failed: [(Object, any Error)] = []
            for o in objects {
                do { try map.update(toKey(o), toValue(o)) } catch { failed.append((o, error)) }
            }
            return failed
        }
    }

    public func prune(desired: [Object]) async throws {
        var wanted = Set<KeyBytes>(minimumCapacity: desired.count)
        for o in desired { wanted.insert(KeyBytes(toKey(o))) }
        for k in map.keys() where !wanted.contains(KeyBytes(k)) {
            try map.delete(k)
        }
    }
}

/// The raw bytes of a C struct key, so keys can be compared and hashed. Keys
/// up to 16 bytes (most map keys) are kept inline, without an allocation.
struct KeyBytes: Hashable {
    let low: UInt64
    let high: UInt64
    let rest: [UInt8]?

    init<K: BitwiseCopyable>(_ key: K) {
        var l: UInt64 = 0, h: UInt64 = 0
        var r: [UInt8]? = nil
        withUnsafeBytes(of: key) { raw in
            if raw.count <= 16 {
                withUnsafeMutableBytes(of: &l) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw.prefix(8)))
                }
                if raw.count > 8 {
                    withUnsafeMutableBytes(of: &h) { dst in
                        dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[8...]))
                    }
                }
            } else {
                r = Array(raw)
            }
        }
        low = l
        high = h
        rest = r
    }
}
