import Foundation
import Testing
@testable import KVStore

@Suite struct KVKeysTests {
    @Test func upstreamLayout() {
        #expect(KVKeys.node(cluster: "default", name: "node1") == "cilium/state/nodes/v1/default/node1")
        #expect(KVKeys.identity(256) == "cilium/state/identities/v1/id/256")
        #expect(KVKeys.identityByLabels(["k8s:io.kubernetes.pod.namespace=default", "k8s:app=web", "k8s:app=web"])
                == "cilium/state/identities/v1/value/k8s:app=web;k8s:io.kubernetes.pod.namespace=default;/")
        #expect(KVKeys.ip("10.0.1.23") == "cilium/state/ip/v1/default/10.0.1.23")
        #expect(KVKeys.ip("10.0.1.0/24") == "cilium/state/ip/v1/default/10.0.1.0/24")
        #expect(KVKeys.podCIDR(cluster: "c1", cidr: "10.0.1.0/24") == "cilium/state/podcidrs/v1/c1/10.0.1.0/24")
        #expect(KVKeys.service(cluster: "c1", namespace: "ns", name: "web") == "cilium/state/services/v1/c1/ns/web")
    }

    @Test func labelListRoundTrip() {
        let list = KVKeys.labelList(["b", "a", "b", "k8s:app.kubernetes.io/name=x"])
        #expect(list == "a;b;k8s:app.kubernetes.io/name=x;")
        #expect(KVKeys.labels(fromList: list) == ["a", "b", "k8s:app.kubernetes.io/name=x"])
        #expect(KVKeys.suffix(of: KVKeys.ip("10.0.0.1"), after: KVKeys.ips()) == "10.0.0.1")
        #expect(KVKeys.suffix(of: "other", after: KVKeys.ips()) == nil)
    }

    @Test func prefixRangeEnd() {
        func decoded(_ b64: String) -> [UInt8] { Array(Data(base64Encoded: b64)!) }
        #expect(decoded(EtcdRequest.rangeEnd(prefix: "a/")) == Array("a0".utf8))
        #expect(decoded(EtcdRequest.rangeEnd(prefix: "")) == [0])
        #expect(decoded(EtcdRequest.prefixRange("")["key"]!) == [0])
    }

    @Test func endpointParsing() throws {
        #expect(try HTTPEndpoint(parsing: "http://127.0.0.1:2379").url == "http://127.0.0.1:2379")
        #expect(try HTTPEndpoint(parsing: "127.0.0.1:12379/").port == 12379)
        #expect(try HTTPEndpoint(parsing: "http://[::1]:2379").host == "::1")
        #expect(try HTTPEndpoint(parsing: "http://localhost").port == 2379)
        #expect(try HTTPEndpoint(parsing: "https://127.0.0.1:2379").url == "https://127.0.0.1:2379")
        #expect(try HTTPEndpoint(parsing: "https://[::1]").secure)
        #expect(throws: KVStoreError.self) { try HTTPEndpoint(parsing: "unix:///run/etcd.sock") }
        #expect(throws: KVStoreError.self) { try HTTPEndpoint(parsing: "http://127.0.0.1:99999") }
        #expect(throws: KVStoreError.self) { try EtcdKVStore(endpoints: []) }
    }
}
