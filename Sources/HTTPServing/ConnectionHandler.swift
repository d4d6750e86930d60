import Foundation
import HTTPTransport
import NIOCore
import NIOHTTP1

/// First in a connection's pipeline: tells the connection's `RequestHandler` about raw bytes
/// before the decoder sees them (the head timer starts at the first byte, a body that keeps
/// coming keeps the connection alive) and whether a head is still incomplete after them (the
/// head size limit also covers the request line, which the decoder's own limits do not).
///
/// The HTTP decoder (about 2 KB with its parser state) is only added once a first head is
/// complete: until then the gate keeps the bytes itself, so that a connection that sends
/// nothing or half a head costs little more than its socket.
final class ByteGate: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    weak var owner: RequestHandler?
    private let makeDecoder: () -> any ChannelHandler
    private var pending: ByteBuffer?
    /// How far `pending` has been searched for the end of the head.
    private var searched = 0
    private var decoding = false

    init(makeDecoder: @escaping () -> any ChannelHandler) { self.makeDecoder = makeDecoder }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let owner, owner.acceptsBytes else { return }
        var bytes = unwrapInboundIn(data)
        owner.bytesArriving(bytes.readableBytes)
        if decoding {
            context.fireChannelRead(data)
        } else {
            // Copied to a buffer of its own size: the read buffer is sized for big reads.
            if pending == nil { pending = context.channel.allocator.buffer(capacity: bytes.readableBytes) }
            pending!.writeBuffer(&bytes)
            if headEnds(in: pending!) {
                decoding = true
                do {
                    try context.pipeline.syncOperations.addHandler(makeDecoder(), position: .after(self))
                } catch {
                    return context.close(promise: nil)
                }
                let buffered = pending!
                pending = nil
                context.fireChannelRead(wrapInboundOut(buffered))
            }
        }
        owner.bytesArrived()
    }

    /// A blank line (CRLF CRLF, or bare LFs) in what has come so far; each byte is looked at once.
    private func headEnds(in buffer: ByteBuffer) -> Bool {
        let view = buffer.readableBytesView
        var i = view.startIndex + max(0, searched - 3)
        defer { searched = view.count }
        var previousLF = false  // the three bytes before the new ones are read again
        while i < view.endIndex {
            let byte = view[i]
            if byte == UInt8(ascii: "\n") {
                if previousLF { return true }
                previousLF = true
            } else if byte != UInt8(ascii: "\r") {
                previousLF = false
            }
            i += 1
        }
        return false
    }
}

