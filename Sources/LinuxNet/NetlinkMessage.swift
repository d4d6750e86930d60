// Encoding of netlink requests and decoding of replies.
// Netlink integers are in host byte order (except addresses and ports, which callers pass as
// network-order bytes); everything is aligned to 4 bytes.

func netlinkAlign(_ n: Int) -> Int { (n + 3) & ~3 }

/// A request being built: nlmsghdr, a family header, then attributes.
struct NetlinkRequest {
    private(set) var bytes: [UInt8]

    init(type: UInt16, flags: UInt16) {
        bytes = []
        bytes.reserveCapacity(256)
        append(UInt32(0))                           // nlmsg_len, set by finalized(sequence:)
        append(type)
        append(flags | NetlinkABI.fRequest)
        append(UInt32(0))                           // nlmsg_seq, set by finalized(sequence:)
        append(UInt32(0))                           // nlmsg_pid: 0 lets the kernel fill in our port
    }

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    mutating func append(bytes more: [UInt8]) { bytes.append(contentsOf: more) }

    private mutating func padToAlignment() {
        bytes.append(contentsOf: repeatElement(0, count: netlinkAlign(bytes.count) - bytes.count))
    }

    mutating func attribute(_ type: UInt16, bytes payload: [UInt8]) {
        append(UInt16(4 + payload.count))
        append(type)
        bytes.append(contentsOf: payload)
        padToAlignment()
    }

    mutating func attribute<T: FixedWidthInteger>(_ type: UInt16, _ value: T) {
        attribute(type, bytes: withUnsafeBytes(of: value) { Array($0) })
    }

    /// Strings (interface names, link kinds) are NUL-terminated, as the kernel's NLA_STRING expects.
    mutating func attribute(_ type: UInt16, string: String) {
        attribute(type, bytes: Array(string.utf8) + [0])
    }

    /// A nested attribute: `body` appends the inner attributes (or a raw header, for VETH_INFO_PEER).
    mutating func nested(_ type: UInt16, _ body: (inout NetlinkRequest) -> Void) {
        let start = bytes.count
        append(UInt16(0))
        append(type)
        body(&self)
        padToAlignment()
        let length = UInt16(bytes.count - start)
        withUnsafeBytes(of: length) { bytes.replaceSubrange(start..<start + 2, with: $0) }
    }

    /// Drops what was appended after the first `count` bytes (an attribute that made a message too big).
    mutating func truncate(to count: Int) { bytes.removeSubrange(count...) }

    // Family headers.

    /// struct genlmsghdr: command, family version, reserved
    mutating func appendGenericHeader(command: UInt8, version: UInt8) {
        append(command); append(version); append(UInt16(0))
    }

    /// struct ifinfomsg
    mutating func appendLinkHeader(index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) {
        append(UInt8(0)); append(UInt8(0)); append(UInt16(0))       // family, pad, type
        append(index); append(flags); append(change)
    }

    /// struct ifaddrmsg
    mutating func appendAddressHeader(prefixLength: UInt8, scope: UInt8, index: Int32) {
        append(NetlinkABI.afInet); append(prefixLength); append(UInt8(0)); append(scope)
        append(UInt32(bitPattern: index))
    }

    /// struct rtmsg
    mutating func appendRouteHeader(destinationLength: UInt8, table: UInt8, protocolNumber: UInt8,
                                    scope: UInt8, type: UInt8) {
        append(NetlinkABI.afInet); append(destinationLength); append(UInt8(0)); append(UInt8(0)) // src_len, tos
        append(table); append(protocolNumber); append(scope); append(type)
        append(UInt32(0))                                                                     // rtm_flags
    }

    /// struct ndmsg
    mutating func appendNeighborHeader(index: Int32, state: UInt16) {
        append(NetlinkABI.afInet); append(UInt8(0)); append(UInt16(0))
        append(index); append(state); append(UInt8(0)); append(UInt8(0))                  // flags, type
    }

    /// The wire bytes with length and sequence filled in; `ack` asks for an ACK, which is how a
    /// non-dump request's end is recognized.
    func finalized(sequence: UInt32, ack: Bool) -> [UInt8] {
        var out = bytes
        withUnsafeBytes(of: UInt32(out.count)) { out.replaceSubrange(0..<4, with: $0) }
        if ack {
            let flags = out[...].loadNative(UInt16.self, at: 6) | NetlinkABI.fAck
            withUnsafeBytes(of: flags) { out.replaceSubrange(6..<8, with: $0) }
        }
        withUnsafeBytes(of: sequence) { out.replaceSubrange(8..<12, with: $0) }
        return out
    }
}

/// One message received from the kernel; `payload` starts after the nlmsghdr.
struct NetlinkReply {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var payload: ArraySlice<UInt8>

    /// Splits a datagram into its messages; stops at a truncated or malformed one.
    static func parse(_ data: ArraySlice<UInt8>) -> [NetlinkReply] {
        var replies: [NetlinkReply] = []
        var offset = data.startIndex
        while data.endIndex - offset >= NetlinkABI.headerSize {
            let length = Int(data.loadNative(UInt32.self, at: offset))
            guard length >= NetlinkABI.headerSize, offset + length <= data.endIndex else { break }
            replies.append(NetlinkReply(type: data.loadNative(UInt16.self, at: offset + 4),
                                        flags: data.loadNative(UInt16.self, at: offset + 6),
                                        sequence: data.loadNative(UInt32.self, at: offset + 8),
                                        payload: data[(offset + NetlinkABI.headerSize)..<(offset + length)]))
            offset += netlinkAlign(length)
        }
        return replies
    }
}

/// Attributes (type -> payload) of one message or nested attribute.
struct NetlinkAttributes {
    private var values: [UInt16: ArraySlice<UInt8>] = [:]

    init(_ data: ArraySlice<UInt8>) {
        for (type, payload) in NetlinkAttributes.list(data) { values[type] = payload }
    }

    /// All attributes in order, repeated types included: the elements of a nested list (whose types are
    /// indexes, or all 0) as well as a message's attributes.
    static func list(_ data: ArraySlice<UInt8>) -> [(type: UInt16, payload: ArraySlice<UInt8>)] {
        var out: [(type: UInt16, payload: ArraySlice<UInt8>)] = []
        var offset = data.startIndex
        while data.endIndex - offset >= 4 {
            let length = Int(data.loadNative(UInt16.self, at: offset))
            guard length >= 4, offset + length <= data.endIndex else { break }
            // Mask NLA_F_NESTED / NLA_F_NET_BYTEORDER: callers know what each attribute holds.
            out.append((data.loadNative(UInt16.self, at: offset + 2) & 0x3fff, data[(offset + 4)..<(offset + length)]))
            offset += netlinkAlign(length)
        }
        return out
    }

    subscript(type: UInt16) -> ArraySlice<UInt8>? { values[type] }

    func integer<T: FixedWidthInteger>(_ type: UInt16, as: T.Type = T.self) -> T? {
        guard let v = values[type], v.count >= MemoryLayout<T>.size else { return nil }
        return v.loadNative(T.self, at: v.startIndex)
    }

    func string(_ type: UInt16) -> String? {
        guard let v = values[type] else { return nil }
        return String(decoding: v.prefix { $0 != 0 }, as: UTF8.self)
    }

    func nested(_ type: UInt16) -> NetlinkAttributes? { values[type].map(NetlinkAttributes.init) }
}

extension ArraySlice<UInt8> {
    /// Reads an integer at an absolute index, without alignment requirements.
    func loadNative<T: FixedWidthInteger>(_: T.Type, at index: Int) -> T {
        withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index - startIndex, as: T.self) }
    }
}
