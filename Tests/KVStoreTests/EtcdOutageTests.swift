import Foundation
import Testing
import TestSupport
@testable import KVStore

/// etcd going away: operations fail with clear errors within the timeout
/// (never hang), and work again once etcd is back. Each test has its own etcd.
@Suite(.serialized)
struct EtcdOutageTests {
    @Test func stoppedEtcdFailsFastAndRecovers() async throws {
        try await withEtcd { etcd in
            let store = try EtcdKVStore(endpoints: [etcd.clientURL], timeout: .seconds(2))
            let key = KVKeys.node(cluster: "default", name: "node1")
            try await store.put(key, data("n1"))
            etcd.kill(keepData: true)

            let (error, took) = await failure { try await store.put(key, data("n1b")) }
            #expect(error?.kind == .unavailable)
            #expect(error?.description == "etcd \(etcd.clientURL): put \(key): connection refused")
            #expect(took < .seconds(2))
            let health = await store.status()
            #expect(health.description == "Failure Err: not able to connect to any etcd endpoints: \(etcd.clientURL) - connection refused")

            // A watch cannot start either: its stream ends with the error.
            let (watchError, _) = await failure { _ = try await collect(store.watch(prefix: "cilium/"), count: 1) }
            #expect(watchError?.description == "etcd \(etcd.clientURL): watch cilium/: connection refused")

            try await etcd.restart()
            try await waitFor("etcd answers again") { await store.status().isOK }
            #expect(try await store.get(key)?.string == "n1")
            try await store.put(key, data("n1c"))
            #expect(try await store.get(key)?.string == "n1c")
        }
    }

    @Test func hangingEtcdTimesOut() async throws {
        try await withEtcd { etcd in
            let store = try EtcdKVStore(endpoints: [etcd.clientURL], timeout: .seconds(1))
            try await store.put("k", data("v"))
            let watch = store.watch(prefix: "k", fromRevision: nil)
            try await Task.sleep(for: .milliseconds(200))
            etcd.pause()
            defer { etcd.resume() }

            let (error, took) = await failure { _ = try await store.get("k") }
            #expect(error?.kind == .timeout)
            #expect(error?.description.hasPrefix("etcd \(etcd.clientURL): get k: no answer within") == true)
            #expect(took >= .milliseconds(900) && took < .seconds(3))
            let start = ContinuousClock.now
            #expect(!(await store.status().isOK))
            #expect(ContinuousClock.now - start < .seconds(3))

            etcd.resume()
            try await waitFor("etcd answers again") { await store.status().isOK }
            #expect(try await store.get("k")?.string == "v")
            // The watch opened before the pause still delivers.
            try await store.put("k", data("v2"))
            #expect(try await collect(watch, count: 1).first?.key == "k")
        }
    }

    @Test func watchEndsWithAnErrorWhenEtcdDies() async throws {
        try await withEtcd { etcd in
            let store = try EtcdKVStore(endpoints: [etcd.clientURL], timeout: .seconds(2))
            let rev = try await store.put("w/a", data("1"))
            let stream = store.watch(prefix: "w/", fromRevision: rev)
            let consumer = Task {
                var seen: [KVEvent] = []
                do {
                    for try await event in stream { seen.append(event) }
                    return (seen, nil as KVStoreError?)
                } catch {
                    return (seen, error as? KVStoreError)
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            etcd.kill(keepData: false)
            let (seen, error) = await consumer.value
            #expect(seen.map(\.key) == ["w/a"])
            #expect(error?.kind == .unavailable)
            #expect(error?.description.hasPrefix("etcd \(etcd.clientURL): watch w/: ") == true)
        }
    }

    @Test func failsOverToTheNextEndpoint() async throws {
        try await withEtcd { etcd in
            // Port 1 on loopback: nothing listens there, so it refuses.
            let dead = "http://127.0.0.1:1"
            let store = try EtcdKVStore(endpoints: [dead, etcd.clientURL], timeout: .seconds(2))
            try await store.put("f/k", data("v"))
            #expect(try await store.get("f/k")?.string == "v")
            #expect(store.currentEndpoint == etcd.clientURL)
            let events = store.watch(prefix: "f/", fromRevision: 1)
            #expect(try await collect(events, count: 1).map(\.key) == ["f/k"])
            let health = await store.status()
            #expect(health.isOK)
            #expect(health.description.hasPrefix("Ok etcd: 1/2 connected, has-quorum=true: \(dead) - connection refused; \(etcd.clientURL) - 3."))

            let allDead = try EtcdKVStore(endpoints: [dead, "http://127.0.0.1:2"], timeout: .seconds(2))
            let (error, _) = await failure { _ = try await allDead.get("f/k") }
            #expect(error?.description == "etcd: get f/k: \(dead): connection refused; http://127.0.0.1:2: connection refused")
        }
    }
}
