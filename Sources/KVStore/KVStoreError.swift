/// An error from a kvstore operation. Its text names the backend and
/// endpoint, the operation and the reason, e.g.
/// `etcd http://127.0.0.1:2379: put cilium/state/nodes/v1/default/node1: connection refused`.
public struct KVStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The endpoint could not be reached (connection refused, reset, closed).
        case unavailable
        /// No answer within the configured timeout.
        case timeout
        /// The revision a watch asked for is no longer kept.
        case compacted(revision: Int64)
        /// A watcher did not keep up: its buffer (`KVWatchBuffer.limit` events) was full. Nothing is
        /// lost: resume the watch from `resumeFrom` (the revision of the first event it did not get;
        /// events of that revision before it come again).
        case fellBehind(resumeFrom: Int64)
        /// The lease does not exist (expired or revoked).
        case leaseNotFound
        /// The server answered with an error (HTTP status).
        case server(status: Int)
        /// The answer could not be understood.
        case invalidResponse
        /// The request is not valid (bad endpoint URL, unsupported scheme, bad argument).
        case invalidArgument
        /// Local storage failed (embedded store's file).
        case storage
        /// The store was closed.
        case closed
    }

    public var kind: Kind
    /// "etcd http://127.0.0.1:2379" or "embedded /var/lib/cilium/kvstore.json".
    public var source: String
    /// "put cilium/state/nodes/v1/default/node1", "watch cilium/state/ip/v1/", ...
    public var operation: String
    public var reason: String

    public init(_ kind: Kind, source: String, operation: String, reason: String) {
        self.kind = kind
        self.source = source
        self.operation = operation
        self.reason = reason
    }

    public var description: String { "\(source): \(operation): \(reason)" }
}
