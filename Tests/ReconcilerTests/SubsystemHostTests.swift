import Reconciler
import Synchronization
import Testing

actor FakeSubsystem: Subsystem {
    nonisolated let name: String
    nonisolated let dependencies: [String]
    let log: Log
    var failStart = false
    var running = false

    init(_ name: String, deps: [String] = [], log: Log, failStart: Bool = false) {
        self.name = name
        self.dependencies = deps
        self.log = log
        self.failStart = failStart
    }

    func start() async throws {
        if failStart { throw SubsystemError("\(name) cannot start: injected") }
        running = true
        log.entries.withLock { $0.append("start \(name)") }
    }
    func stop() async {
        if running { log.entries.withLock { $0.append("stop \(name)") } }
        running = false
    }
    func health() async -> Health { running ? .ok : .stopped }
}

final class Log: Sendable {
    let entries = Mutex<[String]>([])
}

@Suite struct SubsystemHostTests {
    @Test func startsInDependencyOrderStopsInReverse() async throws {
        let l = Log()
        let subs: [any Subsystem] = [
            FakeSubsystem("hubble", deps: ["networking"], log: l),
            FakeSubsystem("policy", deps: ["networking"], log: l),
            FakeSubsystem("networking", log: l),
        ]
        let host = try SubsystemHost(subs)
        #expect(host.order == ["networking", "hubble", "policy"])
        await host.apply(enabled: ["networking", "policy", "hubble"])
        #expect(l.entries.withLock { $0 } == ["start networking", "start hubble", "start policy"])
        l.entries.withLock { $0 = [] }
        await host.stopAll()
        #expect(l.entries.withLock { $0 } == ["stop policy", "stop hubble", "stop networking"])
    }

    @Test func runtimeToggleTouchesOnlyThatSubsystem() async throws {
        let l = Log()
        let host = try SubsystemHost([
            FakeSubsystem("networking", log: l),
            FakeSubsystem("policy", deps: ["networking"], log: l),
            FakeSubsystem("hostfirewall", deps: ["networking"], log: l),
        ])
        await host.apply(enabled: ["networking", "policy"])
        l.entries.withLock { $0 = [] }
        await host.apply(enabled: ["networking", "policy", "hostfirewall"])
        #expect(l.entries.withLock { $0 } == ["start hostfirewall"])
        l.entries.withLock { $0 = [] }
        await host.apply(enabled: ["networking", "hostfirewall"])
        #expect(l.entries.withLock { $0 } == ["stop policy"])
        #expect(await host.state(of: "policy") == .disabled)
        let report = await host.healthReport()
        #expect(report.first { $0.name == "policy" }?.health.state == .disabled)
        #expect(report.first { $0.name == "hostfirewall" }?.health.state == .ok)
    }

    @Test func disablingADependencyStopsDependents() async throws {
        let l = Log()
        let host = try SubsystemHost([
            FakeSubsystem("networking", log: l),
            FakeSubsystem("policy", deps: ["networking"], log: l),
        ])
        await host.apply(enabled: ["networking", "policy"])
        l.entries.withLock { $0 = [] }
        await host.apply(enabled: ["policy"])
        #expect(l.entries.withLock { $0 } == ["stop policy", "stop networking"])
        #expect(await host.state(of: "policy") == .failed("needs networking enabled"))
    }

    @Test func failedStartIsReportedAndOthersRun() async throws {
        let l = Log()
        let host = try SubsystemHost([
            FakeSubsystem("networking", log: l),
            FakeSubsystem("encryption", deps: ["networking"], log: l, failStart: true),
            FakeSubsystem("hubble", deps: ["networking"], log: l),
        ])
        await host.apply(enabled: ["networking", "encryption", "hubble"])
        #expect(await host.state(of: "hubble") == .running)
        guard case .failed(let msg) = await host.state(of: "encryption") else {
            Issue.record("encryption should have failed"); return
        }
        #expect(msg.contains("injected"))
    }

    @Test func cyclesAndUnknownDependenciesAreRejected() {
        let l = Log()
        #expect(throws: SubsystemError.self) {
            try SubsystemHost([FakeSubsystem("a", deps: ["b"], log: l), FakeSubsystem("b", deps: ["a"], log: l)])
        }
        #expect(throws: SubsystemError.self) {
            try SubsystemHost([FakeSubsystem("a", deps: ["zzz"], log: l)])
        }
    }
}
