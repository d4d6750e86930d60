import Foundation
import Glibc
import LinuxNet
import Spawning
import Testing
import TestSupport
@testable import Encryption

/// Two namespaces joined by a veth (`ul0`, the underlay), each with a "pod" address on its loopback; removed on the
/// way out.
final class IPsecPair {
    let names: [String]
    let spaces: [NetworkNamespace]
    let netlinks: [Netlink]
    let xfrms: [XFRM]
    let underlay: [IPv4Address]
    let pods: [IPv4Address]

    init() throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let x = UInt8.random(in: 1...254)
        names = ["ipa\(tag)", "ipb\(tag)"]
        underlay = [IPv4Address(10, 251, x, 1), IPv4Address(10, 251, x, 2)]
        pods = [IPv4Address(10, 77, 1, 1), IPv4Address(10, 77, 2, 1)]
        var made: [NetworkNamespace] = []
        do {
            for name in names { made.append(try NetworkNamespace.create(named: name)) }
            netlinks = try made.map { try Netlink(namespace: $0) }
            xfrms = try made.map { try XFRM(namespace: $0) }
        } catch {
            for ns in made { try? ns.delete() }
            throw error
        }
        spaces = made
        try spaces[1].withFD { fd in try netlinks[0].createVeth(name: "ul0", peerName: "ul0", peerNamespaceFD: fd, mtu: 1500) }
        for i in 0..<2 {
            let nl = netlinks[i]
            try nl.setLinkUp("lo")
            try nl.addAddress(IPv4Prefix(pods[i], length: 32), to: "lo")
            try nl.addAddress(IPv4Prefix(underlay[i], length: 24), to: "ul0")
            try nl.setLinkUp("ul0")
            // The other pod through the other end, from our pod's address.
            try nl.addRoute(Netlink.Route(destination: IPv4Prefix(pods[1 - i], length: 32), gateway: underlay[1 - i], source: pods[i]))
        }
    }

    deinit { for ns in spaces { try? ns.delete() } }

    func path(_ i: Int) -> String { spaces[i].path }

    /// busybox ping from namespace `i`'s pod to the other pod (through ChildProcess: busybox ping times out with
    /// SIGALRM, which Foundation's Process leaves blocked).
    func ping(from i: Int, count: Int = 2) throws -> (ok: Bool, output: String) {
        let (pid, out) = try ChildProcess.spawnCapturing(["nsenter", "--net=\(path(i))", "busybox", "ping", "-c", "\(count)", "-W", "2",
                                                          "\(pods[1 - i])"])
        let text = String(decoding: ChildProcess.readAll(out), as: UTF8.self)
        close(out)
        return (ChildProcess.wait(pid) == 0, text)
    }

    func ip(_ i: Int, _ args: [String]) throws -> String { try runChecked(["ip", "-n", names[i]] + args) }
}

/// tcpdump of what namespace `i` sends on `ul0` (IPv4 only: no ARP, no IPv6 neighbour discovery), into a pcap read
/// back with -r. Outgoing only (`-Q out`): after decrypting a tunnel-mode packet the kernel passes the inner packet
/// through the device's taps again as if received, so a capture of both directions shows clear packets that never
/// crossed the wire. What both ends send is all the wire carries.
final class UnderlayCapture {
    let file: String
    let pid: Int32

    init(_ pair: IPsecPair, _ i: Int) throws {
        file = "/tmp/\(pair.names[i])-\(UInt32.random(in: 0...UInt32.max)).pcap"
        pid = try ChildProcess.spawn(["nsenter", "--net=\(pair.path(i))", "tcpdump", "-n", "-i", "ul0", "-Q", "out", "-U", "-w", file, "ip"],
                                     output: file + ".log", truncate: true)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline,
              (try? String(contentsOfFile: file + ".log", encoding: .utf8))?.contains("listening on") != true {
            usleep(20_000)
        }
    }

    /// Stops the capture: its packets as `tcpdump -nr` prints them.
    func stop() throws -> [String] {
        usleep(1_000_000)   // the last packets reach the file (qemu without KVM is slow)
        kill(pid, SIGINT)
        _ = ChildProcess.wait(pid)
        defer { unlink(file); unlink(file + ".log") }
        return try runChecked(["tcpdump", "-n", "-r", file]).split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("reading from") }
    }
}

