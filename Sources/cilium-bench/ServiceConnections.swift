#if canImport(LoadBalancer)
import Datapath
import LinuxNet
// SOCK_STREAM: glibc's module map lists only its umbrella header, so which C module "owns" <sys/socket.h>'s
// declarations depends on the order modules load; with libcurl's module in the build, release builds found
// SOCK_STREAM only through CBPF (whose headers include <net/if.h>).
import CBPF
import Foundation
import Glibc

/// New TCP connections per second to a ClusterIP among 10, 1,000 and 10,000
/// services (fillers with 2-10 backends each; the measured one, in the
/// middle of the list, has two real backends), through the datapath (a pod
/// in a one-node sandbox, kubeProxyReplacement) and through kube-proxy-style
/// iptables NAT rules generated for exactly the same services and backends
/// (a client namespace whose OUTPUT chain holds them, a veth to the backends).
enum ServiceConnections {
    static let measuredVIP = "10.200.0.10"

    struct Service {
        var vip: String
        var backends: [String] // "addr:port"
    }

    /// The same services for both sides; `real` are the measured service's backends.
    static func services(_ count: Int, real: [String]) -> [Service] {
        var rng = SystemRandomNumberGenerator()
        var out: [Service] = []
        for i in 0..<count - 1 {
            let n = Int.random(in: 2...10, using: &rng)
            out.append(Service(vip: "10.\(96 + i / 65536).\((i / 256) % 256).\(i % 256)",
                               backends: (0..<n).map { "10.253.\($0).\(i % 250 + 1):8080" }))
        }
        out.insert(Service(vip: measuredVIP, backends: real), at: out.count / 2)
        return out
    }

    static func manifests(_ services: [Service]) -> String {
        services.enumerated().map { i, s in
            let eps = s.backends.map { "{\"addresses\": [\"\($0.split(separator: ":")[0])\"]}" }.joined(separator: ", ")
            return """
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s\(i)"},
             "spec": {"clusterIP": "\(s.vip)", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
            ---
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
             "metadata": {"name": "s\(i)-1", "labels": {"kubernetes.io/service-name": "s\(i)"}},
             "ports": [{"name": "http", "port": 8080}], "endpoints": [\(eps)]}
            """
        }.joined(separator: "\n---\n")
    }

    static func iptablesRules(_ services: [Service]) -> String {
        var chains = ["*nat", ":KUBE-SERVICES - [0:0]"], rules = ["-A OUTPUT -j KUBE-SERVICES"]
        for (i, s) in services.enumerated() {
            chains.append(":KUBE-SVC-\(i) - [0:0]")
            rules.append("-A KUBE-SERVICES -d \(s.vip)/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-\(i)")
            for (b, backend) in s.backends.enumerated() {
                chains.append(":KUBE-SEP-\(i)-\(b) - [0:0]")
                let left = s.backends.count - b
                rules.append(left > 1 ? "-A KUBE-SVC-\(i) -m statistic --mode random --probability \(String(format: "%.5f", 1 / Double(left))) -j KUBE-SEP-\(i)-\(b)"
                                      : "-A KUBE-SVC-\(i) -j KUBE-SEP-\(i)-\(b)")
                rules.append("-A KUBE-SEP-\(i)-\(b) -p tcp -m tcp -j DNAT --to-destination \(backend)")
            }
        }
        return (chains + rules + ["COMMIT", ""]).joined(separator: "\n")
    }

