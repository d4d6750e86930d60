import API
import Foundation
import Glibc
import Spawning
import Testing
import TestSupport

/// Issue 18: traffic between pods of two sandbox nodes with WireGuard (wireguard-go, the userspace fallback). What
/// crosses the underlay is captured with tcpdump on node1's underlay device; what the pod received, inside pod b.
@Suite(.serialized) struct WireGuardTrafficTests {
    static var tools: String? {
        for tool in ["/usr/bin/wireguard-go", "/usr/bin/tcpdump"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is not installed (scripts/install-deps.sh installs it)"
        }
        return nil
    }

    /// A two-node sandbox with WireGuard and pods a (node1, 10.0.0.2) and b (node2, 10.0.1.2).
    final class Cluster {
        let name = "wt" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        init(_ settings: [String], fallback: Bool = true) throws {
            let up = try runCapturing([sandbox, "up", "--name", name, "--nodes", "2", "--set", "encryption.enabled=true",
                                       "--set", "encryption.wireguard.userspaceFallback=\(fallback)"] + settings.flatMap { ["--set", $0] })
            guard up.0 == 0 else {
                down()
                throw TestFailure("sandbox up: \(up.1)")
            }
            for (pod, node) in [("a", "node1"), ("b", "node2")] {
                let r = try runCapturing([sandbox, "pod", "add", "--name", name, "--node", node, "--pod", pod, "--labels", "app=\(pod)"])
                guard r.0 == 0 else {
                    down()
                    throw TestFailure("pod add \(pod): \(r.1)")
                }
            }
        }
        func down() {
            _ = try? runCapturing([sandbox, "down", "--name", name])
            try? FileManager.default.removeItem(atPath: "/tmp/\(name)-www")
        }
        /// Pod a downloads pod b's 3 MB file at `rate` while `during` runs (after `delay`); curl's "code size".
        func transfer(rate: String = "1M", delay: useconds_t = 1_000_000, during: () throws -> Void) throws -> String {
            let t = try ChildProcess.spawnCapturing([sandbox, "exec", "--name", name, "a", "--", "curl", "-s", "--max-time", "60",
                                                     "--limit-rate", rate, "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                                                     "http://10.0.1.2:8080/big"])
            usleep(delay)
            // The action must fall inside the transfer, or the test proves nothing.
            var status: Int32 = 0
            if waitpid(t.pid, &status, WNOHANG) != 0 { throw TestFailure("the transfer ended before the action (a slow machine?)") }
            try during()
            let out = String(decoding: ChildProcess.readAll(t.output), as: UTF8.self)
            close(t.output)
            _ = ChildProcess.wait(t.pid)
            return out
        }
        /// Until both nodes' status says `what` (their WireGuard peer by default); fails after `within`.
        func waitForPeers(_ what: String = "Peers: 1)", within: Duration = .seconds(10)) throws {
            let deadline = ContinuousClock.now + within
            for node in ["node1", "node2"] {
                while try !cilium(node, ["status"]).1.contains(what) {
                    guard ContinuousClock.now < deadline else { throw TestFailure("\(node)'s status does not say \(what) after \(within)") }
                    usleep(100_000)
                }
            }
        }
        deinit { down() }
        func namespace(_ n: String) -> String { "csbx-\(name)-\(n)" }
        @discardableResult func exec(_ target: String, _ command: String) throws -> (Int32, String) {
            try runCapturing([sandbox, "exec", "--name", name, target, "--", "sh", "-c", command])
        }
        func cilium(_ node: String, _ args: [String]) throws -> (Int32, String) {
            try runCapturing([sandbox, "cilium", "--name", name, node, "--"] + args)
        }
        func flows(_ node: String) throws -> [Flow] {
            let out = try runCapturing([sandbox, "hubble", "--name", name, node, "--", "observe", "--last", "1000", "-o", "json"]).1
            struct Envelope: Decodable { var flow: Flow }
            return out.split(separator: "\n").compactMap { try? JSONDecoder().decode(Envelope.self, from: Data($0.utf8)).flow }
        }
        /// Serves files in pod b on port 8080 (a marker and 3 MB of random bytes) with busybox httpd.
        func serveInB(marker: String) throws {
            let dir = "/tmp/\(name)-www"
            let r = try exec("b", "mkdir -p \(dir) && printf '\(marker)' > \(dir)/m && head -c 3000000 /dev/urandom > \(dir)/big"
                             + " && setsid busybox httpd -p 8080 -h \(dir) </dev/null >/dev/null 2>&1")
            guard r.0 == 0 else { throw TestFailure("httpd in pod b: \(r.1)") }
        }
    }

    /// A cluster whose pod b serves files, once both nodes have their peer (nil, printing why, without the tools).
    static func servingCluster(_ settings: [String] = [], marker: String = "x") throws -> Cluster? {
        if let missing = tools {
            print("skipped: \(missing)")
            return nil
        }
        let c = try Cluster(settings)
        try c.serveInB(marker: marker)
        try c.waitForPeers()
        return c
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// tcpdump on one interface of one namespace, written to a file, until stopped.
    final class Capture {
        let file: String
        let pid: Int32
        /// `outgoing`: only what the device sends (`-Q out`): with IPsec the kernel passes decrypted packets through
        /// the device's capture again as if received, which never crossed the wire in clear.
        init(namespace: String, interface: String, file: String, outgoing: Bool = false) throws {
            self.file = file
            unlink(file)
            pid = try ChildProcess.spawn(["ip", "netns", "exec", namespace, "tcpdump", "-n", "-i", interface, "-U", "-w", file]
                                         + (outgoing ? ["-Q", "out"] : []),
                                         output: file + ".log", truncate: true)
            // tcpdump says "listening on ..." once it captures.
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline,
                  (try? String(contentsOfFile: file + ".log", encoding: .utf8))?.contains("listening on") != true {
                usleep(20_000)
            }
        }
        /// Stops the capture; its packets as tcpdump prints them, and its raw bytes.
        func stop() throws -> (lines: [String], bytes: Data) {
            usleep(300_000)
            kill(pid, SIGINT)
            _ = ChildProcess.wait(pid)
            let text = try runCapturing(["tcpdump", "-n", "-r", file]).1
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            unlink(file)
            unlink(file + ".log")
            return (text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("reading from") }, bytes)
        }
    }

    /// TCP (HTTP, 3 MB), UDP and ICMP from pod a to pod b cross the underlay only as WireGuard between the node
    /// addresses (UDP 51871 both ends): no pod address and no byte of a marker the test sends appear there, while
    /// pod b receives all three markers in clear. Hubble says the flow left encrypted.
    @Test func podTrafficCrossesTheUnderlayOnlyInsideWireGuard() throws {
        if let missing = Self.tools {
            print("skipped: \(missing)")
            return
        }
        let c = try Cluster(["prometheus.enabled=true"])
        defer { c.down() }
        #expect(try c.cilium("node1", ["status", "--verbose"]).1.contains("device: wireguard-go (userspace fallback)"))
        try Self.noPlaintextOnTheUnderlay(c)
    }

    /// The same under the second kernel (Debian 6.12, which has WireGuard), without the fallback: cilium_wg0 is the
    /// kernel's device, made and configured by our own netlink code.
    @Test func kernelWireGuardUnderTheSecondKernel() throws {
        let run = try SecondKernel.run(suite: "WireGuardTrafficTests", test: "kernelWireGuardUnderTheSecondKernel") {
            let c = try Cluster(["prometheus.enabled=true"], fallback: false)
            defer { c.down() }
            let status = try c.cilium("node1", ["status", "--verbose"]).1
            #expect(status.contains("device: kernel WireGuard"), "\(status)")
            try c.waitForPeers(within: .seconds(20))
            try Self.noPlaintextOnTheUnderlay(c)
            // A rotation during a transfer loses nothing there too.
            let out = try c.transfer(rate: "500K", delay: 1_500_000) {
                let rotate = try c.cilium("node1", ["encrypt", "rotate-key"])
                #expect(rotate.0 == 0, "\(rotate.1)")
            }
            #expect(out == "200 3000000", "the transfer across the rotation: \(out)")
        }
        if let run { #expect(run.passed, "under the second kernel (exit \(run.status))") }
    }

    static func noPlaintextOnTheUnderlay(_ c: Cluster) throws {
        let marker = "SECRET-\(UInt32.random(in: 0...UInt32.max))"
        try c.serveInB(marker: marker)
        // Until both nodes have their peer, WireGuard drops (nothing leaves in clear).
        try c.waitForPeers()

        let underlay = try Capture(namespace: c.namespace("node1"), interface: "eth0", file: "/tmp/\(c.name)-underlay.pcap")
        let atPod = try Capture(namespace: c.namespace("pod-b"), interface: "eth0", file: "/tmp/\(c.name)-pod.pcap")
        let tcp = try c.exec("a", "curl -s --max-time 10 http://10.0.1.2:8080/m; echo; curl -s --max-time 20 -o /dev/null -w '%{size_download}' http://10.0.1.2:8080/big")
        #expect(tcp.0 == 0 && tcp.1.contains(marker) && tcp.1.hasSuffix("3000000"), "\(tcp.1)")
        // Also to WireGuard's own port: a port says nothing about who sent a packet.
        let udp = try runCapturing(["ip", "netns", "exec", c.namespace("pod-a"), "bash", "-c",
                                    "echo UDP-\(marker) > /dev/udp/10.0.1.2/9999; echo UDP-\(marker) > /dev/udp/10.0.1.2/51871"])
        #expect(udp.0 == 0, "\(udp.1)")
        // ICMP with a payload pattern of its own ('Z', 64 of them).
        let ping = try c.exec("a", "busybox ping -c 2 -W 2 -p 5a -s 64 10.0.1.2")
        #expect(ping.0 == 0, "\(ping.1)")
        let wire = try underlay.stop(), pod = try atPod.stop()

        // Pod b got all three in clear: the capture sees the test's traffic.
        #expect(pod.bytes.range(of: Data(marker.utf8)) != nil, "the HTTP marker reached pod b")
        #expect(pod.bytes.range(of: Data("UDP-\(marker)".utf8)) != nil, "the UDP marker reached pod b")
        #expect(pod.bytes.range(of: Data(String(repeating: "Z", count: 32).utf8)) != nil, "the ICMP payload reached pod b")
        // The underlay: none of it, and between the nodes only WireGuard.
        #expect(wire.bytes.range(of: Data(marker.utf8)) == nil, "a marker byte string crossed the underlay in clear")
        #expect(wire.bytes.range(of: Data(String(repeating: "Z", count: 32).utf8)) == nil, "the ICMP payload crossed the underlay in clear")
        let nodes = ["172.30.0.11", "172.30.0.12"]
        var wireguard = 0
        for line in wire.lines where line.contains(" IP ") {
            #expect(!line.contains(" 10.0."), "a pod address on the underlay: \(line)")
            guard nodes.allSatisfy({ line.contains(" \($0).") || line.contains(" \($0):") || line.contains(" \($0) ") }) else { continue }
            let isWireGuard = line.contains("172.30.0.11.51871 > 172.30.0.12.51871: UDP") || line.contains("172.30.0.12.51871 > 172.30.0.11.51871: UDP")
            #expect(isWireGuard, "between the nodes, not WireGuard: \(line)")
            if isWireGuard { wireguard += 1 }
        }
        #expect(wireguard > 2000, "3 MB went through WireGuard (\(wireguard) datagrams)")
        print("underlay: \(wire.lines.count) packets, \(wireguard) WireGuard datagrams between the nodes, no marker")

        let encrypted = try c.flows("node1").filter { $0.IP?.encrypted == true && $0.IP?.destination == "10.0.1.2" }
        #expect(!encrypted.isEmpty, "Hubble shows flows from a to b that left encrypted")
        #expect(encrypted.allSatisfy { $0.trace_observation_point == "TO_CRYPTO" })
        // On node2, what arrived through cilium_wg0 says so too.
        let arrived = try c.flows("node2").filter { $0.IP?.source == "10.0.0.2" && $0.IP?.destination == "10.0.1.2" }
        #expect(!arrived.isEmpty && arrived.allSatisfy { $0.IP?.encrypted == true }, "\(arrived.map { $0.IP?.encrypted ?? false })")
        // The agent's metrics count what went through cilium_wg0 both ways.
        let metrics = try runCapturing(["ip", "netns", "exec", c.namespace("node1"), "curl", "-s", "http://127.0.0.1:9962/metrics"]).1
        let count = { (direction: String) -> Double in
            metrics.split(separator: "\n").first { $0.hasPrefix("cilium_wireguard_packets_total{direction=\"\(direction)\"}") }
                .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } ?? 0
        }
        print("cilium_wg0 on node1: \(count("encrypted")) packets encrypted, \(count("decrypted")) decrypted")
        #expect(count("encrypted") > 100 && count("decrypted") > 2000, "\(metrics.split(separator: "\n").filter { $0.contains("wireguard") })")
    }

    /// The agent dies (kill -9) during a transfer through WireGuard: the device (its own process) and the
    /// datapath (pinned) carry on, the transfer completes, and the restarted agent adopts the same device.
    @Test func aTransferOutlivesAKilledAgent() throws {
        guard let c = try Self.servingCluster() else { return }
        defer { c.down() }
        let before = try c.cilium("node1", ["status"]).1
        // 3 MB at 1 MB/s: about 3 s, with the kill 1 s in.
        // While the agent is gone and while it comes back, nothing crosses in clear (node2's datapath keeps node1's key:
        // the restarted agent publishes node1's record only with its key).
        let underlay = try Capture(namespace: c.namespace("node1"), interface: "eth0", file: "/tmp/\(c.name)-kill.pcap")
        let out = try c.transfer {
            let restart = try runCapturing([c.sandbox, "agent", "--name", c.name, "node1", "restart", "--kill"])
            #expect(restart.0 == 0, "\(restart.1)")
            usleep(1_000_000)
        }
        let wire = try underlay.stop()
        let between = wire.lines.filter { $0.contains(" IP ") && $0.contains("172.30.0.11") && $0.contains("172.30.0.12") }
        #expect(between.count > 1000 && between.allSatisfy { $0.contains(".51871: UDP") },
                "\(between.filter { !$0.contains(".51871: UDP") }.prefix(3))")
        #expect(out == "200 3000000", "the transfer across the kill: \(out)")
        let pubkey = { (s: String) in s.range(of: "Pubkey: ").map { String(s[$0.upperBound...].prefix { $0 != "," }) } }
        #expect(pubkey(try c.cilium("node1", ["status"]).1) == pubkey(before), "the restarted agent adopted the same device and key")
    }

