import AgentModel
import CBPF
import Datapath
import Foundation
import Glibc
import KVStore
import LinuxNet
@testable import Networking
import Reconciler
import Testing
import TestSupport

/// The cluster state is followed event by event after one listing (issue 15): a kvstore event
/// costs the key it names, an unchanged key costs nothing, and a restarted agent keeps the other
/// nodes' entries in its datapath until its first listing is in.
@Suite(.serialized) struct ClusterSyncTests {
    static func record(_ identity: UInt32, host: String = "192.168.77.2") throws -> Data {
        // The key names the address; the pair's own IP is not what ClusterSync reads.
        try JSONEncoder().encode(IPIdentityPair(ip: "10.77.0.1", hostIP: host, id: identity, namespace: "default"))
    }

    @Test func eventsAreAppliedOneByOneAndANoOpEventChangesNothing() async throws {
        let dir = try TempDir("cluster-sync")
        let store = try EmbeddedKVStore(path: dir.path + "/kvstore.json")
        for i in 0..<300 {
            _ = try await store.put(KVKeys.ip("10.77.\(i / 250).\(i % 250 + 1)"), try Self.record(300 + UInt32(i % 10)), lease: nil)
        }
        let shared = SharedState()
        await shared.ipcache.registerInitializer(ClusterSync.ipcacheSource)
        let sync = ClusterSync(store: store, cluster: "default", node: "me", shared: shared)
        await sync.start(nodeAddress: nil, podCIDR: IPv4Prefix("10.0.1.0/24")!)
        defer { Task { await sync.stop() } }
        try await waitFor("the listing is in") { await shared.ipcache.isInitialized }
        #expect(await shared.ipcache.count == 300)
        #expect(await sync.lists == 1)

        // The same key put again unchanged: applied, and no table change (no reconciler, recompute or write).
        let revision = await shared.ipcache.revision
        let applied = await sync.eventsApplied
        _ = try await store.put(KVKeys.ip("10.77.0.1"), try Self.record(300), lease: nil)
        try await waitFor("the event is applied") { await sync.eventsApplied > applied }
        #expect(await shared.ipcache.revision == revision)

        // A changed key and a deleted one: exactly those two change, without a new listing.
        _ = try await store.put(KVKeys.ip("10.77.0.2"), try Self.record(999), lease: nil)
        _ = try await store.delete(KVKeys.ip("10.77.0.3"))
        try await waitFor("both events are applied") { await sync.eventsApplied >= applied + 3 }
        #expect(await shared.ipcache.revision == revision + 2)
        #expect(await shared.ipcache.get(IPv4Prefix("10.77.0.2/32")!)?.identity == 999)
        #expect(await shared.ipcache.get(IPv4Prefix("10.77.0.3/32")!) == nil)
        #expect(await shared.ipcache.count == 299)
        #expect(await sync.lists == 1)
    }

    /// Identities are listed with the rest and followed by their events (before, each new
    /// identity of an endpoint cost one kvstore read: 1,000 sequential reads at 15k endpoints).
    @Test func identitiesAreListedAndFollowed() async throws {
        let dir = try TempDir("cluster-sync-ids")
        let store = try EmbeddedKVStore(path: dir.path + "/kvstore.json")
        for id in 300..<310 {
            _ = try await store.put(KVKeys.identity(id), KVKeys.labelList(["k8s:app=a\(id)", "k8s:io.kubernetes.pod.namespace=default"]))
        }
        _ = try await store.put(KVKeys.ip("10.77.0.1"), try Self.record(305), lease: nil)
        let shared = SharedState()
        let sync = ClusterSync(store: store, cluster: "default", node: "me", shared: shared)
        await sync.start(nodeAddress: nil, podCIDR: IPv4Prefix("10.0.1.0/24")!)
        defer { Task { await sync.stop() } }
        try await waitFor("the listing is in") { await sync.lists == 1 }
        #expect(await shared.identities.get(300)?.labels == ["k8s:app=a300", "k8s:io.kubernetes.pod.namespace=default"])
        #expect(await shared.identities.get(309) != nil)
        let applied = await sync.eventsApplied
        _ = try await store.put(KVKeys.identity(400), KVKeys.labelList(["app=new"]))
        try await waitFor("the new identity is in the table") { await shared.identities.get(400) != nil }
        #expect(await shared.identities.get(400)?.labels == ["k8s:app=new"])
        #expect(await sync.eventsApplied > applied)
        #expect(await sync.lists == 1)
    }

