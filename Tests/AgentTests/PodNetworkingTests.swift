import API
import Datapath
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
        #expect(web.labels == ["k8s:app=web", "k8s:tier=front"])

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
}
