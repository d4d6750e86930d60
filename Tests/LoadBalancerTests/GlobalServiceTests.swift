import API
import CBPF
import Foundation
import LinuxNet
import Manifests
import Testing
@testable import LoadBalancer

/// Cluster mesh's global services: annotations, the merge of remote clusters' backends (affinity),
/// what this cluster publishes, and what a restarted agent keeps.
@Suite struct GlobalServiceTests {
    static func ip(_ s: String) -> UInt32 { IPv4Address(s)!.value }

    static func service(_ annotations: [String: String], name: String = "web", selector: [String: String]? = nil,
                        ports: [ServicePortSpec] = [ServicePortSpec(name: "http", port: 80, targetPort: .number(8080)),
                                                    ServicePortSpec(name: "dns", port: 53, proto: .udp, targetPort: .number(5353))],
                        affinityTimeout: UInt32? = nil) -> ServiceManifest {
        ServiceManifest(name: name, namespace: "shop", clusterIP: ["web": "10.96.0.10", "consumer": "10.96.0.11"][name] ?? "10.96.0.12", ports: ports, selector: selector,
                        affinityTimeout: affinityTimeout, labels: ["team": "a"], annotations: annotations)
    }
    static let global = [GlobalServiceAnnotation.global: "true"]
    static func global(affinity: String) -> [String: String] { [GlobalServiceAnnotation.global: "true", GlobalServiceAnnotation.affinity: affinity] }

    static func slice(_ addresses: [String], ready: Bool = true, name: String = "web") -> EndpointSliceManifest {
        EndpointSliceManifest(name: "\(name)-1", namespace: "shop", serviceName: name,
                              ports: [.init(name: "http", port: 8080), .init(name: "dns", port: 5353, proto: .udp)],
                              endpoints: addresses.map { .init(addresses: [$0], ready: ready) })
    }

    static func remote(_ cluster: String, _ addresses: [String], name: String = "web", port: UInt16 = 8080,
                       portName: String = "http", proto: String = "TCP", shared: Bool = true) -> ClusterService {
        ClusterService(cluster: cluster, namespace: "shop", name: name,
                       frontends: ["10.100.0.10": [portName: ClusterServicePort(protocol: proto, port: 80)]],
                       backends: Dictionary(uniqueKeysWithValues: addresses.map { ($0, [portName: ClusterServicePort(protocol: proto, port: port)]) }),
                       shared: shared, clusterID: 2)
    }

    static func resolver() -> ServiceResolver {
        var r = ServiceResolver()
        r.clusterName = "c1"
        r.clusterID = 1
        return r
    }

    /// shop/web's ClusterIP frontend of port 80: (the backends its slots name, all its resolved backends).
    static func http(_ out: ServiceResolver.Output) -> (usable: Set<UInt32>, all: [ResolvedBackend]) {
        let f = out.frontends.first { $0.service == "shop/web" && $0.type == "ClusterIP" && $0.port == 80 }!
        let slots = out.slots.filter { $0.key.address == f.address && $0.key.port == 80 && $0.key.slot != 0 }
        let ids = Set(slots.map(\.value.backendID))
        return (Set(f.backends.filter { ids.contains($0.id) }.map(\.address)), f.backends)
    }

    // MARK: Annotations

    @Test func annotationsParseInBothSpellings() throws {
        let yaml = """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          labels: {app: web}
          annotations:
            service.cilium.io/global: "true"
            service.cilium.io/affinity: local
        spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: old
          annotations: {io.cilium/global-service: "True", io.cilium/shared-service: "false", io.cilium/service-affinity: Remote}
        spec: {clusterIP: 10.96.0.11, ports: [{port: 80}]}
        """
        let docs = try ServiceManifestParser.parse(yaml, file: "svc.yaml")
        #expect(docs.services[0].annotations == ["service.cilium.io/global": "true", "service.cilium.io/affinity": "local"])
        #expect(docs.services[0].labels == ["app": "web"])
        #expect(GlobalServiceSettings(docs.services[0]) == GlobalServiceSettings(global: true, shared: true, affinity: .local))
        #expect(GlobalServiceSettings(docs.services[1]) == GlobalServiceSettings(global: true, shared: false, affinity: .remote))
        // Not global: neither shared nor an affinity.
        #expect(GlobalServiceSettings(annotations: [GlobalServiceAnnotation.affinity: "local"]) == GlobalServiceSettings())
        #expect(GlobalServiceSettings(annotations: [GlobalServiceAnnotation.global: "false"]).shared == false)
        // Kept in services.json.
        let data = try JSONEncoder().encode(docs.services[0])
        #expect(try JSONDecoder().decode(ServiceManifest.self, from: data) == docs.services[0])
    }

