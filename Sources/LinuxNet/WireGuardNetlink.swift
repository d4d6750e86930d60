import Glibc

/// The kernel WireGuard's configuration interface (what `wg` speaks): generic netlink family "wireguard",
/// version 1, include/uapi/linux/wireguard.h. A device is read with a dump of WG_CMD_GET_DEVICE and changed
/// with WG_CMD_SET_DEVICE; the types mirror the attribute trees of both.
public enum WireGuardNetlink {
    public static let family = "wireguard"

    /// A device as WG_CMD_GET_DEVICE reports it.
    public struct Device: Sendable, Equatable {
        public var index: UInt32 = 0
        public var name = ""
        /// nil while the device has no key (the kernel leaves the attributes out).
        public var privateKey: [UInt8]?
        public var publicKey: [UInt8]?
        public var listenPort: UInt16 = 0
        /// 0: none.
        public var fwmark: UInt32 = 0
        public var peers: [Peer] = []
    }

    public struct Peer: Sendable, Equatable {
        public var publicKey: [UInt8]
        public var endpoint: Endpoint?
        public var persistentKeepalive: UInt16 = 0
        /// CLOCK_REALTIME of the last completed handshake; 0 when there was none.
        public var lastHandshakeSeconds: Int64 = 0
        public var lastHandshakeNanoseconds: Int64 = 0
        public var rxBytes: UInt64 = 0
        public var txBytes: UInt64 = 0
        public var allowedIPs: [AllowedIP] = []
    }

    /// A peer's UDP endpoint; a struct sockaddr_in (or sockaddr_in6) on the wire.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// 4 bytes (IPv4) or 16 (IPv6), network order.
        public var address: [UInt8]
        public var port: UInt16

        public init(_ address: IPv4Address, port: UInt16) {
            self.address = address.bytes
            self.port = port
        }

        /// Parses "a.b.c.d:port".
        public init?(_ text: String) {
            guard let colon = text.lastIndex(of: ":"), let address = IPv4Address(String(text[..<colon])),
                  let port = UInt16(text[text.index(after: colon)...]) else { return nil }
            self.init(address, port: port)
        }

        /// "a.b.c.d:port", "[v6]:port".
        public var description: String {
            address.count == 16 ? "[\(addressText(address))]:\(port)" : "\(addressText(address)):\(port)"
        }

        init?(sockaddr: ArraySlice<UInt8>) {
            guard sockaddr.count >= 4 else { return nil }
            let s = sockaddr.startIndex
            port = UInt16(sockaddr[s + 2]) << 8 | UInt16(sockaddr[s + 3])
            switch Int32(sockaddr.loadNative(UInt16.self, at: s)) {
            case AF_INET where sockaddr.count >= 16: address = Array(sockaddr[(s + 4)..<(s + 8)])
            case AF_INET6 where sockaddr.count >= 28: address = Array(sockaddr[(s + 8)..<(s + 24)])
            default: return nil
            }
        }

