import Testing
@testable import KVStore

/// A suite trait: one etcd for the whole suite, reachable from its tests as
/// `EtcdServer.current`, and a scratch directory for embedded stores; the
/// etcd is stopped and the directory removed when the suite ends (also on
/// failure).
struct SharedEtcd: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            try await withEtcd { server in
                try await EtcdServer.$current.withValue(server) {
                    try await $scratchDirectory.withValue(dir) { try await function() }
                }
            }
        }
    }
}

extension Trait where Self == SharedEtcd {
    static var sharedEtcd: Self { SharedEtcd() }
}

extension EtcdServer {
    @TaskLocal static var current: EtcdServer?
}
