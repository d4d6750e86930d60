import AgentModel
import API
import Config
import Datapath
import LinuxNet
import Foundation
import KVStore
import Reconciler

/// What a node publishes about itself (cilium/state/nodes/v1/<cluster>/<node>).
struct NodeRecord: Codable, Equatable, Sendable {
    var name: String
    var address: String
    var podCIDR: String
}

/// What a node publishes per endpoint address (cilium/state/ip/v1/default/<ip>).
struct IPRecord: Codable, Equatable, Sendable {
    var identity: UInt32
    var hostIP: String
    /// The pod behind the address (upstream's ipcache entries carry it too): Hubble names remote endpoints.
    var k8sNamespace: String?
    var k8sPodName: String?
}

/// Keeps this node's part of the shared cluster state in the kvstore (its node
/// record and endpoint addresses, under a lease) and turns the other nodes'
/// records into ipcache entries (tunnel endpoints) and, in native routing with
/// `autoDirectNodeRoutes`, routes to their pod CIDRs. When the store is
/// unreachable the datapath stays as it is; the loop retries and resyncs.
actor ClusterSync {
    let store: any KVStore
    let cluster: String
    let node: String
    private let ipcache: StateTable<IPCacheEntry>
    private let identities: StateTable<IdentityRecord>
    private let identityLabels: IdentityAllocator
    private var nodeAddress: IPv4Address?
    private var podCIDR: IPv4Prefix?
    private var directRoutes = false
    private var ownIPs: [String: IPRecord] = [:]
    private var lease: Lease?
    private var keeper: LeaseKeeper?
    private var remoteIPs: [String: IPRecord] = [:]
    private var remoteNodes: [String: NodeRecord] = [:]
    private var loop: Task<Void, Never>?
    private(set) var lastError: String?

    static let leaseTTL: Duration = .seconds(15)
    /// See EndpointManager.setUpRouter: 169.254.42.1, neighbour = cilium_net.
    static let tunnelNextHop = IPv4Prefix("169.254.42.1/30")!
    private var tunnelRoutes = false
    private var routerAddress: IPv4Address?

    init(config: NetworkingSubsystem.Section, node: String, stateDir: String, shared: SharedState) throws {
        if config.etcd.enabled {
            store = try EtcdKVStore(endpoints: config.etcd.endpoints, timeout: .seconds(3))
        } else {
            store = try EmbeddedKVStore(path: stateDir + "/kvstore.json")
        }
        cluster = config.clusterName
        self.node = node
        self.ipcache = shared.ipcache
        self.identities = shared.identities
        identityLabels = IdentityAllocator(store: store)
        directRoutes = config.routingMode == .native && config.autoDirectNodeRoutes
        tunnelRoutes = config.routingMode == .tunnel
    }

    /// Claims a pod CIDR for this node: the one it had (kept in its IPAM state)
    /// or the first free block of the pools. Two nodes never get the same one:
    /// the claim is a create-if-absent in the shared store.
    func claimPodCIDR(saved: IPv4Prefix?, config: NetworkingSubsystem.Section) async throws -> IPv4Prefix {
        let mask = UInt8(config.ipam.operator.clusterPoolIPv4MaskSize)
        var candidates: [IPv4Prefix] = saved.map { [$0] } ?? []
        for text in config.ipam.operator.clusterPoolIPv4PodCIDRList {
            guard let pool = IPv4Prefix(text)?.network, mask >= pool.length else { continue }
            let count = min(UInt64(1) << UInt64(mask - pool.length), 65536)
            for i in 0..<count {
                candidates.append(IPv4Prefix(IPv4Address(value: pool.address.value + UInt32(i << (32 - UInt64(mask)))), length: mask))
            }
        }
        do {
            for cidr in candidates {
                let key = KVKeys.podCIDR(cluster: cluster, cidr: cidr.description)
                if try await store.create(key, Data(node.utf8), lease: nil) { return cidr }
                if let owner = try await store.get(key), owner.string == node { return cidr }
            }
        } catch {
            // The store is down: a node that had a CIDR keeps it; a new one must wait.
            if let saved { lastError = "\(error)"; return saved }
            throw IPAMError("cannot claim a pod CIDR: the kvstore is unreachable (\(error)); start etcd or check etcd.endpoints")
        }
        throw IPAMError("no free pod CIDR of /\(mask) left in \(config.ipam.operator.clusterPoolIPv4PodCIDRList); every block is claimed by another node")
    }

    func start(nodeAddress: IPv4Address?, podCIDR: IPv4Prefix) {
        self.nodeAddress = nodeAddress
        self.podCIDR = podCIDR
        self.routerAddress = IPv4Address(value: podCIDR.network.address.value + 1)
        loop = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                await self.syncOnce()
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    func stop() {
        loop?.cancel()
        loop = nil
        keeper?.stop()
    }

    /// This node's endpoints, as the other nodes should see them.
    func publish(ip: String, identity: UInt32, podNamespace: String?, podName: String?) async {
        guard let host = nodeAddress?.description else { return }
        let record = IPRecord(identity: identity, hostIP: host, k8sNamespace: podNamespace, k8sPodName: podName)
        ownIPs[ip] = record
        if let lease, let data = try? JSONEncoder().encode(record) {
            _ = try? await store.put(KVKeys.ip(ip), data, lease: lease)
        }
    }

    func withdraw(ip: String) async {
        ownIPs.removeValue(forKey: ip)
        _ = try? await store.delete(KVKeys.ip(ip))
    }

    var remoteNodeCount: Int { remoteNodes.count }

    /// This node and every node it knows of, as `cilium node list` shows them.
    func nodes() -> [NodeModel] {
        let me = NodeModel(name: node, address: nodeAddress?.description ?? "", podCIDR: podCIDR?.description ?? "", local: true)
        return [me] + remoteNodes.values.map { NodeModel(name: $0.name, address: $0.address, podCIDR: $0.podCIDR, local: false) }
            .sorted { $0.name < $1.name }
    }

    /// One round: make sure our lease and records exist, read everything, apply
    /// it, then follow changes until the store fails.
    private func syncOnce() async {
        do {
            if lease == nil || keeper?.state != .running {
                keeper?.stop()
                let l = try await store.grantLease(ttl: Self.leaseTTL)
                lease = l
                keeper = LeaseKeeper(store: store, lease: l)
            }
            guard let lease else { return }
            if let nodeAddress, let podCIDR {
                let me = NodeRecord(name: node, address: nodeAddress.description, podCIDR: podCIDR.description)
                try await store.put(KVKeys.node(cluster: cluster, name: node), try JSONEncoder().encode(me), lease: lease)
            }
            for (ip, record) in ownIPs {
                try await store.put(KVKeys.ip(ip), try JSONEncoder().encode(record), lease: lease)
            }
            let nodes = try await store.list(prefix: KVKeys.nodes(cluster: cluster))
            let ips = try await store.list(prefix: KVKeys.ips())
            await applyNodes(nodes.pairs)
            await applyIPs(ips.pairs)
            lastError = nil
            let from = max(nodes.revision, ips.revision) + 1
            for try await _ in store.watch(prefix: KVKeys.root, fromRevision: from) {
                // Any change: re-read the two prefixes (small) and apply the difference.
                await applyNodes(try await store.list(prefix: KVKeys.nodes(cluster: cluster)).pairs)
                await applyIPs(try await store.list(prefix: KVKeys.ips()).pairs)
                if keeper?.state != .running { break }
            }
        } catch {
            lastError = "\(error)"
        }
    }

    private func applyNodes(_ pairs: [KVPair]) async {
        var seen: [String: NodeRecord] = [:]
        for p in pairs {
            guard let r = try? JSONDecoder().decode(NodeRecord.self, from: p.value), r.name != node else { continue }
            seen[r.name] = r
        }
        let nl = try? Netlink()
        for (name, old) in remoteNodes where seen[name] != old {
            if let a = IPv4Address(old.address) { await ipcache.delete(key: IPv4Prefix(a, length: 32)) }
            if let cidr = IPv4Prefix(old.podCIDR) {
                await ipcache.delete(key: cidr.network)
                if directRoutes { try? nl?.deleteRoute(Netlink.Route(destination: cidr, gateway: IPv4Address(old.address))) }
                if tunnelRoutes { try? nl?.deleteRoute(Netlink.Route(destination: cidr, gateway: Self.tunnelNextHop.address)) }
            }
        }
        for (_, r) in seen {
            guard let a = IPv4Address(r.address) else { continue }
            await ipcache.upsert(IPCacheEntry(prefix: IPv4Prefix(a, length: 32), identity: 6))
            guard let cidr = IPv4Prefix(r.podCIDR) else { continue }
            // The rest of its pod CIDR (its router, pods not yet known) is behind that node.
            await ipcache.upsert(IPCacheEntry(prefix: cidr, identity: 2, tunnelEndpoint: a))
            if directRoutes, let nl {
                try? nl.replaceRoute(Netlink.Route(destination: cidr, gateway: a))
            }
            if tunnelRoutes, let nl, let index = try? nl.index(of: "cilium_host") {
                try? nl.replaceRoute(Netlink.Route(destination: cidr, gateway: Self.tunnelNextHop.address, outputIndex: index,
                                                   source: routerAddress))
            }
        }
        remoteNodes = seen
    }

    private func applyIPs(_ pairs: [KVPair]) async {
        var seen: [String: IPRecord] = [:]
        let mine = nodeAddress?.description
        for p in pairs {
            guard let r = try? JSONDecoder().decode(IPRecord.self, from: p.value), r.hostIP != mine else { continue }
            seen[String(p.key.dropFirst(KVKeys.ips().count))] = r
        }
        for ip in remoteIPs.keys where seen[ip] == nil {
            if let a = IPv4Address(ip) { await ipcache.delete(key: IPv4Prefix(a, length: 32)) }
        }
        for (ip, r) in seen where remoteIPs[ip] != r {
            guard let a = IPv4Address(ip) else { continue }
            await ipcache.upsert(IPCacheEntry(prefix: IPv4Prefix(a, length: 32), identity: r.identity,
                                              tunnelEndpoint: IPv4Address(r.hostIP), podNamespace: r.k8sNamespace, podName: r.k8sPodName))
        }
        remoteIPs = seen
        // Policy matches other nodes' endpoints by their identity's labels.
        for id in Set(seen.values.map(\.identity)) where await identities.get(id) == nil {
            if let labels = try? await identityLabels.lookup(id: Int(id)) {
                await identities.upsert(IdentityRecord(id: id, labels: labels.map(LocalIdentityAllocator.normalize).sorted()))
            }
        }
    }

    func health() async -> Health {
        if let lastError { return Health(.degraded, "kvstore: \(lastError)") }
        return .ok
    }
}
