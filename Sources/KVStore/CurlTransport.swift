import CCurl
import Diagnostics
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An `http://host:port` or `https://host:port` endpoint.
struct HTTPEndpoint: Sendable, Hashable {
    let url: String
    let host: String
    let port: Int
    let secure: Bool

    /// Accepts `http://host:port`, `https://host:port`, `host:port` (http) and `http://[v6]:port`.
    init(parsing text: String) throws(KVStoreError) {
        func invalid(_ why: String) -> KVStoreError {
            KVStoreError(.invalidArgument, source: "etcd \(text)", operation: "parse endpoint", reason: why)
        }
        var rest = Substring(text)
        var secure = false
        if rest.hasPrefix("https://") {
            secure = true
            rest = rest.dropFirst(8)
        } else if rest.hasPrefix("http://") {
            rest = rest.dropFirst(7)
        } else if let scheme = rest.range(of: "://") {
            throw invalid("unsupported scheme \(rest[..<scheme.lowerBound]) (use http:// or https://)")
        }
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
        self.secure = secure
        let scheme = secure ? "https" : "http"
        self.url = host.contains(":") ? "\(scheme)://[\(host)]:\(port)" : "\(scheme)://\(host):\(port)"
    }
}

/// Why an exchange failed. `connect` means the request was never sent (or was refused at the
/// TLS layer before the server read it), so another endpoint may be tried safely.
enum HTTPFailure: Error {
    case connect(String)
    case timeout
    case io(String)
    case malformed(String)
    case tooLarge(limit: Int)
    case cancelled
    /// The stream's line handler threw this.
    case handler(any Error)
}

struct HTTPResponse: Sendable {
    var status: Int
    var body: Data
}

/// One HTTP POST for `CurlTransport`.
struct CurlRequest: Sendable {
    var endpoint: HTTPEndpoint
    var path: String
    var body: Data
    /// Unary: the whole exchange. Stream: the connection and the response head.
    var timeout: Duration
    var tls: EtcdTLSConfig?
    /// Unary only: answers longer than this fail with `.tooLarge`.
    var responseLimit: Int = CurlTransport.defaultResponseLimit
}

/// All of etcd's HTTP traffic in the process: one curl multi handle driven by one thread.
/// Callers hand it work through a locked queue and `curl_multi_wakeup`; their continuations are
/// resumed when curl reports the transfer done. Unary POSTs share the multi handle's connection
/// cache (kept-alive connections per endpoint) and a few idle easy handles; a stream (watch) has
/// a connection of its own whose bytes go, line by line, to its handler on the driver thread.
/// Every curl handle lives in this object and is touched only on the driver thread.
final class CurlTransport: @unchecked Sendable {
    static let shared = CurlTransport()
    /// Unary answers above this fail: 256 MiB, far above any etcd answer the agent asks for.
    static let defaultResponseLimit = 256 << 20

    enum Command {
        case start(CurlTransfer)
        case cancel(CurlTransfer)
    }

    private let queue = Mutex<[Command]>([])
    /// Driver-thread state. `multi` is set once in init.
    private let multi: UnsafeMutableRawPointer
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private let maxIdleHandles = 8
    private let headers: UnsafeMutablePointer<curl_slist>
    /// URLs of the transfers in flight, for tests (read from any thread).
    private let inFlight = Mutex<[ObjectIdentifier: String]>([:])

    private init() {
        curl_global_init(ccurl_global_all())
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed") }
        self.multi = multi
        var list = curl_slist_append(nil, "Content-Type: application/json")
        list = curl_slist_append(list, "Expect:")
        headers = list!
        // Idle kept-alive connections the cache holds (per process, all endpoints).
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 16)
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "etcd curl"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// The URLs of the transfers in flight.
    var transfersInFlight: [String] { inFlight.withLock { Array($0.values) } }

    // MARK: Callers

