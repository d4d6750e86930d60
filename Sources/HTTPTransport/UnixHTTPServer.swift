import Diagnostics
import Dispatch
import Foundation
import Glibc
import Synchronization

public enum UnixHTTPServerError: Error, CustomStringConvertible, Equatable {
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
            "the API server on unix://\(path) is already started"
        case .system(let operation, let path, let reason):
            "cannot serve the API on unix://\(path): \(operation) failed: \(reason)"
        }
    }
}

/// Minimal HTTP/1.1 server on a unix stream socket. One accept thread plus one thread per
/// connection (blocking I/O); handlers run as tasks.
public final class UnixHTTPServer: Sendable {
    public typealias Handler = @Sendable (HTTPRequest) async -> HTTPResponse

    public static let maxBodySize = 16 << 20

    public let socketPath: String
    /// Serving on TCP (all addresses of the namespace) instead: metrics endpoints.
    public let tcpPort: UInt16?
    private let handler: Handler
    /// A keep-alive connection idle (or a request stalled) this long is closed.
    private let idleTimeout: TimeInterval
    private let state = Mutex(State())
    private let connectionsDone = DispatchGroup()

    private struct State {
        var running = false
        var listenFD: Int32 = -1
        var wakeWrite: Int32 = -1
        var socketID: (dev: UInt, ino: UInt) = (0, 0)
        var connections: Set<Int32> = []
        var acceptDone: DispatchSemaphore?
    }

    public init(socketPath: String, idleTimeout: TimeInterval = 120, handler: @escaping Handler) {
        self.socketPath = socketPath
        self.tcpPort = nil
        self.idleTimeout = idleTimeout
        self.handler = handler
    }

    /// The same server on TCP port `port` of every address (Prometheus scrapes it).
    public init(tcpPort port: UInt16, idleTimeout: TimeInterval = 120, handler: @escaping Handler) {
        self.socketPath = "tcp:\(port)"
        self.tcpPort = port
        self.idleTimeout = idleTimeout
        self.handler = handler
    }

    deinit { stop() }

    public var isRunning: Bool { state.withLock { $0.running } }

    // MARK: start / stop

    public func start() throws {
        let path = socketPath
        try state.withLock { s throws(UnixHTTPServerError) in
            if s.running || s.listenFD >= 0 { throw .alreadyStarted(path: path) }
            s.listenFD = -2  // starting
        }
        do {
            try listen()
        } catch {
            state.withLock { $0.listenFD = -1 }
            throw error
        }
    }

