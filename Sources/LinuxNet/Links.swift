import Glibc

extension Netlink {
    /// Names a link either way the kernel accepts: by name or by ifindex.
    public enum LinkRef: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
        case name(String)
        case index(Int32)

        public init(stringLiteral name: String) { self = .name(name) }

        public var description: String {
            switch self {
            case .name(let name): name
            case .index(let index): "ifindex \(index)"
            }
        }
    }

    public struct LinkStatistics: Sendable, Equatable {
        public var rxPackets: UInt64
        public var txPackets: UInt64
        public var rxBytes: UInt64
        public var txBytes: UInt64
    }

    /// A network interface as RTM_GETLINK reports it.
    public struct Link: Sendable, Hashable {
        public var index: Int32
        public var name: String
        public var mac: MACAddress?
        public var flags: UInt32
        public var mtu: UInt32
        /// The bridge (or other master) the link is enslaved to.
        public var masterIndex: Int32?
        /// IFLA_LINK: for a veth the peer's ifindex (in the peer's namespace), for a VLAN the lower device.
        public var linkIndex: Int32?
        /// The rtnetlink kind ("veth", "bridge", "vxlan"); nil for devices without one (loopback, physical NICs).
        public var kind: String?

        /// Administratively up (IFF_UP).
        public var isUp: Bool { flags & NetlinkABI.iffUp != 0 }
        /// Carrier present (IFF_LOWER_UP); a veth has it once both ends are up.
        public var hasCarrier: Bool { flags & NetlinkABI.iffLowerUp != 0 }
    }

    // MARK: Queries

    /// Looks up one link; nil if there is no such link.
    public func link(_ ref: LinkRef) throws -> Link? {
        var request = NetlinkRequest(type: NetlinkABI.getLink, flags: 0)
        request.appendLinkSelector(ref)
        do {
            return try query(request, dump: false, "look up link \(ref)").lazy.compactMap(Link.init(reply:)).first
        } catch let error as NetlinkError where error.code == ENODEV {
            return nil
        }
    }

    /// A link's packet and byte counters (IFLA_STATS64), nil when it does not exist.
    public func statistics(_ ref: LinkRef) throws -> LinkStatistics? {
        var request = NetlinkRequest(type: NetlinkABI.getLink, flags: 0)
        request.appendLinkSelector(ref)
        let replies: [NetlinkReply]
        do {
            replies = try query(request, dump: false, "read the counters of link \(ref)")
        } catch let error as NetlinkError where error.code == ENODEV {
            return nil
        }
        for reply in replies where reply.type == NetlinkABI.newLink && reply.payload.count >= 16 {
            // struct rtnl_link_stats64 begins rx_packets, tx_packets, rx_bytes, tx_bytes (u64 each).
            guard let raw = NetlinkAttributes(reply.payload.dropFirst(16))[NetlinkABI.iflaStats64], raw.count >= 32 else { continue }
            let v = (0..<4).map { raw.loadNative(UInt64.self, at: raw.startIndex + 8 * $0) }
            return LinkStatistics(rxPackets: v[0], txPackets: v[1], rxBytes: v[2], txBytes: v[3])
        }
        return nil
    }

    /// All links of the namespace, ordered by ifindex.
    public func links() throws -> [Link] {
        var request = NetlinkRequest(type: NetlinkABI.getLink, flags: NetlinkABI.fDump)
        request.appendLinkHeader()
        return try query(request, dump: true, "list links").compactMap(Link.init(reply:)).sorted { $0.index < $1.index }
    }

    /// The ifindex of a link; throws ENODEV if it does not exist.
    public func index(of ref: LinkRef) throws -> Int32 {
        if case .index(let index) = ref { return index }
        guard let link = try link(ref) else { throw NetlinkError(operation: "look up link \(ref)", code: ENODEV) }
        return link.index
    }

    /// `index(of:)` for a change request: a missing link is reported as that request's failure.
    func index(of ref: LinkRef, for operation: String) throws -> Int32 {
        do { return try index(of: ref) } catch let error as NetlinkError {
            throw NetlinkError(operation: operation, code: error.code, kernelMessage: error.kernelMessage)
        }
    }

    // MARK: Creation

    /// Creates a veth pair. With `peerNamespaceFD` the peer is created directly inside that namespace
    /// (under `peerName`), which avoids a name clash with the caller's namespace and a separate move.
    public func createVeth(name: String, peerName: String, peerNamespaceFD: Int32? = nil, mtu: UInt32? = nil) throws {
        try createPair(kind: "veth", name: name, peerName: peerName, peerNamespaceFD: peerNamespaceFD, mtu: mtu)
    }

    /// Creates a netkit pair (Linux 6.7+; in its default L3 mode, both ends passing traffic until a BPF
    /// program is attached). `name` is the primary (host) end, `peerName` the one meant for the workload.
    public func createNetkit(name: String, peerName: String, peerNamespaceFD: Int32? = nil, mtu: UInt32? = nil) throws {
        try createPair(kind: "netkit", name: name, peerName: peerName, peerNamespaceFD: peerNamespaceFD, mtu: mtu)
    }

    private func createPair(kind: String, name: String, peerName: String, peerNamespaceFD: Int32?, mtu: UInt32?) throws {
        var request = NetlinkRequest(type: NetlinkABI.newLink, flags: NetlinkABI.fCreate | NetlinkABI.fExcl)
        request.appendLinkHeader()
        request.attribute(NetlinkABI.iflaIfname, string: name)
        if let mtu { request.attribute(NetlinkABI.iflaMTU, mtu) }
        request.nested(NetlinkABI.iflaLinkinfo) { info in
            info.attribute(NetlinkABI.iflaInfoKind, string: kind)
            info.nested(NetlinkABI.iflaInfoData) { data in
                // VETH_INFO_PEER and IFLA_NETKIT_PEER_INFO (both 1) hold a complete ifinfomsg
                // followed by the peer's own attributes.
                data.nested(NetlinkABI.vethInfoPeer) { peer in
                    peer.appendLinkHeader()
                    peer.attribute(NetlinkABI.iflaIfname, string: peerName)
                    if let mtu { peer.attribute(NetlinkABI.iflaMTU, mtu) }
                    if let peerNamespaceFD { peer.attribute(NetlinkABI.iflaNetNsFD, UInt32(bitPattern: peerNamespaceFD)) }
                }
            }
        }
        try execute(request, "create \(kind) \(name) <-> \(peerName)")
    }

    /// Creates a Linux bridge.
    public func createBridge(name: String, mtu: UInt32? = nil) throws {
        try createLink(name: name, kind: "bridge", mtu: mtu) { _ in }
    }

    /// Creates a VXLAN device in collect_md ("external") mode: one device for all tunnels, with the
    /// remote and VNI chosen per packet by a BPF program (bpf_skb_set_tunnel_key). 8472 is Cilium's port.
    public func createVXLAN(name: String, port: UInt16 = 8472, mtu: UInt32? = nil) throws {
        try createLink(name: name, kind: "vxlan", mtu: mtu) { data in
            data.attribute(NetlinkABI.iflaVxlanCollectMetadata, UInt8(1))
            data.attribute(NetlinkABI.iflaVxlanPort, port.bigEndian)
        }
    }

    /// Creates a WireGuard device (the kernel's, Linux 5.6+): keys, port and peers are set through its generic
    /// netlink family (`GenericNetlink.setWireGuardDevice`). EOPNOTSUPP when the kernel has no WireGuard.
    public func createWireGuard(name: String, mtu: UInt32? = nil) throws {
        try createLink(name: name, kind: "wireguard", mtu: mtu) { _ in }
    }

    private func createLink(name: String, kind: String, mtu: UInt32?, data: (inout NetlinkRequest) -> Void) throws {
        var request = NetlinkRequest(type: NetlinkABI.newLink, flags: NetlinkABI.fCreate | NetlinkABI.fExcl)
        request.appendLinkHeader()
        request.attribute(NetlinkABI.iflaIfname, string: name)
        if let mtu { request.attribute(NetlinkABI.iflaMTU, mtu) }
        request.nested(NetlinkABI.iflaLinkinfo) { info in
            info.attribute(NetlinkABI.iflaInfoKind, string: kind)
            info.nested(NetlinkABI.iflaInfoData, data)
        }
        try execute(request, "create \(kind) \(name)")
    }

    // MARK: Changes

    /// Deletes a link (for a veth, both ends go).
    public func deleteLink(_ ref: LinkRef) throws {
        var request = NetlinkRequest(type: NetlinkABI.delLink, flags: 0)
        request.appendLinkSelector(ref)
        try execute(request, "delete link \(ref)")
    }

    public func setLinkUp(_ ref: LinkRef) throws {
        try changeLink(ref, "set link \(ref) up", flags: NetlinkABI.iffUp, change: NetlinkABI.iffUp) { _ in }
    }

    public func setLinkDown(_ ref: LinkRef) throws {
        try changeLink(ref, "set link \(ref) down", flags: 0, change: NetlinkABI.iffUp) { _ in }
    }

    public func setLinkMTU(_ ref: LinkRef, mtu: UInt32) throws {
        try changeLink(ref, "set mtu \(mtu) on link \(ref)") { $0.attribute(NetlinkABI.iflaMTU, mtu) }
    }

    public func setLinkMAC(_ ref: LinkRef, mac: MACAddress) throws {
        try changeLink(ref, "set mac \(mac) on link \(ref)") { $0.attribute(NetlinkABI.iflaAddress, bytes: mac.bytes) }
    }

    /// Enslaves a link to a master (a bridge), or releases it with `master: nil`.
    public func setLinkMaster(_ ref: LinkRef, master: LinkRef?) throws {
        let operation = master.map { "set master \($0) on link \(ref)" } ?? "release link \(ref) from its master"
        let masterIndex = try master.map { try index(of: $0, for: operation) } ?? 0
        try changeLink(ref, operation) { $0.attribute(NetlinkABI.iflaMaster, UInt32(bitPattern: masterIndex)) }
    }

    /// Moves a link into the namespace `namespaceFD` refers to. The link disappears from this client's view.
    public func moveLink(_ ref: LinkRef, toNamespaceFD namespaceFD: Int32) throws {
        try changeLink(ref, "move link \(ref) to netns fd \(namespaceFD)") {
            $0.attribute(NetlinkABI.iflaNetNsFD, UInt32(bitPattern: namespaceFD))
        }
    }

    /// Renames a link; the kernel refuses (EBUSY) while the link is up.
    public func renameLink(_ ref: LinkRef, to newName: String) throws {
        let operation = "rename link \(ref) to \(newName)"
        // IFLA_IFNAME carries the new name here, so the link has to be selected by index.
        let index = try self.index(of: ref, for: operation)
        var request = NetlinkRequest(type: NetlinkABI.newLink, flags: 0)
        request.appendLinkHeader(index: index)
        request.attribute(NetlinkABI.iflaIfname, string: newName)
        try execute(request, operation)
    }

    /// RTM_NEWLINK without NLM_F_CREATE changes an existing link (ENODEV if it does not exist).
    private func changeLink(_ ref: LinkRef, _ operation: String, flags: UInt32 = 0, change: UInt32 = 0,
                            _ attributes: (inout NetlinkRequest) -> Void) throws {
        var request = NetlinkRequest(type: NetlinkABI.newLink, flags: 0)
        request.appendLinkSelector(ref, flags: flags, change: change)
        attributes(&request)
        try execute(request, operation)
    }
}

