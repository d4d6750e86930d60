import Foundation
import Testing
@testable import KVStore

/// The behavioural suite runs against both backends.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case embedded, etcd

    var testDescription: String { rawValue }

    func makeStore() throws -> any KVStore {
        switch self {
        case .embedded:
            return try EmbeddedKVStore(path: temporaryPath("kvstore.json"))
        case .etcd:
            guard let server = EtcdServer.current else { throw TestFailure("no etcd for this suite") }
            return try EtcdKVStore(endpoints: [server.clientURL], timeout: .seconds(5))
        }
    }
}

/// A path in the suite's scratch directory (see `SharedEtcd`), or in a new
/// temporary directory outside such a suite.
func temporaryPath(_ name: String) -> String {
    let base = scratchDirectory ?? FileManager.default.temporaryDirectory.path
    return "\(base)/kvstore-test-\(UUID().uuidString.prefix(8))/\(name)"
}

@TaskLocal var scratchDirectory: String?

/// Runs `body` with a temporary directory, removed afterwards.
func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async throws -> R {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvstore-test-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try await body(dir)
}

/// A key prefix of its own for each test.
func uniquePrefix(_ name: String = #function) -> String {
    "test/\(name.prefix { $0 != "(" })-\(UUID().uuidString.prefix(8))/"
}

func data(_ s: String) -> Data { Data(s.utf8) }

/// The first `count` events of `stream`, or a failure after `timeout`.
func collect(_ stream: AsyncThrowingStream<KVEvent, any Error>, count: Int,
             timeout: Duration = .seconds(10)) async throws -> [KVEvent] {
    try await withThrowingTaskGroup(of: [KVEvent]?.self) { group in
        group.addTask {
            var events: [KVEvent] = []
            for try await event in stream {
                events.append(event)
                if events.count == count { break }
            }
            return events
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let events = first else {
            throw TestFailure("no \(count) events within \(timeout)")
        }
        return events
    }
}

/// The error `body` throws, with how long it took.
func failure(of body: () async throws -> Void) async -> (KVStoreError?, Duration) {
    let start = ContinuousClock.now
    do {
        try await body()
        return (nil, ContinuousClock.now - start)
    } catch {
        return (error as? KVStoreError, ContinuousClock.now - start)
    }
}
