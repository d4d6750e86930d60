import API
import Foundation
import Glibc
import Spawning
import Testing
import TestSupport

/// Issue 18, IPsec (`encryption.type: ipsec`): this host's kernel has no ESP, so the agent refuses to start there,
/// naming what is missing; the second kernel (Debian 6.12 under qemu) runs it end to end.
@Suite(.serialized) struct IPsecAgentTests {
    static func keyLine(spi: Int) -> String {
        let key = (0..<20).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        return "\(spi)+ rfc4106(gcm(aes)) \(key) 128\n"
    }

    /// A bad key file is refused with file:line before anything else; a good one on a kernel without ESP refuses the
    /// agent with the kernel options it lacks (it never runs half-started).
    @Test func refusedWithTheReason() throws {
        let dir = try TempDir("ipsec-keys")
        let bad = dir.path + "/bad", good = dir.path + "/good"
        try "3+ rfc4106(gcm(aes)) 00112233 128\n".write(toFile: bad, atomically: true, encoding: .utf8)
        try Self.keyLine(spi: 3).write(toFile: good, atomically: true, encoding: .utf8)
        let agent = try AgentUnderTest("ipsbad", extraConfig: "encryption: {enabled: true, type: ipsec, ipsec: {keyFile: \(bad)}}\n")
        #expect(throws: (any Error).self) { try agent.start() }
        #expect(agent.log.contains("\(bad):1:"), "\(agent.log.suffix(600))")
        agent.stop()
        if SecondKernel.isGuest { return }
        let noESP = try AgentUnderTest("ipsnoesp", extraConfig: "encryption: {enabled: true, type: ipsec, ipsec: {keyFile: \(good)}}\n")
        defer { noESP.stop() }
        do {
            try noESP.start()
            print("this kernel runs ESP: the agent started (nothing to refuse here)")
        } catch {
            #expect(noESP.log.contains("cannot run ESP") && noESP.log.contains("CONFIG_INET_ESP"), "\(noESP.log.suffix(600))")
        }
    }