extension NetlinkRequest {
    /// An ifinfomsg that selects `ref`: by index in the header, or by IFLA_IFNAME with index 0.
    mutating func appendLinkSelector(_ ref: Netlink.LinkRef, flags: UInt32 = 0, change: UInt32 = 0) {
        switch ref {
        case .index(let index):
            appendLinkHeader(index: index, flags: flags, change: change)
        case .name(let name):
            appendLinkHeader(flags: flags, change: change)
            attribute(NetlinkABI.iflaIfname, string: name)
        }
    }
}

extension Netlink.Link {
    init?(reply: NetlinkReply) {
        let p = reply.payload
        guard reply.type == NetlinkABI.newLink, p.count >= 16 else { return nil }
        let attributes = NetlinkAttributes(p.dropFirst(16))
        index = p.loadNative(Int32.self, at: p.startIndex + 4)
        flags = p.loadNative(UInt32.self, at: p.startIndex + 8)
        name = attributes.string(NetlinkABI.iflaIfname) ?? ""
        mac = attributes[NetlinkABI.iflaAddress].flatMap { Netlink.MACAddress(bytes: Array($0)) }
        mtu = attributes.integer(NetlinkABI.iflaMTU) ?? 0
        masterIndex = attributes.integer(NetlinkABI.iflaMaster, as: Int32.self)
        linkIndex = attributes.integer(NetlinkABI.iflaLink, as: Int32.self)
        kind = attributes.nested(NetlinkABI.iflaLinkinfo)?.string(NetlinkABI.iflaInfoKind)
    }
}