        /// struct sockaddr_in { family, port (network order), address, zero[8] } (sockaddr_in6 has flowinfo
        /// before the address and scope_id after it).
        var sockaddr: [UInt8] {
            let v6 = address.count == 16
            var out: [UInt8] = withUnsafeBytes(of: UInt16(v6 ? AF_INET6 : AF_INET)) { Array($0) } + [UInt8(port >> 8), UInt8(port & 0xff)]
            out += v6 ? [0, 0, 0, 0] + address + [0, 0, 0, 0] : address + [UInt8](repeating: 0, count: 8)
            return out
        }
    }

    /// An allowed IP prefix of a peer.
    public struct AllowedIP: Sendable, Hashable, CustomStringConvertible {
        /// 4 bytes (IPv4) or 16 (IPv6), network order.
        public var address: [UInt8]
        public var prefixLength: UInt8

        public init(_ prefix: IPv4Prefix) {
            address = prefix.address.bytes
            prefixLength = prefix.length
        }

        init?(attributes a: NetlinkAttributes) {
            guard let family = a.integer(WG.allowedIPFamily, as: UInt16.self), let address = a[WG.allowedIPAddress],
                  let length = a.integer(WG.allowedIPCIDRMask, as: UInt8.self),
                  (Int32(family) == AF_INET && address.count == 4) || (Int32(family) == AF_INET6 && address.count == 16)
            else { return nil }
            self.address = Array(address)
            prefixLength = length
        }

        /// "a.b.c.d/n"
        public var description: String { "\(addressText(address))/\(prefixLength)" }
    }

    /// One WG_CMD_SET_DEVICE: what is nil is left as it is; peers not named are left alone unless `replacePeers`.
    public struct DeviceChange: Sendable, Equatable {
        public var name: String
        public var privateKey: [UInt8]?
        public var listenPort: UInt16?
        public var fwmark: UInt32?
        /// WGDEVICE_F_REPLACE_PEERS: the peers not in `peers` go, and so do the sessions of those that stay.
        public var replacePeers: Bool
        /// Applied in order: the same key may come several times.
        public var peers: [PeerChange]

        public init(name: String, privateKey: [UInt8]? = nil, listenPort: UInt16? = nil, fwmark: UInt32? = nil,
                    replacePeers: Bool = false, peers: [PeerChange] = []) {
            self.name = name
            self.privateKey = privateKey
            self.listenPort = listenPort
            self.fwmark = fwmark
            self.replacePeers = replacePeers
            self.peers = peers
        }
    }

    /// A peer to add, change or remove (a new key adds a peer, unless `updateOnly`).
    public struct PeerChange: Sendable, Equatable {
        public var publicKey: [UInt8]
        /// WGPEER_F_REMOVE_ME
        public var remove: Bool
        /// WGPEER_F_UPDATE_ONLY: nothing happens unless the peer exists.
        public var updateOnly: Bool
        /// WGPEER_F_REPLACE_ALLOWEDIPS: `allowedIPs` replace the peer's instead of being added to them.
        public var replaceAllowedIPs: Bool
        public var endpoint: Endpoint?
        /// Seconds; 0 turns it off. Turning it on while the device is up sends a keepalive at once (and so
        /// a handshake initiation when the peer has no session).
        public var persistentKeepalive: UInt16?
        public var allowedIPs: [AllowedIP]

        public init(publicKey: [UInt8], remove: Bool = false, updateOnly: Bool = false, replaceAllowedIPs: Bool = false,
                    endpoint: Endpoint? = nil, persistentKeepalive: UInt16? = nil, allowedIPs: [AllowedIP] = []) {
            self.publicKey = publicKey
            self.remove = remove
            self.updateOnly = updateOnly
            self.replaceAllowedIPs = replaceAllowedIPs
            self.endpoint = endpoint
            self.persistentKeepalive = persistentKeepalive
            self.allowedIPs = allowedIPs
        }
    }

    // MARK: Wire format

    /// Coalesces a WG_CMD_GET_DEVICE dump; `messages` are the replies' payloads from their genlmsghdr on.
    /// Peers that did not fit continue in later messages (whose device attributes are only the name), and a
    /// peer whose allowed IPs did not fit continues as the next message's first peer, with only its key and
    /// the rest of them. nil when there is no message.
    package static func decodeDevice(_ messages: [ArraySlice<UInt8>]) -> Device? {
        guard !messages.isEmpty else { return nil }
        var device = Device()
        for message in messages {
            let a = NetlinkAttributes(message.dropFirst(GenericNetlinkABI.headerSize))
            if let v = a.integer(WG.deviceIfindex, as: UInt32.self) { device.index = v }
            if let v = a.string(WG.deviceIfname) { device.name = v }
            if let v = a[WG.devicePrivateKey], v.count == 32 { device.privateKey = Array(v) }
            if let v = a[WG.devicePublicKey], v.count == 32 { device.publicKey = Array(v) }
            if let v = a.integer(WG.deviceListenPort, as: UInt16.self) { device.listenPort = v }
            if let v = a.integer(WG.deviceFwmark, as: UInt32.self) { device.fwmark = v }
            for element in NetlinkAttributes.list(a[WG.devicePeers] ?? []) {
                let p = NetlinkAttributes(element.payload)
                guard let key = p[WG.peerPublicKey], key.count == 32 else { continue }
                var peer = Peer(publicKey: Array(key))
                peer.endpoint = p[WG.peerEndpoint].flatMap { Endpoint(sockaddr: $0) }
                peer.persistentKeepalive = p.integer(WG.peerKeepalive) ?? 0
                if let t = p[WG.peerLastHandshake], t.count >= 16 {    // struct __kernel_timespec: s64, s64
                    peer.lastHandshakeSeconds = t.loadNative(Int64.self, at: t.startIndex)
                    peer.lastHandshakeNanoseconds = t.loadNative(Int64.self, at: t.startIndex + 8)
                }
                peer.rxBytes = p.integer(WG.peerRxBytes) ?? 0
                peer.txBytes = p.integer(WG.peerTxBytes) ?? 0
                peer.allowedIPs = NetlinkAttributes.list(p[WG.peerAllowedIPs] ?? [])
                    .compactMap { AllowedIP(attributes: NetlinkAttributes($0.payload)) }
                if device.peers.last?.publicKey == peer.publicKey {
                    device.peers[device.peers.count - 1].allowedIPs += peer.allowedIPs
                } else {
                    device.peers.append(peer)
                }
            }
        }
        return device
    }

    /// The WG_CMD_SET_DEVICE messages for `change`: one, or several when its peers would make a message bigger
    /// than `limit` bytes. The device attributes go in the first; the others carry the name and more peers.
    /// (A peer is never split: Cilium's have a few allowed IPs, not thousands.)
    static func setRequests(_ change: DeviceChange, family: UInt16, limit: Int = 32 << 10) -> [NetlinkRequest] {
        var requests: [NetlinkRequest] = []
        var next = 0                                    // the first peer not in a message yet
        repeat {
            var r = NetlinkRequest(type: family, flags: 0)
            r.appendGenericHeader(command: WG.cmdSetDevice, version: WG.version)
            r.attribute(WG.deviceIfname, string: change.name)
            if requests.isEmpty {
                if change.replacePeers { r.attribute(WG.deviceFlags, WG.deviceFlagReplacePeers) }
                if let key = change.privateKey { r.attribute(WG.devicePrivateKey, bytes: key) }
                if let port = change.listenPort { r.attribute(WG.deviceListenPort, port) }
                if let mark = change.fwmark { r.attribute(WG.deviceFwmark, mark) }
            }
            if next < change.peers.count {
                r.nested(WG.devicePeers | NetlinkABI.nlaFNested) { list in
                    let first = list.bytes.count
                    while next < change.peers.count {
                        let before = list.bytes.count
                        list.appendPeer(change.peers[next])
                        // Too big: the peer goes into the next message, unless it is alone in this one.
                        if list.bytes.count > limit && before > first {
                            list.truncate(to: before)
                            break
                        }
                        next += 1
                    }
                }
            }
            requests.append(r)
        } while next < change.peers.count
        return requests
    }

    /// `setRequests`' messages from their genlmsghdr on (what the kernel parses; the attribute trees of
    /// SET and GET agree, so `decodeDevice` reads them back).
    package static func setPayloads(_ change: DeviceChange, limit: Int = 32 << 10) -> [ArraySlice<UInt8>] {
        setRequests(change, family: 0, limit: limit).map { $0.bytes.dropFirst(NetlinkABI.headerSize) }
    }
}

