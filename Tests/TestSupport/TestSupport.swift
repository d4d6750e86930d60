import Datapath
import LinuxNet
import Foundation
import Glibc

/// A temporary directory removed at the end of the test.
public final class TempDir {
    public let path: String
    public init(_ prefix: String) throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw POSIXError(.EIO) }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Where the built products live (the test bundle sits beside them).
public func buildDirectory() -> String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: url.path + "/cilium-agent") && url.path != "/" {
        url = url.deletingLastPathComponent()
    }
    return url.path
}

public func repositoryRoot() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

public func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// nspawn leaves these behind on this host (PLATFORM.md).
public func removeNspawnLeftovers(rootfs: String) {
    for base in ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"] {
        for d in ["payload", "supervisor"] { rmdir(base + "/" + d) }
    }
    removeTree("/run/systemd/nspawn/propagate/" + URL(fileURLWithPath: rootfs).lastPathComponent)
}

/// Runs a command, returning its exit status and combined output.
public func runCapturing(_ argv: [String], environment: [String: String]? = nil) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    if let environment { p.environment = environment }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// An IPv4 socket address.
public func inetAddress(_ address: String, port: UInt16) -> sockaddr_in {
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    inet_pton(AF_INET, address, &sa.sin_addr)
    return sa
}

/// Sends `count` UDP datagrams from namespace `from` to `address`, where a
/// socket bound inside `to` reads them; returns how many arrived. Proof that
/// two namespaces are connected, without ping (not installed here).
public func udpDeliver(from: NetworkNamespace, to: NetworkNamespace, address: String, count: Int = 1) throws -> Int {
    let port: UInt16 = 41000 + UInt16.random(in: 0...9999)
    func sockaddr(_ address: String) -> sockaddr_in { inetAddress(address, port: port) }
    let receiver = try to.run { () -> Int32 in
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var sa = sockaddr(address)
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return fd
    }
    defer { close(receiver) }
    try from.run {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr(address)
        let msg = [UInt8](repeating: 7, count: 32)
        for _ in 0..<count {
            _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { sendto(fd, msg, msg.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
    }
    var got = 0
    var buf = [UInt8](repeating: 0, count: 64)
    var pfd = pollfd(fd: receiver, events: Int16(POLLIN), revents: 0)
    while got < count, poll(&pfd, 1, 1000) == 1 {
        if recv(receiver, &buf, buf.count, 0) > 0 { got += 1 }
    }
    return got
}

/// A unique pin directory under bpffs, removed afterwards.
public struct PinRoot: ~Copyable {
    public let path: String
    public init(_ tag: String) throws {
        path = "/sys/fs/bpf/cilium-test-\(tag)-\(UInt32.random(in: 0...UInt32.max))"
        try BPFFS.prepare(root: path)
    }
    deinit { BPFFS.removeTree(path) }
}


/// A steady stream of UDP datagrams from one namespace to a socket in another,
/// sent and counted on threads of their own.
public final class UDPStream: @unchecked Sendable {
    private let from: NetworkNamespace
    private let receiver: Int32
    private let sender: Int32
    private var destination = sockaddr_in()
    private let lock = NSLock()
    private var running = true
    private var sent = 0
    private var received = 0
    private let done = DispatchGroup()

    public init(from: NetworkNamespace, to: NetworkNamespace, address: String) throws {
        self.from = from
        let port: UInt16 = 42000 + UInt16.random(in: 0...9999)
        destination = inetAddress(address, port: port)
        var sa = destination
        receiver = try to.run { () -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var size: Int32 = 8 << 20
            setsockopt(fd, SOL_SOCKET, 33 /* SO_RCVBUFFORCE */, &size, socklen_t(MemoryLayout<Int32>.size))
            _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            return fd
        }
        sender = try from.run { socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0) }
    }

    deinit {
        close(receiver)
        close(sender)
    }

    public func start(interval: Duration) {
        let usec = UInt32(interval.components.attoseconds / 1_000_000_000_000 + interval.components.seconds * 1_000_000)
        done.enter()
        Thread.detachNewThread { [self] in
            var sa = destination
            let msg = [UInt8](repeating: 1, count: 64)
            while lock.withLock({ running }) {
                let n = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { sendto(sender, msg, msg.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                if n > 0 { lock.withLock { sent += 1 } }
                usleep(usec)
            }
            done.leave()
        }
        done.enter()
        Thread.detachNewThread { [self] in
            var buf = [UInt8](repeating: 0, count: 128)
            var pfd = pollfd(fd: receiver, events: Int16(POLLIN), revents: 0)
            while true {
                if poll(&pfd, 1, 300) == 1 {
                    if recv(receiver, &buf, buf.count, 0) > 0 { lock.withLock { received += 1 } }
                } else if !lock.withLock({ running }) {
                    break
                }
            }
            done.leave()
        }
    }

    /// Stops sending, drains what is still in flight, returns (sent, received).
    public func finish() -> (sent: Int, received: Int) {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { (sent, received) }
    }
}

/// Opens a TCP connection from namespace `from` to `address:port`, where a
/// listener inside `to` accepts it and echoes what it reads; returns the
/// echoed bytes (nil when the connection or the echo failed).
public func tcpEcho(from: NetworkNamespace, to: NetworkNamespace, address: String, message: String = "hello",
                    port fixedPort: UInt16? = nil, timeout: Int = 3) throws -> String? {
    let port: UInt16 = fixedPort ?? 43000 + UInt16.random(in: 0...9999)
    let addr = inetAddress(address, port: port)
    let listener = try to.run { () -> Int32 in
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var a = addr
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 4)
        return fd
    }
    defer { close(listener) }
    let server = Thread {
        var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) == 1 else { return }
        let c = accept(listener, nil, nil)
        guard c >= 0 else { return }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = recv(c, &buf, buf.count, 0)
        if n > 0 { _ = send(c, buf, n, 0) }
        close(c)
    }
    server.start()
    return try from.run { () -> String? in
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var a = addr
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else { return nil }
        let bytes = Array(message.utf8)
        _ = send(fd, bytes, bytes.count, 0)
        var buf = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buf, buf.count, 0)
        return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
    }
}

/// A long TCP transfer from namespace `from` to a receiver in `to`, paced so
/// it lasts about `duration`; runs on threads of its own.
public final class TCPTransfer: @unchecked Sendable {
    private let lock = NSLock()
    private var sentBytes = 0
    private var receivedBytes = 0
    private var failure: String?
    private let done = DispatchGroup()

    public init() {}

    public func start(from: NetworkNamespace, to: NetworkNamespace, address: String, duration: Duration) throws {
        let port: UInt16 = 44000 + UInt16.random(in: 0...9999)
        let addr = inetAddress(address, port: port)
        let listener = try to.run { () -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var a = addr
            _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            listen(fd, 1)
            return fd
        }
        let client = try from.run { socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
        done.enter()
        Thread.detachNewThread { [self] in
            defer { close(listener); done.leave() }
            let c = accept(listener, nil, nil)
            guard c >= 0 else { fail("accept failed"); return }
            defer { close(c) }
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(c, &buf, buf.count, 0)
                if n <= 0 { if n < 0 { fail("receive failed: errno \(errno)") }; return }
                lock.withLock { receivedBytes += n }
            }
        }
        done.enter()
        let chunks = Int(duration.components.seconds * 100) + Int(duration.components.attoseconds / 10_000_000_000_000_000)
        Thread.detachNewThread { [self] in
            defer { close(client); done.leave() }
            var a = addr
            let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard r == 0 else { fail("connect failed: errno \(errno)"); return }
            let chunk = [UInt8](repeating: 0x5a, count: 32768)
            for _ in 0..<chunks {
                var off = 0
                while off < chunk.count {
                    let n = chunk.withUnsafeBytes { send(client, $0.baseAddress! + off, chunk.count - off, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { fail("send failed: errno \(errno)"); return }
                    off += n
                }
                lock.withLock { sentBytes += chunk.count }
                usleep(10_000)
            }
            shutdown(client, Int32(SHUT_WR))
        }
    }

    private func fail(_ why: String) { lock.withLock { failure = failure ?? why } }

    /// Waits for the end; returns bytes sent and received and the first error.
    public func finish() -> (sent: Int, received: Int, error: String?) {
        done.wait()
        return lock.withLock { (sentBytes, receivedBytes, failure) }
    }
}

/// A command that did not succeed: what ran, its exit code and what it said.
public struct CommandFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Runs `argv` and returns its output; a non-zero exit throws `CommandFailure` with the output.
@discardableResult
public func runChecked(_ argv: [String]) throws -> String {
    let (code, out) = try runCapturing(argv)
    guard code == 0 else {
        throw CommandFailure("\((argv.first as NSString?)?.lastPathComponent ?? "") \(argv.dropFirst().joined(separator: " ")) exited \(code): \(out)")
    }
    return out
}

/// Captures the frames on `device` inside `namespace` with an AF_PACKET
/// socket (no tcpdump needed): their first 128 bytes, in order.
public final class FrameCapture: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private var frames: [[UInt8]] = []
    private var running = true
    private let done = DispatchGroup()

    public init(namespace: NetworkNamespace, device: String) throws {
        let ifindex = try Netlink(namespace: namespace).index(of: .name(device))
        // struct sockaddr_ll (linux/if_packet.h), not imported into Swift.
        struct LinkLayerAddress {
            var family = UInt16(AF_PACKET)
            var proto = UInt16(0x0003).bigEndian // ETH_P_ALL
            var ifindex: Int32
            var hatype: UInt16 = 0
            var pkttype: UInt8 = 0
            var halen: UInt8 = 0
            var addr: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0)
        }
        fd = try namespace.run { () -> Int32 in
            let s = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(UInt16(0x0003).bigEndian))
            var sll = LinkLayerAddress(ifindex: ifindex)
            _ = withUnsafePointer(to: &sll) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<LinkLayerAddress>.size)) } }
            return s
        }
        done.enter()
        Thread.detachNewThread { [self] in
            defer { done.leave() }
            var buf = [UInt8](repeating: 0, count: 2048)
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while lock.withLock({ running }) {
                guard poll(&pfd, 1, 100) == 1 else { continue }
                let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
                guard n > 0 else { continue }
                let frame = Array(buf[0..<min(n, 128)])
                lock.withLock { frames.append(frame) }
            }
            // A frame the kernel queued before finish() (a reply the caller has
            // already received went through this tap first) is still read.
            while case let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT)), n > 0 {
                let frame = Array(buf[0..<min(n, 128)])
                lock.withLock { frames.append(frame) }
            }
        }
    }

    /// Stops capturing; the frames seen, in order.
    public func finish() -> [[UInt8]] {
        lock.withLock { running = false }
        done.wait()
        close(fd)
        return lock.withLock { frames }
    }
}

