import Addressing

// Small value types for the addresses rtnetlink carries. They are nested in `Netlink` so they do not
// collide with address types defined elsewhere in the module.

extension Netlink {
    /// An IPv4 address; `value` holds a.b.c.d as a<<24 | b<<16 | c<<8 | d.
    public struct IPv4Address: Sendable, Hashable, Comparable, LosslessStringConvertible {
        public var value: UInt32

        public init(value: UInt32) { self.value = value }

        public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
            value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
        }

        /// Parses dotted-quad notation ("10.250.0.1") the project's one way (`IPv4Text`: no leading zeros).
        public init?(_ text: String) {
            guard case .success(let v) = IPv4Text.address(text) else { return nil }
            value = v
        }

        /// Network byte order, as netlink carries addresses.
        public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }

        init?(bytes: ArraySlice<UInt8>?) {
            guard let bytes, bytes.count == 4 else { return nil }
            value = bytes.reduce(0) { $0 << 8 | UInt32($1) }
        }

        public var description: String { bytes.map(String.init).joined(separator: ".") }

        public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
    }

    /// An address with a prefix length ("10.250.0.1/24"). The address keeps its host bits, so the same
    /// type serves interface addresses and route destinations.
    public struct IPv4Prefix: Sendable, Hashable, LosslessStringConvertible {
        public var address: IPv4Address
        public var length: UInt8

        public init(_ address: IPv4Address, length: UInt8) {
            precondition(length <= 32, "IPv4 prefix length \(length) > 32")
            self.address = address
            self.length = length
        }

        /// Parses "a.b.c.d/n" (`IPv4Text`); a bare address means /32, host bits are kept.
        public init?(_ text: String) {
            guard case .success(let p) = IPv4Text.prefix(text, bareAddress: true, hostBits: true) else { return nil }
            self.init(IPv4Address(value: p.address), length: p.length)
        }

        /// The prefix with its host bits cleared.
        public var network: IPv4Prefix {
            let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << (32 - UInt32(length))
            return IPv4Prefix(IPv4Address(value: address.value & mask), length: length)
        }

        public static let `default` = IPv4Prefix(IPv4Address(value: 0), length: 0)

        /// Whether the two prefixes share an address (one contains the other).
        public func overlaps(_ other: IPv4Prefix) -> Bool {
            let shorter = min(length, other.length)
            let mask: UInt32 = shorter == 0 ? 0 : ~UInt32(0) << (32 - UInt32(shorter))
            return address.value & mask == other.address.value & mask
        }

        public var description: String { "\(address)/\(length)" }
    }

    /// An Ethernet MAC address.
    public struct MACAddress: Sendable, Hashable, LosslessStringConvertible {
        public let bytes: [UInt8]

        public init?(bytes: [UInt8]) {
            guard bytes.count == 6 else { return nil }
            self.bytes = bytes
        }

        /// Parses "aa:bb:cc:dd:ee:ff".
        public init?(_ text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 6 else { return nil }
            var bytes: [UInt8] = []
            for part in parts {
                guard part.count == 2, part.allSatisfy(\.isHexDigit), let b = UInt8(part, radix: 16) else { return nil }
                bytes.append(b)
            }
            self.bytes = bytes
        }

        public var description: String {
            bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
        }
    }
}
