import Manifests
import CBPF
import Datapath
import Testing
import TestSupport
@testable import Policy

/// BPF_PROG_TEST_RUN through the entry program and the real policy stage,
/// against maps filled here: verdicts, reasons, events, counters, replies.
@Suite(.serialized) struct PolicyStageTests {
    static let client = (ip: "10.0.0.5", ep: UInt16(5), identity: UInt32(1000))
    static let echo = (ip: "10.0.0.7", ep: UInt16(7), identity: UInt32(1002))
    static let ingress = UInt8(CILIUM_DIR_INGRESS.rawValue)
    static let egress = UInt8(CILIUM_DIR_EGRESS.rawValue)

    /// Entry + policy objects on one pin root, two endpoints and their identities.
    final class Datapath {
        let root: String
        let entry: BPFObject
        let policyObject: BPFObject
        let policy: BPFMap<policy_key, policy_entry>
        let endpoints: BPFMap<UInt16, policy_ep_value>
        let events: RingBufferReader
        let fromContainer: BPFProgram

        init(_ root: String) async throws {
            self.root = root
            entry = try BPFObject(embedded: "entry", pinRoot: root)
            policyObject = try BPFObject(embedded: "policy", pinRoot: root)
            try ProgramArray(pinned: root + "/cilium_calls").set(slot: CILIUM_STAGE_POLICY.rawValue,
                                                                 program: try await policyObject.program("cil_stage_policy"))
            policy = try BPFMap(pinned: root + "/cilium_policy")
            endpoints = try BPFMap(pinned: root + "/cilium_policy_ep")
            events = try RingBufferReader(mapFD: try await entry.mapFD("cilium_events"))
            fromContainer = try await entry.program("cil_from_container")
            let lxc: BPFMap<endpoint_key, endpoint_value> = try await entry.map("cilium_lxc")
            let ipcache: BPFMap<ipcache_key, ipcache_value> = try await entry.map("cilium_ipcache")
            for e in [PolicyStageTests.client, PolicyStageTests.echo] {
                var v = endpoint_value()
                v.endpoint_id = e.ep
                v.identity = e.identity
                v.ifindex = 100 + UInt32(e.ep)
                try lxc.update(endpoint_key(addr: Packets.be(e.ip)), v)
                var i = ipcache_value()
                i.identity = e.identity
                try ipcache.update(ipcache_key(prefixlen: 32, addr: Packets.be(e.ip)), i)
            }
        }

        deinit { events.stop() }

        func set(_ ep: UInt16, flags: cilium_policy_ep_flags...) throws {
            try endpoints.update(ep, policy_ep_value(flags: flags.reduce(0) { $0 | $1.rawValue }, revision: 1))
        }

        func add(_ ep: UInt16, _ dir: UInt8, identity: UInt32, proto: UInt8 = 0, prefix: Int32 = CILIUM_POLICY_PREFIX_ANY_PROTO,
                 port: UInt16 = 0, deny: Bool = false, rule: UInt32 = 1) throws {
            let e = PolicyMapEntry(key: .init(endpoint: ep, direction: dir, identity: identity, proto: proto,
                                              prefixLength: UInt8(prefix), port: port), deny: deny, ruleID: rule)
            try policy.update(e.key.mapKey, e.mapValue)
        }

        func counters(_ ep: UInt16, _ dir: UInt8, identity: UInt32, proto: UInt8, prefix: Int32, port: UInt16) -> UInt64 {
            let k = PolicyMapEntry.Key(endpoint: ep, direction: dir, identity: identity, proto: proto,
                                       prefixLength: UInt8(prefix), port: port)
            return policy.lookup(k.mapKey)?.packets ?? 0
        }

        /// client -> echo, TCP to `port`, through the client's veth (its egress, echo's ingress).
        func send(_ src: String, _ dst: String, sport: UInt16 = 40000, dport: UInt16) throws -> UInt32 {
            try fromContainer.testRun(packet: Packets.tcp(src: src, dst: dst, sport: sport, dport: dport)).returnValue
        }

        func nextEvent() async -> cilium_event? {
            var it = events.records.makeAsyncIterator()
            guard let r = await it.next() else { return nil }
            return r.withUnsafeBytes { $0.loadUnaligned(as: cilium_event.self) }
        }
    }

    static let shot: UInt32 = 2, ok: UInt32 = 0

