import Foundation
import Glibc
import Synchronization
import Testing
import API
@testable import HTTPTransport
import HTTPServing

@Suite("Unix socket HTTP transport")
struct UnixHTTPTests {
    struct Endpoint: Codable, Equatable {
        var id: Int
        var name: String
        var labels: [String: String]
    }

    static func socketPath(_ tag: String) -> String {
        "/tmp/uhttp-\(tag)-\(UUID().uuidString.prefix(8)).sock"
    }

    static let router: HTTPServer.Handler = { request in
        switch (request.method, request.path) {
        case ("GET", "/v1/healthz"):
            return .json(["status": "ok", "a-first": "yes"])
        case ("POST", "/v1/echo"):
            guard var endpoint = try? request.decode(Endpoint.self) else {
                return .error(status: 400, message: "invalid endpoint")
            }
            endpoint.id += 1
            return .json(endpoint, status: 201)
        case ("GET", "/v1/query"):
            return .json(request.query)
        case ("GET", "/v1/slow"):
            try? await Task.sleep(for: .milliseconds(200))
            return .text("slow")
        case ("GET", "/v1/sleep"):
            try? await Task.sleep(for: .seconds(5))
            return .text("late")
        case ("POST", "/v1/size"):
            return .json(["bytes": request.body.count])
        case ("POST", "/v1/mirror"):
            return HTTPResponse(status: 200, headers: ["Content-Type": "application/octet-stream"], body: request.body)
        case ("GET", "/v1/lines"):
            let count = Int(request.query["n"] ?? "5") ?? 5
            return .stream(AsyncStream { continuation in
                let producer = Task {
                    for i in 0..<count {
                        try? await Task.sleep(for: .milliseconds(10))
                        continuation.yield(Data("{\"seq\":\(i)}\n".utf8))
                    }
                    continuation.finish()
                }
                continuation.onTermination = { _ in producer.cancel() }
            })
        default:
            return .error(status: 404, message: "no route for \(request.method) \(request.path)")
        }
    }

