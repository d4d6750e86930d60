import Synchronization

/// Objects every reconciler wrote or deleted, by outcome, and how many wait
/// for a retry: the agent's `cilium_reconciler_*` metrics.
public enum ReconcilerMetrics {
    public struct Key: Hashable, Sendable {
        public var reconciler: String
        public var operation: String // "update" or "delete"
        public var success: Bool
    }

    private static let ops = Mutex<[Key: UInt64]>([:])
    private static let pending = Mutex<[String: Int]>([:])

    static func add(_ reconciler: String, _ operation: String, success: Int, failed: Int) {
        ops.withLock {
            if success > 0 { $0[Key(reconciler: reconciler, operation: operation, success: true), default: 0] += UInt64(success) }
            if failed > 0 { $0[Key(reconciler: reconciler, operation: operation, success: false), default: 0] += UInt64(failed) }
        }
    }

    static func setRetries(_ reconciler: String, _ count: Int) { pending.withLock { $0[reconciler] = count } }

    public static func snapshot() -> (ops: [Key: UInt64], retries: [String: Int]) {
        (ops.withLock { $0 }, pending.withLock { $0 })
    }
}