    @Test func allowedPortPassesOtherPortsHitDefaultDeny() async throws {
        let root = try PinRoot("pol-allow")
        let dp = try await Datapath(root.path)
        // No policy state for the endpoints: everything passes, and the new connection is traced.
        #expect(try dp.send(Self.client.ip, Self.echo.ip, dport: 81) == Self.ok)
        let trace = try #require(await dp.nextEvent())
        #expect(trace.type == UInt8(CILIUM_EVENT_TRACE.rawValue))
        #expect(trace.stage == UInt8(CILIUM_STAGE_POLICY.rawValue) && trace.reason == 0 && trace.rule_id == 0)
        #expect(trace.dport == UInt16(81).bigEndian && trace.tcp_flags == 0x02, "SYN")
        #expect(trace.src_identity == Self.client.identity && trace.dst_identity == Self.echo.identity)

        try dp.set(Self.echo.ep, flags: CILIUM_POLICY_F_INGRESS, CILIUM_POLICY_F_INGRESS_ENTRIES)
        try dp.add(Self.echo.ep, Self.ingress, identity: Self.client.identity, proto: 6, prefix: CILIUM_POLICY_PREFIX_FULL, port: 80, rule: 11)
        #expect(try dp.send(Self.client.ip, Self.echo.ip, dport: 80) == Self.ok)
        let verdict = try #require(await dp.nextEvent())
        #expect(verdict.type == UInt8(CILIUM_EVENT_POLICY_VERDICT.rawValue))
        #expect(verdict.rule_id == 11)
        #expect(verdict.direction == Self.ingress)

        #expect(try dp.send(Self.client.ip, Self.echo.ip, sport: 40001, dport: 81) == Self.shot)
        let drop = try #require(await dp.nextEvent())
        #expect(drop.type == UInt8(CILIUM_EVENT_DROP.rawValue))
        #expect(drop.reason == UInt8(CILIUM_DROP_POLICY.rawValue))
        #expect(drop.stage == UInt8(CILIUM_STAGE_POLICY.rawValue))
        #expect(drop.src_identity == Self.client.identity)
        #expect(drop.dst_identity == Self.echo.identity)
        #expect(drop.dport == UInt16(81).bigEndian)
        #expect(drop.rule_id == 0)

        // The allowed entry counted its packet.
        #expect(dp.counters(Self.echo.ep, Self.ingress, identity: Self.client.identity, proto: 6,
                            prefix: CILIUM_POLICY_PREFIX_FULL, port: 80) == 1)
        // Drops are counted by reason and direction.
        let metrics: BPFMap<UInt32, metrics_value> = try await dp.entry.map("cilium_metrics")
        let drops = metrics.lookupPerCPU(ciliumMetricsIndex(reason: UInt8(CILIUM_DROP_POLICY.rawValue), direction: Self.ingress))!
        #expect(drops.reduce(0) { $0 + $1.packets } == 1)
    }

    @Test func denyWinsOverAllowAndNamesItsRule() async throws {
        let root = try PinRoot("pol-deny")
        let dp = try await Datapath(root.path)
        try dp.set(Self.echo.ep, flags: CILIUM_POLICY_F_INGRESS, CILIUM_POLICY_F_INGRESS_ENTRIES, CILIUM_POLICY_F_INGRESS_ANY)
        // Allow everything from the client; deny TCP 80 from anyone.
        try dp.add(Self.echo.ep, Self.ingress, identity: Self.client.identity, rule: 1)
        try dp.add(Self.echo.ep, Self.ingress, identity: 0, proto: 6, prefix: CILIUM_POLICY_PREFIX_FULL, port: 80, deny: true, rule: 2)
        #expect(try dp.send(Self.client.ip, Self.echo.ip, dport: 80) == Self.shot)
        let drop = try #require(await dp.nextEvent())
        #expect(drop.reason == UInt8(CILIUM_DROP_POLICY_DENY.rawValue))
        #expect(drop.rule_id == 2)
        #expect(try dp.send(Self.client.ip, Self.echo.ip, dport: 443) == Self.ok)
        // A port range as LPM blocks: 8000-8015 is one 12-bit block.
        try dp.add(Self.echo.ep, Self.ingress, identity: Self.client.identity, proto: 6, prefix: 92, port: 8000, deny: true, rule: 3)
        #expect(try dp.send(Self.client.ip, Self.echo.ip, dport: 8015) == Self.shot)
        #expect(try dp.send(Self.client.ip, Self.echo.ip, dport: 8016) == Self.ok)
    }

    /// A policy drop goes through the datapath's one drop helper: the direction that decided it
    /// (here the sender's egress) and the rule in the event, and the drop counted by reason and
    /// that direction, packets and bytes.
    @Test func anEgressDenyReportsItsRuleAndCountsInItsDirection() async throws {
        let root = try PinRoot("pol-egress-deny")
        let dp = try await Datapath(root.path)
        try dp.set(Self.client.ep, flags: CILIUM_POLICY_F_EGRESS_ENTRIES)
        try dp.add(Self.client.ep, Self.egress, identity: Self.echo.identity, proto: 6, prefix: CILIUM_POLICY_PREFIX_FULL, port: 80,
                   deny: true, rule: 9)
        let pkt = Packets.tcp(src: Self.client.ip, dst: Self.echo.ip, sport: 40000, dport: 80)
        #expect(try dp.fromContainer.testRun(packet: pkt).returnValue == Self.shot)
        let drop = try #require(await dp.nextEvent())
        #expect(drop.type == UInt8(CILIUM_EVENT_DROP.rawValue))
        #expect(drop.reason == UInt8(CILIUM_DROP_POLICY_DENY.rawValue))
        #expect(drop.stage == UInt8(CILIUM_STAGE_POLICY.rawValue))
        #expect(drop.direction == Self.egress)
        #expect(drop.rule_id == 9)
        #expect(drop.length == UInt32(pkt.count))
        #expect(drop.src_identity == Self.client.identity && drop.dst_identity == Self.echo.identity)
        let metrics: BPFMap<UInt32, metrics_value> = try await dp.entry.map("cilium_metrics")
        let reason = UInt8(CILIUM_DROP_POLICY_DENY.rawValue)
        let egress = metrics.lookupPerCPU(ciliumMetricsIndex(reason: reason, direction: Self.egress))!
        #expect(egress.reduce(0) { $0 + $1.packets } == 1)
        #expect(egress.reduce(0) { $0 + $1.bytes } == UInt64(pkt.count))
        #expect(metrics.lookupPerCPU(ciliumMetricsIndex(reason: reason, direction: Self.ingress))!.reduce(0) { $0 + $1.packets } == 0)
        // The deny entry counted the packet it decided.
        #expect(dp.counters(Self.client.ep, Self.egress, identity: Self.echo.identity, proto: 6,
                            prefix: CILIUM_POLICY_PREFIX_FULL, port: 80) == 1)
    }

    @Test func repliesOfAllowedConnectionsPass() async throws {
        let root = try PinRoot("pol-reply")
        let dp = try await Datapath(root.path)
        // Echo may send nothing on its own; client may send nothing either, except to echo:80.
        try dp.set(Self.echo.ep, flags: CILIUM_POLICY_F_EGRESS)
        try dp.set(Self.client.ep, flags: CILIUM_POLICY_F_EGRESS, CILIUM_POLICY_F_EGRESS_ENTRIES)
        try dp.add(Self.client.ep, Self.egress, identity: Self.echo.identity, proto: 6, prefix: CILIUM_POLICY_PREFIX_FULL, port: 80)
        #expect(try dp.send(Self.client.ip, Self.echo.ip, sport: 5555, dport: 80) == Self.ok)
        // The reply leaves echo (its egress is default deny) and passes as a reply.
        #expect(try dp.send(Self.echo.ip, Self.client.ip, sport: 80, dport: 5555) == Self.ok)
        // A connection echo opens itself is dropped.
        #expect(try dp.send(Self.echo.ip, Self.client.ip, sport: 80, dport: 5556) == Self.shot)
        // ICMP: echo requests need a rule, their replies do not.
        let icmp = dp.fromContainer
        #expect(try icmp.testRun(packet: Packets.icmp(src: Self.client.ip, dst: Self.echo.ip, type: 8, id: 9)).returnValue == Self.shot)
        try dp.add(Self.client.ep, Self.egress, identity: Self.echo.identity, proto: 1, prefix: CILIUM_POLICY_PREFIX_FULL, port: 8)
        #expect(try icmp.testRun(packet: Packets.icmp(src: Self.client.ip, dst: Self.echo.ip, type: 8, id: 9)).returnValue == Self.ok)
        #expect(try icmp.testRun(packet: Packets.icmp(src: Self.echo.ip, dst: Self.client.ip, type: 0, id: 9)).returnValue == Self.ok)
    }

    @Test func auditModeReportsButDropsNothing() async throws {
        let root = try PinRoot("pol-audit")
        let dp = try await Datapath(root.path)
        try dp.set(Self.echo.ep, flags: CILIUM_POLICY_F_INGRESS, CILIUM_POLICY_F_AUDIT)
        #expect(try dp.send(Self.client.ip, Self.echo.ip, dport: 80) == Self.ok)
        let e = try #require(await dp.nextEvent())
        #expect(e.type == UInt8(CILIUM_EVENT_POLICY_VERDICT.rawValue))
        #expect(e.flags & UInt8(CILIUM_EVENT_F_AUDIT.rawValue) != 0)
        #expect(e.reason == UInt8(CILIUM_DROP_POLICY.rawValue))
    }

    @Test func entriesWrittenByTheReconcilerKeepTheirCounters() async throws {
        let root = try PinRoot("pol-counters")
        let dp = try await Datapath(root.path)
        let ops = PolicyMapOperations(map: dp.policy)
        let entry = PolicyMapEntry(key: .init(endpoint: Self.echo.ep, direction: Self.ingress, identity: Self.client.identity,
                                              proto: 0, prefixLength: UInt8(CILIUM_POLICY_PREFIX_ANY_PROTO), port: 0),
                                   deny: false, ruleID: 4)
        try await ops.update(entry)
        try dp.set(Self.echo.ep, flags: CILIUM_POLICY_F_INGRESS, CILIUM_POLICY_F_INGRESS_ENTRIES)
        for p in 0..<3 { #expect(try dp.send(Self.client.ip, Self.echo.ip, sport: UInt16(1000 + p), dport: 80) == Self.ok) }
        // A refresh of the same entry, then a change of its rule: the counts stay.
        try await ops.update(entry)
        var changed = entry
        changed.ruleID = 5
        try await ops.update(changed)
        let v = try #require(dp.policy.lookup(entry.key.mapKey))
        #expect(v.packets == 3)
        #expect(v.rule_id == 5)
        // Prune removes what is no longer wanted.
        try await ops.prune(desired: [])
        #expect(dp.policy.keys().isEmpty)
    }
}
