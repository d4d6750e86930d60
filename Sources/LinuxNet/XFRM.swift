import Glibc

// IPsec's kernel side over NETLINK_XFRM: security associations (states, the SAD) and security policies
// (the SPD). IPv4 and ESP only, what transparent encryption needs. The fixed structs are laid out as in
// include/uapi/linux/xfrm.h on 64-bit Linux (offsets in the comments; xfrm_usersa_info is 224 bytes,
// padded to 8 for its u64 lifetimes, and xfrm_userpolicy_info 168).

/// An XFRM client. Like `Netlink`, the socket belongs to the namespace it was opened in; requests are
/// serialized and block briefly.
public final class XFRM: Sendable {
    let netlink: Netlink
    /// Where `statistics()` reads /proc/net/xfrm_stat (nil: the calling thread's namespace).
    let namespace: NetworkNamespace?

    /// A client for the calling thread's network namespace.
    public init() throws {
        netlink = Netlink(fd: try Netlink.openSocket(family: XFRMABI.netlinkXFRM))
        namespace = nil
    }

    /// A client for `namespace` (the socket is opened on a thread inside it).
    public init(namespace: NetworkNamespace) throws {
        netlink = Netlink(fd: try namespace.run { try Netlink.openSocket(family: XFRMABI.netlinkXFRM) })
        self.namespace = namespace
    }

    public enum Mode: UInt8, Sendable { case transport = 0, tunnel = 1 }
    public enum Direction: UInt8, Sendable { case `in` = 0, out = 1, fwd = 2 }
    public enum Action: UInt8, Sendable { case allow = 0, block = 1 }

    /// struct xfrm_mark: a packet matches when `skb->mark & mask == value`.
    public struct Mark: Sendable, Hashable, CustomStringConvertible {
        public var value: UInt32
        public var mask: UInt32
        public init(value: UInt32, mask: UInt32) { self.value = value; self.mask = mask }
        public var description: String { "0x\(String(value, radix: 16))/0x\(String(mask, radix: 16))" }
    }

    /// The transforms of a state and their keys.
    public enum Algorithms: Sendable, Hashable {
        /// XFRMA_ALG_AEAD, e.g. rfc4106(gcm(aes)) with a 20-byte key (AES-128 key + 4-byte salt) and a 128-bit ICV.
        case aead(name: String, key: [UInt8], icvBits: UInt32)
        /// XFRMA_ALG_AUTH_TRUNC + XFRMA_ALG_CRYPT, e.g. hmac(sha256) truncated to 128 bits with cbc(aes).
        case authenticated(auth: String, authKey: [UInt8], truncationBits: UInt32, cipher: String, cipherKey: [UInt8])
    }

    /// An ESP security association (`ip xfrm state`). Keys are left out of `description`.
    public struct State: Sendable, Hashable, CustomStringConvertible {
        public var source: IPv4Address
        public var destination: IPv4Address
        public var spi: UInt32
        public var reqid: UInt32
        public var mode: Mode
        public var algorithms: Algorithms
        /// The anti-replay window in packets. Above 32, or with ESN, it travels in XFRMA_REPLAY_ESN_VAL (a bitmap
        /// window; without the ESN flag the kernel uses it with 32-bit sequence numbers).
        public var replayWindow: UInt32
        /// Extended (64-bit) sequence numbers, XFRM_STATE_ESN.
        public var esn: Bool
        /// Which packets the state applies to (XFRMA_MARK); nil matches unmarked lookups only.
        public var mark: Mark?
        /// The mark the state sets on packets it transformed (XFRMA_SET_MARK, XFRMA_SET_MARK_MASK).
        public var outputMark: Mark?
        /// The last sequence number sent (read from the kernel; not part of a request).
        public var outputSequence: UInt64 = 0
        /// What went through the state (struct xfrm_lifetime_cur; read from the kernel, not part of a request).
        public var packets: UInt64 = 0
        public var bytes: UInt64 = 0

