import Diagnostics
import Foundation
import Glibc

/// The receiving end of sd_notify: a NOTIFY_SOCKET of our own, so the sandbox
/// and the tests start agents through the same path systemd uses.
public final class NotifyListener {
    public let path: String
    let fd: Int32

    public init(path: String) throws {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw AgentError("notify socket: \(errnoText(errno))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            _ = path.utf8CString.withUnsafeBytes { src in
                memcpy(raw.baseAddress!, src.baseAddress!, min(src.count, raw.count - 1))
            }
        }
        self.path = path
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else { throw AgentError("bind notify socket \(path): \(errnoText(errno))") }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Waits for a datagram containing READY=1; returns every message seen.
    /// Fails early when the process dies.
    /// Discards datagrams already queued (an earlier process's READY=1 after a reload must not
    /// pass for the next process's).
    public func drain() {
        var buf = [UInt8](repeating: 0, count: 4096)
        while recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT)) > 0 {}
    }

    public func waitReady(pid: Int32, timeout: Duration) -> (ready: Bool, messages: [String]) {
        wait(for: "READY=1", pid: pid, timeout: timeout)
    }

    /// Waits for a datagram with the line `line` (e.g. STOPPING=1).
    public func wait(for line: String, pid: Int32?, timeout: Duration) -> (ready: Bool, messages: [String]) {
        var messages: [String] = []
        let deadline = ContinuousClock.now + timeout
        var buf = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) > 0 {
                let n = recv(fd, &buf, buf.count, 0)
                if n > 0 {
                    let msg = String(decoding: buf[0..<n], as: UTF8.self)
                    messages.append(msg)
                    if msg.split(separator: "\n").contains(Substring(line)) { return (true, messages) }
                }
            }
            if let pid {
                // Our own child shows up as a zombie until reaped.
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid || kill(pid, 0) != 0 { return (false, messages) }
            }
        }
        return (false, messages)
    }
}