extension GenericNetlink {
    /// The WireGuard device `name` (a dump of WG_CMD_GET_DEVICE). ENODEV when there is no such link,
    /// EOPNOTSUPP when it is not a WireGuard device, ENOENT when the kernel has no WireGuard.
    public func wireGuardDevice(_ name: String) throws -> WireGuardNetlink.Device {
        let operation = "get WireGuard device \(name)"
        var request = self.request(family: try familyID(WireGuardNetlink.family), command: WG.cmdGetDevice,
                                   version: WG.version, dump: true)
        request.attribute(WG.deviceIfname, string: name)
        guard let device = WireGuardNetlink.decodeDevice(try dump(request, operation)) else {
            throw NetlinkError(operation: operation, code: ENODEV, kernelMessage: "empty reply")
        }
        return device
    }

    /// Applies `change` (several messages when it is big, sent in order).
    public func setWireGuardDevice(_ change: WireGuardNetlink.DeviceChange) throws {
        let family = try familyID(WireGuardNetlink.family)
        for request in WireGuardNetlink.setRequests(change, family: family) {
            try execute(request, "configure WireGuard device \(change.name)")
        }
    }
}

extension NetlinkRequest {
    /// One element of WGDEVICE_A_PEERS.
    fileprivate mutating func appendPeer(_ peer: WireGuardNetlink.PeerChange) {
        nested(NetlinkABI.nlaFNested) { p in
            p.attribute(WG.peerPublicKey, bytes: peer.publicKey)
            let flags = (peer.remove ? WG.peerFlagRemoveMe : 0) | (peer.updateOnly ? WG.peerFlagUpdateOnly : 0)
                | (peer.replaceAllowedIPs ? WG.peerFlagReplaceAllowedIPs : 0)
            if flags != 0 { p.attribute(WG.peerFlags, flags) }
            if let endpoint = peer.endpoint { p.attribute(WG.peerEndpoint, bytes: endpoint.sockaddr) }
            if let interval = peer.persistentKeepalive { p.attribute(WG.peerKeepalive, interval) }
            guard !peer.allowedIPs.isEmpty else { return }
            p.nested(WG.peerAllowedIPs | NetlinkABI.nlaFNested) { list in
                for ip in peer.allowedIPs {
                    list.nested(NetlinkABI.nlaFNested) { a in
                        a.attribute(WG.allowedIPFamily, UInt16(ip.address.count == 16 ? AF_INET6 : AF_INET))
                        a.attribute(WG.allowedIPAddress, bytes: ip.address)
                        a.attribute(WG.allowedIPCIDRMask, ip.prefixLength)
                    }
                }
            }
        }
    }
}