/// One connection: requests in order (pipelined ones wait their turn), every read asked for
/// explicitly (auto-read is off), so that a connection holds at most one request and one
/// response in memory, and a client that sends or reads slowly only costs its own timers.
final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Reading { case idle, head, body, done }

    private struct Queued {
        var request: HTTPRequest
        var keepAlive: Bool
    }

    private let handler: HTTPServer.Handler
    private let limits: HTTPServerLimits
    private let registry: ConnectionRegistry
    private var context: ChannelHandlerContext?

    private var reading = Reading.idle
    private var headBytes = 0
    private var current: (head: HTTPRequestHead, body: ByteBuffer)?
    private var queue: [Queued] = []
    /// A request handed to the handler and not answered yet (or a response still being written).
    private var inFlight = false
    private var streaming = false
    private var closing = false
    /// The client shut down its sending side: what it sent is answered, then the connection closes.
    private var inputClosed = false
    /// When the connection is closed unless bytes come (the listener's sweep looks at the copy in
    /// the registry: no timer object per waiting connection), and what the client is told then.
    private var readDeadline: (at: NIODeadline, status: Int?, what: String, after: Duration)?
    private var closeFallback: Scheduled<Void>?
    private var streamTask: Task<Void, Never>?

    init(handler: @escaping HTTPServer.Handler, limits: HTTPServerLimits, registry: ConnectionRegistry) {
        self.handler = handler
        self.limits = limits
        self.registry = registry
    }

    // MARK: pipeline events

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    /// The context holds this handler: dropping it here breaks the cycle when the channel closes.
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        armReadTimer(limits.idleTimeout, status: nil)
        context.read()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        closeFallback?.cancel()
        streamTask?.cancel()
        registry.remove(context.channel)
        context.fireChannelInactive()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        wantMore()
    }

    /// While streaming, the client's bytes are read (to see it hang up) and dropped.
    var acceptsBytes: Bool { !closing && !streaming }

    func bytesArriving(_ count: Int) {
        switch reading {
        case .idle, .done:
            guard !inFlight && queue.isEmpty else { return }  // pipelined: counted from its turn
            reading = .head
            headBytes = count
            if let context { registry.set(context.channel, .head) }
            armReadTimer(limits.headerTimeout, status: 408)
        case .head:
            headBytes += count
        case .body:
            armReadTimer(limits.idleTimeout, status: 408)
        }
    }

    func bytesArrived() {
        if reading == .head && headBytes > limits.maxHeadBytes && !closing {
            fail(431, "request head exceeds \(limits.maxHeadBytes) bytes")
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            received(head, context: context)
        case .body(var chunk):
            guard current != nil else { return }
            guard current!.body.readableBytes + chunk.readableBytes <= limits.maxBodyBytes else {
                return fail(413, "request body exceeds \(limits.maxBodyBytes) bytes")
            }
            current!.body.writeBuffer(&chunk)
        case .end:
            guard let (head, body) = current else { return }
            current = nil
            reading = .done
            cancelReadDeadline()
            queue.append(Queued(request: HTTPRequest(method: head.method.rawValue, target: Self.originForm(head.uri)!,
                                                     headers: Self.headers(head.headers), body: Data(body.readableBytesView)),
                                keepAlive: head.isKeepAlive))
            next()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !closing else { return }
        if let parse = error as? HTTPParserError {
            if parse == .headerOverflow {
                return fail(431, "request head exceeds \(limits.maxHeadBytes) bytes or \(limits.maxHeaderFields) header fields")
            }
            return fail(400, "malformed request: \(Self.describe(parse))")
        }
        close()
    }

    // MARK: requests

    private func received(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        reading = .body
        registry.set(context.channel, .busy)
        armReadTimer(limits.idleTimeout, status: 408)
        guard head.version.major == 1, head.version.minor <= 1 else {
            return fail(400, "malformed request: unsupported protocol 'HTTP/\(head.version.major).\(head.version.minor)'")
        }
        guard Self.originForm(head.uri) != nil else { return fail(400, "malformed request: invalid request target") }
        guard head.headers.count <= limits.maxHeaderFields else {
            return fail(431, "request head has more than \(limits.maxHeaderFields) header fields")
        }
        let lengths = head.headers["Content-Length"]
        if let length = lengths.first.flatMap({ Int($0) }), length > limits.maxBodyBytes {
            return fail(413, "request body exceeds \(limits.maxBodyBytes) bytes")
        }
        let hasBody = !lengths.isEmpty && lengths.first != "0" || head.headers.contains(name: "Transfer-Encoding")
        // An HTTP/1.0 client cannot take an interim response (RFC 9110 §10.1.1): only 1.1 gets one.
        if hasBody && head.version.minor == 1
            && head.headers[canonicalForm: "Expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))),
                                  promise: nil)
        }
        current = (head, context.channel.allocator.buffer(capacity: 0))
    }

    /// Hands the next queued request to the handler, when none is in flight.
    private func next() {
        guard !inFlight, !closing, let context, !queue.isEmpty else { return }
        let item = queue.removeFirst()
        inFlight = true
        registry.set(context.channel, .busy)
        let handler = self.handler, request = item.request
        context.eventLoop.makeFutureWithTask { await handler(request) }
            .assumeIsolated()
            .whenSuccess { [self] response in respond(response, to: item) }
    }

    private func respond(_ response: HTTPResponse, to item: Queued) {
        guard !closing, let context else { return }
        let keepAlive = item.keepAlive && !registry.isStopping && response.stream == nil
        var head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status))
        for (name, value) in response.headers
        where !["content-length", "transfer-encoding", "connection"].contains(name.lowercased()) {
            head.headers.add(name: name, value: value)
        }
        head.headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        if let stream = response.stream {
            head.headers.add(name: "Transfer-Encoding", value: "chunked")
            return startStream(head, stream, context: context)
        }
        let bodyless = HTTPResponse.isBodyless(response.status)
        if !bodyless { head.headers.add(name: "Content-Length", value: String(response.body.count)) }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !bodyless && item.request.method != "HEAD" && !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        let channel = context.channel
        let deadline = context.eventLoop.scheduleTask(in: TimeAmount(limits.idleTimeout)) { channel.close(promise: nil) }
        written.futureResult.assumeIsolated().whenComplete { [self] result in
            deadline.cancel()
            guard case .success = result, keepAlive, !closing else { return close() }
            inFlight = false
            if queue.isEmpty && inputClosed { return close() }
            if queue.isEmpty {
                reading = .idle
                registry.set(channel, .waiting)
                armReadTimer(limits.idleTimeout, status: nil)
                wantMore()
            } else {
                next()
            }
        }
    }

    /// Chunks go out one at a time: the next is taken from the stream only when the last has
    /// reached the socket, so a client that reads slowly holds the producer's buffer, not ours.
    private func startStream(_ head: HTTPResponseHead, _ stream: AsyncStream<Data>, context: ChannelHandlerContext) {
        streaming = true
        registry.set(context.channel, .streaming)
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        let channel = context.channel
        let idle = TimeAmount(limits.idleTimeout)
        streamTask = Task {
            for await chunk in stream where !chunk.isEmpty {
                let deadline = channel.eventLoop.scheduleTask(in: idle) { channel.close(promise: nil) }
                defer { deadline.cancel() }
                let part = HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: chunk)))
                guard (try? await channel.writeAndFlush(part).get()) != nil else { return }
            }
            if !Task.isCancelled { try? await channel.writeAndFlush(HTTPServerResponsePart.end(nil)).get() }
            try? await channel.close()
        }
        wantMore()
    }

    // MARK: helpers

    /// Asks for more bytes when the connection is waiting for them.
    private func wantMore() {
        guard let context, !closing, !inputClosed else { return }
        if streaming || (!inFlight && queue.isEmpty) { context.read() }
    }

    private func armReadTimer(_ after: Duration, status: Int?) {
        guard let context else { return }
        let what = reading == .head ? "request head not complete" : reading == .body ? "request body stalled" : "no request"
        let at = NIODeadline.now() + TimeAmount(after)
        readDeadline = (at, status, what, after)
        registry.setDeadline(context.channel, at)
    }

    private func cancelReadDeadline() {
        guard readDeadline != nil, let context else { return }
        readDeadline = nil
        registry.setDeadline(context.channel, .distantFuture)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // A half-close ends a stream (the client is gone) and waits for nothing more; requests
            // already received are still answered.
            inputClosed = true
            if streaming || (!inFlight && queue.isEmpty) { close() }
            return
        }
        guard event is ConnectionRegistry.DeadlinePassed else { return context.fireUserInboundEventTriggered(event) }
        guard let deadline = readDeadline, !closing, !inFlight else { return }
        guard deadline.at <= .now() else { return registry.setDeadline(context.channel, deadline.at) }
        readDeadline = nil
        if let status = deadline.status { fail(status, "\(deadline.what) within \(deadline.after)") } else { close() }
    }

    /// Answers with an error and closes: the rest of what the client sent cannot be trusted.
    private func fail(_ status: Int, _ message: String) {
        guard let context, !closing else { return }
        closing = true
        cancelReadDeadline()
        queue.removeAll()
        let response = HTTPResponse.error(status: status, message: message)
        var head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status))
        for (name, value) in response.headers { head.headers.add(name: name, value: value) }
        head.headers.add(name: "Connection", value: "close")
        head.headers.add(name: "Content-Length", value: String(response.body.count))
        if inFlight || streaming {
            // A response is already on its way; nothing more can be said on this connection.
            return context.close(promise: nil)
        }
        let channel = context.channel
        // Closed after the answer is written, or after 5 s of a client that does not read it.
        // (Armed first: the write may complete, and the channel close, before writeAndFlush returns.)
        closeFallback = context.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in channel.close(promise: nil) }
    }

    private func close() {
        guard let context else { return }
        closing = true
        cancelReadDeadline()
        context.close(promise: nil)
    }

    // MARK: request pieces

    /// The path-and-query part of a request target (absolute form reduced to it); nil when it
    /// is neither.
    static func originForm(_ uri: String) -> String? {
        if uri.hasPrefix("/") { return uri }
        guard let schemeEnd = uri.range(of: "://") else { return nil }
        let rest = uri[schemeEnd.upperBound...]
        return rest.firstIndex(of: "/").map { String(rest[$0...]) } ?? "/"
    }

    static func headers(_ fields: NIOHTTP1.HTTPHeaders) -> HTTPTransport.HTTPHeaders {
        var headers = HTTPTransport.HTTPHeaders()
        for (name, value) in fields { headers.add(name: name, value: value) }
        return headers
    }

    static func describe(_ error: HTTPParserError) -> String {
        switch error {
        case .invalidMethod: "invalid method"
        case .invalidURL: "invalid request target"
        case .invalidVersion, .invalidConstant: "unsupported protocol (HTTP/1.0 and HTTP/1.1 are served)"
        case .invalidHeaderToken, .invalidCharactersUsed, .lfExpected: "invalid header line"
        case .invalidContentLength: "invalid Content-Length"
        case .unexpectedContentLength: "both Content-Length and Transfer-Encoding"
        case .invalidChunkSize: "invalid chunk size"
        default: "\(error)"
        }
    }
}
