import AgentModel
import API
@testable import ClusterMesh
import Foundation
import KVStore
import LinuxNet
import Testing
import TestSupport

/// Issue 19: a remote cluster's records, in upstream's shapes, reach the shared tables (ipcache with the remote
/// node as tunnel endpoint, identities with their labels, shared services, remote nodes); what is refused is
/// refused with its reason, and a disconnected cluster leaves nothing behind. The stores here are embedded ones
/// opened through the subsystem's opener; real etcd (TLS, outages, restarts) is in the sandbox's tests.
@Suite(.serialized) struct RemoteClusterTests {
    static let remoteID: UInt32 = 2 << 16 | 5

    /// A cluster's store holding upstream-shaped records: one node, one pod, its identity, a global service.
    static func remoteStore(_ dir: String, name: String, id: Int, podCIDR: String, nodeAddress: String) async throws -> EmbeddedKVStore {
        let store = try EmbeddedKVStore(path: "\(dir)/\(name).json")
        let enc = JSONEncoder()
        try await store.put(KVKeys.clusterConfig(name), try enc.encode(KVClusterConfig(id: id, capabilities: .init(syncedCanaries: true, maxConnectedClusters: 255))))
        try await store.put(KVKeys.node(cluster: name, name: "node3"),
                            try enc.encode(KVNode(name: "node3", cluster: name, clusterID: UInt32(id), address: nodeAddress, podCIDR: podCIDR)))
        let podIP = podCIDR.replacingOccurrences(of: ".0/24", with: ".5")
        try await store.put(KVKeys.ip(podIP), try enc.encode(IPIdentityPair(ip: podIP, hostIP: nodeAddress, id: remoteID, namespace: "default", podName: "b")))
        try await store.put(KVKeys.identity(Int(remoteID)), KVKeys.labelList(["k8s:app=b", "k8s:io.kubernetes.pod.namespace=default",
                                                                             "k8s:io.cilium.k8s.policy.cluster=\(name)"]))
        let svc = ClusterService(cluster: name, namespace: "default", name: "echo",
                                 frontends: ["10.96.0.10": ["http": ClusterServicePort(protocol: "TCP", port: 80)]],
                                 backends: [podIP: ["http": ClusterServicePort(protocol: "TCP", port: 8080)]], clusterID: UInt32(id))
        try await store.put(KVKeys.service(cluster: name, namespace: "default", name: "echo"), try enc.encode(svc))
        for kind in KVKeys.Synced.allCases { try await store.put(KVKeys.synced(cluster: name, kind), "2026-12-07T00:00:00Z") }
        return store
    }

    struct Mesh: Sendable {
        let mesh: ClusterMeshSubsystem
        let shared: SharedState
    }

    static func start(stores: [String: EmbeddedKVStore], dir: TempDir, unreachable: [String] = [], cacheTTL: Double = 0) async throws -> Mesh {
        let shared = SharedState()
        await shared.localNode.upsert(LocalNodeRecord(name: "node1", address: "172.30.0.11", podCIDR: "10.0.0.0/24", bootID: ""))
        let confDir = dir.path + "/clustermesh"
        try FileManager.default.createDirectory(atPath: confDir, withIntermediateDirectories: true)
        for name in Array(stores.keys) + unreachable {
            try "endpoints:\n- embedded\n".write(toFile: "\(confDir)/\(name)", atomically: true, encoding: .utf8)
        }
        let mesh = ClusterMeshSubsystem(open: { file in
            let name = URL(fileURLWithPath: file).lastPathComponent
            guard let s = stores[name] else { throw MeshError("\(name)'s etcd does not answer") }
            return (s, ["embedded:\(name)"])
        })
        let section = ClusterMeshSubsystem.Section(clusterName: "cluster1", clusterID: 1, maxConnectedClusters: 255, directory: confDir,
                                                   cacheTTL: cacheTTL, etcd: .init(), tunnel: false, directRoutes: false)
        await mesh.configure(SubsystemContext(section: section, nodeName: "node1", bpfRoot: dir.path + "/bpf", stateDir: dir.path, shared: shared))
        // As the agent does before any subsystem starts.
        await mesh.registerInitializers(shared: shared)
        try await mesh.start()
        return Mesh(mesh: mesh, shared: shared)
    }

