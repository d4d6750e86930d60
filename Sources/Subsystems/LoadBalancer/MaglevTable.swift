/// Maglev consistent hashing (Eisenbud et al., NSDI 2016) as Cilium uses it to
/// pick a Service backend: every Service gets a lookup table of `M` slots (M a
/// prime from `allowedSizes`), each slot holding a backend id; the datapath
/// hashes a flow's 5-tuple to a slot (`slot(...)`) and sends it to that backend.
/// Backend changes move few flows: removing one of N backends reassigns its own
/// slots and only a small fraction of the others.
///
/// ## Permutations
/// Each backend `key` (its address and port as text, e.g. "10.0.1.5:8080") is
/// hashed with MurmurHash3 x64-128 (Appleby's reference algorithm, written out
/// below) over the key's UTF-8 bytes, seeded with seed bytes 0...3 read as a
/// big-endian `UInt32` (the reference seeds both 64-bit lanes with it), as
/// Cilium's `pkg/maglev` seeds its murmur hash. The two 64-bit halves `h1`,
/// `h2` of the result serve as the paper's two hash functions:
///
///     offset = h1 % M
///     skip   = h2 % (M - 1) + 1
///     permutation[j] = (offset + j * skip) % M      for j in 0..<M
///
/// Since M is prime and 1 <= skip < M, every permutation visits each slot once.
///
/// ## Population and weights
/// Backends with weight 0 are left out; the rest are sorted by key (UTF-8 bytes,
/// then id, then weight) so every node builds the same table whatever order it
/// was given. Then the table is filled in turns; within a turn the backends go
/// in sorted order, and each backend that takes part claims its next preferred
/// slot that is still empty. Weights use a credit counter: every turn backend
/// `i` adds `weight[i]` to its credit, and when the credit reaches `maxWeight`
/// it takes part in that turn and pays `maxWeight` back. That is, backend `i`
/// takes part in turn `n` (n = 0, 1, ...) exactly when
/// `floor((n+1)·w/maxW) > floor(n·w/maxW)`, so over `T` turns it claims
/// `floor(T·w/maxW)` slots: shares proportional to weight, give or take one slot
/// (the last turn ends as soon as the table is full). With equal weights every
/// backend claims in every turn, which is the paper's plain round robin, and
/// the same steps as upstream's `GetLookupTable` (sorted keys, murmur seed from
/// bytes 0...3, round robin); upstream weighs backends with a different
/// counter scheme, so weighted tables differ from upstream's.
///
/// Disruption is statistical, as in the paper: removing one of N backends
/// moves all of its slots plus a few percent of the others (measured over 30
/// seeds with M about 100·N: 2.9% on average for N=10, M=1021; 1.4% for
/// N=100, M=16381).
///
/// ## Flow hash (`slot`)
/// `flowHash` (MaglevFlowHash.swift) is the datapath's formula
/// (`maglev_flow_hash` in bpf/lib/lb.h): 64-bit integer operations over the
/// client address and port, the frontend's address and port (0 for a
/// NodePort, so every node picks alike) and the protocol, in host order, with
/// `flowSeed(_:)` (seed bytes 0...3, little-endian). The slot is the hash
/// modulo M.
public enum MaglevTable {
    /// Upstream's allowed table sizes: primes, so every `skip` is coprime with M.
    public static let allowedSizes: [Int] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071]

    /// Length in bytes of a Maglev hash seed (`maglev.hashSeed`, decoded).
    static let seedLength = 12

    /// One backend of a Service.
    public struct Backend: Sendable, Hashable {
        /// Stable id, written into the table's slots.
        public var id: UInt32
        /// What the permutation is derived from: the backend's address and port
        /// as text, e.g. "10.0.1.5:8080" or "[fd00::5]:8080".
        public var key: String
        /// Relative share of the table (>= 1); 0 leaves the backend out.
        public var weight: UInt16

        public init(id: UInt32, key: String, weight: UInt16 = 1) {
            self.id = id
            self.key = key
            self.weight = weight
        }
    }

    /// `maglev.hashSeed` that cannot be used.
    public struct SeedError: Error, CustomStringConvertible, Sendable, Equatable {
        public var message: String
        public var description: String { message }
    }

    // MARK: - Table

    /// Builds the lookup table of `size` slots, each holding the id of a
    /// backend with weight > 0. Deterministic: the same backends (in any
    /// order), seed and size give the same table on every node. No backend
    /// with weight > 0 gives an empty array.
    ///
    /// - Precondition: `size` is one of `allowedSizes` (callers validate the
    ///   config); `seed` is 12 bytes (`decodeSeed`, or 12 random bytes).
    public static func build(_ backends: [Backend], size: Int, seed: [UInt8]) -> [UInt32] {
        precondition(allowedSizes.contains(size), "Maglev table size \(size) is not one of \(allowedSizes)")
        precondition(seed.count == seedLength, "Maglev hash seed must be \(seedLength) bytes, got \(seed.count)")

        let members = backends.filter { $0.weight > 0 }.sorted(by: keyOrder)
        let n = members.count
        if n == 0 { return [] }

        let m = size
        let murmurSeed = tableHashSeed(seed)
        let maxWeight = UInt32(members.lazy.map(\.weight).max()!)

        // Per backend, flat: the slot it would claim next (the current element
        // of its permutation), its skip, its weight and its weight credit.
        var position = [Int](repeating: 0, count: n)
        var skip = [Int](repeating: 0, count: n)
        var weight = [UInt32](repeating: 0, count: n)
        for (i, backend) in members.enumerated() {
            let p = permutationParameters(key: backend.key, size: m, murmurSeed: murmurSeed)
            position[i] = p.offset
            skip[i] = p.skip
            weight[i] = UInt32(backend.weight)
        }
        var credit = [UInt32](repeating: 0, count: n)

        // Slot -> index into `members`, -1 while empty.
        var owner = [Int32](repeating: -1, count: m)
        var filled = 0
        owner.withUnsafeMutableBufferPointer { owner in
            position.withUnsafeMutableBufferPointer { position in
                credit.withUnsafeMutableBufferPointer { credit in
                    skip.withUnsafeBufferPointer { skip in
                        weight.withUnsafeBufferPointer { weight in
                            while filled < m {
                                for i in 0..<n {
                                    credit[i] &+= weight[i]
                                    if credit[i] < maxWeight { continue }
                                    credit[i] &-= maxWeight
                                    // Next preferred slot that is still empty. The
                                    // permutation covers all M slots and the table is
                                    // not full, so this ends.
                                    var c = position[i]
                                    while owner[c] >= 0 {
                                        c += skip[i]
                                        if c >= m { c -= m }
                                    }
                                    owner[c] = Int32(i)
                                    c += skip[i]
                                    if c >= m { c -= m }
                                    position[i] = c
                                    filled += 1
                                    if filled == m { break }
                                }
                            }
                        }
                    }
                }
            }
        }

        let ids = members.map(\.id)
        return ids.withUnsafeBufferPointer { ids in
            owner.map { ids[Int($0)] }
        }
    }

    /// Sort order of the table's members: key bytes, then id, then weight, so
    /// the result never depends on the input order.
    private static func keyOrder(_ a: Backend, _ b: Backend) -> Bool {
        if a.key != b.key { return a.key.utf8.lexicographicallyPrecedes(b.key.utf8) }
        if a.id != b.id { return a.id < b.id }
        return a.weight < b.weight
    }

    /// The murmur seed of the table hash: seed bytes 0...3, big-endian.
    static func tableHashSeed(_ seed: [UInt8]) -> UInt32 {
        bigEndianWord(seed, at: 0)
    }

    private static func bigEndianWord(_ bytes: [UInt8], at start: Int) -> UInt32 {
        UInt32(bytes[start]) << 24 | UInt32(bytes[start + 1]) << 16 | UInt32(bytes[start + 2]) << 8 | UInt32(bytes[start + 3])
    }

    /// The first element (`offset`) and stride (`skip`) of a backend's
    /// permutation of `size` slots: `permutation[j] = (offset + j·skip) % size`.
    static func permutationParameters(key: String, size: Int, murmurSeed: UInt32) -> (offset: Int, skip: Int) {
        precondition(size >= 2, "Maglev table size must be at least 2")
        var key = key
        let (h1, h2) = key.withUTF8 { murmur3x64_128($0, seed: murmurSeed) }
        let m = UInt64(size)
        return (Int(h1 % m), Int(h2 % (m - 1)) + 1)
    }

    // MARK: - MurmurHash3 x64-128

    /// MurmurHash3_x64_128 of `data` with a 32-bit seed (both lanes start at
    /// `seed`), blocks and tail read little-endian; returns the two output
    /// words (`out[0]`, `out[1]` of the reference implementation).
    static func murmur3x64_128(_ data: UnsafeBufferPointer<UInt8>, seed: UInt32) -> (UInt64, UInt64) {
        let c1: UInt64 = 0x87c3_7b91_1142_53d5
        let c2: UInt64 = 0x4cf5_ad43_2745_937f
        var h1 = UInt64(seed)
        var h2 = UInt64(seed)
        let length = data.count

        @inline(__always) func word(_ at: Int, _ count: Int) -> UInt64 {
            var w: UInt64 = 0
            for b in 0..<count { w |= UInt64(data[at + b]) << (8 * UInt64(b)) }
            return w
        }
        @inline(__always) func mixK1(_ k: UInt64) -> UInt64 { (k &* c1).rotatedLeft(31) &* c2 }
        @inline(__always) func mixK2(_ k: UInt64) -> UInt64 { (k &* c2).rotatedLeft(33) &* c1 }

        let blocks = length / 16
        for block in 0..<blocks {
            let k1 = word(block * 16, 8)
            let k2 = word(block * 16 + 8, 8)
            h1 ^= mixK1(k1)
            h1 = h1.rotatedLeft(27) &+ h2
            h1 = h1 &* 5 &+ 0x52dc_e729
            h2 ^= mixK2(k2)
            h2 = h2.rotatedLeft(31) &+ h1
            h2 = h2 &* 5 &+ 0x3849_5ab5
        }

        let tail = blocks * 16
        let rest = length & 15
        if rest > 8 { h2 ^= mixK2(word(tail + 8, rest - 8)) }
        if rest > 0 { h1 ^= mixK1(word(tail, min(rest, 8))) }

        h1 ^= UInt64(length)
        h2 ^= UInt64(length)
        h1 &+= h2
        h2 &+= h1
        h1 = fmix64(h1)
        h2 = fmix64(h2)
        h1 &+= h2
        h2 &+= h1
        return (h1, h2)
    }

    @inline(__always) static func fmix64(_ x: UInt64) -> UInt64 {
        var x = x
        x ^= x >> 33
        x &*= 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x &*= 0xc4ce_b9fe_1a85_ec53
        x ^= x >> 33
        return x
    }

    // MARK: - Flow hash

    /// The slot a flow hashes to in a table of `size` slots: `flowHash`
    /// (the datapath's formula, bpf/lib/lb.h) modulo the size. `seed` is
    /// `flowSeed(hashSeedBytes)`.
    public static func slot(saddr: UInt32, daddr: UInt32, sport: UInt16, dport: UInt16, proto: UInt8,
                            seed: UInt32, size: Int) -> Int {
        precondition(size > 0 && size <= Int(UInt32.max), "Maglev table size must be in 1...\(UInt32.max)")
        return Int(flowHash(saddr: saddr, daddr: daddr, sport: sport, dport: dport, proto: proto, seed: seed) % UInt32(size))
    }

    // MARK: - Seed

    /// Decodes `maglev.hashSeed`: "" gives nil (the caller picks a random seed);
    /// otherwise the text must be 12 bytes in standard base64, i.e. exactly 16
    /// characters of `A-Z a-z 0-9 + /` (12 bytes need no `=` padding).
    public static func decodeSeed(_ text: String) throws -> [UInt8]? {
        if text.isEmpty { return nil }
        let allowed = "allowed: \"\" (pick a random seed) or \(seedLength) bytes in base64: exactly 16 characters "
            + "of A-Z, a-z, 0-9, '+' and '/', e.g. \"AAECAwQFBgcICQoL\""
        var sextets = [UInt8]()
        sextets.reserveCapacity(16)
        for scalar in text.unicodeScalars {
            guard scalar.isASCII, let v = base64Value(UInt8(scalar.value)) else {
                let what = scalar == "=" ? "'=' padding, which 12 bytes do not need" : "the character '\(scalar.escaped(asASCII: true))'"
                throw SeedError(message: "maglev.hashSeed: \"\(text)\" is not \(seedLength) bytes of base64: it contains \(what); \(allowed)")
            }
            sextets.append(v)
        }
        guard sextets.count == 16 else {
            throw SeedError(message: "maglev.hashSeed: \"\(text)\" is \(sextets.count) characters, not 16; \(allowed)")
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(seedLength)
        for g in stride(from: 0, to: 16, by: 4) {
            let w = UInt32(sextets[g]) << 18 | UInt32(sextets[g + 1]) << 12 | UInt32(sextets[g + 2]) << 6 | UInt32(sextets[g + 3])
            bytes.append(UInt8(truncatingIfNeeded: w >> 16))
            bytes.append(UInt8(truncatingIfNeeded: w >> 8))
            bytes.append(UInt8(truncatingIfNeeded: w))
        }
        return bytes
    }

    private static func base64Value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}

extension UInt64 {
    @inline(__always) fileprivate func rotatedLeft(_ n: UInt64) -> UInt64 {
        (self << n) | (self >> (64 - n))
    }
}
