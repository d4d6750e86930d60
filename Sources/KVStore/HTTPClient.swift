import Foundation

/// An `http://host:port` endpoint.
struct HTTPEndpoint: Sendable, Hashable {
    let url: String
    let host: String
    let port: Int

    /// Accepts `http://host:port`, `host:port` and `http://[v6]:port`;
    /// https needs TLS, which this client does not speak.
    init(parsing text: String) throws(KVStoreError) {
        func invalid(_ why: String) -> KVStoreError {
            KVStoreError(.invalidArgument, source: "etcd \(text)", operation: "parse endpoint", reason: why)
        }
        var rest = Substring(text)
        if rest.hasPrefix("https://") { throw invalid("https is not supported (no TLS client); use http://") }
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        let host: Substring
        var portText: Substring = "2379"
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw invalid("unterminated IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty, !host.contains("/") else { throw invalid("no host") }
        guard let port = Int(portText), (1...65535).contains(port) else { throw invalid("bad port \(portText)") }
        self.host = String(host)
        self.port = port
        self.url = host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
    }
}

/// Why an exchange failed. `connect` means the request was never sent, so
/// another endpoint may be tried safely.
enum HTTPFailure: Error {
    case connect(String)
    case timeout
    case io(String)
    case malformed(String)
    case cancelled
}

struct HTTPResponse: Sendable {
    var status: Int
    var body: Data
}

/// Idle keep-alive connections by endpoint: requests reuse them instead of
/// opening a TCP connection each (a node's agent talks to etcd several
/// times a second). Only whole, cleanly ended responses give their
/// connection back.
final class ConnectionPool: @unchecked Sendable {
    static let shared = ConnectionPool()
    private let lock = NSLock()
    private var idle: [HTTPEndpoint: [TCPConnection]] = [:]
    private let maxIdle = 4

    func take(_ e: HTTPEndpoint) -> TCPConnection? {
        lock.withLock { idle[e]?.popLast() }
    }

    func give(_ c: TCPConnection, _ e: HTTPEndpoint) {
        let extra: TCPConnection? = lock.withLock {
            if idle[e, default: []].count >= maxIdle { return c }
            idle[e, default: []].append(c)
            return nil
        }
        extra?.close()
    }
}

/// Minimal blocking HTTP/1.1 client: POSTs on kept-alive connections
/// (watch streams on their own, `Connection: close`), Content-Length or
/// chunked bodies.
enum HTTPClient {
    /// POSTs `body` and returns the whole response, all within `timeout`.
    /// A reused connection the server closed while idle (no response byte
    /// came back) is dropped and the request sent once more on a new one.
    static func post(_ endpoint: HTTPEndpoint, path: String, body: Data, timeout: Duration) throws(HTTPFailure) -> HTTPResponse {
        let deadline = ContinuousClock.now + timeout
        while true {
            let pooled = ConnectionPool.shared.take(endpoint)
            let conn: TCPConnection
            if let pooled {
                conn = pooled
                do {
                    try conn.writeAll(request(endpoint, path: path, body: body, keepAlive: true), deadline: deadline)
                } catch {
                    conn.close()
                    continue
                }
            } else {
                conn = try open(endpoint, path: path, body: body, deadline: deadline, cancel: nil, keepAlive: true)
            }
            var reader = ResponseReader(conn: conn)
            let status: Int
            do {
                status = try reader.readHead(deadline: deadline)
            } catch {
                conn.close()
                if pooled != nil, !reader.receivedAny { continue }
                throw error
            }
            var data = Data()
            do {
                try reader.readBody(deadline: deadline) { data.append(contentsOf: $0); return true }
            } catch let failure as HTTPFailure {
                conn.close()
                throw failure
            } catch {
                conn.close()
                throw .io("\(error)")
            }
            if reader.reusable { ConnectionPool.shared.give(conn, endpoint) } else { conn.close() }
            return HTTPResponse(status: status, body: data)
        }
    }

    /// POSTs `body` and hands the response body line by line (etcd's
    /// gateway streams one JSON message per line) to `onLine` until it
    /// returns false, the server ends the stream, or `cancel` fires. The
    /// connection and the response head must come within `timeout`; the
    /// stream itself may stay quiet forever. Returns the status when it is
    /// not 200 (with the body in `errorBody`), nil otherwise.
    static func stream(_ endpoint: HTTPEndpoint, path: String, body: Data, timeout: Duration, cancel: CancelHandle,
                       errorBody: inout Data, onLine: (Data) throws -> Bool) throws -> Int? {
        let deadline = ContinuousClock.now + timeout
        let conn = try open(endpoint, path: path, body: body, deadline: deadline, cancel: cancel)
        defer { cancel.detach(); conn.close() }
        var reader = ResponseReader(conn: conn)
        do {
            let status = try reader.readHead(deadline: deadline)
            if status != 200 {
                var data = Data()
                try reader.readBody(deadline: deadline) { data.append(contentsOf: $0); return true }
                errorBody = data
                return status
            }
            var pending: [UInt8] = []
            try reader.readBody(deadline: nil) { bytes in
                pending.append(contentsOf: bytes)
                while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Data(pending[..<nl])
                    pending.removeSubrange(...nl)
                    if line.allSatisfy({ $0 == 32 || $0 == 13 }) { continue }
                    if try !onLine(line) { return false }
                }
                return true
            }
            if !pending.isEmpty { _ = try onLine(Data(pending)) }
            return nil
        } catch let failure as HTTPFailure {
            throw cancel.isCancelled ? HTTPFailure.cancelled : failure
        }
    }

