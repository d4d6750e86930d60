import Diagnostics
import Foundation
import Glibc

/// Failure while reading or writing an HTTP message on a socket.
enum WireError: Error, Equatable {
    case closed                 // peer closed in the middle of a message
    case timeout
    case tooLarge               // body above the limit
    case headTooLarge           // request/status line + headers above the limit
    case malformed(String)
    case io(Int32)              // errno

}

/// Thin wrappers over the unix-socket syscalls used by the server and the client.
package enum UnixSocket {
    /// sun_path holds 108 bytes including the terminating NUL.
    package static let maxPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    package static func address(_ path: String) -> sockaddr_un? {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= maxPathLength, !bytes.contains(0) else { return nil }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        return addr
    }

    /// A new blocking, close-on-exec stream socket; returns errno on failure.
    package static func makeSocket() -> Result<Int32, Errno> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        return fd >= 0 ? .success(fd) : .failure(Errno(errno))
    }

    package static func withSockaddr<R>(_ addr: sockaddr_un, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var addr = addr
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    /// Connects to `path`. With a timeout, connect/send block at most that long.
    package static func connect(path: String, timeout: TimeInterval?) -> Result<Int32, Errno> {
        guard let addr = address(path) else { return .failure(Errno(ENAMETOOLONG)) }
        let fd: Int32
        switch makeSocket() {
        case .success(let s): fd = s
        case .failure(let e): return .failure(e)
        }
        if let timeout { setTimeout(fd, SO_SNDTIMEO, timeout) }
        var rc: Int32
        repeat {
            rc = withSockaddr(addr) { Glibc.connect(fd, $0, $1) }
        } while rc < 0 && errno == EINTR
        if rc < 0 {
            let code = errno
            close(fd)
            return .failure(Errno(code))
        }
        return .success(fd)
    }

    /// Seconds as a Duration, clamped to [0, ~30 years] (accepts .infinity).
    static func duration(_ seconds: TimeInterval) -> Duration {
        .seconds(seconds.isNaN ? 0 : min(max(0, seconds), 1e9))
    }

    static func setTimeout(_ fd: Int32, _ option: Int32, _ seconds: TimeInterval) {
        let clamped = seconds.isNaN ? 0 : min(max(0, seconds), 1e9)
        let whole = clamped.rounded(.down)
        var tv = timeval(tv_sec: Int(whole), tv_usec: Int((clamped - whole) * 1_000_000))
        if tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1000 }
        _ = setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes all bytes (no SIGPIPE). Throws `.timeout` when SO_SNDTIMEO expires.
    static func writeAll(_ fd: Int32, _ data: Data) throws(WireError) {
        var failure: WireError?
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard var p = raw.baseAddress else { return }
            var left = raw.count
            while left > 0 {
                let n = send(fd, p, left, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = (errno == EAGAIN || errno == EWOULDBLOCK) ? .timeout : .io(errno)
                    return
                }
                p += n
                left -= n
            }
        }
        if let failure { throw failure }
    }

    /// Waits until `fd` is readable. `deadline == nil` waits forever.
    static func waitReadable(_ fd: Int32, deadline: ContinuousClock.Instant?) throws(WireError) {
        while true {
            var ms: Int32 = -1
            if let deadline {
                let left = deadline - .now
                if left <= .zero { throw .timeout }
                let (s, atto) = left.components
                ms = Int32(clamping: s * 1000 + atto / 1_000_000_000_000_000 + 1)
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&pfd, 1, ms)
            if rc > 0 { return }
            if rc == 0 { continue }  // loop re-checks the deadline
            if errno != EINTR { throw .io(errno) }
        }
    }
}

/// errno value wrapper.
package struct Errno: Error, Equatable {
    package let code: Int32
    package init(_ code: Int32) { self.code = code }
    package var text: String { errnoText(code) }
}

/// Buffered blocking reader/writer on a connected socket, used by one thread at a time.
final class SocketConnection {
    let fd: Int32
    /// Reads fail with `.timeout` after this instant; nil waits forever.
    var deadline: ContinuousClock.Instant?
    private var buffer: [UInt8] = []
    private var start = 0
    private var scratch = [UInt8](repeating: 0, count: 64 * 1024)

    init(fd: Int32) { self.fd = fd }

    var buffered: Int { buffer.count - start }

    /// Reads more bytes into the buffer; false on EOF.
    private func fill() throws(WireError) -> Bool {
        if start > 0 && (start == buffer.count || start > 64 * 1024) {
            buffer.removeFirst(start)
            start = 0
        }
        try UnixSocket.waitReadable(fd, deadline: deadline)
        while true {
            let n = scratch.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer.append(contentsOf: scratch[0..<n])
                return true
            }
            if n == 0 { return false }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw .timeout }
            if errno == ECONNRESET { throw .closed }
            throw .io(errno)
        }
    }

    /// One line without its CRLF/LF. nil on EOF before any byte of the line.
    /// `limit` bounds the line length (throws `.headTooLarge`).
    func readLine(limit: Int) throws(WireError) -> String? {
        var scanned = start
        while true {
            if let nl = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = nl
                if end > start && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                if end - start > limit { throw .headTooLarge }
                let line = String(decoding: buffer[start..<end], as: UTF8.self)
                start = nl + 1
                return line
            }
            if buffer.count - start > limit { throw .headTooLarge }
            scanned = buffer.count
            let before = start
            guard try fill() else {
                if buffered == 0 { return nil }
                throw .closed
            }
            scanned -= before - start  // fill() may have compacted the buffer
        }
    }

    /// Exactly `count` bytes.
    func readExact(_ count: Int) throws(WireError) -> Data {
        var out = Data(capacity: count)
        let fromBuffer = min(count, buffered)
        out.append(contentsOf: buffer[start..<start + fromBuffer])
        start += fromBuffer
        while out.count < count {
            guard try fill() else { throw .closed }
            let take = min(count - out.count, buffered)
            out.append(contentsOf: buffer[start..<start + take])
            start += take
        }
        return out
    }

    /// Everything until the peer closes.
    func readToEnd(limit: Int) throws(WireError) -> Data {
        var out = Data()
        while true {
            out.append(contentsOf: buffer[start...])
            start = buffer.count
            if out.count > limit { throw .tooLarge }
            guard try fill() else { return out }
        }
    }

    func write(_ data: Data) throws(WireError) { try UnixSocket.writeAll(fd, data) }
}
