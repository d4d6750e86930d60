import Foundation
import Testing
import TestSupport
@testable import KVStore

/// The same behaviour, checked against the embedded store and against a
/// real etcd (one etcd for the suite, a key prefix per test).
@Suite(.serialized, .sharedEtcd)
struct KVStoreBehaviourTests {
    @Test(arguments: Backend.allCases)
    func putGetList(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let p = uniquePrefix()
        #expect(try await store.get(p + "a") == nil)
        let r1 = try await store.put(p + "b", data("2"))
        let r2 = try await store.put(p + "a", data("1"))
        let r3 = try await store.put(p + "c/d", data("3"))
        try await store.put(p.dropLast() + "x", data("outside"))   // shares the prefix's text but not the "/"
        #expect(r1 < r2 && r2 < r3)

        let a = try #require(try await store.get(p + "a"))
        #expect(a.value == data("1"))
        #expect(a.createRevision == r2 && a.modRevision == r2 && a.lease == nil)

        let r4 = try await store.put(p + "a", data("1b"))
        let a2 = try #require(try await store.get(p + "a"))
        #expect(a2.string == "1b" && a2.createRevision == r2 && a2.modRevision == r4)

        let list = try await store.list(prefix: p)
        #expect(list.pairs.map(\.key) == [p + "a", p + "b", p + "c/d"])
        #expect(list.pairs.map(\.string) == ["1b", "2", "3"])
        #expect(list.revision >= r4)
        #expect(try await store.list(prefix: p + "c/").pairs.map(\.key) == [p + "c/d"])
        #expect(try await store.list(prefix: p + "nothing/").pairs.isEmpty)
    }

    /// A watcher that takes nothing while a burst comes is told it fell behind once its buffer is
    /// full (memory stays bounded), after the events it holds; resuming after the last one it
    /// took loses nothing. The batch write is one revision per transaction on etcd.
    @Test(arguments: Backend.allCases)
    func aWatcherThatFallsBehindResumesWithoutLoss(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let p = uniquePrefix()
        let stream = store.watch(prefix: p, fromRevision: nil)
        try await Task.sleep(for: .milliseconds(200)) // the watch is established
        let n = KVWatchBuffer.limit + 300
        // etcd takes 128 operations per transaction; the embedded store saves its file once per write.
        let chunk = backend == .etcd ? 128 : n
        for start in stride(from: 0, to: n, by: chunk) {
            try await store.write(batch: (start..<min(start + chunk, n)).map { (p + String($0), Data("v".utf8)) })
        }
        try await store.write(batch: [(p + "0", nil)])
        var keys = Set<String>(), resume: Int64 = 0
        do {
            for try await e in stream { keys.insert(e.key) }
            Issue.record("the stream ended without saying it fell behind")
        } catch let e as KVStoreError {
            guard case .fellBehind(let r) = e.kind else { Issue.record("\(e)"); return }
            resume = r
        }
        #expect(keys.count == KVWatchBuffer.limit)
        var deleted = false
        for try await e in store.watch(prefix: p, fromRevision: resume) {
            keys.insert(e.key)
            if case .delete = e { deleted = true; break }
        }
        #expect(keys.count == n && deleted)
    }

    @Test(arguments: Backend.allCases)
    func deleteAndDeletePrefix(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let p = uniquePrefix()
        for key in ["a/1", "a/2", "a/3", "ab", "b"] { try await store.put(p + key, data(key)) }
        #expect(try await store.delete(p + "b"))
        #expect(try await !store.delete(p + "b"))
        #expect(try await store.get(p + "b") == nil)
        #expect(try await store.deletePrefix(p + "a/") == 3)
        #expect(try await store.list(prefix: p).pairs.map(\.key) == [p + "ab"])
        #expect(try await store.deletePrefix(p + "a/") == 0)
    }

    @Test(arguments: Backend.allCases)
    func createOnlyIfAbsent(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let key = uniquePrefix() + "identity"
        #expect(try await store.create(key, data("first")))
        #expect(try await !store.create(key, data("second")))
        #expect(try await store.get(key)?.string == "first")
        try await store.delete(key)
        #expect(try await store.create(key, data("third")))
        #expect(try await store.get(key)?.string == "third")
    }

