import Diagnostics
import Glibc

/// A failed sysctl read or write: which key, what was attempted, the errno.
public struct SysctlError: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var operation: String
    public var code: Int32

    public var description: String { "\(operation) \(key): \(errnoText(code))" }
}

/// Kernel parameters under /proc/sys, by their dotted names ("net.ipv4.ip_forward").
///
/// The net.* keys belong to the network namespace of the thread that opens the file, so
/// `NetworkNamespace.setSysctl` sets them inside a namespace without touching the caller's.
public enum Sysctl {
    static func path(_ key: String) -> String {
        "/proc/sys/" + key.split(separator: ".", omittingEmptySubsequences: false).joined(separator: "/")
    }

    /// The value, without its trailing newline.
    public static func get(_ key: String) throws(SysctlError) -> String {
        let fd = Glibc.open(path(key), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SysctlError(key: key, operation: "read", code: errno) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { throw SysctlError(key: key, operation: "read", code: errno) }
        var text = String(decoding: buffer[0..<n], as: UTF8.self)
        while text.last == "\n" { text.removeLast() }
        return text
    }

    /// Writes `value`; nothing is written when it is already set (a read-only /proc/sys is then fine).
    public static func set(_ key: String, _ value: String) throws(SysctlError) {
        if (try? get(key)) == value { return }
        let fd = Glibc.open(path(key), O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SysctlError(key: key, operation: "write", code: errno) }
        defer { close(fd) }
        let bytes = Array((value + "\n").utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw SysctlError(key: key, operation: "write", code: n < 0 ? errno : EIO) }
    }
}

extension NetworkNamespace {
    /// Sets a net.* sysctl inside this namespace (a dedicated thread enters it; the caller's namespace is untouched).
    public func setSysctl(_ key: String, _ value: String) throws {
        try run { () throws in try Sysctl.set(key, value) }
    }

    /// Reads a net.* sysctl of this namespace.
    public func sysctl(_ key: String) throws -> String {
        try run { () throws in try Sysctl.get(key) }
    }
}
