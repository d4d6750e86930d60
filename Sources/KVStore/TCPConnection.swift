#if canImport(Glibc)
import Diagnostics
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a socket operation failed, in words.
struct SocketError: Error, CustomStringConvertible {
    enum Kind { case connect, timeout, io }
    let kind: Kind
    let description: String

    static func errno(_ kind: Kind, _ code: Int32) -> SocketError {
        SocketError(kind: kind, description: errnoText(code, lowercased: true))
    }
}


/// Milliseconds to `deadline` for poll(2); -1 without a deadline.
private func pollTimeout(_ deadline: ContinuousClock.Instant?) -> Int32 {
    guard let deadline else { return -1 }
    let left = deadline - .now
    if left <= .zero { return 0 }
    let (s, atto) = left.components
    return Int32(clamping: s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000)
}

/// A non-blocking TCP socket driven with poll(2) and deadlines. Blocking
/// calls: use it on a thread of its own, never on the concurrency pool.
/// Another thread may call `shutdown()` (through `CancelHandle`) to wake a
/// blocked reader.
final class TCPConnection {
    let fd: Int32
    private var closed = false

    private init(fd: Int32) { self.fd = fd }

    deinit { close() }

    static func connect(host: String, port: Int, deadline: ContinuousClock.Instant) throws(SocketError) -> TCPConnection {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let list else {
            throw SocketError(kind: .connect, description: "lookup \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = SocketError(kind: .connect, description: "no address for \(host)")
        var next: UnsafeMutablePointer<addrinfo>? = list
        while let ai = next {
            next = ai.pointee.ai_next
            let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            let fd = socket(ai.pointee.ai_family, type, 0)
            if fd < 0 { lastError = .errno(.connect, Glibc.errno); continue }
            let conn = TCPConnection(fd: fd)
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return conn }
            guard Glibc.errno == EINPROGRESS else { lastError = .errno(.connect, Glibc.errno); continue }
            do {
                try conn.wait(POLLOUT, deadline: deadline)
            } catch {
                lastError = error.kind == .timeout ? SocketError(kind: .timeout, description: "connect timed out")
                                                   : SocketError(kind: .connect, description: error.description)
                continue
            }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            if soError == 0 {
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return conn
            }
            lastError = .errno(.connect, soError)
        }
        throw lastError
    }

    /// Waits until the socket is ready for `events`; throws on timeout.
    private func wait(_ events: Int32, deadline: ContinuousClock.Instant?) throws(SocketError) {
        while true {
            var pfd = pollfd(fd: fd, events: Int16(events), revents: 0)
            let n = poll(&pfd, 1, pollTimeout(deadline))
            if n > 0 { return }
            if n == 0 { throw SocketError(kind: .timeout, description: "timed out") }
            if Glibc.errno != EINTR { throw .errno(.io, Glibc.errno) }
        }
    }

    func writeAll(_ bytes: [UInt8], deadline: ContinuousClock.Instant?) throws(SocketError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n > 0 { offset += n; continue }
            let code = Glibc.errno
            if n < 0 && (code == EAGAIN || code == EWOULDBLOCK || code == EINTR) {
                try wait(POLLOUT, deadline: deadline)
                continue
            }
            throw .errno(.io, code)
        }
    }

    /// Reads what is available (waiting for at least one byte) and appends
    /// it; returns the count, 0 at end of stream.
    func read(appendingTo buffer: inout [UInt8], deadline: ContinuousClock.Instant?) throws(SocketError) -> Int {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer.append(contentsOf: chunk[0..<n])
                return n
            }
            if n == 0 { return 0 }
            let code = Glibc.errno
            if code == EAGAIN || code == EWOULDBLOCK || code == EINTR {
                try wait(POLLIN, deadline: deadline)
                continue
            }
            throw .errno(.io, code)
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd)
    }
}

/// Lets another thread abort a blocking exchange: `cancel()` shuts the
/// socket down, which wakes the thread blocked in poll/recv.
final class CancelHandle: Sendable {
    private let state = Locked<(fd: Int32, cancelled: Bool)>((-1, false))

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Registers the socket in use; false when already cancelled.
    func attach(_ fd: Int32) -> Bool {
        state.withLock { s in
            if s.cancelled { return false }
            s.fd = fd
            return true
        }
    }

    /// Unregisters the socket before it is closed.
    func detach() { state.withLock { $0.fd = -1 } }

    func cancel() {
        state.withLock { s in
            s.cancelled = true
            if s.fd >= 0 { _ = shutdown(s.fd, Int32(SHUT_RDWR)) }
        }
    }
}
