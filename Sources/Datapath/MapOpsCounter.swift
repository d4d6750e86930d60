import Synchronization

/// Writes to BPF maps by map, operation and outcome, for the agent's
/// `cilium_bpf_map_ops_total` metric (upstream's labels: mapName, operation, outcome).
public enum MapOpsCounter {
    public struct Key: Hashable, Sendable {
        public var map: String
        public var operation: String // "update" or "delete"
        public var success: Bool
    }

    private static let counts = Mutex<[Key: UInt64]>([:])

    static func add(_ map: String, _ operation: String, success: Bool, count: Int = 1) {
        // Maps opened by their pin are named by its path: the map's name is its last part.
        let map = map.hasPrefix("/") ? String(map.split(separator: "/").last ?? Substring(map)) : map
        counts.withLock { $0[Key(map: map, operation: operation, success: success), default: 0] += UInt64(count) }
    }

    public static func snapshot() -> [Key: UInt64] { counts.withLock { $0 } }
}
