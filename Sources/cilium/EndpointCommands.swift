import API
import ArgumentParser
import Foundation

/// Fetches JSON from the agent and prints it as JSON or as a table.
func show<T: Decodable & Encodable>(_ type: T.Type, _ agent: AgentOptions, _ path: String, _ output: OutputFormat,
                                    table: (T) -> [[String]]) throws {
    try reportingErrors {
        let value = try JSONDecoder().decode(T.self, from: try agent.request("GET", path))
        if output == .json { try printJSON(value); return }
        let rows = table(value)
        guard let header = rows.first else { return }
        let widths = header.indices.map { i in rows.map { $0[i].count }.max()! + 3 }
        for row in rows {
            print(row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined())
        }
    }
}

struct EndpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "endpoint", abstract: "Workload endpoints on this node.",
                                                    subcommands: [List.self, Get.self])

    static func rows(_ eps: [EndpointModel]) -> [[String]] {
        [["ENDPOINT", "POLICY (ingress)", "POLICY (egress)", "POLICY REV", "IDENTITY", "LABELS", "IPv4", "INTERFACE", "STATUS"]]
            + eps.map { [String($0.id), $0.policyIngress ?? "Disabled", $0.policyEgress ?? "Disabled",
                         $0.policyRevision.map(String.init) ?? "-", String($0.identity),
                         $0.labels.joined(separator: ","), $0.address, $0.hostIfName, $0.state] }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List endpoints.")
        @OptionGroup var agent: AgentOptions
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
        func run() throws { try show([EndpointModel].self, agent, "/v1/endpoint", output, table: EndpointCommand.rows) }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one endpoint by id.")
        @OptionGroup var agent: AgentOptions
        @Argument var id: Int
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .json
        func run() throws { try show(EndpointModel.self, agent, "/v1/endpoint?id=\(id)", output) { EndpointCommand.rows([$0]) } }
    }
}

struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "identity", abstract: "Security identities.",
                                                    subcommands: [List.self, Get.self])

    static func rows(_ ids: [IdentityModel]) -> [[String]] {
        [["ID", "LABELS"]] + ids.map { [String($0.id), $0.labels.joined(separator: ",")] }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List identities (reserved and allocated).")
        @OptionGroup var agent: AgentOptions
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
        func run() throws { try show([IdentityModel].self, agent, "/v1/identity", output, table: IdentityCommand.rows) }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one identity.")
        @OptionGroup var agent: AgentOptions
        @Argument var id: UInt32
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
        func run() throws { try show(IdentityModel.self, agent, "/v1/identity?id=\(id)", output) { IdentityCommand.rows([$0]) } }
    }
}

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "Nodes of the cluster.", subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List this node and the nodes it learned from the kvstore.")
        @OptionGroup var agent: AgentOptions
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
        func run() throws {
            try show([NodeModel].self, agent, "/v1/node", output) { nodes in
                [["Name", "IPv4 Address", "Endpoint CIDR", ""]] + nodes.map { [$0.name, $0.address, $0.podCIDR, $0.local ? "(local)" : ""] }
            }
        }
    }
}

struct BPFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bpf", abstract: "Contents of the datapath's BPF maps.",
                                                    subcommands: [IPCache.self, Endpoint.self, Tunnel.self, PolicyMap.self, LB.self, Metrics.self])

    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "metrics", abstract: "The datapath's forward and drop counters, by reason and direction.",
                                                        subcommands: [List.self])
        struct List: ParsableCommand {
            @OptionGroup var agent: AgentOptions
            @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
            func run() throws {
                try show([BPFMetricEntry].self, agent, "/v1/map/metrics", output) { rows in
                    [["REASON", "DIRECTION", "PACKETS", "BYTES"]] + rows.map { [$0.reason, $0.direction, "\($0.packets)", "\($0.bytes)"] }
                }
            }
        }
    }

    struct Tunnel: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "tunnel", abstract: "Where remote addresses are tunnelled to (from the ipcache).",
                                                        subcommands: [List.self])
        struct List: ParsableCommand {
            @OptionGroup var agent: AgentOptions
            @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
            func run() throws {
                try show([BPFIPCacheEntry].self, agent, "/v1/map/ipcache", output) { entries in
                    [["TUNNEL", "VALUE"]] + entries.filter { $0.tunnelEndpoint != nil }.map { [$0.prefix, $0.tunnelEndpoint!] }
                }
            }
        }
    }

    struct IPCache: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ipcache", abstract: "The ipcache map.", subcommands: [List.self])
        struct List: ParsableCommand {
            @OptionGroup var agent: AgentOptions
            @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
            func run() throws {
                try show([BPFIPCacheEntry].self, agent, "/v1/map/ipcache", output) { entries in
                    [["IP PREFIX/ADDRESS", "IDENTITY"]] + entries.map {
                        [$0.prefix, "identity=\($0.identity) encryptkey=\($0.encryptKey ?? 0) tunnelendpoint=\($0.tunnelEndpoint ?? "0.0.0.0")"]
                    }
                }
            }
        }
    }

    struct Endpoint: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "endpoint", abstract: "The local endpoint map.", subcommands: [List.self])
        struct List: ParsableCommand {
            @OptionGroup var agent: AgentOptions
            @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
            func run() throws {
                try show([BPFEndpointEntry].self, agent, "/v1/map/endpoints", output) { entries in
                    [["IP ADDRESS", "LOCAL ENDPOINT INFO"]] + entries.map {
                        [$0.address, "id=\($0.id) sec_id=\($0.identity) ifindex=\($0.ifindex) mac=\($0.mac) nodemac=\($0.nodeMac)"]
                    }
                }
            }
        }
    }
}
