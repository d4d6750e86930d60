import Foundation
import Glibc
import HTTPServing
@testable import HTTPTransport
import Synchronization
import Testing
import TestSupport

/// Issue 16: what one client can hold of a listener (`agent.http.*`), each limit on its own.
@Suite("HTTP server limits")
struct HTTPServerLimitsTests {
    typealias Raw = UnixHTTPTests.RawConnection
    static let short = HTTPServerLimits(headerTimeout: .milliseconds(300), idleTimeout: .milliseconds(500))

    /// Polls `condition` for up to `timeout`.
    static func eventually(_ timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test func halfAHeadGets408AtTheHeaderTimeout() async throws {
        try await UnixHTTPTests.withServer("hto", limits: Self.short) { server, client in
            let raw = try Raw(server.socketPath)
            let start = ContinuousClock.now
            try raw.send("GET /v1/healthz HTTP/1.1\r\nHost: slow")
            let r = try #require(try await raw.response())
            #expect(r.status == 408)
            #expect(r.body.contains("request head not complete within"))
            #expect(try await raw.isClosed())
            #expect(ContinuousClock.now - start < .seconds(3))
            #expect(try await client.send(path: "/v1/healthz").status == 200)
        }
    }

    @Test func aHeadTrickledByteByByteStillEndsAtTheHeaderTimeout() async throws {
        try await UnixHTTPTests.withServer("trickle", limits: Self.short) { server, _ in
            let raw = try Raw(server.socketPath)
            let start = ContinuousClock.now
            var status: Int?
            for byte in "GET /v1/healthz HTTP/1.1\r\nX-Slow: " + String(repeating: "a", count: 40) {
                if (try? raw.send(String(byte))) == nil { break }
                try await Task.sleep(for: .milliseconds(25))
                if ContinuousClock.now - start > .seconds(2) { break }
            }
            status = try? await raw.response()?.status
            #expect(status == 408 || status == nil)
            #expect(try await raw.isClosed())
            #expect(ContinuousClock.now - start < .seconds(3))
        }
    }

    @Test func aSilentConnectionIsClosedAtTheIdleTimeout() async throws {
        try await UnixHTTPTests.withServer("idle", limits: Self.short) { server, _ in
            let silent = try Raw(server.socketPath)
            #expect(try await silent.isClosed())
            // After a response, the keep-alive connection gets the same.
            let used = try Raw(server.socketPath)
            try used.send("GET /v1/healthz HTTP/1.1\r\n\r\n")
            #expect(try await used.response()?.status == 200)
            #expect(try await used.isClosed())
            #expect(try await Self.eventually { server.connections.open == 0 })
        }
    }

    @Test func aStalledBodyGets408() async throws {
        try await UnixHTTPTests.withServer("body", limits: Self.short) { server, _ in
            let raw = try Raw(server.socketPath)
            try raw.send("POST /v1/size HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
            let r = try #require(try await raw.response())
            #expect(r.status == 408)
            #expect(r.body.contains("request body stalled"))
        }
    }

    @Test func aLongRequestLineOrTooManyFieldsGets431() async throws {
        try await UnixHTTPTests.withServer("line") { server, client in
            let long = try Raw(server.socketPath)
            try long.send("GET /" + String(repeating: "a", count: 70_000) + " HTTP/1.1\r\n\r\n")
            #expect(try await long.response()?.status == 431)
            let many = try Raw(server.socketPath)
            try many.send("GET / HTTP/1.1\r\n" + (0..<101).map { "X-F\($0): v\r\n" }.joined() + "\r\n")
            #expect(try await many.response()?.status == 431)
            #expect(try await client.send(path: "/v1/healthz").status == 200)
        }
    }

    @Test func atTheCapTheLongestWaitingConnectionMakesRoom() async throws {
        try await UnixHTTPTests.withServer("cap", limits: HTTPServerLimits(maxConnections: 16)) { server, client in
            var waiting: [Raw] = []
            for _ in 0..<16 {
                waiting.append(try Raw(server.socketPath))
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(try await Self.eventually { server.connections.open == 16 })
            #expect(try await client.send(path: "/v1/healthz").status == 200)
            #expect(try await waiting[0].isClosed())
            #expect(server.connections.evicted >= 1)
            #expect(server.connections.open <= 16)
        }
    }

    @Test func atTheCapWithEveryConnectionBusyANewOneGets503() async throws {
        let inHandler = Atomic<Int>(0)
        let handler: HTTPServer.Handler = { request in
            inHandler.add(1, ordering: .relaxed)
            return await UnixHTTPTests.router(request)
        }
        try await UnixHTTPTests.withServer("busy", limits: HTTPServerLimits(maxConnections: 2), handler: handler) { server, client in
            async let first = client.send(path: "/v1/slow")
            async let second = client.send(path: "/v1/slow")
            #expect(try await Self.eventually { inHandler.load(ordering: .relaxed) == 2 })
            let third = try await client.send(path: "/v1/healthz")
            #expect(third.status == 503)
            #expect(APIClientError.message(fromBody: third.body).contains("agent.http.maxConnections"))
            #expect(try await first.status == 200)
            #expect(try await second.status == 200)
            #expect(server.connections.refused >= 1)
        }
    }

    @Test func aClientThatDoesNotReadItsResponseIsClosed() async throws {
        try await UnixHTTPTests.withServer("reader", limits: Self.short) { server, _ in
            let raw = try Raw(server.socketPath)
            let body = String(repeating: "x", count: 8 << 20)
            try await UnixHTTPTests.onThread { try raw.send("POST /v1/mirror HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body) }
            // 8 MB back and nobody reading: closed after the idle timeout, not held.
            #expect(try await Self.eventually { server.connections.open == 0 })
        }
    }

    @Test func aHalfClosedClientStillGetsItsAnswer() async throws {
        try await UnixHTTPTests.withServer("half") { server, _ in
            let raw = try Raw(server.socketPath)
            try raw.send("GET /v1/healthz HTTP/1.1\r\n\r\nGET /v1/query?x=2 HTTP/1.1\r\n\r\n")
            shutdown(raw.conn.fd, Int32(SHUT_WR))
            #expect(try await raw.response()?.status == 200)
            #expect(try await raw.response()?.body.contains("\"x\" : \"2\"") == true)
            #expect(try await raw.isClosed())
        }
    }

    /// Found by the fuzzer: an HTTP/1.0 request with `Expect: 100-continue` got "HTTP/1.0 100
    /// Continue", which a 1.0 client takes for the final answer.
    @Test func anHTTP10ClientGetsNoInterimResponse() async throws {
        try await UnixHTTPTests.withServer("expect10") { server, _ in
            let old = try Raw(server.socketPath)
            try old.send("POST /v1/size HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
            #expect(try await old.response()?.status == 200)
            let new = try Raw(server.socketPath)
            try new.send("POST /v1/size HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
            #expect(try await new.response()?.status == 100)
            #expect(try await new.response()?.status == 200)
        }
    }
}
