import CBPF
import Datapath
import Testing
import TestSupport

@Suite(.serialized) struct DeliveryTests {
    @Test func localEndpointIsRedirectedWithRewrittenMACs() async throws {
        let root = try PinRoot("deliver")
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        try ProgramArray(pinned: root.path + "/cilium_calls").set(slot: CILIUM_STAGE_DELIVER.rawValue,
                                                                  program: try await entry.program("cil_deliver"))
        let lxc: BPFMap<endpoint_key, endpoint_value> = try await entry.map("cilium_lxc")
        var ep = endpoint_value()
        ep.ifindex = 4242
        ep.endpoint_id = 7
        ep.identity = 300
        ep.mac = (0x0a, 1, 2, 3, 4, 5)
        ep.node_mac = (0x0e, 9, 8, 7, 6, 5)
        try lxc.update(endpoint_key(addr: Packets.be("10.0.0.7")), ep)
        let from = try await entry.program("cil_from_container")

        // To a local endpoint: redirected (TC_ACT_REDIRECT = 7), the frame as it came (the default).
        let sent = Packets.tcp(src: "10.0.0.5", dst: "10.0.0.7", sport: 1000, dport: 80)
        let plain = try from.testRun(packet: sent)
        #expect(plain.returnValue == 7)
        #expect(plain.packet == sent)
        // With bpf.rewriteDeliveryMAC: MACs rewritten for the workload.
        let node: BPFMap<UInt32, node_config> = try await entry.map("cilium_node")
        try node.update(0, node_config(vxlan_ifindex: 0, flags: CILIUM_NODE_F_REWRITE_MAC.rawValue, address: 0, pad: 0))
        let r = try from.testRun(packet: sent)
        #expect(r.returnValue == 7)
        #expect(Array(r.packet[0..<6]) == [0x0a, 1, 2, 3, 4, 5])
        #expect(Array(r.packet[6..<12]) == [0x0e, 9, 8, 7, 6, 5])

        // Unknown destination: on to the node's stack, untouched.
        let pkt = Packets.udp(src: "10.0.0.5", dst: "192.0.2.1", sport: 1, dport: 53)
        let other = try from.testRun(packet: pkt)
        #expect(other.returnValue == 0)
        #expect(other.packet == pkt)

        // From the node's stack (egress hook) nothing is redirected: redirect_peer needs ingress.
        let to = try await entry.program("cil_to_container")
        #expect(try to.testRun(packet: Packets.tcp(src: "10.0.0.1", dst: "10.0.0.7", sport: 1, dport: 80)).returnValue == 0)
    }

    @Test func remoteEndpointIsEncapsulatedInTunnelModeOnly() async throws {
        let root = try PinRoot("tunnel")
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        try ProgramArray(pinned: root.path + "/cilium_calls").set(slot: CILIUM_STAGE_DELIVER.rawValue,
                                                                  program: try await entry.program("cil_deliver"))
        let ipcache: BPFMap<ipcache_key, ipcache_value> = try await entry.map("cilium_ipcache")
        let node: BPFMap<UInt32, node_config> = try await entry.map("cilium_node")
        var remote = ipcache_value()
        remote.identity = 4000
        remote.tunnel_endpoint = Packets.be("172.30.0.12")
        try ipcache.update(ipcache_key(prefixlen: 24, addr: Packets.be("10.0.5.0")), remote)
        var local = ipcache_value()
        local.identity = 300
        try ipcache.update(ipcache_key(prefixlen: 32, addr: Packets.be("10.0.0.5")), local)
        let from = try await entry.program("cil_from_container")
        let pkt = Packets.tcp(src: "10.0.0.5", dst: "10.0.5.9", sport: 1000, dport: 80)

        // Native routing (no tunnel device): the node's stack routes it.
        #expect(try from.testRun(packet: pkt).returnValue == 0)

        // Tunnel mode: redirected into cilium_vxlan with a tunnel key.
        try node.update(0, node_config(vxlan_ifindex: 1, flags: 0, address: 0, pad: 0))
        let stats: BPFMap<UInt32, stage_stats> = try await entry.map("cilium_stage_stats")
        let before = stats.lookupPerCPU(CILIUM_STAGE_DELIVER.rawValue)!.reduce(0) { $0 + $1.packets }
        #expect(try from.testRun(packet: pkt).returnValue == 7)
        #expect(stats.lookupPerCPU(CILIUM_STAGE_DELIVER.rawValue)!.reduce(0) { $0 + $1.packets } == before + 1)
        // A destination the ipcache does not place on another node stays local.
        #expect(try from.testRun(packet: Packets.tcp(src: "10.0.0.5", dst: "192.0.2.9", sport: 1, dport: 2)).returnValue == 0)
    }

    /// A full event ring buffer: the datapath counts what it could not report (Hubble's lost events).
    @Test func eventsThatDoNotFitAreCountedAsLost() async throws {
        let root = try PinRoot("lost")
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        let from = try await entry.program("cil_from_container")
        // An IPv4 header length below 5 words: every run drops it (Invalid packet) and reports the drop; nobody reads the ring.
        let bad: [UInt8] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, 0x44] + [UInt8](repeating: 0, count: 45)
        let runs = 30_000
        _ = try from.testRun(packet: bad, repeat: runs)
        let metrics: BPFMap<UInt32, metrics_value> = try await entry.map("cilium_metrics")
        func sum(_ i: UInt32) -> UInt64 { metrics.lookupPerCPU(i)?.reduce(0) { $0 + $1.packets } ?? 0 }
        let drops = sum(ciliumMetricsIndex(reason: UInt8(CILIUM_DROP_INVALID.rawValue), direction: UInt8(CILIUM_DIR_EGRESS.rawValue)))
        let lost = sum(ciliumMetricsIndex(reason: UInt8(CILIUM_EVENTS_LOST), direction: 0))
        #expect(drops == UInt64(runs))
        // The ring (1 MiB) holds about 14,500 records of 72 bytes; the rest were lost and counted.
        #expect(lost > 10_000 && lost < UInt64(runs), "lost \(lost) of \(runs)")
    }
}
