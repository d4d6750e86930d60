import API
import Datapath
import LinuxNet
import Foundation
import Testing
import TestSupport

/// Pods made through cilium-cni in a sandbox node, talking over the datapath.
@Suite(.serialized) struct PodNetworkingTests {
    struct Status: Decodable {
        struct Pod: Decodable { var name: String; var address: String; var namespace: String; var identity: UInt32?; var labels: [String] }
        struct Node: Decodable { var name: String; var namespace: String; var addresses: [String] }
        var nodes: [Node]
        var pods: [Pod]
    }

    @Test func podsOnOneNodeTalkTCPAndUDPAndReachTheirNode() throws {
        let name = "p" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        #expect(try runCapturing([sandbox, "up", "--name", name, "--nodes", "1"]).0 == 0)
        for (pod, labels) in [("web", "app=web,tier=front"), ("db", "app=db"), ("web2", "tier=front,app=web")] {
            let r = try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node1", "--pod", pod, "--labels", labels])
            #expect(r.0 == 0, "\(r.1)")
        }
        let (code, json) = try runCapturing([sandbox, "status", "--name", name, "-o", "json"])
        #expect(code == 0, "\(json)")
        let st = try JSONDecoder().decode(Status.self, from: Data(json.utf8))
        let pods = Dictionary(uniqueKeysWithValues: st.pods.map { ($0.name, $0) })
        let web = try #require(pods["web"]), db = try #require(pods["db"]), web2 = try #require(pods["web2"])
        // The same label set has the same identity; another set another one, from 256 up.
        #expect(web.identity == web2.identity)
        #expect(web.identity != db.identity)
        #expect((web.identity ?? 0) >= 256 && (db.identity ?? 0) >= 256)
        // Workloads carry their namespace ("default" when the runtime names none).
        #expect(web.labels == ["k8s:app=web", "k8s:io.cilium.k8s.policy.cluster=\(name)", "k8s:io.kubernetes.pod.namespace=default", "k8s:tier=front"])

        let ns = { (n: String) in try NetworkNamespace(named: n) }
        // Pod to pod (local delivery via bpf_redirect_peer), TCP and UDP.
        #expect(try tcpEcho(from: ns(db.namespace), to: ns(web.namespace), address: web.address) == "hello")
        #expect(try udpDeliver(from: ns(web.namespace), to: ns(db.namespace), address: db.address, count: 5) == 5)
        // Node to pod and pod to node (the router address on cilium_host).
        let node = st.nodes[0]
        #expect(try tcpEcho(from: ns(node.namespace), to: ns(web.namespace), address: web.address) == "hello")
        let gateway = try #require(try runCapturing([sandbox, "exec", "--name", name, "web", "--", "ip", "-4", "route", "show", "default"]).1
            .split(separator: " ").dropFirst(2).first.map(String.init))
        #expect(try tcpEcho(from: ns(web.namespace), to: ns(node.namespace), address: gateway) == "hello")

