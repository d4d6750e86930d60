import API
import CBPF
import Datapath
import Foundation

/// Turns the datapath's event records (struct cilium_event) into flows,
/// naming endpoints, identities and policies from the shared tables.
struct FlowDecoder: Sendable {
    /// What the decoder knows about the cluster (refreshed from the shared tables).
    struct Names: Sendable {
        var nodeName = ""
        /// routingMode tunnel: traffic for other nodes' pods goes into the overlay.
        var tunnel = true
        var identityLabels: [UInt32: [String]] = [:]
        /// Local endpoints by address.
        var endpoints: [String: EndpointRecord] = [:]
        var rules: [UInt32: PolicyRuleRecord] = [:]
        /// Addresses hosted by other nodes: their pods (namespace, name), for names and the observation point.
        var remote: [String: (namespace: String?, pod: String?)] = [:]
    }

    var names = Names()
    /// Wall-clock time minus the monotonic clock bpf_ktime_get_ns reads.
    var clockOffsetNs: Int64 = FlowDecoder.currentClockOffset()

    static func currentClockOffset() -> Int64 {
        var mono = timespec(), real = timespec()
        clock_gettime(CLOCK_MONOTONIC, &mono)
        clock_gettime(CLOCK_REALTIME, &real)
        return (Int64(real.tv_sec) - Int64(mono.tv_sec)) * 1_000_000_000 + Int64(real.tv_nsec) - Int64(mono.tv_nsec)
    }

    static func address(_ networkOrder: UInt32) -> String {
        let v = UInt32(bigEndian: networkOrder)
        return "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
    }

    static func rfc3339(nanoseconds: Int64) -> String {
        let secs = nanoseconds / 1_000_000_000, frac = nanoseconds % 1_000_000_000
        var t = time_t(secs)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
                      Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), Int(frac))
    }

    func endpoint(address: String, identity: UInt32) -> Flow.Endpoint {
        if let ep = names.endpoints[address] {
            return Flow.Endpoint(ID: UInt32(ep.id), identity: ep.identity, namespace: ep.podNamespace, labels: ep.labels.sorted(),
                                 pod_name: ep.podName)
        }
        let labels = names.identityLabels[identity] ?? []
        let remote = names.remote[address]
        let ns = remote?.namespace
            ?? labels.first { $0.hasPrefix("k8s:io.kubernetes.pod.namespace=") }.map { String($0.split(separator: "=", maxSplits: 1)[1]) }
        return Flow.Endpoint(identity: identity, namespace: ns, labels: labels.sorted(), pod_name: remote?.pod)
    }

    func policy(_ ruleID: UInt32) -> [Flow.Policy]? {
        guard ruleID != 0, let r = names.rules[ruleID] else { return nil }
        return [Flow.Policy(name: r.name, namespace: r.namespace, kind: r.kind, revision: r.revision)]
    }

    static func icmpName(_ type: UInt8) -> String {
        switch type {
        case 0: return "EchoReply"
        case 3: return "DestinationUnreachable"
        case 8: return "EchoRequest"
        case 11: return "TimeExceeded"
        default: return "Type \(type)"
        }
    }

    func decode(_ e: cilium_event) -> Flow? {
        let type = Int(e.type)
        guard [Int(CILIUM_EVENT_DROP.rawValue), Int(CILIUM_EVENT_TRACE.rawValue), Int(CILIUM_EVENT_POLICY_VERDICT.rawValue)].contains(type)
        else { return nil }
        let src = Self.address(e.saddr), dst = Self.address(e.daddr)
        let direction = e.direction == CILIUM_DIR_EGRESS.rawValue ? "EGRESS" : "INGRESS"
        let flags = UInt32(e.flags)
        let audit = flags & CILIUM_EVENT_F_AUDIT.rawValue != 0
        var l4: Flow.Layer4?
        var summary: String
        switch e.protocol {
        case 6:
            let f = Flow.TCPFlags(byte: e.tcp_flags)
            l4 = Flow.Layer4(TCP: .init(source_port: UInt16(bigEndian: e.sport), destination_port: UInt16(bigEndian: e.dport), flags: f))
            summary = "TCP Flags: " + f.names.joined(separator: ", ")
        case 17:
            l4 = Flow.Layer4(UDP: .init(source_port: UInt16(bigEndian: e.sport), destination_port: UInt16(bigEndian: e.dport)))
            summary = "UDP"
        case 1:
            let icmpType = UInt8(truncatingIfNeeded: e.dport)
            l4 = Flow.Layer4(ICMPv4: .init(type: icmpType))
            summary = "ICMPv4 " + Self.icmpName(icmpType)
        default:
            summary = "IP protocol \(e.protocol)"
        }
        let verdict: String, eventType: Flow.EventType
        var dropDesc: String?
        switch type {
        case Int(CILIUM_EVENT_DROP.rawValue):
            verdict = "DROPPED"
            eventType = .init(type: 1, sub_type: Int(e.reason))
            dropDesc = DropReasons.names[e.reason]?.name ?? "DROP_REASON_UNKNOWN"
        case Int(CILIUM_EVENT_POLICY_VERDICT.rawValue):
            verdict = audit ? "AUDIT" : "FORWARDED"
            eventType = .init(type: 5, sub_type: 0)
        default:
            verdict = "FORWARDED"
            eventType = .init(type: 4, sub_type: 0)
        }
        let point: String? = type == Int(CILIUM_EVENT_TRACE.rawValue)
            ? (names.endpoints[dst] != nil ? "TO_ENDPOINT" : names.remote[dst] != nil && names.tunnel ? "TO_OVERLAY" : "TO_STACK") : nil
        var flow = Flow(time: Self.rfc3339(nanoseconds: Int64(bitPattern: e.timestamp_ns) + clockOffsetNs),
                        uuid: UUID().uuidString.lowercased(), verdict: verdict, drop_reason_desc: dropDesc,
                        IP: .init(source: src, destination: dst), l4: l4,
                        source: endpoint(address: src, identity: e.src_identity),
                        destination: endpoint(address: dst, identity: e.dst_identity),
                        node_name: names.nodeName, event_type: eventType, traffic_direction: direction,
                        trace_observation_point: point, is_reply: flags & CILIUM_EVENT_F_REPLY.rawValue != 0, summary: summary)
        let by = policy(e.rule_id)
        switch (type == Int(CILIUM_EVENT_DROP.rawValue), direction) {
        case (true, "INGRESS"): flow.ingress_denied_by = by
        case (true, _): flow.egress_denied_by = by
        case (false, "INGRESS"): flow.ingress_allowed_by = by
        default: flow.egress_allowed_by = by
        }
        return flow
    }
}
