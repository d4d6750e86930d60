import Datapath
import Config
import Reconciler

/// What a subsystem gets from the agent when it starts.
public struct SubsystemContext: Sendable {
    public var config: AgentConfig
    public var nodeName: String
    /// Where this agent pins its BPF objects (`bpf.root`).
    public var bpfRoot: String
    public var stateDir: String
    /// Tables the subsystems share (the same instance for the agent's lifetime).
    public var shared: SharedState

    public init(config: AgentConfig, nodeName: String, bpfRoot: String, stateDir: String, shared: SharedState) {
        self.config = config
        self.nodeName = nodeName
        self.bpfRoot = bpfRoot
        self.stateDir = stateDir
        self.shared = shared
    }
}

/// The contract between the agent and each subsystem, on top of the generic
/// `Subsystem` lifecycle: which config keys it reads (a change restarts it),
/// how it is configured, and what `cilium status` shows for it.
public protocol AgentSubsystem: Subsystem {
    /// Dotted config keys (or prefixes ending in ".") this subsystem reads.
    nonisolated var configKeys: [String] { get }
    /// Called before every start with the configuration in force.
    func configure(_ context: SubsystemContext) async
    /// The subsystem's line(s) in `cilium status`.
    func status() async -> SubsystemStatus
    /// Reconcilers this subsystem runs, for the Controller/Modules lines.
    func reconcilers() async -> [ReconcilerStatus]
    /// Agent shutdown (SIGTERM, crash-safe restart): release handles but leave
    /// the datapath in place so traffic and enforcement continue.
    func shutdown() async
    /// API paths (prefixes) this subsystem serves, e.g. "/v1/endpoint".
    nonisolated var apiPrefixes: [String] { get }
    /// Handles a request under one of `apiPrefixes` while the subsystem runs.
    func handle(_ request: HTTPRequest) async -> HTTPResponse
}

extension AgentSubsystem {
    public func reconcilers() async -> [ReconcilerStatus] { [] }
    public func shutdown() async { await stop() }
    public nonisolated var apiPrefixes: [String] { [] }
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        .error(status: 404, message: "no API endpoint \(request.method) \(request.path)")
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
    var context: SubsystemContext? { get }
}

extension StageSubsystem {
    public func start() async throws {
        guard let context else { throw SubsystemError("\(name): not configured") }
        try await stage.install(bpfRoot: context.bpfRoot)
    }

    public func stop() async { await stage.uninstall() }
    public func shutdown() async { await stage.release() }
    public func health() async -> Health { await stage.health }
}