    /// Under the second kernel: two sandbox nodes with IPsec (per-tunnel keys), pods a and b. Only ESP crosses the
    /// underlay (what each node sends, captured on both); TCP, UDP and ICMP work; `cilium encrypt status` counts the
    /// key; a rotation (a new SPI in the key file) during a transfer loses nothing and the xfrm error counters stay 0;
    /// a bad key file is refused and the keys in force stay; turned off, no state, policy or rule is left.
    @Test func ipsecUnderTheSecondKernel() throws {
        let run = try SecondKernel.run(suite: "IPsecAgentTests", test: "ipsecUnderTheSecondKernel") {
            let keys = "/tmp/ipsec-\(UInt32.random(in: 0...UInt32.max))"
            try Self.keyLine(spi: 3).write(toFile: keys, atomically: true, encoding: .utf8)
            defer { unlink(keys) }
            let c = try WireGuardTrafficTests.Cluster(["encryption.type=ipsec", "encryption.ipsec.keyFile=\(keys)",
                                                       "encryption.ipsec.keyRotationDuration=5m",
                                                       "prometheus.enabled=true"], fallback: false)
            defer { c.down() }
            func status(_ node: String) throws -> EncryptionStatusResponse {
                try JSONDecoder().decode(EncryptionStatusResponse.self, from: Data(try c.cilium(node, ["encrypt", "status", "-o", "json"]).1.utf8))
            }
            try c.waitForPeers("Nodes: 1]", within: .seconds(20))
            #expect(try c.cilium("node1", ["status"]).1.contains("IPsec [SPI: 3, Keys in use: 1, Nodes: 1]"))
            let marker = "IPSEC-\(UInt32.random(in: 0...UInt32.max))"
            try c.serveInB(marker: marker)
            let captures = try ["node1", "node2"].map {
                try WireGuardTrafficTests.Capture(namespace: c.namespace($0), interface: "eth0", file: "/tmp/\(c.name)-\($0).pcap", outgoing: true)
            }
            let tcp = try c.exec("a", "curl -s --max-time 20 http://10.0.1.2:8080/m; echo; curl -s --max-time 60 -o /dev/null -w '%{size_download}' http://10.0.1.2:8080/big")
            #expect(tcp.0 == 0 && tcp.1.contains(marker) && tcp.1.hasSuffix("3000000"), "\(tcp.1)")
            #expect(try runCapturing(["ip", "netns", "exec", c.namespace("pod-a"), "bash", "-c", "echo UDP-\(marker) > /dev/udp/10.0.1.2/9999"]).0 == 0)
            #expect(try c.exec("a", "busybox ping -c 2 -W 3 -p 5a -s 64 10.0.1.2").0 == 0)
            var esp = 0
            for capture in captures {
                let (lines, bytes) = try capture.stop()
                #expect(bytes.range(of: Data(marker.utf8)) == nil, "the marker crossed the underlay in clear")
                for line in lines where line.contains(" IP ") && line.contains("172.30.0.11") && line.contains("172.30.0.12") {
                    #expect(line.contains(": ESP(spi=0x00000003"), "between the nodes, not ESP: \(line)")
                    esp += line.contains(": ESP(") ? 1 : 0
                }
            }
            #expect(esp > 2000, "3 MB went as ESP (\(esp) packets)")
            print("underlay: \(esp) ESP packets between the nodes, nothing else")
            let st = try status("node1")
            #expect(st.mode == "IPsec" && st.ipsec?.keysInUse == 1 && st.ipsec?.errorCount == 0, "\(st)")
            let metrics = try runCapturing(["ip", "netns", "exec", c.namespace("node1"), "curl", "-s", "http://127.0.0.1:9962/metrics"]).1
            // node1 downloaded: many packets decrypted, its ACKs encrypted.
            let count = { (direction: String) -> Double in
                metrics.split(separator: "\n").first { $0.hasPrefix("cilium_ipsec_packets_total{direction=\"\(direction)\"}") }
                    .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } ?? 0
            }
            #expect(count("decrypted") > 1000 && count("encrypted") > 50, "\(metrics.split(separator: "\n").filter { $0.contains("ipsec") })")
            let states = try runCapturing(["ip", "-n", c.namespace("node1"), "xfrm", "state"]).1
            #expect(states.contains("mark 0x10e00/0xffffff00") || states.contains("mark 0x13e00/0xffffff00"), "\(states)")

            // Rotation to SPI 4 during a transfer.
            let out = try c.transfer(rate: "500K", delay: 1_500_000) {
                try Self.keyLine(spi: 4).write(toFile: keys, atomically: true, encoding: .utf8)
            }
            #expect(out == "200 3000000", "the transfer across the rotation: \(out)")
            let rotated = try status("node1")
            #expect(rotated.ipsec?.keysInUse == 2 && rotated.ipsec?.errorCount == 0, "\(rotated)")
            #expect(try c.cilium("node2", ["status"]).1.contains("IPsec [SPI: 4"))

            // A bad key file: refused, the keys in force stay, traffic goes on.
            try "4+ rfc4106(gcm(aes)) nothex 128\n".write(toFile: keys, atomically: true, encoding: .utf8)
            var refused = ""
            for _ in 0..<50 where !refused.contains("the keys in force stay") {
                usleep(200_000)
                refused = try c.cilium("node1", ["status", "--verbose"]).1
            }
            #expect(refused.contains("\(keys):1:") && refused.contains("the keys in force stay"), "\(refused)")
            #expect(try c.exec("a", "curl -s --max-time 10 http://10.0.1.2:8080/m").1 == marker)

            // Turned off: nothing of it is left.
            for node in ["node1", "node2"] { #expect(try c.cilium(node, ["config", "set", "encryption.enabled=false"]).0 == 0) }
            usleep(500_000)
            #expect(try runCapturing(["ip", "-n", c.namespace("node1"), "xfrm", "state"]).1.isEmpty)
            #expect(try runCapturing(["ip", "-n", c.namespace("node1"), "xfrm", "policy"]).1.isEmpty)
            #expect(!(try runCapturing(["ip", "-n", c.namespace("node1"), "rule"]).1.contains("0xd00")))
            #expect(try c.exec("a", "curl -s --max-time 10 http://10.0.1.2:8080/m").1 == marker, "plain again")
        }
        if let run { #expect(run.passed, "under the second kernel (exit \(run.status))") }
    }
}