    @Test func aRemoteClustersRecordsReachTheTablesAndLeaveWithIt() async throws {
        let dir = try TempDir("mesh-records")
        let store = try await Self.remoteStore(dir.path, name: "cluster2", id: 2, podCIDR: "10.1.0.0/24", nodeAddress: "172.30.0.21")
        // An old-shaped record (the project's own before): refused, counted, named.
        try await store.put(KVKeys.ip("10.1.0.9"), #"{"identity":5,"hostIP":"172.30.0.21"}"#)
        let m = try await Self.start(stores: ["cluster2": store], dir: dir)
        let mesh = m.mesh
        defer { Task { await mesh.stop() } }
        let pod = IPv4Prefix("10.1.0.5/32")!
        try await waitFor("the remote pod is in the ipcache") { await m.shared.ipcache.get(pod) != nil }
        let e = try #require(await m.shared.ipcache.get(pod))
        #expect(e.identity == Self.remoteID && e.tunnelEndpoint == IPv4Address("172.30.0.21") && e.cluster == "cluster2")
        #expect(e.podNamespace == "default" && e.podName == "b")
        #expect(await m.shared.ipcache.get(IPv4Prefix("172.30.0.21/32")!)?.identity == 6)
        #expect(await m.shared.ipcache.get(IPv4Prefix("10.1.0.0/24")!)?.tunnelEndpoint == IPv4Address("172.30.0.21"))
        #expect(await m.shared.ipcache.get(IPv4Prefix("10.1.0.9/32")!) == nil)
        #expect(await m.shared.identities.get(Self.remoteID)?.labels.contains("k8s:io.cilium.k8s.policy.cluster=cluster2") == true)
        #expect(await m.shared.remoteServices.get("cluster2/default/echo")?.backends["10.1.0.5"]?["http"]?.Port == 8080)
        #expect(await m.shared.remoteNodes.get("cluster2/node3")?.address == "172.30.0.21")
        #expect(await m.shared.ipcache.isInitialized)
        #expect(await m.shared.remoteServices.isInitialized)

        let status = await m.mesh.status()
        #expect(status.summary == "1/1 remote clusters ready, 1 global-services", "\(status)")
        #expect(status.details.contains { $0.hasPrefix("cluster2: ready, 1 nodes, 1 endpoints, 1 identities, 1 services, 0 reconnections") },
                "\(status.details)")
        #expect(status.details.contains { $0.contains("records refused: 1") && $0.contains("cilium/state/ip/v1/default/10.1.0.9") },
                "\(status.details)")
        #expect(status.details.contains("└  synchronization status: nodes=true, endpoints=true, identities=true, services=true"))

        // A change is followed: the pod leaves.
        try await store.delete(KVKeys.ip("10.1.0.5"))
        try await waitFor("the pod leaves the ipcache") { await m.shared.ipcache.get(pod) == nil }

