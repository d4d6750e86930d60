import AgentModel
import API
import Config
import Datapath
import LinuxNet
import Foundation
import KVStore
import Reconciler

/// This kernel's boot ID (/proc/sys/kernel/random/boot_id).
let kernelBootID: String = ((try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? "")
    .trimmingCharacters(in: .whitespacesAndNewlines)

// Node records are upstream's `Node` (`KVNode`), endpoint addresses upstream's `IPIdentityPair`.

/// Keeps this node's part of the shared cluster state in the kvstore (its node
/// record and endpoint addresses, under a lease) and turns the other nodes'
/// records into ipcache entries (tunnel endpoints) and, in native routing with
/// `autoDirectNodeRoutes`, routes to their pod CIDRs. When the store is
/// unreachable the datapath stays as it is; the loop retries and resyncs.
actor ClusterSync {
    let store: any KVStore
    let cluster: String
    let clusterID: Int
    let node: String
    private let ipcache: StateTable<IPCacheEntry>
    private let identities: StateTable<IdentityRecord>
    private let identityLabels: IdentityAllocator
    /// The numeric identities this cluster allocates (its cluster ID's range).
    let identityRange: ClosedRange<Int>
    private let remoteNodeTable: StateTable<RemoteNodeRecord>
    private let localEncryption: StateTable<LocalEncryptionRecord>
    private let localNode: StateTable<LocalNodeRecord>
    /// encryption.enabled: this node's record carries its encryption key, and waits for it.
    private let expectEncryption: Bool
    private var encryptionWatcher: Task<Void, Never>?
    private var nodeAddress: IPv4Address?
    private var podCIDR: IPv4Prefix?
    private let routes: PodCIDRRoutes
    private var ownIPs: [String: IPIdentityPair] = [:]
    private var lease: Lease?
    private var keeper: LeaseKeeper?
    private var remoteIPs: [String: IPIdentityPair] = [:]
    private var remoteNodes: [String: KVNode] = [:]
    /// Records that did not decode (each logged with its key), and the last one.
    private(set) var recordErrors = 0
    private(set) var lastRecordError: String?
    private var loop: Task<Void, Never>?
    private(set) var lastError: String?

    static let leaseTTL: Duration = .seconds(15)
    private var routerAddress: IPv4Address?

    init(config: NetworkingSubsystem.Section, node: String, stateDir: String, shared: SharedState) throws {
        let file = { (path: String) -> String? in path.isEmpty ? nil : path }
        let etcdTLS = config.etcd.ssl
            ? EtcdTLSConfig(caFile: file(config.etcd.tls.caFile), certFile: file(config.etcd.tls.certFile),
                            keyFile: file(config.etcd.tls.keyFile))
            : nil
        let store: any KVStore = config.etcd.enabled
            ? try EtcdKVStore(endpoints: config.etcd.endpoints, timeout: .seconds(3), tls: etcdTLS)
            : try EmbeddedKVStore(path: stateDir + "/kvstore.json")
        self.init(store: store, cluster: config.clusterName, clusterID: config.clusterID,
                  identityRange: IdentityAllocator.range(clusterID: config.clusterID, maxConnectedClusters: config.maxConnectedClusters),
                  node: node, shared: shared,
                  directRoutes: config.routingMode == .native && config.autoDirectNodeRoutes,
                  tunnelRoutes: config.routingMode == .tunnel, expectEncryption: config.encryption)
    }

    init(store: any KVStore, cluster: String, clusterID: Int = 0, identityRange: ClosedRange<Int> = IdentityAllocator.range(clusterID: 0),
         node: String, shared: SharedState, directRoutes: Bool = false, tunnelRoutes: Bool = false,
         expectEncryption: Bool = false) {
        self.expectEncryption = expectEncryption
        self.store = store
        self.cluster = cluster
        self.clusterID = clusterID
        self.identityRange = identityRange
        self.node = node
        self.ipcache = shared.ipcache
        self.identities = shared.identities
        identityLabels = IdentityAllocator(store: store, range: identityRange)
        remoteNodeTable = shared.remoteNodes
        localEncryption = shared.localEncryption
        localNode = shared.localNode
        routes = PodCIDRRoutes(tunnel: tunnelRoutes, direct: directRoutes)
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
        if let nodeAddress {
            let me = LocalNodeRecord(name: node, address: nodeAddress.description, podCIDR: podCIDR.description, bootID: kernelBootID)
            let table = localNode
            Task { await table.upsert(me) }
        }
        // A new encryption key goes into this node's record at once (its peers follow the record).
        let table = localEncryption
        encryptionWatcher = Task { [weak self] in
            for await _ in await table.changes(includeExisting: false) {
                guard let self else { return }
                await self.publishNodeRecord()
            }
        }
        loop = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                // A watch that fell behind resumes at once; after a failure, a second's pause.
                if await self.syncOnce() { continue }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    func stop() {
        loop?.cancel()
        loop = nil
        encryptionWatcher?.cancel()
        encryptionWatcher = nil
        keeper?.stop()
    }

    /// This node's record: its address, pod CIDR and encryption key.
    private func ownNodeRecord() async -> KVNode? {
        guard let nodeAddress, let podCIDR else { return nil }
        let enc = await localEncryption.get(0)
        // With encryption on, a record without its key would tell the other nodes to send here in clear: nothing is
        // published until Encryption has put its key (a restarted agent's previous record stays meanwhile).
        if expectEncryption, enc == nil { return nil }
        return KVNode(name: node, cluster: cluster, clusterID: UInt32(clusterID), address: nodeAddress.description,
                      podCIDR: podCIDR.description, encryptionKey: enc?.encryptionKey ?? 0,
                      wireguardPubKey: enc?.wireguardPubKey, bootID: kernelBootID)
    }

    /// Puts this node's record again (its encryption key changed); a failure is retried by the sync loop's next round.
    private func publishNodeRecord() async {
        guard let lease, let me = await ownNodeRecord(), let data = try? JSONEncoder().encode(me) else { return }
        for ip in ownIPs.keys { ownIPs[ip]?.Key = me.EncryptionKey }
        _ = try? await store.put(KVKeys.node(cluster: cluster, name: node), data, lease: lease)
        for (ip, record) in ownIPs {
            if let data = try? JSONEncoder().encode(record) { _ = try? await store.put(KVKeys.ip(ip), data, lease: lease) }
        }
    }

    /// This node's endpoints, as the other nodes should see them.
    func publish(ip: String, identity: UInt32, podNamespace: String?, podName: String?) async {
        guard let host = nodeAddress?.description else { return }
        let key = await localEncryption.get(0)?.encryptionKey ?? 0
        let record = IPIdentityPair(ip: ip, hostIP: host, id: identity, key: key, namespace: podNamespace, podName: podName)
        ownIPs[ip] = record
        // Published with the node record (which may wait for the encryption key).
        if let lease, await ownNodeRecord() != nil, let data = try? JSONEncoder().encode(record) {
            _ = try? await store.put(KVKeys.ip(ip), data, lease: lease)
        }
    }

    func withdraw(ip: String) async {
        ownIPs.removeValue(forKey: ip)
        _ = try? await store.delete(KVKeys.ip(ip))
    }

    var remoteNodeCount: Int { remoteNodes.count }

    /// This node and every node it knows of, as `cilium node list` shows them.
    /// Routes to every known node's pod CIDR again (idempotent: replace).
    func routeKnownNodes() {
        guard routes.tunnel || routes.direct, let nl = try? Netlink() else { return }
        for n in remoteNodes.values {
            guard let cidr = n.podCIDR.flatMap(IPv4Prefix.init), let a = n.address.flatMap(IPv4Address.init) else { continue }
            routes.add(cidr, node: a, router: routerAddress, nl)
        }
    }

    func nodes() -> [NodeModel] {
        let me = NodeModel(name: node, address: nodeAddress?.description ?? "", podCIDR: podCIDR?.description ?? "", local: true)
        return [me] + remoteNodes.values.map { NodeModel(name: $0.Name, address: $0.address ?? "", podCIDR: $0.podCIDR ?? "", local: false) }
            .sorted { $0.name < $1.name }
    }

    /// The ipcache is not initialized (its reconciler prunes nothing) until this source's first
    /// full listing is in it: a restarted agent keeps the other nodes' entries meanwhile.
    static let ipcacheSource = "kvstore"

    /// One round: make sure our lease and records exist; list everything once (or, after a
    /// reconnect, resume the watch after the last revision seen), then apply each change as
    /// it comes, a burst as one batch, until the store fails.
    /// Returns true when the watch should resume at once (it fell behind a burst: nothing is lost).
    private func syncOnce() async -> Bool {
        do {
            if lease == nil || keeper?.state != .running {
                keeper?.stop()
                let l = try await store.grantLease(ttl: Self.leaseTTL)
                lease = l
                keeper = LeaseKeeper(store: store, lease: l)
            }
            guard let lease else { return false }
            if let me = await ownNodeRecord() {
                try await store.put(KVKeys.node(cluster: cluster, name: node), try JSONEncoder().encode(me), lease: lease)
                for (ip, record) in ownIPs {
                    try await store.put(KVKeys.ip(ip), try JSONEncoder().encode(record), lease: lease)
                }
            }
            if seenRevision == nil {
                let nodes = try await store.list(prefix: KVKeys.nodes(cluster: cluster))
                let identities = try await store.list(prefix: KVKeys.identitiesPrefix)
                let ips = try await store.list(prefix: KVKeys.ips())
                await applyIdentities(identities.pairs.map { ($0.key, $0.value) })
                await applyFullList(nodes: nodes.pairs, ips: ips.pairs)
                // Events between the reads come again; applying one twice changes nothing.
                seenRevision = min(nodes.revision, identities.revision, ips.revision)
                lists += 1
                await self.identities.markInitialized(Self.ipcacheSource)
                await ipcache.markInitialized(Self.ipcacheSource)
                await remoteNodeTable.markInitialized(Self.ipcacheSource)
            }
            lastError = nil
            for try await event in store.watch(prefix: KVKeys.root, fromRevision: (seenRevision ?? 0) + 1) {
                enqueue(event)
                if keeper?.state != .running { break }
            }
            await flush()
        } catch let error as KVStoreError {
            await flush()
            if case .fellBehind(let revision) = error.kind {
                // Events of that revision already applied come again: applying one twice changes nothing.
                seenRevision = min(seenRevision ?? 0, revision - 1)
                return true
            }
            if case .compacted = error.kind { seenRevision = nil }
            lastError = "\(error)"
        } catch {
            await flush()
            lastError = "\(error)"
        }
        if lists == 0, let lastError {
            // No listing yet: the ipcache keeps what it holds (no prune), and READY need not wait.
            await ipcache.initializationFailed(Self.ipcacheSource, reason: lastError)
            await identities.initializationFailed(Self.ipcacheSource, reason: lastError)
        }
        return false
    }


    /// The store revision this node's view is at (nil: list before watching).
    private var seenRevision: Int64?
    /// Full listings done (the first, and after a compaction).
    private(set) var lists = 0
    /// Watch events applied one by one since the start.
    private(set) var eventsApplied = 0
    private var pending: [KVEvent] = []
    private var flushScheduled = false

    /// A burst of events (a bulk write) is applied as one batch, 20 ms after its first event.
    private func enqueue(_ event: KVEvent) {
        pending.append(event)
        guard !flushScheduled else { return }
        flushScheduled = true
        Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(20))
            await self?.flush()
        }
    }

    private func flush() async {
        flushScheduled = false
        guard !pending.isEmpty else { return }
        let events = pending
        pending = []
        var nodes: [String: KVNode?] = [:]
        var ips: [String: IPIdentityPair?] = [:]
        var identities: [(String, Data)] = []
        let nodesPrefix = KVKeys.nodes(cluster: cluster), ipsPrefix = KVKeys.ips()
        for event in events {
            if case .put(let pair) = event, pair.key.hasPrefix(KVKeys.identitiesPrefix) {
                identities.append((pair.key, pair.value))
            }
            if let name = KVKeys.suffix(of: event.key, after: nodesPrefix) {
                if case .put(let pair) = event {
                    // One that does not read changes nothing (a node is not lost for a bad write).
                    if let r = decode(KVNode.self, pair) { nodes[name] = .some(r) }
                } else {
                    nodes[name] = .some(nil)
                }
            } else if let ip = KVKeys.suffix(of: event.key, after: ipsPrefix) {
                if case .put(let pair) = event {
                    if let r = decode(IPIdentityPair.self, pair) { ips[ip] = .some(r) }
                } else {
                    ips[ip] = .some(nil)
                }
            }
            seenRevision = max(seenRevision ?? 0, event.revision)
        }
        eventsApplied += events.count
        await applyIdentities(identities)
        await applyNodes(nodes)
        await applyIPs(ips)
    }

    /// Identities of the cluster (`cilium/state/identities/v1/id/<id>`: the label list) into the
    /// identities table: policy matches other nodes' endpoints by their labels. A deleted
    /// identity stays until nothing refers to it (identity lifecycle is not this sync's job).
    private func applyIdentities(_ pairs: [(key: String, value: Data)]) async {
        let records = pairs.compactMap { key, value -> IdentityRecord? in
            guard let id = UInt32(KVKeys.suffix(of: key, after: KVKeys.identitiesPrefix) ?? "") else { return nil }
            return IdentityRecord(id: id, labels: KVKeys.labels(fromList: String(decoding: value, as: UTF8.self))
                .map(LocalIdentityAllocator.normalize).sorted())
        }
        guard !records.isEmpty else { return }
        await identities.upsert(contentsOf: records)
    }

    /// A full listing: what it lacks is gone, the rest is set.
    private func applyFullList(nodes: [KVPair], ips: [KVPair]) async {
        var nodeDelta: [String: KVNode?] = Dictionary(uniqueKeysWithValues: remoteNodes.keys.map { ($0, nil) })
        let nodesPrefix = KVKeys.nodes(cluster: cluster)
        for p in nodes {
            guard let name = KVKeys.suffix(of: p.key, after: nodesPrefix) else { continue }
            // One that does not read keeps what was known of it.
            guard let r = decode(KVNode.self, p) else { nodeDelta[name] = remoteNodes[name]; continue }
            nodeDelta[name] = .some(r)
        }
        let ipsPrefix = KVKeys.ips()
        var ipDelta: [String: IPIdentityPair?] = Dictionary(uniqueKeysWithValues: remoteIPs.keys.map { ($0, nil) })
        for p in ips {
            guard let ip = KVKeys.suffix(of: p.key, after: ipsPrefix) else { continue }
            guard let r = decode(IPIdentityPair.self, p) else { ipDelta[ip] = remoteIPs[ip]; continue }
            ipDelta[ip] = .some(r)
        }
        await applyNodes(nodeDelta)
        await applyIPs(ipDelta)
    }

    /// Applies what changed about some nodes (nil: the node is gone): their addresses and pod
    /// CIDRs in the ipcache, and their routes.
    /// A record in upstream's shape, or nil, counted and logged with its key.
    private func decode<T: Decodable>(_ type: T.Type, _ pair: KVPair) -> T? {
        switch KVRecordError.decode(type, key: pair.key, from: pair.value) {
        case .success(let value): return value
        case .failure(let error):
            recordErrors += 1
            lastRecordError = error.description
            Log.warning("\(error)")
            return nil
        }
    }

    private func applyNodes(_ delta: [String: KVNode?]) async {
        guard !delta.isEmpty else { return }
        let nl = try? Netlink()
        var deletes: [IPv4Prefix] = []
        var upserts: [IPCacheEntry] = []
        for (name, new) in delta where name != node {
            let new = new.flatMap { $0.Name == node ? nil : $0 }
            let old = remoteNodes[name]
            guard old != new else { continue }
            if let old {
                if let a = old.address.flatMap(IPv4Address.init) { deletes.append(IPv4Prefix(a, length: 32)) }
                if let cidr = old.podCIDR.flatMap(IPv4Prefix.init) {
                    deletes.append(cidr.network)
                    if let nl { routes.remove(cidr, node: old.address.flatMap(IPv4Address.init), nl) }
                }
            }
            remoteNodes[name] = new
            if let r = new {
                await remoteNodeTable.upsert(RemoteNodeRecord(name: r.Name, address: r.address ?? "", podCIDR: r.podCIDR ?? "",
                                                              wireguardPubKey: r.WireguardPubKey, encryptionKey: r.EncryptionKey,
                                                              bootID: r.BootID))
            } else {
                await remoteNodeTable.delete(key: name)
            }
            guard let r = new, let a = r.address.flatMap(IPv4Address.init) else { continue }
            // Everything the node hosts carries its encryption key: a new key reaches its pods' entries too.
            let key = r.EncryptionKey
            upserts.append(IPCacheEntry(prefix: IPv4Prefix(a, length: 32), identity: 6, encryptKey: key))
            if (old?.EncryptionKey ?? 0) != key {
                for (ip, p) in remoteIPs where p.HostIP == r.address {
                    if let e = Self.podEntry(ip: ip, p, key: key) { upserts.append(e) }
                }
            }
            guard let cidr = r.podCIDR.flatMap(IPv4Prefix.init) else { continue }
            // The rest of its pod CIDR (its router, pods not yet known) is behind that node.
            upserts.append(IPCacheEntry(prefix: cidr, identity: 2, tunnelEndpoint: a, encryptKey: key))
            if let nl { routes.add(cidr, node: a, router: routerAddress, nl) }
        }
        let kept = Set(upserts.map(\.key))
        await ipcache.delete(keys: deletes.filter { !kept.contains($0) })
        await ipcache.upsert(contentsOf: upserts)
    }

    /// Applies what changed about some endpoint addresses (nil: gone). This node's own
    /// addresses are not remote.
    private func applyIPs(_ delta: [String: IPIdentityPair?]) async {
        guard !delta.isEmpty else { return }
        let mine = nodeAddress?.description
        var deletes: [IPv4Prefix] = []
        var upserts: [IPCacheEntry] = []
        var newIdentities = Set<UInt32>()
        for (ip, new) in delta {
            let new = new.flatMap { $0.HostIP == mine ? nil : $0 }
            guard remoteIPs[ip] != new, let a = IPv4Address(ip) else { continue }
            remoteIPs[ip] = new
            guard let r = new else {
                deletes.append(IPv4Prefix(a, length: 32))
                continue
            }
            let key = remoteNodes.values.first { $0.address == r.HostIP }?.EncryptionKey ?? 0
            if let e = Self.podEntry(ip: ip, r, key: key) { upserts.append(e) }
            newIdentities.insert(r.ID)
        }
        await ipcache.delete(keys: deletes)
        await ipcache.upsert(contentsOf: upserts)
        // Policy matches other nodes' endpoints by their identity's labels (listed and followed
        // with the rest; one missing here was written after its endpoint).
        for id in newIdentities where await identities.get(id) == nil {
            if let labels = try? await identityLabels.lookup(id: Int(id)) {
                await identities.upsert(IdentityRecord(id: id, labels: labels.map(LocalIdentityAllocator.normalize).sorted()))
            }
        }
    }

    /// Another node's pod in the ipcache, with that node's encryption key.
    private static func podEntry(ip: String, _ r: IPIdentityPair, key: UInt8) -> IPCacheEntry? {
        guard let a = IPv4Address(ip) else { return nil }
        return IPCacheEntry(prefix: IPv4Prefix(a, length: 32), identity: r.ID, tunnelEndpoint: IPv4Address(r.HostIP),
                            encryptKey: key, podNamespace: r.K8sNamespace, podName: r.K8sPodName)
    }

    func health() async -> Health {
        if let lastError { return Health(.degraded, "kvstore: \(lastError)") }
        return .ok
    }
}
