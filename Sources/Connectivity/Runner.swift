import API
import Foundation

/// One of upstream's tests: policies to apply, scenarios to run under them, and what each action should do.
public struct ConnectivityTest: Sendable {
    public var name: String
    /// Policy manifests (YAML), applied on every node before the scenarios and deleted after.
    public var policies: [@Sendable (Deployment) -> String] = []
    public var scenarios: [Scenario] = []
    public var expect: @Sendable (Action) -> Expectation = { _ in .success }
    /// Tests that change more than the test namespace (`--include-unsafe-tests` runs them).
    public var unsafe = false
    /// Why the test cannot run in this deployment (nil: it runs).
    public var requirement: @Sendable (Deployment) -> String? = { _ in nil }
    /// A test that checks the cluster rather than traffic: returns its failures.
    public var check: (@Sendable (Deployment, RunBaseline) throws -> [String])?
    /// Why the test does not run in multi-cluster mode (`--multi-cluster`; nil: it runs there too).
    public var notInMultiCluster: String?
    /// Upstream's tests for multi-cluster mode only (`cluster-entity-multi-cluster`).
    public var multiClusterOnly = false

    /// Why the test is skipped in this mode (nil: it runs), as upstream's conditions say it.
    public func modeSkip(multiCluster: Bool) -> String? {
        if multiCluster, let why = notInMultiCluster { return "skipped by condition: \(why)" }
        if !multiCluster, multiClusterOnly { return "skipped by condition: multi-cluster mode only (--multi-cluster)" }
        return nil
    }
}

/// What the cluster looked like when the run began: drop counters and log sizes per node.
public struct RunBaseline: Sendable {
    public var counters: [String: [BPFMetricEntry]]
    public var logOffsets: [String: UInt64]
}

public struct RunOptions: Sendable {
    public var tests: [String] = []
    public var includeUnsafe = false
    public var verbose = false
    public init(tests: [String] = [], includeUnsafe: Bool = false, verbose: Bool = false) {
        self.tests = tests
        self.includeUnsafe = includeUnsafe
        self.verbose = verbose
    }
}

/// The outcome of one test.
public struct TestResult: Sendable {
    public enum Status: String, Sendable { case passed, failed, skipped }
    public var name: String
    public var status: Status
    public var skipReason: String?
    public var actions = 0
    public var failedActions = 0
    public var skippedScenarios = 0
    /// One line per failure: the action's title and why.
    public var failures: [String] = []
    public var seconds = 0.0
}

/// Runs tests against a deployment, printing upstream's progress lines.
public struct Runner: Sendable {
    public var deployment: Deployment
    public var options: RunOptions
    public var filter: TestFilter
    public let print: @Sendable (String) -> Void

    public init(deployment: Deployment, options: RunOptions, print: @escaping @Sendable (String) -> Void) throws {
        self.deployment = deployment
        self.options = options
        filter = try TestFilter(options.tests)
        self.print = print
    }

    var ns: String { Defaults.namespace }

    public func baseline() -> RunBaseline {
        var counters: [String: [BPFMetricEntry]] = [:], offsets: [String: UInt64] = [:]
        for n in deployment.nodes {
            counters[n.name] = Self.counters(n)
            if let f = n.logFile, let attrs = try? FileManager.default.attributesOfItem(atPath: f) {
                offsets[n.name] = (attrs[.size] as? NSNumber)?.uint64Value ?? 0
            }
        }
        return RunBaseline(counters: counters, logOffsets: offsets)
    }

    static func counters(_ node: SandboxReport.Node) -> [BPFMetricEntry] {
        (try? Sandbox.request(node, "GET", "/v1/map/metrics")).flatMap { try? JSONDecoder().decode([BPFMetricEntry].self, from: $0) } ?? []
    }

