import Reconciler

/// A subsystem whose start is a list of steps, each paired with what takes it
/// back. The steps are declared once (`Step.allCases`, in start order), and this
/// protocol runs them:
/// - `start` runs them in order; when one fails, the steps already taken are
///   released in reverse (never undone: a failed start, also during a reload,
///   leaves the datapath as it is, so nothing fails open; the host disables it
///   if it must go) and the error names the step;
/// - `stop` (disabled) undoes the taken steps in reverse, then removes whatever
///   else of its own an earlier start or agent left (`removeLeftovers`);
/// - `shutdown` (agent stop, or a reload) releases them in reverse: handles go,
///   the datapath stays for the next start.
public protocol SteppedSubsystem: AgentSubsystem {
    associatedtype Step: StartStep
    /// The steps the current start has taken, in order.
    var taken: [Step] { get set }
    /// What `configure` handed over (nil before).
    var context: SubsystemContext<Section>? { get }
    /// Takes one step with the section in force (start passes the context; a step never finds it missing).
    func run(_ step: Step, in context: SubsystemContext<Section>) async throws
    /// The subsystem is being disabled: remove what `run` put in place.
    func undo(_ step: Step) async
    /// Agent shutdown, a reload, or a failed start: let go of what `run` holds, keep the datapath.
    func release(_ step: Step) async
}

/// A subsystem's start steps: an enum whose cases, in order, are the steps and whose raw
/// values name them in errors ("loadbalancer: socket LB: ...").
public protocol StartStep: CaseIterable, Sendable, CustomStringConvertible, RawRepresentable<String> {}

extension StartStep {
    public var description: String { rawValue }
}

extension SteppedSubsystem {
    /// Where this agent pins (nil before `configure`).
    public var bpfRoot: String? { context?.bpfRoot }

    public func start() async throws {
        guard let context else { throw SubsystemError("\(name): started before the agent configured it") }
        for step in taken.reversed() { await release(step) }
        taken = []
        for step in Step.allCases {
            do {
                try await run(step, in: context)
            } catch {
                for done in taken.reversed() { await release(done) }
                taken = []
                throw SubsystemError("\(name): \(step): \(error)")
            }
            taken.append(step)
        }
    }

    public func stop() async {
        for step in taken.reversed() { await undo(step) }
        taken = []
        if let bpfRoot { await removeLeftovers(bpfRoot: bpfRoot) }
    }

    public func shutdown() async {
        for step in taken.reversed() { await release(step) }
        taken = []
    }
}