        // Deleting a pod frees its address and endpoint; the next pod gets the address back.
        #expect(try runCapturing([sandbox, "pod", "del", "--name", name, "--pod", "db"]).0 == 0)
        let eps = try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "endpoint", "list", "-o", "json"])
        let list = try JSONDecoder().decode([EndpointModel].self, from: Data(eps.1.utf8))
        #expect(Set(list.map(\.address)) == [web.address, web2.address])
        let again = try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node1", "--pod", "db2"])
        #expect(again.1.contains(db.address))
    }

    /// tunnel: VXLAN between nodes, identity in the VNI; native: the nodes'
    /// stacks route pod CIDRs to each other (autoDirectNodeRoutes).
    @Test(arguments: ["tunnel", "native"])
    func podsOnTwoNodesTalkWithClusterWideIdentities(_ mode: String) throws {
        let name = "q" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        let modeSettings = mode == "native" ? ["--set", "routingMode=native", "--set", "autoDirectNodeRoutes=true"] : []
        let up = try runCapturing([sandbox, "up", "--name", name, "--nodes", "2"] + modeSettings)
        #expect(up.0 == 0, "\(up.1)")
        for (pod, node, labels) in [("a", "node1", "app=a"), ("b", "node2", "app=b"), ("a2", "node2", "app=a"), ("c", "node1", "app=c")] {
            let r = try runCapturing([sandbox, "pod", "add", "--name", name, "--node", node, "--pod", pod, "--labels", labels])
            #expect(r.0 == 0, "\(r.1)")
        }
        let st = try JSONDecoder().decode(Status.self, from: Data(try runCapturing([sandbox, "status", "--name", name, "-o", "json"]).1.utf8))
        let pods = Dictionary(uniqueKeysWithValues: st.pods.map { ($0.name, $0) })
        let a = try #require(pods["a"]), b = try #require(pods["b"]), a2 = try #require(pods["a2"])
        // Each node has its own pod CIDR; the same labels have the same identity on both nodes.
        #expect(a.address.hasPrefix("10.0.0.") && b.address.hasPrefix("10.0.1."))
        #expect(a.identity == a2.identity && a.identity != b.identity)

        // node1 learns node2's endpoints through etcd (tunnel endpoint = node2's address).
        let deadline = Date().addingTimeInterval(10)
        var ipcache: [BPFIPCacheEntry] = []
        repeat {
            let out = try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "bpf", "ipcache", "list", "-o", "json"]).1
            ipcache = (try? JSONDecoder().decode([BPFIPCacheEntry].self, from: Data(out.utf8))) ?? []
            if ipcache.contains(where: { $0.prefix == b.address + "/32" }) { break }
            Thread.sleep(forTimeInterval: 0.1)
        } while Date() < deadline
        let remote = try #require(ipcache.first { $0.prefix == b.address + "/32" })
        #expect(remote.tunnelEndpoint == st.nodes[1].addresses[0])
        #expect(remote.identity == b.identity)
        #expect(ipcache.contains { $0.prefix == st.nodes[1].addresses[0] + "/32" && $0.identity == 6 })
        let nodes = try JSONDecoder().decode([NodeModel].self, from: Data(
            try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "node", "list", "-o", "json"]).1.utf8))
        #expect(nodes.map(\.name) == ["node1", "node2"])
        #expect(Set(nodes.map(\.podCIDR)).count == 2)
        #expect(try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "bpf", "tunnel", "list"]).1.contains(b.address + "/32"))

        // Across nodes, both ways, TCP and UDP; and on node2 locally.
        let ns = { (n: String) in try NetworkNamespace(named: n) }
        let capture = mode == "tunnel" ? try VXLANCapture(namespace: ns(st.nodes[1].namespace), device: "eth0") : nil
        #expect(try tcpEcho(from: ns(a.namespace), to: ns(b.namespace), address: b.address) == "hello")
        #expect(try tcpEcho(from: ns(b.namespace), to: ns(a.namespace), address: a.address) == "hello")
        if let capture {
            // On the wire between the nodes, the VNI is the sending pod's identity, both ways.
            let vnis = Set(capture.finish())
            print("VXLAN VNIs on node2's eth0: \(vnis.sorted()) (pod a \(a.identity!), pod b \(b.identity!))")
            #expect(vnis == [a.identity!, b.identity!], "VNIs seen: \(vnis)")
        }
        #expect(try udpDeliver(from: ns(a2.namespace), to: ns(a.namespace), address: a.address, count: 5) == 5)
        #expect(try tcpEcho(from: ns(a2.namespace), to: ns(b.namespace), address: b.address) == "hello")
        // ICMP (busybox ping), across nodes and on one node.
        let c = try #require(pods["c"])
        for (from, to) in [("a", b.address), ("b", a.address), ("a", c.address), ("c", a2.address)] {
            let ping = try runCapturing([sandbox, "exec", "--name", name, from, "--", "busybox", "ping", "-c", "1", "-W", "2", to])
            #expect(ping.0 == 0, "ping \(from) -> \(to): \(ping.1)")
        }
        let status = try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "status"]).1
        #expect(status.contains("KVStore:                 Ok etcd: 1/1 connected"))
        #expect(status.contains(mode == "native" ? "Network: Native" : "Network: Tunnel [vxlan]"))
        // Node to a pod on the other node: the direct route (native), or cilium_host -> cilium_net ->
        // the tunnel (tunnel mode); the reply comes back to the node's router address.
        #expect(try tcpEcho(from: ns(st.nodes[0].namespace), to: ns(b.namespace), address: b.address) == "hello")
    }

    @Test func longTransferSurvivesAgentKillAndEndpointsAreAdopted() throws {
        let name = "k" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        #expect(try runCapturing([sandbox, "up", "--name", name, "--nodes", "1"]).0 == 0)
        for pod in ["src", "dst"] {
            #expect(try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node1", "--pod", pod, "--labels", "app=\(pod)"]).0 == 0)
        }
        let st = try JSONDecoder().decode(Status.self, from: Data(try runCapturing([sandbox, "status", "--name", name, "-o", "json"]).1.utf8))
        let pods = Dictionary(uniqueKeysWithValues: st.pods.map { ($0.name, $0) })
        let src = try #require(pods["src"]), dst = try #require(pods["dst"])
        let before = try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "endpoint", "list", "-o", "json"]).1

        let transfer = TCPTransfer()
        try transfer.start(from: NetworkNamespace(named: src.namespace), to: NetworkNamespace(named: dst.namespace),
                           address: dst.address, duration: .seconds(2))
        Thread.sleep(forTimeInterval: 0.5)
        let restart = try runCapturing([sandbox, "agent", "--name", name, "node1", "restart", "--kill"])
        #expect(restart.0 == 0, "\(restart.1)")
        let (sent, received, error) = transfer.finish()
        print("TCP transfer across kill -9 and restart of the agent: sent \(sent) bytes, received \(received)")
        #expect(error == nil)
        #expect(sent > 3_000_000 && received == sent)

        // The new agent adopted both endpoints: same ids, identities, addresses.
        let after = try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "endpoint", "list", "-o", "json"]).1
        let b = try JSONDecoder().decode([EndpointModel].self, from: Data(before.utf8))
        let a = try JSONDecoder().decode([EndpointModel].self, from: Data(after.utf8))
        #expect(a == b)
        #expect(try tcpEcho(from: NetworkNamespace(named: src.namespace), to: NetworkNamespace(named: dst.namespace), address: dst.address) == "hello")
    }

    @Test func clusterRidesOutAnEtcdOutage() throws {
        let name = "e" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        #expect(try runCapturing([sandbox, "up", "--name", name, "--nodes", "2"]).0 == 0)
        #expect(try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node1", "--pod", "a"]).0 == 0)
        #expect(try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node2", "--pod", "b"]).0 == 0)
        func status() throws -> Status {
            try JSONDecoder().decode(Status.self, from: Data(try runCapturing([sandbox, "status", "--name", name, "-o", "json"]).1.utf8))
        }
        func kvstoreLine(_ node: String) throws -> String {
            try runCapturing([sandbox, "cilium", "--name", name, node, "--", "status"]).1
                .split(separator: "\n").first { $0.hasPrefix("KVStore:") }.map(String.init) ?? ""
        }
        let st = try status()
        let a = try #require(st.pods.first { $0.name == "a" }), b = try #require(st.pods.first { $0.name == "b" })
        let ns = { (n: String) in try NetworkNamespace(named: n) }
        #expect(try eventually(.seconds(10)) { try tcpEcho(from: ns(a.namespace), to: ns(b.namespace), address: b.address) == "hello" })

        // etcd goes away for 30 s: agents stay up, say so, and the datapath keeps working.
        #expect(try runCapturing([sandbox, "etcd", "--name", name, "stop"]).0 == 0)
        #expect(try eventually(.seconds(10)) { try kvstoreLine("node1").contains("Failure") })
        Thread.sleep(forTimeInterval: 25)
        #expect(try runCapturing([sandbox, "status", "--name", name]).0 == 0) // both agents answer
        #expect(try tcpEcho(from: ns(a.namespace), to: ns(b.namespace), address: b.address) == "hello")
        #expect(try tcpEcho(from: ns(b.namespace), to: ns(a.namespace), address: a.address) == "hello")

        // etcd returns: status recovers and new state converges on both nodes.
        #expect(try runCapturing([sandbox, "etcd", "--name", name, "start"]).0 == 0)
        #expect(try eventually(.seconds(15)) { try kvstoreLine("node1").contains("Ok etcd") && kvstoreLine("node2").contains("Ok etcd") })
        #expect(try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node2", "--pod", "c"]).0 == 0)
        let c = try #require(try status().pods.first { $0.name == "c" })
        #expect(try eventually(.seconds(15)) { try tcpEcho(from: ns(a.namespace), to: ns(c.namespace), address: c.address) == "hello" })
    }

    @Test func exhaustedPoolIsAClearCNIErrorAndLeavesNothing() throws {
        let name = "x" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        // A /30 per node: the router and exactly one pod.
        #expect(try runCapturing([sandbox, "up", "--name", name, "--nodes", "1", "--set", "ipam.operator.clusterPoolIPv4MaskSize=30"]).0 == 0)
        #expect(try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node1", "--pod", "one"]).0 == 0)
        let links = { try runCapturing([sandbox, "exec", "--name", name, "node1", "--", "ip", "-o", "link"]).1.split(separator: "\n").count }
        let before = try links()
        let full = try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node1", "--pod", "two"])
        #expect(full.0 != 0)
        #expect(full.1.contains("exhausted"), "\(full.1)")
        #expect(full.1.contains("code 101"), "\(full.1)")
        #expect(try links() == before) // no veth left behind
        #expect(!FileManager.default.fileExists(atPath: "/run/netns/csbx-\(name)-pod-two"))
        let ipam = try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "status"]).1
        #expect(ipam.contains("IPv4: 1/1 allocated from 10.0.0.0/30"))
    }

    @Test func podNamedByTheRuntimeGetsTheLabelsOfItsManifest() throws {
        let name = "r" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        let dir = try TempDir("resources")
        try """
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: web
          namespace: default
          labels: {app: web, tier: front}
        spec: {containers: [{name: web, image: busybox}]}
        """.write(toFile: dir.path + "/pods.yaml", atomically: true, encoding: .utf8)
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        #expect(try runCapturing([sandbox, "up", "--name", name, "--nodes", "1", "--set", "agent.resourceDirectory=\(dir.path)"]).0 == 0)
        // The sandbox calls cilium-cni with K8S_POD_NAMESPACE=default;K8S_POD_NAME=<pod> and no labels here.
        #expect(try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node1", "--pod", "web"]).0 == 0)
        #expect(try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node1", "--pod", "nomanifest"]).0 == 0)
        let st = try JSONDecoder().decode(Status.self, from: Data(try runCapturing([sandbox, "status", "--name", name, "-o", "json"]).1.utf8))
        let web = try #require(st.pods.first { $0.name == "web" })
        #expect(web.labels == ["k8s:app=web", "k8s:io.cilium.k8s.policy.cluster=\(name)", "k8s:io.kubernetes.pod.namespace=default", "k8s:tier=front"])
        #expect((web.identity ?? 0) >= 256)
        // Without labels and without a manifest: reserved:init until it has some.
        #expect(st.pods.first { $0.name == "nomanifest" }?.identity == 5)
    }
}