    /// Strict mode: once node2 stops encrypting (its record loses its key), node1 drops pod a's packets to pod b
    /// instead of sending them in clear, with upstream's reason, and says so in Hubble.
    @Test func strictModeDropsWhatWouldLeaveUnencrypted() throws {
        guard let c = try Self.servingCluster(["encryption.strictMode.cidr=10.0.0.0/16", "encryption.strictMode.enabled=true"],
                                              marker: "strict") else { return }
        defer { c.down() }
        #expect(try c.exec("a", "curl -s --max-time 5 http://10.0.1.2:8080/m").1 == "strict", "encrypted, it passes")

        #expect(try c.cilium("node2", ["config", "set", "encryption.enabled=false"]).0 == 0)
        // node1's ipcache loses node2's key.
        func unkeyed() throws -> Bool {
            try c.cilium("node1", ["bpf", "ipcache", "list"]).1.split(separator: "\n")
                .contains { $0.hasPrefix("10.0.1.2/32") && $0.contains("encryptkey=0") }
        }
        let until = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < until, try !unkeyed() { usleep(50_000) }
        #expect(try unkeyed(), "node2's pod has no key in node1's ipcache")
        let r = try c.exec("a", "curl -s --max-time 3 http://10.0.1.2:8080/m")
        #expect(r.0 != 0 && !r.1.contains("strict"), "strict mode lets nothing through unencrypted: \(r)")
        let drops = try c.flows("node1").filter { $0.verdict == "DROPPED" && $0.IP?.destination == "10.0.1.2" }
        #expect(drops.contains { $0.drop_reason_desc == "UNENCRYPTED_TRAFFIC" }, "\(drops.map { $0.drop_reason_desc ?? "-" })")
        let metrics = try c.cilium("node1", ["bpf", "metrics", "list"]).1
        #expect(metrics.contains("Traffic is unencrypted"), "\(metrics)")
    }

