import Glibc

/// A generic netlink (NETLINK_GENERIC) client. Families (WireGuard, ...) have ids the kernel assigns when
/// they register; the controller (GENL_ID_CTRL) maps names to ids. Each message carries a genlmsghdr
/// (command, family version) before its attributes.
///
/// Like `Netlink`, the socket is bound to the network namespace it was opened in; requests are serialized.
public final class GenericNetlink: Sendable {
    /// The request/reply machinery, on a NETLINK_GENERIC socket.
    let socket: Netlink

    /// A client for the calling thread's network namespace (normally the process's).
    public convenience init() throws {
        self.init(socket: try Netlink(netlinkProtocol: NetlinkABI.netlinkGeneric, namespace: nil))
    }

    /// A client for `namespace` (the socket is opened on a thread that has entered it).
    public convenience init(namespace: NetworkNamespace) throws {
        self.init(socket: try Netlink(netlinkProtocol: NetlinkABI.netlinkGeneric, namespace: namespace))
    }

    private init(socket: Netlink) { self.socket = socket }

    /// The id of family `name` (CTRL_CMD_GETFAMILY). ENOENT when the kernel has no such family: its module
    /// is not built, or could not be loaded (the kernel tries `net-pf-16-proto-16-family-<name>` itself).
    public func familyID(_ name: String) throws -> UInt16 {
        var request = NetlinkRequest(type: GenericNetlinkABI.idCtrl, flags: 0)
        request.appendGenericHeader(command: GenericNetlinkABI.ctrlCmdGetFamily, version: 1)
        request.attribute(GenericNetlinkABI.ctrlAttrFamilyName, string: name)
        let operation = "resolve generic netlink family \(name)"
        for reply in try socket.query(request, dump: false, operation) {
            if let id = NetlinkAttributes(reply.payload.dropFirst(GenericNetlinkABI.headerSize))
                .integer(GenericNetlinkABI.ctrlAttrFamilyID, as: UInt16.self) { return id }
        }
        throw NetlinkError(operation: operation, code: ENOENT, kernelMessage: "no family id in the reply")
    }

    /// A request for `command` of `family`; the caller appends the attributes.
    func request(family: UInt16, command: UInt8, version: UInt8, dump: Bool = false) -> NetlinkRequest {
        var request = NetlinkRequest(type: family, flags: dump ? NetlinkABI.fDump : 0)
        request.appendGenericHeader(command: command, version: version)
        return request
    }

    /// Sends a command and waits for the kernel's ACK.
    func execute(_ request: NetlinkRequest, _ operation: @autoclosure () -> String) throws {
        try socket.execute(request, operation())
    }

    /// Sends a dump request and returns each reply message's payload from its genlmsghdr on.
    func dump(_ request: NetlinkRequest, _ operation: @autoclosure () -> String) throws -> [ArraySlice<UInt8>] {
        try socket.query(request, dump: true, operation()).map(\.payload)
    }
}

/// Numeric constants of <linux/genetlink.h>.
enum GenericNetlinkABI {
    static let headerSize = 4                       // struct genlmsghdr
    static let idCtrl: UInt16 = 0x10                // GENL_ID_CTRL (NLMSG_MIN_TYPE)
    static let ctrlCmdGetFamily: UInt8 = 3          // CTRL_CMD_GETFAMILY
    static let ctrlAttrFamilyID: UInt16 = 1         // CTRL_ATTR_FAMILY_ID, u16
    static let ctrlAttrFamilyName: UInt16 = 2       // CTRL_ATTR_FAMILY_NAME, string
}
