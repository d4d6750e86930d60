import Diagnostics
import Foundation
import Glibc
import Synchronization

public enum APIClientError: Error, CustomStringConvertible, Equatable, Sendable {
    case socketMissing(path: String)
    case permissionDenied(path: String)
    case connectionRefused(path: String)
    case timeout(path: String, seconds: TimeInterval)
    case badResponse(path: String, reason: String)
    /// `stream()` got a non-2xx answer; `message` is the `{"error": ...}` text or the body.
    case requestFailed(status: Int, message: String)
    case unreachable(path: String, reason: String)

    public var description: String {
        switch self {
        case .socketMissing(let path):
            "cannot reach the agent at unix://\(path): no such socket; is cilium-agent running? (set -H or CILIUM_SOCK)"
        case .permissionDenied(let path):
            "cannot reach the agent at unix://\(path): permission denied; the API socket is root-only (run as root, e.g. with sudo)"
        case .connectionRefused(let path):
            "cannot reach the agent at unix://\(path): connection refused; the socket file is stale and cilium-agent is not running (start it, or check its logs)"
        case .timeout(let path, let seconds):
            "the agent at unix://\(path) did not answer within \(String(format: "%g", seconds))s; it may be overloaded or hung (check its logs, or raise the timeout)"
        case .badResponse(let path, let reason):
            "the agent at unix://\(path) sent an invalid response: \(reason)"
        case .requestFailed(let status, let message):
            "the agent answered HTTP \(status) \(HTTPResponse.reason(for: status))\(message.isEmpty ? "" : ": \(message)")"
        case .unreachable(let path, let reason):
            "cannot reach the agent at unix://\(path): \(reason)"
        }
    }

