/// The states `cilium status -o json` reports for subsystems and reconcilers.
public enum HealthState: String, Codable, Sendable, CaseIterable {
    case ok, degraded, disabled, stopped, error
}

public struct Health: Codable, Sendable, Equatable {
    public var state: HealthState
    public var message: String

    public init(_ state: HealthState, _ message: String = "") {
        self.state = state
        self.message = message
    }

    public static let ok = Health(.ok)
    public static let stopped = Health(.stopped)
    public static let disabled = Health(.disabled, "Disabled")

    /// The worst of several: error > degraded > stopped > ok; messages of the
    /// worst ones are joined.
    public static func worst(_ all: [Health]) -> Health {
        let rank: [HealthState: Int] = [.ok: 0, .disabled: 0, .stopped: 1, .degraded: 2, .error: 3]
        guard let top = all.map({ rank[$0.state]! }).max(), top > 0 else { return .ok }
        let worst = all.filter { rank[$0.state]! == top }
        return Health(worst[0].state, worst.map(\.message).filter { !$0.isEmpty }.joined(separator: "; "))
    }
}

/// Status of one object for one reconciler.
public enum ObjectStatus: Sendable, Equatable {
    case pending
    case done
    case error(message: String, attempts: Int)

    public var isDone: Bool { self == .done }
}
