import API
import Manifests
import CBPF
import Datapath
import LinuxNet
import Foundation

/// A workload the load balancer may send to: its address, labels and whether
/// it runs on this node (for traffic policy Local and selector services).
package struct Workload: Sendable, Hashable {
    package var address: UInt32
    package var labels: [String]
    package var local: Bool
}

/// A hostPort of a local pod (CNI portMappings): a frontend on the node's addresses (0, served
/// as a NodePort is) or on one address, whose one backend is the pod.
package struct HostPort: Sendable, Hashable {
    package var pod: String
    package var podAddress: UInt32
    package var hostAddress: UInt32
    package var hostPort: UInt16
    package var containerPort: UInt16
    package var proto: ServiceProtocol
}

/// A frontend as `cilium service list` shows it.
package struct ResolvedFrontend: Sendable, Hashable {
    package var id: UInt16
    package var service: String
    package var type: String        // ClusterIP, NodePort, ExternalIP, LoadBalancer
    package var address: UInt32     // 0 = NodePort
    package var port: UInt16
    package var proto: ServiceProtocol
    package var backends: [ResolvedBackend]
    package var flags: UInt32
    package var affinityTimeout: UInt32
}

package struct ResolvedBackend: Sendable, Hashable {
    package var id: UInt32
    package var address: UInt32
    package var port: UInt16
    package var state: lb_backend_state
    /// On the side the service's cluster-mesh affinity prefers (local or remote backends).
    package var preferred = false
    /// The remote cluster it is in (nil: this cluster's).
    package var cluster: String? = nil
}

