import API
import Foundation

/// An action's command and what came of it.
public struct Outcome: Sendable {
    public var action: Action
    public var command: [String]
    public var result: CommandResult

    /// What the command's result says against the expectation (flows and counters are checked apart).
    func problems(_ e: Expectation) -> [String] {
        let expected = e.decisive(action).verdict
        switch (action.probe, expected) {
        case (.http, .success):
            if result.code == 0, result.output.hasSuffix("200") { return [] }
            return ["expected success, got \(summary) (\(command.joined(separator: " ")))"]
        case (.http, .drop):
            if result.code == 28 { return [] }
            return ["expected a drop (curl timing out), got \(summary) (\(command.joined(separator: " ")))"]
        case (.ping, .success):
            return result.code == 0 ? [] : ["expected an answer, got \(summary) (\(command.joined(separator: " ")))"]
        case (.ping, .drop):
            return result.code == 1 ? [] : ["expected no answer, got \(summary) (\(command.joined(separator: " ")))"]
        }
    }

    var summary: String {
        switch action.probe {
        case .http:
            switch result.code {
            case 0: return "HTTP \(result.output.suffix(3))"
            case 7: return "connection refused (curl exit 7)"
            case 28: return "timeout (curl exit 28)"
            default: return "curl exit \(result.code): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(200))"
            }
        case .ping:
            return result.code == 0 ? "echo reply" : result.code == 1 ? "no reply (ping exit 1)"
                : "ping exit \(result.code): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(200))"
        }
    }
}

extension Expectation {
    var summary: String {
        func text(_ v: Verdict) -> String { if case .drop(let r) = v { return "drop (\(r))" } else { return "success" } }
        return egress == ingress ? text(egress) : "egress \(text(egress)), ingress \(text(ingress))"
    }
}

enum Probing {
    /// Seconds a connection may take: a dropped SYN costs this (upstream's curl --connect-timeout is 2 s too).
    static let connectTimeout = 2
    /// Processes at once: every action is a `cilium-sandbox exec`.
    static let parallel = 16

    static func command(_ a: Action) -> [String] {
        switch a.probe {
        case .http:
            let port = a.destination.port.map { ":\($0)" } ?? ""
            return ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--local-port", "\(a.sourcePort)",
                    "--connect-timeout", "\(connectTimeout)", "--max-time", "\(connectTimeout + 2)", "http://\(a.destination.address)\(port)/"]
        case .ping:
            return ["busybox", "ping", "-c", "1", "-W", "\(connectTimeout)", a.destination.address]
        }
    }

    static func run(_ actions: [Action], in sandbox: Sandbox) -> [Outcome] {
        var outcomes: [Outcome] = []
        var start = actions.startIndex
        while start < actions.endIndex {
            let batch = actions[start..<min(start + parallel, actions.endIndex)]
            let launched = batch.map { a -> (Action, [String], Result<Launched, any Error>) in
                let cmd = command(a)
                return (a, cmd, Result { try sandbox.exec(a.source.target, cmd) })
            }
            for (a, cmd, l) in launched {
                switch l {
                case .success(let p): outcomes.append(Outcome(action: a, command: cmd, result: p.wait()))
                case .failure(let e): outcomes.append(Outcome(action: a, command: cmd, result: CommandResult(code: -1, output: "\(e)")))
                }
            }
            start = batch.endIndex
        }
        return outcomes
    }
}

/// The flows Hubble recorded on every node during a test.
struct FlowLog {
    var flows: [String: [Flow]] = [:]
    /// Why flows are not checked (Hubble off on a node).
    var note: String?

    static func cursor(_ node: SandboxReport.Node) -> UInt64 {
        (try? Sandbox.request(node, "GET", "/v1/flows?after=\(UInt64.max)"))
            .flatMap { try? JSONDecoder().decode(FlowsResponse.self, from: $0) }?.status.seenFlows ?? 0
    }

