import HTTPTransport
import AgentModel
import API
import CBPF
import Config
import Datapath
import LinuxNet
import Foundation
import KVStore
import Reconciler

/// Owns the entry programs and the maps every stage shares (cilium_calls,
/// events, metrics, ipcache, endpoints), the node's devices and its workload
/// endpoints. Starting it mounts bpffs when needed, loads (or adopts) the
/// pinned maps, adopts persisted endpoints and reconciles maps and links.
public actor NetworkingSubsystem: SteppedSubsystem {
    public nonisolated let name = "networking"
    public nonisolated let dependencies: [String] = []
    public nonisolated let apiPrefixes = ["/v1/ipam", "/v1/endpoint", "/v1/identity", "/v1/node", "/v1/map/"]
    /// The pipeline's shared maps: tail calls, conntrack, endpoints, ipcache, node, events, counters.
    public nonisolated var owns: PinOwnership { Self.ownership }
    static let ownership = PinOwnership(
        maps: ["cilium_calls", "cilium_ct", "cilium_lxc", "cilium_ipcache", "cilium_node", "cilium_stage_stats",
               NetworkingMaps.events, NetworkingMaps.metrics.name],
        directory: "networking")

    /// Desired ipcache content (shared: Policy adds its CIDR prefixes).
    private var ipcache: StateTable<IPCacheEntry> { context!.shared.ipcache }
    /// Desired entry-program attachments on devices and endpoint veths.
    public let deviceAttachments = StateTable<DeviceAttachment>(name: "devices")
    public private(set) var context: SubsystemContext<Section>?
    private var entry: BPFObject?
    private var endpointManager: EndpointManager?
    private var cluster: ClusterSync?
    private var ipcacheReconciler: Reconciler<BPFMapOperations<IPCacheEntry, ipcache_key, ipcache_value>>?
    private var endpointReconciler: Reconciler<BPFMapOperations<Endpoint, endpoint_key, endpoint_value>>?
    private var deviceReconciler: Reconciler<DeviceLinkOperations>?

    public init() {}

    /// VXLAN's outer headers (IPv4, UDP, VXLAN, Ethernet).
    static let tunnelOverhead: UInt32 = 50

    /// What a pod's packet may measure so that it still fits the node's device after the tunnel's headers and
    /// encryption's (as the Encryption subsystem publishes them).
    private func podRouteMTU() async -> UInt32? {
        guard let context, let base = (try? Netlink())?.uplinkMTU(devices: context.section.devices) else { return nil }
        let tunnel = context.section.routingMode == .tunnel ? Self.tunnelOverhead : 0
        let encryption = await context.shared.localEncryption.get(0)?.overhead ?? 0
        return base - tunnel - encryption
    }

    /// The settings Networking reads.
    public struct Section: Equatable, Sendable {
        public var routingMode: RoutingMode
        public var tunnelProtocol: TunnelProtocol
        public var autoDirectNodeRoutes: Bool
        /// Where native routing reaches without a tunnel ("" for none); shown, not yet used for masquerading.
        public var ipv4NativeRoutingCIDR: String
        public var devices: [String]
        public var rewriteDeliveryMAC: Bool
        public var ipam: AgentConfig.IPAM
        public var etcd: AgentConfig.Etcd
        /// Nodes, identities and pod CIDRs are shared under this cluster's name.
        public var clusterName: String
        /// cluster.id: in node records, and the identities this cluster allocates (with maxConnectedClusters).
        public var clusterID: Int
        public var maxConnectedClusters: Int
        /// Pods' labels are read from here ("" for none).
        public var resourceDirectory: String
        /// encryption.enabled: this node's record waits for the Encryption subsystem's key.
        public var encryption: Bool
    }

    public static func section(of c: AgentConfig) -> Section {
        Section(routingMode: c.routingMode, tunnelProtocol: c.tunnelProtocol, autoDirectNodeRoutes: c.autoDirectNodeRoutes,
                ipv4NativeRoutingCIDR: c.ipv4NativeRoutingCIDR, devices: c.devices, rewriteDeliveryMAC: c.bpf.rewriteDeliveryMAC,
                ipam: c.ipam, etcd: c.etcd, clusterName: c.cluster.name, clusterID: c.cluster.id,
                maxConnectedClusters: c.clustermesh.maxConnectedClusters, resourceDirectory: c.agent.resourceDirectory,
                encryption: c.encryption.enabled)
    }

    public func configure(_ context: SubsystemContext<Section>) {
        self.context = context
    }

    /// The start, step by step (`SteppedSubsystem` runs them and takes them back). Networking is
    /// never disabled, so undoing a step is letting it go: the datapath stays for the next agent.
    public enum Step: String, StartStep {
        case entry = "entry programs"
        case ipcache
        case cluster = "cluster state"
        case endpoints
        case devices
        case delivery = "delivery stage"
    }

    public var taken: [Step] = []
    /// The node's address and pod CIDR, found by the cluster step for the later ones.
    private var address: IPv4Address?
    private var podCIDR: IPv4Prefix?

    public func run(_ step: Step, in context: SubsystemContext<Section>) async throws {
        switch step {
        case .entry:
            try BPFFS.prepare(root: context.bpfRoot)
            entry = try BPFObject(embedded: "entry", pinRoot: context.bpfRoot)
        case .ipcache:
            guard let entry else { return }
            // Reserved identities are known everywhere; everything outside known
            // prefixes is the world (reserved identity 2).
            await context.shared.identities.upsert(contentsOf: LocalIdentityAllocator.reserved.map {
                IdentityRecord(id: $0.0, labels: [$0.1])
            })
            await ipcache.upsert(IPCacheEntry(prefix: .default, identity: UInt32(CILIUM_ID_WORLD.rawValue)))
            // The other nodes' entries come from the kvstore: nothing is pruned until its first listing is in.
            await ipcache.registerInitializer(ClusterSync.ipcacheSource)
            await context.shared.identities.registerInitializer(ClusterSync.ipcacheSource)
            await context.shared.remoteNodes.registerInitializer(ClusterSync.ipcacheSource)
            let ipcacheMap: BPFMap<ipcache_key, ipcache_value> = try await entry.map("cilium_ipcache")
            ipcacheReconciler = try await startReconciler(Reconciler(
                name: "ipcache", table: ipcache,
                operations: BPFMapOperations(map: ipcacheMap, key: { $0.mapKey }, value: { $0.mapValue })))
        case .cluster:
            // Cluster state first: the pod CIDR is claimed there.
            let sync = try ClusterSync(config: context.section, node: context.nodeName, stateDir: context.stateDir, shared: context.shared)
            let podCIDR = try await sync.claimPodCIDR(saved: PodAddressAllocator.savedCIDR(stateFile: context.stateDir + "/ipam.json"),
                                                     config: context.section)
            address = nodeAddress(context.section)
            if let address {
                // This node's own address is the host; other nodes see it as remote-node.
                await ipcache.upsert(IPCacheEntry(prefix: IPv4Prefix(address, length: 32), identity: UInt32(CILIUM_ID_HOST.rawValue)))
            }
            await sync.start(nodeAddress: address, podCIDR: podCIDR)
            self.podCIDR = podCIDR
            cluster = sync
        case .endpoints:
            guard let entry, let sync = cluster, let podCIDR else { return }
            let manager = try EndpointManager(stateDir: context.stateDir, podCIDR: podCIDR,
                                              shared: context.shared, attachments: deviceAttachments, cluster: sync,
                                              resourceDirectory: context.section.resourceDirectory,
                                              clusterName: context.section.clusterName, nodeAddress: address)
            try await manager.setUpRouter()
            // Nodes listed before cilium_host existed got no tunnel route then (it goes through cilium_host).
            await sync.routeKnownNodes()
            try await manager.restore()
            endpointManager = manager
            let lxcMap: BPFMap<endpoint_key, endpoint_value> = try await entry.map("cilium_lxc")
            endpointReconciler = try await startReconciler(Reconciler(
                name: "endpoints", table: manager.endpoints,
                operations: BPFMapOperations(map: lxcMap, key: { $0.mapKey }, value: { $0.mapValue })))
        case .devices:
            guard let entry, let manager = endpointManager else { return }
            let netdevs = context.section.devices.flatMap {
                [DeviceAttachment(device: $0, direction: .ingress), DeviceAttachment(device: $0, direction: .egress)]
            }
            let overlay = try await setUpOverlay(entry: entry, mode: context.section.routingMode,
                                                 flags: context.section.rewriteDeliveryMAC ? CILIUM_NODE_F_REWRITE_MAC.rawValue : 0,
                                                 address: address)
            await deviceAttachments.replaceAll(netdevs + overlay + (await manager.attachmentsForEndpoints()))
            let d = Reconciler(name: "devices", table: deviceAttachments,
                               operations: try await DeviceLinkOperations(entry: entry, bpfRoot: context.bpfRoot))
            await d.start()
            // A missing device is not fatal: the reconciler retries and status says which.
            _ = await d.waitSettled(timeout: .seconds(5))
            deviceReconciler = d
        case .delivery:
            guard let entry else { return }
            // Local delivery is the pipeline's last stage.
            try ProgramArray(pinned: context.bpfRoot + "/cilium_calls")
                .set(slot: CILIUM_STAGE_DELIVER.rawValue, program: try await entry.program("cil_deliver"))
        }
    }

    public func undo(_ step: Step) async { await release(step) }

    public func release(_ step: Step) async {
        switch step {
        case .entry:
            await entry?.close()
            entry = nil
        case .ipcache:
            await ipcacheReconciler?.stop()
            ipcacheReconciler = nil
        case .cluster:
            await cluster?.stop()
            cluster = nil
        case .endpoints:
            await endpointReconciler?.stop()
            endpointReconciler = nil
            endpointManager = nil
        case .devices:
            await deviceReconciler?.stop()
            deviceReconciler = nil
        case .delivery: break
        }
    }

    /// The node's address: the first IPv4 address of its first device. Other
    /// nodes tunnel (or route) to it.
    private func nodeAddress(_ config: Section) -> IPv4Address? {
        guard let dev = config.devices.first, let nl = try? Netlink() else { return nil }
        return (try? nl.addresses(of: .name(dev)))?.first?.prefix.address
    }

    /// Tunnel mode: the cilium_vxlan device (collect_md, port 8472) whose
    /// ingress decapsulated traffic enters the pipeline with the identity from
    /// the VNI; its index tells the delivery stage where to encapsulate.
    /// Native mode: no tunnel; the node's stack routes between nodes.
    private func setUpOverlay(entry: BPFObject, mode: RoutingMode, flags: UInt32, address: IPv4Address?) async throws -> [DeviceAttachment] {
        let own = (address?.value ?? 0).bigEndian
        let nodeMap: BPFMap<UInt32, node_config> = try await entry.map("cilium_node")
        let nl = try Netlink()
        guard mode == .tunnel else {
            try nodeMap.update(0, node_config(vxlan_ifindex: 0, flags: flags, address: own, pad: 0))
            if try nl.link("cilium_vxlan") != nil { try nl.deleteLink("cilium_vxlan") }
            return []
        }
        if try nl.link("cilium_vxlan") == nil { try nl.createVXLAN(name: "cilium_vxlan", port: UInt16(CILIUM_TUNNEL_PORT)) }
        try nl.setLinkUp("cilium_vxlan")
        try nodeMap.update(0, node_config(vxlan_ifindex: UInt32(bitPattern: try nl.index(of: "cilium_vxlan")), flags: flags,
                                          address: own, pad: 0))
        // The node's own traffic to other nodes' pods is routed to cilium_host
        // and picked up on cilium_net, where it enters the pipeline (and the tunnel).
        return [DeviceAttachment(device: "cilium_vxlan", direction: .ingress, role: .overlay),
                DeviceAttachment(device: "cilium_net", direction: .ingress, role: .netdev)]
    }

    /// What the Policy subsystem published about the endpoint (shared table).
    private func withPolicy(_ m: EndpointModel) async -> EndpointModel {
        guard let p = await context?.shared.endpointPolicy.get(UInt16(m.id)) else { return m }
        var m = m
        m.policyIngress = EndpointPolicyState.column(p.ingressEnforced)
        m.policyEgress = EndpointPolicyState.column(p.egressEnforced)
        m.policyRevision = p.revision
        return m
    }

    private func startReconciler<Ops: Operations>(_ r: Reconciler<Ops>) async throws -> Reconciler<Ops> {
        await r.start()
        guard await r.waitSynced(timeout: .seconds(5)) else {
            await r.stop()
            throw SubsystemError("\(r.name) did not reach its BPF map: \(await r.health().message)")
        }
        return r
    }

    public func health() async -> Health {
        guard let r = ipcacheReconciler, let e = endpointReconciler, let d = deviceReconciler, let c = cluster else { return .stopped }
        return Health.worst([await r.health(), await e.health(), await d.health(), await c.health()])
    }

    /// The other nodes' entries (the kvstore's first listing) are in the BPF ipcache, or the
    /// kvstore could not be listed (status says so; nothing is pruned meanwhile).
    public func settle(until deadline: ContinuousClock.Instant) async {
        await ipcache.initializationSettled(until: deadline)
        let left = deadline - .now
        if left > .zero { _ = await ipcacheReconciler?.waitSettled(timeout: left) }
    }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let mode = context?.section.routingMode.rawValue ?? "tunnel"
        let proto = context?.section.tunnelProtocol.rawValue ?? "vxlan"
        let network = mode == "tunnel" ? "Tunnel [\(proto)]" : "Native"
        let entries = await ipcache.count
        let devices = context?.section.devices ?? []
        var details = ["ipcache entries: \(entries)", "bpf root: \(context?.bpfRoot ?? "-")",
                       "devices: \(devices.isEmpty ? "none" : devices.joined(separator: ", ")) (entry programs on TCX links)"]
        if let cidr = context?.section.ipv4NativeRoutingCIDR, !cidr.isEmpty { details.append("IPv4 native routing CIDR: \(cidr)") }
        var state = h.state, message = h.message
        if let pending = await ipcache.initializationPending {
            let line = "ipcache not synced with the cluster yet (\(pending)): what it holds stays, nothing is pruned"
            details.append(line)
            if state == .ok { state = .degraded; message = line }
        }
        if let m = endpointManager {
            details.append("endpoints: \(await m.endpoints.count)")
            if let problem = await m.forwardingProblem {
                details.append(problem)
                if state == .ok { state = .degraded; message = problem }
            } else {
                details.append("IPv4 forwarding: on")
            }
        }
        var lines: [String: String] = [:]
        if let ipam = await ipamSummary() { lines["IPAM"] = ipam }
        if let c = cluster {
            lines["KVStore"] = await c.store.status().description
            details.append("remote nodes: \(await c.remoteNodeCount)")
        }
        return SubsystemStatus(enabled: true, state: state, message: message,
                               summary: "Network: \(network)   Host: BPF", details: details, lines: lines)
    }

    /// IPAM line of `cilium status`: "IPv4: 3/254 allocated from 10.0.0.0/24".
    public func ipamSummary() async -> String? {
        guard let m = endpointManager else { return nil }
        let a = m.addresses
        return "IPv4: \(await a.allocated)/\(await a.capacity) allocated from \(a.podCIDR)"
    }

    public func reconcilers() async -> [ReconcilerStatus] {
        var out: [ReconcilerStatus] = []
        if let r = ipcacheReconciler { out.append(await r.statusReport(subsystem: name)) }
        if let e = endpointReconciler { out.append(await e.statusReport(subsystem: name)) }
        if let d = deviceReconciler { out.append(await d.statusReport(subsystem: name)) }
        return out
    }

    // MARK: - API

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        guard let m = endpointManager else { return .error(status: 503, message: "networking is starting") }
        do {
            switch (request.method, request.path) {
            case ("POST", "/v1/ipam"):
                let req = try request.decode(IPAMRequest.self)
                var answer = try await m.allocate(owner: req.owner)
                answer.routeMTU = await podRouteMTU()
                return .json(answer, status: 201)
            case ("PUT", "/v1/endpoint"):
                let req = try request.decode(EndpointCreateRequest.self)
                return .json(try await m.create(req).model, status: 201)
            case ("DELETE", "/v1/endpoint"):
                guard let id = request.query["containerID"] else {
                    return .error(status: 400, message: "DELETE /v1/endpoint needs ?containerID=")
                }
                return .json(try await m.delete(containerID: id))
            case ("GET", "/v1/endpoint"):
                let all = await m.endpoints.all()
                if let cid = request.query["containerID"] {
                    guard let ep = all.first(where: { $0.containerID == cid }) else {
                        return .error(status: 404, message: "no endpoint for container \(cid)")
                    }
                    return .json(await withPolicy(ep.model))
                }
                if let idText = request.query["id"] {
                    guard let ep = all.first(where: { String($0.id) == idText }) else {
                        return .error(status: 404, message: "endpoint \(idText) not found; see cilium endpoint list")
                    }
                    return .json(await withPolicy(ep.model))
                }
                var models: [EndpointModel] = []
                for ep in all.sorted(by: { $0.id < $1.id }) { models.append(await withPolicy(ep.model)) }
                return .json(models)
            case ("GET", "/v1/identity"):
                let all = await m.identities.all()
                if let idText = request.query["id"] {
                    guard let i = all.first(where: { String($0.id) == idText }) else {
                        return .error(status: 404, message: "identity \(idText) not found; see cilium identity list")
                    }
                    return .json(i)
                }
                return .json(all)
            case ("GET", "/v1/node"):
                return .json(await cluster?.nodes() ?? [])
            case ("GET", "/v1/map/ipcache"):
                guard let entry else { break }
                let map: BPFMap<ipcache_key, ipcache_value> = try await entry.map("cilium_ipcache")
                return .json(map.entries().map { k, v in
                    BPFIPCacheEntry(prefix: "\(IPv4Address(value: UInt32(bigEndian: k.addr)))/\(k.prefixlen)",
                                    identity: v.identity,
                                    tunnelEndpoint: v.tunnel_endpoint == 0 ? nil : IPv4Address(value: UInt32(bigEndian: v.tunnel_endpoint)).description,
                                    encryptKey: v.key)
                }.sorted { $0.prefix < $1.prefix })
            case ("GET", "/v1/map/endpoints"):
                guard let entry else { break }
                let map: BPFMap<endpoint_key, endpoint_value> = try await entry.map("cilium_lxc")
                return .json(map.entries().map { k, v in
                    BPFEndpointEntry(address: IPv4Address(value: UInt32(bigEndian: k.addr)).description, id: Int(v.endpoint_id),
                                     ifindex: Int(v.ifindex), identity: v.identity,
                                     mac: MACAddress(bytes: [v.mac.0, v.mac.1, v.mac.2, v.mac.3, v.mac.4, v.mac.5])!.description,
                                     nodeMac: MACAddress(bytes: [v.node_mac.0, v.node_mac.1, v.node_mac.2, v.node_mac.3, v.node_mac.4, v.node_mac.5])!.description)
                }.sorted { $0.id < $1.id })
            default:
                break
            }
            return .error(status: 404, message: "no API endpoint \(request.method) \(request.path)")
        } catch let e as EndpointError {
            return .error(status: e.status, message: e.description)
        } catch let e as IPAMError {
            return .error(status: 507, message: e.description)
        } catch let e as DecodingError {
            return .error(status: 400, message: "bad request body for \(request.path): \(e)")
        } catch {
            return .error(status: 500, message: "\(error)")
        }
    }
}
