import Diagnostics
import Foundation
import Glibc
import HTTPTransport
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

public enum HTTPServerError: Error, CustomStringConvertible, Equatable {
    case alreadyRunning(path: String)
    case notASocket(path: String)
    case invalidPath(path: String)
    case alreadyStarted(path: String)
    case system(operation: String, path: String, reason: String)

    public var description: String {
        switch self {
        case .alreadyRunning(let path):
            "another server is already answering on unix://\(path); another cilium-agent seems to be running there (stop it or use a different socket path)"
        case .notASocket(let path):
            "cannot serve the API on \(path): the path exists and is not a unix socket (remove it or use a different socket path)"
        case .invalidPath(let path):
            "invalid API socket path '\(path)': it must be non-empty and at most \(UnixSocket.maxPathLength) bytes"
        case .alreadyStarted(let path):
            "the API server on \(path) is already started"
        case .system(let operation, let path, let reason):
            "cannot serve HTTP on \(path): \(operation) failed: \(reason)"
        }
    }
}

/// HTTP/1.1 server on swift-nio, on a unix socket (the agent's API) or a TCP port (metrics, the
/// service map page). A fixed pool of event-loop threads serves every connection of every
/// listener; handlers run as tasks. `limits` bounds what one client can hold.
public final class HTTPServer: Sendable {
    public typealias Handler = @Sendable (HTTPRequest) async -> HTTPResponse

    /// The event loops of every server in the process: two threads, however many connections.
    static let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    public let socketPath: String
    /// Serving on TCP (all addresses of the namespace) instead: metrics endpoints.
    public let tcpPort: UInt16?
    public let limits: HTTPServerLimits
    private let handler: Handler
    private let state = Mutex(State())

    private struct State {
        var starting = false
        var channel: (any Channel)?
        var registry: ConnectionRegistry?
        var sweeper: RepeatedTask?
        var socketID: (dev: UInt, ino: UInt) = (0, 0)
    }

    public init(socketPath: String, limits: HTTPServerLimits = HTTPServerLimits(), handler: @escaping Handler) {
        self.socketPath = socketPath
        self.tcpPort = nil
        self.limits = limits
        self.handler = handler
    }

    /// The same server on TCP port `port` of every address (Prometheus scrapes it).
    public init(tcpPort port: UInt16, limits: HTTPServerLimits = HTTPServerLimits(), handler: @escaping Handler) {
        self.socketPath = "tcp port \(port)"
        self.tcpPort = port
        self.limits = limits
        self.handler = handler
    }

    deinit { stop(drainTimeout: 0) }

    public var isRunning: Bool { state.withLock { $0.channel != nil } }

    /// Open connections now, and how many were refused or closed at the cap since start.
    public var connections: (open: Int, refused: Int, evicted: Int) {
        guard let registry = state.withLock({ $0.registry }) else { return (0, 0, 0) }
        let (refused, evicted) = registry.counters
        return (registry.count, refused, evicted)
    }

    // MARK: start / stop

    public func start() throws {
        let path = socketPath
        try state.withLock { s throws(HTTPServerError) in
            if s.starting || s.channel != nil { throw .alreadyStarted(path: path) }
            s.starting = true
        }
        defer { state.withLock { $0.starting = false } }
        let registry = ConnectionRegistry(limit: limits.maxConnections)
        let bootstrap = makeBootstrap(registry)
        let channel: any Channel
        var socketID: (UInt, UInt) = (0, 0)
        if let tcpPort {
            do {
                channel = try bootstrap.bind(host: "0.0.0.0", port: Int(tcpPort)).wait()
            } catch let error as IOError where error.errnoCode == EADDRINUSE {
                throw HTTPServerError.system(operation: "bind", path: path, reason: "the port is in use (choose another port in the config)")
            } catch let error as IOError {
                throw HTTPServerError.system(operation: "bind", path: path, reason: errnoText(error.errnoCode))
            }
        } else {
            let (fd, id) = try listenUnix()
            socketID = id
            do {
                channel = try bootstrap.withBoundSocket(fd).wait()
            } catch {
                close(fd)
                unlink(path)
                throw HTTPServerError.system(operation: "serving the socket", path: path, reason: "\(error)")
            }
        }
        // Read deadlines are checked a few times per timeout (at most every second), by one task
        // per listener instead of a timer per connection.
        let tick = min(Duration.seconds(1), min(limits.headerTimeout, limits.idleTimeout) / 4)
        let sweeper = channel.eventLoop.scheduleRepeatedTask(initialDelay: TimeAmount(tick), delay: TimeAmount(tick)) { _ in
            registry.sweep()
        }
        state.withLock {
            $0.channel = channel
            $0.registry = registry
            $0.sweeper = sweeper
            $0.socketID = socketID
        }
    }