        public init(source: IPv4Address, destination: IPv4Address, spi: UInt32, reqid: UInt32, mode: Mode = .tunnel,
                    algorithms: Algorithms, replayWindow: UInt32 = 0, esn: Bool = false,
                    mark: Mark? = nil, outputMark: Mark? = nil) {
            self.source = source
            self.destination = destination
            self.spi = spi
            self.reqid = reqid
            self.mode = mode
            self.algorithms = algorithms
            self.replayWindow = replayWindow
            self.esn = esn
            self.mark = mark
            self.outputMark = outputMark
        }

        public var description: String {
            var text = "src \(source) dst \(destination) proto esp spi 0x\(hex8(spi)) reqid \(reqid) mode \(mode)"
            if let mark { text += " mark \(mark)" }
            return text
        }
    }

    /// One transform a policy asks for (struct xfrm_user_tmpl): the tunnel's ends and the reqid that binds it
    /// to states.
    public struct Template: Sendable, Hashable {
        public var source: IPv4Address
        public var destination: IPv4Address
        public var reqid: UInt32
        /// 0: any state with the reqid.
        public var spi: UInt32
        public var mode: Mode
        /// Packets without this transform are accepted too (upstream's IN proxy and FWD policies).
        public var optional: Bool

        public init(source: IPv4Address, destination: IPv4Address, reqid: UInt32, spi: UInt32 = 0,
                    mode: Mode = .tunnel, optional: Bool = false) {
            self.source = source
            self.destination = destination
            self.reqid = reqid
            self.spi = spi
            self.mode = mode
            self.optional = optional
        }
    }

    /// A security policy (`ip xfrm policy`). Among the policies that match a packet, the kernel takes the one
    /// with the lowest `priority` value.
    public struct Policy: Sendable, Hashable, CustomStringConvertible {
        public var source: IPv4Prefix
        public var destination: IPv4Prefix
        public var direction: Direction
        public var action: Action
        public var priority: UInt32
        public var mark: Mark?
        public var templates: [Template]

        public init(source: IPv4Prefix, destination: IPv4Prefix, direction: Direction, action: Action = .allow,
                    priority: UInt32 = 0, mark: Mark? = nil, templates: [Template] = []) {
            self.source = source.network
            self.destination = destination.network
            self.direction = direction
            self.action = action
            self.priority = priority
            self.mark = mark
            self.templates = templates
        }

        public var description: String {
            var text = "src \(source) dst \(destination) dir \(direction) priority \(priority)"
            if action == .block { text += " action block" }
            if let mark { text += " mark \(mark)" }
            for t in templates { text += " tmpl src \(t.source) dst \(t.destination) reqid \(t.reqid)" }
            return text
        }
    }

    // MARK: States

    /// Adds a state; EEXIST if one with the same destination, SPI and mark exists.
    public func addState(_ state: State) throws {
        try netlink.execute(state.request(type: XFRMABI.newSA, flags: NetlinkABI.fCreate | NetlinkABI.fExcl),
                            "add xfrm state \(state)")
    }

    /// Updates an existing state in place (ESRCH if there is none). The kernel takes only the output mark (when one
    /// is given), the lifetimes and the selector: other keys or algorithms need a delete and an add.
    public func updateState(_ state: State) throws {
        try netlink.execute(state.request(type: XFRMABI.updSA, flags: 0), "update xfrm state \(state)")
    }

    /// Deletes the state with `state`'s destination, SPI and mark (ESRCH if there is none).
    public func deleteState(_ state: State) throws {
        var request = NetlinkRequest(type: XFRMABI.delSA, flags: 0)
        var id = XFRMStruct(size: 24)                      // struct xfrm_usersa_id
        id.put(state.destination, at: 0)
        id.put(state.spi.bigEndian, at: 16)
        id.put(UInt16(AF_INET), at: 20)
        id.put(XFRMABI.protoESP, at: 22)
        request.append(bytes: id.bytes)
        if let mark = state.mark { request.attribute(XFRMABI.attrMark, bytes: mark.bytes) }
        try netlink.execute(request, "delete xfrm state \(state)")
    }

    /// The namespace's IPv4 ESP states, keys included.
    public func states() throws -> [State] {
        let request = NetlinkRequest(type: XFRMABI.getSA, flags: NetlinkABI.fDump)
        return try netlink.query(request, dump: true, "list xfrm states").compactMap(State.init(reply:))
    }

    // MARK: Policies

