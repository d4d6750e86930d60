import Manifests
import CBPF
import Datapath
import LinuxNet
import Testing
@testable import LoadBalancer

/// Services + slices -> map rows.
@Suite struct ServiceResolverTests {
    static func ip(_ s: String) -> UInt32 { IPv4Address(s)!.value }

    static let web = ServiceManifest(name: "web", type: .nodePort, clusterIP: "10.96.0.10", externalIPs: ["192.0.2.10"],
                                     ports: [ServicePortSpec(name: "http", port: 80, proto: .tcp, targetPort: .name("http"), nodePort: 30080)],
                                     affinityTimeout: 30)
    static func slice(_ endpoints: [EndpointSliceManifest.Endpoint]) -> EndpointSliceManifest {
        EndpointSliceManifest(name: "web-1", serviceName: "web", ports: [.init(name: "http", port: 8080)], endpoints: endpoints)
    }

    @Test func frontendsBackendsAndReverseNAT() {
        var r = ServiceResolver()
        let out = r.resolve(services: [Self.web], slices: [Self.slice([.init(addresses: ["10.0.0.7"]), .init(addresses: ["10.0.1.8"])])],
                            workloads: [], now: 0)
        #expect(Set(out.frontends.map(\.type)) == ["ClusterIP", "ExternalIP", "NodePort"])
        #expect(out.backends.map(\.port) == [8080, 8080])
        let cluster = out.slots.filter { $0.key.address == Self.ip("10.96.0.10") }
        #expect(cluster.count == 3) // the frontend and two backend slots
        let master = cluster.first { $0.key.slot == 0 }!
        #expect(master.value.count == 2)
        #expect(master.value.affinityTimeout == 30)
        #expect(master.value.flags & LB_F_AFFINITY.rawValue != 0)
        let nodePort = out.slots.first { $0.key.address == 0 && $0.key.slot == 0 }!
        #expect(nodePort.key.port == 30080)
        #expect(out.reverseNAT.first { $0.id == nodePort.value.revNat }?.flags == UInt16(LB_REVNAT_F_FIB.rawValue))
        #expect(out.reverseNAT.first { $0.id == master.value.revNat }?.flags == 0)
        #expect(out.virtualIPs == [Self.ip("10.96.0.10"), Self.ip("192.0.2.10")])
    }

    /// Issue 17, gap 4: a hostPort is a NodePort-like frontend with the pod as its one backend; a
    /// port a service already has stays the service's, and the hostPort says why it is not served.
    @Test func hostPortsAreFrontendsAndNeverTakeAServicesPort() {
        var r = ServiceResolver()
        let pod = Self.ip("10.0.0.9")
        let out = r.resolve(services: [Self.web], slices: [Self.slice([.init(addresses: ["10.0.0.7"])])], workloads: [],
                            hostPorts: [HostPort(pod: "hp", podAddress: pod, hostAddress: 0, hostPort: 8081, containerPort: 8080, proto: .tcp),
                                        HostPort(pod: "late", podAddress: pod, hostAddress: 0, hostPort: 30080, containerPort: 80, proto: .tcp)],
                            now: 0)
        let hp = out.frontends.filter { $0.type == "HostPort" }
        #expect(hp.count == 1 && hp[0].port == 8081 && hp[0].address == 0 && hp[0].flags == LB_F_NODEPORT.rawValue)
        #expect(hp[0].backends.map(\.address) == [pod] && hp[0].backends.map(\.port) == [8080])
        let slots = out.slots.filter { $0.key.address == 0 && $0.key.port == 8081 }
        #expect(slots.count == 2 && slots.first { $0.key.slot == 0 }?.value.count == 1)
        #expect(out.hostPortConflicts == ["late: hostPort 30080/TCP is taken by a service or another pod"])
        #expect(out.frontends.first { $0.type == "NodePort" }?.service == Self.web.qualifiedName)
    }

