/// A feature of the agent: a name, a config section with an `enabled` flag,
/// its own tables, reconcilers and BPF stages, a lifecycle and a health.
public protocol Subsystem: Actor {
    /// Stable name, as shown by `cilium status` (e.g. "policy").
    nonisolated var name: String { get }
    /// Names of subsystems that must be running before this one starts.
    nonisolated var dependencies: [String] { get }
    func start() async throws
    func stop() async
    func health() async -> Health
}

public struct SubsystemError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Starts the enabled subsystems in dependency order, stops them in reverse,
/// and starts or stops one at runtime when its flag changes, without touching
/// the others.
public actor SubsystemHost {
    public enum State: Sendable, Equatable {
        case disabled
        case running
        case failed(String)
    }

    private let subsystems: [String: any Subsystem]
    /// All subsystems in dependency order.
    public nonisolated let order: [String]
    private var states: [String: State] = [:]
    /// Subsystems that are not running but whose datapath is still in place: a reload whose new
    /// start failed keeps enforcing the last state instead of failing open. Disabling removes it.
    private var holdingDatapath: Set<String> = []
    /// Start/stop events in order, for tests and logs: "+name" / "-name".
    public private(set) var journal: [String] = []

    public init(_ subsystems: [any Subsystem]) throws {
        var byName: [String: any Subsystem] = [:]
        for s in subsystems {
            guard byName[s.name] == nil else { throw SubsystemError("subsystem \(s.name) registered twice") }
            byName[s.name] = s
        }
        self.subsystems = byName
        self.order = try Self.topologicalOrder(subsystems.map { ($0.name, $0.dependencies) })
        for name in order { states[name] = .disabled }
    }

    /// Orders names so each comes after its dependencies; registration order
    /// breaks ties. Unknown dependencies and cycles are errors.
    static func topologicalOrder(_ nodes: [(String, [String])]) throws -> [String] {
        let deps = Dictionary(uniqueKeysWithValues: nodes.map { ($0.0, $0.1) })
        var done: [String] = []
        var visiting: Set<String> = []
        func visit(_ n: String, _ path: [String]) throws {
            if done.contains(n) { return }
            guard let ds = deps[n] else {
                throw SubsystemError("subsystem \(path.last ?? "?") depends on unknown subsystem \(n)")
            }
            if visiting.contains(n) {
                throw SubsystemError("dependency cycle: \((path + [n]).joined(separator: " -> "))")
            }
            visiting.insert(n)
            for d in ds { try visit(d, path + [n]) }
            visiting.remove(n)
            done.append(n)
        }
        for (n, _) in nodes { try visit(n, []) }
        return done
    }

    public func state(of name: String) -> State { states[name] ?? .disabled }
    public func subsystem(named name: String) -> (any Subsystem)? { subsystems[name] }

    /// Makes exactly the subsystems in `enabled` run: stops the others (reverse
    /// order), then starts the missing ones (dependency order). A subsystem
    /// whose dependency is not running does not start and says why.
    public func apply(enabled: Set<String>) async {
        for name in order.reversed() where !enabled.contains(name) || !dependenciesWanted(name, enabled) {
            if states[name] == .running || holdingDatapath.contains(name) {
                await subsystems[name]!.stop()
                holdingDatapath.remove(name)
                journal.append("-\(name)")
            }
            states[name] = enabled.contains(name)
                ? .failed("needs \(subsystems[name]!.dependencies.filter { !enabled.contains($0) }.joined(separator: ", ")) enabled")
                : .disabled
        }
        for name in order where enabled.contains(name) && states[name] != .running && dependenciesWanted(name, enabled) {
            let s = subsystems[name]!
            if let missing = s.dependencies.first(where: { states[$0] != .running }) {
                states[name] = .failed("needs \(missing) running")
                continue
            }
            do {
                try await s.start()
                states[name] = .running
                holdingDatapath.remove(name)
                journal.append("+\(name)")
            } catch {
                await s.stop()
                holdingDatapath.remove(name)
                states[name] = .failed(String(describing: error))
            }
        }
    }

    /// Applies a changed config section to a running subsystem without opening a window:
    /// `release` lets go of its handles but leaves its datapath in place (what agent shutdown
    /// does), then it starts again and converges its maps and slots to the new section (a slot is
    /// replaced, never emptied). If the new start fails, the datapath stays as it was, enforcing the
    /// last state, and the subsystem reports failed; disabling it removes the datapath.
    public func restart(_ name: String, release: @Sendable (any Subsystem) async -> Void = { await $0.stop() }) async {
        guard states[name] == .running, let s = subsystems[name] else { return }
        await release(s)
        journal.append("-\(name)")
        do {
            try await s.start()
            journal.append("+\(name)")
        } catch {
            await release(s)
            holdingDatapath.insert(name)
            states[name] = .failed(String(describing: error))
        }
    }

    /// Stops everything, in reverse dependency order.
    public func stopAll() async {
        await apply(enabled: [])
    }

    /// Agent shutdown: each running subsystem's `shutdown` in reverse order (the
    /// subsystem keeps its datapath in place for the next agent).
    public func shutdownAll(_ shutdown: @Sendable (any Subsystem) async -> Void = { await $0.stop() }) async {
        for name in order.reversed() where states[name] == .running {
            await shutdown(subsystems[name]!)
            states[name] = .disabled
            journal.append("-\(name)")
        }
    }

    /// Health of each subsystem, disabled ones included.
    public func healthReport() async -> [(name: String, health: Health)] {
        var out: [(String, Health)] = []
        for name in order {
            switch states[name]! {
            case .disabled: out.append((name, .disabled))
            case .failed(let msg): out.append((name, Health(.error, msg)))
            case .running: out.append((name, await subsystems[name]!.health()))
            }
        }
        return out
    }

    private func dependenciesWanted(_ name: String, _ enabled: Set<String>) -> Bool {
        subsystems[name]!.dependencies.allSatisfy { enabled.contains($0) && dependenciesWanted($0, enabled) }
    }
}