    /// Runs `body` with a started server; always stops it.
    static func withServer(_ tag: String, limits: HTTPServerLimits = HTTPServerLimits(), handler: @escaping HTTPServer.Handler = router,
                           _ body: (HTTPServer, UnixHTTPClient) async throws -> Void) async throws {
        let path = socketPath(tag)
        let server = HTTPServer(socketPath: path, limits: limits, handler: handler)
        try server.start()
        do {
            try await body(server, UnixHTTPClient(socketPath: path, timeout: 10))
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    /// Runs blocking work on its own thread: blocking a cooperative-pool thread could starve the
    /// in-process server's handlers.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    /// Raw connection for protocol-level checks; used by one task at a time.
    final class RawConnection: @unchecked Sendable {
        let conn: SocketConnection
        init(_ path: String) throws {
            conn = SocketConnection(fd: try UnixSocket.connect(path: path, timeout: 5).get())
            conn.deadline = .now + .seconds(10)
        }
        deinit { close(conn.fd) }
        func send(_ text: String) throws { try conn.write(Data(text.utf8)) }
        func response() async throws -> (status: Int, headers: HTTPHeaders, body: String)? {
            try await UnixHTTPTests.onThread { [self] in
                guard let (line, headers) = try HTTPWire.readHead(conn) else { return nil }
                let status = Int(line.split(separator: " ")[1])!
                let body = try HTTPWire.readBody(conn, framing: try HTTPWire.framing(headers), limit: 1 << 20)
                return (status, headers, String(decoding: body, as: UTF8.self))
            }
        }
        func isClosed() async throws -> Bool {
            try await UnixHTTPTests.onThread { [self] in try conn.readLine(limit: 1024) == nil }
        }
    }

    static func makeStaleSocket(_ path: String) throws {
        let fd = try UnixSocket.makeSocket().get()
        let rc = UnixSocket.withSockaddr(UnixSocket.address(path)!) { bind(fd, $0, $1) }
        close(fd)
        #expect(rc == 0)
    }

    // MARK: round trips

    @Test func getAndPostJSON() async throws {
        try await Self.withServer("rt") { _, client in
            let get = try await client.send(path: "/v1/healthz")
            #expect(get.status == 200)
            #expect(String(decoding: get.body, as: UTF8.self) == "{\n  \"a-first\" : \"yes\",\n  \"status\" : \"ok\"\n}")

            let sent = Endpoint(id: 41, name: "web/1", labels: ["app": "web"])
            let post = try await client.send(method: "POST", path: "/v1/echo", body: try JSONEncoder().encode(sent))
            #expect(post.status == 201)
            var expected = sent
            expected.id = 42
            #expect(try JSONDecoder().decode(Endpoint.self, from: post.body) == expected)
        }
    }

    @Test func queryParsing() async throws {
        try await Self.withServer("query") { _, client in
            let r = try await client.send(path: "/v1/query?a=1&b=hello%20world&c=x+y&flag&a=2&sp=a b")
            #expect(r.status == 200)
            let query = try JSONDecoder().decode([String: String].self, from: r.body)
            #expect(query == ["a": "2", "b": "hello world", "c": "x y", "flag": "", "sp": "a b"])
        }
        let request = HTTPRequest(method: "GET", target: "/v1/end%2Fpoints?id=7&id=8")
        #expect(request.path == "/v1/end/points")
        #expect(request.query == ["id": "8"])
        #expect(request.queryItems.map(\.value) == ["7", "8"])
        var headers: HTTPHeaders = ["Content-Type": "a"]
        headers.add(name: "X-Multi", value: "1")
        headers.add(name: "x-multi", value: "2")
        #expect(headers["content-type"] == "a")
        #expect(headers.values(for: "X-MULTI") == ["1", "2"])
    }

    @Test func notFoundFromHandler() async throws {
        try await Self.withServer("404") { _, client in
            let r = try await client.send(method: "DELETE", path: "/v1/nope")
            #expect(r.status == 404)
            #expect(APIClientError.message(fromBody: r.body) == "no route for DELETE /v1/nope")
            let object = try JSONSerialization.jsonObject(with: r.body) as? [String: String]
            #expect(object == ["error": "no route for DELETE /v1/nope"])
        }
    }

    // MARK: connection handling

    @Test func keepAliveAndPipelining() async throws {
        try await Self.withServer("keep") { server, _ in
            let raw = try RawConnection(server.socketPath)
            for _ in 0..<3 {
                try raw.send("GET /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let r = try #require(try await raw.response())
                #expect(r.status == 200)
                #expect(r.headers["connection"] == "keep-alive")
                #expect(r.body.contains("\"ok\""))
            }
            // Two pipelined requests in one write, the second with a body.
            try raw.send("GET /v1/query?x=1 HTTP/1.1\r\n\r\nPOST /v1/size HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            #expect(try await raw.response()?.body.contains("\"x\" : \"1\"") == true)
            #expect(try await raw.response()?.body.contains("\"bytes\" : 3") == true)
            // Chunked request body.
            try raw.send("POST /v1/size HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2;x=y\r\nef\r\n0\r\n\r\n")
            #expect(try await raw.response()?.body.contains("\"bytes\" : 6") == true)
            // Connection: close ends it.
            try raw.send("GET /v1/healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            let last = try #require(try await raw.response())
            #expect(last.headers["Connection"] == "close")
            #expect(try await raw.isClosed())
        }
    }

    @Test func fiftyConcurrentClients() async throws {
        try await Self.withServer("conc") { _, client in
            let start = ContinuousClock.now
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<50 {
                    group.addTask { try await client.send(path: "/v1/slow").status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.count == 50 && statuses.allSatisfy { $0 == 200 })
            // Each request takes 200 ms in the handler; serially that would be 10 s.
            #expect(ContinuousClock.now - start < .seconds(8))
        }
    }

    @Test func largeBodies() async throws {
        try await Self.withServer("large") { _, client in
            var body = Data(count: 8 << 20)
            body.withUnsafeMutableBytes { raw in
                for i in 0..<raw.count { raw[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 9) }
            }
            let mirrored = try await client.send(method: "POST", path: "/v1/mirror", body: body)
            #expect(mirrored.status == 200)
            #expect(mirrored.body == body)

            let atLimit = try await client.send(method: "POST", path: "/v1/size", body: Data(count: HTTPServerLimits().maxBodyBytes))
            #expect(atLimit.status == 200)
            #expect(String(decoding: atLimit.body, as: UTF8.self).contains("\(HTTPServerLimits().maxBodyBytes)"))

            let over = try await client.send(method: "POST", path: "/v1/size", body: Data(count: HTTPServerLimits().maxBodyBytes + 1))
            #expect(over.status == 413)
            #expect(APIClientError.message(fromBody: over.body).contains("exceeds"))
        }
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n",
        "GET /v1/healthz HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET /v1/healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        "GET v1/healthz HTTP/1.1\r\n\r\n",
        "GET /v1/healthz SPDY/3\r\n\r\n",
        "POST /v1/size HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST /v1/size HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ])
    func malformedRequestGets400(_ request: String) async throws {
        try await Self.withServer("bad") { server, client in
            let raw = try RawConnection(server.socketPath)
            try raw.send(request)
            let r = try #require(try await raw.response())
            #expect(r.status == 400)
            #expect(r.body.contains("\"error\" : \"malformed request"))
            #expect(try await raw.isClosed())
            #expect(try await client.send(path: "/v1/healthz").status == 200)  // server still fine
        }
    }

    @Test func oversizedHeadGets431() async throws {
        try await Self.withServer("head") { server, _ in
            let raw = try RawConnection(server.socketPath)
            try raw.send("GET / HTTP/1.1\r\nX-Big: \(String(repeating: "a", count: 70_000))\r\n\r\n")
            #expect(try await raw.response()?.status == 431)
        }
    }

    // MARK: socket file lifecycle

    @Test func socketFileIsRootOnlyAndParentCreated() async throws {
        let dir = "/tmp/uhttp-dir-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/run/agent.sock"
        let server = HTTPServer(socketPath: path, handler: Self.router)
        try server.start()
        defer { server.stop() }
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & S_IFMT == S_IFSOCK)
        #expect(st.st_mode & 0o7777 == 0o600)
        #expect(stat(dir + "/run", &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o755)
    }

    @Test func staleSocketIsReplaced() async throws {
        let path = Self.socketPath("stale")
        try Self.makeStaleSocket(path)
        let client = UnixHTTPClient(socketPath: path, timeout: 5)
        #expect(throws: APIClientError.connectionRefused(path: path)) { try client.send(path: "/v1/healthz") }

        let server = HTTPServer(socketPath: path, handler: Self.router)
        try server.start()
        defer { server.stop() }
        #expect(try await client.send(path: "/v1/healthz").status == 200)
    }

    @Test func secondServerOnLivePathIsRefused() async throws {
        try await Self.withServer("dup") { (server: HTTPServer, client: UnixHTTPClient) async throws in
            let second = HTTPServer(socketPath: server.socketPath, handler: Self.router)
            let error = #expect(throws: HTTPServerError.self) { try second.start() }
            #expect(error == .alreadyRunning(path: server.socketPath))
            let text = error?.description ?? ""
            #expect(text.contains("unix://\(server.socketPath)"))
            #expect(text.contains("another cilium-agent seems to be running there"))
            #expect(try await client.send(path: "/v1/healthz").status == 200)  // first one untouched
            #expect(throws: HTTPServerError.alreadyStarted(path: server.socketPath)) { try server.start() }
        }
    }

    @Test func refusesToReplaceNonSocket() throws {
        let path = Self.socketPath("file")
        defer { unlink(path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data("keep".utf8)))
        let server = HTTPServer(socketPath: path, handler: Self.router)
        #expect(throws: HTTPServerError.notASocket(path: path)) { try server.start() }
        #expect(FileManager.default.contents(atPath: path) == Data("keep".utf8))
    }

    @Test func stopRemovesSocketFileAndCanRestart() async throws {
        let path = Self.socketPath("stop")
        let server = HTTPServer(socketPath: path, handler: Self.router)
        try server.start()
        let client = UnixHTTPClient(socketPath: path, timeout: 5)
        // An idle keep-alive connection must not keep stop() waiting.
        let idle = try RawConnection(path)
        try idle.send("GET /v1/healthz HTTP/1.1\r\n\r\n")
        #expect(try await idle.response()?.status == 200)

        let start = ContinuousClock.now
        await server.stop()
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try await idle.isClosed())
        #expect(throws: APIClientError.socketMissing(path: path)) { try client.send(path: "/v1/healthz") }
        await server.stop()  // idempotent

        try server.start()
        defer { server.stop() }
        #expect(try await client.send(path: "/v1/healthz").status == 200)
    }

    @Test func stopWaitsForInFlightRequest() async throws {
        let path = Self.socketPath("drain")
        let started = Mutex(false)
        let server = HTTPServer(socketPath: path) { request in
            started.withLock { $0 = true }
            return await Self.router(request)
        }
        try server.start()
        let client = UnixHTTPClient(socketPath: path, timeout: 5)
        async let slow = client.send(path: "/v1/slow")
        while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        await server.stop()
        let r = try await slow
        #expect(r.status == 200)
        #expect(String(decoding: r.body, as: UTF8.self) == "slow")
    }

    // MARK: streaming

    @Test func streamingDeliversChunksInOrder() async throws {
        try await Self.withServer("stream") { _, client in
            var chunks: [String] = []
            for try await chunk in client.stream(path: "/v1/lines?n=20") {
                chunks.append(String(decoding: chunk, as: UTF8.self))
            }
            #expect(chunks == (0..<20).map { "{\"seq\":\($0)}\n" })
        }
    }

    @Test func streamEndsWhenClientDisconnects() async throws {
        let terminated = Mutex(false)
        let source = Mutex<AsyncStream<Data>.Continuation?>(nil)
        let handler: HTTPServer.Handler = { _ in
            .stream(AsyncStream { continuation in
                continuation.onTermination = { _ in terminated.withLock { $0 = true } }
                continuation.yield(Data("first\n".utf8))
                source.withLock { $0 = continuation }  // then stays open, like `observe --follow`
            })
        }
        try await Self.withServer("follow", handler: handler) { _, client in
            for try await chunk in client.stream(path: "/v1/flows") {
                #expect(chunk == Data("first\n".utf8))
                break  // consumer goes away -> connection closed
            }
            let deadline = ContinuousClock.now + .seconds(5)
            while !terminated.withLock({ $0 }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(terminated.withLock { $0 })
        }
        #expect(source.withLock { $0 } != nil)
    }

    @Test func stopEndsOpenStreams() async throws {
        let handler: HTTPServer.Handler = { _ in
            .stream(AsyncStream { continuation in continuation.yield(Data("x\n".utf8)) })  // never finishes
        }
        let path = Self.socketPath("stopstream")
        let server = HTTPServer(socketPath: path, handler: handler)
        try server.start()
        let stream = UnixHTTPClient(socketPath: path).stream(path: "/v1/flows")
        var iterator = stream.makeAsyncIterator()
        #expect(try await iterator.next() == Data("x\n".utf8))
        let start = ContinuousClock.now
        await server.stop()
        #expect(ContinuousClock.now - start < .seconds(2))
        // The server closed without the last chunk: the client reports an incomplete response.
        await #expect(throws: APIClientError.self) { _ = try await iterator.next() }
    }

    @Test func streamWithErrorStatusThrows() async throws {
        try await Self.withServer("streamerr") { _, client in
            await #expect(throws: APIClientError.requestFailed(status: 404, message: "no route for GET /v1/missing")) {
                for try await _ in client.stream(path: "/v1/missing") {}
            }
        }
    }

    // MARK: client errors

    @Test func clientErrorMessages() async throws {
        let missing = "/tmp/uhttp-none-\(UUID().uuidString.prefix(8)).sock"
        let client = UnixHTTPClient(socketPath: missing, timeout: 1)
        let error = #expect(throws: APIClientError.self) { try client.send(path: "/v1/healthz") }
        #expect(error?.description ==
            "cannot reach the agent at unix://\(missing): no such socket; is cilium-agent running? (set -H or CILIUM_SOCK)")
        await #expect(throws: APIClientError.socketMissing(path: missing)) {
            for try await _ in client.stream(path: "/v1/flows") {}
        }

        let stale = Self.socketPath("refused")
        defer { unlink(stale) }
        try Self.makeStaleSocket(stale)
        let refused = #expect(throws: APIClientError.self) {
            try UnixHTTPClient(socketPath: stale).send(path: "/v1/healthz")
        }
        #expect(refused == .connectionRefused(path: stale))
        #expect(refused?.description.contains("unix://\(stale): connection refused; the socket file is stale") == true)

        #expect(APIClientError.permissionDenied(path: "/p").description.contains("unix:///p: permission denied"))
        #expect(APIClientError.timeout(path: "/p", seconds: 0.5).description.contains("did not answer within 0.5s"))
    }

