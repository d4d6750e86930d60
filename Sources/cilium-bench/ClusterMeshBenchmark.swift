import API
import CBPF
import Datapath
import Foundation
import Glibc
import HTTPTransport
import KVStore
import LinuxNet
import Spawning

/// Issue 19's figures.
/// - Scale: a sandbox node (cluster.id 1, cluster mesh on) joined to 8 remote clusters, each its own etcd holding
///   2,000 endpoints, 500 global services and 1,000 identities in upstream's shapes: the time from the
///   clustermesh-config files appearing to every remote endpoint in node1's BPF ipcache, and node1's agent RSS growth.
///   The remote etcds run in the sandbox's etcd namespace (on the underlay, 172.30.0.2:24xx), where the measuring
///   part runs (a second cilium-bench under nsenter, as the scale scenario does).
/// - Latency: two clusters in the sandbox, a global service whose only backends are in cluster 2: a backend pod
///   added in cluster 2 until the first connection from a client in cluster 1 through the service.
enum ClusterMeshBenchmark {
    typealias Row = (String, String, String)

    static func run(bin: String) throws -> [Row] {
        var rows: [Row] = []
        do { rows += try scale(bin: bin) } catch {
            rows.append(("clustermesh: remote clusters' first full sync", "not measured: \(error)", "< 2 s"))
        }
        do { rows += try backendLatency(bin: bin) } catch {
            rows.append(("clustermesh: backend added in cluster 2 -> first connection from cluster 1", "not measured: \(error)", ""))
        }
        return rows
    }

    struct Sizes {
        var clusters = BenchMode.pick(8, quick: 2)
        var nodes = BenchMode.pick(20, quick: 4)
        var endpoints = BenchMode.pick(2000, quick: 100)
        var services = BenchMode.pick(500, quick: 20)
        var identities = BenchMode.pick(1000, quick: 50)
    }

    // MARK: scale

    static func scale(bin: String) throws -> [Row] {
        let sandbox = "cms\(String(UInt32.random(in: 0...UInt32.max), radix: 16).prefix(6))"
        defer { _ = PodPaths.shell([bin + "/cilium-sandbox", "down", "--name", sandbox]) }
        let up = PodPaths.shell([bin + "/cilium-sandbox", "up", "--name", sandbox, "--nodes", "2", "--set", "kubeProxyReplacement=true",
                                 "--set", "cluster.id=1", "--set", "clustermesh.enabled=true"])
        guard up.0 == 0 else { throw BenchError("cannot build the sandbox: \(up.1)") }
        let (rows, status) = try ScaleBenchmark.measureInside(sandbox: sandbox, bin: bin, flag: "--clustermesh-inner")
        guard status == 0, !rows.isEmpty else { throw BenchError("the measuring process failed (\(status))") }
        return rows
    }

