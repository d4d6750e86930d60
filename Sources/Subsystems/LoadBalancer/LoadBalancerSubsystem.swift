import HTTPTransport
import AgentModel
import Manifests
import API
import CBPF
import Config
import Datapath
import Foundation
import Reconciler

/// kube-proxy replacement (`kubeProxyReplacement: true`): Services and
/// EndpointSlices (from `cilium service apply` or the resource directory)
/// become frontends, backends, reverse-NAT entries and Maglev tables; the LB
/// stage (slot CILIUM_STAGE_LB) translates each connection once and its
/// replies back.
public actor LoadBalancerSubsystem: SteppedSubsystem {
    public nonisolated let name = "loadbalancer"
    public nonisolated let dependencies = ["networking"]
    public nonisolated let apiPrefixes = ["/v1/service", "/v1/map/lb"]
    public nonisolated var owns: PinOwnership { Self.ownership }
    static let ownership = PinOwnership(
        maps: ["cilium_lb4_services", "cilium_lb4_backends", "cilium_lb4_reverse_nat", "cilium_lb4_maglev", "cilium_lb4_affinity",
               "cilium_lb4_config", "cilium_lb4_ct", "cilium_lb4_sock_revnat", "cilium_lb4_xdp_stats"],
        directory: "loadbalancer")
    public private(set) var context: SubsystemContext<Section>?
    public nonisolated let stage = PipelineStage(object: "lb", program: "cil_stage_lb", slot: CILIUM_STAGE_LB)

    private var store = ServiceStore()
    private var resolver = ServiceResolver()
    private var output = ServiceResolver.Output()
    private let slots = StateTable<FrontendSlot>(name: "lb-frontends")
    private let backends = StateTable<BackendEntry>(name: "lb-backends")
    private let reverseNAT = StateTable<ReverseNATEntry>(name: "lb-reverse-nat")
    private let maglevTables = StateTable<MaglevEntry>(name: "lb-maglev")
    private var slotReconciler: Reconciler<BPFMapOperations<FrontendSlot, lb4_key, lb4_service>>?
    private var backendReconciler: Reconciler<BPFMapOperations<BackendEntry, UInt32, lb4_backend>>?
    private var natReconciler: Reconciler<BPFMapOperations<ReverseNATEntry, UInt16, lb4_reverse_nat>>?
    private var maglevReconciler: Reconciler<MaglevOperations>?
    private var watchers: [Task<Void, Never>] = []
    private var directory: ResourceDirectory?
    private var routes = VirtualIPRoutes()
    private var lastError: String?
    /// Where the socket LB hooks are attached (nil: socket LB off).
    private var socketCgroup: String?
    private var maglevSeed: [UInt8] = []
    /// What services.json holds: the store at this revision, with these ids (nil: unknown).
    private var persistedAt: (revision: Int, ids: ServiceResolver.IDs)?

    public init() {}

    /// The settings the load balancer reads.
    public struct Section: Equatable, Sendable {
        public var loadBalancer: AgentConfig.LoadBalancer
        public var maglev: AgentConfig.Maglev
        public var socketLB: AgentConfig.SocketLB
        public var cgroup: AgentConfig.CGroup
        /// The Maglev seed's default is derived from it; global services are published under it.
        public var clusterName: String
        /// `cluster.id`, in the global services this cluster publishes.
        public var clusterID: Int
        /// Where XDP acceleration attaches.
        public var devices: [String]
        /// Service and EndpointSlice files are read from here too ("" for none).
        public var resourceDirectory: String
    }

    public static func section(of c: AgentConfig) -> Section {
        Section(loadBalancer: c.loadBalancer, maglev: c.maglev, socketLB: c.socketLB, cgroup: c.cgroup,
                clusterName: c.cluster.name, clusterID: c.cluster.id, devices: c.devices, resourceDirectory: c.agent.resourceDirectory)
    }

    public func configure(_ context: SubsystemContext<Section>) { self.context = context }

    private var state: JSONState<ServiceStore.Persisted> { JSONState(path: (context?.stateDir ?? "/tmp") + "/services.json") }

    /// The start, step by step (`SteppedSubsystem` runs them and takes them back).
    public enum Step: String, StartStep {
        case savedServices = "saved services"
        case stage = "LB stage"
        case settings = "lb4_config"
        case reconcilers = "map reconcilers"
        case watchers = "shared tables"
        case socketLB = "socket LB"
        case xdp = "XDP acceleration"
        case directory = "resource directory"
    }

    public var taken: [Step] = []

    public func run(_ step: Step, in context: SubsystemContext<Section>) async throws {
        let c = context.section, root = context.bpfRoot
        switch step {
        case .savedServices:
            // "" (the default): derived from the cluster name, so every node of a cluster builds the same tables.
            maglevSeed = try MaglevTable.decodeSeed(c.maglev.hashSeed) ?? MaglevTable.seed(fromClusterName: c.clusterName)
            resolver.maglev = c.loadBalancer.algorithm == .maglev
            resolver.maglevSize = c.maglev.tableSize
            resolver.maglevSeed = maglevSeed
            resolver.clusterName = c.clusterName
            resolver.clusterID = UInt32(clamping: c.clusterID)
            if let saved = try state.load() {
                store = ServiceStore(saved)
                resolver.ids = saved.ids
                persistedAt = (store.revision, saved.ids)
            }
        case .stage:
            try await stage.install(bpfRoot: root)
            try SocketLB.adoptLegacyPins(bpfRoot: root)
        case .settings:
            let config = try BPFMap<UInt32, lb4_config>(pinned: root + "/cilium_lb4_config")
            try config.update(0, lb4_config(maglev_size: UInt32(c.maglev.tableSize), maglev_seed: MaglevTable.flowSeed(maglevSeed),
                                            flags: Self.configFlags(c.loadBalancer.mode), pad: 0))
        case .reconcilers:
            let s = Reconciler(name: "lb-frontends", table: slots, operations: BPFMapOperations(
                map: try BPFMap<lb4_key, lb4_service>(pinned: root + "/cilium_lb4_services"), key: { $0.mapKey }, value: { $0.mapValue }))
            let b = Reconciler(name: "lb-backends", table: backends, operations: BPFMapOperations(
                map: try BPFMap<UInt32, lb4_backend>(pinned: root + "/cilium_lb4_backends"), key: { $0.id }, value: { $0.mapValue }))
            let n = Reconciler(name: "lb-reverse-nat", table: reverseNAT, operations: BPFMapOperations(
                map: try BPFMap<UInt16, lb4_reverse_nat>(pinned: root + "/cilium_lb4_reverse_nat"), key: { $0.id }, value: { $0.mapValue }))
            let m = Reconciler(name: "lb-maglev", table: maglevTables,
                               operations: MaglevOperations(outer: try BPFMap<UInt16, UInt32>(pinned: root + "/cilium_lb4_maglev")))
            // Selector services pick other nodes' workloads from the cluster state: the first
            // recompute waits for its first listing (or its failure), or it would take their
            // backends out of the maps of a restarted agent.
            if store.services.values.contains(where: { ServiceResolver.selectorLabels(of: $0) != nil }) {
                await context.shared.ipcache.initializationSettled(until: .now + .seconds(10))
            }
            // The tables are filled before the reconcilers start: their first
            // prune must see everything wanted (an agent restart keeps open
            // connections' entries). Backends before the frontends that name them.
            await recompute()
            await b.start()
            await n.start()
            await m.start()
            await s.start()
            slotReconciler = s
            backendReconciler = b
            natReconciler = n
            maglevReconciler = m
        case .watchers:
            // The recompute of the step before read these tables: only what changed since matters (the
            // tables' current content again would be a second full resolve, 0.3 s at 10k services).
            let shared = context.shared
            watchers.append(follow(await shared.endpoints.changes(includeExisting: false)))
            // Other nodes' workloads matter only to selector services: a change elsewhere is no work.
            watchers.append(follow(await shared.ipcache.changes(includeExisting: false)) { [weak self] in await self?.selectorsCare(about: $0) ?? false })
            watchers.append(follow(await shared.identities.changes(includeExisting: false)) { [weak self] in await self?.selectorsCare(about: $0) ?? false })
            // The remote clusters' global services (cluster mesh): a change to one a local global service
            // names, and the table's initialization (what is really gone then leaves), re-resolve.
            watchers.append(follow(await shared.remoteServices.changes(includeExisting: false)) { [weak self] in
                await self?.globalServicesCare(about: $0) ?? false
            })
            let remote = shared.remoteServices
            watchers.append(Task { [weak self] in
                for await _ in await remote.initialization() {}
                guard !Task.isCancelled, await self?.resolvedWithInitializedRemote == false else { return }
                await self?.recompute()
            })
            let now = await (shared.endpoints.revision, shared.ipcache.revision, shared.identities.revision)
            let remoteNow = await shared.remoteServices.revision
            if now.0 != workloadRevisions.0 || (!selectorLabelSets.isEmpty && (now.1, now.2) != (workloadRevisions.1, workloadRevisions.2))
                || remoteNow != remoteRevision {
                await recompute()
            }
        case .socketLB:
            if c.socketLB.enabled {
                let cg = try SocketLB.cgroupRoot(c.cgroup.hostRoot)
                try await SocketLB.attach(bpfRoot: root, cgroup: cg)
                socketCgroup = cg
            } else {
                SocketLB.detach(bpfRoot: root)
                socketCgroup = nil
            }
        case .xdp:
            if c.loadBalancer.acceleration == .native {
                try await XDPAcceleration.attach(bpfRoot: root, devices: c.devices)
            } else {
                XDPAcceleration.detachAll(bpfRoot: root)
            }
        case .directory:
            let dir = c.resourceDirectory
            guard !dir.isEmpty else { return }
            // Service and EndpointSlice files in the resource directory: a file that does not parse, or a
            // conflicting frontend, changes nothing.
            let d = ResourceDirectory(path: dir, wants: { $0.range(of: #"kind:\s*"?(Service|EndpointSlice)\b"#, options: .regularExpression) != nil }) {
                [weak self] files in
                var all = ServiceDocuments()
                for f in files {
                    do {
                        let docs = try ServiceManifestParser.parse(f.text, file: f.path)
                        all.services += docs.services
                        all.slices += docs.slices
                    } catch {
                        return "\(error) (the services in force stay as they were)"
                    }
                }
                do { try await self?.apply(all, source: "directory", replacingSource: true) } catch { return "\(error)" }
                return nil
            }
            await d.start()
            directory = d
        }
    }

    public func undo(_ step: Step) async {
        switch step {
        case .savedServices, .settings: break
        case .stage: await stage.uninstall()
        case .reconcilers:
            await release(step)
            routes.removeAll()
        case .watchers, .directory: await release(step)
        case .socketLB:
            if let bpfRoot { SocketLB.detach(bpfRoot: bpfRoot) }
            socketCgroup = nil
        case .xdp:
            if let bpfRoot { XDPAcceleration.detachAll(bpfRoot: bpfRoot) }
        }
    }

    public func release(_ step: Step) async {
        switch step {
        case .savedServices, .settings, .socketLB, .xdp: break // pinned links outlive the agent
        case .stage: await stage.release()
        case .reconcilers:
            await slotReconciler?.stop()
            await backendReconciler?.stop()
            await natReconciler?.stop()
            await maglevReconciler?.stop()
            slotReconciler = nil
            backendReconciler = nil
            natReconciler = nil
            maglevReconciler = nil
        case .watchers:
            for w in watchers { w.cancel() }
            watchers = []
        case .directory:
            await directory?.stop()
            directory = nil
        }
    }

    /// Recomputes on every change set of a shared table that `matters` (selector services follow
    /// the workloads).
    private func follow<T: TableObject>(_ stream: AsyncStream<[Change<T>]>,
                                        matters: @escaping @Sendable ([Change<T>]) async -> Bool = { _ in true }) -> Task<Void, Never> {
        Task { [weak self] in
            for await changes in stream where await matters(changes) { await self?.recompute() }
        }
    }

    /// What selector services pick by (label sets), and the remote workloads they picked at the
    /// last recompute (addresses, identities): a change to anything else changes no backend.
    private var selectorLabelSets: [[String]] = []
    /// The revisions of the endpoints, ipcache and identities tables the last recompute read.
    private var workloadRevisions: (UInt64, UInt64, UInt64) = (0, 0, 0)
    private var selectedAddresses = Set<UInt32>()
    private var selectedIdentities = Set<UInt32>()

    private func selectorsCare(about changes: [Change<IPCacheEntry>]) async -> Bool {
        guard !selectorLabelSets.isEmpty else { return false }
        // A large batch (a first listing, a bulk write) is one recompute anyway.
        guard changes.count <= 64, let shared = context?.shared else { return true }
        for c in changes {
            let e = c.object
            if selectedAddresses.contains(e.prefix.address.value) { return true }
            guard case .upsert = c, e.prefix.length == 32, e.identity >= 256 else { continue }
            if let labels = await shared.identities.get(e.identity)?.labels, picked(labels) { return true }
        }
        return false
    }

    private func selectorsCare(about changes: [Change<IdentityRecord>]) -> Bool {
        changes.contains { selectedIdentities.contains($0.object.id) || picked($0.object.labels) }
    }

    private func picked(_ labels: [String]) -> Bool {
        guard !ServiceResolver.isOtherCluster(labels, local: context?.section.clusterName ?? resolver.clusterName) else { return false }
        return selectorLabelSets.contains { $0.allSatisfy(labels.contains) }
    }

    /// The remoteServices revision the last recompute read, and whether the table was initialized then.
    private var remoteRevision: UInt64 = 0
    private var resolvedWithInitializedRemote = false

    /// Only records of a local global service (or one resolved with before) change a backend.
    private func globalServicesCare(about changes: [Change<ClusterService>]) -> Bool {
        let global = store.globalServiceNames
        return changes.contains { global.contains($0.object.qualifiedName) || store.remoteServices[$0.object.key] != nil }
    }

    /// The remote records the global services resolve with: the table's once it is initialized, and until then
    /// also the ones services.json kept (a restarted agent drops no remote backend before cluster mesh has
    /// listed every remote cluster again).
    private func remoteRecords() async -> [ClusterService] {
        guard let shared = context?.shared else { return [] }
        let table = shared.remoteServices
        let (records, initialized, revision) = await (table.all(), table.isInitialized, table.revision)
        remoteRevision = revision
        resolvedWithInitializedRemote = initialized
        return store.remoteRecords(table: records, initialized: initialized, localCluster: resolver.clusterName)
    }

    /// Disabled at agent start: the last agent's socket-LB hooks, XDP links and stage go.
    public func removeLeftovers(bpfRoot: String) async {
        // An earlier agent's links may still be in the old layout (<bpf root>/links).
        if FileManager.default.fileExists(atPath: bpfRoot + "/links") { try? SocketLB.adoptLegacyPins(bpfRoot: bpfRoot) }
        SocketLB.detach(bpfRoot: bpfRoot)
        XDPAcceleration.detachAll(bpfRoot: bpfRoot)
        await stage.removeLeftover(bpfRoot: bpfRoot)
    }

    public func health() async -> Health {
        guard let s = slotReconciler, let b = backendReconciler, let n = natReconciler, let m = maglevReconciler else { return .stopped }
        var all = [await stage.health, await s.health(), await b.health(), await n.health(), await m.health()]
        if let lastError { all.append(Health(.degraded, lastError)) }
        if let d = await directory?.lastError { all.append(Health(.degraded, d)) }
        all += output.globalServiceProblems.map { Health(.degraded, $0) }
        return Health.worst(all)
    }

    public func reconcilers() async -> [ReconcilerStatus] {
        var out: [ReconcilerStatus] = []
        if let r = slotReconciler { out.append(await r.statusReport(subsystem: name)) }
        if let r = backendReconciler { out.append(await r.statusReport(subsystem: name)) }
        if let r = natReconciler { out.append(await r.statusReport(subsystem: name)) }
        if let r = maglevReconciler { out.append(await r.statusReport(subsystem: name)) }
        return out
    }

    /// The workloads selector services can pick: this node's endpoints and
    /// other nodes' endpoints known from the cluster state (ipcache + identities).
    /// The local pods' hostPorts (CNI portMappings), from the shared endpoints table.
    private func hostPorts() async -> [HostPort] {
        guard let shared = context?.shared else { return [] }
        var out: [HostPort] = []
        for ep in await shared.endpoints.all() {
            guard let pod = ServiceResolver.ipv4(ep.address) else { continue }
            for m in ep.portMappings ?? [] {
                let host = (m.hostIP ?? "").isEmpty ? 0 : ServiceResolver.ipv4(m.hostIP!) ?? 0
                out.append(HostPort(pod: ep.podName ?? "endpoint-\(ep.id)", podAddress: pod, hostAddress: host,
                                    hostPort: m.hostPort, containerPort: m.containerPort, proto: m.protocol_ == "udp" ? .udp : .tcp))
            }
        }
        return out
    }

    private func workloads() async -> [Workload] {
        guard let shared = context?.shared else { return [] }
        workloadRevisions = await (shared.endpoints.revision, shared.ipcache.revision, shared.identities.revision)
        var out: [Workload] = []
        var seen = Set<UInt32>()
        for ep in await shared.endpoints.all() {
            guard let a = ServiceResolver.ipv4(ep.address) else { continue }
            out.append(Workload(address: a, labels: ep.labels, local: true))
            seen.insert(a)
        }
        // Only selector services use other nodes' workloads.
        let withSlices = Set(store.slices.values.map { "\($0.namespace)/\($0.serviceName)" })
        selectorLabelSets = store.services.values.filter { !withSlices.contains($0.qualifiedName) }.compactMap(ServiceResolver.selectorLabels)
        selectedAddresses = []
        selectedIdentities = []
        guard !selectorLabelSets.isEmpty else { return out }
        let identities = Dictionary(uniqueKeysWithValues: await shared.identities.all().map { ($0.id, $0.labels) })
        // Another cluster's pods (cluster mesh puts them in the ipcache) are never picked by a selector: they back
        // a global service through their cluster's records.
        let cluster = resolver.clusterName
        for e in await shared.ipcache.all() where e.prefix.length == 32 && e.tunnelEndpoint != nil && e.identity >= 256 {
            guard !seen.contains(e.prefix.address.value), let labels = identities[e.identity],
                  !ServiceResolver.isOtherCluster(labels, local: cluster) else { continue }
            out.append(Workload(address: e.prefix.address.value, labels: labels, local: false))
            if picked(labels) {
                selectedAddresses.insert(e.prefix.address.value)
                selectedIdentities.insert(e.identity)
            }
        }
        return out
    }

    private var recomputing = false
    private var recomputeAgain = false

    /// One recomputation at a time (the actor is reentrant at every await):
    /// a change that arrives meanwhile runs another round after it.
    func recompute() async {
        if recomputing {
            recomputeAgain = true
            return
        }
        recomputing = true
        defer { recomputing = false }
        repeat {
            recomputeAgain = false
            await recomputeOnce()
        } while recomputeAgain
    }

    private func recomputeOnce() async {
        let states = store.backendStates.mapValues { lb_backend_state(rawValue: $0) }
        output = resolver.resolve(services: Array(store.services.values), slices: Array(store.slices.values),
                                  workloads: await workloads(), hostPorts: await hostPorts(), backendStates: states,
                                  remote: await remoteRecords())
        // What a frontend names (backends, its reverse NAT, its Maglev table)
        // reaches the maps before the frontend does: a packet never finds a
        // frontend whose backend or table is not there yet.
        await backends.replaceChanged(output.backends)
        await reverseNAT.replaceChanged(output.reverseNAT)
        await maglevTables.replaceChanged(output.maglevTables)
        _ = await backendReconciler?.waitSettled(timeout: .seconds(2))
        _ = await natReconciler?.waitSettled(timeout: .seconds(2))
        _ = await maglevReconciler?.waitSettled(timeout: .seconds(2))
        await slots.replaceChanged(output.slots)
        _ = await slotReconciler?.waitSettled(timeout: .seconds(2))
        if let e = routes.sync(output.virtualIPs) { lastError = e } else { lastError = nil }
        // This cluster's global and shared services, for cluster mesh to publish.
        await context?.shared.globalServices.replaceChanged(output.exports)
        persist()
    }

    /// Writes services.json when what it holds changed (a recompute for a workload or
    /// ipcache change rewrote all of it before, megabytes at 10k services). The store's
    /// revision says whether it changed: no copy of it is kept to compare with.
    private func persist() {
        if let p = persistedAt, p.revision == store.revision, p.ids == resolver.ids { return }
        do {
            try state.save(store.persisted(ids: resolver.ids))
            persistedAt = (store.revision, resolver.ids)
        } catch {
            lastError = "cannot save services to \(state.path): \(error)"
        }
    }

    /// Applies manifests (API or directory). Nothing changes when they conflict.
    func apply(_ docs: ServiceDocuments, source: String, replacingSource: Bool = false) async throws(ServiceApplyError) {
        if let conflict = store.conflicts(with: docs) { throw ServiceApplyError(description: conflict) }
        store.apply(docs, source: source, replacingSource: replacingSource)
        await recompute()
    }

    /// loadBalancer.mode as the datapath's lb4_config flags.
    static func configFlags(_ mode: LoadBalancerMode) -> UInt32 {
        switch mode {
        case .snat: return 0
        case .dsr: return LB_CONFIG_F_DSR_TCP.rawValue | LB_CONFIG_F_DSR_UDP.rawValue
        case .hybrid: return LB_CONFIG_F_DSR_TCP.rawValue
        }
    }

    public func status() async -> SubsystemStatus {
        let h = await health()
        var details: [String] = []
        if let c = context?.section {
            details.append(socketCgroup.map { "Socket LB: Enabled (cgroup \($0); frontends with affinity or Maglev per packet)" }
                           ?? "Socket LB: Disabled (translation happens per packet in the LB stage)")
            let mode = c.loadBalancer.mode
            switch mode {
            case .snat: details.append("Mode: SNAT")
            case .dsr: details.append("Mode: DSR")
            case .hybrid: details.append("Mode: Hybrid (DSR for TCP, SNAT for UDP)")
            }
            if mode != .snat { details.append("DSR Dispatch Mode: IP Option (type 0x9a)") }
            if c.loadBalancer.algorithm == .maglev {
                details.append("Backend Selection: Maglev (Table Size: \(c.maglev.tableSize))")
            } else {
                details.append("Backend Selection: Random")
            }
            details.append("Session Affinity: Enabled")
            let hostPorts = output.frontends.filter { $0.type == "HostPort" }.count
            details.append("HostPort: Enabled (\(hostPorts) served" + (output.hostPortConflicts.isEmpty ? ")"
                           : "; not served: \(output.hostPortConflicts.joined(separator: "; ")))"))
            if let root = context?.bpfRoot, c.loadBalancer.acceleration == .native {
                let n = XDPAcceleration.counters(bpfRoot: root) ?? .init()
                let on = XDPAcceleration.attachedDevices(bpfRoot: root)
                details.append("XDP Acceleration: Native (\(on.isEmpty ? "no device" : on.joined(separator: ", ")); "
                               + "\(n.translated) requests and \(n.reversed) replies forwarded in XDP, \(n.passed) packets passed to tc)")
            } else {
                details.append("XDP Acceleration: Disabled")
            }
        }
        let global = store.globalServiceNames.count
        if global > 0 || !output.globalServiceProblems.isEmpty {
            let remote = Set(output.frontends.flatMap { $0.backends.compactMap(\.cluster) })
            details.append("Global services: \(global) (\(output.exports.count) shared; remote backends from "
                           + (remote.isEmpty ? "no cluster" : remote.sorted().joined(separator: ", ")) + ")")
            details += output.globalServiceProblems
        }
        let types = Dictionary(grouping: output.frontends, by: \.type).mapValues(\.count)
        details.append("Services:")
        for t in ["ClusterIP", "NodePort", "LoadBalancer", "ExternalIP"] {
            details.append("- \(t): Enabled (\(types[t] ?? 0) frontends)")
        }
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: "True   [\(store.services.count) services, \(output.frontends.count) frontends, \(output.backends.count) backends]",
                               details: details)
    }

    // MARK: API

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        guard slotReconciler != nil else { return .error(status: 503, message: "load balancer is not running") }
        switch (request.method, request.path) {
        case ("PUT", "/v1/service"), ("POST", "/v1/service"):
            let source = request.query["source"] ?? "stdin"
            guard let text = String(data: request.body, encoding: .utf8) else { return .error(status: 400, message: "\(source): not UTF-8") }
            do {
                let docs = try ServiceManifestParser.parse(text, file: source)
                guard !docs.services.isEmpty || !docs.slices.isEmpty else {
                    return .error(status: 400, message: "\(source): no Service or EndpointSlice in the input")
                }
                try await apply(docs, source: "api")
                return .json(ServiceApplyResponse(services: docs.services.map(\.qualifiedName),
                                                  endpointSlices: docs.slices.map { "\($0.namespace)/\($0.name)" }))
            } catch let e as ServiceManifestError {
                return .error(status: 400, message: e.description)
            } catch {
                return .error(status: 409, message: "\(error)")
            }
        case ("DELETE", "/v1/service"):
            guard let name = request.query["name"] else { return .error(status: 400, message: "say which service: ?name=NAME[&namespace=NS]") }
            let ns = request.query["namespace"] ?? "default"
            guard store.delete(name: name, namespace: ns) else { return .error(status: 404, message: "no service \(ns)/\(name)") }
            await recompute()
            return .json(["deleted": "\(ns)/\(name)"])
        case ("GET", "/v1/service"):
            let models = output.frontends.map(Self.model)
            if let idText = request.query["id"] {
                guard let m = models.first(where: { String($0.id) == idText }) else {
                    return .error(status: 404, message: "service \(idText) not found; see cilium service list")
                }
                return .json(m)
            }
            return .json(models)
        case ("PUT", "/v1/service/backend"):
            guard let req = try? JSONDecoder().decode(BackendStateRequest.self, from: request.body) else {
                return .error(status: 400, message: "expected {\"backend\": \"ADDR:PORT/PROTO\", \"state\": \"active|quarantined|maintenance\"}")
            }
            let states = ["active": LB_BACKEND_ACTIVE, "quarantined": LB_BACKEND_QUARANTINED, "maintenance": LB_BACKEND_MAINTENANCE]
            guard let st = states[req.state] else {
                return .error(status: 400, message: "state \(req.state): expected active, quarantined or maintenance")
            }
            guard output.backends.contains(where: { "\(ServiceResolver.text($0.address)):\($0.port)/\(Self.protoName($0.proto))" == req.backend }) else {
                return .error(status: 404, message: "no backend \(req.backend); see cilium service list")
            }
            store.backendStates[req.backend] = st == LB_BACKEND_ACTIVE ? nil : st.rawValue
            await recompute()
            return .json(["backend": req.backend, "state": req.state])
        case ("GET", "/v1/map/lb"):
            guard let root = context?.bpfRoot, let map = try? BPFMap<lb4_key, lb4_service>(pinned: root + "/cilium_lb4_services"),
                  let bmap = try? BPFMap<UInt32, lb4_backend>(pinned: root + "/cilium_lb4_backends") else {
                return .error(status: 500, message: "cannot open the LB maps")
            }
            let rows = map.entries().map { k, v -> BPFLBEntry in
                let front = "\(ServiceResolver.text(UInt32(bigEndian: k.address))):\(UInt16(bigEndian: k.dport))/\(Self.protoName(k.proto))"
                if k.backend_slot == 0 {
                    return BPFLBEntry(frontend: front, slot: 0, value: "0.0.0.0:0 (\(v.count) backends, revnat \(v.rev_nat_index), flags 0x\(String(v.flags, radix: 16)))")
                }
                let b = bmap.lookup(v.backend_id)
                let addr = b.map { "\(ServiceResolver.text(UInt32(bigEndian: $0.address))):\(UInt16(bigEndian: $0.port))" } ?? "?"
                return BPFLBEntry(frontend: front, slot: k.backend_slot, value: "\(addr) (backend \(v.backend_id))")
            }.sorted { ($0.frontend, $0.slot) < ($1.frontend, $1.slot) }
            return .json(rows)
        case ("GET", "/v1/map/lb/maglev"):
            guard let idText = request.query["id"], let id = UInt16(idText) else { return .error(status: 400, message: "?id=FRONTEND_ID") }
            guard let root = context?.bpfRoot, let outer = try? BPFMap<UInt16, UInt32>(pinned: root + "/cilium_lb4_maglev") else {
                return .error(status: 500, message: "cannot open cilium_lb4_maglev")
            }
            guard let innerID = outer.lookup(id) else {
                return .error(status: 404, message: "frontend \(id) has no Maglev table (algorithm random, or no backends)")
            }
            let inner: BPFMap<UInt32, UInt32>
            do { inner = try BPFMap(id: innerID) } catch {
                return .error(status: 500, message: "frontend \(id): Maglev table (map id \(innerID)): \(error)")
            }
            let table = (0..<inner.maxEntries).map { inner.lookup($0) ?? 0 }
            let shares = Dictionary(grouping: table, by: { String($0) }).mapValues(\.count)
            return .json(MaglevTableModel(frontendID: id, size: table.count, shares: shares, table: table))
        default:
            return .error(status: 404, message: "no API endpoint \(request.method) \(request.path)")
        }
    }

    static func protoName(_ p: UInt8) -> String { p == 6 ? "TCP" : p == 17 ? "UDP" : p == 132 ? "SCTP" : String(p) }

    static func model(_ f: ResolvedFrontend) -> ServiceFrontendModel {
        let states = [LB_BACKEND_ACTIVE: "active", LB_BACKEND_TERMINATING: "terminating",
                      LB_BACKEND_QUARANTINED: "quarantined", LB_BACKEND_MAINTENANCE: "maintenance"]
        return ServiceFrontendModel(
            id: f.id, service: f.service, frontend: "\(ServiceResolver.text(f.address)):\(f.port)/\(f.proto.rawValue)", type: f.type,
            backends: f.backends.map { .init(id: $0.id, address: "\(ServiceResolver.text($0.address)):\($0.port)/\(f.proto.rawValue)",
                                             state: states[$0.state] ?? "?", preferred: $0.preferred ? true : nil, cluster: $0.cluster) },
            sessionAffinityTimeout: f.affinityTimeout == 0 ? nil : f.affinityTimeout,
            trafficPolicyLocal: f.flags & LB_F_LOCAL.rawValue != 0, maglev: f.flags & LB_F_MAGLEV.rawValue != 0)
    }
}

struct ServiceApplyError: Error, CustomStringConvertible {
    var description: String
}
