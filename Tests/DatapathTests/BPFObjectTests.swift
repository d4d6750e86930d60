import CBPF
import Datapath
import Foundation
import Testing
import TestSupport

func sumPerCPU(_ values: [stage_stats]) -> UInt64 { values.reduce(0) { $0 + $1.packets } }

@Suite(.serialized) struct BPFObjectTests {
    @Test func everyEmbeddedObjectPassesTheVerifier() async throws {
        let root = try PinRoot("verify")
        #expect(BPFObject.embeddedNames == ["bench_redirect_peer", "encrypt", "entry", "hostfw", "lb", "policy", "sock", "xdp"])
        for name in BPFObject.embeddedNames {
            let obj = try BPFObject(embedded: name, pinRoot: root.path)
            #expect(!(await obj.programNames()).isEmpty)
        }
    }

    @Test func entryForwardsThroughEnabledStagesOnly() async throws {
        let root = try PinRoot("pipeline")
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        let policy = try BPFObject(embedded: "policy", pinRoot: root.path)
        let calls = try ProgramArray(pinned: root.path + "/cilium_calls")
        let stats: BPFMap<UInt32, stage_stats> = try await entry.map("cilium_stage_stats")
        let prog = try await entry.program("cil_from_container")
        let pkt = Packets.tcp(src: "10.1.0.5", dst: "10.1.0.6", sport: 40000, dport: 80)

        // No stage in the array: the packet is forwarded, no stage counts it.
        var r = try prog.testRun(packet: pkt)
        #expect(r.returnValue == 0) // TC_ACT_OK
        #expect(sumPerCPU(stats.lookupPerCPU(UInt32(CILIUM_STAGE_POLICY.rawValue))!) == 0)

        // Policy enabled: its stage runs, and the packet still goes through.
        try calls.set(slot: UInt32(CILIUM_STAGE_POLICY.rawValue), program: try await policy.program("cil_stage_policy"))
        r = try prog.testRun(packet: pkt, repeat: 3)
        #expect(r.returnValue == 0)
        #expect(sumPerCPU(stats.lookupPerCPU(UInt32(CILIUM_STAGE_POLICY.rawValue))!) == 3)
        #expect(calls.programID(slot: UInt32(CILIUM_STAGE_POLICY.rawValue)) != nil)

        // Disabled again: the slot is empty, the stage no longer counts.
        calls.clear(slot: UInt32(CILIUM_STAGE_POLICY.rawValue))
        #expect(calls.programID(slot: UInt32(CILIUM_STAGE_POLICY.rawValue)) == nil)
        _ = try prog.testRun(packet: pkt)
        #expect(sumPerCPU(stats.lookupPerCPU(UInt32(CILIUM_STAGE_POLICY.rawValue))!) == 3)

        let metrics: BPFMap<UInt32, metrics_value> = try await entry.map("cilium_metrics")
        let key = ciliumMetricsIndex(reason: 0, direction: UInt8(CILIUM_DIR_EGRESS.rawValue))
        #expect(metrics.lookupPerCPU(key)!.reduce(0) { $0 + $1.packets } == 5)
    }

    /// On a node device, the VXLAN tunnel between this node and a known node passes without the
    /// stages (its inner packets run them on cilium_vxlan); the same port from anyone else, or to
    /// another address, or with the node not in tunnel mode, still runs them.
    @Test func tunnelBetweenKnownNodesSkipsTheStagesOnTheDevice() async throws {
        let root = try PinRoot("tunnel")
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        let policy = try BPFObject(embedded: "policy", pinRoot: root.path)
        let calls = try ProgramArray(pinned: root.path + "/cilium_calls")
        try calls.set(slot: UInt32(CILIUM_STAGE_POLICY.rawValue), program: try await policy.program("cil_stage_policy"))
        let stats: BPFMap<UInt32, stage_stats> = try await entry.map("cilium_stage_stats")
        let ipcache: BPFMap<ipcache_key, ipcache_value> = try await entry.map("cilium_ipcache")
        var peer = ipcache_value()
        peer.identity = UInt32(CILIUM_ID_REMOTE_NODE.rawValue)
        try ipcache.update(ipcache_key(prefixlen: 32, addr: Packets.be("172.30.0.12")), peer)
        let nodeMap: BPFMap<UInt32, node_config> = try await entry.map("cilium_node")
        let tunnel = node_config(vxlan_ifindex: 7, flags: 0, address: Packets.be("172.30.0.11"), pad: 0)
        try nodeMap.update(0, tunnel)
        let from = try await entry.program("cil_from_netdev"), to = try await entry.program("cil_to_netdev")
        let port = UInt16(CILIUM_TUNNEL_PORT)
        func stageRuns() -> UInt64 { sumPerCPU(stats.lookupPerCPU(UInt32(CILIUM_STAGE_POLICY.rawValue))!) }

        // Known node <-> this node on the tunnel port, both ways: no stage.
        #expect(try from.testRun(packet: Packets.udp(src: "172.30.0.12", dst: "172.30.0.11", sport: 51000, dport: port)).returnValue == 0)
        #expect(try to.testRun(packet: Packets.udp(src: "172.30.0.11", dst: "172.30.0.12", sport: 51000, dport: port)).returnValue == 0)
        #expect(stageRuns() == 0)
        // From the world, to another address, from this node to the world: the stages run.
        _ = try from.testRun(packet: Packets.udp(src: "172.30.0.100", dst: "172.30.0.11", sport: 51000, dport: port))
        _ = try from.testRun(packet: Packets.udp(src: "172.30.0.12", dst: "172.30.0.99", sport: 51000, dport: port))
        _ = try to.testRun(packet: Packets.udp(src: "172.30.0.11", dst: "172.30.0.100", sport: 51000, dport: port))
        #expect(stageRuns() == 3)
        // Another port, or native routing (no tunnel device): the stages run.
        _ = try from.testRun(packet: Packets.udp(src: "172.30.0.12", dst: "172.30.0.11", sport: 51000, dport: port + 1))
        try nodeMap.update(0, node_config(vxlan_ifindex: 0, flags: 0, address: tunnel.address, pad: 0))
        _ = try from.testRun(packet: Packets.udp(src: "172.30.0.12", dst: "172.30.0.11", sport: 51000, dport: port))
        #expect(stageRuns() == 5)
    }

