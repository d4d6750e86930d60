import AgentModel
import API
import Foundation
import KVStore

/// What one remote cluster's kvstore holds, as this agent last read it.
struct RemoteClusterState: Sendable, Equatable {
    var nodes: [String: KVNode] = [:]
    /// address -> pair (the key's address; only the cluster's own pods).
    var ips: [String: IPIdentityPair] = [:]
    var identities: [UInt32: [String]] = [:]
    /// namespace/name -> service
    var services: [String: ClusterService] = [:]
}

/// Where a remote cluster's state goes: the subsystem merges every cluster's into the shared tables.
protocol RemoteClusterSink: Actor {
    /// The cluster's full state after a listing or a batch of changes (`synced`: its first full listing is in).
    func apply(cluster: String, state: RemoteClusterState, synced: Bool) async
    /// The cluster's configuration was read: nil when acceptable, else why the cluster is refused.
    func admit(cluster: String, config: KVClusterConfig?) async -> String?
    /// The connection is lost (the state stays until the cache TTL, if any, runs out).
    func lost(cluster: String) async
}

/// One remote cluster: its etcd (from its file in the clustermesh-config directory), read with a listing and
/// then a watch of upstream's prefixes; reconnects with backoff and resyncs (what is gone after a reconnect is
/// pruned by the full listing).
actor RemoteCluster {
    let name: String
    let file: String
    private let sink: any RemoteClusterSink
    private var loop: Task<Void, Never>?
    private(set) var state = RemoteClusterState()
    private(set) var connected = false
    private(set) var synced = RemoteClusterStatus.Synced()
    private(set) var ready = false
    private(set) var failures = 0
    private(set) var lastFailure: String?
    private(set) var lastFailureTime: Date?
    private(set) var config: KVClusterConfig?
    private(set) var endpoints: [String] = []
    /// Records that did not decode, each logged with its key.
    private(set) var recordErrors = 0
    private(set) var lastRecordError: String?
    /// Why this cluster is refused (its configuration), if it is.
    private(set) var refusal: String?
    private var store: (any KVStore)?

    static let backoff: (first: Duration, max: Duration) = (.milliseconds(500), .seconds(30))
    static let requestTimeout: Duration = .seconds(3)

    /// Opens the store a cluster file names: its endpoints and a client.
    typealias Opener = @Sendable (_ file: String) throws -> (store: any KVStore, endpoints: [String])
    private let open: Opener

    static let openEtcd: Opener = { file in
        let cfg = try EtcdClientConfig.load(path: file)
        return (try EtcdKVStore(config: cfg, timeout: RemoteCluster.requestTimeout), cfg.endpoints)
    }

    init(name: String, file: String, sink: any RemoteClusterSink, open: @escaping Opener = RemoteCluster.openEtcd) {
        self.name = name
        self.file = file
        self.sink = sink
        self.open = open
    }

    func start() {
        loop = Task { [weak self] in
            var delay = RemoteCluster.backoff.first
            while !Task.isCancelled {
                guard let self else { return }
                let healthy = await self.runOnce()
                if Task.isCancelled { return }
                // A session that was in sync starts the backoff again; repeated failures back off up to 30 s.
                delay = healthy ? RemoteCluster.backoff.first : min(delay * 2, RemoteCluster.backoff.max)
                try? await Task.sleep(for: delay)
            }
        }
    }

    func stop() {
        loop?.cancel()
        loop = nil
        store = nil
    }

    private func fail(_ why: String) {
        failures += 1
        lastFailure = why
        lastFailureTime = Date()
        connected = false
        ready = false
    }

    /// One session: connect, check the configuration, list, watch until the stream fails. Returns whether it got
    /// as far as a full listing.
    private func runOnce() async -> Bool {
        let store: any KVStore
        do {
            (store, endpoints) = try open(file)
        } catch {
            fail("\(file): \(error)")
            await sink.lost(cluster: name)
            return false
        }
        self.store = store
        var listed = false
        do {
            // The cluster's configuration: upstream's agents require it (ID, capabilities).
            let configPair = try await store.get(KVKeys.clusterConfig(name))
            connected = true
            if let configPair {
                switch KVRecordError.decode(KVClusterConfig.self, key: configPair.key, from: configPair.value) {
                case .success(let c): config = c
                case .failure(let e): throw MeshError("\(e)")
                }
            } else {
                config = nil
            }
            if let why = await sink.admit(cluster: name, config: config) {
                refusal = why
                throw MeshError(why)
            }
            refusal = nil
            let wantCanaries = config?.capabilities?.syncedCanaries == true
            // Everything under cilium/ at one revision: nodes, identities, ipcache, services and the canaries.
            let all = try await store.list(prefix: "cilium/")
            var fresh = RemoteClusterState()
            for pair in all.pairs { _ = absorb(.put(pair), into: &fresh) }
            state = fresh
            canaryKeys = Set(all.pairs.map(\.key).filter { $0.hasPrefix(KVKeys.syncedPrefix(cluster: name)) })
            synced = canaries(required: wantCanaries)
            listed = true
            ready = true
            await sink.apply(cluster: name, state: state, synced: true)
            // Changes after that revision, a burst as one batch (20 ms after its first event).
            for try await event in store.watch(prefix: "cilium/", fromRevision: all.revision + 1) {
                if absorb(event, into: &state) { scheduleApply() }
                if case .put(let p) = event, p.key.hasPrefix(KVKeys.syncedPrefix(cluster: name)) {
                    canaryKeys.insert(p.key)
                    synced = canaries(required: wantCanaries)
                }
            }
            fail("the watch of \(endpoints.joined(separator: ",")) ended")
        } catch is CancellationError {
            return listed
        } catch {
            if Task.isCancelled { return listed }
            fail("\(error)")
        }
        await sink.lost(cluster: name)
        return listed
    }

    private var canaryKeys = Set<String>()
    private var applyScheduled = false

    private func scheduleApply() {
        guard !applyScheduled else { return }
        applyScheduled = true
        Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(20))
            await self?.applyNow()
        }
    }

    private func applyNow() async {
        applyScheduled = false
        guard loop != nil else { return }
        await sink.apply(cluster: name, state: state, synced: true)
    }

    /// Which kinds the cluster says are complete (all of them when it writes no canaries).
    private func canaries(required: Bool) -> RemoteClusterStatus.Synced {
        var s = RemoteClusterStatus.Synced()
        guard required else {
            s.nodes = true; s.endpoints = true; s.identities = true; s.services = true
            return s
        }
        let have = canaryKeys
        s.nodes = have.contains(KVKeys.synced(cluster: name, .nodes))
        s.endpoints = have.contains(KVKeys.synced(cluster: name, .ipcache))
        s.identities = have.contains(KVKeys.synced(cluster: name, .identities))
        s.services = have.contains(KVKeys.synced(cluster: name, .services))
        return s
    }

    /// Applies one event to `state`; returns whether anything this agent uses changed.
    private func absorb(_ event: KVEvent, into state: inout RemoteClusterState) -> Bool {
        let key = event.key
        let value: Data? = if case .put(let p) = event { p.value } else { nil }
        if let node = KVKeys.suffix(of: key, after: KVKeys.nodes(cluster: name)) {
            guard let value else { return state.nodes.removeValue(forKey: node) != nil }
            guard let r = decode(KVNode.self, key, value) else { return false }
            if state.nodes[node] == r { return false }
            state.nodes[node] = r
            return true
        }
        if let ip = KVKeys.suffix(of: key, after: KVKeys.ips()) {
            guard let value else { return state.ips.removeValue(forKey: ip) != nil }
            guard let r = decode(IPIdentityPair.self, key, value) else { return false }
            if state.ips[ip] == r { return false }
            state.ips[ip] = r
            return true
        }
        if let idText = KVKeys.suffix(of: key, after: KVKeys.identitiesPrefix) {
            guard let id = UInt32(idText) else { return false }
            guard let value else { return state.identities.removeValue(forKey: id) != nil }
            let labels = KVKeys.labels(fromList: String(decoding: value, as: UTF8.self)).sorted()
            if state.identities[id] == labels { return false }
            state.identities[id] = labels
            return true
        }
        if let svc = KVKeys.suffix(of: key, after: KVKeys.services(cluster: name)) {
            guard let value else { return state.services.removeValue(forKey: svc) != nil }
            guard let r = decode(ClusterService.self, key, value) else { return false }
            if state.services[svc] == r { return false }
            state.services[svc] = r
            return true
        }
        return false
    }

    private func decode<T: Decodable>(_ type: T.Type, _ key: String, _ value: Data) -> T? {
        switch KVRecordError.decode(type, key: key, from: value) {
        case .success(let v): return v
        case .failure(let e):
            recordErrors += 1
            lastRecordError = e.description
            Log.warning("clustermesh \(name): \(e)")
            return nil
        }
    }

    func status(sharedServices: Int) -> RemoteClusterStatus {
        var cfg = RemoteClusterStatus.RemoteConfig()
        if let config {
            cfg.retrieved = true
            cfg.clusterID = config.id
            cfg.syncCanaries = config.capabilities?.syncedCanaries ?? false
            cfg.maxConnectedClusters = config.capabilities?.maxConnectedClusters ?? 255
        }
        let where_ = endpoints.isEmpty ? file : endpoints.joined(separator: ", ")
        let line: String
        if let refusal { line = "\(where_): refused: \(refusal)" }
        else if ready { line = "\(where_) - connected" }
        else { line = "\(where_): \(lastFailure ?? "connecting")" }
        let fmt = ISO8601DateFormatter()
        var st = RemoteClusterStatus(name: name, ready: ready && refusal == nil, status: line, connected: connected,
                                     numNodes: state.nodes.count, numEndpoints: state.ips.count,
                                     numIdentities: state.identities.count, numSharedServices: sharedServices,
                                     numFailures: failures, lastFailure: lastFailure,
                                     lastFailureTime: lastFailureTime.map(fmt.string(from:)), synced: synced, config: cfg)
        st.recordErrors = recordErrors
        st.lastRecordError = lastRecordError
        return st
    }
}

struct MeshError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
