/// What `cilium status` prints on its KVStore line, modelled on upstream's
/// wording: `Ok   etcd: 1/1 connected, has-quorum=true: http://127.0.0.1:2379 - 3.4.23 (Leader)`,
/// `Failure   Err: not able to connect to any etcd endpoints: ...`,
/// `Ok   Embedded (file /var/lib/cilium/kvstore.json)`.
public enum KVStoreHealth: Sendable, Hashable, CustomStringConvertible {
    case ok(endpoint: String, revision: Int64, message: String)
    case failure(message: String)

    public var isOK: Bool {
        if case .ok = self { return true }
        return false
    }

    /// "Ok" or "Failure": the state column of the status line.
    public var state: String { isOK ? "Ok" : "Failure" }

    /// The text after the state.
    public var message: String {
        switch self {
        case .ok(_, _, let message): message
        case .failure(let message): message
        }
    }

    public var description: String { "\(state) \(message)" }
}