    /// A TCP socket listening on `port` of every address (in the calling thread's namespace).
    static func listeningSocket(port: UInt16, backlog: Int32) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, backlog)
        return fd
    }

    /// Accepts and closes connections on port 8080 in `ns` until stopped.
    final class Acceptor: @unchecked Sendable {
        private let fd: Int32
        private let lock = NSLock()
        private var stopped = false
        init(in ns: NetworkNamespace) throws {
            fd = try ns.run { () -> Int32 in
                let fd = listeningSocket(port: 8080, backlog: 1024)
                // accept() wakes every 100 ms to see whether to stop (no poll() per connection:
                // the harness should cost both sides as little as it can).
                var tv = timeval(tv_sec: 0, tv_usec: 100_000)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                return fd
            }
            let listener = fd
            Thread.detachNewThread { [self] in
                while !self.isStopped {
                    let c = accept(listener, nil, nil)
                    if c >= 0 { close(c) }
                }
            }
        }
        var isStopped: Bool { lock.withLock { stopped } }
        func stop() {
            lock.withLock { stopped = true }
            Thread.sleep(forTimeInterval: 0.2)
            close(fd)
        }
    }

    /// Connections per second from `ns` to VIP:80 (connect, then close with RST: no TIME_WAIT).
    static func rate(from ns: NetworkNamespace, seconds: Int = 2) throws -> Double {
        try ns.run { () -> Double in
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = UInt16(80).bigEndian
            inet_pton(AF_INET, measuredVIP, &a.sin_addr)
            var n = 0, failed = 0
            let end = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < end {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var tv = timeval(tv_sec: 1, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
                let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
                close(fd)
                if ok { n += 1 } else { failed += 1 }
                if failed > 20 { break }
            }
            return Double(n) / Double(seconds)
        }
    }

    /// Moves this whole process into `cgroup` (its sockets then meet that cgroup's socket LB hooks).
    static func join(cgroup: String) {
        try? "\(getpid())".write(toFile: cgroup + "/cgroup.procs", atomically: false, encoding: .utf8)
    }

    /// One-byte TCP ping-pong for 2 s from `ns` to address:port (an echo server listens there); round trips per second.
    static func requestResponse(from ns: NetworkNamespace, to address: String, port: UInt16) throws -> Double {
        try ns.run { () -> Double in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            inet_pton(AF_INET, address, &a.sin_addr)
            guard withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else {
                throw BenchError("connect to \(address):\(port) failed")
            }
            var b: UInt8 = 1
            var n = 0
            let end = ContinuousClock.now + .seconds(2)
            while ContinuousClock.now < end {
                guard send(fd, &b, 1, 0) == 1, recv(fd, &b, 1, 0) == 1 else { break }
                n += 1
            }
            return Double(n) / 2
        }
    }

    /// Echoes single bytes on `port` in `ns`, one connection at a time, until stopped.
    final class Echo: @unchecked Sendable {
        private let fd: Int32
        private let lock = NSLock()
        private var stopped = false
        init(in ns: NetworkNamespace, port: UInt16) throws {
            fd = try ns.run { listeningSocket(port: port, backlog: 16) }
            let listener = fd
            Thread.detachNewThread { [self] in
                while !self.isStopped {
                    var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                    guard poll(&p, 1, 100) == 1 else { continue }
                    let c = accept(listener, nil, nil)
                    guard c >= 0 else { continue }
                    var one: Int32 = 1
                    setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    var b: UInt8 = 0
                    while recv(c, &b, 1, 0) == 1 { _ = send(c, &b, 1, 0) }
                    close(c)
                }
            }
        }
        var isStopped: Bool { lock.withLock { stopped } }
        func stop() {
            lock.withLock { stopped = true }
            Thread.sleep(forTimeInterval: 0.2)
            close(fd)
        }
    }

    static func run(bin: String) throws -> [(String, String, String)] {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = "svcb\(tag.prefix(6))"
        let client = try NetworkNamespace.create(named: "cbi-c-\(tag)"), server = try NetworkNamespace.create(named: "cbi-s-\(tag)")
        let nftClient = try NetworkNamespace.create(named: "cbi-n-\(tag)")
        var acceptors: [Acceptor] = []
        defer {
            for a in acceptors { a.stop() }
            try? client.delete()
            try? nftClient.delete()
            try? server.delete()
            _ = PodPaths.shell([bin + "/cilium-sandbox", "down", "--name", sandbox])
        }
        // iptables side: client 10.254.0.1 -- veth -- server 10.254.0.2 and .3.
        let nlc = try Netlink(namespace: client), nls = try Netlink(namespace: server)
        try server.withFD { try nlc.createVeth(name: "vc", peerName: "vs", peerNamespaceFD: $0) }
        try nlc.addAddress(IPv4Prefix("10.254.0.1/16")!, to: "vc")
        try nls.addAddress(IPv4Prefix("10.254.0.2/16")!, to: "vs")
        try nls.addAddress(IPv4Prefix("10.254.0.3/16")!, to: "vs")
        for (nl, dev) in [(nlc, "vc"), (nls, "vs")] {
            try nl.setLinkUp("lo")
            try nl.setLinkUp(.name(dev))
        }
        try nlc.replaceRoute(Netlink.Route(destination: IPv4Prefix("10.0.0.0/8")!, gateway: IPv4Address("10.254.0.2")))
        // nftables side (kube-proxy's nftables mode): client 10.255.0.1 -- veth -- the same server, 10.255.0.2 and .3.
        let nln = try Netlink(namespace: nftClient)
        try server.withFD { try nln.createVeth(name: "vn", peerName: "vs2", peerNamespaceFD: $0) }
        try nln.addAddress(IPv4Prefix("10.255.0.1/16")!, to: "vn")
        try nls.addAddress(IPv4Prefix("10.255.0.2/16")!, to: "vs2")
        try nls.addAddress(IPv4Prefix("10.255.0.3/16")!, to: "vs2")
        for (nl, dev) in [(nln, "lo"), (nln, "vn"), (nls, "vs2")] { try nl.setLinkUp(.name(dev)) }
        try nln.replaceRoute(Netlink.Route(destination: IPv4Prefix("10.0.0.0/8")!, gateway: IPv4Address("10.255.0.2")))
        acceptors.append(try Acceptor(in: server))

        // Datapath side: a sandbox node with a client pod and two backend pods.
        guard PodPaths.shell([bin + "/cilium-sandbox", "up", "--name", sandbox, "--nodes", "1", "--set", "kubeProxyReplacement=true"]).0 == 0
        else { throw BenchError("cannot build the service benchmark sandbox") }
        for pod in ["client", "b1", "b2"] {
            guard PodPaths.shell([bin + "/cilium-sandbox", "pod", "add", "--name", sandbox, "--node", "node1", "--pod", pod]).0 == 0
            else { throw BenchError("cannot add pod \(pod)") }
        }
        struct S: Decodable { struct P: Decodable { var name: String; var namespace: String; var address: String }; var pods: [P] }
        let pods = try JSONDecoder().decode(S.self, from: Data(PodPaths.shell([bin + "/cilium-sandbox", "status", "--name", sandbox, "-o", "json"]).1.utf8)).pods
        let byName = Dictionary(uniqueKeysWithValues: pods.map { ($0.name, $0) })
        for b in ["b1", "b2"] { acceptors.append(try Acceptor(in: NetworkNamespace(named: byName[b]!.namespace))) }
        let podClient = try NetworkNamespace(named: byName["client"]!.namespace)
        // node1's cgroup (the sandbox gives each node one; its agent's socket LB serves it).
        struct State: Decodable { struct N: Decodable { var cgroup: String? }; var nodes: [N] }
        let stateData = FileManager.default.contents(atPath: "/run/cilium-sandbox/\(sandbox)/state.json") ?? Data()
        let nodeCgroup = (try? JSONDecoder().decode(State.self, from: stateData))?.nodes.first?.cgroup
        let rootCgroup = CGroup2.mountPoint()
        defer { if let rootCgroup { join(cgroup: rootCgroup) } }
        let real = ["b1", "b2"].map { byName[$0]!.address + ":8080" }
        let dir = NSTemporaryDirectory() + "cilium-bench-svc-\(tag)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        var rows: [(String, String, String)] = []
        var ours10 = 0.0
        let counts = BenchMode.pick([10, 1000, 10_000], quick: [10, 1000])
        let rounds = BenchMode.pick(3, quick: 1), seconds = BenchMode.pick(2, quick: 1)
        for count in counts {
            // Ours: the same fillers, the measured service's backends are the two pods.
            let mine = services(count, real: real)
            try manifests(mine).write(toFile: dir + "/svc.json", atomically: true, encoding: .utf8)
            let applied = PodPaths.shell([bin + "/cilium-sandbox", "cilium", "--name", sandbox, "node1", "--", "service", "apply", "-f", dir + "/svc.json"])
            guard applied.0 == 0 else { throw BenchError("service apply (\(count)) failed: \(applied.1)") }
            // iptables: the same services, the measured one pointing at the server namespace.
            var theirs = mine
            if let i = theirs.firstIndex(where: { $0.vip == measuredVIP }) { theirs[i].backends = ["10.254.0.2:8080", "10.254.0.3:8080"] }
            try iptablesRules(theirs).write(toFile: dir + "/rules", atomically: true, encoding: .utf8)
            guard PodPaths.shell(["sh", "-c", "ip netns exec \(client.name!) iptables-restore < \(dir)/rules"]).0 == 0 else {
                throw BenchError("iptables-restore failed (is iptables installed? scripts/install-deps.sh)")
            }
            // nftables: the same services in kube-proxy's nftables layout, the measured one pointing at the server.
            let nft = theirs.map { service in
                KubeProxyNFTables.Service(vip: service.vip, port: 80, backends: service.vip == measuredVIP
                                          ? ["10.255.0.2:8080", "10.255.0.3:8080"] : service.backends)
            }
            try KubeProxyNFTables.load(KubeProxyNFTables.ruleset(nft), into: nftClient, scratch: dir)
            var best = (ours: 0.0, perPacket: 0.0, ipt: 0.0, nft: 0.0)
            for _ in 0..<rounds {
                // Socket LB (the default): this process joins node1's cgroup for our measurement.
                if let nodeCgroup { join(cgroup: nodeCgroup) }
                best.ours = max(best.ours, try rate(from: podClient, seconds: seconds))
                if let rootCgroup { join(cgroup: rootCgroup) }
                best.perPacket = max(best.perPacket, try rate(from: podClient, seconds: seconds))
                best.ipt = max(best.ipt, try rate(from: client, seconds: seconds))
                best.nft = max(best.nft, try rate(from: nftClient, seconds: seconds))
            }
            if count == counts[0] { ours10 = best.ours }
            let last = count == counts.last
            rows.append(("service: new TCP connections/s, \(count) services",
                         String(format: "%.0f vs iptables %.0f (%.2fx), nftables %.0f (%.2fx)", best.ours, best.ipt,
                                best.ours / max(best.ipt, 1), best.nft, best.ours / max(best.nft, 1)),
                         last ? ">= 3x iptables, >= 1.0x nftables" : ""))
            rows.append(("  per packet (no socket LB), \(count) services",
                         String(format: "%.0f (%.2fx iptables, %.2fx nftables)", best.perPacket, best.perPacket / max(best.ipt, 1),
                                best.perPacket / max(best.nft, 1)), ""))
            if last {
                rows.append(("  \(count) services vs our own \(counts[0])", String(format: "%.2fx", best.ours / max(ours10, 1)), ">= 0.9x"))
            }
        }
        // Request/response on an established connection: through a service address vs straight to the backend.
        let echo = try Echo(in: NetworkNamespace(named: byName["b1"]!.namespace), port: 9000)
        defer { echo.stop() }
        let rrManifest = """
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "rr"},
             "spec": {"clusterIP": "10.200.0.20", "ports": [{"name": "rr", "port": 9000, "targetPort": 9000}]}}
            ---
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
             "metadata": {"name": "rr-1", "labels": {"kubernetes.io/service-name": "rr"}},
             "ports": [{"name": "rr", "port": 9000}], "endpoints": [{"addresses": ["\(byName["b1"]!.address)"]}]}
            """
        try rrManifest.write(toFile: dir + "/rr.json", atomically: true, encoding: .utf8)
        guard PodPaths.shell([bin + "/cilium-sandbox", "cilium", "--name", sandbox, "node1", "--", "service", "apply", "-f", dir + "/rr.json"]).0 == 0
        else { throw BenchError("cannot apply the request/response service") }
        var rr = (direct: 0.0, perPacket: 0.0, socket: 0.0)
        for _ in 0..<rounds {
            rr.direct = max(rr.direct, try requestResponse(from: podClient, to: byName["b1"]!.address, port: 9000))
            rr.perPacket = max(rr.perPacket, try requestResponse(from: podClient, to: "10.200.0.20", port: 9000))
            if let nodeCgroup { join(cgroup: nodeCgroup) }
            rr.socket = max(rr.socket, try requestResponse(from: podClient, to: "10.200.0.20", port: 9000))
            if let rootCgroup { join(cgroup: rootCgroup) }
        }
        rows.append(("service: request/response via the service vs the backend",
                     String(format: "%.0f vs %.0f (%.2fx); per packet %.2fx", rr.socket, rr.direct, rr.socket / max(rr.direct, 1),
                            rr.perPacket / max(rr.direct, 1)), ""))
        return rows
    }
}
#endif
