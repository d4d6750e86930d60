import CBPF
import Reconciler

/// An IPv4 prefix, host order inside, network order in maps.
public struct IPv4Prefix: Hashable, Sendable, CustomStringConvertible {
    public var address: UInt32
    public var length: UInt8

    public init(address: UInt32, length: UInt8) {
        self.length = length
        self.address = length == 0 ? 0 : address & (UInt32.max << (32 - UInt32(length)))
    }

    public init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard (1...2).contains(parts.count), let addr = IPv4Prefix.parseAddress(String(parts[0])) else { return nil }
        let len = parts.count == 2 ? UInt8(parts[1]) : 32
        guard let len, len <= 32 else { return nil }
        self.init(address: addr, length: len)
    }

    static func parseAddress(_ s: String) -> UInt32? {
        let octets = s.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        guard octets.count == 4 else { return nil }
        return octets.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public var description: String {
        "\(address >> 24).\((address >> 16) & 0xff).\((address >> 8) & 0xff).\(address & 0xff)/\(length)"
    }
}

/// Desired content of the ipcache map: which identity a prefix has, and which
/// node hosts it.
public struct IPCacheEntry: TableObject, Equatable {
    public var prefix: IPv4Prefix
    public var identity: UInt32
    /// Node address hosting the prefix; nil for local or world.
    public var tunnelEndpoint: UInt32?
    public var key: IPv4Prefix { prefix }

    public init(prefix: IPv4Prefix, identity: UInt32, tunnelEndpoint: UInt32? = nil) {
        self.prefix = prefix
        self.identity = identity
        self.tunnelEndpoint = tunnelEndpoint
    }

    var mapKey: ipcache_key {
        ipcache_key(prefixlen: UInt32(prefix.length), addr: prefix.address.bigEndian)
    }

    var mapValue: ipcache_value {
        var v = ipcache_value()
        v.identity = identity
        v.tunnel_endpoint = (tunnelEndpoint ?? 0).bigEndian
        return v
    }
}
