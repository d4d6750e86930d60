import AgentModel
import API
import Config
import CBPF
import Datapath
import LinuxNet
import Foundation
import KVStore
import Reconciler

/// Creates and removes workload endpoints: address (IPAM), identity (labels),
/// host route, endpoint-map and ipcache entries, entry programs on the
/// host-side veth. The tables it writes are reconciled into BPF maps and TCX
/// links; its own state is persisted so a restarted agent adopts every endpoint.
actor EndpointManager {
    let endpoints = StateTable<Endpoint>(name: "endpoints")
    private let ipcache: StateTable<IPCacheEntry>
    private let shared: SharedState
    private let attachments: StateTable<DeviceAttachment>
    let addresses: PodAddressAllocator
    let identities: LocalIdentityAllocator
    private let state: JSONState<[Endpoint]>
    private let cluster: ClusterSync
    /// Background label lookups (PodmanLabels) by container id.
    private var labelLookups: [String: Task<Void, Never>] = [:]

    /// Where pods' manifests are (agent.resourceDirectory), "" for none.
    private let resourceDirectory: String
    /// cluster.name: every workload carries it as a label, as upstream's do.
    private let clusterName: String
    /// The node's address, the one a hostPort may name besides all of them (0.0.0.0).
    private let nodeAddress: IPv4Address?

    /// Why IPv4 forwarding is off in the agent's namespace, when the agent could not turn it on.
    private(set) var forwardingProblem: String?

    init(stateDir: String, podCIDR: IPv4Prefix, shared: SharedState,
         attachments: StateTable<DeviceAttachment>, cluster: ClusterSync, resourceDirectory: String = "",
         clusterName: String = "default", nodeAddress: IPv4Address? = nil) throws {
        self.resourceDirectory = resourceDirectory
        self.clusterName = clusterName
        self.nodeAddress = nodeAddress
        self.shared = shared
        self.ipcache = shared.ipcache
        self.attachments = attachments
        self.cluster = cluster
        self.addresses = try PodAddressAllocator(stateFile: stateDir + "/ipam.json", podCIDR: podCIDR)
        let range = cluster.identityRange
        try Self.checkClusterIdentity(stateDir: stateDir, name: clusterName, id: cluster.clusterID)
        self.identities = try LocalIdentityAllocator(stateFile: stateDir + "/identities.json",
                                                     cluster: IdentityAllocator(store: cluster.store, range: range), range: range)
        self.state = JSONState(path: stateDir + "/endpoints.json")
    }

    /// The cluster this node's endpoints were made in (their identities carry its ID).
    struct ClusterIdentity: Codable, Equatable {
        var name: String
        var id: Int
    }

    /// Refuses a cluster.name or cluster.id other than the one this node's endpoints were made in, while it has
    /// endpoints: their identities (and every policy that names them) are numbered in that cluster's range.
    static func checkClusterIdentity(stateDir: String, name: String, id: Int) throws {
        let file = JSONState<ClusterIdentity>(path: stateDir + "/cluster.json")
        let now = ClusterIdentity(name: name, id: id)
        if let saved = try file.load(), saved != now {
            let endpoints = (try? JSONState<[Endpoint]>(path: stateDir + "/endpoints.json").load())??.count ?? 0
            if endpoints > 0 {
                throw SubsystemError("cluster.id \(id) (cluster.name \(name)) differs from cluster.id \(saved.id) (cluster.name \(saved.name)) "
                    + "that this node's \(endpoints) endpoints were made in: their identities are numbered in that cluster's range. "
                    + "Set cluster.id back to \(saved.id), or remove the endpoints first (cilium-cni DEL / pod removal)")
            }
        }
        if try file.load() != now { try file.save(now) }
    }

    /// The node's router: cilium_host (one end of a veth pair with cilium_net)
    /// holds the first address of the pod CIDR, the endpoints' gateway.
    func setUpRouter() async throws {
        let nl = try Netlink()
        if try nl.link("cilium_host") == nil {
            try nl.createVeth(name: "cilium_host", peerName: "cilium_net")
        }
        let router = await addresses.routerAddress
        let have = try nl.addresses(of: "cilium_host").contains { $0.prefix.address == router }
        if !have { try nl.addAddress(IPv4Prefix(router, length: 32), to: "cilium_host") }
        // The node's own traffic to its pods leaves from the router address: it is the host (identity 1).
        await ipcache.upsert(IPCacheEntry(prefix: IPv4Prefix(router, length: 32), identity: UInt32(CILIUM_ID_HOST.rawValue)))
        // The next hop for the node's own traffic to other nodes' pods in tunnel
        // mode: a link-local address "behind" cilium_host whose neighbour is
        // cilium_net, where the entry program picks the packets up and
        // tunnels them (routes are added per remote node by ClusterSync).
        let hop = PodCIDRRoutes.tunnelNextHop
        if try !nl.addresses(of: "cilium_host").contains(where: { $0.prefix.address == IPv4Address(value: hop.address.value + 1) }) {
            try nl.addAddress(IPv4Prefix(IPv4Address(value: hop.address.value + 1), length: 30), to: "cilium_host", scope: .link)
        }
        if let mac = try nl.link("cilium_net")?.mac {
            try nl.replaceNeighbor(hop.address, mac: mac, on: "cilium_host")
        }
        try nl.setLinkUp("cilium_host")
        try nl.setLinkUp("cilium_net")
        // The node routes between its endpoints and devices (as upstream's agent does, it turns
        // forwarding on where it routes): without it the stack drops what it should pass on, and
        // bpf_fib_lookup refuses to forward (XDP, NodePort SNAT/DSR).
        do {
            try Sysctl.set("net.ipv4.ip_forward", "1")
            forwardingProblem = nil
        } catch {
            forwardingProblem = "IPv4 forwarding is off and cannot be turned on (\(error)): pods reach nothing "
                + "beyond their node, NodePort SNAT/DSR and XDP acceleration cannot forward; "
                + "run the agent as root with a writable /proc/sys/net, or set net.ipv4.ip_forward=1 in its namespace"
        }
    }

    /// Re-reads persisted endpoints whose host-side veth still exists; those
    /// whose veth is gone (the container went away while the agent was down)
    /// are dropped and their addresses released.
    func restore() async throws {
        let saved = try state.load() ?? []
        let nl = try Netlink()
        var kept: [Endpoint] = []
        for var ep in saved {
            guard let link = try nl.link(.name(ep.hostIfName)) else {
                try await addresses.release(owner: ep.containerID)
                continue
            }
            ep.hostIfIndex = link.index
            // Saved by an agent that did not add the cluster label yet: the same labels a new pod gets.
            ep.labels = Self.withDefaultLabels(ep.labels, namespace: ep.podNamespace, cluster: clusterName)
            ep.identity = try await identities.identity(for: ep.labels)
            kept.append(ep)
        }
        for ep in kept { await publish(ep) }
        try await persist()
        for ep in kept where PodmanLabels.wanted(labels: ep.labels, podNamespace: ep.podNamespace) {
            lookUpLabels(ep.containerID)
        }
    }

    func allocate(owner: String) async throws -> IPAMResponse {
        let a = try await addresses.allocate(owner: owner)
        return IPAMResponse(address: a.description, podCIDR: addresses.podCIDR.description,
                            gateway: await addresses.routerAddress.description)
    }

    func create(_ request: EndpointCreateRequest) async throws -> Endpoint {
        var req = request
        // A runtime that names the pod but passes no labels: the pod's manifest has them.
        if req.labels.isEmpty, let ns = req.podNamespace, let pod = req.podName,
           let labels = PodManifests.labels(namespace: ns, name: pod, in: resourceDirectory) {
            req.labels = labels
        }
        req.labels = Self.withDefaultLabels(req.labels, namespace: req.podNamespace, cluster: clusterName)
        // A hostPort on another address would take that address's traffic from this node's pods.
        for (i, m) in (req.portMappings ?? []).enumerated() {
            guard let ip = m.hostIP, !ip.isEmpty, ip != "0.0.0.0" else { continue }
            guard let nodeAddress, IPv4Address(ip) == nodeAddress else {
                throw EndpointError(status: 400, "portMappings[\(i)].hostIP \(ip) is not this node's address"
                    + (nodeAddress.map { " (\($0))" } ?? "") + "; leave it empty (every address of the node) or name the node's")
            }
        }
        guard let allocated = await addresses.address(of: req.containerID), allocated.description == req.address else {
            throw EndpointError(status: 400, "address \(req.address) is not allocated to container \(req.containerID); ask POST /v1/ipam first")
        }
        let nl = try Netlink()
        guard let link = try nl.link(.name(req.hostIfName)) else {
            throw EndpointError(status: 400, "host-side interface \(req.hostIfName) does not exist in the node's namespace")
        }
        let previous = await endpoints.get(req.containerID)
        if let previous { await identities.release(previous.identity) }
        let identity = try await identities.identity(for: req.labels)
        var id = previous?.id ?? 0
        if previous == nil { id = try await nextID() }
        let ep = Endpoint(id: id, containerID: req.containerID, netns: req.netns, ifName: req.ifName,
                          hostIfName: req.hostIfName, hostIfIndex: link.index, address: req.address, mac: req.mac,
                          hostMac: link.mac?.description ?? "00:00:00:00:00:00", labels: req.labels, identity: identity,
                          podNamespace: req.podNamespace, podName: req.podName, portMappings: req.portMappings,
                          namedPorts: req.namedPorts)
        try nl.replaceRoute(Netlink.Route(destination: IPv4Prefix(ep.ipv4, length: 32), outputIndex: link.index,
                                          source: await addresses.routerAddress))
        await publish(ep)
        try await persist()
        labelLookups.removeValue(forKey: req.containerID)?.cancel()
        if PodmanLabels.wanted(labels: req.labels, podNamespace: req.podNamespace) { lookUpLabels(req.containerID) }
        return ep
    }

    /// Asks podman for the container's labels in the background, with retries, and gives the endpoint
    /// those labels and their identity (until then it has reserved:init). Never blocks the CNI call:
    /// podman holds the container's lock while ADD runs.
    private func lookUpLabels(_ containerID: String) {
        labelLookups[containerID] = Task { [weak self] in
            for delay in PodmanLabels.retryDelays {
                do { try await Task.sleep(for: delay) } catch { return }
                guard let self, await self.endpoints.get(containerID) != nil else { return }
                switch await PodmanLabels.lookup(containerID: containerID) {
                case .labels(let labels):
                    await self.applyRuntimeLabels(containerID, labels)
                    return
                case .notPodman:
                    await self.lookupFinished(containerID)
                    return
                case .retry:
                    continue
                }
            }
            await self?.lookupFinished(containerID)
        }
    }

    private func lookupFinished(_ containerID: String) {
        labelLookups[containerID] = nil
    }

    /// Sets the labels of an endpoint that still has none; its identity follows them.
    private func applyRuntimeLabels(_ containerID: String, _ labels: [String]) async {
        labelLookups[containerID] = nil
        guard !Task.isCancelled, !labels.isEmpty, var ep = await endpoints.get(containerID), ep.labels.isEmpty else { return }
        let labels = Self.withDefaultLabels(labels, namespace: ep.podNamespace, cluster: clusterName)
        guard let identity = try? await identities.identity(for: labels) else { return }
        await identities.release(ep.identity)
        ep.labels = labels
        ep.identity = identity
        await publish(ep)
        try? await persist()
    }

    /// Removes the endpoint (if any) and releases the owner's address.
    func delete(containerID: String) async throws -> EndpointDeleteResponse {
        labelLookups.removeValue(forKey: containerID)?.cancel()
        let released = try await addresses.release(owner: containerID)
        guard let ep = await endpoints.get(containerID) else {
            return EndpointDeleteResponse(hostIfName: nil, released: released?.description)
        }
        await endpoints.delete(key: containerID)
        await shared.endpoints.delete(key: ep.id)
        await ipcache.delete(key: IPv4Prefix(ep.ipv4, length: 32))
        await cluster.withdraw(ip: ep.address)
        await attachments.delete(keys: [TCDirection.ingress, .egress].map { DeviceAttachment(device: ep.hostIfName, direction: $0, role: .endpoint).key })
        if let nl = try? Netlink() {
            try? nl.deleteRoute(Netlink.Route(destination: IPv4Prefix(ep.ipv4, length: 32), outputIndex: ep.hostIfIndex))
        }
        await identities.release(ep.identity)
        try await persist()
        return EndpointDeleteResponse(hostIfName: ep.hostIfName, released: released?.description ?? ep.address)
    }

    /// The attachments every endpoint needs (for the devices table at start).
    func attachmentsForEndpoints() async -> [DeviceAttachment] {
        await endpoints.all().flatMap { ep in
            [TCDirection.ingress, .egress].map { DeviceAttachment(device: ep.hostIfName, direction: $0, role: .endpoint) }
        }
    }

    /// Workloads carry their namespace (upstream's io.kubernetes.pod.namespace; "default" when the
    /// runtime names none) and their cluster (io.cilium.k8s.policy.cluster = cluster.name) as
    /// labels, so that namespaced policies and upstream's cluster selectors select them. Without
    /// labels an endpoint stays init. A label the workload already has is kept as it is.
    static func withDefaultLabels(_ labels: [String], namespace: String?, cluster: String) -> [String] {
        guard !labels.isEmpty else { return labels }
        var out = labels
        for (key, value) in [("io.kubernetes.pod.namespace", namespace ?? "default"), ("io.cilium.k8s.policy.cluster", cluster)]
        where !labels.contains(where: { LocalIdentityAllocator.normalize($0).hasPrefix("k8s:\(key)=") }) {
            out.append("\(key)=\(value)")
        }
        return out
    }

    private func publish(_ ep: Endpoint) async {
        await endpoints.upsert(ep)
        let labels = ep.labels.map(LocalIdentityAllocator.normalize).sorted()
        await shared.identities.upsert(IdentityRecord(id: ep.identity, labels: ep.labels.isEmpty ? ["reserved:init"] : labels))
        await shared.endpoints.upsert(EndpointRecord(id: ep.id, identity: ep.identity, labels: labels, address: ep.address,
                                                     podNamespace: ep.podNamespace, podName: ep.podName,
                                                     portMappings: ep.portMappings, namedPorts: ep.namedPorts))
        await ipcache.upsert(IPCacheEntry(prefix: IPv4Prefix(ep.ipv4, length: 32), identity: ep.identity))
        await cluster.publish(ip: ep.address, identity: ep.identity, podNamespace: ep.podNamespace, podName: ep.podName)
        await attachments.upsert(contentsOf: [TCDirection.ingress, .egress].map {
            DeviceAttachment(device: ep.hostIfName, direction: $0, role: .endpoint)
        })
    }

    private func nextID() async throws -> UInt16 {
        let used = Set(await endpoints.all().map(\.id))
        guard let id = (1...UInt16.max).first(where: { !used.contains($0) }) else {
            throw EndpointError(status: 507, "no free endpoint id")
        }
        return id
    }

    private func persist() async throws {
        try state.save(await endpoints.all().sorted { $0.id < $1.id })
    }
}

struct EndpointError: Error, CustomStringConvertible {
    var status: Int
    var description: String
    init(status: Int, _ d: String) {
        self.status = status
        description = d
    }
}
