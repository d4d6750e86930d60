import Reconciler
import Testing
import TestSupport

/// Issue 15: nothing is announced for no change, and nothing is pruned before a table's
/// sources have written their first full view (statedb's "prune waits until initialized").
@Suite struct InitializationTests {
    @Test func anUnchangedObjectIsNotAnnounced() async {
        let table = StateTable<Item>(name: "items")
        await table.upsert(contentsOf: [Item(id: 1, value: "a"), Item(id: 2, value: "b")])
        let revision = await table.revision
        let changes = await table.changes(includeExisting: false)
        let sets = Task { var n: [[Change<Item>]] = []; for await s in changes { n.append(s) }; return n }
        #expect(await table.upsert(Item(id: 1, value: "a")) == revision)
        await table.upsert(contentsOf: [Item(id: 1, value: "a"), Item(id: 2, value: "c"), Item(id: 2, value: "c")])
        #expect(await table.revision == revision + 1)
        #expect(await table.revision(of: 1) == 1)
        await table.replaceChanged([Item(id: 1, value: "a"), Item(id: 2, value: "c")])
        #expect(await table.revision == revision + 1)
        try? await Task.sleep(for: .milliseconds(50))
        sets.cancel()
        let seen = await sets.value
        #expect(seen.count == 1 && seen.first?.map(\.object.id) == [2], "\(seen)")
    }

    /// A source that cannot list (its store is down) releases whoever waits to say READY, but the
    /// table stays uninitialized: nothing is pruned until the listing is in.
    @Test func aFailedListingSettlesTheWaitButDoesNotInitialize() async throws {
        let table = StateTable<Item>(name: "items")
        await table.registerInitializer("kvstore")
        let settled = Task { for await _ in await table.initializationSettled() { return true }; return false }
        try await Task.sleep(for: .milliseconds(20))
        #expect(await table.initializationPending == "waiting for the first full view of kvstore")
        await table.initializationFailed("kvstore", reason: "connection refused")
        #expect(await settled.value)
        #expect(!(await table.isInitialized))
        #expect(await table.initializationPending == "kvstore: connection refused")
        // A source that never registered says nothing about this table.
        await table.initializationFailed("other", reason: "x")
        #expect(await table.initializationPending == "kvstore: connection refused")
        await table.markInitialized("kvstore")
        #expect(await table.isInitialized)
        #expect(await table.initializationPending == nil)
        var n = 0
        for await _ in await table.initializationSettled() { n += 1 }
        #expect(n == 1)
    }

    @Test func noPruneBeforeTheTableIsInitialized() async throws {
        let table = StateTable<Item>(name: "items")
        await table.registerInitializer("kvstore")
        await table.upsert(Item(id: 1, value: "local"))
        let target = MemoryTarget()
        // What an earlier agent left in the target: entries from the kvstore, not yet listed.
        target.state.withLock { $0 = [1: "local", 100: "remote", 101: "remote"] }
        let r = Reconciler(name: "mem", table: table, operations: target, config: fastConfig())
        await r.start()
        #expect(await r.waitSynced())
        await r.refresh()
        #expect(target.snapshot == [1: "local", 100: "remote", 101: "remote"], "pruned before the listing")
        // The listing is in: one remote entry is still wanted, the other is gone.
        await table.upsert(Item(id: 100, value: "remote"))
        await table.markInitialized("kvstore")
        #expect(await table.isInitialized)
        #expect(await eventually { () async in target.snapshot == [1: "local", 100: "remote"] })
        await r.stop()
    }
}
