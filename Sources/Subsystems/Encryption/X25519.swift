/// X25519 (RFC 7748): WireGuard's key agreement. The agent needs it for one thing: the public key of the
/// node's private key (the scalar times the base point 9), which it publishes for the other nodes. The
/// arithmetic is in GF(2^255 - 19) with five 51-bit limbs; checked against RFC 7748's vectors and `wg pubkey`.
package enum X25519 {
    typealias Element = [UInt64]

    static let mask: UInt64 = (1 << 51) - 1
    static let zero: Element = [0, 0, 0, 0, 0]
    static let one: Element = [1, 0, 0, 0, 0]

    /// The public key of `privateKey` (32 bytes; clamped here as X25519 does).
    package static func publicKey(_ privateKey: [UInt8]) -> [UInt8] {
        var base = [UInt8](repeating: 0, count: 32)
        base[0] = 9
        return scalarMult(privateKey, base)
    }

    /// A private key as WireGuard makes one: 32 random bytes, clamped.
    package static func clamp(_ key: [UInt8]) -> [UInt8] {
        var k = key
        k[0] &= 248
        k[31] &= 127
        k[31] |= 64
        return k
    }

    /// The X25519 function: scalar `k` times the point with u-coordinate `u` (both 32 bytes, little-endian).
    package static func scalarMult(_ scalar: [UInt8], _ u: [UInt8]) -> [UInt8] {
        precondition(scalar.count == 32 && u.count == 32)
        let k = clamp(scalar)
        let x1 = load(u)
        var x2 = one, z2 = zero, x3 = x1, z3 = one
        var swap: UInt64 = 0
        for t in stride(from: 254, through: 0, by: -1) {
            let bit = UInt64((k[t / 8] >> UInt8(t % 8)) & 1)
            swap ^= bit
            conditionalSwap(&x2, &x3, swap)
            conditionalSwap(&z2, &z3, swap)
            swap = bit
            let a = add(x2, z2), aa = square(a), b = sub(x2, z2), bb = square(b)
            let e = sub(aa, bb), c = add(x3, z3), d = sub(x3, z3)
            let da = mul(d, a), cb = mul(c, b)
            x3 = square(add(da, cb))
            z3 = mul(x1, square(sub(da, cb)))
            x2 = mul(aa, bb)
            z2 = mul(e, add(aa, mul(e, [121665, 0, 0, 0, 0])))
        }
        conditionalSwap(&x2, &x3, swap)
        conditionalSwap(&z2, &z3, swap)
        return store(mul(x2, invert(z2)))
    }

    static func load(_ b: [UInt8]) -> Element {
        var w = [UInt64](repeating: 0, count: 4)
        for i in 0..<32 { w[i / 8] |= UInt64(b[i]) << UInt64(8 * (i % 8)) }
        w[3] &= 0x7FFF_FFFF_FFFF_FFFF
        return [w[0] & mask, ((w[0] >> 51) | (w[1] << 13)) & mask, ((w[1] >> 38) | (w[2] << 26)) & mask,
                ((w[2] >> 25) | (w[3] << 39)) & mask, (w[3] >> 12) & mask]
    }

    /// Limbs back under 2^51 (plus a little in limb 0).
    static func carry(_ a: inout Element) {
        for _ in 0..<2 {
            for i in 0..<4 {
                a[i + 1] += a[i] >> 51
                a[i] &= mask
            }
            a[0] += 19 * (a[4] >> 51)
            a[4] &= mask
        }
    }

    /// The canonical 32 bytes (fully reduced modulo p).
    static func store(_ a: Element) -> [UInt8] {
        var t = a
        carry(&t)
        // q = 1 when t >= p, i.e. when t + 19 reaches 2^255.
        var q = (t[0] + 19) >> 51
        for i in 1..<5 { q = (t[i] + q) >> 51 }
        t[0] += 19 * q
        for i in 0..<4 {
            t[i + 1] += t[i] >> 51
            t[i] &= mask
        }
        t[4] &= mask
        let words = [t[0] | (t[1] << 51), (t[1] >> 13) | (t[2] << 38), (t[2] >> 26) | (t[3] << 25), (t[3] >> 39) | (t[4] << 12)]
        return words.flatMap { w in (0..<8).map { UInt8(truncatingIfNeeded: w >> UInt64(8 * $0)) } }
    }

    static func add(_ a: Element, _ b: Element) -> Element {
        var r = zip(a, b).map { $0 &+ $1 }
        carry(&r)
        return r
    }

    /// a - b, as a + 4p - b (every limb of 4p exceeds a carried limb of b).
    static func sub(_ a: Element, _ b: Element) -> Element {
        let fourP: Element = [0x1F_FFFF_FFFF_FFB4, 0x1F_FFFF_FFFF_FFFC, 0x1F_FFFF_FFFF_FFFC, 0x1F_FFFF_FFFF_FFFC, 0x1F_FFFF_FFFF_FFFC]
        var r = (0..<5).map { a[$0] &+ fourP[$0] &- b[$0] }
        carry(&r)
        return r
    }

    static func mul(_ a: Element, _ b: Element) -> Element {
        func m(_ x: UInt64, _ y: UInt64) -> UInt128 { UInt128(x) * UInt128(y) }
        let b19 = b.map { $0 * 19 }
        var r: [UInt128] = [
            m(a[0], b[0]) + m(a[1], b19[4]) + m(a[2], b19[3]) + m(a[3], b19[2]) + m(a[4], b19[1]),
            m(a[0], b[1]) + m(a[1], b[0]) + m(a[2], b19[4]) + m(a[3], b19[3]) + m(a[4], b19[2]),
            m(a[0], b[2]) + m(a[1], b[1]) + m(a[2], b[0]) + m(a[3], b19[4]) + m(a[4], b19[3]),
            m(a[0], b[3]) + m(a[1], b[2]) + m(a[2], b[1]) + m(a[3], b[0]) + m(a[4], b19[4]),
            m(a[0], b[4]) + m(a[1], b[3]) + m(a[2], b[2]) + m(a[3], b[1]) + m(a[4], b[0]),
        ]
        for i in 0..<4 {
            r[i + 1] += r[i] >> 51
            r[i] &= UInt128(mask)
        }
        r[0] += 19 * (r[4] >> 51)
        r[4] &= UInt128(mask)
        r[1] += r[0] >> 51
        r[0] &= UInt128(mask)
        var out = r.map { UInt64(truncatingIfNeeded: $0) }
        carry(&out)
        return out
    }

    static func square(_ a: Element) -> Element { mul(a, a) }

    /// a^(p-2) = 1/a (Fermat), p - 2 = 2^255 - 21.
    static func invert(_ a: Element) -> Element {
        var exponent = [UInt8](repeating: 0xFF, count: 32)
        exponent[0] = 0xEB
        exponent[31] = 0x7F
        var r = one
        for t in stride(from: 254, through: 0, by: -1) {
            r = square(r)
            if (exponent[t / 8] >> UInt8(t % 8)) & 1 == 1 { r = mul(r, a) }
        }
        return r
    }

    /// Swaps when `flag` is 1, without a branch on it.
    static func conditionalSwap(_ a: inout Element, _ b: inout Element, _ flag: UInt64) {
        let m = 0 &- flag
        for i in 0..<5 {
            let t = m & (a[i] ^ b[i])
            a[i] ^= t
            b[i] ^= t
        }
    }
}
