import Reconciler
import Testing
import TestSupport

@Suite struct ReconcilerTests {
    @Test func appliesInitialContentAndChanges() async {
        let table = StateTable<Item>(name: "items")
        await table.upsert(Item(id: 1, value: "a"))
        let target = MemoryTarget()
        let r = Reconciler(name: "mem", table: table, operations: target, config: fastConfig())
        await r.start()
        #expect(await r.waitSynced())
        #expect(target.snapshot == [1: "a"])
        await table.upsert(Item(id: 2, value: "b"))
        await table.delete(key: 1)
        #expect(await eventually { () async in target.snapshot == [2: "b"] })
        #expect(await r.status(of: 2) == .done)
        #expect(await r.status(of: 1) == nil)
        #expect(await r.health() == .ok)
        await r.stop()
        #expect(await r.health() == .stopped)
    }

    @Test func failingObjectGoesErrorThenDoneWithBackoff() async {
        let table = StateTable<Item>(name: "items")
        let target = MemoryTarget()
        target.failuresLeft.withLock { $0[7] = 3 }
        let r = Reconciler(name: "mem", table: table, operations: target, config: fastConfig())
        await r.start()
        await table.upsert(Item(id: 7, value: "x"))
        await table.upsert(Item(id: 8, value: "y"))
        // The healthy object is not held up by the failing one.
        #expect(await eventually { () async in target.snapshot[8] == "y" })
        #expect(await eventually { () async in
            if case .error(let msg, let attempts) = await r.status(of: 7) {
                return msg.contains("injected failure for 7") && attempts >= 1
            }
            return false
        })
        let h = await r.health()
        #expect(h.state == .degraded)
        #expect(h.message.contains("injected failure for 7"))
        #expect(await eventually { () async in await r.status(of: 7) == .done })
        #expect(target.snapshot[7] == "x")
        #expect(await r.health() == .ok)
        // Three failures, each retry later than the last by at least the growing backoff.
        let times = target.attemptTimes.withLock { $0 }
        #expect(times.count == 3)
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        #expect(gaps.count == 2)
        #expect(gaps[0] >= .milliseconds(20))
        #expect(gaps[1] >= .milliseconds(40))
    }

    @Test func backoffDoublesUpToTheCap() {
        let c = ReconcilerConfig()
        #expect(c.backoff(attempts: 1) == .milliseconds(100))
        #expect(c.backoff(attempts: 2) == .milliseconds(200))
        #expect(c.backoff(attempts: 5) == .milliseconds(1600))
        #expect(c.backoff(attempts: 40) == .seconds(60))
    }

    @Test func pruneRemovesOnlyExtras() async {
        let table = StateTable<Item>(name: "items")
        await table.upsert(contentsOf: [Item(id: 1, value: "a"), Item(id: 2, value: "b")])
        let target = MemoryTarget()
        // The target already holds a live entry the table wants and a stale one.
        target.state.withLock { $0 = [1: "a", 99: "stale"] }
        let r = Reconciler(name: "mem", table: table, operations: target, config: fastConfig())
        await r.start()
        #expect(await r.waitSynced())
        #expect(await eventually { () async in target.snapshot == [1: "a", 2: "b"] })
        // Entries the table wants are updated, never deleted, by a prune.
        #expect(!target.calls.withLock { $0 }.contains("delete 1"))
        target.state.withLock { $0[50] = "drift" }
        await r.refresh()
        #expect(target.snapshot == [1: "a", 2: "b"])
        #expect(await r.prunes >= 2)
    }

    @Test func periodicRefreshRepairsDrift() async {
        let table = StateTable<Item>(name: "items")
        await table.upsert(Item(id: 1, value: "a"))
        let target = MemoryTarget()
        var c = fastConfig()
        c.refreshInterval = .milliseconds(100)
        let r = Reconciler(name: "mem", table: table, operations: target, config: c)
        await r.start()
        #expect(await r.waitSynced())
        target.state.withLock { $0 = [5: "foreign"] }
        #expect(await eventually { () async in target.snapshot == [1: "a"] })
        await r.stop()
    }

    @Test func deleteOfObjectStillFailingStopsItsRetries() async {
        let table = StateTable<Item>(name: "items")
        let target = MemoryTarget()
        target.failuresLeft.withLock { $0[3] = 1000 }
        let r = Reconciler(name: "mem", table: table, operations: target, config: fastConfig())
        await r.start()
        await table.upsert(Item(id: 3, value: "never"))
        #expect(await eventually { () async in await r.health().state == .degraded })
        await table.delete(key: 3)
        #expect(await eventually { () async in await r.health() == .ok })
        #expect(await r.status(of: 3) == nil)
    }
}
