import API
import Foundation
import Glibc
import LinuxNet
import Testing
import TestSupport

/// Issue 19 end to end: two clusters in the sandbox (each its own etcd, over TLS with client certificates),
/// joined with `clustermesh connect`: pods reach each other across clusters with their identities, a global
/// service spreads over both clusters' backends with each affinity, policies select by cluster, and the failure
/// modes upstream users hit (a remote cluster that dies, an agent killed during traffic) lose no connection.
@Suite(.serialized) struct ClusterMeshEndToEndTests {
    typealias NameServer = LoadBalancerEndToEndTests.NameServer
    typealias Connection = LoadBalancerEndToEndTests.Connection

    final class Mesh {
        struct Status: Decodable {
            struct Pod: Decodable { var name: String; var address: String; var namespace: String }
            var pods: [Pod]
        }
        let name = "cm" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        let files: TempDir
        var pods: [String: Status.Pod] = [:]
        var servers: [String: NameServer] = [:]

        /// cluster1: node1 with web1 and client1; cluster2: node2 with web2 and client2.
        init(settings: [String] = []) throws {
            files = try TempDir("mesh-e2e")
            do {
                try run(["up", "--name", name, "--clusters", "2", "--nodes", "1", "--set", "kubeProxyReplacement=true"]
                        + settings.flatMap { ["--set", $0] })
                for (pod, node, labels) in [("web1", "node1", "app=web"), ("client1", "node1", "app=client"),
                                            ("web2", "node2", "app=web"), ("client2", "node2", "app=client")] {
                    try run(["pod", "add", "--name", name, "--node", node, "--pod", pod, "--labels", labels])
                }
                let st = try JSONDecoder().decode(Status.self, from: Data(try run(["status", "--name", name, "-o", "json"]).utf8))
                pods = Dictionary(uniqueKeysWithValues: st.pods.map { ($0.name, $0) })
                for web in ["web1", "web2"] {
                    servers[web] = try NameServer(web, in: NetworkNamespace(named: pods[web]!.namespace), port: 8080)
                }
                try run(["clustermesh", "connect", "--name", name])
                for node in ["node1", "node2"] {
                    try waitFor("\(node) has its remote cluster ready", timeout: .seconds(30)) {
                        try self.remote(node).map { $0.ready && $0.numEndpoints >= 2 } ?? false
                    }
                }
            } catch {
                stopAll()
                throw error
            }
        }

        func stopAll() {
            for s in servers.values { s.stop() }
            servers = [:]
            _ = try? runCapturing([sandbox, "down", "--name", name])
        }

        deinit { stopAll() }

        @discardableResult
        func run(_ args: [String]) throws -> String { try runChecked([sandbox] + args) }

        func cilium(_ node: String, _ args: [String]) throws -> (Int32, String) {
            try runCapturing([sandbox, "cilium", "--name", name, node, "--"] + args)
        }

        /// The node's one remote cluster, as `cilium clustermesh status -o json` has it (nil: no answer yet).
        func remote(_ node: String) throws -> RemoteClusterStatus? {
            let (code, out) = try cilium(node, ["clustermesh", "status", "-o", "json"])
            guard code == 0, let s = try? JSONDecoder().decode(ClusterMeshStatus.self, from: Data(out.utf8)), s.clusters.count == 1 else { return nil }
            return s.clusters[0]
        }

        func ns(_ pod: String) throws -> NetworkNamespace { try NetworkNamespace(named: pods[pod]!.namespace) }

        /// Which backend answers a new TCP connection (nil: none did).
        func who(from: String, _ address: String, _ port: UInt16 = 8080) throws -> String? {
            try Connection(from: ns(from), to: address, port: port)?.greeting
        }

        /// Which backends answer `count` new connections to the global service.
        func answers(from pod: String, _ count: Int) throws -> Set<String> {
            var seen = Set<String>()
            for _ in 0..<count { if let w = try who(from: pod, "10.96.0.50", 80) { seen.insert(w) } }
            return seen
        }

        /// The global service `echo` (10.96.0.50:80 -> 8080, selector app=web) in both clusters.
        func applyGlobalService(affinity: String?) throws {
            let annotation = affinity.map { "\n    service.cilium.io/affinity: \"\($0)\"" } ?? ""
            let file = files.path + "/echo-\(affinity ?? "none").yaml"
            try """
            apiVersion: v1
            kind: Service
            metadata:
              name: echo
              annotations:
                service.cilium.io/global: "true"\(annotation)
            spec:
              type: ClusterIP
              clusterIP: 10.96.0.50
              selector: {app: web}
              ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
            """.write(toFile: file, atomically: true, encoding: .utf8)
            for node in ["node1", "node2"] {
                let (code, out) = try cilium(node, ["service", "apply", "-f", file])
                guard code == 0 else { throw Failure("service apply on \(node) failed: \(out)") }
            }
        }

