import Diagnostics
import Glibc

/// A failed BPF or system operation: what was attempted, and the kernel's answer.
public struct BPFError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno < 0 ? -errno : errno
    }

    /// From a libbpf return value (`-errno`) or the global errno.
    static func fromLibbpf(_ operation: String, _ ret: Int32) -> BPFError {
        BPFError(operation, errno: ret < 0 ? -ret : Glibc.errno)
    }

    public var description: String {
        "\(operation): \(errnoText(errno))"
    }
}

@inline(__always)
func check(_ ret: Int32, _ operation: @autoclosure () -> String) throws(BPFError) {
    if ret < 0 { throw BPFError.fromLibbpf(operation(), ret) }
}