    @Test(arguments: Backend.allCases)
    func compareAndSwap(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let key = uniquePrefix() + "k"
        // Expected revision 0 means "absent": CAS can create.
        #expect(try await store.compareAndSwap(key, expectedModRevision: 0, newValue: data("v1")))
        #expect(try await !store.compareAndSwap(key, expectedModRevision: 0, newValue: data("nope")))
        let v1 = try #require(try await store.get(key))
        #expect(try await store.compareAndSwap(key, expectedModRevision: v1.modRevision, newValue: data("v2")))
        // The same (now stale) revision fails and changes nothing.
        #expect(try await !store.compareAndSwap(key, expectedModRevision: v1.modRevision, newValue: data("v3")))
        let v2 = try #require(try await store.get(key))
        #expect(v2.string == "v2" && v2.modRevision > v1.modRevision && v2.createRevision == v1.createRevision)
        #expect(try await !store.compareAndDelete(key, expectedModRevision: v1.modRevision))
        #expect(try await store.compareAndDelete(key, expectedModRevision: v2.modRevision))
        #expect(try await store.get(key) == nil)
    }

    @Test(arguments: Backend.allCases)
    func leaseExpiryRemovesKeys(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let p = uniquePrefix()
        let lease = try await store.grantLease(ttl: .seconds(2))
        let start = try await store.list(prefix: p).revision
        try await store.put(p + "leased", data("x"), lease: lease)
        try await store.put(p + "kept", data("y"))
        #expect(try await store.get(p + "leased")?.lease == lease.id)
        let events = store.watch(prefix: p, fromRevision: start + 1)

        try await waitFor("the leased key disappears") { try await store.get(p + "leased") == nil }
        #expect(try await store.get(p + "kept") != nil)
        let seen = try await collect(events, count: 3)
        #expect(seen.map(\.key) == [p + "leased", p + "kept", p + "leased"])
        guard case .delete = seen[2] else { Issue.record("expected a delete, got \(seen[2])"); return }

        // The lease is gone: refreshing it or putting with it fails.
        let (refresh, _) = await failure { try await store.keepAlive(lease) }
        #expect(refresh?.kind == .leaseNotFound)
        let (put, _) = await failure { try await store.put(p + "late", data("z"), lease: lease) }
        #expect(put?.kind == .leaseNotFound)
        try await store.revoke(lease)   // idempotent
    }

    @Test(arguments: Backend.allCases)
    func keepAliveKeepsKeys(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let key = uniquePrefix() + "node"
        let keeper = try await store.leaseKeeper(ttl: .seconds(2))
        try await store.put(key, data("alive"), lease: keeper.lease)
        try await Task.sleep(for: .seconds(5))
        #expect(try await store.get(key)?.string == "alive")
        #expect(keeper.state == .running)
        try await keeper.revoke()
        #expect(keeper.state == .stopped)
        #expect(try await store.get(key) == nil)
    }

    @Test(arguments: Backend.allCases)
    func keeperReportsExpiredLease(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let lease = try await store.grantLease(ttl: .seconds(2))
        let expired = Locked(false)
        let keeper = LeaseKeeper(store: store, lease: lease, interval: .milliseconds(300)) { _ in
            expired.withLock { $0 = true }
        }
        try await store.revoke(lease)   // behind the keeper's back
        try await waitFor("the keeper notices") { () async in expired.withLock { $0 } }
        #expect(keeper.state == .expired)
    }

