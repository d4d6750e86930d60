import Foundation
import Testing
import TestSupport
@testable import KVStore

/// etcd over https with client certificates (etcd's `--client-cert-auth`), and the clear
/// errors of each way TLS can fail. Each test makes its own certificates and etcd.
@Suite(.serialized)
struct EtcdTLSTests {
    @Test func mutualTLSCarriesEveryOperation() async throws {
        try await withPKI { pki in
            try await withTLSEtcd(pki) { etcd in
                let store = try EtcdKVStore(endpoints: [etcd.url], timeout: .seconds(5), tls: pki.client)
                try await waitFor("etcd answers over https") { await store.status().isOK }
                #expect(await store.status().description.hasPrefix("Ok etcd: 1/1 connected, has-quorum=true: \(etcd.url) - 3."))

                let rev = try await store.put("tls/a", data("1"))
                #expect(rev > 0)
                let watch = store.watch(prefix: "tls/", fromRevision: rev)
                #expect(try await store.get("tls/a")?.string == "1")
                #expect(try await store.create("tls/b", data("2"), lease: nil))
                #expect(try await !store.create("tls/b", data("3"), lease: nil))
                let b = try #require(try await store.get("tls/b"))
                #expect(try await store.compareAndSwap("tls/b", expectedModRevision: b.modRevision, newValue: data("4"), lease: nil))
                #expect(try await store.list(prefix: "tls/").pairs.map(\.string) == ["1", "4"])

                let lease = try await store.grantLease(ttl: .seconds(10))
                try await store.put("tls/leased", data("x"), lease: lease)
                #expect(try await store.keepAlive(lease) > .zero)
                try await store.revoke(lease)
                #expect(try await store.get("tls/leased") == nil)

                let events = try await collect(watch, count: 3)
                #expect(events.map(\.key) == ["tls/a", "tls/b", "tls/b"])
            }
        }
    }

    @Test func upstreamConfigFileConnects() async throws {
        try await withPKI { pki in
            try await withTLSEtcd(pki) { etcd in
                let path = "\(pki.directory)/etcd.config"
                try """
                endpoints:
                - \(etcd.url)
                ca-file: ca.crt
                cert-file: '\(pki.clientCert)'
                key-file: client.key
                """.write(toFile: path, atomically: true, encoding: .utf8)
                let config = try EtcdClientConfig.load(path: path)
                #expect(config.endpoints == [etcd.url])
                #expect(config.tls == pki.client)
                let store = try EtcdKVStore(config: config, timeout: .seconds(5))
                try await waitFor("etcd answers over https") { await store.status().isOK }
                try await store.put("cfg/k", data("v"))
                #expect(try await store.get("cfg/k")?.string == "v")
            }
        }
    }

