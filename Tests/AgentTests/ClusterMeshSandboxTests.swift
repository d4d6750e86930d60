import API
import Foundation
import Glibc
import Testing
import TestSupport

/// `cilium-sandbox up --clusters`: several clusters on one underlay, each with its own etcd (over TLS with
/// client certificates by default), and `clustermesh connect|disconnect` writing upstream's clustermesh-config files.
@Suite(.serialized) struct ClusterMeshSandboxTests {
    let sandbox = buildDirectory() + "/cilium-sandbox"

    func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int
    }

    /// Two clusters of one node each, etcd on plain http (the agents speak http to etcd): each node is in its
    /// own cluster with its own etcd and pod pool; connect writes the remote cluster's etcd on each node, disconnect removes it.
    @Test func twoClustersConnectAndDisconnect() throws {
        let name = "m" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }

        let tooMany = try runCapturing([sandbox, "up", "--name", name, "--clusters", "5"])
        #expect(tooMany.0 != 0)
        #expect(tooMany.1.contains("--clusters must be between 1 and 4"), "\(tooMany.1)")
        let tooWide = try runCapturing([sandbox, "up", "--name", name, "--clusters", "2", "--nodes", "10"])
        #expect(tooWide.0 != 0)
        #expect(tooWide.1.contains("between 1 and 9"), "\(tooWide.1)")

        let up = try runCapturing([sandbox, "up", "--name", name, "--clusters", "2", "--nodes", "1", "--set", "etcd.ssl=false"])
        try #require(up.0 == 0, "\(up.1)")
        #expect(up.1.contains("node1: READY") && up.1.contains("node2: READY"), "\(up.1)")

        struct Report: Decodable {
            struct Node: Decodable { var name: String; var ready: Bool; var addresses: [String]; var namespace: String; var cluster: String? }
            var nodes: [Node]
        }
        let (sc, json) = try runCapturing([sandbox, "status", "--name", name, "-o", "json"])
        #expect(sc == 0, "\(json)")
        let report = try JSONDecoder().decode(Report.self, from: Data(json.utf8))
        #expect(report.nodes.map(\.name) == ["node1", "node2"])
        #expect(report.nodes.map(\.cluster) == ["cluster1", "cluster2"])
        #expect(report.nodes.map(\.addresses) == [["172.30.0.11"], ["172.30.0.21"]])
        #expect(report.nodes.filter { !$0.ready }.isEmpty)

        for (i, node) in ["node1", "node2"].enumerated().map({ ($0.offset + 1, $0.element) }) {
            let (c, out) = try runCapturing([sandbox, "cilium", "--name", name, node, "--", "status", "-o", "json"])
            #expect(c == 0, "\(out)")
            #expect(try JSONDecoder().decode(StatusResponse.self, from: Data(out.utf8)).cluster == "cluster\(i)")
            func get(_ key: String) throws -> String {
                try runCapturing([sandbox, "cilium", "--name", name, node, "--", "config", "get", key]).1
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            #expect(try get("cluster.id") == "\(i)")
            #expect(try get("clustermesh.enabled") == "true")
            #expect(try get("ipam.operator.clusterPoolIPv4PodCIDRList").contains("10.\(i - 1).0.0/16"))
            #expect(try get("etcd.endpoints").contains("http://172.30.0.\(1 + i):2379"))
            #expect(try get("etcd.ssl") == "false")
            // Each cluster's etcd is in its own namespace, and reachable across the underlay.
            #expect(FileManager.default.fileExists(atPath: "/run/netns/csbx-\(name)-etcd\(i)"))
            let (vc, version) = try runCapturing([sandbox, "exec", "--name", name, "node1", "--", "curl", "-sf", "-m", "5",
                                                  "http://172.30.0.\(1 + i):2379/version"])
            #expect(vc == 0 && version.contains("etcdserver"), "\(version)")
        }

        // One cluster's etcd stops and starts on its own.
        #expect(try runCapturing([sandbox, "etcd", "--name", name, "--cluster", "2", "stop"]).1.contains("etcd of cluster2 stopped"))
        #expect(try runCapturing([sandbox, "exec", "--name", name, "node1", "--", "curl", "-sf", "-m", "2", "http://172.30.0.3:2379/version"]).0 != 0)
        #expect(try runCapturing([sandbox, "exec", "--name", name, "node1", "--", "curl", "-sf", "-m", "2", "http://172.30.0.2:2379/version"]).0 == 0)
        let start = try runCapturing([sandbox, "etcd", "--name", name, "--cluster", "2", "start"])
        #expect(start.0 == 0 && start.1.contains("started at http://172.30.0.3:2379"), "\(start.1)")
        #expect(try runCapturing([sandbox, "etcd", "--name", name, "--cluster", "3", "stop"]).1.contains("has no cluster 3"))

        let dir = "/run/cilium-sandbox/\(name)"
        let file1 = "\(dir)/node1/state/clustermesh/cluster2", file2 = "\(dir)/node2/state/clustermesh/cluster1"
        let connect = try runCapturing([sandbox, "clustermesh", "connect", "--name", name])
        #expect(connect.0 == 0, "\(connect.1)")
        #expect((try? String(contentsOfFile: file1, encoding: .utf8)) == "endpoints:\n- http://172.30.0.3:2379\n")
        #expect((try? String(contentsOfFile: file2, encoding: .utf8)) == "endpoints:\n- http://172.30.0.2:2379\n")
        #expect(mode(file1) == 0o600)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/node1/state/clustermesh/cluster1"))
        // Nothing but the cluster files (no temporary file left in or beside the watched directory).
        #expect((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/node1/state/clustermesh")) == ["cluster2"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/node1").filter { $0.hasPrefix(".") }.isEmpty)

        // status asks every node's agent (whatever the CLI says, each node gets its turn).
        let status = try runCapturing([sandbox, "clustermesh", "status", "--name", name])
        #expect(status.1.contains("== node1 (cluster1) ==") && status.1.contains("== node2 (cluster2) =="), "\(status.1)")

        let disconnect = try runCapturing([sandbox, "clustermesh", "disconnect", "--name", name])
        #expect(disconnect.0 == 0, "\(disconnect.1)")
        #expect(!FileManager.default.fileExists(atPath: file1))
        #expect(!FileManager.default.fileExists(atPath: file2))

        let down = try runCapturing([sandbox, "down", "--name", name])
        #expect(down.0 == 0, "\(down.1)")
        let netns = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        #expect(netns.filter { $0.hasPrefix("csbx-\(name)-") }.isEmpty, "\(netns)")
        #expect(!FileManager.default.fileExists(atPath: dir))
    }

    /// With two clusters etcd speaks TLS by default: each etcd answers https to the sandbox's client
    /// certificate (its server certificate names its address and etcd.clusterI.mesh.cilium.io) and refuses a
    /// client without one; the node configs and connect's files name https endpoints and the certificates.
    /// No agents (until the agents' etcd client speaks TLS): the etcds and configs are what is checked.
    @Test func twoClustersEtcdOverTLS() throws {
        let name = "s" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        let up = try runCapturing([sandbox, "up", "--name", name, "--clusters", "2", "--nodes", "1", "--no-agents"])
        try #require(up.0 == 0, "\(up.1)")

        let dir = "/run/cilium-sandbox/\(name)", pki = "/run/cilium-sandbox/\(name)/pki"
        for f in ["ca.crt", "client.crt", "etcd1.crt", "etcd2.crt"] { #expect(FileManager.default.fileExists(atPath: "\(pki)/\(f)"), "\(f)") }
        for f in ["ca.key", "client.key", "etcd1.key", "etcd2.key"] { #expect(mode("\(pki)/\(f)") == 0o600, "\(f)") }
        let tls = ["--cacert", "\(pki)/ca.crt", "--cert", "\(pki)/client.crt", "--key", "\(pki)/client.key"]
        for i in 1...2 {
            let address = "172.30.0.\(1 + i)"
            func curl(_ args: [String]) throws -> (Int32, String) {
                try runCapturing([sandbox, "exec", "--name", name, "node1", "--", "curl", "-s", "-m", "5"] + args)
            }
            let ok = try curl(tls + ["https://\(address):2379/version"])
            #expect(ok.0 == 0 && ok.1.contains("etcdserver"), "\(ok.1)")
            // By its DNS name too (the certificate names it).
            let byName = try curl(tls + ["--resolve", "etcd.cluster\(i).mesh.cilium.io:2379:\(address)",
                                         "https://etcd.cluster\(i).mesh.cilium.io:2379/version"])
            #expect(byName.0 == 0 && byName.1.contains("etcdserver"), "\(byName.1)")
            // Without the client certificate: refused.
            #expect(try curl(["--cacert", "\(pki)/ca.crt", "https://\(address):2379/version"]).0 != 0)
            // Plain http: no answer.
            #expect(try curl(["-f", "http://\(address):2379/version"]).0 != 0)

            let config = (try? String(contentsOfFile: "\(dir)/node\(i)/values.yaml", encoding: .utf8)) ?? ""
            #expect(config.contains("https://\(address):2379"), "\(config)")
            #expect(config.contains("\(pki)/client.crt") && config.contains("\(pki)/client.key") && config.contains("\(pki)/ca.crt"), "\(config)")
        }

        let connect = try runCapturing([sandbox, "clustermesh", "connect", "--name", name])
        #expect(connect.0 == 0, "\(connect.1)")
        let file = "\(dir)/node1/state/clustermesh/cluster2"
        #expect((try? String(contentsOfFile: file, encoding: .utf8)) == """
            endpoints:
            - https://172.30.0.3:2379
            trusted-ca-file: \(pki)/ca.crt
            cert-file: \(pki)/client.crt
            key-file: \(pki)/client.key

            """)
        #expect(mode(file) == 0o600)

        let down = try runCapturing([sandbox, "down", "--name", name])
        #expect(down.0 == 0, "\(down.1)")
        #expect(!FileManager.default.fileExists(atPath: dir))
        let netns = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        #expect(netns.filter { $0.hasPrefix("csbx-\(name)-") }.isEmpty, "\(netns)")
    }

    /// One cluster keeps today's layout; --set etcd.ssl=true puts its one etcd (csbx-NAME-etcd, 172.30.0.2) on TLS.
    @Test func oneClusterEtcdOverTLSWhenAsked() throws {
        let name = "o" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        let up = try runCapturing([sandbox, "up", "--name", name, "--nodes", "2", "--set", "etcd.ssl=true", "--no-agents"])
        try #require(up.0 == 0, "\(up.1)")
        #expect(FileManager.default.fileExists(atPath: "/run/netns/csbx-\(name)-etcd"))
        let pki = "/run/cilium-sandbox/\(name)/pki"
        let ok = try runCapturing([sandbox, "exec", "--name", name, "node2", "--", "curl", "-s", "-m", "5", "--cacert", "\(pki)/ca.crt",
                                   "--cert", "\(pki)/client.crt", "--key", "\(pki)/client.key", "https://172.30.0.2:2379/version"])
        #expect(ok.0 == 0 && ok.1.contains("etcdserver"), "\(ok.1)")
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "/run/cilium-sandbox/\(name)/state.json"))) as? [String: Any]
        #expect(state?["etcdURL"] as? String == "https://172.30.0.2:2379")
        #expect(state?["clusters"] == nil)
        let mesh = try runCapturing([sandbox, "clustermesh", "connect", "--name", name])
        #expect(mesh.0 != 0 && mesh.1.contains("has one cluster"), "\(mesh.1)")
        #expect(try runCapturing([sandbox, "down", "--name", name]).0 == 0)
    }
}
