import Foundation
import Glibc

/// Many idle client connections to one listener, for the servers' load test and benchmark:
/// each sends `greeting` (half a request head, by default) and then nothing. Afterwards it
/// tells how many the server has closed.
public final class ConnectionFlood {
    public enum Target: Sendable, CustomStringConvertible {
        case unix(String)
        /// 127.0.0.1:port of the calling thread's network namespace.
        case tcp(UInt16)

        public var description: String {
            switch self {
            case .unix(let path): "unix://\(path)"
            case .tcp(let port): "127.0.0.1:\(port)"
            }
        }
    }

    public static let halfHead = Array("GET /metrics HTTP/1.1\r\nHost: flood\r\nUser-Agent: ".utf8)

    public let target: Target
    private var fds: [Int32] = []
    private var closed: Set<Int32> = []

    public init(_ target: Target) { self.target = target }

    deinit { for fd in fds { Glibc.close(fd) } }

    public var count: Int { fds.count }

    /// A flood needs tens of thousands of descriptors: 131,072 when the process may raise its
    /// hard limit (root), else the hard limit.
    public static func raiseOpenFileLimit() {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return }
        var wanted = rlimit(rlim_cur: max(limit.rlim_cur, 1 << 17), rlim_max: max(limit.rlim_max, 1 << 17))
        if setrlimit(resource, &wanted) != 0 {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(resource, &limit)
        }
    }

    /// Opens `count` more connections (in the calling thread's network namespace) and sends
    /// `greeting` on each. Throws on the first connection that fails, saying which.
    public func open(_ count: Int, greeting: [UInt8] = ConnectionFlood.halfHead) throws {
        for _ in 0..<count {
            let fd = try connect()
            fds.append(fd)
            if !greeting.isEmpty {
                _ = greeting.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    private func connect() throws -> Int32 {
        let family = if case .unix = target { AF_UNIX } else { AF_INET }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FloodError("socket after \(fds.count) connections to \(target): \(String(cString: strerror(errno)))") }
        var rc: Int32
        switch target {
        case .unix(let path):
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes.prefix($0.count - 1)) }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        case .tcp(let port):
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = port.bigEndian
            addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard rc == 0 else {
            let text = String(cString: strerror(errno))
            Glibc.close(fd)
            throw FloodError("connect after \(fds.count) connections to \(target): \(text)")
        }
        return fd
    }

    /// How many connections the server has closed, waiting up to `timeout` for all of them.
    /// (A response before the close, such as 408, is read and dropped.)
    @discardableResult
    public func waitClosed(timeout: Duration) -> Int {
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while closed.count < fds.count {
            var polls = fds.filter { !closed.contains($0) }.map { pollfd(fd: $0, events: Int16(POLLIN | 0x2000), revents: 0) }
            let left = deadline - .now
            guard left > .zero else { break }
            let ms = Int32(min(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1, 1000))
            guard poll(&polls, nfds_t(polls.count), ms) >= 0 || errno == EINTR else { break }
            for p in polls where p.revents != 0 {
                while true {
                    let n = recv(p.fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                    if n > 0 { continue }
                    if n == 0 || (errno != EAGAIN && errno != EINTR) { closed.insert(p.fd) }
                    break
                }
            }
        }
        return closed.count
    }

    /// Closes every connection from this side.
    public func closeAll() {
        for fd in fds { Glibc.close(fd) }
        fds = []
        closed = []
    }
}

public struct FloodError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension ConnectionFlood {
    /// Config lines that give an agent all four HTTP listeners at their default ports: the
    /// agent's Prometheus port (9962), Hubble's (9965) and the service map page (8081).
    public static let everyListenerConfig = """
        prometheus:
          enabled: true
        hubble:
          metrics:
            enabled: [flow, drop]
          ui:
            enabled: true
        """

    /// The listeners of an agent started with `everyListenerConfig`, the API socket first.
    public static func listeners(apiSocket: String) -> [(name: String, target: Target)] {
        [("API socket", .unix(apiSocket)), ("agent metrics port", .tcp(9962)),
         ("Hubble metrics port", .tcp(9965)), ("service map port", .tcp(8081))]
    }
}

/// What the load test and the benchmark read about the agent under a flood, from /proc.
public enum ProcessFigures {
    /// A number field of /proc/PID/status ("Threads:", "VmRSS:" in kB, ...); 0 when absent.
    public static func status(_ pid: Int32, _ field: String) -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix(field) } ?? ""
        return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "0") ?? 0
    }

    /// Open descriptors of the process; -1 when they cannot be listed.
    public static func openFiles(_ pid: Int32) -> Int {
        guard let dir = opendir("/proc/\(pid)/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != CChar(46) { count += 1 }  // not . or ..
        }
        return count
    }
}