    @Test func wrongCAIsNamed() async throws {
        try await withPKI { pki in
            try await withTLSEtcd(pki) { etcd in
                let tls = EtcdTLSConfig(caFile: pki.otherCA, certFile: pki.clientCert, keyFile: pki.clientKey)
                let store = try EtcdKVStore(endpoints: [etcd.url], timeout: .seconds(5), tls: tls)
                let (error, took) = await failure { _ = try await store.get("k") }
                #expect(error?.kind == .unavailable)
                let expected = "etcd \(etcd.url): get k: TLS: the server's certificate is not signed by the CA in \(pki.otherCA) ("
                #expect(error?.description.hasPrefix(expected) == true, "\(String(describing: error))")
                #expect(error?.description.contains("unable to get local issuer certificate") == true)
                #expect(took < .seconds(5))
                // The status line shows the same reason.
                let health = await store.status()
                #expect(health.description.hasPrefix(
                    "Failure Err: not able to connect to any etcd endpoints: \(etcd.url) - TLS: the server's certificate is not signed by the CA in \(pki.otherCA)"),
                    "\(health)")
            }
        }
    }

    @Test func expiredServerCertificateIsNamed() async throws {
        try await withPKI { pki in
            try await withTLSEtcd(pki, cert: "expired") { etcd in
                let store = try EtcdKVStore(endpoints: [etcd.url], timeout: .seconds(5), tls: pki.client)
                let (error, _) = await failure { try await store.put("k", data("v")) }
                #expect(error?.kind == .unavailable)
                #expect(error?.description.hasPrefix("etcd \(etcd.url): put k: TLS: the server's certificate has expired (") == true,
                        "\(String(describing: error))")
                #expect(await store.status().message.contains("\(etcd.url) - TLS: the server's certificate has expired"))
            }
        }
    }

    @Test func certificateForAnotherAddressIsNamed() async throws {
        try await withPKI { pki in
            try await withTLSEtcd(pki, cert: "elsewhere", key: "elsewhere") { etcd in
                let store = try EtcdKVStore(endpoints: [etcd.url], timeout: .seconds(5), tls: pki.client)
                let (error, _) = await failure { _ = try await store.list(prefix: "a/") }
                #expect(error?.kind == .unavailable)
                #expect(error?.description.hasPrefix("etcd \(etcd.url): list a/: TLS: the server's certificate is not for 127.0.0.1 (") == true,
                        "\(String(describing: error))")
                // The watch fails the same way.
                let (watchError, _) = await failure { _ = try await collect(store.watch(prefix: "a/"), count: 1) }
                #expect(watchError?.description.hasPrefix("etcd \(etcd.url): watch a/: TLS: the server's certificate is not for 127.0.0.1") == true,
                        "\(String(describing: watchError))")
            }
        }
    }

    @Test func missingClientCertificateIsNamed() async throws {
        try await withPKI { pki in
            try await withTLSEtcd(pki) { etcd in
                let store = try EtcdKVStore(endpoints: [etcd.url], timeout: .seconds(5), tls: EtcdTLSConfig(caFile: pki.ca))
                let (error, _) = await failure { _ = try await store.get("k") }
                #expect(error?.kind == .unavailable)
                #expect(error?.description.hasPrefix("etcd \(etcd.url): get k: TLS: ") == true, "\(String(describing: error))")
                #expect(error?.description.contains("the server requires a client certificate and none is configured (set cert-file and key-file) (") == true,
                        "\(String(describing: error))")
                #expect(error?.description.contains("alert bad certificate") == true)

                // A client certificate file that is not there is named before anything is sent.
                let missing = "\(pki.directory)/nope.crt"
                let broken = try EtcdKVStore(endpoints: [etcd.url], timeout: .seconds(5),
                                             tls: EtcdTLSConfig(caFile: pki.ca, certFile: missing, keyFile: pki.clientKey))
                let (fileError, _) = await failure { _ = try await broken.get("k") }
                #expect(fileError?.description
                        == "etcd \(etcd.url): get k: TLS: cannot read the client certificate (cert-file) \(missing): no such file or directory")
            }
        }
    }

    @Test func configFileErrorsSayWhatToFix() throws {
        func problem(_ text: String) -> String {
            do {
                _ = try EtcdClientConfig.parse(text, path: "/etc/cilium/etcd.config")
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(problem("trusted-ca-file: /ca.crt").hasPrefix("etcd config /etc/cilium/etcd.config: load: no `endpoints:`"))
        #expect(problem("endpoints: []").contains("`endpoints:` is empty"))
        #expect(problem("endpoints: [\"ftp://x:1\"]").contains("endpoint ftp://x:1: unsupported scheme ftp"))
        #expect(problem("endpoints: [\"https://a:2379\"]\ncert-file: c.crt").contains("`cert-file:` without `key-file:`"))
        #expect(problem("- a\n- b").contains("expected a mapping with `endpoints:`"))
        let ok = try EtcdClientConfig.parse("endpoints:\n- https://a:2379\n- https://b:2379\ntrusted-ca-file: /x/ca.crt\n",
                                            path: "/etc/cilium/etcd.config")
        #expect(ok == EtcdClientConfig(endpoints: ["https://a:2379", "https://b:2379"], tls: EtcdTLSConfig(caFile: "/x/ca.crt")))
        #expect(try EtcdClientConfig.parse("endpoints: [\"http://a:2379\"]", path: "/e").tls == nil)
        #expect(throws: KVStoreError.self) { try EtcdClientConfig.load(path: "/nonexistent/etcd.config") }
    }
}

/// The transport's limits: cancelling a watch ends its transfer at once; answers have a cap.
@Suite(.serialized)
struct CurlTransportTests {
    @Test func cancellingAWatchConsumerEndsTheTransferAtOnce() async throws {
        try await withEtcd { etcd in
            let store = try EtcdKVStore(endpoints: [etcd.clientURL], timeout: .seconds(30))
            let url = etcd.clientURL + "/v3/watch"
            let stream = store.watch(prefix: "c/", fromRevision: nil)
            let consumer = Task {
                var seen = 0
                do { for try await _ in stream { seen += 1 } } catch {}
                return seen
            }
            try await store.put("c/1", data("x"))
            try await waitFor("the watch transfer runs") { () async in CurlTransport.shared.transfersInFlight.contains(url) }
            let start = ContinuousClock.now
            consumer.cancel()
            _ = await consumer.value
            try await waitFor("the watch transfer is gone", timeout: .seconds(2)) { () async in
                !CurlTransport.shared.transfersInFlight.contains(url)
            }
            #expect(ContinuousClock.now - start < .seconds(2))
            // The store still works, and a new watch too.
            try await store.put("c/2", data("y"))
            #expect(try await collect(store.watch(prefix: "c/", fromRevision: 1), count: 2).map(\.key) == ["c/1", "c/2"])
        }
    }

    @Test func unaryAnswerOverTheCapFails() async throws {
        try await withEtcd { etcd in
            let store = try EtcdKVStore(endpoints: [etcd.clientURL], timeout: .seconds(5), tls: nil, responseLimit: 1000)
            try await store.put("big/small", data("s"))
            #expect(try await store.get("big/small")?.string == "s")
            try await store.put("big/large", Data(repeating: 65, count: 4000))
            let (error, _) = await failure { _ = try await store.get("big/large") }
            #expect(error?.kind == .invalidResponse)
            #expect(error?.description.hasPrefix("etcd \(etcd.clientURL): get big/large: answer larger than 1000 bytes") == true,
                    "\(String(describing: error))")
            // The connection was dropped, not left half-read: the next request works.
            #expect(try await store.get("big/small")?.string == "s")
            #expect(CurlTransport.defaultResponseLimit == 256 << 20)
        }
    }
}
