import ArgumentParser
import Connectivity
import Dispatch
import Foundation

struct ConnectivityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connectivity", abstract: "Check a cluster's connectivity with upstream's test suite.", subcommands: [Test.self])

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deploy upstream's test workloads into a sandbox and run upstream's connectivity tests against them.",
            discussion: """
                Workloads (namespace cilium-test-1): client and client2 and echo-same-node on the first node, echo-other-node on \
                the second, echo services (ClusterIP and NodePort) and hostPort 4000 on the echo pods; the nodes' own namespaces \
                are the host network, the sandbox's outside host is the world (its two addresses stand for upstream's external \
                IPs). With --multi-cluster (upstream's multi-cluster mode): two clusters of one node each, joined with \
                clustermesh connect; client, client2 and echo-same-node in cluster1, echo-other-node in cluster2, its service \
                global in both clusters. Each test applies its policies on every node, runs its scenarios, checks each action's result, the flows \
                Hubble recorded for it and the drop counters, and removes its policies. Exit status 1 when a test fails.
                """)

        @Option(help: "Run against this sandbox (cilium-sandbox up --name NAME). Without it, a temporary sandbox is made (two nodes, kubeProxyReplacement) and removed afterwards.")
        var sandbox: String?
        @Option(name: .customLong("test"), help: ArgumentHelp("Run tests matching this regular expression; '!REGEX' skips; TEST/SCENARIO narrows to scenarios (repeatable, or comma-separated).", valueName: "regex"))
        var tests: [String] = []
        @Flag(help: "Run only what one node can show (no echo-other-node, no remote NodePort).") var singleNode = false
        @Flag(name: .customLong("multi-cluster"),
              help: "Upstream's multi-cluster mode: the temporary sandbox is two clusters of one node each joined in a mesh (with --sandbox, it must be one).")
        var multiCluster = false
        @Flag(help: "Also run tests that change more than the test namespace.") var includeUnsafeTests = false
        @Option(help: "Write a JUnit XML report to this file.") var junitFile: String?
        @Flag(name: [.customShort("v"), .customLong("verbose")], help: "Show each scenario and action, and the policies applied.") var verbose = false
        @Flag(help: "List the tests and their scenarios, and exit.") var list = false

        func run() throws {
            if list {
                print(Suite.listing(multiCluster: multiCluster), terminator: "")
                return
            }
            let options = RunOptions(tests: tests, includeUnsafe: includeUnsafeTests, verbose: verbose)
            do { _ = try TestFilter(tests) } catch { throw fail("\(error)") }
            let bin = Sandbox.binDirectory
            let temporary = sandbox == nil
            let name = sandbox ?? "cct-\(getpid() % 1_000_000)"
            let box = Sandbox(name: name, binDirectory: bin)
            if temporary {
                print(multiCluster ? "✨ Creating a temporary sandbox \(name) (two clusters of one node each)..."
                                   : "✨ Creating a temporary sandbox \(name) (\(singleNode ? 1 : 2) node(s))...")
                fflush(nil)
                Cleanup.install(box)
                var r = try box.run(Sandbox.upArguments(singleNode: singleNode, multiCluster: multiCluster))
                if r.code == 0, multiCluster {
                    print("🔗 Connecting the clusters (cilium-sandbox clustermesh connect)...")
                    fflush(nil)
                    r = try box.run(["clustermesh", "connect"])
                }
                guard r.code == 0 else {
                    Cleanup.run()
                    throw fail("cannot create sandbox \(name): \(r.output.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
            }
            defer { if temporary { Cleanup.run() } }
            let say: @Sendable (String) -> Void = { line in print(line); fflush(nil) }
            let deployment: Deployment
            do {
                deployment = try Deployment.deploy(box, singleNode: singleNode, multiCluster: multiCluster, justConnected: temporary, log: say)
            } catch {
                throw fail("\(error)")
            }
            let runner = try Runner(deployment: deployment, options: options, print: say)
            let results = runner.run(Suite.tests)
            print(Report.summary(results))
            if let junitFile {
                do {
                    try Report.junit(results, arguments: Array(CommandLine.arguments.dropFirst())).write(toFile: junitFile, atomically: true, encoding: .utf8)
                } catch {
                    throw fail("cannot write --junit-file \(junitFile): \(error)")
                }
            }
            if results.contains(where: { $0.status == .failed }) { throw ExitCode(1) }
        }

        func validate() throws {
            if multiCluster, singleNode { throw ValidationError("--multi-cluster and --single-node exclude each other") }
        }

        func fail(_ message: String) -> ExitCode {
            FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
            return ExitCode(1)
        }
    }
}

/// A temporary sandbox goes on exit, on failure and on Ctrl-C.
enum Cleanup {
    nonisolated(unsafe) private static var sandbox: Sandbox?
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func install(_ box: Sandbox) {
        sandbox = box
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                FileHandle.standardError.write(Data("\ninterrupted: removing sandbox \(box.name)\n".utf8))
                run()
                exit(130)
            }
            s.resume()
            sources.append(s)
        }
    }

    static func run() {
        guard let box = sandbox else { return }
        sandbox = nil
        print("🧹 Removing sandbox \(box.name)...")
        fflush(nil)
        _ = try? box.run(["down"])
    }
}
