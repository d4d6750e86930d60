import Diagnostics
import Glibc
import Synchronization

/// A failed netlink request: what was attempted, the errno, and the kernel's extended-ack text if any.
/// Example description: "create veth lxc1234 <-> eth0: File exists".
public struct NetlinkError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var code: Int32
    /// The reason the kernel gave through NETLINK_EXT_ACK, e.g. "Nexthop has invalid gateway".
    public var kernelMessage: String?

    public init(operation: String, code: Int32, kernelMessage: String? = nil) {
        self.operation = operation
        self.code = code
        self.kernelMessage = kernelMessage
    }

    public var description: String {
        let text = "\(operation): \(errnoText(code))"
        guard let kernelMessage, !kernelMessage.isEmpty else { return text }
        return "\(text) (\(kernelMessage))"
    }
}

/// An rtnetlink (NETLINK_ROUTE) client. The socket is bound to the network namespace it was opened in,
/// so `Netlink(namespace:)` gives a client that manages that namespace from any thread.
///
/// Requests are serialized by a mutex (one request/reply exchange at a time); calls block briefly,
/// so they are fine from async code too.
public final class Netlink: Sendable {
    private let fd: Int32
    /// Held for a whole request/reply exchange; holds the last sequence number used.
    private let requestLock = Mutex<UInt32>(0)

    /// A client for the calling thread's network namespace (normally the process's).
    public convenience init() throws {
        self.init(fd: try Netlink.openSocket())
    }

    /// A client for `namespace`: the socket is opened on a dedicated thread that has entered it,
    /// so no thread of the caller ever changes namespace.
    public convenience init(namespace: NetworkNamespace) throws {
        self.init(fd: try namespace.run { try Netlink.openSocket() })
    }

    /// A client for the namespace `namespaceFD` refers to (an open /run/netns/NAME or /proc/PID/ns/net).
    public convenience init(namespaceFD: Int32) throws {
        self.init(fd: try NetworkNamespace.run(inNamespaceFD: namespaceFD) { try Netlink.openSocket() })
    }

    /// A socket of another netlink protocol (`GenericNetlink` keeps a NETLINK_GENERIC one), in `namespace`
    /// or the calling thread's.
    convenience init(netlinkProtocol: Int32, namespace: NetworkNamespace?) throws {
        let open = { try Netlink.openSocket(family: netlinkProtocol) }
        self.init(fd: try namespace.map { try $0.run(open) } ?? open())
    }

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// A netlink socket of `family` (NETLINK_ROUTE unless said otherwise; GenericNetlink and XFRM use others).
    static func openSocket(family: Int32 = NetlinkABI.netlinkRoute) throws -> Int32 {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), family)
        guard fd >= 0 else { throw NetlinkError(operation: "open netlink socket", code: errno) }
        var on: Int32 = 1
        // Best effort: older kernels lack these; errors then simply carry less detail.
        _ = setsockopt(fd, NetlinkABI.solNetlink, NetlinkABI.extAck, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, NetlinkABI.solNetlink, NetlinkABI.capAck, &on, socklen_t(MemoryLayout<Int32>.size))
        // A reply that never comes (it should not happen) turns into an error instead of a hang.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    // MARK: Request/reply

    /// Sends a request that changes state and waits for the kernel's ACK.
    func execute(_ request: NetlinkRequest, _ operation: @autoclosure () -> String) throws {
        try exchange(request, expectDump: false, operation) { _ in }
    }

    /// Sends a request and collects the messages of the reply (a dump, or one answer to a GET).
    func query(_ request: NetlinkRequest, dump: Bool, _ operation: @autoclosure () -> String) throws -> [NetlinkReply] {
        // A dump whose data changed while it ran is flagged NLM_F_DUMP_INTR and must be redone.
        for _ in 0..<5 {
            var replies: [NetlinkReply] = []
            var interrupted = false
            try exchange(request, expectDump: dump, operation) { reply in
                if reply.flags & NetlinkABI.fDumpIntr != 0 { interrupted = true }
                replies.append(reply)
            }
            if !interrupted { return replies }
        }
        throw NetlinkError(operation: operation(), code: EINTR, kernelMessage: "dump kept being interrupted")
    }

    private func exchange(_ request: NetlinkRequest, expectDump: Bool, _ operation: () -> String,
                          _ handle: (NetlinkReply) -> Void) throws {
        try requestLock.withLock { (sequence: inout UInt32) throws -> Void in
            sequence &+= 1
            let seq = sequence
            let message = request.finalized(sequence: seq, ack: !expectDump)
            var kernel = [UInt8](repeating: 0, count: 12)    // struct sockaddr_nl, family AF_NETLINK, pid 0
            withUnsafeBytes(of: UInt16(AF_NETLINK)) { kernel.replaceSubrange(0..<2, with: $0) }
            let sent = message.withUnsafeBytes { msg in
                kernel.withUnsafeBytes { addr in
                    sendto(fd, msg.baseAddress, msg.count, 0,
                           addr.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count))
                }
            }
            guard sent == message.count else { throw NetlinkError(operation: operation(), code: sent < 0 ? errno : EIO) }

            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                // MSG_TRUNC makes recv return the datagram's full size, so truncation is noticed.
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_TRUNC)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw NetlinkError(operation: operation(), code: errno, kernelMessage: "receiving the reply")
                }
                if n > buffer.count { throw NetlinkError(operation: operation(), code: EMSGSIZE, kernelMessage: "reply truncated") }
                for reply in NetlinkReply.parse(buffer[0..<n]) where reply.sequence == seq {
                    switch reply.type {
                    case NetlinkABI.msgError:
                        // An error message with code 0 is the ACK that ends a non-dump request.
                        let code = -reply.payload.prefix(4).loadNativeOrZero(Int32.self)
                        if code == 0 { return }
                        throw NetlinkError(operation: operation(), code: code,
                                           kernelMessage: Netlink.extendedAckMessage(reply))
                    case NetlinkABI.msgDone:
                        // Newer kernels put a dump's error code into NLMSG_DONE.
                        let code = -reply.payload.prefix(4).loadNativeOrZero(Int32.self)
                        if code != 0 { throw NetlinkError(operation: operation(), code: code) }
                        if expectDump { return }
                    case NetlinkABI.msgOverrun:
                        throw NetlinkError(operation: operation(), code: ENOBUFS)
                    default:
                        handle(reply)
                    }
                }
            }
        }
    }

    /// NLMSGERR_ATTR_MSG from an error reply, if the kernel sent one.
    private static func extendedAckMessage(_ reply: NetlinkReply) -> String? {
        guard reply.flags & NetlinkABI.fAckTLVs != 0, reply.payload.count >= 4 + NetlinkABI.headerSize else { return nil }
        // After the errno comes the offending request's header, and its payload unless capped.
        var offset = 4 + NetlinkABI.headerSize
        if reply.flags & NetlinkABI.fCapped == 0 {
            offset = 4 + netlinkAlign(Int(reply.payload.loadNative(UInt32.self, at: reply.payload.startIndex + 4)))
        }
        guard offset <= reply.payload.count else { return nil }
        return NetlinkAttributes(reply.payload.dropFirst(offset)).string(NetlinkABI.errAttrMsg)
    }
}

extension ArraySlice<UInt8> {
    func loadNativeOrZero<T: FixedWidthInteger>(_: T.Type) -> T {
        count >= MemoryLayout<T>.size ? loadNative(T.self, at: startIndex) : 0
    }
}