    /// The measuring part, in the sandbox's etcd namespace.
    static func inner(sandbox: String, bin: String) async throws {
        let sizes = Sizes()
        let node = try ScaleBenchmark.Node.load(sandbox, bin: bin)
        let dir = "/run/cilium-sandbox/\(sandbox)/mesh-bench"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var etcds: [Int32] = []
        defer {
            for pid in etcds { ChildProcess.terminate(pid) }
            try? FileManager.default.removeItem(atPath: dir)
        }
        let address = "172.30.0.2"
        // The remote clusters: scale2 ... scale9 (IDs 2 ... 9), each its own etcd.
        var urls: [String] = []
        for c in 0..<sizes.clusters {
            let client = "http://\(address):\(24_000 + 2 * c)", peer = "http://\(address):\(24_001 + 2 * c)"
            let pid = try ChildProcess.spawn(["/usr/bin/etcd", "--name", "scale\(c + 2)", "--data-dir", "\(dir)/etcd\(c)",
                                              "--listen-client-urls", client, "--advertise-client-urls", client,
                                              "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                              "--initial-cluster", "scale\(c + 2)=\(peer)", "--quota-backend-bytes", "1073741824"],
                                             output: "\(dir)/etcd\(c).log")
            etcds.append(pid)
            urls.append(client)
        }
        let enc = JSONEncoder()
        // address -> identity (an LPM lookup also answers from the pod CIDR's and the world's entries)
        var expected: [UInt32: UInt32] = [:]
        for (c, url) in urls.enumerated() {
            let id = c + 2, name = "scale\(id)"
            let store = try EtcdKVStore(endpoints: [url], timeout: .seconds(5))
            var up = false, why = ""
            for _ in 0..<200 where !up {
                do {
                    _ = try await store.get("x")
                    up = true
                } catch {
                    why = "\(error)"
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            guard up else {
                let log = (try? String(contentsOfFile: "\(dir)/etcd\(c).log", encoding: .utf8)) ?? ""
                throw BenchError("etcd \(url) did not come up: \(why); its log: \(log.suffix(300))")
            }
            var batch: [(key: String, value: Data?)] = []
            batch.append((KVKeys.clusterConfig(name), try enc.encode(KVClusterConfig(id: id, capabilities: .init(syncedCanaries: true, maxConnectedClusters: 255)))))
            for k in 0..<sizes.nodes {
                batch.append((KVKeys.node(cluster: name, name: "n\(k)"),
                              try enc.encode(KVNode(name: "n\(k)", cluster: name, clusterID: UInt32(id), address: "192.168.\(id).\(k + 1)",
                                                    podCIDR: "10.\(100 + id).\(k).0/24"))))
            }
            let base = id << 16
            for i in 0..<sizes.identities {
                batch.append((KVKeys.identity(base + i), Data(KVKeys.labelList(["k8s:app=s\(i)", "k8s:io.kubernetes.pod.namespace=default",
                                                                                  "k8s:io.cilium.k8s.policy.cluster=\(name)"]).utf8)))
            }
            for j in 0..<sizes.endpoints {
                let k = j % sizes.nodes, ip = "10.\(100 + id).\(k).\(j / sizes.nodes + 2)"
                let identity = UInt32(base + j % sizes.identities)
                batch.append((KVKeys.ip(ip), try enc.encode(IPIdentityPair(ip: ip, hostIP: "192.168.\(id).\(k + 1)", id: identity,
                                                                          namespace: "default", podName: "p\(j)"))))
                if let a = IPv4Address(ip) { expected[a.value] = identity }
            }
            for s in 0..<sizes.services {
                let backends = Dictionary(uniqueKeysWithValues: (0..<4).map { b -> (String, [String: ClusterServicePort]) in
                    let j = (s * 4 + b) % sizes.endpoints
                    return ("10.\(100 + id).\(j % sizes.nodes).\(j / sizes.nodes + 2)", ["http": ClusterServicePort(protocol: "TCP", port: 8080)])
                })
                let svc = ClusterService(cluster: name, namespace: "default", name: "svc\(s)",
                                         frontends: ["10.97.\(s / 250).\(s % 250 + 1)": ["http": ClusterServicePort(protocol: "TCP", port: 80)]],
                                         backends: backends, clusterID: UInt32(id))
                batch.append((KVKeys.service(cluster: name, namespace: "default", name: "svc\(s)"), try enc.encode(svc)))
            }
            for kind in KVKeys.Synced.allCases { batch.append((KVKeys.synced(cluster: name, kind), Data("now".utf8))) }
            for chunk in stride(from: 0, to: batch.count, by: 120) {
                let part = Array(batch[chunk..<min(chunk + 120, batch.count)])
                _ = try await store.write(batch: part)
            }
        }
        guard let map = node.ipcache() else { throw BenchError("no ipcache pin at \(node.ipcachePin)") }
        // Settled: the agent's RSS before the mesh.
        usleep(2_000_000)
        let before = node.rssMB
        // Connect: one file per remote cluster in the agent's clustermesh-config directory.
        let meshDir = node.stateDir + "/clustermesh"
        try FileManager.default.createDirectory(atPath: meshDir, withIntermediateDirectories: true)
        let t0 = ScaleBenchmark.now()
        for (c, url) in urls.enumerated() {
            try "endpoints:\n- \(url)\n".write(toFile: "\(meshDir)/scale\(c + 2)", atomically: true, encoding: .utf8)
        }
        func allIn() -> Bool {
            var found = 0
            for (a, identity) in expected where map.lookup(ScaleBenchmark.key(a))?.identity == identity { found += 1 }
            return found == expected.count
        }
        guard ScaleBenchmark.until(timeout: 120, every: 0.01, allIn) != nil else {
            throw BenchError("not every remote endpoint reached node1's ipcache in 120 s")
        }
        let sync = ScaleBenchmark.now() - t0
        usleep(3_000_000)
        let after = node.rssMB
        let what = "\(sizes.clusters) remote clusters x (\(sizes.endpoints) endpoints, \(sizes.services) services, \(sizes.identities) identities)"
        ScaleBenchmark.progress("clustermesh: \(what): \(sync) s")
        var rows: [Row] = []
        ScaleBenchmark.emit(&rows, ("clustermesh: \(what), files -> every endpoint in the BPF ipcache",
                                    String(format: "%.2f s", sync), "< 2 s"))
        ScaleBenchmark.emit(&rows, ("clustermesh: the same, agent RSS growth",
                                    String(format: "+%.1f MB (%.1f -> %.1f MB)", after - before, before, after), "< 60 MB"))
    }

    // MARK: latency

    static func backendLatency(bin: String) throws -> [Row] {
        let sandbox = "cml\(String(UInt32.random(in: 0...UInt32.max), radix: 16).prefix(6))"
        let sb = bin + "/cilium-sandbox"
        defer { _ = PodPaths.shell([sb, "down", "--name", sandbox]) }
        guard PodPaths.shell([sb, "up", "--name", sandbox, "--clusters", "2", "--nodes", "1", "--set", "kubeProxyReplacement=true"]).0 == 0,
              PodPaths.shell([sb, "pod", "add", "--name", sandbox, "--node", "node1", "--pod", "client", "--labels", "app=client"]).0 == 0,
              PodPaths.shell([sb, "clustermesh", "connect", "--name", sandbox]).0 == 0
        else { throw BenchError("cannot build the two-cluster sandbox") }
        // The global service: in cluster 1 without backends of its own, in cluster 2 selecting app=web.
        let file = "/run/cilium-sandbox/\(sandbox)/global.yaml"
        try """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          annotations: {service.cilium.io/global: "true"}
        spec:
          clusterIP: 10.96.0.60
          selector: {app: web}
          ports: [{name: http, port: 80, targetPort: 8080}]
        """.write(toFile: file, atomically: true, encoding: .utf8)
        for n in ["node1", "node2"] {
            guard PodPaths.shell([sb, "cilium", "--name", sandbox, n, "--", "service", "apply", "-f", file]).0 == 0 else {
                throw BenchError("service apply on \(n) failed")
            }
        }
        let client = try NetworkNamespace(named: "csbx-\(sandbox)-pod-client")
        func connects() -> Bool {
            (try? client.run { () -> Bool in
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                defer { close(fd) }
                var tv = timeval(tv_sec: 0, tv_usec: 100_000)
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = UInt16(80).bigEndian
                a.sin_addr.s_addr = IPv4Address("10.96.0.60")!.value.bigEndian
                return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
            }) ?? false
        }
        func backendsOnNode1() -> Int {
            let out = PodPaths.shell([sb, "cilium", "--name", sandbox, "node1", "--", "service", "list", "-o", "json"]).1
            let list = (try? JSONDecoder().decode([ServiceFrontendModel].self, from: Data(out.utf8))) ?? []
            return list.first { $0.frontend.hasPrefix("10.96.0.60:80") }?.backends.count ?? 0
        }
        var samples: [Double] = [], adds: [Double] = []
        for k in 0..<BenchMode.pick(20, quick: 3) {
            let pod = "web\(k)"
            // From the start of the pod's CNI ADD in cluster 2 (the backend exists when it returns; by then cluster 1
            // may already have it).
            let t0 = ScaleBenchmark.now()
            guard PodPaths.shell([sb, "pod", "add", "--name", sandbox, "--node", "node2", "--pod", pod, "--labels", "app=web"]).0 == 0 else {
                throw BenchError("pod add \(pod) failed")
            }
            adds.append((ScaleBenchmark.now() - t0) * 1000)
            let acceptor = try ServiceConnections.Acceptor(in: NetworkNamespace(named: "csbx-\(sandbox)-pod-\(pod)"))
            guard ScaleBenchmark.until(timeout: 30, every: 0.002, connects) != nil else {
                acceptor.stop()
                throw BenchError("no connection through \(pod) in 30 s")
            }
            samples.append((ScaleBenchmark.now() - t0) * 1000)
            acceptor.stop()
            _ = PodPaths.shell([sb, "pod", "del", "--name", sandbox, "--pod", pod])
            guard ScaleBenchmark.until(timeout: 30, every: 0.05, { backendsOnNode1() == 0 }) != nil else {
                throw BenchError("\(pod)'s backend did not leave node1's service in 30 s")
            }
        }
        return [("clustermesh: backend pod added in cluster 2 -> first connection from cluster 1",
                 String(format: "p50 %.0f ms, p99 %.0f ms (%d)", ScaleBenchmark.percentile(samples, 50),
                        ScaleBenchmark.percentile(samples, 99), samples.count), ""),
                ("clustermesh: of which the pod add itself (cilium-sandbox pod add)",
                 String(format: "p50 %.0f ms, p99 %.0f ms", ScaleBenchmark.percentile(adds, 50), ScaleBenchmark.percentile(adds, 99)), "")]
    }
}
