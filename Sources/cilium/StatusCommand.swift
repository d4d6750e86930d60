import API
import ArgumentParser
import Foundation

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the agent's status, subsystem by subsystem.",
        discussion: "Exits non-zero when the agent is unreachable or a subsystem is in error.")

    @OptionGroup var agent: AgentOptions
    @Flag(help: "Print only OK, or the error.") var brief = false
    @Flag(help: "Print details for every subsystem.") var verbose = false
    @Option(name: [.customShort("o"), .long], help: "Output format: text or json.") var output: OutputFormat = .text

    func run() throws {
        try reportingErrors {
            let data = try agent.request("GET", "/v1/status")
            let status = try JSONDecoder().decode(StatusResponse.self, from: data)
            if brief {
                print(status.state == .error ? status.message : "OK")
            } else if output == .json {
                try printJSON(status)
            } else {
                print(StatusText.render(status, verbose: verbose), terminator: "")
            }
            if status.state == .error { throw ExitCode(1) }
        }
    }
}

/// `cilium status` lines, in upstream's order and wording for what exists.
enum StatusText {
    static let labels: [(String, String)] = [
        ("loadbalancer", "KubeProxyReplacement"),
        ("hostfirewall", "Host firewall"),
        ("networking", "Routing"),
        ("policy", "Policy"),
        ("hubble", "Hubble"),
        ("encryption", "Encryption"),
        ("clustermesh", "ClusterMesh"),
    ]

    static func render(_ s: StatusResponse, verbose: Bool) -> String {
        var lines: [(String, String)] = []
        lines.append(("KVStore", s.subsystems["networking"]?.lines["KVStore"] ?? "Disabled"))
        func add(_ name: String, _ label: String) {
            guard let sub = s.subsystems[name] else { return }
            var text = sub.enabled ? sub.summary : (name == "loadbalancer" ? "False" : "Disabled")
            if sub.state == .error { text = "Failure   \(sub.message)" }
            lines.append((label, text))
            if verbose && sub.enabled {
                for d in sub.details { lines.append(("", "  " + d)) }
            }
        }
        add("loadbalancer", "KubeProxyReplacement")
        add("hostfirewall", "Host firewall")
        let cilium = s.state == .ok ? "Ok" : (s.state == .error ? "Failure" : "Warning")
        lines.append(("Cilium", "\(cilium)   \(s.version) (node \(s.node), cluster \(s.cluster), pid \(s.pid), up \(uptime(s.uptimeSeconds)))"))
        if let ipam = s.subsystems["networking"]?.lines["IPAM"] { lines.append(("IPAM", ipam)) }
        add("networking", "Routing")
        let healthy = s.reconcilers.filter { $0.state == .ok }.count
        lines.append(("Controller Status", "\(healthy)/\(s.reconcilers.count) healthy"))
        if verbose {
            for r in s.reconcilers {
                lines.append(("", "  \(r.subsystem)/\(r.name): \(r.state.rawValue), \(r.objects) objects, \(r.pending) pending, \(r.errors) errors\(r.message.isEmpty ? "" : " (\(r.message))")"))
            }
        }
        add("policy", "Policy")
        add("hubble", "Hubble")
        add("encryption", "Encryption")
        add("clustermesh", "ClusterMesh")
        let modules = labels.compactMap { name, _ -> String? in
            guard let sub = s.subsystems[name], sub.enabled else { return nil }
            return sub.state == .ok ? nil : "\(name): \(sub.state.rawValue) (\(sub.message))"
        }
        let enabled = s.subsystems.values.filter(\.enabled).count
        lines.append(("Modules Health", modules.isEmpty ? "\(enabled)/\(enabled) enabled subsystems ok" : modules.joined(separator: "; ")))
        if let e = s.lastReloadError {
            lines.append(("Config", "last reload refused: \(e)"))
        }
        return lines.map { label, value in
            label.isEmpty ? value + "\n" : (label + ":").padding(toLength: 25, withPad: " ", startingAt: 0) + value + "\n"
        }.joined()
    }

    static func uptime(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        return "\(s / 3600)h\((s % 3600) / 60)m"
    }
}