/// What the host's kernel can do without ESP: policies (with templates and marks) and rules, in a namespace.
@Suite(.serialized) struct XFRMPolicyAndRuleTests {
    @Test func policiesRoundTrip() throws {
        let ns = try NetworkNamespace.create(named: "xp\(String(UInt32.random(in: 0...UInt32.max), radix: 16))")
        defer { try? ns.delete() }
        let xfrm = try XFRM(namespace: ns)
        let a = IPv4Address("10.251.9.1")!, b = IPv4Address("10.251.9.2")!
        let out = XFRM.Policy(source: IPv4Prefix("10.77.1.0/24")!, destination: IPv4Prefix("10.77.2.0/24")!, direction: .out,
                              mark: IPsecMarks.out(spi: 3, nodeID: 7),
                              templates: [XFRM.Template(source: a, destination: b, reqid: 1, spi: 3)])
        let fwd = XFRM.Policy(source: .default, destination: IPv4Prefix("10.77.1.0/24")!, direction: .fwd,
                              priority: IPsecMarks.forwardPriority,
                              templates: [XFRM.Template(source: IPv4Address(value: 0), destination: a, reqid: 1, optional: true)])
        let drop = XFRM.Policy(source: .default, destination: .default, direction: .out, action: .block,
                               priority: IPsecMarks.defaultDropPriority, mark: IPsecMarks.defaultDrop)
        for p in [out, fwd, drop] { try xfrm.addPolicy(p) }
        #expect(Set(try xfrm.policies()) == [out, fwd, drop])
        #expect(throws: NetlinkError.self) { try xfrm.addPolicy(out) }   // EEXIST
        // Host bits are cleared, as the kernel keys selectors on the network.
        #expect(XFRM.Policy(source: IPv4Prefix("10.77.1.5/24")!, destination: .default, direction: .in).source == IPv4Prefix("10.77.1.0/24")!)

        var moved = out
        moved.templates = [XFRM.Template(source: a, destination: IPv4Address("10.251.9.3")!, reqid: 1, spi: 4)]
        try xfrm.updatePolicy(moved)
        #expect(Set(try xfrm.policies()) == [moved, fwd, drop])
        let shown = try runChecked(["ip", "-n", ns.name!, "xfrm", "policy"])
        #expect(shown.contains("src 10.77.1.0/24 dst 10.77.2.0/24"), "\(shown)")
        #expect(shown.contains("tmpl src 10.251.9.1 dst 10.251.9.3"), "\(shown)")
        #expect(shown.contains("mark 0x73e00/0xffffff00"), "\(shown)")
        #expect(shown.contains("action block priority 100"), "\(shown)")

        for p in [moved, fwd, drop] { try xfrm.deletePolicy(p) }
        #expect(try xfrm.policies().isEmpty)
        #expect(throws: NetlinkError.self) { try xfrm.deletePolicy(drop) }
        #expect(try xfrm.statistics()["XfrmOutPolBlock"] == 0)
    }

    @Test func ipsecRule() throws {
        let ns = try NetworkNamespace.create(named: "xr\(String(UInt32.random(in: 0...UInt32.max), radix: 16))")
        defer { try? ns.delete() }
        try checkRule(in: ns)
    }
}

/// Upstream's decryption rule `priority 1 fwmark 0xd00/0xf00 lookup 200`: added, listed (by us and `ip rule`), deleted.
func checkRule(in ns: NetworkNamespace) throws {
    let nl = try Netlink(namespace: ns)
    let rule = Netlink.Rule(priority: IPsecMarks.rulePriority, mark: IPsecMarks.decrypt, mask: IPsecMarks.bitMask,
                            table: IPsecMarks.routeTable)
    #expect("\(rule)" == "priority 1 from all fwmark 0xd00/0xf00 lookup 200")
    let before = try nl.rules()
    #expect(before.contains(Netlink.Rule(priority: 32766, table: 254)), "\(before)")   // the main table's
    try nl.addRule(rule)
    #expect(try nl.rules().filter { $0.priority == 1 } == [rule])
    #expect(try runChecked(["ip", "-n", ns.name!, "rule"]).contains("1:\tfrom all fwmark 0xd00/0xf00 lookup 200"))
    #expect(throws: NetlinkError.self) { try nl.addRule(rule) }
    try nl.deleteRule(rule)
    #expect(try nl.rules() == before)
    #expect(throws: NetlinkError.self) { try nl.deleteRule(rule) }
}