        func backends(_ node: String) throws -> [ServiceFrontendModel.Backend] {
            let (_, list) = try cilium(node, ["service", "list", "-o", "json"])
            let services = (try? JSONDecoder().decode([ServiceFrontendModel].self, from: Data(list.utf8))) ?? []
            return services.first { $0.frontend.hasPrefix("10.96.0.50:80") }?.backends ?? []
        }

        func policy(on node: String, _ yaml: String) throws {
            let file = files.path + "/p\(UInt32.random(in: 0...UInt32.max)).yaml"
            try yaml.write(toFile: file, atomically: true, encoding: .utf8)
            let (code, out) = try cilium(node, ["policy", "import", file])
            guard code == 0 else { throw Failure("policy import failed: \(out)") }
        }
    }

    /// Connections made and failed by a client loop, and its stop flag.
    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private var attempts = 0, failures = 0, stop = false
        var stopped: Bool { lock.withLock { stop } }
        func count(_ ok: Bool) { lock.withLock { attempts += 1; if !ok { failures += 1 } } }
        func finish() -> (attempts: Int, failures: Int) {
            lock.withLock { stop = true }
            Thread.sleep(forTimeInterval: 0.5)
            return lock.withLock { (attempts, failures) }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    @Test func twoClustersAsOne() throws {
        let m = try Mesh()
        defer { m.stopAll() }

        // Pod to pod across clusters, both ways, with the remote pod's identity in the other cluster's range.
        #expect(try m.who(from: "client1", m.pods["web2"]!.address) == "web2")
        #expect(try m.who(from: "client2", m.pods["web1"]!.address) == "web1")
        let (_, ipcache) = try m.cilium("node1", ["bpf", "ipcache", "list"])
        let web2Line = ipcache.split(separator: "\n").first { $0.contains(m.pods["web2"]!.address + "/32") }.map(String.init) ?? ""
        // Cluster 2's identities: 131072-196607 (its ID in bits 16-23).
        #expect(web2Line.contains("identity=131") && web2Line.contains("tunnelendpoint=172.30.0.21"), "\(web2Line)")
        // Hubble on node1 names the remote pod with its cluster.
        let flows = try m.run(["hubble", "--name", m.name, "node1", "--", "observe", "--last", "50"])
        #expect(flows.contains("cluster2/default/web2"), "\(flows)")

        // A global service: both clusters' backends, with each affinity.
        try m.applyGlobalService(affinity: nil)
        try waitFor("node1's echo has both clusters' backends", timeout: .seconds(20)) { try m.backends("node1").count == 2 }
        #expect(try m.answers(from: "client1", 40) == ["web1", "web2"])

        try m.applyGlobalService(affinity: "local")
        try waitFor("affinity local is in force on node1") { try m.backends("node1").contains { $0.preferred == true } }
        #expect(try m.answers(from: "client1", 20) == ["web1"])
        let (_, marked) = try m.cilium("node1", ["service", "list", "--clustermesh-affinity"])
        #expect(marked.contains(m.pods["web1"]!.address + ":8080/TCP (preferred)") || marked.contains("(preferred)"), "\(marked)")

        try m.applyGlobalService(affinity: "remote")
        try waitFor("affinity remote is in force on node1") {
            try m.backends("node1").contains { $0.preferred == true && $0.address.hasPrefix(m.pods["web2"]!.address) }
        }
        #expect(try m.answers(from: "client1", 20) == ["web2"])

        // Policy across clusters: web2 (cluster2) admits cluster1's clients only.
        try m.policy(on: "node2", """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: web-from-cluster1-clients}
            spec:
              endpointSelector: {matchLabels: {app: web}}
              ingress:
              - fromEndpoints: [{matchLabels: {app: client, io.cilium.k8s.policy.cluster: cluster1}}]
            """)
        try waitFor("cluster1's client reaches web2") { try m.who(from: "client1", m.pods["web2"]!.address) == "web2" }
        #expect(try m.who(from: "client2", m.pods["web2"]!.address) == nil)
        // Without a cluster label, a selector means this cluster only (clustermesh.policyDefaultLocalCluster).
        try m.policy(on: "node2", """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: web-from-cluster1-clients}
            spec:
              endpointSelector: {matchLabels: {app: web}}
              ingress:
              - fromEndpoints: [{matchLabels: {app: client}}]
            """)
        try waitFor("now only cluster2's client reaches web2") {
            try m.who(from: "client2", m.pods["web2"]!.address) == "web2"
        }
        #expect(try m.who(from: "client1", m.pods["web2"]!.address) == nil)

        // Status lines, in upstream's shape.
        let (_, status) = try m.cilium("node1", ["status", "--verbose"])
        #expect(status.contains("ClusterMesh:") && status.contains("1/1 remote clusters ready, 1 global-services"), "\(status)")
        #expect(status.contains("cluster2: ready, 1 nodes,"), "\(status)")
        #expect(status.contains("synchronization status: nodes=true, endpoints=true, identities=true, services=true"), "\(status)")

        // A remote cluster's etcd behind a CA other than the one its file names: refused, and status says where and why.
        let pki = "/run/cilium-sandbox/\(m.name)/pki"
        let otherCA = m.files.path + "/other-ca"
        _ = try runChecked(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", otherCA + ".key", "-out", otherCA + ".crt",
                            "-days", "1", "-subj", "/CN=not-the-sandbox-ca"])
        let meshDir = "/run/cilium-sandbox/\(m.name)/node1/state/clustermesh"
        try """
        endpoints:
        - https://172.30.0.3:2379
        trusted-ca-file: \(otherCA).crt
        cert-file: \(pki)/client.crt
        key-file: \(pki)/client.key
        """.write(toFile: meshDir + "/cluster3", atomically: true, encoding: .utf8)
        try waitFor("cluster3's TLS failure is in node1's status", timeout: .seconds(20)) {
            let (_, text) = try m.cilium("node1", ["clustermesh", "status"])
            return text.contains("cluster3: not ready") && text.contains("https://172.30.0.3:2379")
                && text.contains("not signed by the CA in \(otherCA).crt")
        }
        #expect(try m.cilium("node1", ["status"]).1.contains("1/2 remote clusters ready"))
        try FileManager.default.removeItem(atPath: meshDir + "/cluster3")
        try waitFor("cluster3 is gone from node1's status") { try m.cilium("node1", ["status"]).1.contains("1/1 remote clusters ready") }
    }

