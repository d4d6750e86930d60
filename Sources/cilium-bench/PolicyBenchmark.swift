#if canImport(Policy)
import Policy
import Manifests
import CBPF
import Datapath
import Foundation
import Reconciler

/// Policy figures for `make bench` (cilium-bench calls this; nothing here is
/// used by the agent). Synthetic cluster: 10,000 identities (1,000 apps x 10
/// versions, 50 teams, 20 namespaces), 1,000 endpoints (one per app), 500
/// rules (ingress from a team on two ports, egress to one app, one deny).
public enum PolicyBenchmark {
    public typealias Row = (measure: String, result: String, target: String)

    static func identityLabels(_ i: Int) -> [String] {
        let app = i / 10
        return ["k8s:app=app\(app)", "k8s:version=v\(i % 10)", "k8s:team=team\(app % 50)",
                "k8s:io.kubernetes.pod.namespace=ns\(app % 20)"]
    }

    static func policies() -> [Policy] {
        (0..<500).map { k in
            let app = (k * 2) % 1000
            let ns = "ns\(app % 20)"
            return Policy(kind: .namespaced, name: "rule\(k)", namespace: ns, specs: [PolicySpec(
                endpointSelector: LabelSelector(matchLabels: ["app": "app\(app)"]),
                // From a team in any namespace (naming the namespace key lifts the policy's own scope).
                ingress: [PeerRule(endpoints: [LabelSelector(matchLabels: ["team": "team\(k % 50)"],
                                                             matchExpressions: [.init(key: LabelSelector.namespaceKey, op: .exists)])],
                                   ports: [PortProtocol(port: 80, proto: .tcp), PortProtocol(port: 443, proto: .tcp)])],
                ingressDeny: [PeerRule(endpoints: [LabelSelector(matchLabels: ["app": "app\((app + 20) % 1000)", "version": "v9"])])],
                egress: [PeerRule(endpoints: [LabelSelector(matchLabels: ["app": "app\((k * 7) % 1000)"])],
                                  ports: [PortProtocol(port: 5432, proto: .tcp)])])])
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    public static func run() async throws -> [Row] {
        // The datapath figure first, while nothing else is running.
        var rows: [Row] = try await stageCost()
        // Full computation from nothing: identities, endpoints, then every rule.
        var repo = PolicyRepository()
        repo.apply(policies())
        var resolver = PolicyResolver()
        let t0 = ContinuousClock.now
        for i in 0..<10_000 { _ = resolver.upsertIdentity(UInt32(256 + i), labels: identityLabels(i)) }
        for e in 0..<1000 { _ = resolver.upsertEndpoint(UInt16(e + 1), labels: identityLabels(e * 10)) }
        let (specs, _) = repo.compile()
        let delta = resolver.setSpecs(specs)
        let full = ContinuousClock.now - t0
        let entries = delta.upserts.count
        rows.append(("policy: full computation (1000 endpoints, 10000 ids, 500 rules)",
                     String(format: "%.0f ms, %d entries", seconds(full) * 1000, entries), "< 1 s"))

        // Into a real LPM map through the reconciler; then one new identity.
        let map = try BPFMap<policy_key, policy_entry>.create(type: BPF_MAP_TYPE_LPM_TRIE, name: "bench_policy",
                                                              maxEntries: 1 << 20, flags: UInt32(BPF_F_NO_PREALLOC))
        let table = StateTable<PolicyMapEntry>(name: "bench-policy")
        var cfg = ReconcilerConfig()
        cfg.refreshInterval = nil
        let r = Reconciler(name: "bench-policy", table: table, operations: PolicyMapOperations(map: map), config: cfg)
        await r.start()
        let t1 = ContinuousClock.now
        await table.upsert(contentsOf: delta.upserts)
        while await r.statusCounts().done < entries { try await Task.sleep(for: .milliseconds(1)) }
        let load = ContinuousClock.now - t1
        rows.append(("policy: \(entries) entries into the BPF LPM map (reconciler)",
                     String(format: "%.2f s", seconds(load)), ""))

        var samples: [Double] = []
        var touched = 0
        for n in 0..<50 {
            // A new version of an app whose team some rules allow.
            let id = UInt32(20_000 + n)
            let labels = ["k8s:app=app\(n * 3)", "k8s:version=new\(n)", "k8s:team=team\(n % 50)",
                          "k8s:io.kubernetes.pod.namespace=ns\((n * 3) % 20)"]
            let before = await r.statusCounts().done
            let t = ContinuousClock.now
            let d = resolver.upsertIdentity(id, labels: labels)
            await table.upsert(contentsOf: d.upserts)
            while await r.statusCounts().done < before + d.upserts.count { await Task.yield() }
            samples.append(seconds(ContinuousClock.now - t) * 1000)
            touched += d.upserts.count
        }
        await r.stop()
        samples.sort()
        rows.append(("policy: new identity -> affected entries in the map (50 runs)",
                     String(format: "p50 %.2f ms, max %.2f ms (%d entries each)", samples[samples.count / 2], samples.last!, touched / 50),
                     "< 10 ms"))
        return rows
    }

    /// ns per packet through the entry program with and without the policy stage.
    static func stageCost() async throws -> [Row] {
        let root = "/sys/fs/bpf/cilium-bench-policy-\(getpid())"
        try BPFFS.prepare(root: root)
        defer { BPFFS.removeTree(root) }
        let entry = try BPFObject(embedded: "entry", pinRoot: root)
        let stage = try BPFObject(embedded: "policy", pinRoot: root)
        let from = try await entry.program("cil_from_container")
        let lxc: BPFMap<endpoint_key, endpoint_value> = try await entry.map("cilium_lxc")
        let ipcache: BPFMap<ipcache_key, ipcache_value> = try await entry.map("cilium_ipcache")
        func be(_ a: UInt32) -> UInt32 { a.bigEndian }
        let client: UInt32 = 0x0A00_0005, server: UInt32 = 0x0A00_0007
        for (addr, ep, id) in [(client, UInt16(5), UInt32(1000)), (server, UInt16(7), UInt32(1002))] {
            var v = endpoint_value()
            v.endpoint_id = ep
            v.identity = id
            try lxc.update(endpoint_key(addr: be(addr)), v)
            var i = ipcache_value()
            i.identity = id
            try ipcache.update(ipcache_key(prefixlen: 32, addr: be(addr)), i)
        }
        let policy = try BPFMap<policy_key, policy_entry>(pinned: root + "/cilium_policy")
        let eps = try BPFMap<UInt16, policy_ep_value>(pinned: root + "/cilium_policy_ep")
        // 10,000 entries on the server: 5,000 identities x two ports, the client's among them.
        var keys: [policy_key] = [], values: [policy_entry] = []
        for i in 0..<5000 {
            for port: UInt16 in [80, 443] {
                let e = PolicyMapEntry(key: .init(endpoint: 7, direction: UInt8(CILIUM_DIR_INGRESS.rawValue),
                                                  identity: UInt32(1000 + i), proto: 6,
                                                  prefixLength: UInt8(CILIUM_POLICY_PREFIX_FULL), port: port),
                                       deny: false, ruleID: 1)
                keys.append(e.key.mapKey)
                values.append(e.mapValue)
            }
        }
        for (k, v) in zip(keys, values) { try policy.update(k, v) }
        let flags = CILIUM_POLICY_F_INGRESS.rawValue | CILIUM_POLICY_F_INGRESS_ENTRIES.rawValue
        try eps.update(7, policy_ep_value(flags: flags, revision: 1))

        func packet(dport: UInt16) -> [UInt8] {
            var eth: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0]
            var ip: [UInt8] = [0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]
            for a in [client, server] { ip += [UInt8(a >> 24), UInt8((a >> 16) & 0xff), UInt8((a >> 8) & 0xff), UInt8(a & 0xff)] }
            let tcp: [UInt8] = [0x9c, 0x40, UInt8(dport >> 8), UInt8(dport & 0xff), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]
            eth += ip + tcp
            return eth
        }
        let repeats = 200_000
        let calls = try ProgramArray(pinned: root + "/cilium_calls")
        // Best of three, each with the stage and without it (the entry program alone).
        let stageProgram = try await stage.program("cil_stage_policy")
        func measure(_ dport: UInt16, staged: Bool) throws -> (UInt32, UInt32) {
            if staged { try calls.set(slot: CILIUM_STAGE_POLICY.rawValue, program: stageProgram) }
            else { calls.clear(slot: CILIUM_STAGE_POLICY.rawValue) }
            var best = UInt32.max, verdict: UInt32 = 0
            for _ in 0..<3 {
                let r = try from.testRun(packet: packet(dport: dport), repeat: repeats)
                best = min(best, r.durationNs)
                verdict = r.returnValue
            }
            return (best, verdict)
        }
        let (base, _) = try measure(80, staged: false)
        let (allowed, okVerdict) = try measure(80, staged: true)
        let (denied, dropVerdict) = try measure(8080, staged: true)
        await stage.close()
        await entry.close()
        return [
            ("policy stage per packet, allowed (10000-entry map)",
             "\(Int(allowed) - Int(base)) ns (\(allowed) vs \(base) ns, verdict \(okVerdict))", ""),
            ("policy stage per packet, denied (10000-entry map)",
             "\(Int(denied) - Int(base)) ns (\(denied) vs \(base) ns, verdict \(dropVerdict))", ""),
        ]
    }
}
#endif