/// Captures VXLAN (UDP 8472) frames on `device` inside `namespace` and collects their VNIs.
public final class VXLANCapture: @unchecked Sendable {
    private let capture: FrameCapture

    public init(namespace: NetworkNamespace, device: String) throws {
        capture = try FrameCapture(namespace: namespace, device: device)
    }

    /// Stops capturing; the VNIs seen, in order.
    public func finish() -> [UInt32] {
        // Ethernet(14) + IPv4(20, no options) + UDP(8) + VXLAN(8)
        capture.finish().compactMap { buf in
            guard buf.count >= 50, buf[12] == 0x08, buf[13] == 0x00, buf[14] == 0x45, buf[23] == 17,
                  UInt16(buf[36]) << 8 | UInt16(buf[37]) == 8472 else { return nil }
            return UInt32(buf[46]) << 16 | UInt32(buf[47]) << 8 | UInt32(buf[48])
        }
    }
}

// MARK: - Waiting for a condition (the one implementation the suites share)

/// Polls `condition` every `every` until it holds or `timeout` passes; whether it held.
/// It sleeps its thread: from async code, the async overload (which suspends) is the one.
@available(*, noasync, message: "sleeps its thread; write the condition as `{ () async in ... }`")
public func eventually(_ timeout: Duration = .seconds(10), every: Duration = .milliseconds(50),
                       _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: Double(every.components.attoseconds) / 1e18 + Double(every.components.seconds))
    }
    return try condition()
}

/// Polls `condition` every `every` until it holds or `timeout` passes; whether it held.
public func eventually(_ timeout: Duration = .seconds(10), every: Duration = .milliseconds(50),
                       _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: every)
    }
    return try await condition()
}

/// A condition that did not come true in time.
public struct WaitTimedOut: Error, CustomStringConvertible {
    public let description: String
}

/// Like `eventually`, but throws "timed out waiting until WHAT" when the condition never held.
@available(*, noasync, message: "sleeps its thread; write the condition as `{ () async in ... }`")
public func waitFor(_ what: String, timeout: Duration = .seconds(10), every: Duration = .milliseconds(50),
                    _ condition: () throws -> Bool) throws {
    guard try eventually(timeout, every: every, condition) else {
        throw WaitTimedOut(description: "timed out waiting until \(what) (\(timeout))")
    }
}

/// Like `eventually`, but throws "timed out waiting until WHAT" when the condition never held.
public func waitFor(_ what: String, timeout: Duration = .seconds(10), every: Duration = .milliseconds(50),
                    _ condition: () async throws -> Bool) async throws {
    guard try await eventually(timeout, every: every, condition) else {
        throw WaitTimedOut(description: "timed out waiting until \(what) (\(timeout))")
    }
}
