import Foundation

/// Ordered header fields with case-insensitive lookup.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public private(set) var fields: [(name: String, value: String)] = []

    public init() {}
    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { add(name: name, value: value) }
    }

    /// First value of `name` (case-insensitive); setting replaces all values, nil removes them.
    public subscript(name: String) -> String? {
        get { fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value }
        set {
            remove(name)
            if let newValue { add(name: name, value: newValue) }
        }
    }

    public func values(for name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }

    public mutating func add(name: String, value: String) { fields.append((name, value)) }

    public mutating func remove(_ name: String) {
        fields.removeAll { $0.name.caseInsensitiveCompare(name) == .orderedSame }
    }

    /// True if a comma-separated header (e.g. Connection) contains `token`.
    public func contains(_ name: String, token: String) -> Bool {
        values(for: name).contains { value in
            value.split(separator: ",").contains {
                $0.trimmingCharacters(in: .whitespaces).caseInsensitiveCompare(token) == .orderedSame
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }
    public var description: String { fields.map { "\($0.name): \($0.value)" }.joined(separator: "\n") }
}

public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent (path plus optional `?query`).
    public var target: String
    /// Percent-decoded path without the query.
    public var path: String
    /// Query parameters; for repeated keys the last one wins (see `queryItems`).
    public var query: [String: String]
    public var queryItems: [(name: String, value: String)]
    public var headers: HTTPHeaders
    public var body: Data

    public init(method: String, target: String, headers: HTTPHeaders = HTTPHeaders(), body: Data = Data()) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let rawPath = parts.first.map(String.init) ?? ""
        self.path = rawPath.removingPercentEncoding ?? rawPath
        var items: [(name: String, value: String)] = []
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") where !pair.isEmpty {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                items.append((Self.formDecode(kv[0]), kv.count > 1 ? Self.formDecode(kv[1]) : ""))
            }
        }
        self.queryItems = items
        self.query = Dictionary(items.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    /// Decodes the JSON body.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: body)
    }

    static func formDecode(_ s: Substring) -> String {
        let spaced = s.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: Data
    /// When set, `body` is ignored and the chunks are sent with chunked transfer encoding until
    /// the stream finishes or the client disconnects (the stream is then cancelled). The
    /// connection is closed afterwards.
    public var stream: AsyncStream<Data>?

    public init(status: Int = 200, headers: HTTPHeaders = HTTPHeaders(), body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Pretty-printed JSON with sorted keys. An encoding failure yields a 500 error response.
    public static func json(_ value: some Encodable, status: Int = 200) -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return HTTPResponse(status: status, headers: ["Content-Type": "application/json"],
                                body: try encoder.encode(value))
        } catch {
            return .error(status: 500, message: "cannot encode response: \(error)")
        }
    }

    public static func text(_ text: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Data(text.utf8))
    }

    /// `{"error": message}`.
    public static func error(status: Int, message: String) -> HTTPResponse {
        json(["error": message], status: status)
    }

    /// A chunked streaming response; by default newline-delimited JSON.
    public static func stream(_ chunks: AsyncStream<Data>, status: Int = 200,
                              contentType: String = "application/x-ndjson") -> HTTPResponse {
        var response = HTTPResponse(status: status, headers: ["Content-Type": contentType])
        response.stream = chunks
        return response
    }

    public static func reason(for status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}

/// HTTP/1.1 framing shared by server and client.
enum HTTPWire {
    static let maxHeadBytes = 64 * 1024
    static let maxHeaderCount = 100
    static let crlf = Data("\r\n".utf8)

    /// Start line and header fields. nil on a clean EOF before the first byte.
    static func readHead(_ conn: SocketConnection) throws(WireError) -> (line: String, headers: HTTPHeaders)? {
        var budget = maxHeadBytes
        var line: String
        repeat {  // tolerate empty lines before the start line (RFC 9112 §2.2)
            guard let l = try conn.readLine(limit: budget) else { return nil }
            line = l
            budget -= l.utf8.count + 2
            if budget <= 0 { throw .headTooLarge }
        } while line.isEmpty
        var headers = HTTPHeaders()
        while true {
            guard let field = try conn.readLine(limit: budget) else { throw .closed }
            budget -= field.utf8.count + 2
            if budget <= 0 { throw .headTooLarge }
            if field.isEmpty { return (line, headers) }
            guard headers.fields.count < maxHeaderCount else { throw .headTooLarge }
            guard let first = field.first, first != " ", first != "\t" else {
                throw .malformed("obsolete header line folding")
            }
            guard let colon = field.firstIndex(of: ":") else { throw .malformed("header line without ':'") }
            let name = field[..<colon]
            guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "\t" }) else {
                throw .malformed("invalid header name")
            }
            headers.add(name: String(name),
                        value: field[field.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
    }

    enum BodyFraming: Equatable { case none, length(Int), chunked, untilClose }

    static func framing(_ headers: HTTPHeaders) throws(WireError) -> BodyFraming {
        let te = headers.values(for: "Transfer-Encoding")
        let cl = headers.values(for: "Content-Length")
        if !te.isEmpty {
            guard cl.isEmpty else { throw .malformed("both Content-Length and Transfer-Encoding") }
            guard te.count == 1, te[0].lowercased() == "chunked" else {
                throw .malformed("unsupported Transfer-Encoding '\(te.joined(separator: ", "))'")
            }
            return .chunked
        }
        guard let first = cl.first else { return .none }
        guard cl.allSatisfy({ $0 == first }), !first.isEmpty, first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let n = Int(first) else {
            throw .malformed("invalid Content-Length '\(cl.joined(separator: ", "))'")
        }
        return .length(n)
    }

    static func readBody(_ conn: SocketConnection, framing: BodyFraming, limit: Int) throws(WireError) -> Data {
        switch framing {
        case .none: return Data()
        case .length(let n):
            guard n <= limit else { throw .tooLarge }
            return try conn.readExact(n)
        case .untilClose:
            return try conn.readToEnd(limit: limit)
        case .chunked:
            var body = Data()
            while let chunk = try readChunk(conn, limit: limit - body.count) {
                body.append(chunk)
            }
            return body
        }
    }

    /// One chunk of a chunked body; nil after the last (zero-size) chunk and its trailers.
    static func readChunk(_ conn: SocketConnection, limit: Int) throws(WireError) -> Data? {
        guard let sizeLine = try conn.readLine(limit: 1024) else { throw .closed }
        let hex = sizeLine.split(separator: ";", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !hex.isEmpty, hex.count <= 16, let size = Int(hex, radix: 16), size >= 0 else {
            throw .malformed("invalid chunk size '\(sizeLine)'")
        }
        if size == 0 {
            var budget = maxHeadBytes
            while true {  // trailer fields, ignored
                guard let t = try conn.readLine(limit: budget) else { throw .closed }
                if t.isEmpty { return nil }
                budget -= t.utf8.count + 2
                if budget <= 0 { throw .headTooLarge }
            }
        }
        guard size <= limit else { throw .tooLarge }
        let data = try conn.readExact(size)
        let end: String?
        do throws(WireError) { end = try conn.readLine(limit: 2) } catch .headTooLarge { end = nil }
        guard end == "" else { throw .malformed("missing CRLF after chunk") }
        return data
    }
}

extension HTTPResponse {
    /// 1xx, 204 and 304 responses carry no body (and no Content-Length).
    public static func isBodyless(_ status: Int) -> Bool { (100..<200).contains(status) || status == 204 || status == 304 }
}
