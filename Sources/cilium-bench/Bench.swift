import Agent
import CBPF
import Datapath
import LinuxNet
import Foundation
import Glibc
import Reconciler

/// `make bench`: the foundation's figures, each next to its target.
/// Not a test: it prints numbers; nothing here passes or fails.
@main
struct Bench {
    static func main() async throws {
        let args = CommandLine.arguments
        let count = args.firstIndex(of: "--objects").flatMap { Int(args[$0 + 1]) } ?? BenchMode.pick(1_000_000, quick: 20_000)
        var rows: [(String, String, String)] = []
        let only = args.firstIndex(of: "--only").map { args[$0 + 1] }
        if let i = args.firstIndex(of: "--scale-inner") {
            // The scale scenario's measuring part, started by ScaleBenchmark.run inside etcd's namespace.
            do { try await ScaleBenchmark.inner(sandbox: args[i + 1], bin: binDirectory()) } catch {
                FileHandle.standardError.write(Data("scale: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        if let i = args.firstIndex(of: "--clustermesh-inner") {
            // The cluster-mesh scale figures' measuring part, started by ClusterMeshBenchmark.scale inside etcd's namespace.
            do { try await ClusterMeshBenchmark.inner(sandbox: args[i + 1], bin: binDirectory()) } catch {
                FileHandle.standardError.write(Data("clustermesh: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        if only == "clustermesh" {
            for (what, result, target) in try ClusterMeshBenchmark.run(bin: binDirectory()) { print(pad(what, 58) + pad(result, 26) + target) }
            return
        }
        if only == "scale" {
            for (what, result, target) in try ScaleBenchmark.run(bin: binDirectory()) { print(pad(what, 58) + pad(result, 26) + target) }
            return
        }
        if only == "servers" {
            for (what, result, target) in try ServerLoadBenchmark.run(bin: binDirectory()) { print(pad(what, 58) + pad(result, 26) + target) }
            return
        }
        if only == "pods" {
            // Only the datapath comparisons (quicker when working on the datapath).
            let bin = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
                .deletingLastPathComponent().path
            rows += try await PodPaths.run(bin: bin, cniLatency: false)
            for (what, result, target) in rows { print(pad(what, 58) + pad(result, 26) + target) }
            return
        }
        if only == "nodes" {
            for (what, result, target) in try CrossNode.run(bin: binDirectory()) { print(pad(what, 58) + pad(result, 26) + target) }
            return
        }
        if only == "wireguard" {
            for (what, result, target) in try WireGuardBenchmark.run(bin: binDirectory()) { print(pad(what, 58) + pad(result, 26) + target) }
            return
        }
        if only == "lb" {
            for (what, result, target) in try await SubsystemRows.loadBalancer(bin: binDirectory()) {
                print(pad(what, 58) + pad(result, 26) + target)
            }
            return
        }
        if only == "hubble" {
            for (what, result, target) in SubsystemRows.hubble() { print(pad(what, 58) + pad(result, 26) + target) }
            return
        }
        if only == "policy" {
            for (what, result, target) in try await SubsystemRows.policy() + BadInputBenchmark.run() {
                print(pad(what, 58) + pad(result, 26) + target)
            }
            return
        }
        if only == "reconciler" {
            // Only the one-change latencies (quicker when working on the reconciler).
            for (what, result, target) in try await changeLatency(tableSize: count, samples: BenchMode.pick(2000, quick: 200))
                    + waitSyncedLatency(tableSize: 10_000, samples: BenchMode.pick(2000, quick: 200)) {
                print(pad(what, 58) + pad(result, 26) + target)
            }
            return
        }
        rows += try await reconcilerThroughput(count: count)
        rows += try await changeLatency(tableSize: count, samples: BenchMode.pick(2000, quick: 200))
        rows += try await waitSyncedLatency(tableSize: 10_000, samples: BenchMode.pick(2000, quick: 200))
        rows += try agentStartup()
        let bin = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
            .deletingLastPathComponent().path
        rows += try await PodPaths.run(bin: bin)
        rows += try CrossNode.run(bin: bin)
        rows += try WireGuardBenchmark.run(bin: bin)
        rows += try ScaleBenchmark.run(bin: bin)
        rows += try ClusterMeshBenchmark.run(bin: bin)
        rows += try await SubsystemRows.policy()
        rows += BadInputBenchmark.run()
        rows += try ServerLoadBenchmark.run(bin: bin)
        rows += try await SubsystemRows.loadBalancer(bin: bin)
        rows += SubsystemRows.hubble(events: BenchMode.pick(1_000_000, quick: 100_000))
        print("")
        print(pad("measure", 58) + pad("result", 26) + "target")
        for (what, result, target) in rows { print(pad(what, 58) + pad(result, 26) + target) }
        let missing = rows.filter { $0.1.hasPrefix("not measured") }
        if !missing.isEmpty {
            print("cilium-bench: \(missing.count) figure(s) not produced: \(missing.map(\.0).joined(separator: "; "))")
            exit(1)
        }
    }

    static func binDirectory() -> String {
        URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
            .deletingLastPathComponent().path
    }

    static func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count + 1), withPad: " ", startingAt: 0) }

    struct Entry: TableObject {
        var id: UInt32
        var value: UInt64
        var key: UInt32 { id }
    }

    typealias MapOps = BPFMapOperations<Entry, UInt32, UInt64>

    static func makeReconciler(_ table: StateTable<Entry>, _ map: BPFMap<UInt32, UInt64>) -> Reconciler<MapOps> {
        var cfg = ReconcilerConfig()
        cfg.refreshInterval = nil
        return Reconciler(name: "bench", table: table,
                          operations: MapOps(map: map, key: { $0.id }, value: { $0.value }), config: cfg)
    }

    static func waitDone(_ r: Reconciler<MapOps>, _ n: Int) async {
        while await r.statusCounts().done < n { await Task.yield() }
    }

    static func reconcilerThroughput(count: Int) async throws -> [(String, String, String)] {
        let map = try BPFMap<UInt32, UInt64>.create(type: BPF_MAP_TYPE_HASH, name: "bench_hash", maxEntries: UInt32(count + count / 5))
        let table = StateTable<Entry>(name: "bench")
        let r = makeReconciler(table, map)
        await r.start()
        let objects = (0..<UInt32(count)).map { Entry(id: $0, value: UInt64($0)) }

        var t = ContinuousClock.now
        await table.upsert(contentsOf: objects)
        await waitDone(r, count)
        let full = ContinuousClock.now - t
        precondition(map.count == count, "map holds \(map.count), expected \(count)")

        // Incremental: a tenth of the objects change.
        let tenth = count / 10
        let before = await r.updatesApplied
        t = .now
        await table.upsert(contentsOf: (0..<UInt32(tenth)).map { Entry(id: $0, value: UInt64($0) + 1) })
        while await r.updatesApplied < before + tenth { await Task.yield() }
        let incr = ContinuousClock.now - t

        // Prune: 100k stale entries appear behind the table's back.
        let stale = (UInt32(count)..<UInt32(count + count / 10)).map { $0 }
        try map.updateBatch(keys: stale, values: stale.map { UInt64($0) })
        let ops = MapOps(map: map, key: { $0.id }, value: { $0.value })
        t = .now
        try await ops.prune(desired: await table.all())
        let prune = ContinuousClock.now - t
        precondition(map.count == count)

        // Full refresh: every object updated again, then pruned.
        t = .now
        await r.refresh()
        let refresh = ContinuousClock.now - t
        await r.stop()

        // For scale: the same writes straight into a fresh map, no tables (the kernel's share).
        let raw = try BPFMap<UInt32, UInt64>.create(type: BPF_MAP_TYPE_HASH, name: "bench_raw", maxEntries: UInt32(count + 1))
        t = .now
        var i = 0
        while i < count {
            let end = min(i + 4096, count)
            try raw.updateBatch(keys: (i..<end).map { UInt32($0) }, values: (i..<end).map { UInt64($0) })
            i = end
        }
        let floor = ContinuousClock.now - t

        func rate(_ n: Int, _ d: Duration) -> String {
            String(format: "%.0f objects/s (%.2f s)", Double(n) / seconds(d), seconds(d))
        }
        return [
            ("reconciler: \(count) objects into a BPF hash map", rate(count, full), "1M in < 2 s"),
            ("  for scale: batch syscalls alone, no reconciler", rate(count, floor), ""),
            ("reconciler: \(tenth) changed objects (incremental)", rate(tenth, incr), ""),
            ("prune: find and delete \(stale.count) stale of \(count + stale.count)", rate(count + stale.count, prune), ""),
            ("full refresh: update \(count) + prune", rate(count, refresh), ""),
        ]
    }

    static func changeLatency(tableSize: Int, samples: Int) async throws -> [(String, String, String)] {
        let map = try BPFMap<UInt32, UInt64>.create(type: BPF_MAP_TYPE_HASH, name: "bench_lat", maxEntries: UInt32(tableSize + 16))
        let table = StateTable<Entry>(name: "lat")
        await table.upsert(contentsOf: (0..<UInt32(tableSize)).map { Entry(id: $0, value: 0) })
        let r = makeReconciler(table, map)
        await r.start()
        await waitDone(r, tableSize)
        var latencies: [Double] = []
        for i in 0..<samples {
            let id = UInt32.random(in: 0..<UInt32(tableSize))
            let value = UInt64(i + 1) << 32 | UInt64(id)
            let t = ContinuousClock.now
            await table.upsert(Entry(id: id, value: value))
            while map.lookup(id) != value { await Task.yield() }
            latencies.append(seconds(ContinuousClock.now - t) * 1e6)
        }
        await r.stop()
        latencies.sort()
        let p50 = latencies[latencies.count / 2], p99 = latencies[latencies.count * 99 / 100]
        return [("one changed object reaches its map (table of \(tableSize))",
                 String(format: "p50 %.0f µs, p99 %.0f µs", p50, p99), "p99 < 1 ms")]
    }

    /// One change as a caller sees it: from the upsert until `waitSynced` returns (the
    /// change is in the map and nothing the table held is failing). A return before the
    /// change reached the map is counted.
    static func waitSyncedLatency(tableSize: Int, samples: Int) async throws -> [(String, String, String)] {
        let what = "one change: upsert to waitSynced return (table of \(tableSize))"
        let target = "p99 < 1 ms"
        let map = try BPFMap<UInt32, UInt64>.create(type: BPF_MAP_TYPE_HASH, name: "bench_wait", maxEntries: UInt32(tableSize + 16))
        let table = StateTable<Entry>(name: "wait")
        await table.upsert(contentsOf: (0..<UInt32(tableSize)).map { Entry(id: $0, value: 0) })
        let r = makeReconciler(table, map)
        await r.start()
        let result = await measureWaitSynced(r, table, map, tableSize: tableSize, samples: samples)
        await r.stop()
        return [(what, result, target)]
    }

    private static func measureWaitSynced(_ r: Reconciler<MapOps>, _ table: StateTable<Entry>, _ map: BPFMap<UInt32, UInt64>,
                                          tableSize: Int, samples: Int) async -> String {
        guard await r.waitSynced(timeout: .seconds(60)) else { return "not measured: the table did not sync" }
        var latencies: [Double] = []
        latencies.reserveCapacity(samples)
        var early = 0
        for i in 0..<samples {
            let id = UInt32.random(in: 0..<UInt32(tableSize))
            let value = UInt64(i + 1) << 32 | UInt64(id)
            let t = ContinuousClock.now
            await table.upsert(Entry(id: id, value: value))
            guard await r.waitSynced(timeout: .seconds(10)) else { return "not measured: change \(i) did not sync" }
            latencies.append(seconds(ContinuousClock.now - t) * 1e6)
            if map.lookup(id) != value { early += 1 }
        }
        latencies.sort()
        let p50 = latencies[latencies.count / 2], p99 = latencies[latencies.count * 99 / 100]
        return String(format: "p50 %.0f µs, p99 %.0f µs (%d changes", p50, p99, samples)
            + (early > 0 ? ", \(early) returned before theirs was in the map)" : ")")
    }

    static func agentStartup() throws -> [(String, String, String)] {
        let bin = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
            .deletingLastPathComponent().path
        let agent = try BenchAgent(bin: bin)
        defer { agent.remove() }
        let coldMS = try agent.start()
        Thread.sleep(forTimeInterval: 3)
        let rss = rssMB(String(agent.pid))
        let anon = rssMB(String(agent.pid), "RssAnon:")
        agent.stop(SIGKILL)
        let warmMS = try agent.start()
        agent.stop(SIGTERM)
        return [
            ("agent start to READY, cold (new pins)", String(format: "%.0f ms", coldMS), "< 1 s"),
            ("agent start to READY, adopting pins after kill -9", String(format: "%.0f ms", warmMS), "< 1 s"),
            ("agent idle RSS (3 s after READY)", String(format: "%.1f MB (%.1f MB anonymous)", rss, anon), "< 30 MB"),
        ]
    }

    /// A memory figure of a process from /proc/PID/status (VmRSS, RssAnon, VmHWM...), MB.
    static func rssMB(_ pid: String, _ field: String = "VmRSS:") -> Double {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix(field) } ?? ""
        return Double(line.split(separator: " ").dropFirst().first ?? "0").map { $0 / 1024 } ?? 0
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
