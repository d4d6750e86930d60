import API
import CBPF
import Datapath
import LinuxNet
import Foundation
import Testing
import TestSupport
@testable import LoadBalancer

/// BPF_PROG_TEST_RUN through the entry program and the real LB stage.
@Suite(.serialized) struct LBStageTests {
    static let vip = "10.96.0.10", client = "10.0.0.5"
    static let backends = [("10.0.0.7", UInt16(8080)), ("10.0.0.8", UInt16(8080))]

    final class Datapath {
        let entry: BPFObject
        let lb: BPFObject
        let from: BPFProgram
        let slots: BPFMap<lb4_key, lb4_service>
        let backendMap: BPFMap<UInt32, lb4_backend>
        let nat: BPFMap<UInt16, lb4_reverse_nat>
        let events: RingBufferReader
        let root: String

        init(_ root: String) async throws {
            self.root = root
            entry = try BPFObject(embedded: "entry", pinRoot: root)
            lb = try BPFObject(embedded: "lb", pinRoot: root)
            try ProgramArray(pinned: root + "/cilium_calls").set(slot: CILIUM_STAGE_LB.rawValue, program: try await lb.program("cil_stage_lb"))
            from = try await entry.program("cil_from_container")
            slots = try BPFMap(pinned: root + "/cilium_lb4_services")
            backendMap = try BPFMap(pinned: root + "/cilium_lb4_backends")
            nat = try BPFMap(pinned: root + "/cilium_lb4_reverse_nat")
            events = try RingBufferReader(mapFD: try await entry.mapFD("cilium_events"))
        }

        deinit { events.stop() }

        /// A frontend with `backends` (ids 1...), reverse NAT id `rev`.
        func frontend(_ vip: String, port: UInt16, rev: UInt16, backends: [(String, UInt16)], flags: UInt32 = LB_F_CLUSTER_IP.rawValue,
                      affinity: UInt32 = 0, firstID: UInt32 = 1) throws {
            let a = Packets.ipv4(vip)
            let k = FrontendSlot.Key(address: a, port: port, proto: 6, slot: 0)
            try slots.update(FrontendSlot(key: k, value: .init(count: UInt16(backends.count), revNat: rev, affinityTimeout: affinity,
                                                               flags: flags)).mapKey,
                             FrontendSlot(key: k, value: .init(count: UInt16(backends.count), revNat: rev, affinityTimeout: affinity,
                                                               flags: flags)).mapValue)
            for (i, b) in backends.enumerated() {
                let id = firstID + UInt32(i)
                try backendMap.update(id, BackendEntry(id: id, address: Packets.ipv4(b.0), port: b.1, proto: 6,
                                                       state: LB_BACKEND_ACTIVE.rawValue).mapValue)
                var sk = k
                sk.slot = UInt16(i + 1)
                let s = FrontendSlot(key: sk, value: .init(backendID: id))
                try slots.update(s.mapKey, s.mapValue)
            }
            try nat.update(rev, ReverseNATEntry(id: rev, address: a, port: port, flags: 0).mapValue)
        }

        func run(_ packet: [UInt8]) throws -> BPFProgram.TestRunResult { try from.testRun(packet: packet) }

        /// Through the node's device (direction ingress: NodePort, external and LoadBalancer IPs).
        func runFromDevice(_ packet: [UInt8]) async throws -> BPFProgram.TestRunResult {
            try await entry.program("cil_from_netdev").testRun(packet: packet)
        }

        func setMode(_ flags: UInt32) throws {
            try BPFMap<UInt32, lb4_config>(pinned: root + "/cilium_lb4_config").update(0, lb4_config(maglev_size: 0, maglev_seed: 0, flags: flags, pad: 0))
        }

