import Glibc

/// The few ethtool settings the agent and the sandbox need, through the
/// SIOCETHTOOL ioctl (no ethtool binary), in the calling thread's namespace.
public enum Ethtool {
    private static let SIOCETHTOOL: UInt = 0x8946
    private static let ETHTOOL_GGRO: UInt32 = 0x2b
    private static let ETHTOOL_SGRO: UInt32 = 0x2c
    private static let ETHTOOL_STXCSUM: UInt32 = 0x17

    /// struct ethtool_value.
    private struct Value { var cmd: UInt32; var data: UInt32 }

    /// Turns generic receive offload on or off. On a veth it also gives the
    /// device the NAPI context XDP_TX and XDP redirects into it need.
    public static func setGRO(_ on: Bool, device: String) throws(NetlinkError) {
        var v = Value(cmd: ETHTOOL_SGRO, data: on ? 1 : 0)
        try call(device: device, &v, what: "enable GRO on \(device)")
    }

    /// Turns transmit checksum offload on or off. Off, frames leave with
    /// their TCP/UDP checksums complete, as on a wire; on (a veth's default),
    /// they may carry only the pseudo-header sum for the receiver to finish,
    /// which an XDP program at the other end cannot tell apart.
    public static func setTXChecksum(_ on: Bool, device: String) throws(NetlinkError) {
        var v = Value(cmd: ETHTOOL_STXCSUM, data: on ? 1 : 0)
        try call(device: device, &v, what: "set tx checksumming of \(device)")
    }

    public static func gro(device: String) throws(NetlinkError) -> Bool {
        var v = Value(cmd: ETHTOOL_GGRO, data: 0)
        try call(device: device, &v, what: "read GRO of \(device)")
        return v.data != 0
    }

    private static func call(device: String, _ value: inout Value, what: String) throws(NetlinkError) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw NetlinkError(operation: what, code: errno) }
        defer { close(fd) }
        var req = ifreq()
        let name = Array(device.utf8.prefix(Int(IFNAMSIZ) - 1)) + [0]
        withUnsafeMutableBytes(of: &req.ifr_ifrn.ifrn_name) { buf in
            for (i, b) in name.enumerated() { buf[i] = b }
        }
        let r = withUnsafeMutablePointer(to: &value) { vp in
            req.ifr_ifru.ifru_data = UnsafeMutableRawPointer(vp).assumingMemoryBound(to: CChar.self)
            return ioctl(fd, SIOCETHTOOL, &req)
        }
        guard r == 0 else { throw NetlinkError(operation: what, code: errno) }
    }
}