    private func makeBootstrap(_ registry: ConnectionRegistry) -> ServerBootstrap {
        let handler = self.handler, limits = self.limits
        var limitsOfDecoder = NIOHTTPDecoderLimitConfiguration()
        limitsOfDecoder.maxHeaderFieldSize = limits.maxHeadBytes
        limitsOfDecoder.maxHeaderListSize = limits.maxHeadBytes
        limitsOfDecoder.maxHeaderFieldCount = limits.maxHeaderFields
        let decoderLimits = limitsOfDecoder
        let bootstrap = ServerBootstrap(group: Self.eventLoops)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.maxMessagesPerRead, value: 256)
            // Reads start small: a waiting connection holds its partial head in this buffer.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                switch registry.admit(channel) {
                case .refused:
                    return Self.refuse(channel)
                case .admitted(let evicting):
                    evicting?.close(promise: nil)
                }
                do {
                    let gate = ByteGate {
                        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: decoderLimits))
                    }
                    let requests = RequestHandler(handler: handler, limits: limits, registry: registry)
                    gate.owner = requests
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(gate)
                    try sync.addHandler(HTTPResponseEncoder())
                    try sync.addHandler(requests)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    registry.remove(channel)
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        return bootstrap
    }

    /// Every connection busy at the cap: a short answer, then close.
    private static func refuse(_ channel: any Channel) -> EventLoopFuture<Void> {
        let body = #"{"error":"too many connections: the server is at its connection limit (agent.http.maxConnections)"}"#
        let text = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        channel.writeAndFlush(channel.allocator.buffer(string: text)).whenComplete { _ in channel.close(promise: nil) }
        return channel.eventLoop.makeSucceededVoidFuture()
    }

    /// Binds the API socket (replacing a stale one), restricts it to root and listens.
    private func listenUnix() throws(HTTPServerError) -> (Int32, (UInt, UInt)) {
        let path = socketPath
        guard let addr = UnixSocket.address(path) else { throw .invalidPath(path: path) }
        func fail(_ op: String, _ code: Int32) -> HTTPServerError {
            .system(operation: op, path: "unix://\(path)", reason: errnoText(code))
        }

        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && !FileManager.default.fileExists(atPath: parent) {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o755])
            } catch {
                throw .system(operation: "creating directory \(parent)", path: "unix://\(path)", reason: "\(error)")
            }
        }

        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw .notASocket(path: path) }
            switch UnixSocket.connect(path: path, timeout: 2) {
            case .success(let fd):
                close(fd)
                throw .alreadyRunning(path: path)
            case .failure(let e) where e.code == ECONNREFUSED || e.code == ENOENT:
                if unlink(path) != 0 && errno != ENOENT { throw fail("removing stale socket", errno) }
            case .failure(let e) where e.code == EAGAIN:
                throw .alreadyRunning(path: path)  // live listener with a full backlog
            case .failure(let e):
                throw fail("probing existing socket", e.code)
            }
        }

        let fd: Int32
        switch UnixSocket.makeSocket() {
        case .success(let s): fd = s
        case .failure(let e): throw fail("socket", e.code)
        }
        var ok = false
        defer { if !ok { close(fd) } }
        if UnixSocket.withSockaddr(addr, { bind(fd, $0, $1) }) != 0 {
            throw errno == EADDRINUSE ? .alreadyRunning(path: path) : fail("bind", errno)
        }
        // Not yet listening, so nobody can connect before the mode is restricted.
        guard chmod(path, 0o600) == 0 else {
            let code = errno
            unlink(path)
            throw fail("chmod 0600", code)
        }
        var bound = stat()
        _ = stat(path, &bound)
        guard Glibc.listen(fd, 1024) == 0 else {
            let code = errno
            unlink(path)
            throw fail("listen", code)
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        ok = true
        return (fd, (UInt(bound.st_dev), UInt(bound.st_ino)))
    }

    /// Stops accepting, removes the socket file, lets in-flight requests finish (up to
    /// `drainTimeout`) and closes waiting and streaming connections at once.
    public func stop(drainTimeout: TimeInterval = 5) {
        let taken = state.withLock { s -> ((any Channel), ConnectionRegistry, (UInt, UInt))? in
            guard let channel = s.channel, let registry = s.registry else { return nil }
            s.sweeper?.cancel()
            defer { s.channel = nil; s.registry = nil; s.sweeper = nil }
            return (channel, registry, s.socketID)
        }
        guard let (channel, registry, socketID) = taken else { return }
        try? channel.close().wait()
        // Only remove the file if it is still ours (a new agent may have replaced it).
        var st = stat()
        if tcpPort == nil && stat(socketPath, &st) == 0 && UInt(st.st_dev) == socketID.0 && UInt(st.st_ino) == socketID.1 {
            unlink(socketPath)
        }
        for connection in registry.beginStop() { connection.close(promise: nil) }
        let deadline = ContinuousClock.now + .seconds(min(max(0, drainTimeout), 1e6))
        while registry.count > 0 && ContinuousClock.now < deadline { usleep(5_000) }
        for connection in registry.all { connection.close(promise: nil) }
        let last = ContinuousClock.now + .seconds(1)
        while registry.count > 0 && ContinuousClock.now < last { usleep(5_000) }
    }

    /// `stop()` run on its own thread, so that waiting for in-flight handlers does not hold a
    /// thread of the cooperative pool they may need. Async callers get this overload automatically.
    public func stop(drainTimeout: TimeInterval = 5) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread { [self] in
                stop(drainTimeout: drainTimeout)
                continuation.resume()
            }.start()
        }
    }
}
