import CBPF
import Datapath
import KVStore
import Foundation
import Glibc

/// The control plane at scale: a two-node sandbox (`kubeProxyReplacement=true`) whose etcd
/// gets, in the project's record format, the endpoints, identities and node records of 50
/// nodes that do not exist; then 10,000 services x 10 backends. Node1's agent is watched
/// from the outside: its BPF ipcache (the pin), its CPU time and RSS (/proc), its map writes
/// (its Prometheus metrics) and its state files (mtimes).
///
/// The measuring part runs inside the sandbox's etcd namespace (a second cilium-bench
/// process under nsenter), so that it reaches etcd without any route from the machine's
/// own namespace; pins, /proc and the agents' unix sockets are the same from there.
enum ScaleBenchmark {
    typealias Row = (String, String, String)

    struct Sizes {
        var nodes: Int, identities: Int, endpoints: Int, services: Int, events: Int, churn: Int
        static var current: Sizes {
            BenchMode.pick(Sizes(nodes: 50, identities: 1000, endpoints: 15_000, services: 10_000, events: 200, churn: 1000),
                           quick: Sizes(nodes: 10, identities: 100, endpoints: 1500, services: 1000, events: 20, churn: 100))
        }
    }

    /// Builds the sandbox, runs the measuring part in etcd's namespace, removes the sandbox.
    static func run(bin: String) throws -> [Row] {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = "sc\(tag.prefix(6))"
        // CILIUM_BENCH_KEEP=1 leaves the sandbox up, to look into it (`cilium-sandbox down --name NAME` removes it).
        let keep = ProcessInfo.processInfo.environment["CILIUM_BENCH_KEEP"] == "1"
        defer {
            if keep { FileHandle.standardError.write(Data("scale: sandbox \(sandbox) kept\n".utf8)) }
            else { _ = PodPaths.shell([bin + "/cilium-sandbox", "down", "--name", sandbox]) }
        }
        let up = PodPaths.shell([bin + "/cilium-sandbox", "up", "--name", sandbox, "--nodes", "2",
                                 "--set", "kubeProxyReplacement=true", "--set", "prometheus.enabled=true"])
        guard up.0 == 0 else { throw BenchError("cannot build the scale sandbox: \(up.1)") }
        let (rows, status) = try measureInside(sandbox: sandbox, bin: bin, flag: "--scale-inner")
        guard status == 0 else {
            return rows + [("scale scenario", "not measured: the measuring process failed (\(status))", "")]
        }
        return rows
    }