    /// The message of a `{"error": "..."}` body, else the body text.
    public static func message(fromBody body: Data) -> String {
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
           let message = object["error"] as? String {
            return message
        }
        return String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// HTTP/1.1 client for the agent's unix socket API. One connection per request.
public struct UnixHTTPClient: Sendable {
    public let socketPath: String
    /// Bounds connecting plus the whole exchange of `send`, and the response head of `stream`.
    public let timeout: TimeInterval
    public static let maxResponseSize = 256 << 20

    public init(socketPath: String, timeout: TimeInterval = 30) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    /// Sends a request and returns the status and the complete body. Throws `APIClientError`.
    public func send(method: String = "GET", path: String, body: Data? = nil,
                     headers: HTTPHeaders = HTTPHeaders()) throws -> (status: Int, body: Data) {
        let conn = try connect()
        defer { close(conn.fd) }
        do throws(WireError) {
            try writeRequest(conn, method: method, path: path, body: body, headers: headers)
            let (status, responseHeaders) = try readResponseHead(conn)
            let framing = try responseFraming(method: method, status: status, headers: responseHeaders)
            return (status, try HTTPWire.readBody(conn, framing: framing, limit: Self.maxResponseSize))
        } catch {
            throw map(error)
        }
    }

    /// Same as the synchronous `send`, but the blocking exchange runs on its own thread so that
    /// the cooperative pool stays free (e.g. for an in-process server's handlers). Async callers
    /// get this overload automatically.
    public func send(method: String = "GET", path: String, body: Data? = nil,
                     headers: HTTPHeaders = HTTPHeaders()) async throws -> (status: Int, body: Data) {
        let result: Result<Response, any Error> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Result {
                    let (status, body) = try send(method: method, path: path, body: body, headers: headers)
                    return Response(status: status, body: body)
                })
            }
            thread.name = "api-client"
            thread.start()
        }
        let response = try result.get()
        return (response.status, response.body)
    }

    private struct Response: Sendable {
        var status: Int
        var body: Data
    }

    /// Sends a request and yields the body chunk by chunk as the agent sends it (chunked encoding).
    /// Ends when the agent ends the response; cancelling the consumer closes the connection.
    /// A non-2xx status throws `.requestFailed`.
    public func stream(method: String = "GET", path: String, body: Data? = nil) -> AsyncThrowingStream<Data, Error> {
        let control = StreamControl()
        return AsyncThrowingStream { continuation in
            continuation.onTermination = { _ in control.cancel() }
            let thread = Thread {
                do {
                    let conn = try connect()
                    guard control.attach(conn.fd) else { close(conn.fd); continuation.finish(); return }
                    defer { control.detachAndClose() }
                    do throws(WireError) {
                        try writeRequest(conn, method: method, path: path, body: body, headers: HTTPHeaders())
                        let (status, headers) = try readResponseHead(conn)
                        let framing = try responseFraming(method: method, status: status, headers: headers)
                        guard (200..<300).contains(status) else {
                            let body = (try? HTTPWire.readBody(conn, framing: framing, limit: 1 << 20)) ?? Data()
                            continuation.finish(throwing: APIClientError.requestFailed(
                                status: status, message: APIClientError.message(fromBody: body)))
                            return
                        }
                        conn.deadline = nil  // a follow stream may idle for a long time
                        if framing == .chunked {
                            while let chunk = try HTTPWire.readChunk(conn, limit: Self.maxResponseSize) {
                                continuation.yield(chunk)
                            }
                        } else {
                            let all = try HTTPWire.readBody(conn, framing: framing, limit: Self.maxResponseSize)
                            if !all.isEmpty { continuation.yield(all) }
                        }
                        continuation.finish()
                    } catch {
                        throw map(error)
                    }
                } catch {
                    continuation.finish(throwing: control.isCancelled ? nil : error)
                }
            }
            thread.name = "api-client-stream"
            thread.start()
        }
    }

    // MARK: internals

    private func connect() throws(APIClientError) -> SocketConnection {
        switch UnixSocket.connect(path: socketPath, timeout: timeout) {
        case .success(let fd):
            let conn = SocketConnection(fd: fd)
            conn.deadline = .now + UnixSocket.duration(timeout)
            return conn
        case .failure(let e):
            switch e.code {
            case ENOENT, ENOTDIR: throw .socketMissing(path: socketPath)
            case EACCES, EPERM: throw .permissionDenied(path: socketPath)
            case ECONNREFUSED: throw .connectionRefused(path: socketPath)
            case EAGAIN, ETIMEDOUT: throw .timeout(path: socketPath, seconds: timeout)
            case ENAMETOOLONG:
                throw .unreachable(path: socketPath, reason: "socket path longer than \(UnixSocket.maxPathLength) bytes")
            case ENOTSOCK: throw .unreachable(path: socketPath, reason: "the path is not a socket")
            default: throw .unreachable(path: socketPath, reason: e.text)
            }
        }
    }

    private func writeRequest(_ conn: SocketConnection, method: String, path: String, body: Data?,
                              headers: HTTPHeaders) throws(WireError) {
        var target = ""
        for byte in (path.hasPrefix("/") ? path : "/" + path).utf8 {
            if byte <= 0x20 || byte >= 0x7f {
                target += String(format: "%%%02X", byte)
            } else {
                target.unicodeScalars.append(UnicodeScalar(byte))
            }
        }
        var all = headers
        for (name, value) in [("Host", "localhost"), ("User-Agent", "cilium-swift"), ("Accept", "*/*")]
        where all[name] == nil {
            all[name] = value
        }
        all["Connection"] = "close"
        all.remove("Transfer-Encoding")
        if let body {
            all["Content-Length"] = String(body.count)
            if all["Content-Type"] == nil { all["Content-Type"] = "application/json" }
        } else {
            all.remove("Content-Length")
        }
        var head = "\(method) \(target) HTTP/1.1\r\n"
        for (name, value) in all { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        var data = Data(head.utf8)
        if let body { data.append(body) }
        do {
            try conn.write(data)
        } catch .io(let code) where code == EPIPE || code == ECONNRESET {
            // The agent may have answered early (e.g. 413) and closed; read that answer.
        }
    }

    private func readResponseHead(_ conn: SocketConnection) throws(WireError) -> (Int, HTTPHeaders) {
        while true {
            guard let (line, headers) = try HTTPWire.readHead(conn) else { throw .closed }
            let parts = line.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3,
                  let status = Int(parts[1]) else {
                throw .malformed("invalid status line '\(line.prefix(80))'")
            }
            if (100..<200).contains(status) && status != 101 { continue }  // interim response
            return (status, headers)
        }
    }

    private func responseFraming(method: String, status: Int, headers: HTTPHeaders) throws(WireError)
        -> HTTPWire.BodyFraming {
        if method == "HEAD" || HTTPResponse.isBodyless(status) { return .none }
        let framing = try HTTPWire.framing(headers)
        return framing == .none ? .untilClose : framing
    }

    private func map(_ error: WireError) -> APIClientError {
        switch error {
        case .timeout: .timeout(path: socketPath, seconds: timeout)
        case .closed: .badResponse(path: socketPath, reason: "the connection was closed before the response was complete")
        case .tooLarge: .badResponse(path: socketPath, reason: "response larger than \(Self.maxResponseSize) bytes")
        case .headTooLarge: .badResponse(path: socketPath, reason: "response header larger than \(HTTPWire.maxHeadBytes) bytes")
        case .malformed(let why): .badResponse(path: socketPath, reason: why)
        case .io(let code) where code == ECONNRESET || code == EPIPE:
            .badResponse(path: socketPath, reason: "the connection was reset by the agent")
        case .io(let code): .unreachable(path: socketPath, reason: errnoText(code))
        }
    }
}

/// Lets a cancelled consumer interrupt the reading thread of `stream()`.
private final class StreamControl: Sendable {
    private let state = Mutex<(fd: Int32, cancelled: Bool)>((-1, false))

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// False if the consumer already went away.
    func attach(_ fd: Int32) -> Bool {
        state.withLock { s in
            guard !s.cancelled else { return false }
            s.fd = fd
            return true
        }
    }

    func detachAndClose() {
        state.withLock { s in
            if s.fd >= 0 { close(s.fd) }
            s.fd = -1
        }
    }

    func cancel() {
        state.withLock { s in
            s.cancelled = true
            if s.fd >= 0 { shutdown(s.fd, Int32(SHUT_RDWR)) }
        }
    }
}