    @Test func aNonStringAnnotationIsAnErrorWithItsPlace() {
        let yaml = """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          annotations:
            service.cilium.io/global: true
        spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
        """
        #expect {
            _ = try ServiceManifestParser.parse(yaml, file: "svc.yaml")
        } throws: { e in
            let text = "\(e)"
            return text.contains("svc.yaml:6:") && text.contains("metadata.annotations.service.cilium.io/global") && text.contains("\"true\"")
        }
    }

    @Test func aBadAffinityIsIgnoredAndSaid() {
        var r = Self.resolver()
        let out = r.resolve(services: [Self.service(Self.global(affinity: "nearest"))], slices: [Self.slice(["10.0.1.5"])],
                            workloads: [], remote: [Self.remote("c2", ["10.1.0.5"])], now: 0)
        #expect(Self.http(out).usable == [Self.ip("10.0.1.5"), Self.ip("10.1.0.5")], "served, affinity none")
        #expect(out.globalServiceProblems.count == 1)
        let m = out.globalServiceProblems[0]
        #expect(m.contains("shop/web") && m.contains("\"nearest\"") && m.contains("none, local, remote"), "\(m)")
    }

    // MARK: Merge

    @Test func affinityNoneUsesLocalAndRemoteBackends() {
        // Upstream #46623: affinity none (explicit or by default) never drops the remote backends.
        for annotations in [Self.global, Self.global(affinity: "none")] {
            var r = Self.resolver()
            let out = r.resolve(services: [Self.service(annotations)], slices: [Self.slice(["10.0.1.5"])], workloads: [],
                                remote: [Self.remote("c2", ["10.1.0.5"]), Self.remote("c3", ["10.2.0.5"])], now: 0)
            let h = Self.http(out)
            #expect(h.usable == [Self.ip("10.0.1.5"), Self.ip("10.1.0.5"), Self.ip("10.2.0.5")])
            #expect(h.all.allSatisfy { !$0.preferred })
            #expect(h.all.compactMap(\.cluster).sorted() == ["c2", "c3"])
            #expect(out.backends.first { $0.address == Self.ip("10.1.0.5") }?.port == 8080)
        }
    }

    @Test func affinityLocalPrefersLocalBackendsAndFallsBackToRemote() {
        var r = Self.resolver()
        let svc = Self.service(Self.global(affinity: "local"))
        let remote = [Self.remote("c2", ["10.1.0.5"])]
        let out = r.resolve(services: [svc], slices: [Self.slice(["10.0.1.5"])], workloads: [], remote: remote, now: 0)
        #expect(Self.http(out).usable == [Self.ip("10.0.1.5")])
        #expect(Self.http(out).all.filter(\.preferred).map(\.address) == [Self.ip("10.0.1.5")])
        #expect(Self.http(out).all.count == 2, "the remote backend is listed, not used")
        // No active local backend: the remote ones.
        let none = r.resolve(services: [svc], slices: [Self.slice(["10.0.1.5"], ready: false)], workloads: [], remote: remote, now: 1)
        #expect(Self.http(none).usable == [Self.ip("10.1.0.5")])
        // An operator's maintenance of the local backend counts too.
        let maint = r.resolve(services: [svc], slices: [Self.slice(["10.0.1.5"])], workloads: [],
                              backendStates: ["10.0.1.5:8080/TCP": LB_BACKEND_MAINTENANCE], remote: remote, now: 2)
        #expect(Self.http(maint).usable == [Self.ip("10.1.0.5")])
    }

    @Test func affinityRemotePrefersRemoteBackendsAndFallsBackToLocal() {
        var r = Self.resolver()
        let svc = Self.service(Self.global(affinity: "remote"))
        let out = r.resolve(services: [svc], slices: [Self.slice(["10.0.1.5"])], workloads: [],
                            remote: [Self.remote("c2", ["10.1.0.5", "10.1.0.6"])], now: 0)
        #expect(Self.http(out).usable == [Self.ip("10.1.0.5"), Self.ip("10.1.0.6")])
        #expect(Set(Self.http(out).all.filter(\.preferred).map(\.address)) == [Self.ip("10.1.0.5"), Self.ip("10.1.0.6")])
        let alone = r.resolve(services: [svc], slices: [Self.slice(["10.0.1.5"])], workloads: [], remote: [], now: 1)
        #expect(Self.http(alone).usable == [Self.ip("10.0.1.5")])
    }

    @Test func remotePortsMatchByNameAndProtocol() {
        var r = Self.resolver()
        let remote = [Self.remote("c2", ["10.1.0.5"], port: 9090),                                   // http/TCP: port 80
                      Self.remote("c3", ["10.2.0.5"], port: 5300, portName: "dns", proto: "UDP"),     // dns/UDP: port 53
                      Self.remote("c4", ["10.3.0.5"], port: 9999, portName: "http", proto: "UDP"),    // wrong protocol
                      Self.remote("c5", ["10.4.0.5"], port: 9999, portName: "metrics")]               // no such port
        let out = r.resolve(services: [Self.service(Self.global)], slices: [Self.slice([])], workloads: [], remote: remote, now: 0)
        let web = out.frontends.first { $0.port == 80 }!, dns = out.frontends.first { $0.port == 53 }!
        #expect(web.backends.map { "\(ServiceResolver.text($0.address)):\($0.port)" } == ["10.1.0.5:9090"])
        #expect(dns.backends.map { "\(ServiceResolver.text($0.address)):\($0.port)" } == ["10.2.0.5:5300"])
        // An unnamed port matches the remote's "" port.
        let unnamed = Self.service(Self.global, ports: [ServicePortSpec(port: 80, targetPort: .number(8080))])
        let u = r.resolve(services: [unnamed], slices: [], workloads: [], remote: [Self.remote("c2", ["10.1.0.5"], portName: "")], now: 1)
        #expect(u.frontends[0].backends.map(\.address) == [Self.ip("10.1.0.5")])
    }

    @Test func onlyLocalGlobalServicesTakeRemoteBackends() {
        var r = Self.resolver()
        let remote = [Self.remote("c2", ["10.1.0.5"]), Self.remote("c1", ["10.9.0.5"]),   // our own record: never merged
                      Self.remote("c3", ["10.2.0.5"], shared: false),                       // not shared
                      Self.remote("c2", ["10.1.0.9"], name: "elsewhere")]                   // no local service of that name
        let plain = r.resolve(services: [Self.service([:])], slices: [Self.slice(["10.0.1.5"])], workloads: [], remote: remote, now: 0)
        #expect(Self.http(plain).all.map(\.address) == [Self.ip("10.0.1.5")])
        #expect(!plain.frontends.contains { $0.service == "shop/elsewhere" })
        let global = r.resolve(services: [Self.service(Self.global)], slices: [Self.slice(["10.0.1.5"])], workloads: [], remote: remote, now: 1)
        #expect(Self.http(global).all.map(\.address) == [Self.ip("10.0.1.5"), Self.ip("10.1.0.5")])
        #expect(!global.frontends.contains { $0.service == "shop/elsewhere" })
        #expect(!global.backends.contains { $0.address == Self.ip("10.1.0.9") })
    }

    @Test func remoteBackendsAreNeverNodeLocal() {
        var r = Self.resolver()
        var svc = Self.service(Self.global)
        svc.internalTrafficPolicy = .local
        let out = r.resolve(services: [svc], slices: [Self.slice(["10.0.1.5"])],
                            workloads: [Workload(address: Self.ip("10.0.1.5"), labels: [], local: true)],
                            remote: [Self.remote("c2", ["10.1.0.5"])], now: 0)
        #expect(Self.http(out).usable == [Self.ip("10.0.1.5")])
    }

    @Test func maglevAndSessionAffinityCoverRemoteBackends() {
        var r = Self.resolver()
        r.maglev = true
        r.maglevSize = 251
        let out = r.resolve(services: [Self.service(Self.global, affinityTimeout: 60)], slices: [Self.slice(["10.0.1.5"])], workloads: [],
                            remote: [Self.remote("c2", ["10.1.0.5"])], now: 0)
        let f = out.frontends.first { $0.type == "ClusterIP" && $0.port == 80 }!
        let remoteID = f.backends.first { $0.cluster == "c2" }!.id
        let table = out.maglevTables.first { $0.frontend == f.id }!.table
        #expect(table.contains(remoteID) && Set(table) == Set(f.backends.map(\.id)))
        #expect(f.flags & LB_F_AFFINITY.rawValue != 0 && f.flags & LB_F_MAGLEV.rawValue != 0)
        #expect(out.slots.first { $0.key.address == f.address && $0.key.port == 80 && $0.key.slot == 0 }?.value.count == 2)
    }

    // MARK: Selector services

    @Test func selectorServicesPickOnlyThisClustersWorkloads() {
        var r = Self.resolver()
        let ns = "k8s:io.kubernetes.pod.namespace=shop"
        let workloads = [Workload(address: Self.ip("10.0.1.5"), labels: ["k8s:app=web", ns], local: true),
                         Workload(address: Self.ip("10.0.2.5"), labels: ["k8s:app=web", ns, "k8s:io.cilium.k8s.policy.cluster=c1"], local: false),
                         Workload(address: Self.ip("10.1.0.5"), labels: ["k8s:app=web", ns, "k8s:io.cilium.k8s.policy.cluster=c2"], local: false)]
        let plain = r.resolve(services: [Self.service([:], selector: ["app": "web"])], slices: [], workloads: workloads, now: 0)
        #expect(Self.http(plain).all.map(\.address) == [Self.ip("10.0.1.5"), Self.ip("10.0.2.5")])
        // A global one has c2's pods through c2's record only.
        let global = r.resolve(services: [Self.service(Self.global, selector: ["app": "web"])], slices: [], workloads: workloads,
                               remote: [Self.remote("c2", ["10.1.0.7"])], now: 1)
        #expect(Self.http(global).all.map(\.address) == [Self.ip("10.0.1.5"), Self.ip("10.0.2.5"), Self.ip("10.1.0.7")])
        #expect(global.exports.first?.backends.keys.sorted() == ["10.0.1.5", "10.0.2.5"])
    }

    // MARK: Export

    @Test func exportsHoldOnlyLocalBackendsOfGlobalSharedServices() {
        var r = Self.resolver()
        let services = [Self.service(Self.global),
                        Self.service([GlobalServiceAnnotation.globalAlias: "true", GlobalServiceAnnotation.shared: "false"], name: "consumer"),
                        Self.service([:], name: "plain")]
        let slices = [EndpointSliceManifest(name: "web-1", namespace: "shop", serviceName: "web",
                                            ports: [.init(name: "http", port: 8080), .init(name: "dns", port: 5353, proto: .udp)],
                                            endpoints: [.init(addresses: ["10.0.1.5"]), .init(addresses: ["10.0.1.6"], ready: false)]),
                      Self.slice(["10.0.1.7"], name: "consumer"), Self.slice(["10.0.1.8"], name: "plain")]
        let out = r.resolve(services: services, slices: slices, workloads: [],
                            remote: [Self.remote("c2", ["10.1.0.5"]), Self.remote("c2", ["10.1.0.6"], name: "consumer")], now: 0)
        #expect(out.exports == [ClusterService(
            cluster: "c1", namespace: "shop", name: "web",
            frontends: ["10.96.0.10": ["http": ClusterServicePort(protocol: "TCP", port: 80), "dns": ClusterServicePort(protocol: "UDP", port: 53)]],
            backends: ["10.0.1.5": ["http": ClusterServicePort(protocol: "TCP", port: 8080), "dns": ClusterServicePort(protocol: "UDP", port: 5353)]],
            labels: ["team": "a"], selector: nil, includeExternal: true, shared: true, clusterID: 1)])
        // The consumer still takes the remote backends.
        #expect(out.frontends.first { $0.service == "shop/consumer" && $0.port == 80 }?.backends.count == 2)
        // An unnamed port is published under "".
        let unnamed = r.resolve(services: [Self.service(Self.global, ports: [ServicePortSpec(port: 80, targetPort: .number(8080))])],
                                slices: [EndpointSliceManifest(name: "web-1", namespace: "shop", serviceName: "web", ports: [.init(port: 8080)],
                                                               endpoints: [.init(addresses: ["10.0.1.5"])])], workloads: [], now: 1)
        #expect(unnamed.exports.first?.frontends == ["10.96.0.10": ["": ClusterServicePort(protocol: "TCP", port: 80)]])
    }

    // MARK: Restarts

    @Test func keptRemoteRecordsServeUntilTheTableIsInitializedThenArePruned() throws {
        var store = ServiceStore()
        store.apply(ServiceDocuments(services: [Self.service(Self.global), Self.service([:], name: "plain")],
                                     slices: [Self.slice(["10.0.1.5"])]), source: "api")
        let c2 = Self.remote("c2", ["10.1.0.5"]), c3 = Self.remote("c3", ["10.2.0.5"])
        _ = store.remoteRecords(table: [c2, c3, Self.remote("c2", ["10.1.0.9"], name: "plain"), Self.remote("c1", ["10.9.0.1"])],
                                initialized: true, localCluster: "c1")
        #expect(store.remoteServices.keys.sorted() == ["c2/shop/web", "c3/shop/web"], "only other clusters' records of global services")

        // services.json keeps them; a restarted agent reads them back.
        let data = try JSONEncoder().encode(store.persisted(ids: ServiceResolver.IDs()))
        var restarted = ServiceStore(try JSONDecoder().decode(ServiceStore.Persisted.self, from: data))
        #expect(restarted.remoteServices == store.remoteServices)

        // Cluster mesh has not listed every cluster yet: the table is empty or partial, the kept records serve.
        var r = Self.resolver()
        let early = restarted.remoteRecords(table: [], initialized: false, localCluster: "c1")
        let out = r.resolve(services: Array(restarted.services.values), slices: Array(restarted.slices.values), workloads: [],
                            remote: early, now: 0)
        #expect(Self.http(out).usable == [Self.ip("10.0.1.5"), Self.ip("10.1.0.5"), Self.ip("10.2.0.5")])
        let newer = Self.remote("c2", ["10.1.0.6"])
        #expect(restarted.remoteRecords(table: [newer], initialized: false, localCluster: "c1") == [newer, c3])

        // Initialized: what the table does not hold is gone.
        let later = restarted.remoteRecords(table: [newer], initialized: true, localCluster: "c1")
        #expect(later == [newer] && restarted.remoteServices.keys.sorted() == ["c2/shop/web"])
        let pruned = r.resolve(services: Array(restarted.services.values), slices: Array(restarted.slices.values), workloads: [],
                               remote: later, now: 1)
        #expect(Self.http(pruned).usable == [Self.ip("10.0.1.5"), Self.ip("10.1.0.6")])
    }

    @Test func preferredReachesTheAPIModel() {
        var r = Self.resolver()
        let out = r.resolve(services: [Self.service(Self.global(affinity: "remote"))], slices: [Self.slice(["10.0.1.5"])], workloads: [],
                            remote: [Self.remote("c2", ["10.1.0.5"])], now: 0)
        let m = LoadBalancerSubsystem.model(out.frontends.first { $0.type == "ClusterIP" && $0.port == 80 }!)
        #expect(m.backends.map(\.preferred) == [nil, true])
        #expect(m.backends.map(\.cluster) == [nil, "c2"])
    }
}
