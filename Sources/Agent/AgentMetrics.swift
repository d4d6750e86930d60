import AgentModel
import API
import CBPF
import Datapath
import Foundation
import LinuxNet
import Reconciler

/// The agent's Prometheus metrics (`prometheus.enabled`, `prometheus.port`),
/// with upstream's names: datapath drops and forwards from the per-CPU
/// `cilium_metrics` map, endpoints, policies, BPF map writes, reconcilers.
enum AgentMetrics {
    /// The datapath's forward and drop counters (per reason and direction, summed over CPUs; rows with packets only).
    static func counters(bpfRoot: String) -> [BPFMetricEntry] {
        guard let map = try? NetworkingMaps.metrics.open(bpfRoot: bpfRoot) else { return [] }
        var rows: [BPFMetricEntry] = []
        for index in UInt32(0)..<UInt32(CILIUM_METRICS_ENTRIES) {
            guard let perCPU = map.lookupPerCPU(index) else { continue }
            let packets = perCPU.reduce(UInt64(0)) { $0 &+ $1.packets }, bytes = perCPU.reduce(UInt64(0)) { $0 &+ $1.bytes }
            let reason = UInt8(index >> 1), direction = index & 1 == CILIUM_DIR_EGRESS.rawValue ? "EGRESS" : "INGRESS"
            guard packets > 0, reason != UInt8(CILIUM_EVENTS_LOST) else { continue }
            let text = reason == 0 ? "Forwarded" : DropReasons.names[reason]?.text ?? "Unknown reason (\(reason))"
            rows.append(BPFMetricEntry(reasonCode: reason, reason: text, direction: direction, packets: packets, bytes: bytes))
        }
        return rows
    }

    static func render(bpfRoot: String, shared: SharedState) async -> PrometheusText {
        var p = PrometheusText()
        p.family("cilium_drop_count_total", .counter, "Total dropped packets, tagged by drop reason and ingress/egress direction")
        p.family("cilium_drop_bytes_total", .counter, "Total dropped bytes, tagged by drop reason and ingress/egress direction")
        p.family("cilium_forward_count_total", .counter, "Total forwarded packets, tagged by ingress/egress direction")
        p.family("cilium_forward_bytes_total", .counter, "Total forwarded bytes, tagged by ingress/egress direction")
        for row in counters(bpfRoot: bpfRoot) {
            if row.reasonCode == 0 {
                p.add("cilium_forward_count_total", [("direction", row.direction)], Double(row.packets))
                p.add("cilium_forward_bytes_total", [("direction", row.direction)], Double(row.bytes))
            } else {
                p.add("cilium_drop_count_total", [("direction", row.direction), ("reason", row.reason)], Double(row.packets))
                p.add("cilium_drop_bytes_total", [("direction", row.direction), ("reason", row.reason)], Double(row.bytes))
            }
        }
        // What went through cilium_wg0: into it (to be encrypted), out of it (decrypted).
        if let nl = try? Netlink(), let wg = try? nl.statistics(.name("cilium_wg0")) {
            p.family("cilium_wireguard_packets_total", .counter, "Packets through cilium_wg0, by direction: encrypted (sent to a peer) or decrypted (received)")
            p.add("cilium_wireguard_packets_total", [("direction", "encrypted")], Double(wg.txPackets))
            p.add("cilium_wireguard_packets_total", [("direction", "decrypted")], Double(wg.rxPackets))
            p.family("cilium_wireguard_bytes_total", .counter, "Bytes through cilium_wg0, by direction: encrypted or decrypted")
            p.add("cilium_wireguard_bytes_total", [("direction", "encrypted")], Double(wg.txBytes))
            p.add("cilium_wireguard_bytes_total", [("direction", "decrypted")], Double(wg.rxBytes))
        }
        // IPsec: what went through the states the Encryption subsystem made (the datapath's marks, bpf/include/cilium_maps.h).
        let encrypt = UInt32(CILIUM_MARK_ENCRYPT), decrypt = UInt32(CILIUM_MARK_DECRYPT), magicBits: UInt32 = 0xF00
        if let states = try? XFRM().states(), states.contains(where: { [encrypt, decrypt].contains(($0.mark?.value ?? 0) & magicBits) }) {
            p.family("cilium_ipsec_packets_total", .counter, "Packets through the IPsec states, by direction: encrypted (OUT) or decrypted (IN)")
            p.family("cilium_ipsec_bytes_total", .counter, "Bytes through the IPsec states, by direction: encrypted or decrypted")
            for (direction, bits) in [("encrypted", encrypt), ("decrypted", decrypt)] {
                let mine = states.filter { ($0.mark?.value ?? 0) & magicBits == bits }
                p.add("cilium_ipsec_packets_total", [("direction", direction)], Double(mine.reduce(0) { $0 + $1.packets }))
                p.add("cilium_ipsec_bytes_total", [("direction", direction)], Double(mine.reduce(0) { $0 + $1.bytes }))
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
