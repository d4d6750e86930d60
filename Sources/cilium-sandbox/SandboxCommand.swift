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
        subcommands: [Up.self, Status.self, Pod.self, Agent.self, Etcd.self, ClusterMesh.self, Cilium.self, Hubble.self, Exec.self, Down.self])
}

struct NameOption: ParsableArguments {
    @Option(help: "The sandbox's name (several can coexist).") var name: String = "default"
}

extension SandboxCommand {
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build the sandbox and start one agent per node; returns when every agent is READY.",
            discussion: """
                One cluster (the default): nodes node1..nodeK at 172.30.0.(10+K), and an etcd at 172.30.0.2 when K > 1.
                --clusters C > 1: clusters cluster1..clusterC (cluster.id 1..C), each with its own etcd at 172.30.0.(1+i) \
                and pod CIDR pool 10.(i-1).0.0/16, all on one underlay; nodes are numbered across the clusters (cluster 1 \
                has node1..nodeK, cluster 2 node(K+1)..node(2K), ...), cluster i's node j at 172.30.0.(10i+j). Their \
                agents run with clustermesh.enabled; join the clusters with: cilium-sandbox clustermesh connect.
                etcd speaks TLS (a CA, server and client certificates made with openssl under \
                /run/cilium-sandbox/NAME/pki, --client-cert-auth) with --set etcd.ssl=true, and by default when C > 1 \
                (--set etcd.ssl=false keeps it plain http).
                """)
        @OptionGroup var name: NameOption
        @Option(help: ArgumentHelp("Number of clusters (1-4), each with its own etcd and pod CIDR.", valueName: "C"))
        var clusters: Int = 1
        @Option(help: ArgumentHelp("Number of nodes (per cluster).", valueName: "K")) var nodes: Int = 2
        @Option(name: .customLong("set"), help: ArgumentHelp("Config key for every node's agent (repeatable).", valueName: "key=value"))
        var settings: [String] = []
        @Option(help: "Seconds to wait for each agent's READY.") var timeout: Int = 60
        @Flag(name: .customLong("no-agents"), help: "Build the namespaces, etcds and configs but start no agent (start one with: agent NODE restart).")
        var noAgents = false

        func validate() throws {
            guard (1...Topology.maxClusters).contains(clusters) else {
                throw ValidationError("--clusters must be between 1 and \(Topology.maxClusters): cluster i's etcd is 172.30.0.(1+i) and its nodes 172.30.0.(10i+j), below the outside host at .100")
            }
            if clusters == 1 {
                guard (1...16).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 16") }
            } else {
                guard (1...9).contains(nodes) else {
                    throw ValidationError("--nodes must be between 1 and 9 with --clusters \(clusters): cluster i's node j is 172.30.0.(10i+j)")
                }
            }
        }

        func run() async throws {
            try validateSandboxName(name.name)
            if FileManager.default.fileExists(atPath: SandboxState.file(name.name)) {
                throw SandboxError("sandbox \(name.name) exists; remove it first: cilium-sandbox down --name \(name.name)")
            }
            do {
                var state = try Topology.build(name: name.name, clusters: clusters, nodes: nodes, settings: settings)
                try Topology.startEtcds(&state)
                if noAgents {
                    print("sandbox \(state.name) is up with \(state.nodes.count) node(s) and no agent running; start one with: cilium-sandbox agent --name \(state.name) \(state.nodes[0].name) restart")
                } else {
                    try await startAgents(state, timeout: .seconds(timeout))
                }
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
            if state.clusterCount > 1 {
                print("sandbox \(state.name) is up with \(state.clusterCount) clusters of \(state.nodes.count / state.clusterCount) node(s); join them: cilium-sandbox clustermesh connect --name \(state.name)")
            } else {
                print("sandbox \(state.name) is up with \(state.nodes.count) node(s); try: cilium-sandbox cilium --name \(state.name) \(state.nodes[0].name) -- status")
            }
        }
    }

    struct Etcd: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop or start a cluster's etcd (to see the cluster ride out an outage).")
        @OptionGroup var name: NameOption
        @Option(help: "The cluster whose etcd (1 when the sandbox has one).") var cluster: Int = 1
        @Argument(help: "stop or start") var action: String

        func run() throws {
            var state = try SandboxState.load(name.name)
            let etcd = try state.etcd(cluster: cluster)
            let label = state.clusterCount == 1 ? "etcd" : "etcd of cluster\(cluster)"
            switch action {
            case "stop":
                if let pid = etcd.pid { Processes.stop(pid, marker: "etcd") }
                if let i = state.etcds?.firstIndex(where: { $0.cluster == cluster }) { state.etcds![i].pid = nil }
                try state.save()
                print("\(label) stopped")
            case "start":
                if let pid = etcd.pid, Processes.isOurs(pid, marker: "etcd") { print("\(label) is running"); return }
                try Topology.startEtcd(&state, cluster: cluster)
                print("\(label) started at \(etcd.url)")
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
            /// The node's cluster (sandboxes of several clusters only).
            var cluster: String?
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
                                               logFile: node.logFile,
                                               cluster: state.clusterCount > 1 ? state.clusterName(node.cluster ?? 1) : nil))
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
                print("sandbox \(state.name): \(state.nodes.count) node(s)\(state.clusterCount > 1 ? " in \(state.clusterCount) clusters" : ""), underlay \(state.underlayCIDR)")
                for n in report.nodes {
                    print("  \(n.name)  \(n.cluster.map { $0 + "  " } ?? "")\(n.ready ? "ready" : "NOT READY")  \(n.addresses.joined(separator: ","))  pid \(n.pid.map(String.init) ?? "-")  unix://\(n.socket)  \(n.state ?? "")")
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
