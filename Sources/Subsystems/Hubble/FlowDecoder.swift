import AgentModel
import API
import CBPF
import Datapath
import Diagnostics
import Foundation

/// Turns the datapath's event records (struct cilium_event) into flows,
/// naming endpoints, identities and policies from the shared tables.
package struct FlowDecoder: Sendable {
    package init() {}

    /// What the decoder knows about the cluster (refreshed from the shared tables).
    package struct Names: Sendable {
        package var nodeName = ""
        /// routingMode tunnel: traffic for other nodes' pods goes into the overlay.
        package var tunnel = true
        package var identityLabels: [UInt32: [String]] = [:]
        /// Local endpoints by address (network order, as in the event).
        package var endpoints: [UInt32: Flow.Endpoint] = [:]
        package var rules: [UInt32: PolicyRuleRecord] = [:]
        /// Addresses hosted by other nodes: their pods (namespace, name), for names and the observation point.
        package var remote: [UInt32: (namespace: String?, pod: String?, cluster: String?)] = [:]
    }

    package var names = Names()
    /// Wall-clock time minus the monotonic clock bpf_ktime_get_ns reads.
    package var clockOffsetNs: Int64 = FlowDecoder.currentClockOffset()

    package static func currentClockOffset() -> Int64 {
        var mono = timespec(), real = timespec()
        clock_gettime(CLOCK_MONOTONIC, &mono)
        clock_gettime(CLOCK_REALTIME, &real)
        return (Int64(real.tv_sec) - Int64(mono.tv_sec)) * 1_000_000_000 + Int64(real.tv_nsec) - Int64(mono.tv_nsec)
    }

    package static func address(_ networkOrder: UInt32) -> String {
        let v = UInt32(bigEndian: networkOrder)
        return "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
    }

    package func endpoint(address: UInt32, identity: UInt32) -> Flow.Endpoint {
        if let ep = names.endpoints[address] { return ep }
        let labels = names.identityLabels[identity] ?? []
        let remote = names.remote[address]
        let ns = remote?.namespace
            ?? labels.first { $0.hasPrefix("k8s:io.kubernetes.pod.namespace=") }.map { String($0.split(separator: "=", maxSplits: 1)[1]) }
        return Flow.Endpoint(identity: identity, namespace: ns, labels: labels, pod_name: remote?.pod, cluster_name: remote?.cluster ?? nil)
    }

    /// A local endpoint as flows show it.
    package static func endpoint(_ ep: EndpointRecord) -> Flow.Endpoint {
        Flow.Endpoint(ID: UInt32(ep.id), identity: ep.identity, namespace: ep.podNamespace, labels: ep.labels.sorted(), pod_name: ep.podName)
    }

    package func policy(_ ruleID: UInt32) -> [Flow.Policy]? {
        guard ruleID != 0, let r = names.rules[ruleID] else { return nil }
        return [Flow.Policy(name: r.name, namespace: r.namespace, kind: r.kind, revision: r.revision)]
    }

    package static func icmpName(_ type: UInt8) -> String {
        switch type {
        case 0: return "EchoReply"
        case 3: return "DestinationUnreachable"
        case 8: return "EchoRequest"
        case 11: return "TimeExceeded"
        default: return "Type \(type)"
        }
    }

    /// What is kept per event: the record and what it resolved to when it happened.
    package struct Stored: Sendable {
        package var seq: UInt64
        package var event: cilium_event
        package var source: Flow.Endpoint
        package var destination: Flow.Endpoint
        package var policy: [Flow.Policy]?
        package var point: String?
    }

    package static let kinds: Set<UInt8> = [UInt8(CILIUM_EVENT_DROP.rawValue), UInt8(CILIUM_EVENT_TRACE.rawValue),
                                    UInt8(CILIUM_EVENT_POLICY_VERDICT.rawValue)]

    /// Decodes an event at the time it arrives: who the addresses were, which policy the rule id names.
    package func resolve(_ e: cilium_event, seq: UInt64) -> Stored? {
        guard Self.kinds.contains(e.type) else { return nil }
        let point: String? = e.type != UInt8(CILIUM_EVENT_TRACE.rawValue) ? nil
            : UInt32(e.stage) == CILIUM_STAGE_ENCRYPT.rawValue ? "TO_CRYPTO"
            : names.endpoints[e.daddr] != nil ? "TO_ENDPOINT" : names.remote[e.daddr] != nil && names.tunnel ? "TO_OVERLAY" : "TO_STACK"
        return Stored(seq: seq, event: e, source: endpoint(address: e.saddr, identity: e.src_identity),
                      destination: endpoint(address: e.daddr, identity: e.dst_identity), policy: policy(e.rule_id), point: point)
    }

    /// A per-agent prefix: flow UUIDs are this and the sequence number.
    package let uuidPrefix: UInt64 = UInt64.random(in: 0...UInt64.max)

    package func uuid(_ seq: UInt64) -> String {
        var b = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: uuidPrefix >> (56 - 8 * UInt64(i))) }
        for i in 0..<8 { b[8 + i] = UInt8(truncatingIfNeeded: seq >> (56 - 8 * UInt64(i))) }
        b[6] = b[6] & 0x0f | 0x40
        b[8] = b[8] & 0x3f | 0x80
        let h = b.map { String(format: "%02x", $0) }.joined()
        let c = Array(h)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
    }

    /// The flow, in full, for output.
    package func flow(_ s: Stored) -> Flow {
        let e = s.event
        let type = Int(e.type)
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
        var flow = Flow(time: RFC3339.text(nanoseconds: Int64(bitPattern: e.timestamp_ns) + clockOffsetNs),
                        uuid: uuid(s.seq), verdict: verdict, drop_reason_desc: dropDesc,
                        IP: .init(source: Self.address(e.saddr), destination: Self.address(e.daddr),
                                  encrypted: flags & CILIUM_EVENT_F_ENCRYPTED.rawValue != 0 ? true : nil), l4: l4,
                        source: s.source, destination: s.destination,
                        node_name: names.nodeName, event_type: eventType, traffic_direction: direction,
                        trace_observation_point: s.point, is_reply: flags & CILIUM_EVENT_F_REPLY.rawValue != 0, summary: summary)
        switch (type == Int(CILIUM_EVENT_DROP.rawValue), direction) {
        case (true, "INGRESS"): flow.ingress_denied_by = s.policy
        case (true, _): flow.egress_denied_by = s.policy
        case (false, "INGRESS"): flow.ingress_allowed_by = s.policy
        default: flow.egress_allowed_by = s.policy
        }
        return flow
    }

    /// Both steps at once (tests, tools).
    package func decode(_ e: cilium_event, seq: UInt64 = 1) -> Flow? { resolve(e, seq: seq).map(flow) }
}