    @Test func truncatedPacketIsDroppedWithReasonAndEvent() async throws {
        let root = try PinRoot("drop")
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        let reader = try RingBufferReader(mapFD: try await entry.mapFD("cilium_events"))
        defer { reader.stop() }
        let prog = try await entry.program("cil_to_container")
        var pkt = Packets.tcp(src: "10.1.0.5", dst: "10.1.0.6", sport: 1, dport: 2)
        pkt = Array(pkt.prefix(14 + 20 + 2)) // the TCP ports cut in half
        let r = try prog.testRun(packet: pkt)
        #expect(r.returnValue == 2) // TC_ACT_SHOT
        var it = reader.records.makeAsyncIterator()
        let record = try #require(await it.next())
        #expect(record.count == MemoryLayout<cilium_event>.size)
        let event = record.withUnsafeBytes { $0.loadUnaligned(as: cilium_event.self) }
        #expect(event.type == UInt8(CILIUM_EVENT_DROP.rawValue))
        #expect(event.reason == UInt8(CILIUM_DROP_INVALID.rawValue))
        #expect(event.direction == UInt8(CILIUM_DIR_INGRESS.rawValue))
    }

    @Test func ipcacheIdentitiesReachTheStages() async throws {
        let root = try PinRoot("ipcache")
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        let ipcache: BPFMap<ipcache_key, ipcache_value> = try await entry.map("cilium_ipcache")
        var k = ipcache_key(prefixlen: 32, addr: Packets.be("10.1.0.5"))
        var v = ipcache_value()
        v.identity = 4242
        try ipcache.update(k, v)
        k.addr = Packets.be("10.1.0.6")
        v.identity = 777
        try ipcache.update(k, v)
        #expect(ipcache.lookup(k)?.identity == 777)
        #expect(ipcache.count == 2)
        // The entry program leaves the resolved identities in skb->cb for the stages.
        var ctx = [UInt8](repeating: 0, count: MemoryLayout<__sk_buff>.size)
        let prog = try await entry.program("cil_from_container")
        let r = try prog.testRun(packet: Packets.udp(src: "10.1.0.5", dst: "10.1.0.6", sport: 5, dport: 53), context: ctx)
        #expect(r.returnValue == 0)
        ctx = r.context
        let skb = ctx.withUnsafeBytes { $0.loadUnaligned(as: __sk_buff.self) }
        #expect(skb.cb.1 == 4242)
        #expect(skb.cb.2 == 777)
        #expect(skb.cb.3 == UInt32(CILIUM_DIR_EGRESS.rawValue))
    }
}

@Suite(.serialized) struct PinAdoptionTests {
    @Test func secondLoaderAdoptsPinnedMaps() async throws {
        let root = try PinRoot("adopt")
        let first = try BPFObject(embedded: "entry", pinRoot: root.path)
        let lxc1: BPFMap<endpoint_key, endpoint_value> = try await first.map("cilium_lxc")
        var v = endpoint_value()
        v.ifindex = 17
        v.endpoint_id = 1234
        try lxc1.update(endpoint_key(addr: Packets.be("10.1.0.9")), v)
        await first.close()

        // A new loader (a restarted agent) gets the same map with its content.
        let second = try BPFObject(embedded: "entry", pinRoot: root.path)
        let lxc2: BPFMap<endpoint_key, endpoint_value> = try await second.map("cilium_lxc")
        #expect(lxc2.lookup(endpoint_key(addr: Packets.be("10.1.0.9")))?.endpoint_id == 1234)
        let pinned = try BPFMap<endpoint_key, endpoint_value>(pinned: root.path + "/cilium_lxc")
        #expect(pinned.count == 1)
    }

    @Test func mismatchedSwiftTypeIsRefused() async throws {
        let root = try PinRoot("types")
        let obj = try BPFObject(embedded: "entry", pinRoot: root.path)
        await #expect(throws: BPFError.self) {
            let _: BPFMap<UInt64, UInt8> = try await obj.map("cilium_lxc")
        }
    }
}