    /// Adds a policy; EEXIST if one with the same selector, direction and mark exists.
    public func addPolicy(_ policy: Policy) throws {
        try netlink.execute(policy.request(type: XFRMABI.newPolicy, flags: NetlinkABI.fCreate | NetlinkABI.fExcl),
                            "add xfrm policy \(policy)")
    }

    /// Adds a policy or replaces the one with the same selector, direction and mark.
    public func updatePolicy(_ policy: Policy) throws {
        try netlink.execute(policy.request(type: XFRMABI.updPolicy, flags: 0), "update xfrm policy \(policy)")
    }

    /// Deletes the policy with `policy`'s selector, direction and mark (ENOENT if there is none).
    public func deletePolicy(_ policy: Policy) throws {
        var request = NetlinkRequest(type: XFRMABI.delPolicy, flags: 0)
        var id = XFRMStruct(size: 64)                      // struct xfrm_userpolicy_id: sel, index 56, dir 60
        id.putSelector(source: policy.source, destination: policy.destination)
        id.put(policy.direction.rawValue, at: 60)
        request.append(bytes: id.bytes)
        if let mark = policy.mark { request.attribute(XFRMABI.attrMark, bytes: mark.bytes) }
        try netlink.execute(request, "delete xfrm policy \(policy)")
    }

    /// The namespace's IPv4 policies.
    public func policies() throws -> [Policy] {
        let request = NetlinkRequest(type: XFRMABI.getPolicy, flags: NetlinkABI.fDump)
        return try netlink.query(request, dump: true, "list xfrm policies").compactMap(Policy.init(reply:))
    }

    // MARK: Statistics

    /// The counters of /proc/net/xfrm_stat ("XfrmInNoStates", "XfrmOutPolBlock", ...) of this client's namespace.
    public func statistics() throws -> [String: Int] {
        guard let namespace else { return try XFRM.statistics() }
        return try namespace.run { try XFRM.statistics() }
    }

    /// The counters of the calling thread's namespace (/proc/thread-self/net: /proc/self/net would be the main
    /// thread's), or of the file at `path`.
    public static func statistics(path: String = "/proc/thread-self/net/xfrm_stat") throws -> [String: Int] {
        guard let file = fopen(path, "r") else { throw NetlinkError(operation: "read \(path)", code: errno) }
        defer { fclose(file) }
        var counters: [String: Int] = [:]
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let fields = String(cString: line).split(whereSeparator: \.isWhitespace)
            if fields.count == 2, let value = Int(fields[1]) { counters[String(fields[0])] = value }
        }
        return counters
    }
}

// MARK: - Encoding and decoding

/// NETLINK_XFRM's numbers (include/uapi/linux/xfrm.h).
enum XFRMABI {
    static let netlinkXFRM: Int32 = 6
    static let newSA: UInt16 = 0x10, delSA: UInt16 = 0x11, getSA: UInt16 = 0x12
    static let newPolicy: UInt16 = 0x13, delPolicy: UInt16 = 0x14, getPolicy: UInt16 = 0x15
    static let updPolicy: UInt16 = 0x19, updSA: UInt16 = 0x1a

    static let attrAuth: UInt16 = 1, attrCrypt: UInt16 = 2, attrTemplate: UInt16 = 5
    static let attrAEAD: UInt16 = 18, attrAuthTrunc: UInt16 = 20, attrMark: UInt16 = 21
    static let attrReplayVal: UInt16 = 10
    static let attrReplayESN: UInt16 = 23, attrSetMark: UInt16 = 29, attrSetMarkMask: UInt16 = 30

    static let protoESP = UInt8(IPPROTO_ESP)
    static let stateESN: UInt8 = 128                       // XFRM_STATE_ESN
    static let infinite = UInt64.max                       // XFRM_INF
    static let usersaInfoSize = 224, userpolicyInfoSize = 168, userTemplateSize = 64
}

/// A fixed-size uapi struct being filled in or read, field by field at its offset.
struct XFRMStruct {
    var bytes: [UInt8]

    init(size: Int) { bytes = [UInt8](repeating: 0, count: size) }

    mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value) { bytes.replaceSubrange(offset..<offset + $0.count, with: $0) }
    }

    /// xfrm_address_t: 16 bytes, an IPv4 address in the first 4 (network order).
    mutating func put(_ address: IPv4Address, at offset: Int) {
        bytes.replaceSubrange(offset..<offset + 4, with: address.bytes)
    }

    /// struct xfrm_selector at 0: daddr 0, saddr 16, ports 32-39, family 40, prefixlen_d 42, prefixlen_s 43.
    mutating func putSelector(source: IPv4Prefix, destination: IPv4Prefix) {
        put(destination.address, at: 0)
        put(source.address, at: 16)
        put(UInt16(AF_INET), at: 40)
        put(destination.length, at: 42)
        put(source.length, at: 43)
    }

    /// struct xfrm_lifetime_cfg: byte and packet limits infinite, no expiry times ("ip xfrm"'s default).
    mutating func putInfiniteLifetime(at offset: Int) {
        for i in 0..<4 { put(XFRMABI.infinite, at: offset + 8 * i) }
    }
}

extension ArraySlice<UInt8> {
    fileprivate func address(at offset: Int) -> IPv4Address? { IPv4Address(bytes: self[(startIndex + offset)..<(startIndex + offset + 4)]) }
    fileprivate func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T { loadNative(T.self, at: startIndex + offset) }
    /// A NUL-padded char array (an algorithm name).
    fileprivate func cString(at offset: Int, count: Int) -> String {
        String(decoding: self[(startIndex + offset)..<(startIndex + offset + count)].prefix { $0 != 0 }, as: UTF8.self)
    }
}

extension XFRM.Mark {
    var bytes: [UInt8] { withUnsafeBytes(of: value) { Array($0) } + withUnsafeBytes(of: mask) { Array($0) } }

    init?(_ data: ArraySlice<UInt8>?) {
        guard let data, data.count >= 8 else { return nil }
        self.init(value: data.load(UInt32.self, at: 0), mask: data.load(UInt32.self, at: 4))
    }
}

/// struct xfrm_algo (68 bytes + key) or, with `bits`, xfrm_algo_auth / xfrm_algo_aead (72 + key):
/// name[64], key length in bits at 64, truncation / ICV length in bits at 68.
private func algorithmBytes(name: String, key: [UInt8], bits: UInt32?) -> [UInt8] {
    var header = XFRMStruct(size: bits == nil ? 68 : 72)
    header.bytes.replaceSubrange(0..<min(63, name.utf8.count), with: name.utf8.prefix(63))
    header.put(UInt32(key.count * 8), at: 64)
    if let bits { header.put(bits, at: 68) }
    return header.bytes + key
}

/// (name, key, bits) of an algorithm attribute; `withBits` for xfrm_algo_auth / xfrm_algo_aead.
private func parseAlgorithm(_ data: ArraySlice<UInt8>?, withBits: Bool) -> (String, [UInt8], UInt32)? {
    let header = withBits ? 72 : 68
    guard let data, data.count >= header else { return nil }
    let keyBytes = Int(data.load(UInt32.self, at: 64) + 7) / 8
    guard data.count >= header + keyBytes else { return nil }
    let key = Array(data[(data.startIndex + header)..<(data.startIndex + header + keyBytes)])
    return (data.cString(at: 0, count: 64), key, withBits ? data.load(UInt32.self, at: 68) : 0)
}

private func hex8(_ v: UInt32) -> String {
    let digits = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}

