import Reconciler
import Synchronization
import Testing
import TestSupport

/// Holds the updates of some keys until it is opened.
actor Gate {
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func pass() async {
        if isOpen { return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func open() {
        isOpen = true
        for c in waiting { c.resume() }
        waiting.removeAll()
    }

    var held: Int { waiting.count }
}

/// A MemoryTarget whose updates of `gated` keys wait for the gate.
final class GatedTarget: Operations, Sendable {
    typealias Object = Item
    let memory = MemoryTarget()
    let gated = Mutex<Set<Int>>([])
    let gate = Gate()

    init(gated: Set<Int> = []) { self.gated.withLock { $0 = gated } }

    func update(_ object: Item) async throws {
        if gated.withLock({ $0.contains(object.id) }) { await gate.pass() }
        try await memory.update(object)
    }
    func delete(_ object: Item) async throws { try await memory.delete(object) }
    func prune(desired: [Item]) async throws { try await memory.prune(desired: desired) }
}

/// The result of a wait running in a task, once it returned.
final class Outcome: Sendable {
    let value = Mutex<Bool?>(nil)
    func set(_ v: Bool) { value.withLock { $0 = v } }
    var get: Bool? { value.withLock { $0 } }
}

@Suite struct WaitTests {
    func config() -> ReconcilerConfig { fastConfig(minBackoff: .milliseconds(10), maxBackoff: .milliseconds(40)) }

    func started(_ target: GatedTarget, _ table: StateTable<Item>) async -> Reconciler<GatedTarget> {
        let r = Reconciler(name: "wait", table: table, operations: target, config: config())
        await r.start()
        return r
    }

    @Test func waitSyncedReturnsOnlyOnceItsChangeIsDone() async {
        let table = StateTable<Item>(name: "items")
        let target = GatedTarget(gated: [5])
        let r = await started(target, table)
        #expect(await r.waitSynced())
        await table.upsert(Item(id: 5, value: "held"))
        let synced = Outcome(), settled = Outcome()
        let t1 = Task { synced.set(await r.waitSynced()) }
        let t2 = Task { settled.set(await r.waitSettled()) }
        #expect(await eventually { () async in await target.gate.held == 1 })
        try? await Task.sleep(for: .milliseconds(50))
        #expect(synced.get == nil)
        #expect(settled.get == nil)
        await target.gate.open()
        await t1.value
        await t2.value
        #expect(synced.get == true)
        #expect(settled.get == true)
        #expect(target.memory.snapshot == [5: "held"])
        #expect(await r.status(of: 5) == .done)
        await r.stop()
    }

    @Test func aWaitRightAfterAChangeSeesThatChangeApplied() async {
        // A wait names the table's revision at the call: it cannot return on
        // the previous state while the change is still on its way.
        let table = StateTable<Item>(name: "items")
        await table.upsert(contentsOf: (0..<100).map { Item(id: $0, value: "0") })
        let target = GatedTarget()
        let r = await started(target, table)
        #expect(await r.waitSynced())
        for i in 1...300 {
            let id = i % 100
            await table.upsert(Item(id: id, value: "\(i)"))
            #expect(await r.waitSynced())
            #expect(target.memory.snapshot[id] == "\(i)")
            await table.delete(key: (id + 50) % 100)
            #expect(await r.waitSettled())
            #expect(target.memory.snapshot[(id + 50) % 100] == nil)
            await table.upsert(Item(id: (id + 50) % 100, value: "back"))
        }
        await r.stop()
    }

    @Test func waitSettledReturnsOnAnErrorWaitSyncedOnlyOnceItIsRepaired() async {
        let table = StateTable<Item>(name: "items")
        let target = GatedTarget()
        target.memory.failuresLeft.withLock { $0[7] = 5 }
        let r = await started(target, table)
        await table.upsert(Item(id: 7, value: "x"))
        #expect(await r.waitSettled())
        guard case .error(let message, let attempts) = await r.status(of: 7) else {
            Issue.record("expected an error status after waitSettled, got \(String(describing: await r.status(of: 7)))")
            return
        }
        #expect(message.contains("injected failure for 7") && attempts >= 1)
        // The retries (10, 20, 40, 40, 40 ms) repair it: waitSynced returns then.
        #expect(await r.waitSynced(timeout: .seconds(5)))
        #expect(await r.status(of: 7) == .done)
        #expect(target.memory.snapshot[7] == "x")
    }

    @Test func anObjectFailingForeverTimesWaitSyncedOutButNotWaitSettled() async {
        let table = StateTable<Item>(name: "items")
        let target = GatedTarget()
        target.memory.failuresLeft.withLock { $0[3] = .max }
        let r = await started(target, table)
        await table.upsert(contentsOf: [Item(id: 3, value: "never"), Item(id: 4, value: "ok")])
        #expect(await r.waitSettled())
        let t = ContinuousClock.now
        #expect(await r.waitSynced(timeout: .milliseconds(100)) == false)
        let waited = ContinuousClock.now - t
        #expect(waited >= .milliseconds(100) && waited < .seconds(3))
        // Deleting it is what the table wants now: synced.
        await table.delete(key: 3)
        #expect(await r.waitSynced())
        #expect(target.memory.snapshot == [4: "ok"])
        await r.stop()
    }

    @Test func aFailureAfterTheWaitedRevisionDoesNotHoldTheWaiter() async {
        let table = StateTable<Item>(name: "items")
        let target = GatedTarget(gated: [1])
        target.memory.failuresLeft.withLock { $0[2] = .max }
        let r = await started(target, table)
        #expect(await r.waitSynced())
        await table.upsert(Item(id: 1, value: "a"))
        let synced = Outcome()
        let waiter = Task { synced.set(await r.waitSynced()) }
        #expect(await eventually { () async in await target.gate.held == 1 })
        // A later change (above the waiter's revision) that keeps failing.
        await table.upsert(Item(id: 2, value: "b"))
        await target.gate.open()
        await waiter.value
        #expect(synced.get == true)
        #expect(target.memory.snapshot[1] == "a")
        // A wait that includes the failing change does not return true.
        #expect(await r.waitSettled())
        #expect(await r.waitSynced(timeout: .milliseconds(50)) == false)
        await r.stop()
    }

    @Test func aFailureSinceBeforeTheWaitedRevisionHoldsItEvenWhenRetriedLater() async {
        let table = StateTable<Item>(name: "items")
        let target = GatedTarget()
        target.memory.failuresLeft.withLock { $0[9] = .max }
        let r = await started(target, table)
        await table.upsert(Item(id: 9, value: "a"))
        #expect(await r.waitSettled())
        // A newer version of the failing object fails too: still not synced.
        await table.upsert(Item(id: 9, value: "b"))
        #expect(await r.waitSettled())
        #expect(await r.waitSynced(timeout: .milliseconds(50)) == false)
        // Once it succeeds, every earlier revision is synced.
        target.memory.failuresLeft.withLock { $0[9] = 0 }
        #expect(await r.waitSynced())
        #expect(target.memory.snapshot[9] == "b")
        await r.stop()
    }

    @Test func cancellingAWaitEndsItAtOnceAndOnlyOnce() async {
        let table = StateTable<Item>(name: "items")
        let target = GatedTarget(gated: [1])
        let r = await started(target, table)
        await table.upsert(Item(id: 1, value: "a"))
        #expect(await eventually { () async in await target.gate.held == 1 })
        let t = ContinuousClock.now
        let waiters = (0..<20).map { i in
            Task { i % 2 == 0 ? await r.waitSynced(timeout: .seconds(60)) : await r.waitSettled(timeout: .seconds(60)) }
        }
        try? await Task.sleep(for: .milliseconds(20))
        for w in waiters { w.cancel() }
        for w in waiters { #expect(await w.value == false) }
        #expect(ContinuousClock.now - t < .seconds(5))
        // A wait in a task cancelled before it starts returns false when not reached...
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await r.waitSynced(timeout: .seconds(60))
        }
        #expect(await early.value == false)
        // ...and the change completing later resumes nothing twice.
        await target.gate.open()
        #expect(await r.waitSynced())
        // Cancelled, but reached: true.
        let reached = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await r.waitSynced()
        }
        #expect(await reached.value == true)
        await r.stop()
    }

    @Test func deadlinesEndWaitsInTheirOwnOrder() async {
        let table = StateTable<Item>(name: "items")
        let target = GatedTarget(gated: [1])
        let r = await started(target, table)
        await table.upsert(Item(id: 1, value: "a"))
        #expect(await eventually { () async in await target.gate.held == 1 })
        let long = Outcome()
        let longTask = Task { long.set(await r.waitSynced(timeout: .seconds(30))) }
        try? await Task.sleep(for: .milliseconds(10))
        // A shorter deadline registered after a longer one still ends on time.
        let t = ContinuousClock.now
        #expect(await r.waitSettled(timeout: .milliseconds(60)) == false)
        let waited = ContinuousClock.now - t
        #expect(waited >= .milliseconds(60) && waited < .seconds(5))
        #expect(await r.waitSynced(timeout: .zero) == false)
        #expect(long.get == nil)
        await target.gate.open()
        await longTask.value
        #expect(long.get == true)
        await r.stop()
    }

    @Test func manyConcurrentWaiters() async {
        let table = StateTable<Item>(name: "items")
        let target = GatedTarget(gated: [0])
        let r = await started(target, table)
        #expect(await r.waitSynced())
        // 200 waiters on one held change, all resumed when it is done.
        await table.upsert(Item(id: 0, value: "held"))
        let held = (0..<200).map { i in Task { i % 2 == 0 ? await r.waitSynced() : await r.waitSettled() } }
        #expect(await eventually { () async in await target.gate.held == 1 })
        await target.gate.open()
        for w in held { #expect(await w.value) }
        // 500 writers, each waiting for its own change, all at once.
        await withTaskGroup(of: (Int, Bool, String?).self) { group in
            for i in 1...500 {
                group.addTask {
                    await table.upsert(Item(id: i, value: "v\(i)"))
                    let ok = await r.waitSynced()
                    return (i, ok, target.memory.snapshot[i])
                }
            }
            for await (i, ok, value) in group {
                #expect(ok)
                #expect(value == "v\(i)")
            }
        }
        #expect(await r.statusCounts().done == 501)
        await r.stop()
    }

    @Test func stopEndsPendingWaitsAndAWaitBeforeStartLastsUntilSynced() async {
        let table = StateTable<Item>(name: "items")
        await table.upsert(Item(id: 1, value: "a"))
        let target = GatedTarget(gated: [1])
        let r = Reconciler(name: "wait", table: table, operations: target, config: config())
        // Waiting before start: the wait lasts through start and the initial content.
        let before = Outcome()
        let beforeTask = Task { before.set(await r.waitSynced()) }
        try? await Task.sleep(for: .milliseconds(20))
        #expect(before.get == nil)
        await r.start()
        #expect(await eventually { () async in await target.gate.held == 1 })
        let pending = Task { await r.waitSettled(timeout: .seconds(60)) }
        try? await Task.sleep(for: .milliseconds(20))
        await r.stop()
        #expect(await pending.value == false)
        await beforeTask.value
        #expect(before.get == false)
        await target.gate.open()
        // Started again: its waits cover the new start's initial content.
        await r.start()
        #expect(await r.waitSynced())
        #expect(target.memory.snapshot == [1: "a"])
        await r.stop()

        // A wait before the first start returns true once started and synced.
        let r2 = Reconciler(name: "wait2", table: table, operations: GatedTarget(), config: config())
        let waiting = Task { await r2.waitSynced() }
        try? await Task.sleep(for: .milliseconds(20))
        await r2.start()
        #expect(await waiting.value)
        await r2.stop()
    }
}
