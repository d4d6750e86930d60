import CBPF
import Datapath
import Reconciler

/// One row of `cilium_lb4_services`: slot 0 (the frontend) or a backend slot.
package struct FrontendSlot: TableObject, Hashable {
    package struct Key: Hashable, Sendable {
        package var address: UInt32 // host order; 0 = NodePort on the node's address
        package var port: UInt16
        package var proto: UInt8
        package var slot: UInt16
    }
    package var key: Key
    package var value: Value

    package struct Value: Hashable, Sendable {
        package var backendID: UInt32 = 0
        package var count: UInt16 = 0
        package var revNat: UInt16 = 0
        package var affinityTimeout: UInt32 = 0
        package var flags: UInt32 = 0
    }

    package var mapKey: lb4_key {
        var k = lb4_key()
        k.address = key.address.bigEndian
        k.dport = key.port.bigEndian
        k.backend_slot = key.slot
        k.proto = key.proto
        return k
    }

    package var mapValue: lb4_service {
        lb4_service(backend_id: value.backendID, count: value.count, rev_nat_index: value.revNat,
                    affinity_timeout: value.affinityTimeout, flags: value.flags)
    }
}

/// A row of `cilium_lb4_backends`.
package struct BackendEntry: TableObject, Hashable {
    package var id: UInt32
    package var address: UInt32 // host order
    package var port: UInt16
    package var proto: UInt8
    package var state: lb_backend_state.RawValue
    package var key: UInt32 { id }

    package var mapValue: lb4_backend {
        lb4_backend(address: address.bigEndian, port: port.bigEndian, proto: proto, state: UInt8(state))
    }
}

/// A row of `cilium_lb4_reverse_nat`.
package struct ReverseNATEntry: TableObject, Hashable {
    package var id: UInt16
    package var address: UInt32 // host order; 0 = the node's address
    package var port: UInt16
    package var flags: UInt16
    package var key: UInt16 { id }

    package var mapValue: lb4_reverse_nat { lb4_reverse_nat(address: address.bigEndian, port: port.bigEndian, flags: flags) }
}

/// One frontend's Maglev table (an inner map of `cilium_lb4_maglev`).
package struct MaglevEntry: TableObject, Hashable {
    package var frontend: UInt16
    package var table: [UInt32]
    package var key: UInt16 { frontend }
}

/// Writes Maglev tables: each frontend gets its own array map, put into the
/// outer hash-of-maps; a changed table is built in a new map and swapped in
/// with one update, so the datapath never sees half a table.
struct MaglevOperations: Operations {
    package let outer: BPFMap<UInt16, UInt32>

    package func update(_ e: MaglevEntry) async throws {
        let inner = try BPFMap<UInt32, UInt32>.create(type: BPF_MAP_TYPE_ARRAY, name: "lb4_maglev_in",
                                                      maxEntries: UInt32(e.table.count), flags: UInt32(BPF_F_INNER_MAP))
        try inner.updateBatch(keys: Array(0..<UInt32(e.table.count)), values: e.table)
        try outer.update(e.frontend, UInt32(bitPattern: inner.fd))
    }

    package func delete(_ e: MaglevEntry) async throws {
        _ = try outer.delete(e.frontend)
    }

    package func prune(desired: [MaglevEntry]) async throws {
        let want = Set(desired.map(\.frontend))
        for k in outer.keys() where !want.contains(k) { _ = try outer.delete(k) }
    }
}