    @Test(arguments: Backend.allCases)
    func watchSeesPutsAndDeletesInOrder(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let p = uniquePrefix()
        try await store.put(p + "before", data("0"))
        let start = try await store.list(prefix: p).revision
        let events = store.watch(prefix: p, fromRevision: start + 1)
        let r1 = try await store.put(p + "a", data("1"))
        let r2 = try await store.put(p + "b", data("2"))
        try await store.put("elsewhere/" + p, data("not watched"))
        try await store.delete(p + "a")
        let r4 = try await store.put(p + "b", data("3"))
        try await store.deletePrefix(p)
        let seen = try await collect(events, count: 6)
        #expect(seen.map(\.key) == [p + "a", p + "b", p + "a", p + "b", p + "b", p + "before"])
        guard case .put(let a) = seen[0], case .put(let b) = seen[1], case .delete(_, let r3) = seen[2],
              case .put(let b2) = seen[3], case .delete(_, let r5) = seen[4], case .delete(_, let r5b) = seen[5] else {
            Issue.record("unexpected events \(seen)")
            return
        }
        #expect(a.modRevision == r1 && a.string == "1")
        #expect(b.modRevision == r2 && r3 > r2)
        #expect(b2.modRevision == r4 && b2.string == "3" && b2.createRevision == r2)
        #expect(r5 == r5b && r5 > r4)   // one delete-prefix, one revision
        try await store.delete("elsewhere/" + p)
    }

    @Test(arguments: Backend.allCases)
    func watchFromRevision(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let p = uniquePrefix()
        try await store.put(p + "a", data("1"))
        let r2 = try await store.put(p + "b", data("2"))
        try await store.delete(p + "a")
        let events = store.watch(prefix: p, fromRevision: r2)
        let first = try await collect(events, count: 0 + 2)
        #expect(first.map(\.key) == [p + "b", p + "a"])
        // Then live changes follow on a new stream from the next revision.
        let live = store.watch(prefix: p, fromRevision: first[1].revision + 1)
        try await store.put(p + "c", data("3"))
        let more = try await collect(live, count: 1)
        #expect(more.map(\.key) == [p + "c"])
    }

    @Test(arguments: Backend.allCases)
    func watchEndsWhenConsumerCancels(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let p = uniquePrefix()
        let stream = store.watch(prefix: p, fromRevision: nil)
        let consumer = Task {
            var n = 0
            for try await _ in stream { n += 1 }
            return n
        }
        try await Task.sleep(for: .milliseconds(300))
        consumer.cancel()
        let start = ContinuousClock.now
        _ = try? await consumer.value
        #expect(ContinuousClock.now - start < .seconds(2))
        // The store still works and later watches still see changes.
        let again = store.watch(prefix: p, fromRevision: try await store.list(prefix: p).revision + 1)
        try await store.put(p + "k", data("v"))
        #expect(try await collect(again, count: 1).map(\.key) == [p + "k"])
    }

    @Test(arguments: Backend.allCases)
    func watchFromCompactedRevisionFails(_ backend: Backend) async throws {
        let p = uniquePrefix()
        let store: any KVStore
        switch backend {
        case .embedded:
            store = try EmbeddedKVStore(path: nil, historyLimit: 2)
            for i in 0..<5 { try await store.put(p + "k\(i)", data("\(i)")) }
        case .etcd:
            store = try backend.makeStore()
            for i in 0..<5 { try await store.put(p + "k\(i)", data("\(i)")) }
            let rev = try await store.list(prefix: p).revision
            let etcd = try #require(store as? EtcdKVStore)
            _ = try await etcd.call("/v3/kv/compaction", ["revision": String(rev - 1)], "compact", EtcdHeaderResponse.self)
        }
        let stream = store.watch(prefix: p, fromRevision: 1)
        do {
            _ = try await collect(stream, count: 1)
            Issue.record("watch from a compacted revision did not fail")
        } catch let error as KVStoreError {
            guard case .compacted = error.kind else { Issue.record("unexpected \(error)"); return }
        }
    }

    @Test(arguments: Backend.allCases)
    func statusLine(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        let health = await store.status()
        #expect(health.isOK, "\(health)")
        switch backend {
        case .embedded:
            #expect(health.description.hasPrefix("Ok Embedded (file /"))
        case .etcd:
            let url = try #require(EtcdServer.current).clientURL
            #expect(health.description.hasPrefix("Ok etcd: 1/1 connected, has-quorum=true: \(url) - 3."), "\(health)")
            #expect(health.description.hasSuffix("(Leader)"))
        }
    }
}
