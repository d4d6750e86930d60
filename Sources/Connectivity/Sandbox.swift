import API
import Foundation
import HTTPTransport
import Spawning

/// What `cilium-sandbox status -o json` reports, the part the connectivity test reads.
public struct SandboxReport: Codable, Sendable {
    public struct Node: Codable, Sendable {
        public var name: String
        public var ready: Bool
        public var socket: String
        public var addresses: [String]
        public var logFile: String?
        /// The node's cluster (sandboxes of several clusters only: `cluster1`, `cluster2`).
        public var cluster: String?
        public init(name: String, ready: Bool, socket: String, addresses: [String], logFile: String?, cluster: String? = nil) {
            self.name = name
            self.ready = ready
            self.socket = socket
            self.addresses = addresses
            self.logFile = logFile
            self.cluster = cluster
        }
    }
    public struct Pod: Codable, Sendable {
        public var name: String
        public var node: String
        public var podNamespace: String?
        public var address: String
        public var labels: [String]
    }
    public var name: String
    public var nodes: [Node]
    public var pods: [Pod]
    public var outsideAddresses: [String]?
}

/// A finished command: its exit status and what it printed.
public struct CommandResult: Sendable {
    public var code: Int32
    public var output: String
}

/// Runs `cilium-sandbox` (next to this binary) and talks to the sandbox's agents over their sockets.
public struct Sandbox: Sendable {
    public let name: String
    let tool: String

    public init(name: String, binDirectory: String) {
        self.name = name
        tool = binDirectory + "/cilium-sandbox"
    }

    /// The directory of the running binary: the other binaries of the build are beside it.
    public static var binDirectory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    /// `cilium-sandbox ARGS --name NAME`, waited for.
    @discardableResult
    public func run(_ args: [String]) throws -> CommandResult {
        try Launched(tool, args + ["--name", name]).wait()
    }

    /// A command in a pod's, a node's or the outside host's namespace (started, not waited for).
    func exec(_ target: String, _ command: [String]) throws -> Launched {
        try Launched(tool, ["exec", "--name", name, target, "--"] + command)
    }

    /// Starts a daemon (a server that forks away) in `target`: its output is not collected, so nothing waits for the
    /// daemon to close it.
    func startDaemon(_ target: String, _ command: [String]) throws -> Launched {
        try Launched(tool, ["exec", "--name", name, target, "--"] + command, collect: false)
    }

    /// `cilium-sandbox up` arguments for a temporary sandbox of the mode (several clusters: every etcd over TLS with
    /// client certificates, the sandbox's default).
    public static func upArguments(singleNode: Bool, multiCluster: Bool) -> [String] {
        if multiCluster {
            return ["up", "--clusters", "2", "--nodes", "1", "--set", "kubeProxyReplacement=true"]
        }
        return ["up", "--nodes", singleNode ? "1" : "2", "--set", "kubeProxyReplacement=true"]
    }

    /// What makes NAME a sandbox multi-cluster mode runs against.
    public static func meshHint(_ name: String) -> String {
        "cilium-sandbox up --name \(name) --clusters 2 --nodes 1 --set kubeProxyReplacement=true && cilium-sandbox clustermesh connect --name \(name)"
    }

    /// Every node of a sandbox of several clusters sees each other cluster ready (`cilium clustermesh status`), within
    /// `timeout` (a node not connected at all fails after 5 s, unless `justConnected`: the agent reads connect's files
    /// within moments); the error names what is missing and what to run.
    public func waitMeshReady(_ report: SandboxReport, timeout: Duration, justConnected: Bool, log: (String) -> Void) throws {
        let clusters = Set(report.nodes.compactMap(\.cluster))
        guard clusters.count >= 2 else {
            throw ConnectivityError("sandbox \(name) is not a sandbox of several clusters (\(report.nodes.count) node(s) in one cluster); --multi-cluster needs two connected clusters: \(Self.meshHint(name))")
        }
        let deadline = ContinuousClock.now + timeout, grace = ContinuousClock.now + .seconds(5)
        for node in report.nodes {
            log("⌛ [\(name)] Waiting for \(node.name) (\(node.cluster ?? "?")) to see the other cluster ready...")
            while true {
                var why = ""
                if let data = try? Self.request(node, "GET", "/v1/clustermesh"),
                   let status = try? JSONDecoder().decode(ClusterMeshStatus.self, from: data) {
                    let others = clusters.subtracting([node.cluster ?? ""])
                    let ready = Set(status.clusters.filter(\.ready).map(\.name))
                    if others.isSubset(of: ready) { break }
                    let configured = Set(status.clusters.map(\.name))
                    why = others.isSubset(of: configured)
                        ? "\(node.name) does not see \(others.subtracting(ready).sorted().joined(separator: ", ")) ready"
                        : "\(node.name) is not connected to \(others.subtracting(configured).sorted().joined(separator: ", "))"
                } else {
                    why = "\(node.name) has no cluster mesh status (clustermesh.enabled?)"
                }
                guard ContinuousClock.now < (justConnected || why.contains(" does not see ") ? deadline : grace) else {
                    throw ConnectivityError("sandbox \(name): \(why)\(ContinuousClock.now >= deadline ? " after \(timeout)" : ""); --multi-cluster needs two connected clusters: \(Self.meshHint(name))")
                }
                usleep(250_000)
            }
        }
    }

    public func report() throws -> SandboxReport {
        let r = try run(["status", "-o", "json"])
        guard let data = r.output.data(using: .utf8), let report = try? JSONDecoder().decode(SandboxReport.self, from: data) else {
            throw ConnectivityError("cilium-sandbox status --name \(name): \(r.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return report
    }

    /// A request to one node's agent; a non-2xx answer is an error naming the node.
    static func request(_ node: SandboxReport.Node, _ method: String, _ path: String, body: Data? = nil) throws -> Data {
        let (status, data) = try UnixHTTPClient(socketPath: node.socket, timeout: 30).send(method: method, path: path, body: body)
        guard (200..<300).contains(status) else {
            throw ConnectivityError("\(node.name): \(method) \(path): \(APIClientError.message(fromBody: data))")
        }
        return data
    }
}

/// A child process whose output is collected (on a thread of its own, so that several can run at once).
final class Launched {
    /// The output, once the pipe reached its end.
    private final class Collected: @unchecked Sendable {
        private let condition = NSCondition()
        private var bytes: [UInt8]?
        func set(_ b: [UInt8]) {
            condition.lock()
            bytes = b
            condition.broadcast()
            condition.unlock()
        }
        func get() -> [UInt8] {
            condition.lock()
            defer { condition.unlock() }
            while bytes == nil { condition.wait() }
            return bytes!
        }
    }

    private let pid: Int32
    private let collected = Collected()

    /// `collect: false`: the output goes to /dev/null (a daemon keeps no pipe of ours open).
    init(_ executable: String, _ arguments: [String], collect: Bool = true) throws {
        do {
            if collect {
                let (pid, fd) = try ChildProcess.spawnCapturing([executable] + arguments)
                self.pid = pid
                let collected = collected
                Thread { collected.set(ChildProcess.readAll(fd)) }.start()
            } else {
                pid = try ChildProcess.spawn([executable] + arguments, output: "/dev/null")
                collected.set([])
            }
        } catch {
            throw ConnectivityError("cannot run \(executable): \(error)")
        }
    }

    func wait() -> CommandResult {
        let code = ChildProcess.wait(pid)
        return CommandResult(code: code, output: String(decoding: collected.get(), as: UTF8.self))
    }
}

public struct ConnectivityError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
