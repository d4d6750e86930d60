import Foundation
import Testing
@testable import KVStore

@Suite(.serialized, .sharedEtcd)
struct IdentityAllocatorTests {
    @Test(arguments: Backend.allCases)
    func allocatesStableNumbers(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        try await store.deletePrefix("cilium/state/identities/")
        let allocator = IdentityAllocator(store: store)
        let web = try await allocator.allocate(["k8s:app=web", "k8s:io.kubernetes.pod.namespace=default"])
        let db = try await allocator.allocate(["k8s:app=db", "k8s:io.kubernetes.pod.namespace=default"])
        #expect(web == 256 && db == 257)
        #expect(try await allocator.allocate(["k8s:io.kubernetes.pod.namespace=default", "k8s:app=web"]) == web)
        #expect(try await store.get(KVKeys.identity(web))?.string == "k8s:app=web;k8s:io.kubernetes.pod.namespace=default;")
        #expect(try await store.get(KVKeys.identityByLabels(["k8s:app=db", "k8s:io.kubernetes.pod.namespace=default"]))?.string == "257")

        // Another agent (no cache) sees the same numbers.
        let other = IdentityAllocator(store: try backend.makeStore(sharing: store))
        #expect(try await other.lookup(labels: ["k8s:app=db", "k8s:io.kubernetes.pod.namespace=default"]) == db)
        #expect(try await other.lookup(id: web) == ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=default"])
        #expect(try await other.allocate(["k8s:app=web", "k8s:io.kubernetes.pod.namespace=default"]) == web)
        #expect(try await other.lookup(id: 999) == nil)
        #expect(try await other.all().count == 2)
    }

    @Test(arguments: Backend.allCases)
    func repairsHalfDoneAllocations(_ backend: Backend) async throws {
        let store = try backend.makeStore()
        try await store.deletePrefix("cilium/state/identities/")
        let allocator = IdentityAllocator(store: store)
        // An agent died after claiming id 300 for these labels.
        _ = try await store.create(KVKeys.identity(300), data("k8s:app=orphan;"))
        #expect(try await allocator.allocate(["k8s:app=orphan"]) == 300)
        // A label-set key whose id key vanished gets its id key back.
        try await store.put(KVKeys.identityByLabels(["k8s:app=lost"]), data("400"))
        #expect(try await allocator.allocate(["k8s:app=lost"]) == 400)
        #expect(try await store.get(KVKeys.identity(400))?.string == "k8s:app=lost;")
        // A label-set key pointing at another set's id is replaced.
        try await store.put(KVKeys.identityByLabels(["k8s:app=confused"]), data("300"))
        let fixed = try await allocator.allocate(["k8s:app=confused"])
        #expect(fixed != 300 && fixed != 400 && fixed >= 256)
    }

    /// Two agents (two separate store clients) allocating overlapping label
    /// sets at the same time agree on every number, and no number is shared
    /// by two label sets.
    @Test(arguments: Backend.allCases)
    func racingAgentsAgree(_ backend: Backend) async throws {
        let setup = try backend.makeStore()
        try await setup.deletePrefix("cilium/state/identities/")
        // Two clients: for etcd, two connections' worth of independent state;
        // for the embedded store, two allocators on the one store.
        let storeA = try backend.makeStore(sharing: setup)
        let storeB = try backend.makeStore(sharing: setup)
        let a = IdentityAllocator(store: storeA)
        let b = IdentityAllocator(store: storeB)
        let sets = (0..<36).map { ["k8s:app=app\($0)", "k8s:io.kubernetes.pod.namespace=ns\($0 % 3)"] }

        func run(_ allocator: IdentityAllocator, _ indices: [Int]) async throws -> [Int: Int] {
            try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for i in indices { group.addTask { (i, try await allocator.allocate(sets[i])) } }
                var result: [Int: Int] = [:]
                for try await (i, id) in group { result[i] = id }
                return result
            }
        }
        async let fromA = run(a, Array(0..<24).shuffled())
        async let fromB = run(b, Array(12..<36).shuffled())
        let (idsA, idsB) = try await (fromA, fromB)

        // Whether they collided depends on timing (a busy machine may serialize them);
        // agreement and uniqueness below must hold either way.
        let conflicts = (await a.conflicts, await b.conflicts)
        print("identity race on \(backend): \(conflicts.0 + conflicts.1) conflicts resolved")
        for i in 12..<24 { #expect(idsA[i] == idsB[i], "label set \(i): \(idsA[i]!) vs \(idsB[i]!)") }
        var byID: [Int: Int] = [:]
        for (i, id) in idsA.merging(idsB, uniquingKeysWith: { x, _ in x }) {
            #expect(byID[id] == nil, "id \(id) given to sets \(byID[id] ?? -1) and \(i)")
            byID[id] = i
            #expect(id >= 256)
        }
        #expect(byID.count == 36)

        // The store agrees: one id key per set, each label key points at it.
        let idKeys = try await setup.list(prefix: KVKeys.identitiesPrefix).pairs
        #expect(idKeys.count == 36)
        for (i, labels) in sets.enumerated() {
            let id = try #require(idsA[i] ?? idsB[i])
            #expect(try await setup.get(KVKeys.identityByLabels(labels))?.string == String(id))
            #expect(try await setup.get(KVKeys.identity(id))?.string == KVKeys.labelList(labels))
        }
    }
}

extension Backend {
    /// A second client of the same store: a new etcd client, or the same
    /// embedded store (one process owns its file).
    func makeStore(sharing store: any KVStore) throws -> any KVStore {
        switch self {
        case .embedded: store
        case .etcd: try makeStore()
        }
    }
}
