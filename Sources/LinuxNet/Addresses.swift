import Glibc

extension Netlink {
    /// Scope of an address or route (RT_SCOPE_*).
    public struct Scope: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        public static let universe = Scope(rawValue: 0)
        public static let site = Scope(rawValue: 200)
        public static let link = Scope(rawValue: 253)
        public static let host = Scope(rawValue: 254)
        public static let nowhere = Scope(rawValue: 255)

        public var description: String {
            switch self {
            case .universe: "global"
            case .site: "site"
            case .link: "link"
            case .host: "host"
            case .nowhere: "nowhere"
            default: "\(rawValue)"
            }
        }
    }

    /// An IPv4 address assigned to a link.
    public struct Address: Sendable, Hashable {
        public var linkIndex: Int32
        /// The local address with the prefix length of its subnet ("10.250.0.1/24").
        public var prefix: IPv4Prefix
        public var scope: Scope
        public var label: String?
    }

    /// Adds `prefix` (address and subnet length, "10.250.0.1/24") to a link. EEXIST if already there.
    public func addAddress(_ prefix: IPv4Prefix, to link: LinkRef, scope: Scope = .universe) throws {
        try changeAddress(NetlinkABI.newAddr, prefix, link, scope: scope, "add address \(prefix) to \(link)")
    }

    public func deleteAddress(_ prefix: IPv4Prefix, from link: LinkRef) throws {
        try changeAddress(NetlinkABI.delAddr, prefix, link, scope: .universe, "delete address \(prefix) from \(link)")
    }

    /// IPv4 addresses of one link, or of all links.
    public func addresses(of link: LinkRef? = nil) throws -> [Address] {
        let index = try link.map { try self.index(of: $0) }
        var request = NetlinkRequest(type: NetlinkABI.getAddr, flags: NetlinkABI.fDump)
        request.appendAddressHeader(prefixLength: 0, scope: 0, index: 0)
        return try query(request, dump: true, "list addresses").compactMap(Address.init(reply:))
            .filter { index == nil || $0.linkIndex == index }
    }

    private func changeAddress(_ type: UInt16, _ prefix: IPv4Prefix, _ link: LinkRef, scope: Scope, _ operation: String) throws {
        let index = try self.index(of: link, for: operation)
        var request = NetlinkRequest(type: type, flags: type == NetlinkABI.newAddr ? NetlinkABI.fCreate | NetlinkABI.fExcl : 0)
        request.appendAddressHeader(prefixLength: prefix.length, scope: scope.rawValue, index: index)
        // Like iproute2 for a non point-to-point address: IFA_LOCAL and IFA_ADDRESS are the same.
        request.attribute(NetlinkABI.ifaLocal, bytes: prefix.address.bytes)
        request.attribute(NetlinkABI.ifaAddress, bytes: prefix.address.bytes)
        try execute(request, operation)
    }
}

extension Netlink.Address {
    init?(reply: NetlinkReply) {
        let p = reply.payload
        guard reply.type == NetlinkABI.newAddr, p.count >= 8, p[p.startIndex] == NetlinkABI.afInet else { return nil }
        let attributes = NetlinkAttributes(p.dropFirst(8))
        guard let address = Netlink.IPv4Address(bytes: attributes[NetlinkABI.ifaLocal] ?? attributes[NetlinkABI.ifaAddress]) else { return nil }
        prefix = Netlink.IPv4Prefix(address, length: p[p.startIndex + 1])
        scope = Netlink.Scope(rawValue: p[p.startIndex + 3])
        linkIndex = Int32(bitPattern: p.loadNative(UInt32.self, at: p.startIndex + 4))
        label = attributes.string(NetlinkABI.ifaLabel)
    }
}
