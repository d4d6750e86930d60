import API
import Datapath
import Foundation
import Glibc

/// Pod to pod across two sandbox nodes (VXLAN through the datapath) versus a
/// plain kernel VXLAN between two namespaces, in the same run; and how fast a
/// new endpoint (new labels, so a new cluster identity) reaches the other node.
enum CrossNode {
    static func run(bin: String) throws -> [(String, String, String)] {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = "bx\(tag.prefix(6))"
        let a = try NetworkNamespace.create(named: "cbx-a-\(tag)")
        let b = try NetworkNamespace.create(named: "cbx-b-\(tag)")
        defer {
            try? a.delete()
            try? b.delete()
            _ = PodPaths.shell([bin + "/cilium-sandbox", "down", "--name", sandbox])
        }
        // Baseline: veth underlay + a plain VXLAN device (VNI 42) on each side.
        let nla = try Netlink(namespace: a), nlb = try Netlink(namespace: b)
        try b.withFD { try nla.createVeth(name: "ua", peerName: "ub", peerNamespaceFD: $0, mtu: 1600) }
        try nla.addAddress(IPv4Prefix("10.254.0.1/24")!, to: "ua")
        try nlb.addAddress(IPv4Prefix("10.254.0.2/24")!, to: "ub")
        for (ns, dev, local, remote, overlay) in [(a, "ua", "10.254.0.1", "10.254.0.2", "10.254.1.1/24"),
                                                  (b, "ub", "10.254.0.2", "10.254.0.1", "10.254.1.2/24")] {
            let n = ns.name!
            for cmd in [["ip", "-n", n, "link", "set", dev, "up"], ["ip", "-n", n, "link", "set", "lo", "up"],
                        ["ip", "-n", n, "link", "add", "vx0", "type", "vxlan", "id", "42", "local", local, "remote", remote,
                         "dstport", "8472", "dev", dev],
                        ["ip", "-n", n, "addr", "add", overlay, "dev", "vx0"], ["ip", "-n", n, "link", "set", "vx0", "up"]] {
                guard PodPaths.shell(cmd).0 == 0 else { throw BenchError("baseline setup failed: \(cmd.joined(separator: " "))") }
            }
        }
        let plain = PodPaths.Pair(from: a, to: b, address: "10.254.1.2")

        guard PodPaths.shell([bin + "/cilium-sandbox", "up", "--name", sandbox, "--nodes", "2"]).0 == 0,
              PodPaths.shell([bin + "/cilium-sandbox", "pod", "add", "--name", sandbox, "--node", "node1", "--pod", "client"]).0 == 0,
              PodPaths.shell([bin + "/cilium-sandbox", "pod", "add", "--name", sandbox, "--node", "node2", "--pod", "server"]).0 == 0
        else { throw BenchError("cannot build the two-node benchmark sandbox") }
        struct S: Decodable {
            struct P: Decodable { var name: String; var namespace: String; var address: String }
            struct N: Decodable { var name: String; var socket: String }
            var pods: [P]
            var nodes: [N]
        }
        let st = try JSONDecoder().decode(S.self, from: Data(PodPaths.shell([bin + "/cilium-sandbox", "status", "--name", sandbox, "-o", "json"]).1.utf8))
        guard let c = st.pods.first(where: { $0.name == "client" }), let s = st.pods.first(where: { $0.name == "server" }) else {
            throw BenchError("benchmark pods missing")
        }
        let pods = PodPaths.Pair(from: try NetworkNamespace(named: c.namespace), to: try NetworkNamespace(named: s.namespace), address: s.address)
        // Let node1 learn the server's address before measuring.
        Thread.sleep(forTimeInterval: 1)

        var rows: [(String, String, String)] = []
        // Alternating, best of three each (one sample each is at the mercy of the shared 2-core machine).
        let rounds = BenchMode.pick(3, quick: 1), seconds = BenchMode.pick(3, quick: 1)
        var rrPlain = 0.0, rrPods = 0.0
        var tPlain: Double?, tPods: Double?
        for _ in 0..<rounds {
            rrPlain = max(rrPlain, try PodPaths.requestResponse(plain, seconds: seconds))
            rrPods = max(rrPods, try PodPaths.requestResponse(pods, seconds: seconds))
        }
        for _ in 0..<rounds {
            if let t = PodPaths.iperf(plain, seconds: seconds) { tPlain = max(tPlain ?? 0, t) }
            if let t = PodPaths.iperf(pods, seconds: seconds) { tPods = max(tPods ?? 0, t) }
        }
        rows.append(("pod to pod, two nodes (VXLAN): TCP request/response per s",
                     String(format: "%.0f vs plain VXLAN %.0f (%.2fx)", rrPods, rrPlain, rrPods / rrPlain), ">= 0.95x"))
        if let tPlain, let tPods {
            rows.append(("pod to pod, two nodes (VXLAN): TCP throughput",
                         String(format: "%.2f vs plain VXLAN %.2f Gbit/s (%.2fx)", tPods, tPlain, tPods / tPlain), ">= 0.95x"))
        } else {
            rows.append(("pod to pod, two nodes (VXLAN): TCP throughput", "not measured: iperf3 failed or is missing", ">= 0.95x"))
        }

        // Propagation: a pod with new labels on node2 until node1's ipcache has it.
        let node1 = UnixHTTPClient(socketPath: st.nodes[0].socket, timeout: 5)
        var ms: [Double] = []
        let count = BenchMode.pick(20, quick: 5)
        for i in 0..<count {
            let out = PodPaths.shell([bin + "/cilium-sandbox", "pod", "add", "--name", sandbox, "--node", "node2",
                                      "--pod", "n\(i)", "--labels", "app=n\(i)"]).1
            guard let addr = out.split(separator: " ").dropFirst(4).first.map(String.init) else {
                throw BenchError("pod add n\(i): \(out)")
            }
            let t = ContinuousClock.now
            while ContinuousClock.now - t < .seconds(10) {
                if let (code, body) = try? node1.send(method: "GET", path: "/v1/map/ipcache"), code == 200,
                   let entries = try? JSONDecoder().decode([BPFIPCacheEntry].self, from: body),
                   entries.contains(where: { $0.prefix == addr + "/32" }) { break }
                usleep(500)
            }
            ms.append(Bench.seconds(ContinuousClock.now - t) * 1000)
        }
        ms.sort()
        rows.append(("new endpoint + identity on node2 -> node1's ipcache (etcd)",
                     String(format: "p50 %.1f ms, p99 %.1f ms (\(count) pods)", ms[count / 2], ms[count - 1]), ""))
        return rows
    }
}