extension XFRM.State {
    func request(type: UInt16, flags: UInt16) -> NetlinkRequest {
        var request = NetlinkRequest(type: type, flags: flags)
        // struct xfrm_usersa_info: sel 0, id {daddr 56, spi 72, proto 76}, saddr 80, lft 96, curlft 160,
        // stats 192, seq 204, reqid 208, family 212, mode 214, replay_window 215, flags 216.
        var info = XFRMStruct(size: XFRMABI.usersaInfoSize)
        info.put(UInt16(AF_INET), at: 40)                    // the selector's family; any addresses
        info.put(destination, at: 56)
        info.put(spi.bigEndian, at: 72)
        info.put(XFRMABI.protoESP, at: 76)
        info.put(source, at: 80)
        info.putInfiniteLifetime(at: 96)
        info.put(reqid, at: 208)
        info.put(UInt16(AF_INET), at: 212)
        info.put(mode.rawValue, at: 214)
        let bitmap = esn || replayWindow > 32
        if !bitmap { info.put(UInt8(replayWindow), at: 215) }  // with the ESN attribute it must be 0
        if esn { info.put(XFRMABI.stateESN, at: 216) }
        request.append(bytes: info.bytes)

        switch algorithms {
        case let .aead(name, key, icvBits):
            request.attribute(XFRMABI.attrAEAD, bytes: algorithmBytes(name: name, key: key, bits: icvBits))
        case let .authenticated(auth, authKey, truncationBits, cipher, cipherKey):
            request.attribute(XFRMABI.attrAuthTrunc, bytes: algorithmBytes(name: auth, key: authKey, bits: truncationBits))
            request.attribute(XFRMABI.attrCrypt, bytes: algorithmBytes(name: cipher, key: cipherKey, bits: nil))
        }
        if bitmap {
            // struct xfrm_replay_state_esn: bmp_len (u32 words) 0, oseq 4, seq 8, oseq_hi 12, seq_hi 16,
            // replay_window 20. The kernel allocates the (zeroed) bitmap itself when only the header is sent.
            var replay = XFRMStruct(size: 24)
            replay.put((max(replayWindow, 1) + 31) / 32, at: 0)
            replay.put(replayWindow, at: 20)
            request.attribute(XFRMABI.attrReplayESN, bytes: replay.bytes)
        }
        if let mark { request.attribute(XFRMABI.attrMark, bytes: mark.bytes) }
        if let outputMark {
            request.attribute(XFRMABI.attrSetMark, outputMark.value)
            request.attribute(XFRMABI.attrSetMarkMask, outputMark.mask)
        }
        return request
    }

    init?(reply: NetlinkReply) {
        let p = reply.payload
        guard reply.type == XFRMABI.newSA, p.count >= XFRMABI.usersaInfoSize,
              p.load(UInt16.self, at: 212) == UInt16(AF_INET), p[p.startIndex + 76] == XFRMABI.protoESP,
              let destination = p.address(at: 56), let source = p.address(at: 80) else { return nil }
        let attributes = NetlinkAttributes(p.dropFirst(XFRMABI.usersaInfoSize))
        let algorithms: XFRM.Algorithms
        if let (name, key, icv) = parseAlgorithm(attributes[XFRMABI.attrAEAD], withBits: true) {
            algorithms = .aead(name: name, key: key, icvBits: icv)
        } else if let (auth, authKey, trunc) = parseAlgorithm(attributes[XFRMABI.attrAuthTrunc], withBits: true),
                  let (cipher, cipherKey, _) = parseAlgorithm(attributes[XFRMABI.attrCrypt], withBits: false) {
            algorithms = .authenticated(auth: auth, authKey: authKey, truncationBits: trunc, cipher: cipher, cipherKey: cipherKey)
        } else {
            return nil
        }
        var window = UInt32(p[p.startIndex + 215])
        if let replay = attributes[XFRMABI.attrReplayESN], replay.count >= 24 { window = replay.load(UInt32.self, at: 20) }
        var outputMark: XFRM.Mark?
        if let value = attributes.integer(XFRMABI.attrSetMark, as: UInt32.self) {
            outputMark = XFRM.Mark(value: value, mask: attributes.integer(XFRMABI.attrSetMarkMask) ?? UInt32.max)
        }
        self.init(source: source, destination: destination, spi: UInt32(bigEndian: p.load(UInt32.self, at: 72)),
                  reqid: p.load(UInt32.self, at: 208), mode: XFRM.Mode(rawValue: p[p.startIndex + 214]) ?? .tunnel,
                  algorithms: algorithms, replayWindow: window, esn: p[p.startIndex + 216] & XFRMABI.stateESN != 0,
                  mark: XFRM.Mark(attributes[XFRMABI.attrMark]), outputMark: outputMark)
        // struct xfrm_usersa_info.curlft (struct xfrm_lifetime_cur at 160): bytes, packets.
        bytes = p.load(UInt64.self, at: 160)
        packets = p.load(UInt64.self, at: 168)
        // struct xfrm_replay_state_esn: oseq 4, oseq_hi 12; struct xfrm_replay_state: oseq 0.
        if let replay = attributes[XFRMABI.attrReplayESN], replay.count >= 16 {
            outputSequence = UInt64(replay.load(UInt32.self, at: 12)) << 32 | UInt64(replay.load(UInt32.self, at: 4))
        } else if let replay = attributes[XFRMABI.attrReplayVal], replay.count >= 4 {
            outputSequence = UInt64(replay.load(UInt32.self, at: 0))
        }
    }
}