    /// `cilium encrypt rotate-key` during a TCP transfer: a new key pair (the key file replaced, 0600), published and
    /// taken up by the peer within 5 s, and the transfer completes (no connection lost). `cilium encrypt status`
    /// shows upstream's text and JSON shapes before and after.
    @Test func rotateKeyKeepsConnections() throws {
        guard let c = try Self.servingCluster() else { return }
        defer { c.down() }
        func status(_ node: String) throws -> EncryptionStatusResponse {
            try JSONDecoder().decode(EncryptionStatusResponse.self, from: Data(try c.cilium(node, ["encrypt", "status", "-o", "json"]).1.utf8))
        }
        let before = try status("node1")
        let iface = try #require(before.wireguard?.interfaces.first)
        #expect(before.mode == "Wireguard" && iface.name == "cilium_wg0" && iface.listenPort == 51871 && iface.peerCount == 1)
        #expect(iface.peers.first?.endpoint == "172.30.0.12:51871" && iface.peers.first?.allowedIPs == ["172.30.0.12/32", "10.0.1.0/24"])
        let text = try c.cilium("node1", ["encrypt", "status"]).1
        #expect(text == "Encryption: Wireguard\nInterface: cilium_wg0\n\tPublic key: \(iface.publicKey)\n\tNumber of peers: 1\n", "\(text)")
        let keyFile = "/run/cilium-sandbox/\(c.name)/node1/state/cilium_wg0.key"
        let oldKeyBytes = FileManager.default.contents(atPath: keyFile)

        var rotated: KeyRotationResponse?
        let result = try c.transfer {
            let (code, out) = try c.cilium("node1", ["encrypt", "rotate-key", "-o", "json"])
            #expect(code == 0, "\(out)")
            rotated = try JSONDecoder().decode(KeyRotationResponse.self, from: Data(out.utf8))
        }
        let r = try #require(rotated)
        #expect(r.previousPublicKey == iface.publicKey && r.publicKey != iface.publicKey)
        #expect(result == "200 3000000", "the transfer across the rotation: \(result)")

        #expect(try status("node1").wireguard?.interfaces.first?.publicKey == r.publicKey)
        #expect(try status("node2").wireguard?.interfaces.first?.peers.map(\.publicKey) == [r.publicKey], "node2 uses the new key")
        var sb = stat()
        #expect(stat(keyFile, &sb) == 0 && sb.st_mode & 0o777 == 0o600 && FileManager.default.contents(atPath: keyFile) != oldKeyBytes)
        #expect(try c.exec("a", "curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://10.0.1.2:8080/big").1 == "200", "a new connection after")
    }

    /// `cilium connectivity test` runs upstream's pod-to-pod-encryption and node-to-node-encryption (with
    /// nodeEncryption on), in tunnel and in native routing mode: both pass, nothing between the nodes was seen in clear.
    @Test(arguments: ["tunnel", "native"]) func connectivityEncryptionScenariosPass(mode: String) throws {
        if let missing = Self.tools {
            print("skipped: \(missing)")
            return
        }
        let native = ["routingMode=native", "autoDirectNodeRoutes=true", "ipv4NativeRoutingCIDR=10.0.0.0/16"]
        let c = try Cluster(["encryption.nodeEncryption=true"] + (mode == "native" ? native : []))
        defer { c.down() }
        let (code, out) = try runCapturing([buildDirectory() + "/cilium", "connectivity", "test", "--sandbox", c.name,
                                            "--test", "pod-to-pod-encryption", "--test", "node-to-node-encryption"])
        #expect(code == 0, "\(out.suffix(3000))")
        #expect(out.contains("Test [pod-to-pod-encryption]") && out.contains("Test [node-to-node-encryption]"), "\(out.suffix(3000))")
        #expect(out.contains("All 2 tests"), "\(out.suffix(1500))")
    }
}
