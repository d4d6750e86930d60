import AgentModel
import API
import Config
import HTTPTransport
import Reconciler
import Testing

/// A subsystem made of three steps that records what the protocol does with them.
private actor Recorder: SteppedSubsystem {
    enum Step: String, StartStep {
        case stage, maps, links
    }
    struct Section: Equatable, Sendable {}

    nonisolated let name = "recorder"
    nonisolated let dependencies: [String] = []
    nonisolated let owns = PinOwnership(maps: [], directory: "recorder")
    var taken: [Step] = []
    var context: SubsystemContext<Section>? = SubsystemContext(section: Section(), nodeName: "n", bpfRoot: "/nonexistent",
                                                               stateDir: "/nonexistent", shared: SharedState())
    var failing: Step?
    var log: [String] = []

    static func section(of config: AgentConfig) -> Section { Section() }
    func configure(_ context: SubsystemContext<Section>) {}
    func status() -> SubsystemStatus { SubsystemStatus(enabled: true, state: .ok, message: "", summary: "") }
    func health() -> Health { .ok }
    func fail(at step: Step?) { failing = step }

    func run(_ step: Step, in context: SubsystemContext<Section>) throws {
        if step == failing { throw SubsystemError("no room") }
        log.append("run \(step)")
    }
    func undo(_ step: Step) { log.append("undo \(step)") }
    func release(_ step: Step) { log.append("release \(step)") }
    func removeLeftovers(bpfRoot: String) { log.append("leftovers") }
    func drain() -> [String] { defer { log = [] }; return log }
}

@Suite struct StartStepsTests {
    @Test func aFailedStepReleasesWhatWasTakenInReverseAndNamesTheStep() async throws {
        let r = Recorder()
        await r.fail(at: .links)
        await #expect(throws: SubsystemError.self) { try await r.start() }
        do { try await r.start() } catch { #expect("\(error)" == "recorder: links: no room") }
        // Released, never undone: a failed start (also in a reload) leaves the datapath as it is.
        #expect(await r.drain() == ["run stage", "run maps", "release maps", "release stage",
                                    "run stage", "run maps", "release maps", "release stage"])
        // Disabled afterwards: nothing was taken, so whatever is left of it goes.
        await r.stop()
        #expect(await r.drain() == ["leftovers"])
    }

    @Test func stopUndoesAndShutdownReleasesInReverse() async throws {
        let r = Recorder()
        try await r.start()
        await r.stop()
        #expect(await r.drain() == ["run stage", "run maps", "run links", "undo links", "undo maps", "undo stage", "leftovers"])
        try await r.start()
        await r.shutdown()
        #expect(await r.drain() == ["run stage", "run maps", "run links", "release links", "release maps", "release stage"])
        // A start over a running one (a reload's restart) releases first.
        try await r.start()
        try await r.start()
        #expect(await r.drain() == ["run stage", "run maps", "run links", "release links", "release maps", "release stage",
                                    "run stage", "run maps", "run links"])
    }
}
