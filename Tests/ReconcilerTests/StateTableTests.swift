import Reconciler
import Testing
import TestSupport

@Suite struct StateTableTests {
    @Test func revisionsGrowWithEveryChange() async {
        let t = StateTable<Item>(name: "items")
        let r1 = await t.upsert(Item(id: 1, value: "a"))
        let r2 = await t.upsert(Item(id: 2, value: "b"))
        let r3 = await t.upsert(Item(id: 1, value: "c"))
        #expect(r1 < r2 && r2 < r3)
        #expect(await t.revision(of: 1) == r3)
        #expect(await t.get(1)?.value == "c")
        let r4 = await t.delete(key: 1)
        #expect(r4 > r3)
        #expect(await t.get(1) == nil)
        // Deleting what is absent is not a change.
        #expect(await t.delete(key: 1) == r4)
        #expect(await t.count == 1)
    }

    @Test func watchersSeeSnapshotThenChangesInOrder() async {
        let t = StateTable<Item>(name: "items")
        await t.upsert(Item(id: 1, value: "a"))
        let stream = await t.changes()
        await t.upsert(contentsOf: [Item(id: 2, value: "b"), Item(id: 3, value: "c")])
        await t.delete(key: 1)
        var it = stream.makeAsyncIterator()
        let snapshot = await it.next()!
        #expect(snapshot.map(\.object.id) == [1])
        let batch = await it.next()!
        #expect(batch.map(\.object.id) == [2, 3])
        let del = await it.next()!
        guard case .delete(let o, let rev) = del[0] else { Issue.record("expected a delete"); return }
        #expect(o.id == 1)
        #expect(rev == (await t.revision))
    }

    @Test func replaceAllDeletesTheRest() async {
        let t = StateTable<Item>(name: "items")
        await t.upsert(contentsOf: (1...5).map { Item(id: $0, value: "v") })
        await t.replaceAll([Item(id: 2, value: "x"), Item(id: 9, value: "y")])
        #expect(Set(await t.all().map(\.id)) == [2, 9])
    }

    @Test func finishedWatcherIsRemoved() async {
        let t = StateTable<Item>(name: "items")
        do {
            let s = await t.changes()
            #expect(await t.watcherCount == 1)
            _ = s
        }
        #expect(await eventually { () async in await t.watcherCount == 0 })
    }
}

@Suite struct StateTableChangeSetTests {
    @Test func aKeyGivenTwiceInOneCallIsOneChangeWithTheLastObject() async {
        let t = StateTable<Item>(name: "items")
        let stream = await t.changes(includeExisting: false)
        await t.upsert(contentsOf: [Item(id: 1, value: "a"), Item(id: 2, value: "b"), Item(id: 1, value: "c")])
        var it = stream.makeAsyncIterator()
        let set = await it.next()!
        #expect(set.map(\.object.id) == [2, 1])
        #expect(set.last?.object.value == "c")
        #expect(await t.get(1)?.value == "c")
    }
}