        /// `address` is a workload on this node.
        func localWorkload(_ address: String, ifindex: UInt32) async throws {
            let lxc: BPFMap<endpoint_key, endpoint_value> = try await entry.map("cilium_lxc")
            var v = endpoint_value()
            v.endpoint_id = UInt16(ifindex)
            v.ifindex = ifindex
            try lxc.update(endpoint_key(addr: Packets.be(address)), v)
        }
    }

    /// A TCP frame with valid IP and TCP checksums.
    static func tcp(_ src: String, _ dst: String, _ sport: UInt16, _ dport: UInt16, flags: UInt8 = 0x02) -> [UInt8] {
        var p = Packets.tcp(src: src, dst: dst, sport: sport, dport: dport, payload: 5)
        p[14 + 20 + 13] = flags
        let sum = l4Sum(p)
        let c = ~UInt16(sum)
        p[14 + 20 + 16] = UInt8(c >> 8)
        p[14 + 20 + 17] = UInt8(c & 0xff)
        return p
    }

    static func fold(_ s: UInt32) -> UInt32 {
        var s = s
        while s >> 16 != 0 { s = (s & 0xffff) + (s >> 16) }
        return s
    }

    /// Ones-complement sum of the pseudo header and the TCP segment (0xffff when the checksum is right).
    static func l4Sum(_ p: [UInt8]) -> UInt32 {
        let seg = Array(p[34...])
        var s: UInt32 = 0
        for i in stride(from: 26, to: 34, by: 2) { s += UInt32(p[i]) << 8 | UInt32(p[i + 1]) }
        s += 6 + UInt32(seg.count)
        for i in stride(from: 0, to: seg.count, by: 2) { s += UInt32(seg[i]) << 8 | UInt32(i + 1 < seg.count ? seg[i + 1] : 0) }
        return fold(s)
    }

    static func ipSum(_ p: [UInt8]) -> UInt32 {
        var s: UInt32 = 0
        for i in stride(from: 14, to: 34, by: 2) { s += UInt32(p[i]) << 8 | UInt32(p[i + 1]) }
        return fold(s)
    }

    static func dst(_ p: [UInt8]) -> (String, UInt16) {
        ("\(p[30]).\(p[31]).\(p[32]).\(p[33])", UInt16(p[36]) << 8 | UInt16(p[37]))
    }

    static func src(_ p: [UInt8]) -> (String, UInt16) {
        ("\(p[26]).\(p[27]).\(p[28]).\(p[29])", UInt16(p[34]) << 8 | UInt16(p[35]))
    }

