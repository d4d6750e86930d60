import API
import ArgumentParser
import Datapath
import LinuxNet
import Foundation

extension SandboxCommand {
    struct Pod: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pod", abstract: "Add or remove pods: namespaces wired up through cilium-cni, exactly as a runtime would.",
            subcommands: [Add.self, Del.self])

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a pod on a node through cilium-cni ADD.")
            @OptionGroup var name: NameOption
            @Option(help: "The node to run the pod on.") var node: String
            @Option(help: "The pod's name.") var pod: String
            @Option(help: "Labels, k=v,k2=v2.") var labels: String = ""
            @Option(name: .customLong("namespace"), help: "The pod's Kubernetes namespace (as the runtime passes K8S_POD_NAMESPACE).")
            var podNamespace: String = "default"
            @Option(name: .customLong("port"), help: ArgumentHelp("A hostPort, [HOSTIP:]HOST:CONTAINER[/tcp|udp], passed as the runtime passes portMappings (repeatable).", valueName: "mapping"))
            var ports: [String] = []
            @Option(name: .customLong("named-port"), help: ArgumentHelp("A named container port, NAME=PORT[/tcp|udp|sctp], passed in args.cni.namedPorts (repeatable); policies may name the port.", valueName: "port"))
            var namedPorts: [String] = []

            func run() throws {
                var state = try SandboxState.load(name.name)
                let node = try state.node(self.node)
                guard (1...20).contains(pod.count), pod.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
                    throw SandboxError("pod name \(pod): use 1-20 letters, digits and '-'")
                }
                guard !state.pods.contains(where: { $0.name == pod }), !state.nodes.contains(where: { $0.name == pod }) else {
                    throw SandboxError("sandbox \(state.name) already has a pod or node named \(pod)")
                }
                guard (1...63).contains(podNamespace.count),
                      podNamespace.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }) else {
                    throw SandboxError("--namespace \(podNamespace): use 1-63 lowercase letters, digits and '-' (a Kubernetes namespace name)")
                }
                let labelList = labels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                let mappings = try ports.map { text -> [String: Any] in
                    let parts = text.split(separator: "/", maxSplits: 1)
                    let fields = parts[0].split(separator: ":").map(String.init)
                    guard (2...3).contains(fields.count), let host = UInt16(fields[fields.count - 2]),
                          let container = UInt16(fields[fields.count - 1]), host > 0, container > 0 else {
                        throw SandboxError("--port \(text): expected [HOSTIP:]HOST:CONTAINER[/tcp|udp], e.g. 8081:8080")
                    }
                    var mapping: [String: Any] = ["hostPort": Int(host), "containerPort": Int(container),
                                                  "protocol": parts.count > 1 ? String(parts[1]) : "tcp"]
                    if fields.count == 3 { mapping["hostIP"] = fields[0] }
                    return mapping
                }
                let named = try namedPorts.map { text -> [String: Any] in
                    let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
                    let portProto = parts.count == 2 ? parts[1].split(separator: "/", maxSplits: 1).map(String.init) : []
                    guard parts.count == 2, let port = portProto.first.flatMap({ UInt16($0) }), port > 0 else {
                        throw SandboxError("--named-port \(text): expected NAME=PORT[/tcp|udp|sctp], e.g. http-8080=8080")
                    }
                    return ["name": parts[0], "containerPort": Int(port), "protocol": portProto.count > 1 ? portProto[1].uppercased() : "TCP"]
                }
                let ns = try NetworkNamespace.create(named: "csbx-\(state.name)-pod-\(pod)")
                let containerID = "csbx-\(state.name)-\(pod)"
                do {
                    let result = try CNI.invoke("ADD", node: node, containerID: containerID, netns: ns.path, pod: pod, podNamespace: podNamespace,
                                                labels: labelList, portMappings: mappings, namedPorts: named)
                    guard let ips = result["ips"] as? [[String: Any]], let cidr = ips.first?["address"] as? String else {
                        throw SandboxError("cilium-cni ADD returned no address: \(result)")
                    }
                    let address = String(cidr.split(separator: "/")[0])
                    state.pods.append(SandboxState.Pod(name: pod, node: node.name, namespace: ns.name!, containerID: containerID,
                                                       address: address, labels: labelList, podNamespace: podNamespace))
                    try state.save()
                    print("pod \(podNamespace == "default" ? "" : podNamespace + "/")\(pod) on \(node.name): \(address) labels [\(labelList.joined(separator: ","))]")
                } catch {
                    try? ns.delete()
                    throw error
                }
            }
        }

        struct Del: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove a pod through cilium-cni DEL.")
            @OptionGroup var name: NameOption
            @Option(help: "The pod's name.") var pod: String

            func run() throws {
                var state = try SandboxState.load(name.name)
                guard let p = state.pods.first(where: { $0.name == pod }) else {
                    throw SandboxError("sandbox \(state.name) has no pod \(pod)")
                }
                let node = try state.node(p.node)
                _ = try CNI.invoke("DEL", node: node, containerID: p.containerID, netns: "/run/netns/\(p.namespace)", pod: pod,
                                 podNamespace: p.podNamespace ?? "default", labels: p.labels)
                try? NetworkNamespace(named: p.namespace).delete()
                state.pods.removeAll { $0.name == pod }
                try state.save()
                print("pod \(pod) removed")
            }
        }
    }
}

/// Calls cilium-cni inside the node's namespace the way a container runtime does.
enum CNI {
    static func invoke(_ command: String, node: SandboxState.Node, containerID: String, netns: String, pod: String,
                       podNamespace: String, labels: [String], portMappings: [[String: Any]] = [],
                       namedPorts: [[String: Any]] = []) throws -> [String: Any] {
        var conf: [String: Any] = [
            "cniVersion": "1.0.0", "name": "cilium", "type": "cilium-cni", "agentSocket": node.socket,
            "args": ["cni": ["labels": labels.map { l -> [String: String] in
                let kv = l.split(separator: "=", maxSplits: 1).map(String.init)
                return ["key": kv[0], "value": kv.count > 1 ? kv[1] : ""]
            }, "namedPorts": namedPorts]],
        ]
        if !portMappings.isEmpty { conf["runtimeConfig"] = ["portMappings": portMappings] }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        p.arguments = ["--net=/run/netns/\(node.namespace)", Processes.binDirectory + "/cilium-cni"]
        var env = ProcessInfo.processInfo.environment
        env["CNI_COMMAND"] = command
        env["CNI_CONTAINERID"] = containerID
        env["CNI_NETNS"] = netns
        env["CNI_IFNAME"] = "eth0"
        env["CNI_PATH"] = Processes.binDirectory
        env["CNI_ARGS"] = "K8S_POD_NAMESPACE=\(podNamespace);K8S_POD_NAME=\(pod)"
        p.environment = env
        let stdin = Pipe(), stdout = Pipe()
        p.standardInput = stdin
        p.standardOutput = stdout
        try p.run()
        stdin.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: conf))
        try stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let json = (try? JSONSerialization.jsonObject(with: out)) as? [String: Any] ?? [:]
        guard p.terminationStatus == 0 else {
            throw SandboxError("cilium-cni \(command) for pod \(pod) failed (code \(json["code"] ?? "?")): \(json["msg"] ?? String(decoding: out, as: UTF8.self)) \(json["details"] ?? "")")
        }
        return json
    }
}