    /// POSTs and returns the whole answer. Cancelling the calling task aborts the transfer.
    func post(_ request: CurlRequest) async throws(HTTPFailure) -> HTTPResponse {
        let transfer = CurlTransfer(request: request, onLine: nil)
        return try await run(transfer)
    }

    /// POSTs and hands the answer, line by line, to `onLine` (on the driver thread) until it
    /// returns false, the server ends the stream or the calling task is cancelled. Returns nil
    /// for a 200 answer, the answer (its status and body) otherwise.
    func stream(_ request: CurlRequest, onLine: @escaping @Sendable (Data) throws -> Bool) async throws(HTTPFailure) -> HTTPResponse? {
        let transfer = CurlTransfer(request: request, onLine: onLine)
        let response = try await run(transfer)
        return response.status == 200 ? nil : response
    }

    private func run(_ transfer: CurlTransfer) async throws(HTTPFailure) -> HTTPResponse {
        let result: Result<HTTPResponse, HTTPFailure> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<HTTPResponse, HTTPFailure>, Never>) in
                if transfer.submit(continuation) {
                    queue.withLock { $0.append(.start(transfer)) }
                    curl_multi_wakeup(multi)
                }
            }
        } onCancel: {
            if transfer.cancel() {
                queue.withLock { $0.append(.cancel(transfer)) }
                curl_multi_wakeup(multi)
            }
        }
        return try result.get()
    }

    // MARK: Driver thread

    private func run() {
        var running: Int32 = 0
        while true {
            let commands = queue.withLock { q -> [Command] in defer { q.removeAll() }; return q }
            for command in commands {
                switch command {
                case .start(let t): start(t)
                case .cancel(let t): abort(t, .cancelled)
                }
            }
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                      let transfer = active[easy] else { continue }
                let code = message.pointee.data.result
                finish(transfer, code == CURLE_OK ? nil : code)
            }
            let wait = checkStreamHeads()
            curl_multi_poll(multi, nil, 0, wait, nil)
        }
    }

    /// Aborts streams whose response head did not come within their timeout; returns how long
    /// the driver may sleep.
    private func checkStreamHeads() -> Int32 {
        var wait: Int32 = 1000
        let now = ContinuousClock.now
        for transfer in active.values where transfer.onLine != nil && !transfer.headSeen {
            guard let easy = transfer.easy else { continue }
            var status = 0
            _ = ccurl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            if status != 0 { transfer.headSeen = true; continue }
            if now >= transfer.deadline {
                abort(transfer, .timeout)
            } else {
                let (s, atto) = (transfer.deadline - now).components
                wait = min(wait, Int32(clamping: s * 1000 + atto / 1_000_000_000_000_000 + 1))
            }
        }
        return wait
    }

    private func start(_ transfer: CurlTransfer) {
        let request = transfer.request
        if let problem = request.tls?.unreadableFile() {
            transfer.complete(.failure(.connect("TLS: \(problem)")))
            return
        }
        let easy: UnsafeMutableRawPointer
        if transfer.onLine == nil, let idle = idleHandles.popLast() {
            curl_easy_reset(idle)
            easy = idle
        } else {
            guard let fresh = curl_easy_init() else {
                transfer.complete(.failure(.io("curl_easy_init failed")))
                return
            }
            easy = fresh
        }
        transfer.easy = easy
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        let millis = Int(request.timeout.components.seconds * 1000 + request.timeout.components.attoseconds / 1_000_000_000_000_000)
        _ = ccurl_setopt_string(easy, CURLOPT_URL, request.endpoint.url + request.path)
        _ = ccurl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        _ = ccurl_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        _ = ccurl_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        _ = ccurl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = ccurl_setopt_pointer(easy, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headers))
        _ = ccurl_setopt_long(easy, CURLOPT_POST, 1)
        _ = ccurl_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
        request.body.withUnsafeBytes { raw in
            _ = ccurl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
        }
        _ = ccurl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, millis))
        if transfer.onLine == nil {
            _ = ccurl_setopt_long(easy, CURLOPT_TIMEOUT_MS, max(1, millis))
        } else {
            // A stream's connection is its own: never reused after it ends.
            _ = ccurl_setopt_long(easy, CURLOPT_FORBID_REUSE, 1)
        }
        _ = ccurl_setopt_callback(easy, CURLOPT_WRITEFUNCTION, curlWrite)
        _ = ccurl_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
        transfer.errorBuffer[0] = 0
        _ = ccurl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, transfer.errorBuffer)
        if request.endpoint.secure {
            _ = ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1)
            _ = ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2)
            if let tls = request.tls {
                if let ca = tls.caFile { _ = ccurl_setopt_string(easy, CURLOPT_CAINFO, ca) }
                if let cert = tls.certFile { _ = ccurl_setopt_string(easy, CURLOPT_SSLCERT, cert) }
                if let key = tls.keyFile { _ = ccurl_setopt_string(easy, CURLOPT_SSLKEY, key) }
            }
        }
        transfer.deadline = ContinuousClock.now + request.timeout
        let rc = curl_multi_add_handle(multi, easy)
        guard rc == CURLM_OK else {
            transfer.easy = nil
            curl_easy_cleanup(easy)
            transfer.complete(.failure(.io("curl_multi_add_handle: \(String(cString: curl_multi_strerror(rc)))")))
            return
        }
        active[easy] = transfer
        inFlight.withLock { $0[ObjectIdentifier(transfer)] = request.endpoint.url + request.path }
    }

    /// Ends a transfer in flight at once (cancelled, or its stream head is late).
    private func abort(_ transfer: CurlTransfer, _ failure: HTTPFailure) {
        guard let easy = transfer.easy, active[easy] != nil else { return }
        transfer.failure = failure
        finish(transfer, CURLE_ABORTED_BY_CALLBACK)
    }

    private func finish(_ transfer: CurlTransfer, _ code: CURLcode?) {
        guard let easy = transfer.easy else { return }
        curl_multi_remove_handle(multi, easy)
        active[easy] = nil
        inFlight.withLock { $0[ObjectIdentifier(transfer)] = nil }
        let result: Result<HTTPResponse, HTTPFailure>
        if transfer.stopped {
            result = .success(HTTPResponse(status: 200, body: Data()))
        } else if let failure = transfer.failure {
            result = .failure(failure)
        } else if let code {
            result = .failure(describe(code, easy, transfer))
        } else {
            var status = 0
            _ = ccurl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            result = transfer.flush(status: status).map { .failure($0) } ?? .success(HTTPResponse(status: status, body: transfer.body))
        }
        transfer.easy = nil
        let reusable = transfer.onLine == nil && code == nil && idleHandles.count < maxIdleHandles
        if reusable { idleHandles.append(easy) } else { curl_easy_cleanup(easy) }
        transfer.complete(result)
    }

    /// A failed transfer's CURLcode in words, sorted into "not sent" (`connect`) and the rest.
    private func describe(_ code: CURLcode, _ easy: UnsafeMutableRawPointer, _ transfer: CurlTransfer) -> HTTPFailure {
        let buffer = String(cString: transfer.errorBuffer)
        let text = buffer.isEmpty ? String(cString: curl_easy_strerror(code)) : buffer
        var osErrno = 0
        _ = ccurl_getinfo_long(easy, CURLINFO_OS_ERRNO, &osErrno)
        let endpoint = transfer.request.endpoint
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST:
            return .connect("lookup \(endpoint.host): \(text)")
        case CURLE_COULDNT_CONNECT:
            return .connect(osErrno != 0 ? errnoText(Int32(osErrno), lowercased: true) : text)
        case CURLE_OPERATION_TIMEDOUT:
            // Not a byte of the request went out (a reused connection has no connect time, so
            // that cannot tell): the connection or the TLS handshake never completed.
            var sent = 0
            _ = ccurl_getinfo_long(easy, CURLINFO_REQUEST_SIZE, &sent)
            return sent == 0 ? .connect(endpoint.secure ? "connect (TLS handshake) timed out" : "connect timed out") : .timeout
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ISSUER_ERROR,
             CURLE_SSL_CRL_BADFILE, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_USE_SSL_FAILED:
            var verify = 0
            _ = ccurl_getinfo_long(easy, CURLINFO_SSL_VERIFYRESULT, &verify)
            return .connect("TLS: " + tlsReason(code: code, verifyResult: verify, text: text, endpoint: endpoint,
                                                 tls: transfer.request.tls))
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR:
            // An alert right after the handshake: the server refused us (TLS 1.3 checks the
            // client's certificate after the client thinks the handshake is done). It read nothing.
            if endpoint.secure && text.contains("alert") {
                return .connect("TLS: " + tlsReason(code: code, verifyResult: 0, text: text, endpoint: endpoint,
                                                     tls: transfer.request.tls))
            }
            return .io(osErrno != 0 ? errnoText(Int32(osErrno), lowercased: true) : text)
        case CURLE_GOT_NOTHING:
            return .io("connection closed by server")
        case CURLE_PARTIAL_FILE:
            return .io("connection closed by server")
        case CURLE_WEIRD_SERVER_REPLY, CURLE_BAD_CONTENT_ENCODING, CURLE_HTTP2, CURLE_HTTP2_STREAM:
            return .malformed(text)
        default:
            return .io(text)
        }
    }

    private func tlsReason(code: CURLcode, verifyResult: Int, text: String, endpoint: HTTPEndpoint,
                           tls: EtcdTLSConfig?) -> String {
        let ca = tls?.caFile.map { "the CA in \($0)" } ?? "a CA this system trusts (set trusted-ca-file)"
        let why: String
        switch (code, verifyResult) {
        case (CURLE_PEER_FAILED_VERIFICATION, 2), (CURLE_PEER_FAILED_VERIFICATION, 7),
             (CURLE_PEER_FAILED_VERIFICATION, 18), (CURLE_PEER_FAILED_VERIFICATION, 19),
             (CURLE_PEER_FAILED_VERIFICATION, 20), (CURLE_PEER_FAILED_VERIFICATION, 21):
            why = "the server's certificate is not signed by \(ca)"
        case (CURLE_PEER_FAILED_VERIFICATION, 10):
            why = "the server's certificate has expired"
        case (CURLE_PEER_FAILED_VERIFICATION, 9):
            why = "the server's certificate is not valid yet (check the clocks)"
        case (CURLE_PEER_FAILED_VERIFICATION, _) where text.contains("subject name") || text.contains("host name"):
            why = "the server's certificate is not for \(endpoint.host)"
        case (CURLE_PEER_FAILED_VERIFICATION, _):
            why = "the server's certificate was not accepted"
        case (CURLE_SSL_CACERT_BADFILE, _):
            why = "cannot use the CA file \(tls?.caFile ?? "(system default)") (trusted-ca-file)"
        case (CURLE_SSL_CERTPROBLEM, _):
            why = "cannot use the client certificate \(tls?.certFile ?? "-") with the key \(tls?.keyFile ?? "-") (cert-file, key-file)"
        case _ where text.contains("certificate required")
            || (tls?.certFile == nil && (text.contains("bad certificate") || text.contains("handshake failure"))):
            why = "the server requires a client certificate and none is configured (set cert-file and key-file)"
        case _ where text.contains("unknown ca") || text.contains("bad certificate") || text.contains("certificate expired")
            || text.contains("unsupported certificate"):
            why = "the server rejected the client certificate \(tls?.certFile ?? "")"
        default:
            why = "handshake failed"
        }
        return "\(why) (\(text))"
    }
}