    /// Upstream's #23823/#45441: an agent killed (-9) during traffic to a global service keeps every remote
    /// backend in its datapath until the resync; and #19217: once a dead cluster's cache TTL has run out, its
    /// backends leave the service and traffic keeps working through the other cluster's.
    @Test func anAgentKilledDuringTrafficAndADeadRemoteCluster() throws {
        let m = try Mesh(settings: ["clustermesh.cacheTTL=5s"])
        defer { m.stopAll() }
        // Only the remote backend serves: losing it in a restart would fail every connection.
        try m.applyGlobalService(affinity: "remote")
        try waitFor("node1 prefers the remote backend", timeout: .seconds(20)) {
            try m.backends("node1").contains { $0.preferred == true && $0.address.hasPrefix(m.pods["web2"]!.address) }
        }

        let tally = Tally()
        let clientNS = try m.ns("client1")
        let loop = Thread {
            while !tally.stopped {
                let ok = (try? Connection(from: clientNS, to: "10.96.0.50", port: 80)?.greeting) ?? nil
                tally.count(ok == "web2")
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        loop.start()
        // A graceful restart (SIGTERM: the subsystems shut down, keeping their datapath), then a kill -9.
        for restart in [["restart"], ["restart", "--kill"]] {
            Thread.sleep(forTimeInterval: 1)
            try m.run(["agent", "--name", m.name, "node1"] + restart)
            try waitFor("node1 is connected again", timeout: .seconds(30)) { try m.remote("node1")?.ready ?? false }
        }
        Thread.sleep(forTimeInterval: 2)
        let (attempts, failures) = tally.finish()
        #expect(attempts > 50)
        #expect(failures == 0, "\(failures) of \(attempts) connections failed across a graceful restart and a kill -9")
        #expect(try m.backends("node1").count == 2)

        // Cluster 2's etcd away and back: node1 says so, reconnects with backoff and counts it; traffic never stopped.
        try m.run(["etcd", "--name", m.name, "--cluster", "2", "stop"])
        try waitFor("node1 sees cluster2's etcd gone", timeout: .seconds(30)) {
            try m.remote("node1").map { !$0.ready && $0.numFailures >= 1 && $0.lastFailure != nil } ?? false
        }
        #expect(try m.who(from: "client1", "10.96.0.50", 80) == "web2")
        try m.run(["etcd", "--name", m.name, "--cluster", "2", "start"])
        try waitFor("node1 reconnected to cluster2", timeout: .seconds(60)) {
            try m.remote("node1").map { $0.ready && $0.numFailures >= 1 } ?? false
        }
        let (_, text) = try m.cilium("node1", ["status", "--verbose"])
        #expect(text.contains("cluster2: ready") && !text.contains("0 reconnections"), "\(text)")

        // Cluster 2 dies: its etcd and its backend. After the TTL its backend has left node1's service, and every
        // connection goes to cluster 1's backend.
        try m.applyGlobalService(affinity: nil)
        m.servers["web2"]?.stop()
        m.servers["web2"] = nil
        try m.run(["etcd", "--name", m.name, "--cluster", "2", "stop"])
        try waitFor("cluster2's backend left node1's service after the TTL", timeout: .seconds(30)) {
            try m.backends("node1").count == 1
        }
        var answers: [String?] = []
        for _ in 0..<30 { answers.append(try m.who(from: "client1", "10.96.0.50", 80)) }
        #expect(answers.allSatisfy { $0 == "web1" }, "\(answers)")
        let (_, status) = try m.cilium("node1", ["clustermesh", "status"])
        #expect(status.contains("not ready") && status.contains("cacheTTL"), "\(status)")
    }
}
