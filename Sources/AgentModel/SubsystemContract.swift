import HTTPTransport
import API
import Datapath
import Config
import Reconciler

/// What a subsystem gets from the agent when it starts: its own config
/// section (never the whole configuration) and where the node keeps things.
public struct SubsystemContext<Section: Sendable>: Sendable {
    /// The settings this subsystem reads (`AgentSubsystem.section(of:)`).
    public var section: Section
    public var nodeName: String
    /// Where this agent pins its BPF objects (`bpf.root`).
    public var bpfRoot: String
    public var stateDir: String
    /// Tables the subsystems share (the same instance for the agent's lifetime).
    public var shared: SharedState

    public init(section: Section, nodeName: String, bpfRoot: String, stateDir: String, shared: SharedState) {
        self.section = section
        self.nodeName = nodeName
        self.bpfRoot = bpfRoot
        self.stateDir = stateDir
        self.shared = shared
    }

    /// The same place with another section (the agent holds a `SubsystemContext<Void>`).
    public func with<Other: Sendable>(section: Other) -> SubsystemContext<Other> {
        SubsystemContext<Other>(section: section, nodeName: nodeName, bpfRoot: bpfRoot, stateDir: stateDir, shared: shared)
    }
}

/// The contract between the agent and each subsystem, on top of the generic
/// `Subsystem` lifecycle: the config section it reads (a change to it restarts
/// the subsystem), how it is configured, and what `cilium status` shows for it.
public protocol AgentSubsystem: Subsystem {
    /// Every setting this subsystem reads, as one value. It is all the
    /// configuration the subsystem sees, so the host restarts it exactly when
    /// this value changes (hive's `cell.Config`).
    associatedtype Section: Equatable & Sendable
    /// Extracts the section from the validated configuration (pure).
    static func section(of config: AgentConfig) -> Section
    /// The maps and the directory under the bpf root that this subsystem alone creates,
    /// fills, prunes and removes (no two subsystems declare the same pin).
    nonisolated var owns: PinOwnership { get }
    /// Called before every start with the section in force.
    func configure(_ context: SubsystemContext<Section>) async
    /// The subsystem's line(s) in `cilium status`.
    func status() async -> SubsystemStatus
    /// Reconcilers this subsystem runs, for the Controller/Modules lines.
    func reconcilers() async -> [ReconcilerStatus]
    /// Agent shutdown (SIGTERM, crash-safe restart): release handles but leave
    /// the datapath in place so traffic and enforcement continue.
    func shutdown() async
    /// At agent start, for a subsystem the config leaves disabled: remove what an
    /// earlier agent left of its datapath (its slot, its links; only its own pins).
    func removeLeftovers(bpfRoot: String) async
    /// API paths (prefixes) this subsystem serves, e.g. "/v1/endpoint".
    nonisolated var apiPrefixes: [String] { get }
    /// Handles a request under one of `apiPrefixes` while the subsystem runs.
    func handle(_ request: HTTPRequest) async -> HTTPResponse
    /// Before READY: returns once the state this start began to fetch is in the datapath (its
    /// sources' first full views listed, its reconcilers caught up), or once a source says it
    /// cannot be fetched now, or at `deadline`. READY then means "the datapath is complete".
    func settle(until deadline: ContinuousClock.Instant) async
    /// Before any subsystem starts, for each enabled one: register the sources it will fill shared tables from
    /// (`StateTable.registerInitializer`), so that no reconciler prunes their entries before its first full view.
    func registerInitializers(shared: SharedState) async
}

extension AgentSubsystem {
    public func reconcilers() async -> [ReconcilerStatus] { [] }
    public func registerInitializers(shared: SharedState) async {}
    public func shutdown() async { await stop() }
    public func removeLeftovers(bpfRoot: String) async {}
    public nonisolated var apiPrefixes: [String] { [] }
    public func settle(until deadline: ContinuousClock.Instant) async {}
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        .error(status: 404, message: "no API endpoint \(request.method) \(request.path)")
    }

    /// Hands this subsystem its section of `config`.
    public func configure(from config: AgentConfig, at place: SubsystemContext<Void>) async {
        await configure(place.with(section: Self.section(of: config)))
    }

    /// Whether the settings this subsystem reads differ between the two configurations.
    public nonisolated func sectionChanged(from old: AgentConfig, to new: AgentConfig) -> Bool {
        Self.section(of: old) != Self.section(of: new)
    }
}

extension Reconciler {
    /// This reconciler as `cilium status` reports it.
    public func statusReport(subsystem: String) async -> ReconcilerStatus {
        let h = health()
        let c = statusCounts()
        return ReconcilerStatus(name: name, subsystem: subsystem, state: h.state, message: h.message,
                                objects: c.pending + c.done + c.error, pending: c.pending, errors: c.error)
    }
}

/// A subsystem whose datapath is one pipeline stage: starting fills its slot,
/// disabling empties it, agent shutdown leaves it in place for the next agent.
public protocol StageSubsystem: AgentSubsystem {
    nonisolated var stage: PipelineStage { get }
    var context: SubsystemContext<Section>? { get }
}

extension StageSubsystem {
    public func start() async throws {
        guard let context else { throw SubsystemError("\(name): not configured") }
        try await stage.install(bpfRoot: context.bpfRoot)
    }

    public func stop() async { await stage.uninstall() }
    public func shutdown() async { await stage.release() }
    public func removeLeftovers(bpfRoot: String) async { await stage.removeLeftover(bpfRoot: bpfRoot) }
    public func health() async -> Health { await stage.health }
}
