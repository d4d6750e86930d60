import Datapath
import LinuxNet
import Foundation
import Testing
import TestSupport

/// Tier 4: what runs under the second kernel (Debian 6.12 in qemu, `scripts/kernel-vm`). On the host
/// each test boots the VM and runs itself there; the guest's output is printed with an `[vm]` prefix.
@Suite(.serialized) struct SecondKernelTests {
    static let suite = "SecondKernelTests"

    /// The kernel features the next issues build on exist in the guest: WireGuard, ESP with
    /// rfc4106(gcm(aes)), Geneve, netkit (made through our own rtnetlink client), the fq qdisc.
    @Test func guestKernelHasWhatTheNextIssuesNeed() throws {
        let run = try SecondKernel.run(suite: Self.suite, test: "guestKernelHasWhatTheNextIssuesNeed") {
            #expect(SecondKernel.release.hasPrefix("6.12"), "guest kernel \(SecondKernel.release)")
            let ns = try NetworkNamespace.create(named: "skf-\(UInt32.random(in: 0...UInt32.max))")
            defer { try? ns.delete() }
            let inside = { (argv: [String]) throws -> (Int32, String) in
                try runCapturing(["nsenter", "--net=" + ns.path] + argv)
            }
            let checks: [(String, [String])] = [
                ("WireGuard", ["ip", "link", "add", "wgvm0", "type", "wireguard"]),
                ("ESP rfc4106(gcm(aes))", ["ip", "xfrm", "state", "add", "src", "10.77.0.1", "dst", "10.77.0.2",
                                           "proto", "esp", "spi", "0x100", "reqid", "1", "mode", "tunnel",
                                           "aead", "rfc4106(gcm(aes))", "0x" + String(repeating: "4a", count: 20), "128"]),
                ("Geneve", ["ip", "link", "add", "gnvvm0", "type", "geneve", "external"]),
                ("fq", ["tc", "qdisc", "add", "dev", "lo", "root", "fq"]),
            ]
            for (feature, argv) in checks {
                let (code, output) = try inside(argv)
                print("\(feature): \(code == 0 ? "yes" : "no (\(output.trimmingCharacters(in: .whitespacesAndNewlines)))")")
                #expect(code == 0, "\(feature): \(argv.joined(separator: " ")): \(output)")
            }
            #expect(try inside(["ip", "xfrm", "state", "list"]).1.contains("rfc4106(gcm(aes))"))
            // iproute2 6.1 does not know netkit; the agent's own netlink client makes the pair.
            let nl = try Netlink(namespace: ns)
            try nl.createNetkit(name: "nkvm0", peerName: "nkvm1")
            #expect(try nl.link("nkvm1") != nil)
            print("netkit: yes")
        }
        if let run { #expect(run.passed, "under the second kernel (exit \(run.status))") }
    }

    /// The agent and the sandbox work on the second kernel as on the host: two nodes with etcd,
    /// a pod on each, TCP both ways across the VXLAN tunnel, the agents' status.
    @Test func sandboxPodsTalkAcrossTheTunnel() throws {
        let run = try SecondKernel.run(suite: Self.suite, test: "sandboxPodsTalkAcrossTheTunnel") {
            let name = "vm" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            let sandbox = buildDirectory() + "/cilium-sandbox"
            defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
            let up = try runCapturing([sandbox, "up", "--name", name, "--nodes", "2"])
            try #require(up.0 == 0, "\(up.1)")
            for (pod, node) in [("a", "node1"), ("b", "node2")] {
                let r = try runCapturing([sandbox, "pod", "add", "--name", name, "--node", node, "--pod", pod, "--labels", "app=\(pod)"])
                try #require(r.0 == 0, "\(r.1)")
            }
            let st = try JSONDecoder().decode(PodNetworkingTests.Status.self,
                                              from: Data(try runCapturing([sandbox, "status", "--name", name, "-o", "json"]).1.utf8))
            let pods = Dictionary(uniqueKeysWithValues: st.pods.map { ($0.name, $0) })
            let a = try #require(pods["a"]), b = try #require(pods["b"])
            let ns = { (n: String) in try NetworkNamespace(named: n) }
            #expect(try tcpEcho(from: ns(a.namespace), to: ns(b.namespace), address: b.address) == "hello")
            #expect(try tcpEcho(from: ns(b.namespace), to: ns(a.namespace), address: a.address) == "hello")
            let status = try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "status"]).1
            print(status)
            #expect(status.contains("Network: Tunnel [vxlan]"))
            #expect(status.contains("KVStore:                 Ok etcd: 1/1 connected"))
        }
        if let run { #expect(run.passed, "under the second kernel (exit \(run.status))") }
    }
}
