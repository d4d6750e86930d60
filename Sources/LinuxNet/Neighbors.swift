extension Netlink {
    /// An IPv4 neighbour (ARP) entry.
    public struct Neighbor: Sendable, Hashable {
        public var linkIndex: Int32
        public var address: IPv4Address
        public var mac: MACAddress?
        /// NUD_* state bits.
        public var state: UInt16

        public var isPermanent: Bool { state & NetlinkABI.nudPermanent != 0 }
    }

    /// Adds a permanent neighbour entry `address` -> `mac` on a link; EEXIST if the entry exists.
    public func addNeighbor(_ address: IPv4Address, mac: MACAddress, on link: LinkRef) throws {
        try sendNeighbor(NetlinkABI.newNeigh, NetlinkABI.fCreate | NetlinkABI.fExcl, address, mac, link,
                         "add neighbor \(address) lladdr \(mac) on \(link)")
    }

    /// Adds or overwrites a permanent neighbour entry (`ip neigh replace ... nud permanent`).
    public func replaceNeighbor(_ address: IPv4Address, mac: MACAddress, on link: LinkRef) throws {
        try sendNeighbor(NetlinkABI.newNeigh, NetlinkABI.fCreate | NetlinkABI.fReplace, address, mac, link,
                         "replace neighbor \(address) lladdr \(mac) on \(link)")
    }

    public func deleteNeighbor(_ address: IPv4Address, on link: LinkRef) throws {
        try sendNeighbor(NetlinkABI.delNeigh, 0, address, nil, link, "delete neighbor \(address) on \(link)")
    }

    /// IPv4 neighbour entries of one link, or of all links.
    public func neighbors(of link: LinkRef? = nil) throws -> [Neighbor] {
        let index = try link.map { try self.index(of: $0) }
        var request = NetlinkRequest(type: NetlinkABI.getNeigh, flags: NetlinkABI.fDump)
        request.appendNeighborHeader(index: 0, state: 0)
        return try query(request, dump: true, "list neighbors").compactMap(Neighbor.init(reply:))
            .filter { index == nil || $0.linkIndex == index }
    }

    private func sendNeighbor(_ type: UInt16, _ flags: UInt16, _ address: IPv4Address, _ mac: MACAddress?,
                              _ link: LinkRef, _ operation: String) throws {
        let index = try self.index(of: link, for: operation)
        var request = NetlinkRequest(type: type, flags: flags)
        request.appendNeighborHeader(index: index, state: NetlinkABI.nudPermanent)
        request.attribute(NetlinkABI.ndaDst, bytes: address.bytes)
        if let mac { request.attribute(NetlinkABI.ndaLladdr, bytes: mac.bytes) }
        try execute(request, operation)
    }
}

extension Netlink.Neighbor {
    init?(reply: NetlinkReply) {
        let p = reply.payload, s = p.startIndex
        guard reply.type == NetlinkABI.newNeigh, p.count >= 12, p[s] == NetlinkABI.afInet else { return nil }
        let attributes = NetlinkAttributes(p.dropFirst(12))
        guard let address = Netlink.IPv4Address(bytes: attributes[NetlinkABI.ndaDst]) else { return nil }
        self.address = address
        linkIndex = p.loadNative(Int32.self, at: s + 4)
        state = p.loadNative(UInt16.self, at: s + 8)
        mac = attributes[NetlinkABI.ndaLladdr].flatMap { Netlink.MACAddress(bytes: Array($0)) }
    }
}
