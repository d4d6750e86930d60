import Diagnostics
import HTTPTransport
import Agent
import API
import ArgumentParser
import Config
import Datapath
import LinuxNet
import Foundation
import Glibc

@main
struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cilium-sandbox",
        abstract: "A whole cluster on one machine, out of network namespaces: node namespaces joined by a private underlay, one agent per node.",
        discussion: "Nothing touches the machine's own interfaces: every link lives inside the sandbox's namespaces.",
        subcommands: [Up.self, Status.self, Pod.self, Agent.self, Etcd.self, Cilium.self, Hubble.self, Exec.self, Down.self])
}

struct NameOption: ParsableArguments {
    @Option(help: "The sandbox's name (several can coexist).") var name: String = "default"
}

extension SandboxCommand {
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Build the sandbox and start one agent per node; returns when every agent is READY.")
        @OptionGroup var name: NameOption
        @Option(help: "Number of nodes.") var nodes: Int = 2
        @Option(name: .customLong("set"), help: ArgumentHelp("Config key for every node's agent (repeatable).", valueName: "key=value"))
        var settings: [String] = []
        @Option(help: "Seconds to wait for each agent's READY.") var timeout: Int = 60

        func run() async throws {
            try validateSandboxName(name.name)
            guard (1...16).contains(nodes) else { throw SandboxError("--nodes must be between 1 and 16") }
            if FileManager.default.fileExists(atPath: SandboxState.file(name.name)) {
                throw SandboxError("sandbox \(name.name) exists; remove it first: cilium-sandbox down --name \(name.name)")
            }
            do {
                var state = try Topology.build(name: name.name, nodes: nodes, settings: settings)
                try Topology.startEtcd(&state)
                try await startAgents(state, timeout: .seconds(timeout))
            } catch {
                FileHandle.standardError.write(Data("cilium-sandbox: \(error); removing what was made\n".utf8))
                Topology.teardown(name: name.name, state: try? SandboxState.load(name.name))
                throw ExitCode(1)
            }
        }