extension XFRM.Policy {
    func request(type: UInt16, flags: UInt16) -> NetlinkRequest {
        var request = NetlinkRequest(type: type, flags: flags)
        // struct xfrm_userpolicy_info: sel 0, lft 56, curlft 120, priority 152, index 156, dir 160, action 161,
        // flags 162, share 163.
        var info = XFRMStruct(size: XFRMABI.userpolicyInfoSize)
        info.putSelector(source: source, destination: destination)
        info.putInfiniteLifetime(at: 56)
        info.put(priority, at: 152)
        info.put(direction.rawValue, at: 160)
        info.put(action.rawValue, at: 161)
        request.append(bytes: info.bytes)
        if !templates.isEmpty {
            // struct xfrm_user_tmpl: id {daddr 0, spi 16, proto 20}, family 24, saddr 28, reqid 44, mode 48,
            // share 49, optional 50, aalgos 52, ealgos 56, calgos 60 (all algorithms allowed, as upstream).
            var all: [UInt8] = []
            for t in templates {
                var tmpl = XFRMStruct(size: XFRMABI.userTemplateSize)
                tmpl.put(t.destination, at: 0)
                tmpl.put(t.spi.bigEndian, at: 16)
                tmpl.put(XFRMABI.protoESP, at: 20)
                tmpl.put(UInt16(AF_INET), at: 24)
                tmpl.put(t.source, at: 28)
                tmpl.put(t.reqid, at: 44)
                tmpl.put(t.mode.rawValue, at: 48)
                tmpl.put(UInt8(t.optional ? 1 : 0), at: 50)
                for offset in [52, 56, 60] { tmpl.put(UInt32.max, at: offset) }
                all += tmpl.bytes
            }
            request.attribute(XFRMABI.attrTemplate, bytes: all)
        }
        if let mark { request.attribute(XFRMABI.attrMark, bytes: mark.bytes) }
        return request
    }

    init?(reply: NetlinkReply) {
        let p = reply.payload
        guard reply.type == XFRMABI.newPolicy, p.count >= XFRMABI.userpolicyInfoSize,
              p.load(UInt16.self, at: 40) == UInt16(AF_INET),
              let destination = p.address(at: 0), let source = p.address(at: 16),
              let direction = XFRM.Direction(rawValue: p[p.startIndex + 160]),
              let action = XFRM.Action(rawValue: p[p.startIndex + 161]) else { return nil }
        let attributes = NetlinkAttributes(p.dropFirst(XFRMABI.userpolicyInfoSize))
        var templates: [XFRM.Template] = []
        if let all = attributes[XFRMABI.attrTemplate] {
            for start in stride(from: 0, through: all.count - XFRMABI.userTemplateSize, by: XFRMABI.userTemplateSize) {
                let t = all.dropFirst(start).prefix(XFRMABI.userTemplateSize)
                guard let tDestination = t.address(at: 0), let tSource = t.address(at: 28) else { continue }
                templates.append(XFRM.Template(source: tSource, destination: tDestination, reqid: t.load(UInt32.self, at: 44),
                                               spi: UInt32(bigEndian: t.load(UInt32.self, at: 16)),
                                               mode: XFRM.Mode(rawValue: t[t.startIndex + 48]) ?? .tunnel,
                                               optional: t[t.startIndex + 50] != 0))
            }
        }
        self.init(source: IPv4Prefix(source, length: min(32, p[p.startIndex + 43])),
                  destination: IPv4Prefix(destination, length: min(32, p[p.startIndex + 42])),
                  direction: direction, action: action, priority: p.load(UInt32.self, at: 152),
                  mark: XFRM.Mark(attributes[XFRMABI.attrMark]), templates: templates)
    }
}
