import API
import ArgumentParser
import Foundation

/// `cilium service ...`: Kubernetes Services handled by the kube-proxy replacement.
struct ServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Services (kube-proxy replacement): apply, delete, list, get, update.",
        subcommands: [Apply.self, Delete.self, List.self, Get.self, Update.self])

    /// With `clusterMeshAffinity` (`--clustermesh-affinity`), the backends a global service's affinity prefers
    /// end in " (preferred)", as upstream prints them.
    static func rows(_ list: [ServiceFrontendModel], clusterMeshAffinity: Bool = false) -> [[String]] {
        var rows = [["ID", "Frontend", "Service Type", "Backend"]]
        for s in list {
            let backends = s.backends.isEmpty ? ["(none)"] : s.backends.enumerated().map {
                "\($0.offset + 1) => \($0.element.address) (\($0.element.state))"
                    + (clusterMeshAffinity && $0.element.preferred == true ? " (preferred)" : "")
            }
            for (i, b) in backends.enumerated() {
                rows.append(i == 0 ? [String(s.id), s.frontend, s.type, b] : ["", "", "", b])
            }
        }
        return rows
    }

    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply Service and EndpointSlice manifests (several per file) from FILE or - (stdin).")
        @OptionGroup var agent: AgentOptions
        @Option(name: .shortAndLong, help: "Manifest file, or - for stdin.") var file: String
        func run() throws {
            try reportingErrors {
                let text = try PolicyCommand.read(file)
                let source = (file == "-" ? "stdin" : file).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "file"
                let r = try JSONDecoder().decode(ServiceApplyResponse.self,
                                                 from: try agent.request("PUT", "/v1/service?source=\(source)", body: Data(text.utf8)))
                for s in r.services { print("service/\(s) applied") }
                for s in r.endpointSlices { print("endpointslice/\(s) applied") }
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a service (and its EndpointSlices).")
        @OptionGroup var agent: AgentOptions
        @Argument var name: String
        @Option(name: .shortAndLong) var namespace: String = "default"
        func run() throws {
            try reportingErrors {
                _ = try agent.request("DELETE", "/v1/service?name=\(name)&namespace=\(namespace)")
                print("service/\(namespace)/\(name) deleted")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List frontends and their backends.")
        @OptionGroup var agent: AgentOptions
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
        @Flag(name: .customLong("clustermesh-affinity"), help: "Mark the backends a global service's affinity prefers.")
        var clusterMeshAffinity = false
        func run() throws {
            let affinity = clusterMeshAffinity
            try show([ServiceFrontendModel].self, agent, "/v1/service", output) { ServiceCommand.rows($0, clusterMeshAffinity: affinity) }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one frontend by id.")
        @OptionGroup var agent: AgentOptions
        @Argument var id: UInt16
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
        func run() throws { try show(ServiceFrontendModel.self, agent, "/v1/service?id=\(id)", output) { ServiceCommand.rows([$0]) } }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a backend's state: quarantined or maintenance (no new connections; open ones continue), or active.")
        @OptionGroup var agent: AgentOptions
        @Option(help: "Backend as ADDR:PORT/PROTO, e.g. 10.0.1.5:8080/TCP.") var backend: String
        @Option(help: "active, quarantined or maintenance.") var state: String
        func run() throws {
            try reportingErrors {
                _ = try agent.request("PUT", "/v1/service/backend",
                                      body: try JSONEncoder().encode(BackendStateRequest(backend: backend, state: state)))
                print("backend \(backend): \(state)")
            }
        }
    }
}

extension BPFCommand {
    struct LB: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "lb", abstract: "The load balancer's maps.",
                                                        subcommands: [List.self, Maglev.self])
        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Frontends and backend slots in cilium_lb4_services.")
            @OptionGroup var agent: AgentOptions
            @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
            func run() throws {
                try show([BPFLBEntry].self, agent, "/v1/map/lb", output) { rows in
                    [["SERVICE ADDRESS", "BACKEND ADDRESS (REVNAT_ID) (SLOT)"]] + rows.map { [$0.frontend, "\($0.value) (\($0.slot))"] }
                }
            }
        }

        struct Maglev: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "maglev", abstract: "A frontend's Maglev table.",
                                                            subcommands: [List.self])
            struct List: ParsableCommand {
                static let configuration = CommandConfiguration(abstract: "Backend shares (and with -o json, every slot) of a frontend's table.")
                @OptionGroup var agent: AgentOptions
                @Argument(help: "Frontend id (see cilium service list).") var service: UInt16
                @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
                func run() throws {
                    try show(MaglevTableModel.self, agent, "/v1/map/lb/maglev?id=\(service)", output) { m in
                        [["BACKEND ID", "SLOTS", "SHARE"]] + m.shares.sorted { $0.key < $1.key }.map {
                            [$0.key, String($0.value), String(format: "%.1f%%", Double($0.value) * 100 / Double(m.size))]
                        }
                    }
                }
            }
        }
    }
}