    @Test func clientTimeout() async throws {
        try await Self.withServer("timeout") { server, _ in
            let client = UnixHTTPClient(socketPath: server.socketPath, timeout: 0.3)
            let start = ContinuousClock.now
            await #expect(throws: APIClientError.timeout(path: server.socketPath, seconds: 0.3)) {
                try await client.send(path: "/v1/sleep")
            }
            // Well before the handler (5 s) answers: the timeout, not the server, ended it.
            #expect(ContinuousClock.now - start < .seconds(4))
        }
    }

    @Test func clientRejectsGarbageResponse() async throws {
        // A listener that answers with something that is not HTTP.
        let path = Self.socketPath("garbage")
        defer { unlink(path) }
        let fd = try UnixSocket.makeSocket().get()
        defer { close(fd) }
        #expect(UnixSocket.withSockaddr(UnixSocket.address(path)!) { bind(fd, $0, $1) } == 0)
        #expect(listen(fd, 4) == 0)
        Thread {
            let c = accept(fd, nil, nil)
            try? UnixSocket.writeAll(c, Data("SSH-2.0-OpenSSH\r\n\r\n".utf8))
            usleep(100_000)
            close(c)
        }.start()
        let error = #expect(throws: APIClientError.self) {
            try UnixHTTPClient(socketPath: path, timeout: 2).send(path: "/")
        }
        #expect(error?.description.hasPrefix("the agent at unix://\(path) sent an invalid response") == true)
    }
}
