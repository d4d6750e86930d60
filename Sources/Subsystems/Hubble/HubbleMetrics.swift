import AgentModel
import API
import CBPF
import Foundation

/// Hubble's Prometheus metrics (`hubble.metrics.enabled`, on
/// `hubble.metrics.port`), counted from the flows as they are stored, with
/// upstream's metric and label names.
struct HubbleMetrics: Sendable {
    /// Upstream's metric names; "name:options" is accepted, the options are ignored.
    static let known = ["dns", "drop", "tcp", "flow", "port-distribution", "icmp", "http"]

    let enabled: Set<String>
    private var flows: [[String]: UInt64] = [:]   // protocol, subtype, type, verdict
    private var drops: [[String]: UInt64] = [:]   // protocol, reason
    private var tcpFlags: [String: UInt64] = [:]  // flag
    private var ports: [[String]: UInt64] = [:]   // port, protocol
    private var icmp: [String: UInt64] = [:]      // type

    init(_ names: [String]) {
        enabled = Set(names.map { String($0.split(separator: ":", maxSplits: 1).first ?? "") })
    }

    /// Names in `hubble.metrics.enabled` this agent does not know (refused at start).
    static func unknown(_ names: [String]) -> [String] {
        names.map { String($0.split(separator: ":", maxSplits: 1).first ?? "") }.filter { !known.contains($0) }
    }

    static func protocolName(_ p: UInt8) -> String {
        switch p {
        case 6: return "TCP"
        case 17: return "UDP"
        case 1: return "ICMPv4"
        default: return "Unknown"
        }
    }

    mutating func record(_ s: FlowDecoder.Stored) {
        let e = s.event
        let proto = Self.protocolName(e.protocol)
        let drop = e.type == UInt8(CILIUM_EVENT_DROP.rawValue)
        if enabled.contains("flow") {
            let type = drop ? "Drop" : e.type == UInt8(CILIUM_EVENT_POLICY_VERDICT.rawValue) ? "PolicyVerdict" : "Trace"
            let audit = UInt32(e.flags) & CILIUM_EVENT_F_AUDIT.rawValue != 0
            let verdict = drop ? "DROPPED" : audit ? "AUDIT" : "FORWARDED"
            let subtype = s.point.map { $0.lowercased().replacingOccurrences(of: "_", with: "-") } ?? ""
            flows[[proto, subtype, type, verdict], default: 0] += 1
        }
        if drop, enabled.contains("drop") {
            drops[[proto, DropReasons.names[e.reason]?.name ?? "DROP_REASON_UNKNOWN"], default: 0] += 1
        }
        if e.protocol == 6, enabled.contains("tcp") {
            for name in Flow.TCPFlags(byte: e.tcp_flags).names { tcpFlags[name, default: 0] += 1 }
        }
        if !drop, e.protocol == 6 || e.protocol == 17, UInt32(e.flags) & CILIUM_EVENT_F_REPLY.rawValue == 0,
           enabled.contains("port-distribution") {
            ports[[String(UInt16(bigEndian: e.dport)), proto], default: 0] += 1
        }
        if e.protocol == 1, enabled.contains("icmp") {
            icmp[FlowDecoder.icmpName(UInt8(truncatingIfNeeded: e.dport)), default: 0] += 1
        }
    }

    func render() -> PrometheusText {
        var p = PrometheusText()
        if enabled.contains("flow") {
            p.family("hubble_flows_processed_total", .counter, "Total number of flows processed")
            for (k, v) in flows.sorted(by: { $0.key.joined() < $1.key.joined() }) {
                p.add("hubble_flows_processed_total", [("protocol", k[0]), ("subtype", k[1]), ("type", k[2]), ("verdict", k[3])], Double(v))
            }
        }
        if enabled.contains("drop") {
            p.family("hubble_drop_total", .counter, "Number of drops")
            for (k, v) in drops.sorted(by: { $0.key.joined() < $1.key.joined() }) {
                p.add("hubble_drop_total", [("protocol", k[0]), ("reason", k[1])], Double(v))
            }
        }
        if enabled.contains("tcp") {
            p.family("hubble_tcp_flags_total", .counter, "TCP flag occurrences")
            for (k, v) in tcpFlags.sorted(by: { $0.key < $1.key }) { p.add("hubble_tcp_flags_total", [("family", "IPv4"), ("flag", k)], Double(v)) }
        }
        if enabled.contains("port-distribution") {
            p.family("hubble_port_distribution_total", .counter, "Numbers of packets distributed by destination port")
            for (k, v) in ports.sorted(by: { $0.key.joined() < $1.key.joined() }) {
                p.add("hubble_port_distribution_total", [("port", k[0]), ("protocol", k[1])], Double(v))
            }
        }
        if enabled.contains("icmp") {
            p.family("hubble_icmp_total", .counter, "Number of ICMP messages")
            for (k, v) in icmp.sorted(by: { $0.key < $1.key }) { p.add("hubble_icmp_total", [("family", "IPv4"), ("type", k)], Double(v)) }
        }
        return p
    }
}
