import CBPF
import Datapath
import Reconciler
import Testing

struct Row: TableObject {
    var id: UInt32
    var value: UInt64
    var key: UInt32 { id }
}

@Suite(.serialized) struct MapOperationsTests {
    @Test func typedMapRoundTrips() throws {
        let map = try BPFMap<endpoint_key, endpoint_value>.create(type: BPF_MAP_TYPE_HASH, name: "t_rt", maxEntries: 16)
        var v = endpoint_value()
        v.ifindex = 7
        v.endpoint_id = 42
        v.mac = (1, 2, 3, 4, 5, 6)
        let k = endpoint_key(addr: 0x0a00_0001)
        try map.update(k, v, mode: .create)
        #expect(throws: BPFError.self) { try map.update(k, v, mode: .create) } // EEXIST
        #expect(map.lookup(k)?.endpoint_id == 42)
        #expect(map.lookup(k)?.mac.5 == 6)
        #expect(try map.delete(k))
        #expect(try !map.delete(k)) // absent is fine
        #expect(map.lookup(k) == nil)
    }

    @Test func reconcilerIntoHashMapThenPruneAcrossBatches() async throws {
        // More entries than one lookup batch (8192), so prune walks several.
        let map = try BPFMap<UInt32, UInt64>.create(type: BPF_MAP_TYPE_HASH, name: "t_prune", maxEntries: 40000)
        let table = StateTable<Row>(name: "rows")
        await table.upsert(contentsOf: (0..<20000).map { Row(id: $0, value: UInt64($0) * 3) })
        // Stale entries left by an earlier agent.
        let stale = Array(UInt32(30000)..<UInt32(35000))
        try map.updateBatch(keys: stale, values: stale.map { UInt64($0) })
        // A live entry with the right value already: kept, not flushed.
        try map.update(5, 15)
        let r = Reconciler(name: "rows", table: table,
                           operations: BPFMapOperations(map: map, key: { $0.id }, value: { $0.value }))
        await r.start()
        #expect(await r.waitSynced())
        #expect(map.count == 20000)
        #expect(map.lookup(19999) == 59997)
        #expect(map.lookup(30000) == nil)
        // Deletes from the table reach the map.
        await table.delete(keys: Array(0..<UInt32(100)))
        let deadline = ContinuousClock.now + .seconds(5)
        while map.count != 19900 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(map.count == 19900)
        #expect(await r.statusCounts().done == 19900)
        await r.stop()
    }

    @Test func perCPUValuesAreReadPerCPU() throws {
        let map = try BPFMap<UInt32, UInt64>.create(type: BPF_MAP_TYPE_PERCPU_ARRAY, name: "t_pcpu", maxEntries: 4)
        let values = try #require(map.lookupPerCPU(2))
        #expect(values.count == Int(libbpf_num_possible_cpus()))
        #expect(values.allSatisfy { $0 == 0 })
    }
}
