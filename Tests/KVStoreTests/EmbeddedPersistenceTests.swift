import Foundation
import Testing
@testable import KVStore

@Suite struct EmbeddedPersistenceTests {
    @Test func contentSurvivesReopen() async throws {
        try await withTemporaryDirectory { dir in
            let path = "\(dir)/state/kvstore.json"
            var store: EmbeddedKVStore? = try EmbeddedKVStore(path: path)
            try await store!.put("cilium/state/nodes/v1/default/node1", data("{\"name\":\"node1\"}"))
            _ = try await store!.create(KVKeys.identity(256), data("k8s:app=web;"))
            let lease = try await store!.grantLease(ttl: .seconds(60))
            let leasedRevision = try await store!.put("cilium/state/ip/v1/default/10.0.0.1", data("256"), lease: lease)
            try await store!.put("gone", data("x"))
            try await store!.delete("gone")
            let before = try await store!.list(prefix: "")
            store!.close()
            store = nil

            #expect(FileManager.default.fileExists(atPath: path))
            #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
            let reopened = try EmbeddedKVStore(path: path)
            let after = try await reopened.list(prefix: "")
            #expect(after == before)
            #expect(after.pairs.first { $0.key.hasSuffix("10.0.0.1") }?.lease == lease.id)
            #expect(after.pairs.first { $0.key.hasSuffix("10.0.0.1") }?.modRevision == leasedRevision)
            // Revisions continue, the lease is still there, create still sees the old key.
            let next = try await reopened.put("new", data("y"))
            #expect(next == before.revision + 1)
            try await reopened.keepAlive(lease)
            #expect(try await !reopened.create(KVKeys.identity(256), data("other")))
            // A new lease gets a new ID.
            #expect(try await reopened.grantLease(ttl: .seconds(5)).id != lease.id)
        }
    }

    @Test func fileRoundTripsOddKeysAndValues() async throws {
        try await withTemporaryDirectory { dir in
            let path = "\(dir)/kvstore.json"
            let keys = ["quote\"back\\slash", "tab\tnew\nline\u{01}", "ünïcödé/✓", "cilium/state/ip/v1/default/fd00::1"]
            do {
                let store = try EmbeddedKVStore(path: path)
                for (i, key) in keys.enumerated() { try await store.put(key, Data([0, 255, UInt8(i)])) }
                store.close()
            }
            let reopened = try EmbeddedKVStore(path: path)
            for (i, key) in keys.enumerated() {
                #expect(try await reopened.get(key)?.value == Data([0, 255, UInt8(i)]), "\(key)")
            }
            // The file is plain JSON that other tools can read.
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
            #expect((json?["keys"] as? [Any])?.count == keys.count)
        }
    }

    @Test func leaseExpiresWhileStopped() async throws {
        try await withTemporaryDirectory { dir in
            let path = "\(dir)/kvstore.json"
            do {
                let store = try EmbeddedKVStore(path: path)
                let lease = try await store.grantLease(ttl: .milliseconds(500))
                try await store.put("node", data("n"), lease: lease)
                try await store.put("plain", data("p"))
                store.close()
            }
            try await Task.sleep(for: .seconds(1))
            let reopened = try EmbeddedKVStore(path: path)
            #expect(try await reopened.get("node") == nil)
            #expect(try await reopened.get("plain")?.string == "p")
        }
    }

    @Test func watchFromBeforeRestartIsCompacted() async throws {
        try await withTemporaryDirectory { dir in
            let path = "\(dir)/kvstore.json"
            let first = try EmbeddedKVStore(path: path)
            let r = try await first.put("a", data("1"))
            first.close()
            let store = try EmbeddedKVStore(path: path)
            do {
                _ = try await collect(store.watch(prefix: "", fromRevision: r), count: 1)
                Issue.record("expected compacted")
            } catch let e as KVStoreError {
                #expect(e.kind == .compacted(revision: r))
            }
            // From the next revision on, nothing is missing.
            let live = store.watch(prefix: "", fromRevision: r + 1)
            try await store.put("b", data("2"))
            #expect(try await collect(live, count: 1).map(\.key) == ["b"])
        }
    }

    @Test func corruptFileIsAClearError() async throws {
        try await withTemporaryDirectory { dir in
            let path = "\(dir)/kvstore.json"
            try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
            #expect {
                _ = try EmbeddedKVStore(path: path)
            } throws: { error in
                let e = error as? KVStoreError
                return e?.kind == .storage && e?.description.hasPrefix("embedded \(path): open: not a kvstore file: ") == true
            }
        }
    }

    @Test func unwritableFileFailsTheWriteAndKeepsState() async throws {
        try await withTemporaryDirectory { dir in
            let path = "\(dir)/sub/kvstore.json"
            let store = try EmbeddedKVStore(path: path)
            try await store.put("a", data("1"))
            // Make the temp file's place a directory: the next write fails.
            try FileManager.default.createDirectory(atPath: path + ".tmp", withIntermediateDirectories: true)
            let (error, _) = await failure { try await store.put("b", data("2")) }
            #expect(error?.kind == .storage)
            #expect(error?.description.hasPrefix("embedded \(path): put b: ") == true)
            #expect(try await store.get("b") == nil)
            try FileManager.default.removeItem(atPath: path + ".tmp")
            try await store.put("b", data("2"))
            #expect(try await EmbeddedKVStore(path: path).get("b")?.string == "2")
        }
    }

    @Test func closeEndsWatches() async throws {
        let store = try EmbeddedKVStore(path: nil)
        let stream = store.watch(prefix: "")
        let consumer = Task { for try await _ in stream {} }
        store.close()
        try await consumer.value
        let (error, _) = await failure { _ = try await store.get("x") }
        #expect(error?.kind == .closed)
        #expect(await store.status().description == "Failure Err: embedded store is closed")
    }
}
