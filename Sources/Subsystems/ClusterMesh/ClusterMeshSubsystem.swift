import AgentModel
import API
import Config
import Foundation
import HTTPTransport
import KVStore
import LinuxNet
import Reconciler

/// Cluster mesh (`clustermesh.enabled` or upstream's `clustermesh.config.enabled`): this cluster publishes its
/// configuration and global services in its own etcd, and every agent reads each remote cluster's etcd (one file
/// per cluster in the clustermesh-config directory, upstream's layout): their nodes, endpoints, identities and
/// services, merged into the tables Networking, Policy and LoadBalancer reconcile.
public actor ClusterMeshSubsystem: AgentSubsystem, RemoteClusterSink {
    public nonisolated let name = "clustermesh"
    public nonisolated let owns = PinOwnership(maps: [], directory: "clustermesh")
    public nonisolated let dependencies = ["networking"]
    public nonisolated let apiPrefixes = ["/v1/clustermesh"]
    private var context: SubsystemContext<Section>?
    private var running = false

    public init() { open = RemoteCluster.openEtcd }

    /// Tests open remote clusters' stores themselves.
    init(open: @escaping RemoteCluster.Opener) { self.open = open }
    private let open: RemoteCluster.Opener

    /// The settings cluster mesh reads (the enable flags are the host's).
    public struct Section: Equatable, Sendable {
        public var clusterName: String
        public var clusterID: Int
        public var maxConnectedClusters: Int
        /// The clustermesh-config directory ("" resolved to <stateDir>/clustermesh).
        public var directory: String
        /// Seconds a lost cluster's state stays (0: until it is back).
        public var cacheTTL: Double
        /// This cluster's own etcd, where its configuration and global services are published.
        public var etcd: AgentConfig.Etcd
        public var tunnel: Bool
        public var directRoutes: Bool
    }

    public static func section(of c: AgentConfig) -> Section {
        Section(clusterName: c.cluster.name, clusterID: c.cluster.id, maxConnectedClusters: c.clustermesh.maxConnectedClusters,
                directory: c.clustermesh.config.directory.isEmpty ? c.agent.stateDir + "/clustermesh" : c.clustermesh.config.directory,
                cacheTTL: GoDuration.seconds(c.clustermesh.cacheTTL) ?? 0, etcd: c.etcd,
                tunnel: c.routingMode == .tunnel, directRoutes: c.routingMode == .native && c.autoDirectNodeRoutes)
    }

    public func configure(_ context: SubsystemContext<Section>) { self.context = context }

    /// The tables' source name: until every remote cluster is listed, nothing of theirs is pruned.
    static let source = "clustermesh"

    /// Registered before any subsystem starts, so that a restarted agent's Networking and LoadBalancer keep the
    /// remote clusters' entries and backends until this subsystem has listed them again.
    public func registerInitializers(shared: SharedState) async {
        await shared.ipcache.registerInitializer(Self.source)
        await shared.identities.registerInitializer(Self.source)
        await shared.remoteServices.registerInitializer(Self.source)
    }

    // MARK: state

    private var remotes: [String: RemoteCluster] = [:]
    /// Each remote file's content when its cluster was started (a changed file restarts the cluster).
    private var fileContents: [String: Data] = [:]
    /// What of each cluster is in the shared tables.
    private var applied: [String: RemoteClusterState] = [:]
    /// Clusters that have been listed once (or whose state was dropped).
    private var initialized = Set<String>()
    /// Clusters whose state is refused (pod CIDRs overlapping, a duplicate cluster ID), and why.
    private var conflicts: [String: String] = [:]
    private var ttlTimers: [String: Task<Void, Never>] = [:]
    private var dropped: [String: String] = [:]
    private var watcher: Task<Void, Never>?
    private var publisher: MeshPublisher?
    private var routes: MeshRoutes?
    private var tablesMarked = false
    /// Which remote cluster holds each cluster ID.
    private var idOwners: [Int: String] = [:]
    /// Records in a remote cluster's current view that are not its own (`onlyItsOwn`): how many, the last one.
    private var ignored: [String: (count: Int, last: String)] = [:]

    public func start() async throws {
        guard let context else { throw SubsystemError("clustermesh: not configured") }
        let s = context.section
        guard s.clusterID > 0 else {
            throw SubsystemError("clustermesh: cluster.id is 0; set cluster.id to a number between 1 and \(s.maxConnectedClusters) unique in the mesh")
        }
        await registerInitializers(shared: context.shared)
        tablesMarked = false
        // Every cluster is listed again before anything of it is pruned (after a restart, `applied` still holds
        // what is in the tables).
        initialized = []
        routes = MeshRoutes(tunnel: s.tunnel, direct: s.directRoutes)
        try? FileManager.default.createDirectory(atPath: s.directory, withIntermediateDirectories: true)
        if s.etcd.enabled {
            let p = try MeshPublisher(section: s, shared: context.shared)
            publisher = p
            await p.start()
        }
        running = true
        await rescan()
        // The directory is looked at every 100 ms (its modification time: a file added, removed or renamed into
        // place) and read again every 2 s (a file edited in place).
        let dir = s.directory
        watcher = Task { [weak self] in
            var seen = Self.modificationTime(dir), ticks = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                ticks += 1
                let now = Self.modificationTime(dir)
                guard now != seen || ticks % 20 == 0 else { continue }
                seen = now
                await self?.rescan()
            }
        }
    }

    /// Disabled: every remote cluster's state leaves the tables (and its routes the node).
    public func stop() async {
        let names = Array(remotes.keys) + applied.keys.filter { remotes[$0] == nil }
        await shutdown()
        for name in names { await remove(cluster: name) }
        if let shared = context?.shared { await markTables(shared, force: true) }
    }

    /// Agent shutdown, or a restart for a changed section: the connections go, what they put in the tables
    /// stays (the datapath keeps every remote entry and backend; the next start lists the clusters again and
    /// prunes only what is gone).
    public func shutdown() async {
        watcher?.cancel()
        watcher = nil
        for r in remotes.values { await r.stop() }
        remotes = [:]
        fileContents = [:]
        for t in ttlTimers.values { t.cancel() }
        ttlTimers = [:]
        await publisher?.stop()
        publisher = nil
        running = false
    }

    /// The directory's modification time in nanoseconds (0 when it cannot be read).
    static func modificationTime(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mtim.tv_sec * 1_000_000_000 + st.st_mtim.tv_nsec : 0
    }

    /// Follows the clustermesh-config directory: a file per remote cluster, named after it.
    private func rescan() async {
        guard running, let s = context?.section else { return }
        var wanted: [String: Data] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: s.directory)) ?? []
        for file in names where !file.hasPrefix(".") && file != s.clusterName {
            let path = s.directory + "/" + file
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
                  let data = FileManager.default.contents(atPath: path) else { continue }
            wanted[file] = data
        }
        for (name, r) in remotes where wanted[name] != fileContents[name] {
            await r.stop()
            remotes[name] = nil
            fileContents[name] = nil
            if wanted[name] == nil {
                Log.info("clustermesh: disconnected from \(name) (its file is gone)")
                await remove(cluster: name)
            }
        }
        // A cluster whose file went while the subsystem was not running (a restart) leaves now.
        for name in applied.keys where wanted[name] == nil && remotes[name] == nil {
            await remove(cluster: name)
        }
        for (name, data) in wanted where remotes[name] == nil {
            let r = RemoteCluster(name: name, file: s.directory + "/" + name, sink: self, open: open)
            remotes[name] = r
            fileContents[name] = data
            Log.info("clustermesh: connecting to \(name)")
            await r.start()
        }
        if let shared = context?.shared { await markTables(shared, force: false) }
    }

    /// The tables are initialized once every configured cluster has been listed (or its state dropped).
    private func markTables(_ shared: SharedState, force: Bool) async {
        guard !tablesMarked else { return }
        guard force || remotes.keys.allSatisfy(initialized.contains) else { return }
        tablesMarked = true
        await shared.ipcache.markInitialized(Self.source)
        await shared.identities.markInitialized(Self.source)
        await shared.remoteServices.markInitialized(Self.source)
    }

    // MARK: RemoteClusterSink

    func admit(cluster: String, config: KVClusterConfig?) async -> String? {
        let why = await refusal(cluster: cluster, config: config)
        // A refused cluster has nothing in force: the tables need not wait for it.
        if why != nil { await remove(cluster: cluster) }
        return why
    }

    private func refusal(cluster: String, config: KVClusterConfig?) async -> String? {
        guard let s = context?.section else { return "not configured" }
        guard let config else {
            return "its configuration (\(KVKeys.clusterConfig(cluster))) is missing: enable cluster mesh in that cluster "
                + "(clustermesh.enabled with a cluster.id), or check that the file points at \(cluster)'s etcd"
        }
        if config.id == 0 { return "its cluster ID is 0; give it a cluster.id between 1 and \(s.maxConnectedClusters)" }
        if config.id == s.clusterID {
            return "its cluster ID \(config.id) is also this cluster's (\(s.clusterName)); cluster IDs must be unique in the mesh"
        }
        let theirMax = config.capabilities?.maxConnectedClusters ?? 255
        if theirMax != s.maxConnectedClusters {
            return "it runs with clustermesh.maxConnectedClusters \(theirMax), this cluster with \(s.maxConnectedClusters); "
                + "every cluster of a mesh needs the same value"
        }
        if config.id > s.maxConnectedClusters { return "its cluster ID \(config.id) is above clustermesh.maxConnectedClusters \(s.maxConnectedClusters)" }
        // The first cluster to show an ID keeps it (decided here, in one actor: two clusters racing cannot both win).
        if let other = idOwners[config.id], other != cluster, remotes[other] != nil {
            return "its cluster ID \(config.id) is also cluster \(other)'s; cluster IDs must be unique in the mesh"
        }
        for (id, owner) in idOwners where owner == cluster { idOwners[id] = nil }
        idOwners[config.id] = cluster
        return nil
    }

    func apply(cluster: String, state: RemoteClusterState, synced: Bool) async {
        guard let shared = context?.shared, remotes[cluster] != nil else { return }
        ttlTimers[cluster]?.cancel()
        ttlTimers[cluster] = nil
        dropped[cluster] = nil
        let state = await onlyItsOwn(cluster: cluster, state: state)
        if let why = await overlap(cluster: cluster, state: state) {
            if conflicts[cluster] != why { Log.warning("clustermesh \(cluster): refused: \(why)") }
            conflicts[cluster] = why
            await replace(cluster: cluster, with: RemoteClusterState(), shared: shared)
        } else {
            conflicts[cluster] = nil
            await replace(cluster: cluster, with: state, shared: shared)
        }
        if synced { initialized.insert(cluster) }
        await markTables(shared, force: false)
    }

    func lost(cluster: String) async {
        guard let s = context?.section, let shared = context?.shared, ttlTimers[cluster] == nil else { return }
        if !initialized.contains(cluster) {
            // Not listed since this agent started (a restart while its etcd is away): what an earlier agent put in the
            // datapath for it stays (nothing is pruned) for the cache TTL, and READY need not wait for it.
            let why = "remote cluster \(cluster) not listed yet: \(await remotes[cluster]?.lastFailure ?? "unreachable")"
            await shared.ipcache.initializationFailed(Self.source, reason: why)
            await shared.identities.initializationFailed(Self.source, reason: why)
            await shared.remoteServices.initializationFailed(Self.source, reason: why)
        }
        guard s.cacheTTL > 0 else { return }
        let ttl = s.cacheTTL
        ttlTimers[cluster] = Task { [weak self] in
            try? await Task.sleep(for: .seconds(ttl))
            guard !Task.isCancelled else { return }
            await self?.expire(cluster: cluster, after: ttl)
        }
    }

    /// The cluster stayed away for the cache TTL: its backends leave every global service, its entries go.
    private func expire(cluster: String, after ttl: Double) async {
        ttlTimers[cluster] = nil
        guard let r = remotes[cluster], await !r.ready else { return }
        if applied[cluster] == nil {
            // Never listed by this agent: what an earlier one left of it may now be pruned.
            Log.warning("clustermesh \(cluster): unreachable for clustermesh.cacheTTL (\(Int(ttl)) s) since the start")
            dropped[cluster] = "unreachable for clustermesh.cacheTTL (\(Int(ttl)) s) since the agent started: what an earlier agent left of it is pruned"
            await remove(cluster: cluster)
            return
        }
        Log.warning("clustermesh \(cluster): unreachable for clustermesh.cacheTTL (\(Int(ttl)) s): its state is removed")
        dropped[cluster] = "state removed after clustermesh.cacheTTL (\(Int(ttl)) s) without its etcd"
        await remove(cluster: cluster)
    }

    private func remove(cluster: String) async {
        guard let shared = context?.shared else { return }
        await replace(cluster: cluster, with: RemoteClusterState(), shared: shared)
        applied[cluster] = nil
        conflicts[cluster] = nil
        if remotes[cluster] == nil { for (id, owner) in idOwners where owner == cluster { idOwners[id] = nil } }
        initialized.insert(cluster)
        await markTables(shared, force: false)
    }

    /// What a remote cluster may say about itself, and nothing else: identities in its own cluster ID's range (never
    /// this cluster's or another's: they would relabel their endpoints for policy), nodes that are not this cluster's
    /// own addresses, and endpoint addresses inside its nodes' pod CIDRs, hosted by one of its nodes, with one of its
    /// identities (never an address of this cluster: it would take over a local pod's identity). The rest is
    /// ignored, counted and logged with its key.
    private func onlyItsOwn(cluster: String, state: RemoteClusterState) async -> RemoteClusterState {
        guard let shared = context?.shared, let s = context?.section, let id = await remotes[cluster]?.config?.id else { return state }
        var kept = RemoteClusterState()
        let before = ignored[cluster]?.last
        ignored[cluster] = nil
        func ignore(_ key: String, _ why: String) {
            ignored[cluster, default: (0, "")].count += 1
            let text = "\(key): \(why); ignored"
            if before != text { Log.warning("clustermesh \(cluster): \(text)") }
            ignored[cluster]?.last = text
        }
        let ours = await Set([shared.localNode.get(0)?.address].compactMap { $0 }
                              + shared.remoteNodes.all().filter { !$0.name.contains("/") }.map(\.address))
        for (name, n) in state.nodes {
            if let a = n.address, ours.contains(a) {
                ignore(KVKeys.node(cluster: cluster, name: name), "address \(a) is a node of this cluster")
            } else {
                kept.nodes[name] = n
            }
        }
        let owner = { (identity: UInt32) in IdentityAllocator.clusterID(of: identity, maxConnectedClusters: s.maxConnectedClusters) }
        for (identity, labels) in state.identities {
            if owner(identity) == id { kept.identities[identity] = labels }
            else { ignore(KVKeys.identity(Int(identity)), "identity \(identity) is not in cluster ID \(id)'s range") }
        }
        let hosts = Dictionary(kept.nodes.values.compactMap { n in n.address.map { ($0, n.podCIDR.flatMap(IPv4Prefix.init)) } },
                               uniquingKeysWith: { a, _ in a })
        for (ip, p) in state.ips {
            guard let a = IPv4Address(ip) else { continue }
            guard let cidr = hosts[p.HostIP] ?? nil, cidr.overlaps(IPv4Prefix(a, length: 32)) else {
                ignore(KVKeys.ip(ip), "not inside the pod CIDR of a node of \(cluster) (host \(p.HostIP))")
                continue
            }
            guard owner(p.ID) == id else {
                ignore(KVKeys.ip(ip), "identity \(p.ID) is not in cluster ID \(id)'s range")
                continue
            }
            kept.ips[ip] = p
        }
        kept.services = state.services.filter { $0.value.cluster == cluster }
        return kept
    }

    /// Why a cluster's pod CIDRs cannot join (they overlap this cluster's or another remote cluster's), or nil.
    private func overlap(cluster: String, state: RemoteClusterState) async -> String? {
        guard let shared = context?.shared, let s = context?.section else { return nil }
        var taken: [(IPv4Prefix, String)] = []
        if let me = await shared.localNode.get(0), let p = IPv4Prefix(me.podCIDR) { taken.append((p, "\(s.clusterName)/\(me.name)")) }
        for n in await shared.remoteNodes.all() where !n.name.contains("/") {
            if let p = IPv4Prefix(n.podCIDR) { taken.append((p, "\(s.clusterName)/\(n.name)")) }
        }
        for (other, st) in applied where other != cluster {
            for n in st.nodes.values { if let p = n.podCIDR.flatMap(IPv4Prefix.init) { taken.append((p, "\(other)/\(n.Name)")) } }
        }
        for n in state.nodes.values.sorted(by: { $0.Name < $1.Name }) {
            guard let p = n.podCIDR.flatMap(IPv4Prefix.init) else { continue }
            if let (q, owner) = taken.first(where: { $0.0.overlaps(p) }) {
                return "pod CIDR \(p) of \(cluster)/\(n.Name) overlaps \(q) of \(owner); clusters of a mesh need pod CIDRs that do not overlap"
            }
        }
        return nil
    }

    /// Puts the cluster's state in the shared tables in place of what was there: only the differences change.
    private func replace(cluster: String, with new: RemoteClusterState, shared: SharedState) async {
        let old = applied[cluster] ?? RemoteClusterState()
        applied[cluster] = new
        guard old != new else { return }
        // Identities first: policy must know a new endpoint's identity's labels when its address appears.
        let ids = new.identities.filter { old.identities[$0.key] != $0.value }.map {
            IdentityRecord(id: $0.key, labels: $0.value.map(Self.normalize).sorted())
        }
        if !ids.isEmpty { await shared.identities.upsert(contentsOf: ids) }

        var upserts: [IPCacheEntry] = [], deletes: [IPv4Prefix] = []
        let keyOfHost: [String: UInt8] = Dictionary(new.nodes.values.compactMap { n in n.address.map { ($0, n.EncryptionKey) } },
                                                    uniquingKeysWith: { a, _ in a })
        // Nodes: their address is a remote node; their pod CIDR is behind them.
        for (name, n) in new.nodes where old.nodes[name] != n {
            guard let a = n.address.flatMap(IPv4Address.init) else { continue }
            upserts.append(IPCacheEntry(prefix: IPv4Prefix(a, length: 32), identity: 6, encryptKey: n.EncryptionKey))
            if let cidr = n.podCIDR.flatMap(IPv4Prefix.init) {
                upserts.append(IPCacheEntry(prefix: cidr, identity: 2, tunnelEndpoint: a, encryptKey: n.EncryptionKey))
            }
            await shared.remoteNodes.upsert(RemoteNodeRecord(name: "\(cluster)/\(name)", address: n.address ?? "", podCIDR: n.podCIDR ?? "",
                                                             wireguardPubKey: n.WireguardPubKey, encryptionKey: n.EncryptionKey, bootID: n.BootID))
        }
        for (name, n) in old.nodes where new.nodes[name] != n {
            if new.nodes[name] == nil { await shared.remoteNodes.delete(key: "\(cluster)/\(name)") }
            if let a = n.address.flatMap(IPv4Address.init), new.nodes.values.first(where: { $0.address == n.address }) == nil {
                deletes.append(IPv4Prefix(a, length: 32))
            }
            if let cidr = n.podCIDR.flatMap(IPv4Prefix.init), !new.nodes.values.contains(where: { $0.podCIDR == n.podCIDR }) {
                deletes.append(cidr.network)
            }
        }
        if old.nodes != new.nodes {
            await routes?.update(old: Array(old.nodes.values), new: Array(new.nodes.values), local: await shared.localNode.get(0))
        }
        // Endpoints: the cluster's pods, behind their node, with their identity.
        for (ip, p) in new.ips where old.ips[ip] != p {
            guard let a = IPv4Address(ip) else { continue }
            upserts.append(IPCacheEntry(prefix: IPv4Prefix(a, length: 32), identity: p.ID, tunnelEndpoint: IPv4Address(p.HostIP),
                                        encryptKey: keyOfHost[p.HostIP] ?? p.Key, podNamespace: p.K8sNamespace, podName: p.K8sPodName,
                                        cluster: cluster))
        }
        for ip in old.ips.keys where new.ips[ip] == nil {
            if let a = IPv4Address(ip) { deletes.append(IPv4Prefix(a, length: 32)) }
        }
        let kept = Set(upserts.map(\.key))
        await shared.ipcache.delete(keys: deletes.filter { !kept.contains($0) })
        await shared.ipcache.upsert(contentsOf: upserts)

        // Services: the shared ones go to LoadBalancer, which merges them into local global services.
        let svcUp = new.services.filter { old.services[$0.key] != $0.value && $0.value.shared }.map(\.value)
        let svcDown = old.services.filter { new.services[$0.key] == nil || new.services[$0.key]?.shared == false }.map(\.value.key)
        if !svcDown.isEmpty { await shared.remoteServices.delete(keys: svcDown) }
        if !svcUp.isEmpty { await shared.remoteServices.upsert(contentsOf: svcUp) }

        // Identities that left, last (nothing refers to them any more).
        let goneIDs = old.identities.keys.filter { new.identities[$0] == nil }
        if !goneIDs.isEmpty { await shared.identities.delete(keys: goneIDs) }
    }

    /// "app=web" is "k8s:app=web": upstream's default label source.
    static func normalize(_ label: String) -> String {
        let key = label.split(separator: "=", maxSplits: 1).first ?? ""
        return key.contains(":") ? label : "k8s:" + label
    }

    // MARK: status

    private func meshStatus() async -> ClusterMeshStatus {
        let s = context?.section
        var clusters: [RemoteClusterStatus] = []
        let remoteSvcs = await context?.shared.remoteServices.all() ?? []
        for (name, r) in remotes.sorted(by: { $0.key < $1.key }) {
            var st = await r.status(sharedServices: remoteSvcs.filter { $0.cluster == name }.count)
            if let i = ignored[name] {
                st.recordErrors += i.count
                st.lastRecordError = i.last
            }
            if let why = conflicts[name] {
                st.ready = false
                st.status = "refused: \(why)"
            } else if let why = dropped[name] {
                st.status += "; \(why)"
            }
            clusters.append(st)
        }
        let range = IdentityAllocator.range(clusterID: s?.clusterID ?? 0, maxConnectedClusters: s?.maxConnectedClusters ?? 255)
        let local = await context?.shared.globalServices.all() ?? []
        let global = Set(local.map(\.qualifiedName)).union(remoteSvcs.map(\.qualifiedName)).count
        return ClusterMeshStatus(clusterName: s?.clusterName ?? "", clusterID: s?.clusterID ?? 0,
                                 maxConnectedClusters: s?.maxConnectedClusters ?? 255,
                                 identityRange: "\(range.lowerBound)-\(range.upperBound)", globalServices: global, clusters: clusters)
    }

    public func health() async -> Health {
        guard running else { return .stopped }
        let st = await meshStatus()
        let bad = st.clusters.filter { !$0.ready }
        if let publishError = await publisher?.lastError {
            return Health(.degraded, "publishing this cluster in its etcd: \(publishError)")
        }
        if bad.isEmpty { return .ok }
        return Health(.degraded, bad.map { "\($0.name): \($0.status)" }.joined(separator: "; "))
    }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let st = await meshStatus()
        let ready = st.clusters.filter(\.ready).count
        var details = ["cluster \(st.clusterName), ID \(st.clusterID), identities \(st.identityRange)"]
        if context?.section.etcd.enabled != true {
            details.append("this cluster is not published: its state is in the embedded store (etcd.enabled false), which remote clusters cannot read")
        }
        for c in st.clusters { details += Self.lines(c) }
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: "\(ready)/\(st.clusters.count) remote clusters ready, \(st.globalServices) global-services",
                               details: details)
    }

    /// A remote cluster in `cilium status --verbose`, in upstream's shape.
    static func lines(_ c: RemoteClusterStatus) -> [String] {
        let last = c.lastFailureTime.map { "last: \($0)" } ?? "last: never"
        var out = ["\(c.name): \(c.ready ? "ready" : "not-ready"), \(c.numNodes) nodes, \(c.numEndpoints) endpoints, "
            + "\(c.numIdentities) identities, \(c.numSharedServices) services, \(c.numFailures) reconnections (\(last))"]
        out.append("└  etcd: \(c.status)")
        if let cfg = c.config {
            out.append("└  remote configuration: expected=\(cfg.required), retrieved=\(cfg.retrieved), cluster-id=\(cfg.clusterID), "
                + "max-connected-clusters=\(cfg.maxConnectedClusters), kvstoremesh=false, sync-canaries=\(cfg.syncCanaries)")
        }
        if c.recordErrors > 0 {
            out.append("└  records refused: \(c.recordErrors) (last: \(c.lastRecordError ?? ""))")
        }
        let s = c.synced
        out.append("└  synchronization status: nodes=\(s.nodes), endpoints=\(s.endpoints), identities=\(s.identities), services=\(s.services)")
        return out
    }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        switch (request.method, request.path) {
        case ("GET", "/v1/clustermesh"), ("GET", "/v1/clustermesh/status"):
            return .json(await meshStatus())
        default:
            return .error(status: 404, message: "no API endpoint \(request.method) \(request.path)")
        }
    }
}