    private func listenTCP(_ port: UInt16) throws(UnixHTTPServerError) {
        func fail(_ op: String, _ code: Int32) -> UnixHTTPServerError {
            .system(operation: op, path: "tcp port \(port)", reason: errnoText(code))
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw fail("socket", errno) }
        var ok = false
        defer { if !ok { close(fd) } }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        let bound = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            throw errno == EADDRINUSE
                ? .system(operation: "bind", path: "tcp port \(port)", reason: "the port is in use (choose another port in the config)")
                : fail("bind", errno)
        }
        guard Glibc.listen(fd, 128) == 0 else { throw fail("listen", errno) }
        guard let wake = UnixSocket.makePipe() else { throw fail("pipe", errno) }
        ok = true
        run(listenFD: fd, wake: wake, socketID: (0, 0))
    }

    private func run(listenFD fd: Int32, wake: (read: Int32, write: Int32), socketID: (UInt, UInt)) {
        let acceptDone = DispatchSemaphore(value: 0)
        state.withLock {
            $0.running = true
            $0.listenFD = fd
            $0.wakeWrite = wake.write
            $0.socketID = socketID
            $0.acceptDone = acceptDone
        }
        let wakeRead = wake.read
        let thread = Thread { [self] in
            acceptLoop(listenFD: fd, wakeFD: wakeRead)
            close(wakeRead)
            acceptDone.signal()
        }
        thread.name = "api-accept"
        thread.start()
    }

    private func listen() throws(UnixHTTPServerError) {
        if let tcpPort { return try listenTCP(tcpPort) }
        let path = socketPath
        guard let addr = UnixSocket.address(path) else { throw .invalidPath(path: path) }
        func fail(_ op: String, _ code: Int32) -> UnixHTTPServerError {
            .system(operation: op, path: path, reason: errnoText(code))
        }

        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && !FileManager.default.fileExists(atPath: parent) {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o755])
            } catch {
                throw .system(operation: "creating directory \(parent)", path: path, reason: "\(error)")
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
        guard Glibc.listen(fd, 128) == 0 else {
            let code = errno
            unlink(path)
            throw fail("listen", code)
        }
        guard let wake = UnixSocket.makePipe() else {
            let code = errno
            unlink(path)
            throw fail("pipe", code)
        }
        ok = true
        run(listenFD: fd, wake: wake, socketID: (UInt(bound.st_dev), UInt(bound.st_ino)))
    }

    /// Stops accepting, removes the socket file, lets in-flight requests finish (up to `drainTimeout`)
    /// and closes idle keep-alive and streaming connections.
    public func stop(drainTimeout: TimeInterval = 5) {
        let taken = state.withLock { s -> (Int32, Int32, (UInt, UInt), DispatchSemaphore?)? in
            guard s.running else { return nil }
            s.running = false
            for fd in s.connections { shutdown(fd, Int32(SHUT_RD)) }
            defer { s.listenFD = -1; s.wakeWrite = -1; s.acceptDone = nil }
            return (s.listenFD, s.wakeWrite, s.socketID, s.acceptDone)
        }
        guard let (listenFD, wakeWrite, socketID, acceptDone) = taken else { return }
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
        acceptDone?.wait()
        close(wakeWrite)
        close(listenFD)
        // Only remove the file if it is still ours (a new agent may have replaced it).
        var st = stat()
        if tcpPort == nil && stat(socketPath, &st) == 0 && UInt(st.st_dev) == socketID.0 && UInt(st.st_ino) == socketID.1 {
            unlink(socketPath)
        }
        if connectionsDone.wait(timeout: .now() + min(max(0, drainTimeout), 1e9)) == .timedOut {
            state.withLock { s in for fd in s.connections { shutdown(fd, Int32(SHUT_RDWR)) } }
            _ = connectionsDone.wait(timeout: .now() + 1)
        }
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

    // MARK: connections

    private func acceptLoop(listenFD: Int32, wakeFD: Int32) {
        while true {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                switch errno {
                case EINTR, EAGAIN, ECONNABORTED: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM: usleep(50_000); continue
                default: return
                }
            }
            UnixSocket.setCloseOnExec(fd)
            // A client that stops reading must not block a writer forever.
            UnixSocket.setTimeout(fd, SO_SNDTIMEO, 30)
            let accepted = state.withLock { s in
                guard s.running else { return false }
                s.connections.insert(fd)
                return true
            }
            guard accepted else { close(fd); continue }
            connectionsDone.enter()
            let thread = Thread { [self] in
                serve(fd)
                state.withLock { s in
                    s.connections.remove(fd)
                    close(fd)
                }
                connectionsDone.leave()
            }
            thread.name = "api-conn"
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        let conn = SocketConnection(fd: fd)
        while true {
            conn.deadline = .now + UnixSocket.duration(idleTimeout)
            let request: HTTPRequest
            let keepAlive: Bool
            do throws(WireError) {
                guard let parsed = try readRequest(conn) else { return }
                (request, keepAlive) = parsed
            } catch {
                let (status, message): (Int, String)
                switch error {
                case .malformed(let why): (status, message) = (400, "malformed request: \(why)")
                case .tooLarge: (status, message) = (413, "request body exceeds \(Self.maxBodySize) bytes")
                case .headTooLarge: (status, message) = (431, "request head exceeds \(HTTPWire.maxHeadBytes) bytes")
                case .timeout, .closed, .io: return
                }
                send(.error(status: status, message: message), on: conn, keepAlive: false, includeBody: true)
                return
            }

            let response = runHandler(request)
            if let stream = response.stream {
                serveStream(response, stream, on: conn)
                return
            }
            let keep = keepAlive && state.withLock { $0.running }
            guard send(response, on: conn, keepAlive: keep, includeBody: request.method != "HEAD"), keep else {
                return
            }
        }
    }

    /// nil on a clean close between requests.
    private func readRequest(_ conn: SocketConnection) throws(WireError) -> (HTTPRequest, keepAlive: Bool)? {
        guard let (line, headers) = try HTTPWire.readHead(conn) else { return nil }
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty,
              parts[0].allSatisfy({ $0.isLetter && $0.isUppercase || $0 == "-" }) else {
            throw .malformed("invalid request line")
        }
        let version = parts[2]
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            throw .malformed("unsupported protocol '\(version)'")
        }
        var target = String(parts[1])
        if let schemeEnd = target.range(of: "://"), !target.hasPrefix("/") {  // absolute-form
            let rest = target[schemeEnd.upperBound...]
            target = rest.firstIndex(of: "/").map { String(rest[$0...]) } ?? "/"
        }
        guard target.hasPrefix("/") else { throw .malformed("invalid request target") }
        let framing = try HTTPWire.framing(headers)
        if case .length(let n) = framing, n > Self.maxBodySize { throw .tooLarge }
        if framing != .none, headers.contains("Expect", token: "100-continue") {
            try conn.write(Data("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        let body = try HTTPWire.readBody(conn, framing: framing, limit: Self.maxBodySize)
        let keepAlive = version == "HTTP/1.1"
            ? !headers.contains("Connection", token: "close")
            : headers.contains("Connection", token: "keep-alive")
        return (HTTPRequest(method: String(parts[0]), target: target, headers: headers, body: body), keepAlive)
    }

    /// Runs the async handler from this connection thread and waits for its result.
    private func runHandler(_ request: HTTPRequest) -> HTTPResponse {
        let slot = ResultSlot()
        let handler = self.handler
        Task.detached {
            slot.put(await handler(request))
        }
        return slot.take()
    }

    @discardableResult
    private func send(_ response: HTTPResponse, on conn: SocketConnection, keepAlive: Bool, includeBody: Bool) -> Bool {
        var data = HTTPWire.responseHead(response, contentLength: response.body.count, keepAlive: keepAlive)
        if includeBody && !HTTPWire.bodyless(response.status) { data.append(response.body) }
        do { try conn.write(data) } catch { return false }
        return true
    }

    /// Sends chunks as they come; a client hang-up (or stop()) cancels the stream.
    private func serveStream(_ response: HTTPResponse, _ stream: AsyncStream<Data>, on conn: SocketConnection) {
        guard (try? conn.write(HTTPWire.responseHead(response, contentLength: nil, keepAlive: false))) != nil else {
            return
        }
        guard let done = UnixSocket.makePipe() else { return }
        defer { close(done.read); close(done.write) }
        let fd = conn.fd, doneWrite = done.write
        let task = Task.detached {
            var ok = true
            for await chunk in stream where !chunk.isEmpty {
                do { try UnixSocket.writeAll(fd, HTTPWire.chunkFrame(chunk)) } catch { ok = false; break }
            }
            if ok && !Task.isCancelled { try? UnixSocket.writeAll(fd, HTTPWire.lastChunk) }
            var one: UInt8 = 1
            _ = write(doneWrite, &one, 1)
        }
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: done.read, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[1].revents != 0 { return }
            if fds[0].revents != 0 {
                let n = scratch.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN)) { continue }  // ignore client bytes
                break  // EOF or error: client gone (or server stopping)
            }
        }
        task.cancel()
        var byte: UInt8 = 0
        while read(done.read, &byte, 1) < 0 && errno == EINTR {}
    }
}

/// One-shot hand-off of a handler result from a task to a waiting thread.
private final class ResultSlot: Sendable {
    private let value = Mutex<HTTPResponse?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    func put(_ response: HTTPResponse) {
        value.withLock { $0 = response }
        ready.signal()
    }

    func take() -> HTTPResponse {
        ready.wait()
        return value.withLock { $0.take()! }
    }
}