    static func request(_ endpoint: HTTPEndpoint, path: String, body: Data, keepAlive: Bool) -> [UInt8] {
        let hostHeader = endpoint.host.contains(":") ? "[\(endpoint.host)]:\(endpoint.port)" : "\(endpoint.host):\(endpoint.port)"
        let head = "POST \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.count)\r\nConnection: \(keepAlive ? "keep-alive" : "close")\r\n\r\n"
        return Array(head.utf8) + Array(body)
    }

    private static func open(_ endpoint: HTTPEndpoint, path: String, body: Data, deadline: ContinuousClock.Instant,
                             cancel: CancelHandle?, keepAlive: Bool = false) throws(HTTPFailure) -> TCPConnection {
        let conn: TCPConnection
        do {
            conn = try TCPConnection.connect(host: endpoint.host, port: endpoint.port, deadline: deadline)
        } catch {
            throw .connect(error.kind == .timeout ? "connect timed out" : error.description)
        }
        if let cancel, !cancel.attach(conn.fd) { conn.close(); throw .cancelled }
        do {
            try conn.writeAll(request(endpoint, path: path, body: body, keepAlive: keepAlive), deadline: deadline)
        } catch {
            conn.close()
            throw error.kind == .timeout ? .timeout : .io(error.description)
        }
        return conn
    }
}

/// Parses an HTTP/1.1 response from a connection.
private struct ResponseReader {
    let conn: TCPConnection
    var buffer: [UInt8] = []
    var start = 0
    var chunked = false
    var contentLength: Int?
    /// Some byte of a response arrived (a reused connection that gives none was closed while idle).
    private(set) var receivedAny = false
    private var serverCloses = false
    private var bodyComplete = false

    init(conn: TCPConnection) { self.conn = conn }

    /// The response ended cleanly, nothing is left over and the server keeps the connection open.
    var reusable: Bool { bodyComplete && !serverCloses && start == buffer.count }

    private mutating func fill(deadline: ContinuousClock.Instant?) throws(HTTPFailure) -> Bool {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        do {
            let n = try conn.read(appendingTo: &buffer, deadline: deadline)
            if n > 0 { receivedAny = true }
            return n > 0
        } catch {
            throw error.kind == .timeout ? .timeout : .io(error.description)
        }
    }

    private mutating func line(deadline: ContinuousClock.Instant?) throws(HTTPFailure) -> String {
        while true {
            if let end = crlf() {
                let text = String(decoding: buffer[start..<end], as: UTF8.self)
                start = end + 2
                return text
            }
            guard try fill(deadline: deadline) else { throw .io("connection closed by server") }
        }
    }

    private func crlf() -> Int? {
        var i = start
        while i + 1 < buffer.count {
            if buffer[i] == 13 && buffer[i + 1] == 10 { return i }
            i += 1
        }
        return nil
    }

    private mutating func bytes(_ count: Int, deadline: ContinuousClock.Instant?,
                                _ sink: ([UInt8]) throws -> Bool) throws -> Bool {
        var left = count
        while left > 0 {
            if start == buffer.count {
                guard try fill(deadline: deadline) else { throw HTTPFailure.io("connection closed by server") }
            }
            let take = min(left, buffer.count - start)
            let piece = Array(buffer[start..<start + take])
            start += take
            left -= take
            if try !sink(piece) { return false }
        }
        return true
    }

    mutating func readHead(deadline: ContinuousClock.Instant) throws(HTTPFailure) -> Int {
        let statusLine = try line(deadline: deadline)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw .malformed("bad status line \"\(statusLine.prefix(80))\"")
        }
        while true {
            let header = try line(deadline: deadline)
            if header.isEmpty { break }
            guard let colon = header.firstIndex(of: ":") else { continue }
            let name = header[..<colon].lowercased()
            let value = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "transfer-encoding" && value.lowercased().contains("chunked") { chunked = true }
            if name == "content-length" { contentLength = Int(value) }
            if name == "connection" && value.lowercased().contains("close") { serverCloses = true }
        }
        return status
    }

    /// Hands body bytes to `sink` as they arrive until the body ends or
    /// `sink` returns false.
    mutating func readBody(deadline: ContinuousClock.Instant?, _ sink: ([UInt8]) throws -> Bool) throws {
        if chunked {
            while true {
                let sizeLine = try line(deadline: deadline)
                let hex = sizeLine.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                guard let size = Int(hex, radix: 16) else { throw HTTPFailure.malformed("bad chunk size \"\(sizeLine.prefix(20))\"") }
                if size == 0 {
                    // Trailers, then an empty line: the connection is clean for the next request.
                    while try !line(deadline: deadline).isEmpty {}
                    bodyComplete = true
                    return
                }
                if try !bytes(size, deadline: deadline, sink) { return }
                _ = try line(deadline: deadline)
            }
        } else if let contentLength {
            bodyComplete = try bytes(contentLength, deadline: deadline, sink)
        } else {
            while true {
                if start < buffer.count {
                    let piece = Array(buffer[start...])
                    start = buffer.count
                    if try !sink(piece) { return }
                }
                guard try fill(deadline: deadline) else { return }
            }
        }
    }
}