/// Under the second kernel (it has ESP): our client sets up an ESP tunnel between two namespaces with upstream's
/// per-tunnel keys; pods ping each other and the underlay carries only ESP.
@Suite(.serialized) struct IPsecSecondKernelTests {
    static let suite = "IPsecSecondKernelTests"

    @Test func espTunnelBetweenNamespaces() throws {
        let run = try SecondKernel.run(suite: Self.suite, test: "espTunnelBetweenNamespaces") { try espTunnel() }
        if let run { #expect(run.passed, "under the second kernel (exit \(run.status))") }
    }

    func espTunnel() throws {
        let pair = try IPsecPair()
        let (a, b) = (pair.underlay[0], pair.underlay[1])
        let boots = ["11111111-2222-3333-4444-555555555555", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
        let global = try IPsecKeyFile.parse("3+ rfc4106(gcm(aes)) 0x\(String(repeating: "4a", count: 20)) 128", path: "keys")

        // Each side: an OUT state to the other (its key from local -> remote) and an IN state from it, OUT/IN/FWD policies.
        var states: [[XFRM.State]] = [[], []], policies: [[XFRM.Policy]] = [[], []]
        for i in 0..<2 {
            let (local, remote) = (pair.underlay[i], pair.underlay[1 - i])
            let (pod, peerPod) = (IPv4Prefix(pair.pods[i], length: 32), IPv4Prefix(pair.pods[1 - i], length: 32))
            for direction in [XFRM.Direction.out, .in] {
                let key = try #require(global.tunnelKey(direction, localIP: local, remoteIP: remote, localBootID: boots[i], remoteBootID: boots[1 - i]))
                states[i].append(direction == .out ? key.state(source: local, destination: remote) : key.state(source: remote, destination: local))
            }
            policies[i] = [
                XFRM.Policy(source: pod, destination: peerPod, direction: .out,
                            templates: [XFRM.Template(source: local, destination: remote, reqid: 1, spi: 3)]),
                XFRM.Policy(source: peerPod, destination: pod, direction: .in,
                            templates: [XFRM.Template(source: remote, destination: local, reqid: 1)]),
                XFRM.Policy(source: peerPod, destination: pod, direction: .fwd, priority: IPsecMarks.forwardPriority,
                            templates: [XFRM.Template(source: remote, destination: local, reqid: 1, optional: true)]),
            ]
            for s in states[i] { try pair.xfrms[i].addState(s) }
            for p in policies[i] { try pair.xfrms[i].addPolicy(p) }
        }
        // A's OUT key is B's IN key, and the two directions differ.
        #expect(states[0][0].algorithms == states[1][1].algorithms && states[0][0].algorithms != states[0][1].algorithms)

        // What the kernel lists is what was added, keys included.
        for i in 0..<2 {
            #expect(Set(try pair.xfrms[i].states()) == Set(states[i]))
            #expect(Set(try pair.xfrms[i].policies()) == Set(policies[i]))
        }
        let shownStates = try pair.ip(0, ["xfrm", "state"]), shownPolicies = try pair.ip(0, ["xfrm", "policy"])
        print(shownStates, shownPolicies)
        for text in ["src \(a) dst \(b)", "src \(b) dst \(a)", "proto esp spi 0x00000003 reqid 1 mode tunnel",
                     "aead rfc4106(gcm(aes))", "flag esn", "replay_window 1024"] {
            #expect(shownStates.contains(text), "ip xfrm state: no \(text)")
        }
        for text in ["src 10.77.1.1/32 dst 10.77.2.1/32", "dir out", "src 10.77.2.1/32 dst 10.77.1.1/32", "dir in", "dir fwd",
                     "tmpl src \(a) dst \(b)", "proto esp spi 0x00000003 reqid 1 mode tunnel", "level use"] {
            #expect(shownPolicies.contains(text), "ip xfrm policy: no \(text)")
        }

        // Pods ping each other; the underlay carries ESP between the veth addresses and nothing else.
        let captures = try [UnderlayCapture(pair, 0), UnderlayCapture(pair, 1)]
        let ping = try pair.ping(from: 0, count: 3)
        #expect(ping.ok, "\(ping.output)")
        #expect(try pair.ping(from: 1).ok)
        let sent = try captures.map { try $0.stop() }, packets = sent[0] + sent[1]
        print(packets.joined(separator: "\n"))
        #expect(sent.allSatisfy { $0.count >= 3 }, "A's 3 requests and B's 3 replies at least")
        #expect(packets.allSatisfy { ($0.contains("\(a) > \(b): ESP") || $0.contains("\(b) > \(a): ESP")) && $0.contains("spi=0x00000003") })
        #expect(!packets.contains { $0.contains("ICMP") })
        #expect(try pair.xfrms[1].statistics()["XfrmInNoStates"] == 0)

        // Upstream's catch-all OUT block policy (priority 100; a lower value wins, so the pods' policies at 0 come
        // first): without its state, or without its policy, A's packet is dropped, never sent in clear.
        let block = XFRM.Policy(source: .default, destination: .default, direction: .out, action: .block,
                                priority: IPsecMarks.defaultDropPriority)
        try pair.xfrms[0].addPolicy(block)
        #expect(try pair.ping(from: 0).ok, "the pods' policy at priority 0 wins over the block at 100")
        let before = try pair.xfrms[0].statistics()
        try pair.xfrms[0].deleteState(states[0][0])
        var wire = try UnderlayCapture(pair, 0)
        #expect(try !pair.ping(from: 0, count: 1).ok)
        #expect(try !wire.stop().contains { $0.contains("ICMP") })
        try pair.xfrms[0].deletePolicy(policies[0][0])
        wire = try UnderlayCapture(pair, 0)
        #expect(try !pair.ping(from: 0, count: 1).ok)
        #expect(try !wire.stop().contains { $0.contains("ICMP") })
        let after = try pair.xfrms[0].statistics()
        print("xfrm_stat before/after:", before.filter { $0.value != 0 }, after.filter { $0.value != 0 })
        #expect(after["XfrmOutNoStates", default: 0] > before["XfrmOutNoStates", default: 0])
        #expect(after["XfrmOutPolBlock", default: 0] > before["XfrmOutPolBlock", default: 0])
        // Without the block policy the same packet leaves in clear.
        try pair.xfrms[0].deletePolicy(block)
        wire = try UnderlayCapture(pair, 0)
        _ = try pair.ping(from: 0, count: 1)
        let clear = try wire.stop()
        #expect(clear.contains { $0.contains("\(pair.pods[0]) > \(pair.pods[1]): ICMP echo request") }, "\(clear)")

        // The legacy algorithms, a mark and an output mark, and a 1024-packet window without ESN (a bitmap window).
        let legacy = try IPsecKeyFile.parse("5 hmac(sha256) \(String(repeating: "ab", count: 32)) cbc(aes) \(String(repeating: "cd", count: 16))",
                                            path: "keys")
        var marked = legacy.state(source: a, destination: b, mark: IPsecMarks.out(spi: 5, nodeID: 0x42),
                                  outputMark: XFRM.Mark(value: IPsecMarks.encrypt, mask: 0xFFFF_FF00))
        marked.replayWindow = 1024
        try pair.xfrms[0].addState(marked)
        #expect(try pair.xfrms[0].states().contains(marked))
        #expect(try pair.ip(0, ["xfrm", "state"]).contains("auth-trunc hmac(sha256)"))
        marked.outputMark = XFRM.Mark(value: IPsecMarks.decrypt, mask: 0xFFFF_FF00)
        try pair.xfrms[0].updateState(marked)
        #expect(try pair.xfrms[0].states().first { $0.spi == 5 } == marked)

        // Deleting removes them all.
        try pair.xfrms[0].deleteState(marked)
        for i in 0..<2 {
            for s in states[i] where !(i == 0 && s == states[0][0]) { try pair.xfrms[i].deleteState(s) }
            for p in policies[i] where !(i == 0 && p == policies[0][0]) { try pair.xfrms[i].deletePolicy(p) }
            #expect(try pair.xfrms[i].states().isEmpty)
            #expect(try pair.xfrms[i].policies().isEmpty)
        }
        #expect(throws: NetlinkError.self) { try pair.xfrms[1].deleteState(states[1][0]) }
        try checkRule(in: pair.spaces[0])
    }
}
