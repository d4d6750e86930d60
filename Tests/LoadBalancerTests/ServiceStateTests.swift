import Foundation
import Manifests
import Testing
@testable import LoadBalancer

/// services.json (issue 15): written only when what it holds changed, in a compact form that
/// still reads what earlier agents wrote.
@Suite struct ServiceStateTests {
    static let docs = ServiceDocuments(
        services: [ServiceManifest(name: "web", clusterIP: "10.96.0.10", ports: [ServicePortSpec(name: "http", port: 80, targetPort: .number(8080))]),
                   ServiceManifest(name: "api", namespace: "prod", type: .nodePort, clusterIP: "10.96.0.11", externalIPs: ["192.0.2.1"],
                                   ports: [ServicePortSpec(port: 443, proto: .tcp, targetPort: .name("https"), nodePort: 30443)],
                                   selector: ["app": "api"], affinityTimeout: 30, externalTrafficPolicy: .local, internalTrafficPolicy: .local)],
        slices: [EndpointSliceManifest(name: "web-1", serviceName: "web", ports: [.init(name: "http", port: 8080)],
                                       endpoints: [.init(addresses: ["10.0.1.5"]),
                                                   .init(addresses: ["10.0.1.6"], ready: false, serving: true, terminating: true),
                                                   .init(addresses: ["10.0.1.7"], nodeName: "node2"),
                                                   .init(addresses: ["10.0.1.8", "10.0.1.9"])])])

    @Test func theCompactFormReadsBackTheSame() throws {
        var store = ServiceStore()
        store.apply(Self.docs, source: "api")
        let saved = store.persisted(ids: ServiceResolver.IDs())
        let data = try JSONEncoder().encode(saved)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"10.0.1.5\""), "a usual endpoint is its address alone: \(text)")
        #expect(!text.contains("externalTrafficPolicy\":\"Cluster"), "defaults are left out")
        #expect(try JSONDecoder().decode(ServiceStore.Persisted.self, from: data) == saved)
    }

    /// What agents before the compact form wrote.
    @Test func theOldFormStillReads() throws {
        let old = """
        {"backendStates": {}, "ids": {"backends": {"10.0.1.5:8080/TCP": 1}, "frontends": {"10.96.0.10:80/TCP": 1}, "retired": {}},
         "services": [{"clusterIP": "10.96.0.10", "externalIPs": [], "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                       "loadBalancerIPs": [], "name": "web", "namespace": "default",
                       "ports": [{"name": "http", "port": 80, "proto": "TCP", "targetPort": {"number": {"_0": 8080}}}], "type": "ClusterIP"}],
         "slices": [{"endpoints": [{"addresses": ["10.0.1.5"], "ready": true, "serving": true, "terminating": false}],
                     "name": "web-1", "namespace": "default", "ports": [{"name": "http", "port": 8080, "proto": "TCP"}], "serviceName": "web"}],
         "sources": {"svc:default/web": "api", "slice:default/web-1": "api"}}
        """
        let p = try JSONDecoder().decode(ServiceStore.Persisted.self, from: Data(old.utf8))
        #expect(p.services == [Self.docs.services[0]])
        #expect(p.slices.first?.endpoints == [.init(addresses: ["10.0.1.5"])])
        #expect(p.ids.backends == ["10.0.1.5:8080/TCP": 1])
    }

    /// The same manifests applied again are no change: nothing to write.
    @Test func onlyAChangeMovesTheRevision() {
        var store = ServiceStore()
        store.apply(Self.docs, source: "api")
        let r = store.revision
        store.apply(Self.docs, source: "api")
        store.apply(Self.docs, source: "api", replacingSource: true)
        #expect(store.revision == r)
        store.backendStates = [:]
        #expect(store.revision == r)
        store.backendStates["10.0.1.5:8080/TCP"] = 2
        #expect(store.revision == r + 1)
        var changed = Self.docs
        changed.slices[0].endpoints.removeLast()
        store.apply(changed, source: "api")
        #expect(store.revision == r + 2)
        let deleted = store.delete(name: "web", namespace: "default")
        #expect(deleted)
        #expect(store.revision == r + 3)
    }
}
