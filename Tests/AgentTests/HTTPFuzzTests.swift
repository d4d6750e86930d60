import Foundation
import Glibc
import HTTPServing
@testable import HTTPTransport
import Testing
import TestSupport

/// Issue 16: the agent's HTTP request parsing (swift-nio's decoder behind the connection gate)
/// under the mutation fuzzer. Each input goes to an in-process server on a connection of its
/// own, which then half-closes; whatever comes back must be well-formed HTTP/1.1 responses, and
/// the server must keep answering. `CILIUM_FUZZ_INPUTS=100000` for a long run.
@Suite("HTTP request fuzzing")
struct HTTPFuzzTests {
    static let seeds = [
        "GET /v1/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /v1/query?x=1&y=%20z HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nGET /v1/healthz HTTP/1.1\r\n\r\n",
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"id\":1,\"n\":2}",
        "POST /v1/size HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2;ext=1\r\nef\r\n0\r\nTrailer: x\r\n\r\n",
        "PUT /v1/policy HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
        "GET http://localhost/v1/healthz HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
        "DELETE /v1/endpoint/42 HTTP/1.1\r\nConnection: close\r\n\r\n",
        "HEAD /v1/healthz HTTP/1.1\r\n\r\n",
    ]

    @Test func requestsFromTheFuzzer() async throws {
        let path = UnixHTTPTests.socketPath("fuzz")
        // Bodyless answers, so that the reader below needs no request methods (HEAD).
        let server = HTTPServer(socketPath: path, limits: HTTPServerLimits(headerTimeout: .milliseconds(400), idleTimeout: .milliseconds(400))) { _ in
            HTTPResponse(status: 204)
        }
        try server.start()
        let client = UnixHTTPClient(socketPath: path, timeout: 5)
        // Warm up (event loops, first connection) before the clock starts. The 1 s rule assumes the
        // suite runs alone, as scripts/test.sh runs every test: CPU-bound suites in parallel hold
        // the cooperative threads the server's handler needs.
        _ = try await client.send(path: "/v1/healthz")
        var checked = 0
        let report = await Fuzzer.run("HTTP requests", seeds: Self.seeds) { text in
            let problem: String?
            do {
                problem = try await UnixHTTPTests.onThread { Self.exchange(path, Data(text.utf8)) }
            } catch {
                problem = "\(error)"
            }
            if let problem { Issue.record("\(problem) for \(text.debugDescription)") }
            checked += 1
            if checked % 500 == 0, (try? await client.send(path: "/v1/healthz").status) != 204 {
                Issue.record("the server stopped answering after \(checked) inputs")
            }
        }
        #expect(report.inputs > Self.seeds.count)
        #expect(try await client.send(path: "/v1/healthz").status == 204)
        await server.stop()
    }

    /// Sends `bytes`, half-closes, reads responses until the server closes. nil when all is well.
    static func exchange(_ path: String, _ bytes: Data) -> String? {
        guard case .success(let fd) = UnixSocket.connect(path: path, timeout: 2) else { return "cannot connect" }
        defer { close(fd) }
        let conn = SocketConnection(fd: fd)
        conn.deadline = .now + .seconds(2)
        // The server may answer and close before all is sent (an early 400): that is fine.
        _ = try? conn.write(bytes)
        shutdown(fd, Int32(SHUT_WR))
        do throws(WireError) {
            while true {
                let head: (line: String, headers: HTTPTransport.HTTPHeaders)?
                do throws(WireError) {
                    head = try HTTPWire.readHead(conn)
                } catch .closed where conn.buffered == 0 {
                    head = nil  // reset after the last response: the server closed with input of ours unread
                }
                guard let (line, headers) = head else { return nil }
                let parts = line.split(separator: " ", maxSplits: 2)
                guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]), (100...599).contains(status) else {
                    return "bad status line \(line.debugDescription)"
                }
                if status == 100 { continue }
                _ = try HTTPWire.readBody(conn, framing: try HTTPWire.framing(headers), limit: 1 << 20)
            }
        } catch {
            return "\(error)"
        }
    }
}
