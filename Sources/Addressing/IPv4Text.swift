/// The project's one reading of IPv4 text. Every place that accepts an IPv4
/// address or prefix from a user (config, manifests, the CLI, netlink values)
/// asks this parser, so they all agree: four decimal parts 0-255 without
/// leading zeros ("010.0.0.1" is refused, since some tools read it as octal
/// 8.0.0.1 and others as 10.0.0.1), a prefix length 0-32 without leading zeros.
public enum IPv4Text {
    /// Why a text is not what was asked for. Callers word their own messages
    /// from it, or use `message`.
    public enum Problem: Error, Equatable, Sendable {
        case empty
        /// An IPv6 address or prefix (a ":" in it).
        case ipv6
        /// A prefix ("10.0.0.1/32") where an address was asked for; `address` is the part before "/".
        case prefixNotAddress(address: String)
        /// Not four dot-separated decimal parts.
        case malformed
        /// A part with a leading zero; `fixed` is the text without them.
        case leadingZero(part: String, fixed: String)
        /// A part above 255.
        case outOfRange(part: String)
        /// An address where a prefix was asked for (no "/n").
        case noLength
        /// The length after "/" is not 0-32 (or has a leading zero).
        case badLength(String)
        /// Host bits set where a network was asked for; `network` has them cleared.
        case hostBits(network: String)

        /// The problem in words, about `text`.
        public func message(for text: String) -> String {
            let expected = "write four numbers 0-255 separated by dots, e.g. 10.96.0.10"
            switch self {
            case .empty: return "an IPv4 address is required; \(expected)"
            case .ipv6: return "\(text) is an IPv6 address; this datapath is IPv4 only"
            case let .prefixNotAddress(address): return "\"\(text)\" is a CIDR, not an address; write the address alone, e.g. \(address)"
            case .malformed: return "\"\(text)\" is not a valid IPv4 address; \(expected)"
            case let .leadingZero(part, fixed):
                return "\"\(text)\" has a part with a leading zero (\(part)), which some read as octal; write \(fixed)"
            case let .outOfRange(part): return "\"\(text)\" is not a valid IPv4 address: \(part) is out of range 0-255"
            case .noLength: return "\"\(text)\" has no prefix length; write \(text)/32 for one address"
            case let .badLength(length): return "\"\(text)\" is not a valid IPv4 CIDR: the prefix length \"\(length)\" must be a number 0-32"
            case let .hostBits(network): return "\(text) has host bits set; did you mean \(network)?"
            }
        }
    }

    /// A strict dotted quad, as a.b.c.d = a<<24 | b<<16 | c<<8 | d.
    public static func address(_ text: some StringProtocol) -> Result<UInt32, Problem> {
        // The common case in one pass over the bytes (services resolve 100k backends at a time);
        // anything unusual goes the long way below, which names the problem.
        if let value = text.utf8.withContiguousStorageIfAvailable(wellFormed) ?? wellFormed(Array(text.utf8)) {
            return .success(value)
        }
        if text.isEmpty { return .failure(.empty) }
        if text.contains(":") { return .failure(.ipv6) }
        if let slash = text.firstIndex(of: "/") { return .failure(.prefixNotAddress(address: String(text[..<slash]))) }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return .failure(.malformed) }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return .failure(.malformed) }
            if part.count > 1, part.hasPrefix("0") {
                let fixed = parts.map { p in String(p.drop { $0 == "0" }).isEmpty ? "0" : String(p.drop { $0 == "0" }) }
                return .failure(.leadingZero(part: String(part), fixed: fixed.joined(separator: ".")))
            }
            guard part.count <= 3, let octet = UInt32(part), octet <= 255 else { return .failure(.outOfRange(part: String(part))) }
            value = value << 8 | octet
        }
        return .success(value)
    }

    /// A dotted quad with nothing to say about it, or nil.
    private static func wellFormed(_ bytes: some Collection<UInt8>) -> UInt32? {
        var value: UInt32 = 0, octet: UInt32 = 0, digits = 0, dots = 0, leadingZero = false
        for b in bytes {
            if b == 0x2E {
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | octet
                octet = 0
                digits = 0
                dots += 1
            } else if b >= 0x30 && b <= 0x39 {
                if digits == 1 && leadingZero { return nil }
                if digits == 0 { leadingZero = b == 0x30 }
                octet = octet * 10 + UInt32(b - 0x30)
                digits += 1
                guard octet <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        return value << 8 | octet
    }

    /// "a.b.c.d/n". With `bareAddress`, "a.b.c.d" means /32; with `hostBits`
    /// the address may have bits beyond the length (an interface address).
    public static func prefix(_ text: some StringProtocol, bareAddress: Bool = false,
                              hostBits: Bool = false) -> Result<(address: UInt32, length: UInt8), Problem> {
        if text.contains(":") { return .failure(.ipv6) }
        let halves = text.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count <= 2 else { return .failure(.malformed) }
        let address: UInt32
        switch self.address(halves[0]) {
        case .success(let a): address = a
        case .failure(let p): return .failure(p)
        }
        guard halves.count == 2 else { return bareAddress ? .success((address, 32)) : .failure(.noLength) }
        let l = halves[1]
        guard !l.isEmpty, l.count <= 2, l.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), !(l.count == 2 && l.hasPrefix("0")),
              let length = UInt8(l), length <= 32 else { return .failure(.badLength(String(l))) }
        let network = address & mask(length)
        if !hostBits, network != address { return .failure(.hostBits(network: "\(format(network))/\(length)")) }
        return .success((address, length))
    }

    /// The netmask of a prefix length, e.g. 0xffffff00 for 24.
    public static func mask(_ length: UInt8) -> UInt32 { length == 0 ? 0 : UInt32.max << (32 - UInt32(min(length, 32))) }

    /// a.b.c.d.
    public static func format(_ address: UInt32) -> String {
        "\(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff)"
    }
}
