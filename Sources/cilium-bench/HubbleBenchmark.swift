#if canImport(Hubble)
import AgentModel
import FlowDisplay
import Hubble
import API
import CBPF
import Foundation

/// `make bench` figures for Hubble (run by cilium-bench).
public enum HubbleBenchmark {
    /// Events decoded (endpoints, identities, labels and policies resolved) and
    /// stored in the flow ring, on one core; and the cost of rendering a flow.
    public static func run(events: Int = 1_000_000) -> [(measure: String, result: String, target: String)] {
        var decoder = FlowDecoder()
        decoder.names.nodeName = "node1"
        for i in 0..<1000 {
            decoder.names.identityLabels[UInt32(256 + i)] = ["k8s:app=app\(i)", "k8s:io.kubernetes.pod.namespace=default"]
        }
        for i in 0..<100 {
            let ep = EndpointRecord(id: UInt16(i + 1), identity: UInt32(256 + i), labels: ["k8s:app=app\(i)"], address: "10.0.0.\(i + 2)",
                                    podNamespace: "default", podName: "pod-\(i)")
            decoder.names.endpoints[(UInt32(0x0a00_0002) + UInt32(i)).bigEndian] = FlowDecoder.endpoint(ep)
        }
        for i in 0..<50 {
            decoder.names.rules[UInt32(i + 1)] = PolicyRuleRecord(id: UInt32(i + 1), kind: "CiliumNetworkPolicy", namespace: "default",
                                                                   name: "policy-\(i)", revision: 2)
        }
        let kinds = [CILIUM_EVENT_TRACE.rawValue, CILIUM_EVENT_POLICY_VERDICT.rawValue, CILIUM_EVENT_DROP.rawValue]
        let sample: [cilium_event] = (0..<1024).map { i in
            var e = cilium_event()
            e.type = UInt8(kinds[i % 3])
            e.reason = i % 3 == 2 ? 133 : 0
            e.direction = UInt8(i % 2)
            e.src_identity = UInt32(256 + i % 1000)
            e.dst_identity = UInt32(256 + (i * 7) % 1000)
            e.saddr = (UInt32(0x0a00_0002) + UInt32(i % 120)).bigEndian
            e.daddr = (UInt32(0x0a00_0002) + UInt32((i * 3) % 120)).bigEndian
            e.sport = UInt16(40000 + i).bigEndian
            e.dport = UInt16(8080).bigEndian
            e.protocol = 6
            e.tcp_flags = 0x02
            e.rule_id = UInt32(i % 60)
            e.timestamp_ns = UInt64(i) * 1000
            return e
        }
        var ring = FlowRing(capacity: 4095)
        let start = ContinuousClock.now
        for i in 0..<events {
            if let s = decoder.resolve(sample[i & 1023], seq: 0) { ring.append(s) }
        }
        let secs = (ContinuousClock.now - start) / .seconds(1)
        let rendered = ring.records(after: 0)
        let rstart = ContinuousClock.now
        var bytes = 0
        for s in rendered { bytes += FlowPrinter.json(decoder.flow(s)).utf8.count }
        let rsecs = (ContinuousClock.now - rstart) / .seconds(1)
        return [
            ("hubble: events decoded and stored, one core", String(format: "%.0f events/s (%d in %.2f s)", Double(events) / secs, events, secs),
             ">= 1000000/s"),
            ("hubble: flows rendered as JSON (hubble observe -o json)", String(format: "%.0f flows/s (%d bytes avg)",
                                                                              Double(rendered.count) / rsecs, bytes / max(rendered.count, 1)), ""),
        ]
    }
}
#endif
