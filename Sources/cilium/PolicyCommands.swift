import API
import ArgumentParser
import Diagnostics
import Foundation
import Manifests

/// `cilium policy ...`: CiliumNetworkPolicy in and out of the agent.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Network policies: import, get, delete, validate, trace.",
        subcommands: [Import.self, Get.self, Delete.self, Validate.self, Trace.self])

    /// The text of FILE, or of stdin for "-".
    static func read(_ file: String) throws -> String {
        let data: Data
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let d = FileManager.default.contents(atPath: file) else {
                throw CLIError("cannot read \(file): no such file or not readable")
            }
            data = d
        }
        // Invalid UTF-8 is refused with its place, as the config loader does (never replaced).
        return try UTF8Text.decode(data, file: file == "-" ? "stdin" : file).get()
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import policies from a YAML or JSON file (or - for stdin); a rejected file changes nothing.")
        @OptionGroup var agent: AgentOptions
        @Argument(help: "File with CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy documents, or -.") var file: String
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
        func run() throws {
            try reportingErrors {
                let text = try PolicyCommand.read(file)
                let name = file == "-" ? "stdin" : file
                let source = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "file"
                let data = try agent.request("PUT", "/v1/policy?source=\(source)", body: Data(text.utf8))
                let r = try JSONDecoder().decode(PolicyImportResponse.self, from: data)
                if output == .json { try printJSON(r); return }
                print("Imported \(r.policies.joined(separator: ", "))")
                if let skipped = r.skipped { print("Skipped (not policies): \(skipped.joined(separator: ", "))") }
                print("Revision: \(r.revision)")
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the policies in force (or one by name).")
        @OptionGroup var agent: AgentOptions
        @Argument(help: "Policy name.") var name: String?
        @Option(name: .shortAndLong, help: "Namespace of the policy.") var namespace: String?
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
        func run() throws {
            try reportingErrors {
                var q: [String] = []
                if let name { q.append("name=\(name)") }
                if let namespace { q.append("namespace=\(namespace)") }
                let data = try agent.request("GET", "/v1/policy" + (q.isEmpty ? "" : "?" + q.joined(separator: "&")))
                let r = try JSONDecoder().decode(PolicyListResponse.self, from: data)
                if output == .json { try printJSON(r); return }
                for p in r.policies {
                    print("# \(p.kind) \(p.namespace.map { "\($0)/" } ?? "")\(p.name) (\(p.rules) rule\(p.rules == 1 ? "" : "s"), from \(p.source))")
                    for note in p.notes ?? [] { print("# note: \(note)") }
                    print(p.json)
                }
                print("Revision: \(r.revision)")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a policy by name, or all of them.")
        @OptionGroup var agent: AgentOptions
        @Argument(help: "Policy name.") var name: String?
        @Option(name: .shortAndLong, help: "Namespace of the policy.") var namespace: String?
        @Flag(help: "Delete every policy.") var all = false
        func validate() throws {
            guard all || name != nil else { throw ValidationError("name a policy or pass --all") }
        }
        func run() throws {
            try reportingErrors {
                var path = all ? "/v1/policy?all=true" : "/v1/policy?name=\(name!)"
                if !all, let namespace { path += "&namespace=\(namespace)" }
                let r = try JSONDecoder().decode(PolicyDeleteResponse.self, from: try agent.request("DELETE", path))
                print("Deleted \(r.deleted) polic\(r.deleted == 1 ? "y" : "ies")")
                print("Revision: \(r.revision)")
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check policy files without an agent: every problem with its file, line and column.")
        @Argument(help: "Files (or - for stdin).") var files: [String]
        func run() throws {
            var failed = false
            for file in files {
                do {
                    let name = file == "-" ? "stdin" : file
                    let read = try PolicyParser.read(try PolicyCommand.read(file), file: name)
                    let policies = read.policies
                    guard !policies.isEmpty else {
                        FileHandle.standardError.write(Data((PolicyFile.nothingToImport(name, skipped: read.skipped) + "\n").utf8))
                        failed = true
                        continue
                    }
                    print("\(file): valid (\(policies.map(\.qualifiedName).joined(separator: ", ")))")
                    if !read.skipped.isEmpty { print("\(file): skipped (not policies): \(read.skipped.joined(separator: ", "))") }
                    for policy in policies {
                        for note in policy.notes { print("\(file): note: \(policy.qualifiedName): \(note)") }
                    }
                } catch {
                    FileHandle.standardError.write(Data("\(error)\n".utf8))
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct Trace: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The verdict policy gives traffic between two label sets, and the rule that decides it, without traffic.")
        @OptionGroup var agent: AgentOptions
        @Option(name: [.customShort("s"), .customLong("src-labels")], parsing: .upToNextOption,
                help: "Source labels, k=v (several allowed).") var src: [String]
        @Option(name: [.customShort("d"), .customLong("dst-labels")], parsing: .upToNextOption,
                help: "Destination labels, k=v.") var dst: [String]
        @Option(name: .customLong("dport"), help: "Destination port and protocol, e.g. 80/TCP, 53/UDP, 8/ICMP (type).")
        var dport: String?
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text

        func run() throws {
            try reportingErrors {
                var port: UInt16 = 0, proto = "TCP"
                if let dport {
                    let parts = dport.split(separator: "/")
                    guard let p = UInt16(parts[0]) else { throw CLIError("--dport \(dport): expected PORT[/PROTOCOL], e.g. 80/TCP") }
                    port = p
                    if parts.count > 1 { proto = parts[1].uppercased() }
                    guard ["TCP", "UDP", "SCTP", "ICMP", "ANY"].contains(proto) else {
                        throw CLIError("--dport \(dport): protocol must be TCP, UDP, SCTP, ICMP or ANY")
                    }
                }
                let req = PolicyTraceRequest(sourceLabels: src.flatMap { $0.split(separator: ",").map(String.init) },
                                             destinationLabels: dst.flatMap { $0.split(separator: ",").map(String.init) },
                                             port: port, proto: proto)
                let data = try agent.request("POST", "/v1/policy/trace", body: try JSONEncoder().encode(req))
                let r = try JSONDecoder().decode(PolicyTraceResponse.self, from: data)
                if output == .json { try printJSON(r); return }
                print("Tracing From: [\(req.sourceLabels.joined(separator: ", "))] => To: [\(req.destinationLabels.joined(separator: ", "))]"
                      + (dport.map { " Ports: [\($0)]" } ?? ""))
                for s in r.steps { print("  \(s.direction): \(s.verdict) (\(s.reason))") }
                print("Final verdict: \(r.verdict)")
            }
        }
    }
}

extension BPFCommand {
    struct PolicyMap: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "policy", abstract: "An endpoint's policy map entries.",
                                                        subcommands: [Get.self])
        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Entries with identities, ports, verdicts, counters and their rules.")
            @OptionGroup var agent: AgentOptions
            @Argument(help: "Endpoint id (see cilium endpoint list).") var endpoint: UInt16
            @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text
            func run() throws {
                try show(EndpointPolicyResponse.self, agent, "/v1/policy/endpoint/\(endpoint)", output) { r in
                    [["POLICY", "DIRECTION", "LABELS (source:key[=value])", "PORT/PROTO", "PROXY PORT", "BYTES", "PACKETS", "RULE"]]
                        + r.entries.map { e in
                            [e.verdict == "deny" ? "Deny" : "Allow", e.direction == "ingress" ? "Ingress" : "Egress",
                             e.identity == 0 ? "reserved:unknown (any)" : "\(e.identity) " + e.labels.joined(separator: ","),
                             e.port == "ANY" ? e.proto : "\(e.port)/\(e.proto)", "NONE", String(e.bytes), String(e.packets),
                             e.rule ?? "-"]
                        }
                }
            }
        }
    }
}