        func startAgents(_ initial: SandboxState, timeout: Duration) async throws {
            var state = initial
            for i in state.nodes.indices {
                try AgentProcess.start(&state, node: i, timeout: timeout)
            }
            print("sandbox \(state.name) is up with \(state.nodes.count) node(s); try: cilium-sandbox cilium --name \(state.name) \(state.nodes[0].name) -- status")
        }
    }

    struct Etcd: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop or start the sandbox's etcd (to see the cluster ride out an outage).")
        @OptionGroup var name: NameOption
        @Argument(help: "stop or start") var action: String

        func run() throws {
            var state = try SandboxState.load(name.name)
            guard state.etcdNamespace != nil else { throw SandboxError("sandbox \(state.name) has no etcd (it has one node)") }
            switch action {
            case "stop":
                if let pid = state.etcdPid { Processes.stop(pid, marker: "etcd") }
                state.etcdPid = nil
                try state.save()
                print("etcd stopped")
            case "start":
                if let pid = state.etcdPid, Processes.isOurs(pid, marker: "etcd") { print("etcd is running"); return }
                try Topology.startEtcd(&state)
                print("etcd started at \(state.etcdURL ?? "")")
            default:
                throw SandboxError("unknown action \(action); use stop or start")
            }
        }
    }

    struct Agent: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restart one node's agent (gracefully, or with --kill as a crash would), waiting for READY.")
        @OptionGroup var name: NameOption
        @Argument(help: "The node.") var node: String
        @Argument(help: "restart") var action: String
        @Flag(help: "SIGKILL instead of SIGTERM: the agent gets no chance to clean up.") var kill = false

        func run() throws {
            guard action == "restart" else { throw SandboxError("unknown action \(action); use: restart") }
            var state = try SandboxState.load(name.name)
            guard let i = state.nodes.firstIndex(where: { $0.name == node }) else { _ = try state.node(node); return }
            if let pid = state.nodes[i].pid, Processes.isOurs(pid, marker: "cilium-agent") {
                if kill {
                    Glibc.kill(pid, SIGKILL)
                    while Processes.isOurs(pid, marker: "cilium-agent") { usleep(5000) }
                } else {
                    Processes.stop(pid, marker: "cilium-agent")
                }
            }
            try AgentProcess.start(&state, node: i, timeout: .seconds(60))
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the sandbox's nodes and whether their agents answer.")
        @OptionGroup var name: NameOption
        @Option(name: [.customShort("o"), .long]) var output: String = "text"

        struct NodeReport: Codable {
            var name: String
            var ready: Bool
            var socket: String
            var pid: Int32?
            var namespace: String
            var addresses: [String]
            var state: String?
            /// The agent's log file (its stdout and stderr).
            var logFile: String
        }
        struct PodReport: Codable {
            var name: String
            var node: String
            var namespace: String
            var podNamespace: String
            var address: String
            var labels: [String]
            var identity: UInt32?
            var endpointID: Int?
        }
        struct Report: Codable {
            var name: String
            var nodes: [NodeReport]
            var pods: [PodReport]
            /// The host outside the cluster (`exec NAME outside -- CMD`): its addresses on the underlay.
            var outsideAddresses: [String]
        }

        func run() throws {
            let state = try SandboxState.load(name.name)
            var report = Report(name: state.name, nodes: [], pods: [],
                                outsideAddresses: state.outsideNamespace == nil ? [] : Topology.outsideAddresses)
            for node in state.nodes {
                let client = UnixHTTPClient(socketPath: node.socket, timeout: 5)
                var overall: String?
                var ready = false
                if let (code, data) = try? client.send(method: "GET", path: "/v1/status"), code == 200,
                   let st = try? JSONDecoder().decode(StatusResponse.self, from: data) {
                    ready = true
                    overall = st.state.rawValue
                }
                report.nodes.append(NodeReport(name: node.name, ready: ready, socket: node.socket, pid: node.pid,
                                               namespace: node.namespace, addresses: [node.address], state: overall,
                                               logFile: node.logFile))
            }
            for pod in state.pods {
                let node = try state.node(pod.node)
                let ep: EndpointModel? = (try? UnixHTTPClient(socketPath: node.socket, timeout: 5)
                    .send(method: "GET", path: "/v1/endpoint?containerID=\(pod.containerID)"))
                    .flatMap { $0.status == 200 ? try? JSONDecoder().decode(EndpointModel.self, from: $0.body) : nil }
                report.pods.append(PodReport(name: pod.name, node: pod.node, namespace: pod.namespace,
                                             podNamespace: pod.podNamespace ?? "default", address: pod.address,
                                             labels: ep?.labels ?? pod.labels, identity: ep?.identity, endpointID: ep?.id))
            }
            if output == "json" {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(report), as: UTF8.self))
            } else {
                print("sandbox \(state.name): \(state.nodes.count) node(s), underlay \(state.underlayCIDR)")
                for n in report.nodes {
                    print("  \(n.name)  \(n.ready ? "ready" : "NOT READY")  \(n.addresses.joined(separator: ","))  pid \(n.pid.map(String.init) ?? "-")  unix://\(n.socket)  \(n.state ?? "")")
                }
                for p in report.pods {
                    print("  pod \(p.name) on \(p.node)  \(p.address)  identity \(p.identity.map(String.init) ?? "?")  [\(p.labels.joined(separator: ","))]")
                }
            }
            if report.nodes.contains(where: { !$0.ready }) { throw ExitCode(1) }
        }
    }

    struct Cilium: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the cilium CLI against one node's agent.")
        @OptionGroup var name: NameOption
        @Argument(help: "The node (e.g. node1), or \"all\" for every node in turn (as policies reach every node of a cluster).")
        var node: String
        @Argument(parsing: .postTerminator, help: "Arguments for cilium.") var args: [String] = []

        func run() throws {
            let state = try SandboxState.load(name.name)
            let nodes = node == "all" ? state.nodes : [try state.node(node)]
            let cli = Processes.binDirectory + "/cilium"
            var worst: Int32 = 0
            for n in nodes {
                if node == "all" {
                    print("== \(n.name) ==")
                    fflush(nil) // our line before the child's output
                }
                // The CLI's global -H goes after the subcommand path, so pass it by environment.
                setenv("CILIUM_SOCK", "unix://" + n.socket, 1)
                let code = Processes.run([cli] + args)
                if code != 0 { worst = code }
            }
            throw ExitCode(worst)
        }
    }

    struct Hubble: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run hubble against one node's agent, or against every node with their flows merged in time order.")
        @OptionGroup var name: NameOption
        @Argument(help: "The node (e.g. node1); without it, every node.") var node: String?
        @Argument(parsing: .postTerminator, help: "Arguments for hubble (e.g. observe --follow).") var args: [String] = []

        func run() throws {
            let state = try SandboxState.load(name.name)
            let nodes = try node.map { [try state.node($0)] } ?? state.nodes
            guard let command = args.first else { throw SandboxError("give a hubble command after --, e.g. -- observe --last 20") }
            let servers = nodes.flatMap { ["--server", "unix://" + $0.socket] }
            // exec: `observe --follow` runs until whoever started us stops it, with nothing left behind.
            let argv = [Processes.binDirectory + "/hubble", command] + servers + args.dropFirst()
            fflush(nil)
            var cargs = argv.map { strdup($0) } + [nil]
            execv(argv[0], &cargs)
            throw SandboxError("cannot run \(argv[0]): \(errnoText(errno))")
        }
    }

    struct Exec: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a command inside a node's or a pod's network namespace.")
        @OptionGroup var name: NameOption
        @Argument(help: "A node or a pod.") var target: String
        @Argument(parsing: .postTerminator) var command: [String] = []

        func run() throws {
            let state = try SandboxState.load(name.name)
            let ns = try state.namespace(of: target)
            guard !command.isEmpty else { throw SandboxError("give a command after --") }
            var argv = ["nsenter", "--net=/run/netns/\(ns)", "--"] + command
            // In the node's cgroup, as a container runtime would start a pod's processes.
            if let cg = state.cgroup(of: target) {
                argv = ["sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", cg] + argv
            }
            throw ExitCode(Processes.run(argv))
        }
    }

    struct Down: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the agents and remove every namespace, link, pin and file the sandbox made.")
        @OptionGroup var name: NameOption

        func run() throws {
            try validateSandboxName(name.name)
            let state = try? SandboxState.load(name.name)
            let found = state != nil || !Topology.owned(by: name.name, in: NetworkNamespace.directory).isEmpty
                || !Topology.owned(by: name.name, in: "/sys/fs/bpf").isEmpty
            guard found else {
                print("sandbox \(name.name): nothing to remove")
                return
            }
            let left = Topology.teardown(name: name.name, state: state)
            guard left.isEmpty else {
                throw SandboxError("sandbox \(name.name): could not remove \(left.joined(separator: "; "))")
            }
            print("sandbox \(name.name) removed")
        }
    }
}