/// Services + EndpointSlices (+ workloads for selector services) -> the
/// rows of the load balancer's maps. Ids (frontends for reverse NAT, backends)
/// are stable for the same frontend/backend, and are kept across restarts
/// (open connections refer to them in the datapath).
package struct ServiceResolver: Sendable {
    package init() {}

    package struct IDs: Codable, Sendable, Equatable {
        package var frontends: [String: UInt16] = [:]
        package var backends: [String: UInt32] = [:]
        /// Backends no service names any more, and since when (seconds): they
        /// stay in the backends map, terminating, for `retiredGrace`, so open
        /// connections to them continue.
        package var retired: [String: Double]? = [:]
    }

    package static let retiredGrace: Double = 300

    package var ids = IDs()
    package var maglev = false
    package var maglevSize = 16381
    package var maglevSeed: [UInt8] = Array(repeating: 0, count: 12)
    /// This cluster (`cluster.name`, `cluster.id`): what global services are published as, and which
    /// workloads and remote records are its own.
    package var clusterName = "default"
    package var clusterID: UInt32 = 0

    package struct Output: Sendable {
        package var frontends: [ResolvedFrontend] = []
        package var slots: [FrontendSlot] = []
        package var backends: [BackendEntry] = []
        package var reverseNAT: [ReverseNATEntry] = []
        package var maglevTables: [MaglevEntry] = []
        /// Addresses the node itself must route to the datapath (ClusterIP, external, LoadBalancer IPs).
        package var virtualIPs: Set<UInt32> = []
        /// hostPorts not served, and why.
        package var hostPortConflicts: [String] = []
        /// This cluster's global and shared services with their local backends (for `shared.globalServices`).
        package var exports: [ClusterService] = []
        /// Global-service annotations ignored, and why (the subsystem's health says them).
        package var globalServiceProblems: [String] = []
    }

    /// One backend candidate of a service port.
    private struct Candidate {
        var address: UInt32
        var port: UInt16
        var state: lb_backend_state
        /// On this node (traffic policy Local); never for a remote cluster's backend.
        var local: Bool
        /// The remote cluster it comes from (nil: this cluster).
        var cluster: String?
    }

    package static func ipv4(_ s: String) -> UInt32? { IPv4Address(s)?.value }

    /// The labels a workload needs to back `svc` by its selector (nil: no selector). Only a
    /// service without EndpointSlices picks its backends so.
    package static func selectorLabels(of svc: ServiceManifest) -> [String]? {
        guard let selector = svc.selector, !selector.isEmpty else { return nil }
        return selector.map { "k8s:\($0.key)=\($0.value)" } + ["k8s:io.kubernetes.pod.namespace=\(svc.namespace)"]
    }

    /// "10.0.1.5:8080/TCP" -> (address, port, protocol number).
    package static func parseBackendKey(_ key: String) -> (UInt32, UInt16, UInt8)? {
        let parts = key.split(separator: "/")
        guard parts.count == 2, let proto = ServiceProtocol(rawValue: String(parts[1])) else { return nil }
        let ap = parts[0].split(separator: ":")
        guard ap.count == 2, let a = ipv4(String(ap[0])), let p = UInt16(ap[1]) else { return nil }
        return (a, p, proto.number)
    }
    package static func text(_ a: UInt32) -> String { IPv4Address(value: a).description }

    /// Ids in use, rebuilt from `ids` at the start of each resolve (cheap
    /// allocation of new ones: the lowest free frontend id, the next backend id).
    private var usedFrontendIDs = Set<UInt16>()
    private var nextFrontendID: UInt16 = 1
    private var nextBackendID: UInt32 = 1

    package mutating func frontendID(_ key: String) -> UInt16 {
        if let id = ids.frontends[key] { return id }
        while usedFrontendIDs.contains(nextFrontendID) && nextFrontendID < UInt16.max { nextFrontendID += 1 }
        let id = nextFrontendID
        usedFrontendIDs.insert(id)
        ids.frontends[key] = id
        return id
    }

    package mutating func backendID(_ key: String) -> UInt32 {
        if let id = ids.backends[key] { return id }
        let id = nextBackendID
        nextBackendID += 1
        ids.backends[key] = id
        return id
    }

    package mutating func resolve(services: [ServiceManifest], slices: [EndpointSliceManifest], workloads: [Workload],
                          hostPorts: [HostPort] = [],
                          backendStates: [String: lb_backend_state] = [:],
                          remote: [ClusterService] = [],
                          now: Double = Date().timeIntervalSince1970) -> Output {
        var out = Output()
        usedFrontendIDs = Set(ids.frontends.values)
        nextFrontendID = 1
        nextBackendID = (ids.backends.values.max() ?? 0) + 1
        let slicesByService = Dictionary(grouping: slices) { "\($0.namespace)/\($0.serviceName)" }
        var backends: [UInt32: BackendEntry] = [:]
        var liveFrontends = Set<String>(), liveBackends = Set<String>()
        let localAddresses = Set(workloads.filter(\.local).map(\.address))
        let remoteByService = Self.remoteByService(remote, localCluster: clusterName)
        for svc in services.sorted(by: { $0.qualifiedName < $1.qualifiedName }) {
            let mine = slicesByService[svc.qualifiedName] ?? []
            let mesh = GlobalServiceSettings(svc)
            if let bad = mesh.invalidAffinity {
                out.globalServiceProblems.append(GlobalServiceSettings.invalidAffinityMessage(service: svc.qualifiedName, value: bad))
            }
            var export = ClusterService(cluster: clusterName, namespace: svc.namespace, name: svc.name,
                                        labels: svc.labels.isEmpty ? nil : svc.labels, selector: svc.selector,
                                        includeExternal: true, shared: true, clusterID: clusterID)
            for sp in svc.ports {
                // The service port's backends.
                var candidates: [Candidate] = []
                if !mine.isEmpty {
                    for slice in mine {
                        let port: UInt16?
                        switch sp.targetPort {
                        case .name(let n)?: port = slice.ports.first { $0.name == n && $0.proto == sp.proto }?.port
                        case .number(let n)?:
                            port = slice.ports.first { $0.port == n && $0.proto == sp.proto }?.port
                                ?? (slice.ports.count == 1 && slice.ports[0].proto == sp.proto ? slice.ports[0].port : n)
                        case nil:
                            port = slice.ports.first { $0.name == sp.name && $0.proto == sp.proto }?.port
                                ?? slice.ports.first { $0.proto == sp.proto }?.port ?? sp.port
                        }
                        guard let port else { continue }
                        for ep in slice.endpoints {
                            let state: lb_backend_state
                            if ep.ready && !ep.terminating { state = LB_BACKEND_ACTIVE }
                            else if ep.serving { state = LB_BACKEND_TERMINATING }
                            else { continue }
                            for a in ep.addresses.compactMap(Self.ipv4) {
                                candidates.append(Candidate(address: a, port: port, state: state, local: localAddresses.contains(a)))
                            }
                        }
                    }
                } else if let wanted = Self.selectorLabels(of: svc) {
                    let port: UInt16
                    switch sp.targetPort {
                    case .number(let n)?: port = n
                    case .name?: continue // a named port needs an EndpointSlice to say which number
                    case nil: port = sp.port
                    }
                    // Only this cluster's workloads: another cluster's pods (in the ipcache with cluster mesh)
                    // back a global service through their cluster's records, never by the selector.
                    for w in workloads where wanted.allSatisfy(w.labels.contains) && !Self.isOtherCluster(w.labels, local: clusterName) {
                        candidates.append(Candidate(address: w.address, port: port, state: LB_BACKEND_ACTIVE, local: w.local))
                    }
                }
                let portName = sp.name ?? ""
                if mesh.shared {
                    let port = ClusterServicePort(protocol: sp.proto.rawValue, port: sp.port)
                    if let ip = svc.clusterIP, ip != "None", Self.ipv4(ip) != nil { export.frontends[ip, default: [:]][portName] = port }
                    for c in candidates where c.state == LB_BACKEND_ACTIVE {
                        export.backends[Self.text(c.address), default: [:]][portName] = ClusterServicePort(protocol: sp.proto.rawValue, port: c.port)
                    }
                }
                // A global service's remote backends: the same port (by name and protocol) of the other clusters' records.
                if mesh.global {
                    for record in remoteByService[svc.qualifiedName] ?? [] {
                        for (address, ports) in record.backends {
                            guard let p = ports[portName], p.Protocol == sp.proto.rawValue, let a = Self.ipv4(address) else { continue }
                            candidates.append(Candidate(address: a, port: p.Port, state: LB_BACKEND_ACTIVE, local: false, cluster: record.cluster))
                        }
                    }
                }
                var resolved: [ResolvedBackend] = []
                var resolvedIDs = Set<UInt32>()
                var localIDs = Set<UInt32>()
                for c in candidates.sorted(by: { ($0.address, $0.port) < ($1.address, $1.port) }) {
                    let key = "\(Self.text(c.address)):\(c.port)/\(sp.proto.rawValue)"
                    let id = backendID(key)
                    liveBackends.insert(key)
                    if c.local { localIDs.insert(id) }
                    let st = backendStates[key] ?? c.state
                    backends[id] = BackendEntry(id: id, address: c.address, port: c.port, proto: sp.proto.number, state: st.rawValue)
                    if resolvedIDs.insert(id).inserted {
                        let preferred = mesh.affinity == .local ? c.cluster == nil : mesh.affinity == .remote ? c.cluster != nil : false
                        resolved.append(ResolvedBackend(id: id, address: c.address, port: c.port, state: st, preferred: preferred,
                                                        cluster: c.cluster))
                    }
                }

                var fronts: [(type: String, address: UInt32, port: UInt16, flags: UInt32, local: Bool)] = []
                if let ip = svc.clusterIP, ip != "None", let a = Self.ipv4(ip) {
                    fronts.append(("ClusterIP", a, sp.port, LB_F_CLUSTER_IP.rawValue, svc.internalTrafficPolicy == .local))
                }
                for ip in svc.externalIPs.compactMap(Self.ipv4) {
                    fronts.append(("ExternalIP", ip, sp.port, LB_F_EXTERNAL_IP.rawValue, svc.externalTrafficPolicy == .local))
                }
                if svc.type == .loadBalancer {
                    for ip in svc.loadBalancerIPs.compactMap(Self.ipv4) {
                        fronts.append(("LoadBalancer", ip, sp.port, LB_F_LOADBALANCER.rawValue, svc.externalTrafficPolicy == .local))
                    }
                }
                if svc.type != .clusterIP, let np = sp.nodePort {
                    fronts.append(("NodePort", 0, np, LB_F_NODEPORT.rawValue, svc.externalTrafficPolicy == .local))
                }
                for f in fronts {
                    let fkey = "\(Self.text(f.address)):\(f.port)/\(sp.proto.rawValue)"
                    let id = frontendID(fkey)
                    liveFrontends.insert(fkey)
                    var flags = f.flags
                    if f.local { flags |= LB_F_LOCAL.rawValue }
                    if svc.affinityTimeout != nil { flags |= LB_F_AFFINITY.rawValue }
                    let active = resolved.filter { $0.state == LB_BACKEND_ACTIVE && (!f.local || localIDs.contains($0.id)) }
                    // Affinity local or remote: the preferred side's active backends when it has any, else the
                    // others; none: all of them (upstream #46623: none never drops the remote ones).
                    let preferred = active.filter(\.preferred)
                    let usable = mesh.affinity != .none && !preferred.isEmpty ? preferred : active
                    if maglev && !usable.isEmpty { flags |= LB_F_MAGLEV.rawValue }
                    let k = FrontendSlot.Key(address: f.address, port: f.port, proto: sp.proto.number, slot: 0)
                    out.slots.append(FrontendSlot(key: k, value: .init(count: UInt16(usable.count), revNat: id,
                                                                       affinityTimeout: svc.affinityTimeout ?? 0, flags: flags)))
                    for (i, b) in usable.enumerated() {
                        var sk = k
                        sk.slot = UInt16(i + 1)
                        out.slots.append(FrontendSlot(key: sk, value: .init(backendID: b.id)))
                    }
                    let fib = f.address == 0 || f.type == "ExternalIP" || f.type == "LoadBalancer"
                    out.reverseNAT.append(ReverseNATEntry(id: id, address: f.address, port: f.port,
                                                          flags: fib ? UInt16(LB_REVNAT_F_FIB.rawValue) : 0))
                    if maglev && !usable.isEmpty {
                        let table = MaglevTable.build(usable.map {
                            MaglevTable.Backend(id: $0.id, key: "\(Self.text($0.address)):\($0.port)", weight: 1)
                        }, size: maglevSize, seed: maglevSeed)
                        out.maglevTables.append(MaglevEntry(frontend: id, table: table))
                    }
                    if f.address != 0 { out.virtualIPs.insert(f.address) }
                    out.frontends.append(ResolvedFrontend(id: id, service: svc.qualifiedName, type: f.type, address: f.address,
                                                          port: f.port, proto: sp.proto, backends: resolved, flags: flags,
                                                          affinityTimeout: svc.affinityTimeout ?? 0))
                }
            }
            if mesh.shared { out.exports.append(export) }
        }
        // hostPorts, after the services: a frontend a service already has stays the service's.
        for hp in hostPorts.sorted(by: { ($0.hostAddress, $0.hostPort, $0.proto.number) < ($1.hostAddress, $1.hostPort, $1.proto.number) }) {
            let fkey = "\(Self.text(hp.hostAddress)):\(hp.hostPort)/\(hp.proto.rawValue)"
            guard !liveFrontends.contains(fkey) else {
                out.hostPortConflicts.append("\(hp.pod): hostPort \(hp.hostPort)/\(hp.proto.rawValue) is taken by a service or another pod")
                continue
            }
            let bkey = "\(Self.text(hp.podAddress)):\(hp.containerPort)/\(hp.proto.rawValue)"
            let bid = backendID(bkey)
            liveBackends.insert(bkey)
            let state = backendStates[bkey] ?? LB_BACKEND_ACTIVE
            backends[bid] = BackendEntry(id: bid, address: hp.podAddress, port: hp.containerPort, proto: hp.proto.number, state: state.rawValue)
            let id = frontendID(fkey)
            liveFrontends.insert(fkey)
            // On every node address it is found as a NodePort is (the LB stage, the socket LB);
            // on one address, as an external IP (that address is the node's own: no route to add).
            let flags = hp.hostAddress == 0 ? LB_F_NODEPORT.rawValue : LB_F_EXTERNAL_IP.rawValue
            let usable = state == LB_BACKEND_ACTIVE
            let k = FrontendSlot.Key(address: hp.hostAddress, port: hp.hostPort, proto: hp.proto.number, slot: 0)
            out.slots.append(FrontendSlot(key: k, value: .init(count: usable ? 1 : 0, revNat: id, affinityTimeout: 0, flags: flags)))
            if usable {
                var sk = k
                sk.slot = 1
                out.slots.append(FrontendSlot(key: sk, value: .init(backendID: bid)))
            }
            out.reverseNAT.append(ReverseNATEntry(id: id, address: hp.hostAddress, port: hp.hostPort,
                                                  flags: UInt16(LB_REVNAT_F_FIB.rawValue)))
            out.frontends.append(ResolvedFrontend(id: id, service: "hostport/\(hp.pod)", type: "HostPort", address: hp.hostAddress,
                                                  port: hp.hostPort, proto: hp.proto,
                                                  backends: [ResolvedBackend(id: bid, address: hp.podAddress, port: hp.containerPort, state: state)],
                                                  flags: flags, affinityTimeout: 0))
        }
        // Frontends nothing uses go; backends nothing uses retire: terminating for a grace period, then gone.
        ids.frontends = ids.frontends.filter { liveFrontends.contains($0.key) }
        var retired = ids.retired ?? [:]
        for key in liveBackends { retired[key] = nil }
        for (key, id) in ids.backends where !liveBackends.contains(key) {
            let since = retired[key] ?? now
            guard now - since < Self.retiredGrace, let b = Self.parseBackendKey(key) else {
                ids.backends[key] = nil
                retired[key] = nil
                continue
            }
            retired[key] = since
            backends[id] = BackendEntry(id: id, address: b.0, port: b.1, proto: b.2, state: LB_BACKEND_TERMINATING.rawValue)
        }
        ids.retired = retired
        out.backends = backends.values.sorted { $0.id < $1.id }
        return out
    }
}

