import AgentModel
import FlowDisplay
import API
import CBPF
import Foundation
import Testing
@testable import Hubble

/// Decoding of every event kind, filter semantics and output formats.
struct FlowTests {
    static func be(_ s: String) -> UInt32 {
        let p = s.split(separator: ".").map { UInt32($0)! }
        return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]).bigEndian
    }

    /// node1 with two local pods (client 10.0.0.2, echo 10.0.0.3), a remote one (other 10.0.1.2 on node2) and a policy rule.
    static func decoder() -> FlowDecoder {
        var d = FlowDecoder()
        d.clockOffsetNs = 1_795_000_000_000_000_000 // 2026-11-18T...Z for timestamp 0
        d.names.nodeName = "node1"
        d.names.identityLabels = [257: ["k8s:app=client", "k8s:io.kubernetes.pod.namespace=default"],
                                  258: ["k8s:app=echo", "k8s:io.kubernetes.pod.namespace=default"],
                                  300: ["k8s:app=other", "k8s:io.kubernetes.pod.namespace=prod"],
                                  2: ["reserved:world"]]
        d.names.endpoints[be("10.0.0.2")] = FlowDecoder.endpoint(EndpointRecord(id: 11, identity: 257, labels: ["k8s:app=client", "k8s:io.kubernetes.pod.namespace=default"],
                                                                               address: "10.0.0.2", podNamespace: "default", podName: "client"))
        d.names.endpoints[be("10.0.0.3")] = FlowDecoder.endpoint(EndpointRecord(id: 12, identity: 258, labels: ["k8s:app=echo", "k8s:io.kubernetes.pod.namespace=default"],
                                                                               address: "10.0.0.3", podNamespace: "default", podName: "echo"))
        d.names.remote[be("10.0.1.2")] = (namespace: "prod", pod: "other", cluster: nil)
        d.names.rules[7] = PolicyRuleRecord(id: 7, kind: "CiliumNetworkPolicy", namespace: "default", name: "echo-from-client", revision: 3)
        return d
    }

    static func event(_ type: cilium_event_type, src: String, dst: String, sid: UInt32, did: UInt32, proto: UInt8 = 6,
                      sport: UInt16 = 40000, dport: UInt16 = 8080, tcp: UInt8 = 0x02, reason: UInt8 = 0,
                      direction: cilium_direction = CILIUM_DIR_INGRESS, flags: UInt8 = 0, rule: UInt32 = 0) -> cilium_event {
        var e = cilium_event()
        e.type = UInt8(type.rawValue)
        e.reason = reason
        e.direction = UInt8(direction.rawValue)
        e.saddr = be(src)
        e.daddr = be(dst)
        e.src_identity = sid
        e.dst_identity = did
        e.protocol = proto
        e.sport = sport.bigEndian
        e.dport = proto == 1 ? dport : dport.bigEndian
        e.tcp_flags = tcp
        e.flags = flags
        e.rule_id = rule
        e.timestamp_ns = 123_456_789
        return e
    }

    @Test func aPolicyVerdictNamesBothPodsAndThePolicy() throws {
        let f = try #require(Self.decoder().decode(Self.event(CILIUM_EVENT_POLICY_VERDICT, src: "10.0.0.2", dst: "10.0.0.3", sid: 257, did: 258, rule: 7)))
        #expect(f.verdict == "FORWARDED")
        #expect(f.event_type == .init(type: 5, sub_type: 0))
        #expect(f.traffic_direction == "INGRESS")
        #expect(f.source == .init(ID: 11, identity: 257, namespace: "default", labels: ["k8s:app=client", "k8s:io.kubernetes.pod.namespace=default"], pod_name: "client"))
        #expect(f.destination?.pod_name == "echo" && f.destination?.ID == 12)
        #expect(f.IP == .init(source: "10.0.0.2", destination: "10.0.0.3"))
        #expect(f.l4?.TCP == .init(source_port: 40000, destination_port: 8080, flags: .init(byte: 0x02)))
        #expect(f.summary == "TCP Flags: SYN")
        #expect(f.ingress_allowed_by == [.init(name: "echo-from-client", namespace: "default", kind: "CiliumNetworkPolicy", revision: 3)])
        #expect(f.egress_allowed_by == nil && f.ingress_denied_by == nil)
        #expect(f.node_name == "node1")
        #expect(f.time.hasPrefix("2026-11-18T") && f.time.hasSuffix("Z"))
        #expect(f.uuid.count == 36)
    }

    @Test func aDropFromAnotherNodesPodHasItsReasonAndPod() throws {
        let f = try #require(Self.decoder().decode(Self.event(CILIUM_EVENT_DROP, src: "10.0.1.2", dst: "10.0.0.3", sid: 300, did: 258, reason: 133)))
        #expect(f.verdict == "DROPPED")
        #expect(f.drop_reason_desc == "POLICY_DENIED")
        #expect(f.event_type == .init(type: 1, sub_type: 133))
        #expect(f.source?.pod_name == "other" && f.source?.namespace == "prod" && f.source?.identity == 300 && f.source?.ID == nil)
        #expect(f.source?.labels == ["k8s:app=other", "k8s:io.kubernetes.pod.namespace=prod"])
        let deny = try #require(Self.decoder().decode(Self.event(CILIUM_EVENT_DROP, src: "10.0.0.2", dst: "10.0.0.3", sid: 257, did: 258,
                                                                 reason: 181, direction: CILIUM_DIR_EGRESS, rule: 7)))
        #expect(deny.drop_reason_desc == "POLICY_DENY" && deny.egress_denied_by?.first?.name == "echo-from-client")
        #expect(deny.traffic_direction == "EGRESS")
    }

    /// Every drop reason the datapath has (enum cilium_drop_reason) has a name and a text for
    /// Hubble, `cilium monitor` and the metrics; only INVALID says "Invalid packet"; each name once.
    @Test func everyDatapathDropReasonHasAName() throws {
        let header = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("bpf/include/cilium_maps.h")
        let text = try String(contentsOf: header, encoding: .utf8)
        let body = try #require(text.range(of: "enum cilium_drop_reason {").flatMap { start in
            text[start.upperBound...].range(of: "};").map { text[start.upperBound..<$0.lowerBound] }
        })
        var reasons: [String: UInt8] = [:]
        for line in body.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0].contains("CILIUM_DROP_") else { continue }
            let digits = parts[1].prefix { $0 == " " || $0.isNumber }.trimmingCharacters(in: .whitespaces)
            let number = UInt8(digits, radix: 10)
            #expect(number != nil, "\(line)")
            reasons[parts[0].trimmingCharacters(in: .whitespaces)] = number ?? 0
        }
        #expect(reasons.count >= 9)
        #expect(reasons["CILIUM_DROP_INVALID"] == UInt8(CILIUM_DROP_INVALID.rawValue))
        for (symbol, number) in reasons {
            let name = DropReasons.names[number]
            #expect(name != nil, "\(symbol) (\(number)) has no name")
            if symbol != "CILIUM_DROP_INVALID" { #expect(name?.text != "Invalid packet", "\(symbol)") }
        }
        #expect(Set(DropReasons.names.values.map(\.name)).count == DropReasons.names.count)
        // Upstream's numbers and flow.proto names where upstream has the reason.
        #expect(DropReasons.names[UInt8(CILIUM_DROP_WRITE_ERROR.rawValue)]?.name == "ERROR_WRITING_TO_PACKET")
        #expect(CILIUM_DROP_WRITE_ERROR.rawValue == 141 && CILIUM_DROP_CSUM_L3.rawValue == 153 && CILIUM_DROP_CSUM_L4.rawValue == 154)
        let d = Self.decoder()
        for (reason, name) in [(CILIUM_DROP_CSUM_L3, "ERROR_WHILE_CORRECTING_L3_CHECKSUM"), (CILIUM_DROP_CSUM_L4, "ERROR_WHILE_CORRECTING_L4_CHECKSUM"),
                               (CILIUM_DROP_DSR_IP_OPTIONS, "DSR_IP_OPTIONS_PRESENT")] {
            let f = try #require(d.decode(Self.event(CILIUM_EVENT_DROP, src: "172.30.0.100", dst: "10.0.0.3", sid: 2, did: 258,
                                                     reason: UInt8(reason.rawValue))))
            #expect(f.verdict == "DROPPED" && f.drop_reason_desc == name)
            #expect(f.event_type == .init(type: 1, sub_type: Int(reason.rawValue)))
        }
    }

    @Test func tracesUDPICMPAuditAndReplies() throws {
        let d = Self.decoder()
        let trace = try #require(d.decode(Self.event(CILIUM_EVENT_TRACE, src: "10.0.0.2", dst: "10.0.0.3", sid: 257, did: 258, proto: 17, dport: 53)))
        #expect(trace.event_type.type == 4 && trace.trace_observation_point == "TO_ENDPOINT" && trace.verdict == "FORWARDED")
        #expect(trace.l4?.UDP?.destination_port == 53 && trace.summary == "UDP" && trace.protocolName == "udp")
        let out = try #require(d.decode(Self.event(CILIUM_EVENT_TRACE, src: "10.0.0.2", dst: "172.30.0.100", sid: 257, did: 2)))
        #expect(out.trace_observation_point == "TO_STACK" && out.destination?.labels == ["reserved:world"])
        let icmp = try #require(d.decode(Self.event(CILIUM_EVENT_TRACE, src: "10.0.0.2", dst: "10.0.1.2", sid: 257, did: 300, proto: 1, dport: 8,
                                                    flags: UInt8(CILIUM_EVENT_F_ICMP_TYPE_IN_DPORT.rawValue))))
        #expect(icmp.l4?.ICMPv4?.type == 8 && icmp.summary == "ICMPv4 EchoRequest" && icmp.trace_observation_point == "TO_OVERLAY")
        let audit = try #require(d.decode(Self.event(CILIUM_EVENT_POLICY_VERDICT, src: "10.0.0.2", dst: "10.0.0.3", sid: 257, did: 258,
                                                     flags: UInt8(CILIUM_EVENT_F_AUDIT.rawValue | CILIUM_EVENT_F_REPLY.rawValue))))
        #expect(audit.verdict == "AUDIT" && audit.is_reply)
        #expect(d.decode(Self.event(cilium_event_type(rawValue: 9), src: "10.0.0.2", dst: "10.0.0.3", sid: 257, did: 258)) == nil, "unknown kinds")
    }

    static func sample() -> [Flow] {
        let d = decoder()
        return [
            d.decode(event(CILIUM_EVENT_POLICY_VERDICT, src: "10.0.0.2", dst: "10.0.0.3", sid: 257, did: 258, rule: 7))!,
            d.decode(event(CILIUM_EVENT_DROP, src: "10.0.1.2", dst: "10.0.0.3", sid: 300, did: 258, reason: 133))!,
            d.decode(event(CILIUM_EVENT_TRACE, src: "10.0.0.2", dst: "10.0.1.2", sid: 257, did: 300, proto: 17, dport: 53, direction: CILIUM_DIR_EGRESS))!,
        ]
    }

    func shown(_ args: [String]) throws -> [Int] {
        let o = try ObserveOptions(args)
        return Self.sample().enumerated().filter { o.shows($0.element) }.map(\.offset)
    }

    @Test func filtersOrWithinAFlagAndAcrossFlagsAndNegate() throws {
        #expect(try shown([]) == [0, 1, 2])
        #expect(try shown(["--verdict", "DROPPED"]) == [1])
        #expect(try shown(["--verdict", "DROPPED", "--verdict", "forwarded"]) == [0, 1, 2], "values of one flag are OR-ed")
        #expect(try shown(["--from-pod", "default/client"]) == [0, 2])
        #expect(try shown(["--from-pod", "default/client", "--protocol", "udp"]) == [2], "flags are AND-ed")
        #expect(try shown(["--pod", "prod/other"]) == [1, 2], "either side")
        #expect(try shown(["--to-pod", "echo"]) == [0, 1], "a name prefix in any namespace")
        #expect(try shown(["--not", "--verdict", "DROPPED"]) == [0, 2])
        #expect(try shown(["--pod", "echo", "--not", "--from-ip", "10.0.1.0/24"]) == [0])
        #expect(try shown(["-l", "app=other"]) == [1, 2])
        #expect(try shown(["--from-label", "k8s:app=client", "--to-label", "app=echo"]) == [0])
        #expect(try shown(["--ip", "10.0.1.2"]) == [1, 2])
        #expect(try shown(["--to-port", "53"]) == [2])
        #expect(try shown(["--port", "40000", "--type", "drop"]) == [1])
        #expect(try shown(["-t", "policy-verdict"]) == [0])
        #expect(try shown(["--identity", "300"]) == [1, 2])
        #expect(try shown(["--traffic-direction", "egress"]) == [2])
        #expect(try shown(["--drop-reason-desc", "POLICY_DENIED"]) == [1])
        #expect(try shown(["-n", "prod"]) == [1, 2])
        #expect(try shown(["--node-name", "node2"]) == [])
        #expect(try shown(["--since", "2000-01-01T00:00:00Z", "--until", "2100-01-01T00:00:00Z"]) == [0, 1, 2])
        #expect(try shown(["--since", "1m"]) == [], "the sample flows are from days ago")
    }

    @Test func badFlagsSayWhatIsWrong() {
        for (args, words) in [(["--verdict", "MAYBE"], "valid are FORWARDED"), (["--port", "http"], "not a number"),
                              (["--ip", "10.0.0"], "not an IPv4 address"), (["--not"], "--not must be followed"),
                              (["--last", "0"], "positive"), (["--output", "yaml"], "valid are compact"), (["--frobnicate"], "unknown flag"),
                              (["--since", "yesterday"], "RFC 3339")] {
            #expect(throws: UsageError.self) { try ObserveOptions(args) }
            do { _ = try ObserveOptions(args) } catch { #expect("\(error)".contains(words), "\(args): \(error)") }
        }
    }

    @Test func outputsAsUpstreamPrintsThem() throws {
        let flows = Self.sample()
        #expect(FlowPrinter.compact(flows[0], policyNames: true, nodeName: true)
                == "Nov 18 11:06:40.123 [node1]: default/client:40000 (ID:257) -> default/echo:8080 (ID:258) policy-verdict:L3-L4 INGRESS ALLOWED BY default/echo-from-client FORWARDED (TCP Flags: SYN)")
        #expect(FlowPrinter.compact(flows[1])
                == "Nov 18 11:06:40.123: prod/other:40000 (ID:300) -> default/echo:8080 (ID:258) Policy denied DROPPED (TCP Flags: SYN)")
        #expect(FlowPrinter.compact(flows[2]).hasSuffix("default/client:40000 (ID:257) -> prod/other:53 (ID:300) to-overlay FORWARDED (UDP)"))
        let json = try JSONSerialization.jsonObject(with: Data(FlowPrinter.json(flows[1]).utf8)) as! [String: Any]
        let flow = json["flow"] as! [String: Any]
        #expect(json["node_name"] as? String == "node1")
        #expect(flow["verdict"] as? String == "DROPPED" && flow["drop_reason_desc"] as? String == "POLICY_DENIED")
        #expect(flow["Type"] as? String == "L3_L4" && flow["Summary"] as? String == "TCP Flags: SYN")
        #expect((flow["IP"] as? [String: Any])?["ipVersion"] as? String == "IPv4")
        #expect(((flow["l4"] as? [String: Any])?["TCP"] as? [String: Any])?["destination_port"] as? Int == 8080)
        #expect((flow["source"] as? [String: Any])?["pod_name"] as? String == "other")
        #expect((flow["event_type"] as? [String: Any])?["sub_type"] as? Int == 133)
        let dict = FlowPrinter.dict(flows[0])
        #expect(dict.contains("  TIMESTAMP: Nov 18 11:06:40.123\n     SOURCE: default/client:40000 (ID:257)\nDESTINATION: default/echo:8080 (ID:258)"))
        let table = FlowPrinter.table(flows.map { FlowPrinter.tableRow($0) }).split(separator: "\n")
        #expect(table.count == 4 && table[0].hasPrefix("TIMESTAMP") && table[0].contains("DESTINATION") && table[2].contains("DROPPED"))
    }

    @Test func timestampsAsGoPrintsThem() throws {
        var f = Self.sample()[0]
        f.time = "2026-01-04T18:24:12.046123456Z"
        #expect(FlowPrinter.timestamp(f) == "Jan  4 18:24:12.046")
        #expect(try ObserveOptions(["--print-node-name"]).printNodeName)
    }

    @Test func theRingKeepsTheNewestAndResumesAfterASequenceNumber() throws {
        let d = Self.decoder()
        var ring = FlowRing(capacity: 3)
        for i in 0..<5 {
            ring.append(d.resolve(Self.event(CILIUM_EVENT_TRACE, src: "10.0.0.2", dst: "10.0.0.3", sid: 257, did: 258, sport: UInt16(1000 + i)), seq: 0)!)
        }
        #expect(ring.seen == 5 && ring.count == 3)
        #expect(ring.records(after: 0).map(\.seq) == [3, 4, 5])
        #expect(ring.records(after: 4).map(\.seq) == [5])
        #expect(ring.records(after: 5).isEmpty)
        #expect(d.flow(ring.records(after: 4)[0]).l4?.TCP?.source_port == 1004)
    }
}