/// inet_ntop of 4 or 16 bytes.
private func addressText(_ address: [UInt8]) -> String {
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    let family = address.count == 16 ? AF_INET6 : AF_INET
    _ = address.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Numeric constants of <linux/wireguard.h>.
private enum WG {
    static let version: UInt8 = 1                   // WG_GENL_VERSION
    static let cmdGetDevice: UInt8 = 0
    static let cmdSetDevice: UInt8 = 1

    // WGDEVICE_A_*
    static let deviceIfindex: UInt16 = 1            // u32
    static let deviceIfname: UInt16 = 2             // string
    static let devicePrivateKey: UInt16 = 3         // 32 bytes
    static let devicePublicKey: UInt16 = 4          // 32 bytes
    static let deviceFlags: UInt16 = 5              // u32
    static let deviceListenPort: UInt16 = 6         // u16, host order
    static let deviceFwmark: UInt16 = 7             // u32
    static let devicePeers: UInt16 = 8              // nested list of peers
    static let deviceFlagReplacePeers: UInt32 = 1 << 0

    // WGPEER_A_*
    static let peerPublicKey: UInt16 = 1
    static let peerFlags: UInt16 = 3                // u32
    static let peerEndpoint: UInt16 = 4             // struct sockaddr_in / sockaddr_in6
    static let peerKeepalive: UInt16 = 5            // u16 PERSISTENT_KEEPALIVE_INTERVAL
    static let peerLastHandshake: UInt16 = 6        // struct __kernel_timespec
    static let peerRxBytes: UInt16 = 7              // u64
    static let peerTxBytes: UInt16 = 8              // u64
    static let peerAllowedIPs: UInt16 = 9           // nested list of allowed IPs
    static let peerFlagRemoveMe: UInt32 = 1 << 0
    static let peerFlagReplaceAllowedIPs: UInt32 = 1 << 1
    static let peerFlagUpdateOnly: UInt32 = 1 << 2

    // WGALLOWEDIP_A_*
    static let allowedIPFamily: UInt16 = 1          // u16
    static let allowedIPAddress: UInt16 = 2         // struct in_addr / in6_addr
    static let allowedIPCIDRMask: UInt16 = 3        // u8
}
