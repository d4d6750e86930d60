import Datapath
import LinuxNet
import Foundation
import Glibc

/// What a loop of attempts saw while the agent reloaded.
public struct AttemptsDuringReloads: Sendable {
    public var attempts: Int
    public var succeeded: Int
}

/// Runs `attempt` in a loop on a thread of its own while `reload(i)` is called `reloads` times,
/// 0.1 s apart, then waits for the loop's last attempt and returns the tally. For tests that a
/// reload never opens a window (a denied connection that gets through, a service that stops answering).
public func attemptsDuringReloads(_ reloads: Int = 20, reload: (Int) throws -> Void,
                                  attempt: @escaping @Sendable () -> Bool) throws -> AttemptsDuringReloads {
    let tally = Tally()
    let finished = DispatchSemaphore(value: 0)
    Thread {
        while !tally.stopped { tally.record(attempt()) }
        finished.signal()
    }.start()
    func finish() {
        tally.stop()
        finished.wait()
    }
    do {
        for i in 0..<reloads {
            try reload(i)
            Thread.sleep(forTimeInterval: 0.1)
        }
    } catch {
        finish()
        throw error
    }
    finish()
    return tally.result
}

private final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    private var counts = AttemptsDuringReloads(attempts: 0, succeeded: 0)
    var stopped: Bool { lock.withLock { done } }
    var result: AttemptsDuringReloads { lock.withLock { counts } }
    func stop() { lock.withLock { done = true } }
    func record(_ ok: Bool) { lock.withLock { counts.attempts += 1; if ok { counts.succeeded += 1 } } }
}

/// Accepts and closes every TCP connection to `address:port` inside `namespace` until stopped.
public final class ClosingAcceptor: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    public init(in namespace: NetworkNamespace, address: String, port: UInt16) throws {
        let sa = inetAddress(address, port: port)
        fd = try namespace.run { () -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var a = sa
            _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            listen(fd, 64)
            return fd
        }
        let listener = fd
        Thread { [self] in
            while !isStopped {
                var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 100) == 1 { let c = accept(listener, nil, nil); if c >= 0 { close(c) } }
            }
            finished.signal()
        }.start()
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    /// Stops accepting and closes the listening socket (the port is free again).
    public func stop() {
        lock.withLock { stopped = true }
        finished.wait()
        close(fd)
    }
}

/// One TCP connect from the calling thread's namespace with a send timeout; whether it connected.
public func tcpConnects(to address: String, port: UInt16, timeout: Duration) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    let micros = timeout.components.seconds * 1_000_000 + timeout.components.attoseconds / 1_000_000_000_000
    var tv = timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var a = inetAddress(address, port: port)
    return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
}
