import API
import Foundation

/// `hubble observe -o compact|dict|table|json` output, as upstream prints it.
public enum FlowPrinter {
    public enum Format: String, Sendable, CaseIterable { case compact, dict, table, json }

    /// "Nov 27 08:30:01.123" (Go's "Jan _2 15:04:05.000", as upstream prints it) from the flow's RFC 3339 time.
    public static func timestamp(_ flow: Flow) -> String {
        guard let d = parseTime(flow.time) else { return flow.time }
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        let p = c.dateComponents([.month, .day, .hour, .minute, .second], from: d)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        // Milliseconds from the text itself (a Date's double would round 123 down to 122).
        let fraction = flow.time.split(separator: ".").dropFirst().first.map { String($0.prefix { $0.isNumber }.prefix(3)) } ?? ""
        let millis = Int(fraction.padding(toLength: 3, withPad: "0", startingAt: 0)) ?? 0
        return months[(p.month ?? 1) - 1] + String(format: " %2d %02d:%02d:%02d.%03d", p.day ?? 0, p.hour ?? 0, p.minute ?? 0,
                                                   p.second ?? 0, millis)
    }

    public static func parseTime(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    /// Reserved identities by number (upstream's names).
    static let reserved: [UInt32: String] = [1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init", 6: "remote-node",
                                             7: "kube-apiserver", 8: "ingress"]

    /// "default/client:41234 (ID:12345)" ("cluster2/default/client:..." for another cluster's pod), or
    /// "172.30.0.100:5000 (world)" for what is not a pod.
    public static func endpoint(_ ep: Flow.Endpoint?, ip: String?, port: UInt16?) -> String {
        let p = port.map { ":\($0)" } ?? ""
        if let ep, let pod = ep.pod_name {
            return "\(ep.cluster_name.map { "\($0)/" } ?? "")\(ep.namespace.map { "\($0)/" } ?? "")\(pod)\(p) (ID:\(ep.identity))"
        }
        let who = ep.map { reserved[$0.identity] ?? "ID:\($0.identity)" } ?? "unknown"
        return "\(ip ?? "?")\(p) (\(who))"
    }

    /// What happened, in upstream's words: "to-endpoint", "policy-verdict:L3-L4 INGRESS ALLOWED", "Policy denied".
    public static func kind(_ flow: Flow, policyNames: Bool = false) -> String {
        switch flow.event_type.type {
        case 1:
            return DropReasons.names.first { $0.value.name == flow.drop_reason_desc }?.value.text ?? (flow.drop_reason_desc ?? "drop")
        case 5:
            let denied = flow.verdict == "DROPPED"
            var s = "policy-verdict:L3-L4 \(flow.traffic_direction) \(denied ? "DENIED" : flow.verdict == "AUDIT" ? "AUDITED" : "ALLOWED")"
            if policyNames {
                let by = (flow.ingress_allowed_by ?? []) + (flow.egress_allowed_by ?? [])
                if !by.isEmpty { s += " BY " + by.map { "\($0.namespace.map { "\($0)/" } ?? "")\($0.name)" }.joined(separator: ",") }
            }
            return s
        default:
            return flow.trace_observation_point.map { $0.lowercased().replacingOccurrences(of: "_", with: "-") } ?? "trace"
        }
    }

    public static func summary(_ flow: Flow) -> String { flow.summary }

    /// One line a flow; `nodeName` (`--print-node-name`) puts " [node]" after the time.
    public static func compact(_ flow: Flow, policyNames: Bool = false, nodeName: Bool = false) -> String {
        let src = endpoint(flow.source, ip: flow.IP?.source, port: flow.sourcePort)
        let dst = endpoint(flow.destination, ip: flow.IP?.destination, port: flow.destinationPort)
        var line = "\(timestamp(flow))\(nodeName ? " [\(flow.node_name)]" : ""): \(src) \(flow.is_reply ? "<-" : "->") \(dst) \(kind(flow, policyNames: policyNames)) \(flow.verdict) (\(flow.summary))"
        if policyNames, flow.event_type.type == 1 {
            let by = (flow.ingress_denied_by ?? []) + (flow.egress_denied_by ?? [])
            if !by.isEmpty { line += " denied by " + by.map { "\($0.namespace.map { "\($0)/" } ?? "")\($0.name)" }.joined(separator: ",") }
        }
        return line
    }

    public static func dict(_ flow: Flow, policyNames: Bool = false) -> String {
        let rows: [(String, String)] = [
            ("TIMESTAMP", timestamp(flow)),
            ("SOURCE", endpoint(flow.source, ip: flow.IP?.source, port: flow.sourcePort)),
            ("DESTINATION", endpoint(flow.destination, ip: flow.IP?.destination, port: flow.destinationPort)),
            ("TYPE", kind(flow, policyNames: policyNames)),
            ("VERDICT", flow.verdict),
            ("SUMMARY", flow.summary),
            ("NODE", flow.node_name),
        ]
        return rows.map { String(repeating: " ", count: 11 - $0.0.count) + "\($0.0): \($0.1)" }.joined(separator: "\n")
    }

    public static func tableHeader() -> [String] { ["TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"] }

    public static func tableRow(_ flow: Flow, policyNames: Bool = false) -> [String] {
        [timestamp(flow), endpoint(flow.source, ip: flow.IP?.source, port: flow.sourcePort),
         endpoint(flow.destination, ip: flow.IP?.destination, port: flow.destinationPort),
         kind(flow, policyNames: policyNames), flow.verdict, flow.summary]
    }

    /// Columns padded to their widest cell.
    public static func table(_ rows: [[String]]) -> String {
        let all = [tableHeader()] + rows
        let widths = (0..<tableHeader().count).map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { r in r.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
            .joined(separator: "   ").trimmingCharacters(in: .whitespaces) }.joined(separator: "\n")
    }

    /// One JSON object per line: {"flow": {...}, "node_name": ..., "time": ...} as upstream's GetFlowsResponse.
    public static func json(_ flow: Flow) -> String {
        struct Envelope: Encodable { var flow: Flow; var node_name: String; var time: String }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: e.encode(Envelope(flow: flow, node_name: flow.node_name, time: flow.time)), as: UTF8.self)) ?? "{}"
    }
}