        // The cluster's file removed: everything of it goes.
        try FileManager.default.removeItem(atPath: dir.path + "/clustermesh/cluster2")
        try await waitFor("the cluster's state is gone") {
            let node = await m.shared.ipcache.get(IPv4Prefix("172.30.0.21/32")!)
            let services = await m.shared.remoteServices.count, nodes = await m.shared.remoteNodes.count
            let identity = await m.shared.identities.get(Self.remoteID)
            return node == nil && services == 0 && identity == nil && nodes == 0
        }
        #expect(await m.mesh.status().summary == "0/0 remote clusters ready, 0 global-services")
    }

    /// A remote cluster says only what is its own: an address of this cluster's pods, an identity in this cluster's
    /// range, or this cluster's node address, published there, never reach the tables (they would relabel local
    /// endpoints for policy); each is counted and named.
    @Test func aRemoteClusterCannotSpeakForThisOne() async throws {
        let dir = try TempDir("mesh-hostile")
        let store = try await Self.remoteStore(dir.path, name: "cluster2", id: 2, podCIDR: "10.1.0.0/24", nodeAddress: "172.30.0.21")
        let enc = JSONEncoder()
        // A local pod's address (10.0.0.7 is in cluster1's 10.0.0.0/24), with cluster 2's node as host.
        try await store.put(KVKeys.ip("10.0.0.7"), try enc.encode(IPIdentityPair(ip: "10.0.0.7", hostIP: "172.30.0.21", id: Self.remoteID)))
        // One of cluster 2's addresses with an identity of cluster 1's range.
        try await store.put(KVKeys.ip("10.1.0.9"), try enc.encode(IPIdentityPair(ip: "10.1.0.9", hostIP: "172.30.0.21", id: 1 << 16 | 1)))
        // An identity of cluster 1's range, relabelled.
        try await store.put(KVKeys.identity(1 << 16 | 1), KVKeys.labelList(["k8s:app=admin"]))
        // This cluster's own node address.
        try await store.put(KVKeys.node(cluster: "cluster2", name: "fake"),
                            try enc.encode(KVNode(name: "fake", cluster: "cluster2", clusterID: 2, address: "172.30.0.11", podCIDR: "10.1.9.0/24")))
        let m = try await Self.start(stores: ["cluster2": store], dir: dir)
        let mesh = m.mesh
        defer { Task { await mesh.stop() } }
        try await waitFor("cluster2's own pod is in") { await m.shared.ipcache.get(IPv4Prefix("10.1.0.5/32")!) != nil }
        #expect(await m.shared.ipcache.get(IPv4Prefix("10.0.0.7/32")!) == nil)
        #expect(await m.shared.ipcache.get(IPv4Prefix("10.1.0.9/32")!) == nil)
        #expect(await m.shared.ipcache.get(IPv4Prefix("172.30.0.11/32")!) == nil)
        #expect(await m.shared.identities.get(1 << 16 | 1) == nil)
        let details = await m.mesh.status().details.joined(separator: "\n")
        #expect(details.contains("records refused: 4"), "\(details)")
    }

    /// A restart of the subsystem (agent shutdown, a changed section) opens no window: the remote clusters' entries
    /// stay in the tables, and the next start prunes only what is gone; disabling removes them.
    @Test func aRestartKeepsTheRemoteStateAndDisablingRemovesIt() async throws {
        let dir = try TempDir("mesh-restart")
        let store = try await Self.remoteStore(dir.path, name: "cluster2", id: 2, podCIDR: "10.1.0.0/24", nodeAddress: "172.30.0.21")
        let m = try await Self.start(stores: ["cluster2": store], dir: dir)
        let pod = IPv4Prefix("10.1.0.5/32")!
        try await waitFor("the remote pod is in the ipcache") { await m.shared.ipcache.get(pod) != nil }

        await m.mesh.shutdown()
        #expect(await m.shared.ipcache.get(pod) != nil)
        #expect(await m.shared.remoteServices.count == 1)
        // While it is down, the pod leaves cluster2; at the next start the tables wait for the listing, then it goes.
        try await store.delete(KVKeys.ip("10.1.0.5"))
        try await m.mesh.start()
        try await waitFor("the listing pruned the pod") { await m.shared.ipcache.get(pod) == nil }
        #expect(await m.shared.ipcache.isInitialized)
        #expect(await m.shared.ipcache.get(IPv4Prefix("172.30.0.21/32")!) != nil)

        // A file removed while the subsystem is down: its cluster leaves at the next start.
        await m.mesh.shutdown()
        try FileManager.default.removeItem(atPath: dir.path + "/clustermesh/cluster2")
        try await m.mesh.start()
        try await waitFor("cluster2 left") { await m.shared.ipcache.get(IPv4Prefix("172.30.0.21/32")!) == nil }

        // Disabled: nothing of any remote cluster stays.
        try "endpoints:\n- embedded\n".write(toFile: dir.path + "/clustermesh/cluster2", atomically: true, encoding: .utf8)
        try await waitFor("cluster2 is back") { await m.shared.ipcache.get(IPv4Prefix("172.30.0.21/32")!) != nil }
        await m.mesh.stop()
        #expect(await m.shared.ipcache.get(IPv4Prefix("172.30.0.21/32")!) == nil)
        #expect(await m.shared.remoteServices.count == 0)
        #expect(await m.shared.ipcache.isInitialized)
    }

    @Test func overlappingPodCIDRsAndDuplicateClusterIDsAreRefusedWithBothNamed() async throws {
        let dir = try TempDir("mesh-refused")
        let good = try await Self.remoteStore(dir.path, name: "cluster2", id: 2, podCIDR: "10.1.0.0/24", nodeAddress: "172.30.0.21")
        let sameID = try await Self.remoteStore(dir.path, name: "cluster3", id: 2, podCIDR: "10.2.0.0/24", nodeAddress: "172.30.0.31")
        let overlap = try await Self.remoteStore(dir.path, name: "cluster4", id: 4, podCIDR: "10.0.0.0/24", nodeAddress: "172.30.0.41")
        let ownID = try await Self.remoteStore(dir.path, name: "cluster5", id: 1, podCIDR: "10.5.0.0/24", nodeAddress: "172.30.0.51")
        let m = try await Self.start(stores: ["cluster2": good, "cluster3": sameID, "cluster4": overlap, "cluster5": ownID], dir: dir)
        let mesh = m.mesh
        defer { Task { await mesh.stop() } }
        try await waitFor("every cluster was tried") {
            let d = await m.mesh.status().details
            return d.contains { $0.hasPrefix("cluster4: ") } && d.contains { $0.contains("refused") && $0.contains("pod CIDR") }
                && d.filter { $0.contains("cluster ID") }.count >= 2
        }
        let details = await m.mesh.status().details.joined(separator: "\n")
        // One of cluster2 and cluster3 (whichever came second) is refused, naming the other.
        #expect(details.contains("its cluster ID 2 is also cluster cluster2's") || details.contains("its cluster ID 2 is also cluster cluster3's"), "\(details)")
        #expect(details.contains("pod CIDR 10.0.0.0/24 of cluster4/node3 overlaps 10.0.0.0/24 of cluster1/node1"), "\(details)")
        #expect(details.contains("its cluster ID 1 is also this cluster's (cluster1)"), "\(details)")
        // Nothing of the refused clusters is in the tables.
        #expect(await m.shared.ipcache.get(IPv4Prefix("172.30.0.41/32")!) == nil)
        #expect(await m.shared.ipcache.get(IPv4Prefix("172.30.0.51/32")!) == nil)
        let summary = await m.mesh.status().summary
        #expect(summary.hasPrefix("1/4 remote clusters ready"), "\(summary)")
    }

    /// A restart while a remote cluster's etcd is away: READY need not wait (the tables' initialization is settled
    /// with the reason), nothing is pruned until the cache TTL has run out, then the tables are initialized.
    @Test func aClusterUnreachableSinceTheStartHoldsPruningForTheCacheTTL() async throws {
        let dir = try TempDir("mesh-unreachable")
        let m = try await Self.start(stores: [:], dir: dir, unreachable: ["cluster2"], cacheTTL: 1.5)
        let mesh = m.mesh
        defer { Task { await mesh.stop() } }
        try await waitFor("the failure is said") { await m.shared.ipcache.initializationPending?.contains("cluster2's etcd does not answer") == true }
        #expect(await !m.shared.ipcache.isInitialized)
        #expect(await !m.shared.remoteServices.isInitialized)
        let settled = await m.shared.ipcache.initializationSettled()
        for await _ in settled { break }
        try await waitFor("the TTL ran out", timeout: .seconds(5)) { await m.shared.ipcache.isInitialized }
        #expect(await m.shared.remoteServices.isInitialized)
        #expect(await m.mesh.status().details.contains { $0.contains("since the agent started") })
    }

    @Test func identityRangesFollowTheClusterID() {
        #expect(IdentityAllocator.range(clusterID: 0) == 256...65535)
        #expect(IdentityAllocator.range(clusterID: 1) == 65536...131071)
        #expect(IdentityAllocator.range(clusterID: 255) == (255 << 16)...(255 << 16 | 0xFFFF))
        #expect(IdentityAllocator.range(clusterID: 1, maxConnectedClusters: 511) == 32768...65535)
        #expect(IdentityAllocator.range(clusterID: 511, maxConnectedClusters: 511) == (511 << 15)...(511 << 15 | 0x7FFF))
        #expect(IdentityAllocator.clusterID(of: 131_077) == 2)
        #expect(IdentityAllocator.clusterID(of: 131_077, maxConnectedClusters: 511) == 4)
    }

    @Test func upstreamShapesRoundTrip() throws {
        // An upstream agent's node and ipcache records, as it writes them.
        let node = #"{"Name":"kind-worker","Cluster":"cluster2","IPAddresses":[{"Type":"InternalIP","IP":"172.18.0.3"},{"Type":"CiliumInternalIP","IP":"10.1.1.10"}],"IPv4AllocCIDR":{"IP":"10.1.1.0","Mask":"////AA=="},"IPv4SecondaryAllocCIDRs":null,"IPv6AllocCIDR":null,"IPv4HealthIP":"","IPv6HealthIP":"","IPv4IngressIP":"","IPv6IngressIP":"","ClusterID":2,"Source":"local","EncryptionKey":0,"Labels":{},"Annotations":{},"NodeIdentity":0,"WireguardPubKey":"","BootID":"abc"}"#
        let n = try JSONDecoder().decode(KVNode.self, from: Data(node.utf8))
        #expect(n.address == "172.18.0.3" && n.podCIDR == "10.1.1.0/24" && n.ClusterID == 2 && n.WireguardPubKey == nil && n.BootID == "abc")
        let pair = #"{"IP":"10.1.1.37","Mask":null,"HostIP":"172.18.0.3","ID":131115,"Key":0,"Metadata":"","K8sNamespace":"default","K8sPodName":"echo-1"}"#
        let p = try JSONDecoder().decode(IPIdentityPair.self, from: Data(pair.utf8))
        #expect(p.prefix == "10.1.1.37/32" && p.ID == 131_115 && p.K8sPodName == "echo-1")
        // Ours, read back with upstream's field names.
        let ours = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(KVNode(name: "n", cluster: "c", clusterID: 3, address: "1.2.3.4", podCIDR: "10.3.0.0/24"))) as? [String: Any]
        #expect((ours?["IPv4AllocCIDR"] as? [String: String])?["Mask"] == "////AA==")
        #expect((ours?["IPAddresses"] as? [[String: String]])?.first?["Type"] == "InternalIP")
        // Not upstream's shape: a clear reason naming the key.
        guard case .failure(let e) = KVRecordError.decode(IPIdentityPair.self, key: "cilium/state/ip/v1/default/10.0.0.1",
                                                          from: Data(#"{"identity":5}"#.utf8)) else { Issue.record("decoded"); return }
        #expect(e.description.contains("cilium/state/ip/v1/default/10.0.0.1") && e.description.contains("IPIdentityPair"), "\(e)")
    }
}