/// One transfer: created by the caller, then owned by the driver thread. The lock guards only
/// the hand-over (submit, cancel, completion); the rest is driver-thread state.
final class CurlTransfer: @unchecked Sendable {
    let request: CurlRequest
    let onLine: (@Sendable (Data) throws -> Bool)?

    private enum Phase {
        case new, submitted(CheckedContinuation<Result<HTTPResponse, HTTPFailure>, Never>), cancelled, done
    }
    private let phase = Mutex<Phase>(.new)

    // Driver thread only.
    var easy: UnsafeMutableRawPointer?
    var body = Data()
    var pending: [UInt8] = []
    var failure: HTTPFailure?
    var headSeen = false
    /// The line handler asked for no more.
    var stopped = false
    var deadline = ContinuousClock.now
    let errorBuffer: UnsafeMutablePointer<CChar>

    init(request: CurlRequest, onLine: (@Sendable (Data) throws -> Bool)?) {
        self.request = request
        self.onLine = onLine
        let size = Int(ccurl_error_size())
        errorBuffer = .allocate(capacity: size)
        errorBuffer.initialize(repeating: 0, count: size)
    }

    deinit { errorBuffer.deallocate() }

    /// Registers the continuation; false (and resumed with `.cancelled`) when already cancelled.
    func submit(_ continuation: CheckedContinuation<Result<HTTPResponse, HTTPFailure>, Never>) -> Bool {
        let go = phase.withLock { p -> Bool in
            if case .new = p { p = .submitted(continuation); return true }
            return false
        }
        if !go { continuation.resume(returning: .failure(.cancelled)) }
        return go
    }