    /// Packets dropped for each reason (Hubble's name) on `node` between two snapshots.
    static func dropDelta(_ before: [BPFMetricEntry], _ after: [BPFMetricEntry]) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for row in after where row.reasonCode != 0 {
            let old = before.first { $0.reasonCode == row.reasonCode && $0.direction == row.direction }?.packets ?? 0
            guard row.packets > old else { continue }
            out[DropReasons.names[row.reasonCode]?.name ?? row.reason, default: 0] += row.packets - old
        }
        return out
    }

    public func run(_ tests: [ConnectivityTest]) -> [TestResult] {
        let base = baseline()
        let runnable = tests.filter {
            filter.includes(test: $0.name) && (options.includeUnsafe || !$0.unsafe) && $0.modeSkip(multiCluster: deployment.multiCluster) == nil
        }.count
        print("🏃 [\(ns)] Running \(runnable) tests ...")
        var results: [TestResult] = []
        var nextPort: UInt16 = UInt16.random(in: 20000...40000)
        for (i, test) in tests.enumerated() {
            let header = "[\(ns)] Test [\(test.name)] [\(i + 1)/\(tests.count)]"
            var skip: String?
            if !filter.includes(test: test.name) { skip = "skipped by user" }
            else if let why = test.modeSkip(multiCluster: deployment.multiCluster) { skip = why }
            else if test.unsafe, !options.includeUnsafe { skip = "skipped by condition: unsafe, --include-unsafe-tests runs it" }
            else if let why = test.requirement(deployment) { skip = why }
            if let skip {
                print("[=] [\(ns)] Skipping test [\(test.name)] [\(i + 1)/\(tests.count)] (\(skip))")
                results.append(TestResult(name: test.name, status: .skipped, skipReason: skip))
                continue
            }
            print("[=] \(header)")
            let start = ContinuousClock.now
            var result = runTest(test, base: base, ports: &nextPort)
            let took = (ContinuousClock.now - start).components
            result.seconds = Double(took.seconds) + Double(took.attoseconds) / 1e18
            results.append(result)
        }
        return results
    }

    func runTest(_ test: ConnectivityTest, base: RunBaseline, ports: inout UInt16) -> TestResult {
        var result = TestResult(name: test.name, status: .passed)
        func fail(_ line: String) {
            result.failures.append(line)
            print("  ❌ \(line)")
        }
        if let check = test.check {
            do {
                for f in try check(deployment, base) { fail(f) }
            } catch {
                fail("\(error)")
            }
            result.status = result.failures.isEmpty ? .passed : .failed
            return result
        }
        // Policies first, on every node (each import returns once the node's datapath holds it).
        var applied: [(name: String, namespace: String?)] = []
        defer { removePolicies(applied) }
        for make in test.policies {
            let yaml = make(deployment)
            for node in deployment.nodes {
                do {
                    let data = try Sandbox.request(node, "PUT", "/v1/policy?source=connectivity-test%2F\(test.name)", body: Data(yaml.utf8))
                    let r = try JSONDecoder().decode(PolicyImportResponse.self, from: data)
                    for q in r.policies {
                        let parts = q.split(separator: "/", maxSplits: 1).map(String.init)
                        let entry = parts.count == 2 ? (parts[1], Optional(parts[0])) : (parts[0], nil as String?)
                        if !applied.contains(where: { $0 == entry }) { applied.append(entry) }
                    }
                } catch {
                    fail("cannot apply the test's policy on \(node.name): \(error)")
                    result.status = .failed
                    return result
                }
            }
            if options.verbose { print("  [-] policy applied on \(deployment.nodes.count) node(s):\n" + yaml.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n")) }
        }
        var actions: [Action] = []
        for scenario in test.scenarios {
            guard filter.includes(test: test.name, scenario: scenario.name) else { continue }
            if let why = (deployment.multiCluster ? scenario.notInMultiCluster : nil) ?? scenario.skipReason(deployment) {
                result.skippedScenarios += 1
                print("  [-] Skipping Scenario [\(test.name)/\(scenario.name)] (\(why))")
                continue
            }
            for var a in scenario.actions(deployment) {
                a.sourcePort = ports
                ports = ports >= 60000 ? 20000 : ports + 1
                actions.append(a)
            }
        }
        result.actions = actions.count
        let before = Dictionary(uniqueKeysWithValues: deployment.nodes.map { ($0.name, Self.counters($0)) })
        let cursors = Dictionary(uniqueKeysWithValues: deployment.nodes.map { ($0.name, FlowLog.cursor($0)) })
        // All actions of the test at once: each is its own process; expected drops cost their timeout once, not once each.
        let outcomes = Probing.run(actions, in: deployment.sandbox)
        let flows = FlowLog(deployment: deployment, after: cursors)
        if let note = flows.note { print("  ℹ️  \(note)") }
        let after = Dictionary(uniqueKeysWithValues: deployment.nodes.map { ($0.name, Self.counters($0)) })
        var checked: [(Outcome, [String])] = []
        for o in outcomes {
            let expectation = test.expect(o.action)
            var problems = o.problems(expectation) + flows.problems(o.action, expectation)
            if case .drop(let reason) = expectation.decisive(o.action).verdict, let node = expectation.decisive(o.action).node,
               (Self.dropDelta(before[node] ?? [], after[node] ?? [])[reason] ?? 0) == 0 {
                problems.append("the drop counters of \(node) show no \(reason) drop")
            }
            checked.append((o, problems))
        }
        print(String(checked.map { $0.1.isEmpty ? "." : "x" }))
        var scenario = ""
        for (o, problems) in checked {
            if options.verbose, o.action.scenario != scenario {
                scenario = o.action.scenario
                print("  [-] Scenario [\(test.name)/\(scenario)]")
            }
            if options.verbose {
                print("  [.] Action [\(test.name)/\(o.action.title)] expected \(test.expect(o.action).summary), \(o.summary)")
            }
            if !problems.isEmpty {
                result.failedActions += 1
                fail("\(test.name)/\(o.action.title): \(problems.joined(separator: "; "))")
            }
        }
        result.status = result.failures.isEmpty ? .passed : .failed
        return result
    }

    func removePolicies(_ applied: [(name: String, namespace: String?)]) {
        for p in applied {
            let ns = p.namespace.map { "&namespace=\($0)" } ?? ""
            for node in deployment.nodes { _ = try? Sandbox.request(node, "DELETE", "/v1/policy?name=\(p.name)\(ns)") }
        }
    }
}