    /// A new agent says READY only once the other nodes' endpoints are in its BPF ipcache.
    @Test func readyFollowsTheFirstListing() async throws {
        let agent = try AgentUnderTest("ready-sync")
        try FileManager.default.createDirectory(atPath: agent.dir.path + "/state", withIntermediateDirectories: true)
        do {
            let store = try EmbeddedKVStore(path: agent.dir.path + "/state/kvstore.json")
            try await store.write(batch: (0..<5000).map { i in (KVKeys.ip("10.78.\(i / 250).\(i % 250 + 1)"), try Self.record(300)) })
        }
        _ = try agent.start()
        defer { agent.stop() }
        let map = try BPFMap<ipcache_key, ipcache_value>(pinned: agent.bpfRoot + "/cilium_ipcache")
        #expect(map.count >= 5000, "READY with \(map.count) ipcache entries")
    }

    /// kill -9 and a graceful restart of an agent whose kvstore holds 500 endpoints of another
    /// node: sampled every millisecond or so, its BPF ipcache never loses them (before, the
    /// ipcache reconciler's first prune ran before the first listing and emptied it for a while).
    @Test func aRestartedAgentKeepsTheOtherNodesEntries() async throws {
        let agent = try AgentUnderTest("gap")
        try FileManager.default.createDirectory(atPath: agent.dir.path + "/state", withIntermediateDirectories: true)
        do {
            let store = try EmbeddedKVStore(path: agent.dir.path + "/state/kvstore.json")
            for i in 0..<500 {
                _ = try await store.put(KVKeys.ip("10.77.\(i / 250).\(i % 250 + 1)"), try Self.record(300), lease: nil)
            }
        }
        try agent.start()
        let map = try BPFMap<ipcache_key, ipcache_value>(pinned: agent.bpfRoot + "/cilium_ipcache")
        try await waitFor("the endpoints are in the BPF ipcache") { () async in map.count >= 500 }
        let full = map.count
        for signal in [SIGKILL, SIGTERM] {
            let sampler = Sampler { map.count }
            agent.stop(signal: signal)
            try agent.start()
            try await Task.sleep(for: .seconds(1))
            let (lowest, samples) = sampler.finish()
            print("ipcache during a restart (signal \(signal)): \(samples) samples, lowest \(lowest) of \(full)")
            #expect(samples > 100)
            #expect(lowest >= full, "signal \(signal): the BPF ipcache fell to \(lowest) of \(full)")
        }
        agent.stop()
    }
}

/// Samples a value on a thread of its own until finished; the lowest value seen.
final class Sampler: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true
    private var lowest = Int.max
    private var samples = 0
    private let done = DispatchSemaphore(value: 0)

    init(_ read: @escaping @Sendable () -> Int) {
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }) {
                let v = read()
                lock.withLock { lowest = min(lowest, v); samples += 1 }
                usleep(500)
            }
            done.signal()
        }
    }

    func finish() -> (lowest: Int, samples: Int) {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { (lowest, samples) }
    }
}

/// Issue 17, gap 2: the labels every workload gets.
@Suite struct DefaultLabelTests {
    @Test func namespaceAndClusterAreAddedOnceAndInitStaysInit() {
        #expect(EndpointManager.withDefaultLabels(["app=web"], namespace: nil, cluster: "c1")
                == ["app=web", "io.kubernetes.pod.namespace=default", "io.cilium.k8s.policy.cluster=c1"])
        #expect(EndpointManager.withDefaultLabels(["k8s:app=web", "k8s:io.cilium.k8s.policy.cluster=other"], namespace: "prod", cluster: "c1")
                == ["k8s:app=web", "k8s:io.cilium.k8s.policy.cluster=other", "io.kubernetes.pod.namespace=prod"])
        #expect(EndpointManager.withDefaultLabels([], namespace: "prod", cluster: "c1") == [])
    }
}