    /// Marks the transfer cancelled; true when the driver must abort it.
    func cancel() -> Bool {
        phase.withLock { p -> Bool in
            switch p {
            case .new: p = .cancelled; return false
            case .submitted: return true
            case .cancelled, .done: return false
            }
        }
    }

    func complete(_ result: Result<HTTPResponse, HTTPFailure>) {
        let continuation = phase.withLock { p -> CheckedContinuation<Result<HTTPResponse, HTTPFailure>, Never>? in
            defer { p = .done }
            if case .submitted(let c) = p { return c }
            return nil
        }
        continuation?.resume(returning: result)
    }

    /// A stream's last line without a newline, at its end; the handler's error if it threw.
    func flush(status: Int) -> HTTPFailure? {
        guard let onLine, status == 200, !pending.isEmpty else { return nil }
        defer { pending.removeAll() }
        do {
            _ = try onLine(Data(pending))
            return nil
        } catch {
            return .handler(error)
        }
    }

    /// Bytes of the answer (driver thread); false aborts the transfer.
    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let onLine else {
            if body.count + bytes.count > request.responseLimit {
                failure = .tooLarge(limit: request.responseLimit)
                return false
            }
            body.append(contentsOf: bytes)
            return true
        }
        var status = 0
        if let easy { _ = ccurl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status) }
        headSeen = headSeen || status != 0
        if status != 200 {
            // An error answer: kept whole (it is small) for the caller to decode.
            if body.count + bytes.count > request.responseLimit {
                failure = .tooLarge(limit: request.responseLimit)
                return false
            }
            body.append(contentsOf: bytes)
            return true
        }
        pending.append(contentsOf: bytes)
        do {
            while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(pending[..<nl])
                pending.removeSubrange(...nl)
                if line.allSatisfy({ $0 == 32 || $0 == 13 }) { continue }
                if try !onLine(line) {
                    stopped = true
                    return false
                }
            }
        } catch {
            failure = .handler(error)
            return false
        }
        return true
    }
}

/// CURLOPT_WRITEFUNCTION: `context` is the transfer (kept alive by the driver while it runs).
private let curlWrite: ccurl_data_callback = { buffer, size, count, context in
    guard let context else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    let total = size * count
    let ok = transfer.receive(UnsafeRawBufferPointer(start: buffer, count: total))
    return ok ? total : 0
}