    @Test func clusterIPIsTranslatedOnceAndRepliesComeBackFromIt() async throws {
        let root = try PinRoot("lb-vip")
        let dp = try await Datapath(root.path)
        try dp.frontend(Self.vip, port: 80, rev: 1, backends: Self.backends)
        let r = try dp.run(Self.tcp(Self.client, Self.vip, 40000, 80))
        #expect(r.returnValue == 0)
        let (backend, port) = Self.dst(r.packet)
        #expect(Self.backends.map(\.0).contains(backend))
        #expect(port == 8080)
        #expect(Self.ipSum(r.packet) == 0xffff, "IP checksum fixed")
        #expect(Self.l4Sum(r.packet) == 0xffff, "TCP checksum fixed")
        // The same connection keeps its backend.
        for _ in 0..<10 { #expect(Self.dst(try dp.run(Self.tcp(Self.client, Self.vip, 40000, 80)).packet).0 == backend) }
        // The reply comes from the frontend's address.
        let reply = try dp.run(Self.tcp(backend, Self.client, 8080, 40000))
        #expect(Self.src(reply.packet) == (Self.vip, 80))
        #expect(Self.dst(reply.packet) == (Self.client, 40000))
        #expect(Self.l4Sum(reply.packet) == 0xffff)
        // Other traffic is untouched.
        let other = Self.tcp(Self.client, "10.0.0.9", 1, 2)
        #expect(try dp.run(other).packet == other)
        // Both backends get connections.
        var seen = Set<String>()
        for sport in UInt16(41000)..<41064 { seen.insert(Self.dst(try dp.run(Self.tcp(Self.client, Self.vip, sport, 80)).packet).0) }
        #expect(seen == Set(Self.backends.map(\.0)))
    }

    /// Issue 17 gap 1 (BPF_PROG_TEST_RUN): a pod's packet to its node's address and a NodePort is
    /// translated on its way out of the pod; one aimed at 0.0.0.0 (the NodePorts' own key) or at
    /// another address is not.
    @Test func aPodReachesItsOwnNodesNodePortAndZeroNamesNoFrontend() async throws {
        let root = try PinRoot("lb-np-local")
        let dp = try await Datapath(root.path)
        try BPFMap<UInt32, node_config>(pinned: root.path + "/cilium_node")
            .update(0, node_config(vxlan_ifindex: 0, flags: 0, address: Packets.be("172.30.0.11"), pad: 0))
        try dp.frontend("0.0.0.0", port: 30080, rev: 7, backends: Self.backends, flags: LB_F_NODEPORT.rawValue)
        let r = try dp.run(Self.tcp(Self.client, "172.30.0.11", 40100, 30080))
        #expect(Self.backends.map(\.0).contains(Self.dst(r.packet).0) && Self.dst(r.packet).1 == 8080)
        for target in ["0.0.0.0", "172.30.0.12"] {
            let p = Self.tcp(Self.client, target, 40101, 30080)
            #expect(try dp.run(p).packet == p, "to \(target)")
        }
    }

    @Test func sessionAffinityKeepsAClientOnOneBackend() async throws {
        let root = try PinRoot("lb-aff")
        let dp = try await Datapath(root.path)
        try dp.frontend(Self.vip, port: 80, rev: 2, backends: Self.backends, flags: LB_F_CLUSTER_IP.rawValue | LB_F_AFFINITY.rawValue,
                        affinity: 60)
        let first = Self.dst(try dp.run(Self.tcp(Self.client, Self.vip, 30000, 80)).packet).0
        for sport in UInt16(30001)..<30100 {
            #expect(Self.dst(try dp.run(Self.tcp(Self.client, Self.vip, sport, 80)).packet).0 == first)
        }
    }

    @Test func aServiceWithoutBackendsDropsWithAReason() async throws {
        let root = try PinRoot("lb-none")
        let dp = try await Datapath(root.path)
        try dp.frontend(Self.vip, port: 80, rev: 3, backends: [])
        let r = try dp.run(Self.tcp(Self.client, Self.vip, 40000, 80))
        #expect(r.returnValue == 2)
        var it = dp.events.records.makeAsyncIterator()
        let record = try #require(await it.next())
        let e = record.withUnsafeBytes { $0.loadUnaligned(as: cilium_event.self) }
        #expect(e.reason == UInt8(CILIUM_DROP_NO_SERVICE.rawValue))
        #expect(e.stage == UInt8(CILIUM_STAGE_LB.rawValue))
    }

    @Test func maglevPicksTheSlotTheAgentComputes() async throws {
        let root = try PinRoot("lb-maglev")
        let dp = try await Datapath(root.path)
        let backends = (0..<5).map { ("10.0.1.\($0 + 10)", UInt16(8080)) }
        try dp.frontend(Self.vip, port: 80, rev: 4, backends: backends, flags: LB_F_CLUSTER_IP.rawValue | LB_F_MAGLEV.rawValue)
        let seed = MaglevTable.seed(fromClusterName: "test")
        let size = 251
        let table = MaglevTable.build(backends.enumerated().map { MaglevTable.Backend(id: UInt32($0.offset + 1), key: "\($0.element.0):8080", weight: 1) },
                                      size: size, seed: seed)
        let config = try BPFMap<UInt32, lb4_config>(pinned: root.path + "/cilium_lb4_config")
        try config.update(0, lb4_config(maglev_size: UInt32(size), maglev_seed: MaglevTable.flowSeed(seed), flags: 0, pad: 0))
        let outer = try BPFMap<UInt16, UInt32>(pinned: root.path + "/cilium_lb4_maglev")
        try await MaglevOperations(outer: outer).update(MaglevEntry(frontend: 4, table: table))
        // The table can be read back (cilium bpf lb maglev list).
        let innerID = try #require(outer.lookup(4))
        #expect(try BPFMap<UInt32, UInt32>(id: innerID).lookup(7) == table[7])
        for sport in UInt16(50000)..<50050 {
            let got = Self.dst(try dp.run(Self.tcp(Self.client, Self.vip, sport, 80)).packet).0
            let h = MaglevTable.flowHash(saddr: Packets.ipv4(Self.client), daddr: Packets.ipv4(Self.vip), sport: sport, dport: 80, proto: 6,
                                         seed: MaglevTable.flowSeed(seed))
            let want = backends[Int(table[Int(h % UInt32(size))]) - 1].0
            #expect(got == want, "sport \(sport)")
        }
    }

    /// DSR (loadBalancer.mode dsr): the first packet to another node's backend
    /// carries the frontend in IPv4 option 0x9a; the backend's node learns it
    /// and its replies leave from the frontend's address.
    @Test func dsrNamesTheFrontendInTheFirstPacketAndTheBackendsNodeAnswersFromIt() async throws {
        let root = try PinRoot("lb-dsr")
        let dp = try await Datapath(root.path)
        let lbIP = "172.30.5.1", outside = "172.30.0.100"
        try dp.frontend(lbIP, port: 80, rev: 5, backends: Self.backends, flags: LB_F_LOADBALANCER.rawValue)
        try dp.setMode(LoadBalancerSubsystem.configFlags(.dsr))
        let syn = try await dp.runFromDevice(Self.tcp(outside, lbIP, 40000, 80)).packet
        #expect(syn.count == Self.tcp(outside, lbIP, 40000, 80).count + 8, "8 bytes of option")
        #expect(syn[14] == 0x47, "IHL 7")
        #expect(Int(syn[16]) << 8 | Int(syn[17]) == syn.count - 14, "total length")
        #expect(Array(syn[34..<42]) == [0x9a, 8, 0, 80, 172, 30, 5, 1], "type 0x9a, length 8, port 80, address 172.30.5.1")
        var ipSum: UInt32 = 0
        for i in stride(from: 14, to: 42, by: 2) { ipSum += UInt32(syn[i]) << 8 | UInt32(syn[i + 1]) }
        #expect(Self.fold(ipSum) == 0xffff, "IP header checksum over the option")
        let backend = "\(syn[30]).\(syn[31]).\(syn[32]).\(syn[33])"
        #expect(Self.backends.map(\.0).contains(backend))
        #expect(Array(syn[26..<30]) == [172, 30, 0, 100], "the client stays the source")
        // The TCP segment (after the option) is intact with a valid checksum.
        var unopt = Array(syn[0..<34]) + Array(syn[42...])
        unopt[14] = 0x45
        #expect(Self.l4Sum(unopt) == 0xffff)
        // Later packets of the connection: the same backend, no option.
        let ack = try await dp.runFromDevice(Self.tcp(outside, lbIP, 40000, 80, flags: 0x10)).packet
        #expect(ack.count == Self.tcp(outside, lbIP, 40000, 80).count && ack[14] == 0x45)
        #expect(Self.dst(ack).0 == backend)
        // SNAT mode: the source becomes the node, no option.
        try dp.setMode(LoadBalancerSubsystem.configFlags(.snat))
        let cilNode = try BPFMap<UInt32, node_config>(pinned: root.path + "/cilium_node")
        try cilNode.update(0, node_config(vxlan_ifindex: 0, flags: 0, address: Packets.be("172.30.0.11"), pad: 0))
        let snat = try await dp.runFromDevice(Self.tcp(outside, lbIP, 40001, 80)).packet
        #expect(snat[14] == 0x45 && Self.src(snat).0 == "172.30.0.11")
        // Hybrid: TCP is DSR.
        try dp.setMode(LoadBalancerSubsystem.configFlags(.hybrid))
        #expect(try await dp.runFromDevice(Self.tcp(outside, lbIP, 40002, 80)).packet[14] == 0x47)

        // The backend's node: the optioned packet reaches a local workload...
        try dp.setMode(LoadBalancerSubsystem.configFlags(.dsr))
        try await dp.localWorkload(backend, ifindex: 4242)
        _ = try await dp.runFromDevice(syn)
        // ...and its reply leaves from the frontend to the client.
        let reply = try dp.run(Self.tcp(backend, outside, 8080, 40000, flags: 0x12)).packet
        #expect(Self.src(reply) == (lbIP, 80))
        #expect(Self.dst(reply) == (outside, 40000))
        #expect(Self.ipSum(reply) == 0xffff && Self.l4Sum(reply) == 0xffff)
        // Without the option nothing is learnt: another client's reply is untouched.
        let other = Self.tcp(backend, "172.30.0.101", 8080, 40000, flags: 0x12)
        #expect(try dp.run(other).packet == other)
    }

    /// DSR names the frontend in an IPv4 option of a header that has none; a SYN that already
    /// carries options is dropped with a reason of its own (it was "Invalid packet"), counted and
    /// reported like every drop, and Hubble, `cilium monitor` and the metrics have its name.
    @Test func dsrDropsASynWithIPOptionsWithItsOwnReason() async throws {
        let root = try PinRoot("lb-dsr-opts")
        let dp = try await Datapath(root.path)
        let lbIP = "172.30.5.1", outside = "172.30.0.100"
        try dp.frontend(lbIP, port: 80, rev: 5, backends: Self.backends, flags: LB_F_LOADBALANCER.rawValue)
        try dp.setMode(LoadBalancerSubsystem.configFlags(.dsr))
        // The SYN with one word of options (router alert: 0x94 0x04 0x00 0x00) after the base header.
        var syn = Self.tcp(outside, lbIP, 40000, 80)
        syn.insert(contentsOf: [0x94, 0x04, 0x00, 0x00], at: 34)
        syn[14] = 0x46
        let total = UInt16(syn.count - 14)
        syn[16] = UInt8(total >> 8)
        syn[17] = UInt8(total & 0xff)
        let r = try await dp.runFromDevice(syn)
        #expect(r.returnValue == 2, "TC_ACT_SHOT")
        var it = dp.events.records.makeAsyncIterator()
        let record = try #require(await it.next())
        let drop = record.withUnsafeBytes { $0.loadUnaligned(as: cilium_event.self) }
        let reason = UInt8(CILIUM_DROP_DSR_IP_OPTIONS.rawValue)
        #expect(drop.type == UInt8(CILIUM_EVENT_DROP.rawValue))
        #expect(drop.reason == reason)
        #expect(drop.stage == UInt8(CILIUM_STAGE_LB.rawValue))
        #expect(drop.direction == UInt8(CILIUM_DIR_INGRESS.rawValue))
        #expect(drop.dport == UInt16(80).bigEndian && drop.length == UInt32(syn.count))
        let metrics: BPFMap<UInt32, metrics_value> = try await dp.entry.map("cilium_metrics")
        func count(_ reason: UInt8) -> UInt64 {
            metrics.lookupPerCPU(ciliumMetricsIndex(reason: reason, direction: UInt8(CILIUM_DIR_INGRESS.rawValue)))!.reduce(0) { $0 + $1.packets }
        }
        #expect(count(reason) == 1)
        #expect(count(UInt8(CILIUM_DROP_INVALID.rawValue)) == 0)
        let name = try #require(DropReasons.names[reason])
        #expect(name.text != DropReasons.names[UInt8(CILIUM_DROP_INVALID.rawValue)]?.text)
        #expect(name.text.hasPrefix("DSR option cannot be added"))
        // SNAT mode adds no option: the same SYN is translated.
        try dp.setMode(LoadBalancerSubsystem.configFlags(.snat))
        #expect(try await dp.runFromDevice(syn).returnValue == 0)
    }

    /// The XDP program (loadBalancer.acceleration native), run in a namespace
    /// whose routes and neighbours stand in for a node's: a NodePort request
    /// for another node's backend leaves translated towards that node, its
    /// reply goes back to the client; what it cannot finish passes to tc.
    @Test func xdpForwardsNodePortTrafficForAnotherNodesBackend() async throws {
        let root = try PinRoot("lb-xdp")
        let dp = try await Datapath(root.path)
        let xdp = try BPFObject(embedded: "xdp", pinRoot: root.path)
        let program = try await xdp.program("cil_xdp_lb")
        let node = "172.30.0.11", peer = "172.30.0.12", outside = "172.30.0.100", remote = "10.0.1.2", local = "10.0.0.7"
        let peerMAC: [UInt8] = [0x02, 0xaa, 0, 0, 0, 0x12], outsideMAC: [UInt8] = [0x02, 0xaa, 0, 0, 0, 0x64]
        let ns = try NetworkNamespace.create(named: "lbx-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? ns.delete() }
        // bpf_fib_lookup forwards only where the namespace forwards; a new namespace starts from the host's value.
        try ns.setSysctl("net.ipv4.ip_forward", "1")
        let nl = try Netlink(namespace: ns)
        try nl.createVeth(name: "xd0", peerName: "xd1")
        for d in ["lo", "xd0", "xd1"] { try nl.setLinkUp(.name(d)) }
        try nl.addAddress(Netlink.IPv4Prefix(node + "/24")!, to: "xd0")
        try nl.replaceNeighbor(Netlink.IPv4Address(peer)!, mac: Netlink.MACAddress(bytes: peerMAC)!, on: "xd0")
        try nl.replaceNeighbor(Netlink.IPv4Address(outside)!, mac: Netlink.MACAddress(bytes: outsideMAC)!, on: "xd0")
        try nl.replaceRoute(Netlink.Route(destination: Netlink.IPv4Prefix("10.0.1.0/24")!, gateway: Netlink.IPv4Address(peer)))
        try BPFMap<UInt32, node_config>(pinned: root.path + "/cilium_node")
            .update(0, node_config(vxlan_ifindex: 0, flags: 0, address: Packets.be(node), pad: 0))
        // NodePort 30080 (any node address) -> the remote backend; external IP 172.30.5.2:80 -> a local one.
        try dp.frontend("0.0.0.0", port: 30080, rev: 7, backends: [(remote, 8080)], flags: LB_F_NODEPORT.rawValue, firstID: 10)
        try dp.frontend("172.30.5.2", port: 80, rev: 8, backends: [(local, 8080)], flags: LB_F_EXTERNAL_IP.rawValue, firstID: 20)
        // NodePort 30081 -> a backend behind a node whose MAC is not known yet (the stack resolves it).
        try dp.frontend("0.0.0.0", port: 30081, rev: 9, backends: [("10.0.2.2", 8080)], flags: LB_F_NODEPORT.rawValue, firstID: 30)
        try nl.replaceRoute(Netlink.Route(destination: Netlink.IPv4Prefix("10.0.2.0/24")!, gateway: Netlink.IPv4Address("172.30.0.13")))
        try await dp.localWorkload(local, ifindex: 4243)
        let run = { (p: [UInt8]) throws -> BPFProgram.TestRunResult in try ns.run { try program.testRun(packet: p) } }
        let XDP_PASS: UInt32 = 2, XDP_REDIRECT: UInt32 = 4

        // SNAT: the request leaves from the node to the backend, to the peer's MAC.
        let req = try run(Self.tcp(outside, node, 40000, 30080))
        #expect(req.returnValue == XDP_REDIRECT)
        #expect(Self.src(req.packet) == (node, 40000) && Self.dst(req.packet) == (remote, 8080))
        #expect(Array(req.packet[0..<6]) == peerMAC)
        #expect(Self.ipSum(req.packet) == 0xffff && Self.l4Sum(req.packet) == 0xffff)
        // Its reply goes back to the client from the NodePort.
        let rep = try run(Self.tcp(remote, node, 8080, 40000, flags: 0x12))
        #expect(rep.returnValue == XDP_REDIRECT)
        #expect(Self.src(rep.packet) == (node, 30080) && Self.dst(rep.packet) == (outside, 40000))
        #expect(Array(rep.packet[0..<6]) == outsideMAC)
        #expect(Self.ipSum(rep.packet) == 0xffff && Self.l4Sum(rep.packet) == 0xffff)
        // The tc stage knows the connection XDP opened: a later packet through tc keeps the backend.
        let later = try await dp.runFromDevice(Self.tcp(outside, node, 40000, 30080, flags: 0x10)).packet
        #expect(Self.dst(later) == (remote, 8080))

        // DSR: the client stays the source and the SYN carries the option.
        try dp.setMode(LoadBalancerSubsystem.configFlags(.dsr))
        let dsr = try run(Self.tcp(outside, node, 40001, 30080))
        #expect(dsr.returnValue == XDP_REDIRECT)
        #expect(dsr.packet[14] == 0x47 && Array(dsr.packet[34..<42]) == [0x9a, 8, 0x75, 0x80, 172, 30, 0, 11])
        #expect(Array(dsr.packet[26..<34]) == [172, 30, 0, 100, 10, 0, 1, 2])
        var ipSum: UInt32 = 0
        for i in stride(from: 14, to: 42, by: 2) { ipSum += UInt32(dsr.packet[i]) << 8 | UInt32(dsr.packet[i + 1]) }
        #expect(Self.fold(ipSum) == 0xffff)
        var unopt = Array(dsr.packet[0..<34]) + Array(dsr.packet[42...])
        unopt[14] = 0x45
        #expect(Self.l4Sum(unopt) == 0xffff)

        // Left to tc, untouched: a local backend, an unknown neighbour, not a frontend.
        for p in [Self.tcp(outside, "172.30.5.2", 40002, 80), Self.tcp(outside, node, 40003, 30081), Self.tcp(outside, node, 40004, 22)] {
            let r = try run(p)
            #expect(r.returnValue == XDP_PASS && r.packet == p)
        }
        let stats = try #require(XDPAcceleration.counters(bpfRoot: root.path))
        #expect(stats == XDPAcceleration.Counters(translated: 2, reversed: 1, passed: 3))
    }
}

@Suite struct LoadBalancerPinTests {
    /// Agents before the load balancer had a directory of its own pinned its socket-LB and XDP links
    /// under `<bpf root>/links`, beside Networking's; an upgraded agent adopts its own and only those.
    @Test func legacyLinksAreAdoptedIntoItsOwnDirectory() throws {
        let root = try PinRoot("lb-legacy")
        try BPFFS.makeDirectories(root.path + "/links")
        let standIn = try BPFMap<UInt32, UInt32>.create(type: BPF_MAP_TYPE_ARRAY, name: "stand_in", maxEntries: 1)
        for pin in ["sock4-connect", "xdp-eth0", "ingress-eth0"] {
            #expect(bpf_obj_pin(standIn.fd, root.path + "/links/" + pin) == 0)
        }
        try SocketLB.adoptLegacyPins(bpfRoot: root.path)
        let own = try FileManager.default.contentsOfDirectory(atPath: root.path + "/loadbalancer/links")
        #expect(Set(own) == ["sock4-connect", "xdp-eth0"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path + "/links") == ["ingress-eth0"])
    }
}