    @Test func idsAreStableAndTerminatingBackendsTakeNoNewConnections() {
        var r = ServiceResolver()
        let both = r.resolve(services: [Self.web], slices: [Self.slice([.init(addresses: ["10.0.0.7"]), .init(addresses: ["10.0.1.8"])])],
                             workloads: [], now: 0)
        let again = r.resolve(services: [Self.web], slices: [Self.slice([.init(addresses: ["10.0.0.7"]),
                                                                         .init(addresses: ["10.0.1.8"], ready: false, serving: true, terminating: true)])],
                              workloads: [], now: 1)
        #expect(both.frontends.map(\.id) == again.frontends.map(\.id))
        #expect(Set(both.backends.map(\.id)) == Set(again.backends.map(\.id)))
        let master = again.slots.first { $0.key.address == Self.ip("10.96.0.10") && $0.key.slot == 0 }!
        #expect(master.value.count == 1)
        #expect(again.backends.first { $0.address == Self.ip("10.0.1.8") }?.state == LB_BACKEND_TERMINATING.rawValue)

        // Removed from the slice: kept as terminating for the grace period, then gone.
        let removed = r.resolve(services: [Self.web], slices: [Self.slice([.init(addresses: ["10.0.0.7"])])], workloads: [], now: 2)
        #expect(removed.backends.first { $0.address == Self.ip("10.0.1.8") }?.state == LB_BACKEND_TERMINATING.rawValue)
        let later = r.resolve(services: [Self.web], slices: [Self.slice([.init(addresses: ["10.0.0.7"])])], workloads: [],
                              now: 3 + ServiceResolver.retiredGrace)
        #expect(later.backends.map(\.address) == [Self.ip("10.0.0.7")])
    }

    @Test func selectorServicesPickMatchingWorkloadsAndLocalPolicyOnlyLocalOnes() {
        var svc = ServiceManifest(name: "api", type: .nodePort, clusterIP: "10.96.0.20",
                                  ports: [ServicePortSpec(port: 80, targetPort: .number(9000), nodePort: 31000)],
                                  selector: ["app": "api"], externalTrafficPolicy: .local)
        let ns = "k8s:io.kubernetes.pod.namespace=default"
        let workloads = [Workload(address: Self.ip("10.0.0.5"), labels: ["k8s:app=api", ns], local: true),
                         Workload(address: Self.ip("10.0.1.5"), labels: ["k8s:app=api", ns], local: false),
                         Workload(address: Self.ip("10.0.1.6"), labels: ["k8s:app=db", ns], local: false),
                         Workload(address: Self.ip("10.0.1.7"), labels: ["k8s:app=api", "k8s:io.kubernetes.pod.namespace=prod"], local: false)]
        var r = ServiceResolver()
        var out = r.resolve(services: [svc], slices: [], workloads: workloads, now: 0)
        #expect(out.backends.map(\.address).sorted() == [Self.ip("10.0.0.5"), Self.ip("10.0.1.5")])
        #expect(out.backends.allSatisfy { $0.port == 9000 })
        #expect(out.slots.first { $0.key.address == Self.ip("10.96.0.20") && $0.key.slot == 0 }?.value.count == 2)
        #expect(out.slots.first { $0.key.address == 0 && $0.key.slot == 0 }?.value.count == 1, "externalTrafficPolicy Local")
        svc.internalTrafficPolicy = .local
        out = r.resolve(services: [svc], slices: [], workloads: workloads, now: 0)
        #expect(out.slots.first { $0.key.address == Self.ip("10.96.0.20") && $0.key.slot == 0 }?.value.count == 1)
    }

    @Test func maglevTablesFollowTheConfig() {
        var r = ServiceResolver()
        r.maglev = true
        r.maglevSize = 251
        let out = r.resolve(services: [Self.web], slices: [Self.slice([.init(addresses: ["10.0.0.7"]), .init(addresses: ["10.0.1.8"])])],
                            workloads: [], now: 0)
        #expect(out.maglevTables.count == 3)
        #expect(out.maglevTables.allSatisfy { $0.table.count == 251 && Set($0.table) == Set(out.backends.map(\.id)) })
    }

    @Test func conflictingFrontendsAreRefused() {
        var store = ServiceStore()
        store.apply(ServiceDocuments(services: [Self.web]), source: "api")
        var other = Self.web
        other.name = "web-copy"
        #expect(store.conflicts(with: ServiceDocuments(services: [other]))?.contains("10.96.0.10:80/TCP") == true)
        #expect(store.conflicts(with: ServiceDocuments(services: [Self.web])) == nil)
    }
}
