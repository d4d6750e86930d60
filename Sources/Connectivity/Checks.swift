import API
import Foundation

/// The tests that check the cluster rather than traffic.
enum Checks {
    /// Upstream's default expected drop reasons (`--expected-drop-reasons`): drops that policies, races at start and
    /// unroutable traffic cause by design.
    static let expectedDropReasons: Set<String> = [
        "Policy denied", "Policy denied by denylist", "Unsupported L2 protocol", "Unsupported L3 protocol", "Stale or unroutable IP",
        "Authentication required", "Service backend not found", "Unsupported protocol for NAT masquerade", "Invalid source ip",
        "Unknown L3 target address", "Host datapath not ready", "Unknown ICMPv4 code", "Unknown ICMPv6 code", "Forbidden ICMPv6 message",
        "No egress gateway found",
    ]

    /// Every node's drop counters since the run began: a drop for any other reason fails.
    @Sendable static func noUnexpectedPacketDrops(_ d: Deployment, _ base: RunBaseline) throws -> [String] {
        var failures: [String] = []
        for node in d.nodes {
            let before = base.counters[node.name] ?? []
            let unexpected = Runner.counters(node).filter { row in
                guard row.reasonCode != 0, !expectedDropReasons.contains(row.reason) else { return false }
                let old = before.first { $0.reasonCode == row.reasonCode && $0.direction == row.direction }?.packets ?? 0
                return row.packets > old
            }
            if !unexpected.isEmpty {
                let rows = unexpected.map { "\($0.reason) (\($0.direction)): \($0.packets) packets" }
                failures.append("\(node.name): Found unexpected packet drops: \(rows.joined(separator: ", ")) (cilium bpf metrics list)")
            }
        }
        return failures
    }

    /// What marks a log line as one to investigate (besides `level=error` and `level=warning`).
    static let markers = ["panic:", "Fatal error:", "DATA RACE", "POTENTIAL DEADLOCK:"]

    /// Every agent's log since the run began: errors and warnings fail, counted per message.
    @Sendable static func logErrors(_ d: Deployment, _ base: RunBaseline) throws -> [String] {
        var failures: [String] = []
        for node in d.nodes {
            guard let path = node.logFile, let handle = FileHandle(forReadingAtPath: path) else {
                failures.append("\(node.name): the agent's log is not readable (\(node.logFile ?? "no path"))")
                continue
            }
            defer { try? handle.close() }
            try? handle.seek(toOffset: base.logOffsets[node.name] ?? 0)
            let text = String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
            var counts: [String: Int] = [:], order: [String] = []
            for line in text.split(separator: "\n") where line.contains("level=error") || line.contains("level=warning")
                || markers.contains(where: { line.contains($0) }) {
                let key = String(line)
                if counts[key] == nil { order.append(key) }
                counts[key, default: 0] += 1
            }
            if !order.isEmpty {
                failures.append("Found \(order.count) logs in \(node.name) (\(path)) matching list of errors that must be investigated:\n"
                                + order.map { "    \($0) (\(counts[$0]!) occurrences)" }.joined(separator: "\n"))
            }
        }
        return failures
    }
}
