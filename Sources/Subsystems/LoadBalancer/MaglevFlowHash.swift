extension MaglevTable {
    /// The Maglev hash of a flow (host-order fields), exactly as the datapath
    /// computes it (`maglev_flow_hash` in bpf/lib/lb.h): the slot is this
    /// modulo the table size. A 64-bit finalizer (murmur3's fmix64) over the
    /// tuple and the seed.
    public static func flowHash(saddr: UInt32, daddr: UInt32, sport: UInt16, dport: UInt16, proto: UInt8, seed: UInt32) -> UInt32 {
        var h = (UInt64(saddr) << 32 | UInt64(daddr)) ^ (UInt64(seed) << 32 | UInt64(UInt32(sport) << 16 | UInt32(dport)))
        h ^= UInt64(proto) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return UInt32(truncatingIfNeeded: h)
    }

    /// The 32-bit seed the datapath mixes into flow hashes: the first four bytes of the 12-byte seed.
    public static func flowSeed(_ seed: [UInt8]) -> UInt32 {
        seed.prefix(4).enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }

    /// With `maglev.hashSeed: ""`: a seed every node of the cluster derives
    /// alike from the cluster's name (FNV-1a, stretched to 12 bytes).
    public static func seed(fromClusterName name: String) -> [UInt8] {
        var out: [UInt8] = []
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for round in 0..<2 {
            for b in Array(name.utf8) + [UInt8(round)] {
                h ^= UInt64(b)
                h = h &* 0x0000_0100_0000_01B3
            }
            withUnsafeBytes(of: h.littleEndian) { out += $0 }
        }
        return Array(out.prefix(12))
    }
}
