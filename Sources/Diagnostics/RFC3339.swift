import Glibc

/// Times as users read them in JSON (Hubble's flows, WireGuard handshakes): RFC 3339 in UTC with nanoseconds.
public enum RFC3339 {
    public static func text(nanoseconds: Int64) -> String {
        let secs = nanoseconds / 1_000_000_000, frac = nanoseconds % 1_000_000_000
        var t = time_t(secs)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(tmv.tm_year + 1900, 4))-\(pad(tmv.tm_mon + 1, 2))-\(pad(tmv.tm_mday, 2))T\(pad(tmv.tm_hour, 2)):"
            + "\(pad(tmv.tm_min, 2)):\(pad(tmv.tm_sec, 2)).\(pad(Int32(frac), 9))Z"
    }
}