    /// Runs cilium-bench's measuring part (`flag SANDBOX`) inside the sandbox's etcd namespace and reads the rows it
    /// emits (`emit`), with its exit status.
    static func measureInside(sandbox: String, bin: String, flag: String) throws -> (rows: [Row], status: Int32) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        p.arguments = ["--net=/run/netns/csbx-\(sandbox)-etcd", bin + "/cilium-bench", flag, sandbox] + (BenchMode.quick ? ["--quick"] : [])
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let rows: [Row] = out.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return f.count == 4 && f[0] == "row" ? (f[1], f[2], f[3]) : nil
        }
        return (rows, p.terminationStatus)
    }

    // MARK: The measuring part (in etcd's namespace)

    /// What the measuring part knows of the sandbox's node1.
    struct Node {
        var sandbox: String
        var pid: Int32
        var stateDir: String
        var ipcachePin: String
        var namespace: String

        static func load(_ sandbox: String, bin: String) throws -> Node {
            struct S: Decodable {
                struct N: Decodable { var name: String; var socket: String; var pid: Int32?; var namespace: String }
                var nodes: [N]
            }
            let st = try JSONDecoder().decode(S.self, from: Data(PodPaths.shell([bin + "/cilium-sandbox", "status", "--name", sandbox, "-o", "json"]).1.utf8))
            guard let n = st.nodes.first, let pid = n.pid else { throw BenchError("node1 of \(sandbox) has no agent") }
            return Node(sandbox: sandbox, pid: pid, stateDir: (n.socket as NSString).deletingLastPathComponent + "/state",
                        ipcachePin: "/sys/fs/bpf/csbx-\(sandbox)-\(n.name)/cilium_ipcache", namespace: n.namespace)
        }

        /// User + system CPU seconds of the agent.
        var cpu: Double {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return 0 }
            let f = stat[stat.index(after: close)...].split(separator: " ")
            guard f.count > 12, let u = Double(f[11]), let s = Double(f[12]) else { return 0 }
            return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }

        var rssMB: Double { Bench.rssMB(String(pid)) }

        /// The pinned ipcache, opened again each time (a restarted agent may have replaced it).
        func ipcache() -> BPFMap<ipcache_key, ipcache_value>? { try? BPFMap(pinned: ipcachePin) }

        /// Updates and deletes on every BPF map, from the agent's own counters.
        func mapWrites() -> Int? {
            let r = PodPaths.shell(["nsenter", "--net=/run/netns/\(namespace)", "curl", "-sf", "-m", "5", "http://127.0.0.1:9962/metrics"])
            guard r.0 == 0 else { return nil }
            var total = 0.0
            for line in r.1.split(separator: "\n") where line.hasPrefix("cilium_bpf_map_ops_total{")
                && !line.contains("operation=\"lookup\"") {
                total += Double(line.split(separator: " ").last ?? "0") ?? 0
            }
            return Int(total)
        }

        /// Every file under the agent's state directory with its modification time.
        func stateFiles() -> [String: Date] {
            var out: [String: Date] = [:]
            let fm = FileManager.default
            for case let rel as String in fm.enumerator(atPath: stateDir) ?? NSEnumerator() {
                let path = stateDir + "/" + rel
                if let a = try? fm.attributesOfItem(atPath: path), a[.type] as? FileAttributeType == .typeRegular {
                    out[path] = a[.modificationDate] as? Date
                }
            }
            return out
        }
    }

    /// The generated cluster: remote nodes with /23 pod CIDRs in 10.200.0.0/16, identities
    /// 50000+ (app=scale-N), endpoints spread over the nodes.
    struct Cluster {
        let sizes: Sizes
        static let firstIdentity = 50_000

        func nodeName(_ k: Int) -> String { "scale-node-\(k)" }
        func nodeAddress(_ k: Int) -> String { "172.31.\(k / 250).\(k % 250 + 1)" }
        /// The m-th address of node k's /23 (after the network and router addresses).
        func address(node k: Int, _ m: Int) -> UInt32 { (10 << 24 | 200 << 16) + UInt32(k * 512 + 2 + m) }
        func podCIDR(_ k: Int) -> String { text(address(node: k, -2)) + "/23" }
        var perNode: Int { sizes.endpoints / sizes.nodes }
        /// Endpoint j: its node, address and identity.
        func endpoint(_ j: Int) -> (node: Int, address: UInt32, identity: Int) {
            (j % sizes.nodes, address(node: j % sizes.nodes, j / sizes.nodes), Self.firstIdentity + j % sizes.identities)
        }

        func text(_ a: UInt32) -> String { "\(a >> 24).\(a >> 16 & 255).\(a >> 8 & 255).\(a & 255)" }

        func record(_ address: UInt32, node k: Int, identity: Int, name: String) -> (key: String, value: Data?) {
            (KVKeys.ip(text(address)),
             try? JSONEncoder().encode(IPIdentityPair(ip: text(address), hostIP: nodeAddress(k), id: UInt32(identity),
                                                      namespace: "scale", podName: name)))
        }

        /// Everything, in the order a cluster fills up: nodes, identities, endpoints.
        func all(cluster: String) -> [(key: String, value: Data?)] {
            var out: [(key: String, value: Data?)] = []
            for k in 0..<sizes.nodes {
                out.append((KVKeys.node(cluster: cluster, name: nodeName(k)),
                            try? JSONEncoder().encode(KVNode(name: nodeName(k), cluster: cluster, clusterID: 0,
                                                             address: nodeAddress(k), podCIDR: podCIDR(k)))))
            }
            for i in 0..<sizes.identities {
                let labels = ["k8s:app=scale-\(i)", "k8s:io.kubernetes.pod.namespace=scale"]
                out.append((KVKeys.identity(Self.firstIdentity + i), Data(KVKeys.labelList(labels).utf8)))
                out.append((KVKeys.identityByLabels(labels), Data(String(Self.firstIdentity + i).utf8)))
            }
            for j in 0..<sizes.endpoints {
                let e = endpoint(j)
                out.append(record(e.address, node: e.node, identity: e.identity, name: "scale-\(j)"))
            }
            return out
        }
    }

    static func emit(_ rows: inout [Row], _ row: Row) {
        FileHandle.standardOutput.write(Data("row\t\(row.0)\t\(row.1)\t\(row.2)\n".utf8))
        rows.append(row)
    }

    static func progress(_ s: String) {
        FileHandle.standardError.write(Data("scale: \(s)\n".utf8))
    }

    static func now() -> Double { Bench.seconds(ContinuousClock.now - start) }
    static let start = ContinuousClock.now

    static func key(_ a: UInt32) -> ipcache_key { ipcache_key(prefixlen: 32, addr: a.bigEndian) }

    /// Waits until `done` holds (checked every `every` seconds) or `timeout` passes; the time it took, or nil.
    static func until(timeout: Double, every: Double = 0.005, _ done: () -> Bool) -> Double? {
        let t0 = now()
        while now() - t0 < timeout {
            if done() { return now() - t0 }
            usleep(UInt32(every * 1e6))
        }
        return nil
    }

    /// Waits until the agent uses less than 2% of a core over a whole second; seconds waited.
    static func untilIdle(_ node: Node, timeout: Double) -> Double? {
        let t0 = now()
        var last = node.cpu, lastT = now()
        while now() - t0 < timeout {
            usleep(1_000_000)
            let c = node.cpu, t = now()
            if (c - last) / (t - lastT) < 0.02 { return lastT - t0 }
            last = c
            lastT = t
        }
        return nil
    }

    static func percentile(_ v: [Double], _ p: Int) -> Double {
        let s = v.sorted()
        return s.isEmpty ? .nan : s[min(s.count - 1, s.count * p / 100)]
    }

    static func inner(sandbox: String, bin: String) async throws {
        let sizes = Sizes.current, gen = Cluster(sizes: sizes)
        var node = try Node.load(sandbox, bin: bin)
        let store = try EtcdKVStore(endpoints: ["http://172.30.0.2:2379"], timeout: .seconds(10))
        var rows: [Row] = []
        let e = sizes.endpoints

        // 1. The bulk write: every key, 128 to a transaction, as fast as etcd takes them.
        guard let map = node.ipcache() else { throw BenchError("no ipcache pin at \(node.ipcachePin)") }
        let base = map.count
        let expected = base + e + 2 * sizes.nodes
        let everything = gen.all(cluster: sandbox)
        progress("writing \(everything.count) keys (\(e) endpoints, \(sizes.identities) identities, \(sizes.nodes) nodes)")
        let cpu0 = node.cpu, t0 = now()
        for batch in stride(from: 0, to: everything.count, by: 128) {
            try await store.write(batch: Array(everything[batch..<min(batch + 128, everything.count)]))
        }
        let written = now()
        guard until(timeout: 120, every: 0.05, { map.count >= expected }) != nil else {
            throw BenchError("node1's ipcache has \(map.count) of \(expected) entries 120 s after the bulk write")
        }
        let synced = now()
        let idle = untilIdle(node, timeout: 120)
        emit(&rows, ("scale: \(e) endpoints (\(everything.count) keys) written to etcd -> node1's BPF ipcache",
                     String(format: "%.2f s (%.2f s after the last write; writing took %.2f s)", synced - t0, synced - written, written - t0), ""))
        emit(&rows, ("scale: agent idle again after that bulk write",
                     idle.map { String(format: "%.1f s after the last write (%.2f CPU-s in all)", $0 + (synced - written), node.cpu - cpu0) }
                        ?? "not measured: still busy 120 s later", "< 10 s"))
        emit(&rows, ("scale: RSS at \(e) endpoints", String(format: "%.1f MB", node.rssMB), ""))

        // 2. One event at a time: an endpoint changes identity.
        func singleEvents(_ count: Int, salt: Int) async throws -> (cpuMS: Double, p50: Double, p99: Double) {
            let idleCPU = node.cpu, idleT = now()
            usleep(2_000_000)
            let idleRate = (node.cpu - idleCPU) / (now() - idleT)
            let c0 = node.cpu, w0 = now()
            var latencies: [Double] = []
            for i in 0..<count {
                let j = (i * 7919 + salt) % e
                let ep = gen.endpoint(j)
                let identity = Cluster.firstIdentity + (ep.identity - Cluster.firstIdentity + 1 + salt + i) % sizes.identities
                let r = gen.record(ep.address, node: ep.node, identity: identity, name: "scale-\(j)")
                try await store.write(batch: [r])
                let t = now()
                guard until(timeout: 10, every: 0.0005, { map.lookup(key(ep.address))?.identity == UInt32(identity) }) != nil else {
                    throw BenchError("an identity change of \(gen.text(ep.address)) did not reach node1's ipcache in 10 s")
                }
                latencies.append((now() - t) * 1000)
                usleep(50_000) // the next event is not part of the same burst
            }
            let cpu = (node.cpu - c0) - idleRate * (now() - w0)
            return (max(0, cpu) / Double(count) * 1000, percentile(latencies, 50), percentile(latencies, 99))
        }
        progress("\(sizes.events) single events")
        let single = try await singleEvents(sizes.events, salt: 0)
        emit(&rows, ("scale: CPU per kvstore event at \(e) endpoints",
                     String(format: "%.2f ms (%d events; to the map p50 %.0f ms, p99 %.0f ms)", single.cpuMS, sizes.events, single.p50, single.p99),
                     "< 1 ms"))

        // 3. A no-op event: an endpoint's record put again, byte for byte.
        func noop() async throws -> String {
            guard let w0 = node.mapWrites() else { return "not measured: node1's metrics do not answer" }
            let files = node.stateFiles(), c0 = node.cpu
            let ep = gen.endpoint(e / 2)
            let current = try await store.get(KVKeys.ip(gen.text(ep.address)))
            guard let value = current?.value else { return "not measured: endpoint record missing" }
            try await store.write(batch: [(KVKeys.ip(gen.text(ep.address)), value)])
            usleep(1_500_000)
            guard let w1 = node.mapWrites() else { return "not measured: node1's metrics do not answer" }
            let changed = node.stateFiles().filter { files[$0.key] != $0.value }.map { ($0.key as NSString).lastPathComponent }
            return "\(w1 - w0) BPF map writes, \(changed.count) files written\(changed.isEmpty ? "" : " (\(changed.sorted().joined(separator: ", ")))")"
                + String(format: ", %.0f ms CPU in 1.5 s", (node.cpu - c0) * 1000)
        }
        emit(&rows, ("scale: a no-op kvstore event (same value put again)", try await noop(), "no map write, no file write"))

        // 4. Churn: 1,000 endpoints go, 1,000 new ones come, in one burst.
        progress("churn of \(sizes.churn) endpoints")
        do {
            var ops: [(key: String, value: Data?)] = []
            var expect: [(address: UInt32, identity: UInt32?)] = []
            for i in 0..<sizes.churn {
                let gone = gen.endpoint(e - 1 - i * 3 % e)
                ops.append((KVKeys.ip(gen.text(gone.address)), nil))
                expect.append((gone.address, nil))
                let k = i % sizes.nodes, m = gen.perNode + 1 + i / sizes.nodes
                let identity = Cluster.firstIdentity + i % sizes.identities
                ops.append(gen.record(gen.address(node: k, m), node: k, identity: identity, name: "churn-\(i)"))
                expect.append((gen.address(node: k, m), UInt32(identity)))
            }
            var writtenAt = [Double](repeating: 0, count: ops.count)
            for b in stride(from: 0, to: ops.count, by: 128) {
                try await store.write(batch: Array(ops[b..<min(b + 128, ops.count)]))
                let t = now()
                for i in b..<min(b + 128, ops.count) { writtenAt[i] = t }
            }
            var seen = [Double?](repeating: nil, count: ops.count)
            _ = until(timeout: 30, every: 0.001) {
                let t = now()
                for (i, x) in expect.enumerated() where seen[i] == nil {
                    let v = map.lookup(key(x.address))
                    // A gone endpoint's address falls back to its node's pod CIDR entry.
                    let there = x.identity.map { v?.identity == $0 } ?? (v == nil || v!.identity < 256)
                    if there { seen[i] = (t - writtenAt[i]) * 1000 }
                }
                return !seen.contains { $0 == nil }
            }
            let ms = seen.compactMap { $0 }
            emit(&rows, ("scale: churn of +-\(sizes.churn) endpoints, each to node1's BPF ipcache",
                         ms.count == seen.count ? String(format: "p50 %.0f ms, p99 %.0f ms", percentile(ms, 50), percentile(ms, 99))
                                                : "not measured: \(seen.count - ms.count) of \(seen.count) never arrived", "p99 < 500 ms"))
        }

        // 5. Services: 10,000 x 10 backends (the endpoints), through `cilium service apply`.
        progress("\(sizes.services) services")
        let dir = NSTemporaryDirectory() + "cilium-bench-scale-\(sandbox)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #if canImport(LoadBalancer)
        let services = (0..<sizes.services).map { i in
            ServiceConnections.Service(vip: "10.\(96 + i / 65536).\((i / 256) % 256).\(i % 256)",
                                       backends: (0..<10).map { gen.text(gen.endpoint((i * 10 + $0) % e).address) + ":8080" })
        }
        try ServiceConnections.manifests(services).write(toFile: dir + "/svc.json", atomically: true, encoding: .utf8)
        let a0 = now()
        let applied = PodPaths.shell([bin + "/cilium-sandbox", "cilium", "--name", sandbox, "node1", "--", "service", "apply", "-f", dir + "/svc.json"])
        guard applied.0 == 0 else { throw BenchError("service apply failed: \(applied.1.suffix(500))") }
        let applyTime = now() - a0
        _ = untilIdle(node, timeout: 60)
        emit(&rows, ("scale: RSS at \(e) endpoints + \(sizes.services) services x 10 backends",
                     String(format: "%.1f MB (services applied in %.2f s)", node.rssMB, applyTime), "< 150 MB"))
        progress("single events with services")
        let withServices = try await singleEvents(max(10, sizes.events / 4), salt: 1)
        emit(&rows, ("scale: CPU per kvstore event, with the services",
                     String(format: "%.2f ms (%d events; to the map p50 %.0f ms)", withServices.cpuMS, max(10, sizes.events / 4), withServices.p50),
                     "< 1 ms"))
        emit(&rows, ("scale: a no-op kvstore event, with the services", try await noop(), "no map write, no file write"))
        #endif

        // 6. Restarts: graceful and kill -9, the ipcache sampled every 50 ms meanwhile.
        for kill in [false, true] {
            progress("restart\(kill ? " --kill" : "")")
            let full = node.ipcache()?.count ?? 0
            let sampler = Sampler(node: node)
            let r0 = now()
            let r = PodPaths.shell([bin + "/cilium-sandbox", "agent", "--name", sandbox, "node1", "restart"] + (kill ? ["--kill"] : []))
            let wall = now() - r0
            usleep(1_000_000)
            let minimum = sampler.stop()
            guard r.0 == 0, let ready = r.1.range(of: #"READY in \d+ ms"#, options: .regularExpression) else {
                throw BenchError("agent restart failed: \(r.1.suffix(500))")
            }
            node = try Node.load(sandbox, bin: bin)
            emit(&rows, ("scale: agent restart (\(kill ? "kill -9" : "graceful")) to READY, \(sizes.services) services",
                         "\(r.1[ready].dropFirst(6)) from start" + String(format: " (%.2f s with the stop)", wall), "< 1 s"))
            emit(&rows, ("scale: min. BPF ipcache entries during that restart",
                         "\(minimum.min) of \(full) (\(minimum.samples) samples, 50 ms apart)", "the full count"))
        }
        _ = rows
    }

    /// Counts the pinned ipcache every 50 ms on a thread of its own until stopped.
    final class Sampler: @unchecked Sendable {
        private let lock = NSLock()
        private var running = true
        private var minimum = Int.max
        private var samples = 0
        private let thread: Thread

        init(node: Node) {
            let box = Box()
            thread = Thread { box.sampler?.loop(node) }
            box.sampler = self
            thread.start()
        }

        private final class Box: @unchecked Sendable { weak var sampler: Sampler? }

        private func loop(_ node: Node) {
            while lock.withLock({ running }) {
                let n = node.ipcache()?.count ?? 0
                lock.withLock {
                    minimum = min(minimum, n)
                    samples += 1
                }
                usleep(50_000)
            }
        }

        func stop() -> (min: Int, samples: Int) {
            lock.withLock {
                running = false
                return (minimum, samples)
            }
        }
    }
}
