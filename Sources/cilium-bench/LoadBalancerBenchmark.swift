#if canImport(LoadBalancer)
import LoadBalancer
import Manifests
import CBPF
import Datapath
import Foundation
import Reconciler

/// Load-balancer figures for `make bench` (cilium-bench calls this; the agent
/// does not): programming 10,000 services x 10 backends into real BPF maps
/// through the same resolver and reconcilers the agent uses, and Maglev
/// table builds.
public enum LoadBalancerBenchmark {
    public typealias Row = (measure: String, result: String, target: String)

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// The frontends of the programming benchmark: `count` ClusterIPs (10.96.0.0 up) with `backends`
    /// backend addresses each (10.1.0.0 up), port 80 -> 8080. cilium-bench writes the same services as
    /// kube-proxy's nftables ruleset to compare.
    public static func frontends(count: Int, backends: Int) -> [(vip: String, backends: [String])] {
        (0..<count).map { i in
            ("10.\(96 + i / 65536).\((i / 256) % 256).\(i % 256)",
             (0..<backends).map { b in
                 let n = i * backends + b
                 return "10.\(1 + n / 65536).\((n / 256) % 256).\(n % 256)"
             })
        }
    }

    /// `count` ClusterIP services with `backends` backends each (EndpointSlices).
    static func manifests(count: Int, backends: Int) -> ([ServiceManifest], [EndpointSliceManifest]) {
        var services: [ServiceManifest] = [], slices: [EndpointSliceManifest] = []
        for (i, f) in frontends(count: count, backends: backends).enumerated() {
            services.append(ServiceManifest(name: "svc\(i)", clusterIP: f.vip, ports: [ServicePortSpec(name: "http", port: 80, targetPort: .number(8080))]))
            slices.append(EndpointSliceManifest(name: "svc\(i)-1", serviceName: "svc\(i)", ports: [.init(name: "http", port: 8080)],
                                                endpoints: f.backends.map { .init(addresses: [$0]) }))
        }
        return (services, slices)
    }

    /// Seconds to program `count` services x `backends` backends into real BPF maps through the
    /// agent's resolver and reconcilers, from manifests to the last map write; and the resolver's share.
    public static func programServices(count: Int = 10_000, backends perService: Int = 10) async throws -> (total: Double, resolve: Double) {
        let (services, slices) = manifests(count: count, backends: perService)
        var cfg = ReconcilerConfig()
        cfg.refreshInterval = nil
        let slotMap = try BPFMap<lb4_key, lb4_service>.create(type: BPF_MAP_TYPE_HASH, name: "bench_lb_svc", maxEntries: 262_144)
        let backendMap = try BPFMap<UInt32, lb4_backend>.create(type: BPF_MAP_TYPE_HASH, name: "bench_lb_be", maxEntries: 262_144)
        let natMap = try BPFMap<UInt16, lb4_reverse_nat>.create(type: BPF_MAP_TYPE_HASH, name: "bench_lb_nat", maxEntries: 65_535)
        let slots = StateTable<FrontendSlot>(name: "bench-slots"), backends = StateTable<BackendEntry>(name: "bench-backends")
        let nat = StateTable<ReverseNATEntry>(name: "bench-nat")
        let rs = Reconciler(name: "s", table: slots, operations: BPFMapOperations(map: slotMap, key: { $0.mapKey }, value: { $0.mapValue }), config: cfg)
        let rb = Reconciler(name: "b", table: backends, operations: BPFMapOperations(map: backendMap, key: { $0.id }, value: { $0.mapValue }), config: cfg)
        let rn = Reconciler(name: "n", table: nat, operations: BPFMapOperations(map: natMap, key: { $0.id }, value: { $0.mapValue }), config: cfg)
        await rs.start()
        await rb.start()
        await rn.start()

        let t0 = ContinuousClock.now
        var resolver = ServiceResolver()
        let out = resolver.resolve(services: services, slices: slices, workloads: [], now: 0)
        let resolved = ContinuousClock.now - t0
        await backends.replaceChanged(out.backends)
        await nat.replaceChanged(out.reverseNAT)
        await slots.replaceChanged(out.slots)
        while true {
            let s = await rs.statusCounts().done, b = await rb.statusCounts().done, n = await rn.statusCounts().done
            if s >= out.slots.count && b >= out.backends.count && n >= out.reverseNAT.count { break }
            try await Task.sleep(for: .milliseconds(1))
        }
        let total = ContinuousClock.now - t0
        await rs.stop()
        await rb.stop()
        await rn.stop()
        precondition(slotMap.count == count * (perService + 1) && backendMap.count == count * perService,
                     "maps hold \(slotMap.count) slots, \(backendMap.count) backends")
        return (seconds(total), seconds(resolved))
    }

    /// Maglev table builds and disruption (the programming figure is `programServices`).
    public static func run() async throws -> [Row] {
        var rows: [Row] = []
        // Maglev: a 16381-slot table for 1,000 backends, and the disruption of removing one.
        let many = (0..<1000).map { MaglevTable.Backend(id: UInt32($0 + 1), key: "10.1.\($0 / 256).\($0 % 256):8080", weight: 1) }
        let seed = MaglevTable.seed(fromClusterName: "bench")
        var best = Double.infinity
        for _ in 0..<5 {
            let t = ContinuousClock.now
            let table = MaglevTable.build(many, size: 16381, seed: seed)
            best = min(best, seconds(ContinuousClock.now - t))
            precondition(table.count == 16381)
        }
        rows.append(("LB: Maglev table, 16381 slots for 1000 backends", String(format: "%.1f ms", best * 1000), ""))
        let small = Array(many.prefix(100))
        let before = MaglevTable.build(small, size: 16381, seed: seed)
        let after = MaglevTable.build(Array(small.dropFirst()), size: 16381, seed: seed)
        let others = zip(before, after).filter { $0.0 != 1 }
        let moved = others.filter { $0.0 != $0.1 }.count
        rows.append(("LB: Maglev, one of 100 backends removed (M=16381): other slots moved",
                     String(format: "%.2f%%", Double(moved) * 100 / Double(others.count)), "<= 3%"))
        return rows
    }
}
#endif