    init(deployment: Deployment, after cursors: [String: UInt64]) {
        for node in deployment.nodes {
            do {
                let data = try Sandbox.request(node, "GET", "/v1/flows?after=\(cursors[node.name] ?? 0)")
                flows[node.name] = try JSONDecoder().decode(FlowsResponse.self, from: data).flows.map(\.flow)
            } catch {
                note = "flow validation skipped: no flows from \(node.name) (\(error)); is hubble.enabled on?"
                flows = [:]
                return
            }
        }
    }

    /// The action's own packets, forward direction: its source port (TCP) or its addresses (ICMP).
    func matches(_ f: Flow, _ a: Action) -> Bool {
        guard let ip = f.IP, a.destination.flowAddresses.contains(ip.destination) else { return false }
        switch a.probe {
        case .http: return f.l4?.TCP?.source_port == a.sourcePort
        case .ping: return f.l4?.ICMPv4 != nil && ip.source == a.source.address
        }
    }

    func problems(_ a: Action, _ e: Expectation) -> [String] {
        guard note == nil else { return [] }
        let (verdict, node) = e.decisive(a)
        switch verdict {
        case .success:
            let drops = flows.flatMap { n, fs in fs.filter { $0.verdict == "DROPPED" && matches($0, a) }.map { (n, $0) } }
            if let (n, d) = drops.first {
                return ["Hubble on \(n) saw it dropped: \(d.drop_reason_desc ?? "?") (\(d.summary))"]
            }
            if a.source.kind == .pod, let n = a.source.node, !(flows[n] ?? []).contains(where: { $0.verdict == "FORWARDED" && matches($0, a) }) {
                return ["Hubble on \(n) has no FORWARDED flow for it"]
            }
            return []
        case .drop(let reason):
            guard let node else { return [] }
            let mine = (flows[node] ?? []).filter { matches($0, a) }
            if mine.contains(where: { $0.verdict == "DROPPED" && $0.drop_reason_desc == reason }) { return [] }
            let seen = mine.map { "\($0.verdict)\($0.drop_reason_desc.map { " " + $0 } ?? "")" }
            return ["Hubble on \(node) has no DROPPED flow with reason \(reason) for it (saw: \(seen.isEmpty ? "nothing" : Array(Set(seen)).sorted().joined(separator: ", ")))"]
        }
    }
}

/// `--test`: regular expressions, each matching test names (unanchored); `!` in front excludes;
/// `TEST/SCENARIO` narrows to scenarios. Several by repeating the flag or with commas.
public struct TestFilter: Sendable {
    struct Pattern: @unchecked Sendable {
        var negative: Bool
        var test: NSRegularExpression
        var scenario: NSRegularExpression?
    }
    var patterns: [Pattern] = []

    public init(_ specs: [String]) throws {
        for spec in specs.flatMap({ $0.split(separator: ",") }).map(String.init) where !spec.isEmpty {
            let negative = spec.hasPrefix("!")
            let body = negative ? String(spec.dropFirst()) : spec
            let parts = body.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            func regex(_ s: String) throws -> NSRegularExpression {
                do { return try NSRegularExpression(pattern: s) } catch {
                    throw ConnectivityError("--test \(spec): \"\(s)\" is not a regular expression")
                }
            }
            patterns.append(Pattern(negative: negative, test: try regex(parts[0].isEmpty ? "." : parts[0]),
                                    scenario: parts.count > 1 ? try regex(parts[1]) : nil))
        }
    }

    static func found(_ r: NSRegularExpression, _ s: String) -> Bool {
        r.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    /// Whether the test runs at all.
    public func includes(test: String) -> Bool {
        let positives = patterns.filter { !$0.negative }
        if !positives.isEmpty, !positives.contains(where: { Self.found($0.test, test) }) { return false }
        return !patterns.contains { $0.negative && $0.scenario == nil && Self.found($0.test, test) }
    }

    /// Whether one of the test's scenarios runs.
    public func includes(test: String, scenario: String) -> Bool {
        guard includes(test: test) else { return false }
        let positives = patterns.filter { !$0.negative && Self.found($0.test, test) }
        if !positives.isEmpty, !positives.contains(where: { $0.scenario.map { Self.found($0, scenario) } ?? true }) { return false }
        return !patterns.contains { p in p.negative && Self.found(p.test, test) && p.scenario.map { Self.found($0, scenario) } == true }
    }
}
