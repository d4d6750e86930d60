import AgentModel
import API
import CBPF
import Datapath
import Foundation
import Reconciler

/// The agent's Prometheus metrics (`prometheus.enabled`, `prometheus.port`),
/// with upstream's names: datapath drops and forwards from the per-CPU
/// `cilium_metrics` map, endpoints, policies, BPF map writes, reconcilers.
enum AgentMetrics {
    static func render(bpfRoot: String, shared: SharedState) async -> PrometheusText {
        var p = PrometheusText()
        p.family("cilium_drop_count_total", .counter, "Total dropped packets, tagged by drop reason and ingress/egress direction")
        p.family("cilium_drop_bytes_total", .counter, "Total dropped bytes, tagged by drop reason and ingress/egress direction")
        p.family("cilium_forward_count_total", .counter, "Total forwarded packets, tagged by ingress/egress direction")
        p.family("cilium_forward_bytes_total", .counter, "Total forwarded bytes, tagged by ingress/egress direction")
        if let map = try? NetworkingMaps.metrics.open(bpfRoot: bpfRoot) {
            for index in UInt32(0)..<UInt32(CILIUM_METRICS_ENTRIES) {
                guard let perCPU = map.lookupPerCPU(index) else { continue }
                let packets = perCPU.reduce(UInt64(0)) { $0 &+ $1.packets }, bytes = perCPU.reduce(UInt64(0)) { $0 &+ $1.bytes }
                guard packets > 0 else { continue }
                let reason = UInt8(index >> 1), direction = index & 1 == CILIUM_DIR_EGRESS.rawValue ? "EGRESS" : "INGRESS"
                if reason == UInt8(CILIUM_EVENTS_LOST) { continue }
                if reason == 0 {
                    p.add("cilium_forward_count_total", [("direction", direction)], Double(packets))
                    p.add("cilium_forward_bytes_total", [("direction", direction)], Double(bytes))
                } else {
                    let text = DropReasons.names[reason]?.text ?? "Unknown reason (\(reason))"
                    p.add("cilium_drop_count_total", [("direction", direction), ("reason", text)], Double(packets))
                    p.add("cilium_drop_bytes_total", [("direction", direction), ("reason", text)], Double(bytes))
                }
            }
        }
        p.family("cilium_endpoint", .gauge, "Number of endpoints managed by this agent")
        p.add("cilium_endpoint", [], Double(await shared.endpoints.all().count))
        p.family("cilium_policy", .gauge, "Number of policies currently loaded")
        let policies = Set(await shared.policyRules.all().map { "\($0.kind)/\($0.namespace ?? "")/\($0.name)" })
        p.add("cilium_policy", [], Double(policies.count))
        p.family("cilium_bpf_map_ops_total", .counter, "Total operations on BPF maps, tagged by map name, operation type and outcome")
        for (k, v) in MapOpsCounter.snapshot().sorted(by: { ($0.key.map, $0.key.operation) < ($1.key.map, $1.key.operation) }) {
            p.add("cilium_bpf_map_ops_total", [("map_name", k.map), ("operation", k.operation), ("outcome", k.success ? "success" : "fail")],
                  Double(v))
        }
        let r = ReconcilerMetrics.snapshot()
        p.family("cilium_reconciler_ops_total", .counter, "Objects the reconcilers wrote to or deleted from the datapath, by outcome")
        for (k, v) in r.ops.sorted(by: { ($0.key.reconciler, $0.key.operation) < ($1.key.reconciler, $1.key.operation) }) {
            p.add("cilium_reconciler_ops_total", [("reconciler", k.reconciler), ("operation", k.operation),
                                                  ("outcome", k.success ? "success" : "error")], Double(v))
        }
        p.family("cilium_reconciler_retries", .gauge, "Objects waiting for a retry after a failed write, by reconciler")
        for (name, n) in r.retries.sorted(by: { $0.key < $1.key }) { p.add("cilium_reconciler_retries", [("reconciler", name)], Double(n)) }
        return p
    }
}
