import API
import CBPF
import Config
import Datapath
import Reconciler

/// Owns the entry programs and the maps every stage shares (cilium_calls,
/// events, metrics, ipcache, endpoints). Starting it mounts bpffs when needed,
/// loads (or adopts) the pinned maps and reconciles the ipcache.
public actor NetworkingSubsystem: AgentSubsystem {
    public nonisolated let name = "networking"
    public nonisolated let dependencies: [String] = []
    public nonisolated let configKeys = ["routingMode", "tunnelProtocol", "autoDirectNodeRoutes",
                                         "ipv4NativeRoutingCIDR", "devices", "ipam.", "cluster."]

    /// Desired ipcache content. Other subsystems (and later issues) add entries.
    public let ipcache = StateTable<IPCacheEntry>(name: "ipcache")
    private var context: SubsystemContext?
    private var entry: BPFObject?
    private var ipcacheReconciler: Reconciler<BPFMapOperations<IPCacheEntry, ipcache_key, ipcache_value>>?
    /// Desired entry-program attachments on the node's devices.
    public let deviceAttachments = StateTable<DeviceAttachment>(name: "devices")
    private var deviceReconciler: Reconciler<DeviceLinkOperations>?

    public init() {}

    public func configure(_ context: SubsystemContext) {
        self.context = context
    }

    public func start() async throws {
        guard let context else { throw SubsystemError("networking: not configured") }
        try BPFFS.prepare(root: context.bpfRoot)
        let entry = try BPFObject(embedded: "entry", pinRoot: context.bpfRoot)
        let map: BPFMap<ipcache_key, ipcache_value> = try await entry.map("cilium_ipcache")
        // Everything outside known prefixes is the world (reserved identity 2).
        await ipcache.upsert(IPCacheEntry(prefix: .default, identity: UInt32(CILIUM_ID_WORLD.rawValue)))
        let r = Reconciler(name: "ipcache", table: ipcache,
                           operations: BPFMapOperations(map: map, key: { $0.mapKey }, value: { $0.mapValue }))
        await r.start()
        guard await r.waitSynced(timeout: .seconds(5)) else {
            await r.stop()
            throw SubsystemError("networking: ipcache did not reach the BPF map: \(await r.health().message)")
        }
        self.entry = entry
        self.ipcacheReconciler = r

        let devices = try DeviceLinkOperations(fromNetdev: try await entry.program("cil_from_netdev"),
                                           toNetdev: try await entry.program("cil_to_netdev"), bpfRoot: context.bpfRoot)
        await deviceAttachments.replaceAll(context.config.devices.flatMap {
            [DeviceAttachment(device: $0, direction: .ingress), DeviceAttachment(device: $0, direction: .egress)]
        })
        let d = Reconciler(name: "devices", table: deviceAttachments, operations: devices)
        await d.start()
        // A missing device is not fatal: the reconciler retries and status says which.
        _ = await d.waitSettled(timeout: .seconds(5))
        self.deviceReconciler = d
    }

    public func stop() async {
        await ipcacheReconciler?.stop()
        ipcacheReconciler = nil
        await deviceReconciler?.stop()
        deviceReconciler = nil
        await entry?.close()
        entry = nil
    }

    public func health() async -> Health {
        guard let r = ipcacheReconciler, let d = deviceReconciler else { return .stopped }
        return Health.worst([await r.health(), await d.health()])
    }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let mode = context?.config.routingMode.rawValue ?? "tunnel"
        let proto = context?.config.tunnelProtocol.rawValue ?? "vxlan"
        let network = mode == "tunnel" ? "Tunnel [\(proto)]" : "Native"
        let entries = await ipcache.count
        let devices = context?.config.devices ?? []
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: "Network: \(network)   Host: BPF",
                               details: ["ipcache entries: \(entries)", "bpf root: \(context?.bpfRoot ?? "-")",
                                         "devices: \(devices.isEmpty ? "none" : devices.joined(separator: ", ")) (entry programs on TCX links)"])
    }

    public func reconcilers() async -> [ReconcilerStatus] {
        var out: [ReconcilerStatus] = []
        if let r = ipcacheReconciler { out.append(await r.statusReport(subsystem: name)) }
        if let d = deviceReconciler { out.append(await d.statusReport(subsystem: name)) }
        return out
    }

    public func shutdown() async { await stop() }
}
