import Foundation

/// Builds Ethernet + IPv4 + TCP/UDP frames for BPF_PROG_TEST_RUN.
public enum Packets {
    public static func ipv4(_ s: String) -> UInt32 {
        let p = s.split(separator: ".").map { UInt32($0)! }
        return (p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
    }

    /// Network-order u32 as stored in maps.
    public static func be(_ s: String) -> UInt32 { ipv4(s).bigEndian }

    public static func tcp(src: String, dst: String, sport: UInt16, dport: UInt16, payload: Int = 0) -> [UInt8] {
        frame(proto: 6, src: src, dst: dst, l4: ports(sport, dport) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0], payload: payload)
    }

    public static func udp(src: String, dst: String, sport: UInt16, dport: UInt16, payload: Int = 0) -> [UInt8] {
        let len = UInt16(8 + payload)
        return frame(proto: 17, src: src, dst: dst, l4: ports(sport, dport) + [UInt8(len >> 8), UInt8(len & 0xff), 0, 0], payload: payload)
    }

    /// ICMP echo request (type 8) or reply (type 0) with an identifier.
    public static func icmp(src: String, dst: String, type: UInt8, id: UInt16) -> [UInt8] {
        frame(proto: 1, src: src, dst: dst, l4: [type, 0, 0, 0, UInt8(id >> 8), UInt8(id & 0xff), 0, 1], payload: 0)
    }

    public static func ports(_ s: UInt16, _ d: UInt16) -> [UInt8] {
        [UInt8(s >> 8), UInt8(s & 0xff), UInt8(d >> 8), UInt8(d & 0xff)]
    }

    public static func frame(proto: UInt8, src: String, dst: String, l4: [UInt8], payload: Int) -> [UInt8] {
        var eth: [UInt8] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]
        let total = UInt16(20 + l4.count + payload)
        var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 1, 0x40, 0, 64, proto, 0, 0]
        for a in [ipv4(src), ipv4(dst)] {
            ip += [UInt8(a >> 24), UInt8((a >> 16) & 0xff), UInt8((a >> 8) & 0xff), UInt8(a & 0xff)]
        }
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        let c = ~UInt16(sum)
        ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xff)
        eth += ip + l4 + [UInt8](repeating: 0xab, count: payload)
        return eth
    }
}
