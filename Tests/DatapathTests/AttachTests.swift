import CBPF
import Datapath
import LinuxNet
import Foundation
import Glibc
import Testing
import TestSupport

/// Two namespaces of the test's own joined by a veth; nothing in the root namespace.
final class VethPair {
    let a: NetworkNamespace
    let b: NetworkNamespace
    let addressA = "10.251.0.1"
    let addressB = "10.251.0.2"

    init() throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let a = try NetworkNamespace.create(named: "att-a-\(tag)")
        let b: NetworkNamespace
        do { b = try NetworkNamespace.create(named: "att-b-\(tag)") } catch { try? a.delete(); throw error }
        self.a = a
        self.b = b
        let nla = try Netlink(namespace: a)
        let nlb = try Netlink(namespace: b)
        try b.withFD { try nla.createVeth(name: "va", peerName: "vb", peerNamespaceFD: $0) }
        try nla.addAddress(IPv4Prefix(addressA + "/24")!, to: "va")
        try nlb.addAddress(IPv4Prefix(addressB + "/24")!, to: "vb")
        try nla.setLinkUp("va")
        try nlb.setLinkUp("vb")
    }

    deinit {
        try? a.delete()
        try? b.delete()
    }

    func sendUDP(count: Int) throws -> Int {
        try udpDeliver(from: a, to: b, address: addressB, count: count)
    }
}

@Suite(.serialized) struct AttachTests {
    @Test func tcxOnVethCountsRealTrafficAndSwapsAtomically() async throws {
        let root = try PinRoot("tcx")
        let net = try VethPair()
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        let policy = try BPFObject(embedded: "policy", pinRoot: root.path)
        try ProgramArray(pinned: root.path + "/cilium_calls").set(slot: CILIUM_STAGE_POLICY.rawValue, program: try await policy.program("cil_stage_policy"))
        let stats: BPFMap<UInt32, stage_stats> = try await entry.map("cilium_stage_stats")
        let from = try await entry.program("cil_from_container")
        let to = try await entry.program("cil_to_container")
        let pin = root.path + "/link-vb-ingress"

        let ifindex = try Netlink(namespace: net.b).index(of: "vb")
        let link = try net.b.run { try Attach.tcx(from, ifindex: ifindex, direction: .ingress, pinPath: pin) }
        #expect(try net.b.run { Attach.tcxProgramIDs(ifindex: ifindex, direction: .ingress) } == [from.id])

        // Real packets cross the veth and run through the entry program and the policy stage.
        #expect(try net.sendUDP(count: 10) == 10)
        let counted = stats.lookupPerCPU(CILIUM_STAGE_POLICY.rawValue)!.reduce(0) { $0 + $1.packets }
        #expect(counted >= 10)

        // A second loader (a restarted agent) adopts the pinned link and swaps its program.
        let adopted = try net.b.run { try Attach.tcx(to, ifindex: ifindex, direction: .ingress, pinPath: pin) }
        #expect(adopted.programID == to.id)
        #expect(try net.b.run { Attach.tcxProgramIDs(ifindex: ifindex, direction: .ingress) } == [to.id])
        #expect(try net.sendUDP(count: 5) == 5)

        // Detached: nothing left on the device.
        link.detach()
        unlink(pin)
        #expect(try net.b.run { Attach.tcxProgramIDs(ifindex: ifindex, direction: .ingress) }.isEmpty)
    }

    @Test func classicTCFallbackCountsRealTraffic() async throws {
        let root = try PinRoot("tcclassic")
        let net = try VethPair()
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        let metrics: BPFMap<UInt32, metrics_value> = try await entry.map("cilium_metrics")
        let prog = try await entry.program("cil_from_netdev")
        let ifindex = try Netlink(namespace: net.b).index(of: "vb")
        try net.b.run { try Attach.tcClassic(prog, ifindex: ifindex, direction: .ingress) }
        // Attaching again replaces (handle 1, priority 1) instead of stacking.
        try net.b.run { try Attach.tcClassic(prog, ifindex: ifindex, direction: .ingress) }
        #expect(try net.sendUDP(count: 8) == 8)
        let key = ciliumMetricsIndex(reason: 0, direction: UInt8(CILIUM_DIR_INGRESS.rawValue))
        #expect((metrics.lookupPerCPU(key)?.reduce(0) { $0 + $1.packets } ?? 0) >= 8)
        let (code, out) = try runCapturing(["tc", "-n", net.b.name!, "filter", "show", "dev", "vb", "ingress"])
        #expect(code == 0)
        #expect(out.components(separatedBy: "direct-action").count - 1 == 1, "\(out)")
        #expect(out.contains("name cil_from_netdev"))
    }

    @Test func xdpOnVethInGenericMode() async throws {
        let root = try PinRoot("xdp")
        let net = try VethPair()
        let obj = try BPFObject(elf: try compileTestObject("""
            SEC("xdp") int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
            """), name: "xdp_pass", pinRoot: nil)
        let prog = try await obj.program("xdp_pass")
        let ifindex = try Netlink(namespace: net.b).index(of: "vb")
        let link = try net.b.run { try Attach.xdp(prog, ifindex: ifindex, mode: .generic, pinPath: root.path + "/xdp") }
        #expect(link.programID == prog.id)
        #expect(try net.sendUDP(count: 3) == 3)
        link.detach()
    }

    @Test func cgroupConnectHookAttachesAndDetaches() async throws {
        let root = try PinRoot("cgroup")
        let cgroup = "/sys/fs/cgroup/unified/cilium-test-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/cgroup.procs") else {
            print("SKIP cgroupConnectHookAttachesAndDetaches: no cgroup v2 hierarchy at /sys/fs/cgroup/unified")
            return
        }
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: false)
        defer { rmdir(cgroup) }
        let obj = try BPFObject(elf: try compileTestObject("""
            SEC("cgroup/connect4") int sock_connect4(struct bpf_sock_addr *ctx) { return 1; }
            """), name: "sock_lb", pinRoot: nil)
        let prog = try await obj.program("sock_connect4")
        let link = try Attach.cgroup(prog, cgroupPath: cgroup, type: BPF_CGROUP_INET4_CONNECT, pinPath: root.path + "/connect4")
        #expect(link.programID == prog.id)
        #expect(FileManager.default.fileExists(atPath: root.path + "/connect4"))
        link.detach()
        unlink(root.path + "/connect4")
    }

    @Test func programTestRunReportsDuration() async throws {
        let root = try PinRoot("timing")
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        let prog = try await entry.program("cil_from_container")
        let r = try prog.testRun(packet: Packets.tcp(src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2), repeat: 1000)
        #expect(r.returnValue == 0)
        #expect(r.durationNs > 0)
    }
}

/// A small BPF object compiled at test time, for hooks that are not pipeline stages yet.
func compileTestObject(_ body: String) throws -> Data {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bpfobj-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let src = dir.appendingPathComponent("x.c").path, obj = dir.appendingPathComponent("x.o").path
    try """
    #include <linux/bpf.h>
    #include <bpf/bpf_helpers.h>
    char LICENSE[] SEC("license") = "GPL";
    \(body)
    """.write(toFile: src, atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/opt/swift/usr/bin/clang")
    p.arguments = ["-O2", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", src, "-o", obj]
    try p.run()
    p.waitUntilExit()
    return try Data(contentsOf: URL(fileURLWithPath: obj))
}
