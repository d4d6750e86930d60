import Foundation

/// etcd through its v3 JSON gateway (etcd 3.4: POST /v3/kv/range, /v3/kv/put,
/// /v3/kv/deleterange, /v3/kv/txn, /v3/lease/*, streaming /v3/watch), over
/// HTTP/1.1 or HTTPS (optionally with a client certificate) through libcurl
/// (`CurlTransport`: one multi handle, one thread for all transfers). Each
/// request has `timeout` per endpoint; when an endpoint cannot be connected to
/// (refused, unreachable, TLS handshake failed) the next one is tried, and the
/// one that answered is tried first next time.
public final class EtcdKVStore: KVStore {
    /// The endpoints as URLs (`http://host:port`, `https://host:port`).
    public let endpoints: [String]
    public let timeout: Duration
    /// Files for `https://` endpoints; nil: the system's CAs, no client certificate.
    public let tls: EtcdTLSConfig?
    let parsed: [HTTPEndpoint]
    /// Unary answers above this many bytes fail (`CurlTransport.defaultResponseLimit`).
    let responseLimit: Int
    let transport = CurlTransport.shared
    private let preferred = Locked<Int>(0)

    /// `endpoints`: `http://host:port`, `https://host:port` (or `host:port`). Throws on a
    /// malformed endpoint.
    public convenience init(endpoints: [String], timeout: Duration = .seconds(5), tls: EtcdTLSConfig? = nil) throws {
        try self.init(endpoints: endpoints, timeout: timeout, tls: tls, responseLimit: CurlTransport.defaultResponseLimit)
    }

    /// A store for upstream's etcd configuration file (`EtcdClientConfig.load(path:)`).
    public convenience init(config: EtcdClientConfig, timeout: Duration = .seconds(5)) throws {
        try self.init(endpoints: config.endpoints, timeout: timeout, tls: config.tls)
    }

    init(endpoints: [String], timeout: Duration, tls: EtcdTLSConfig?, responseLimit: Int) throws {
        guard !endpoints.isEmpty else {
            throw KVStoreError(.invalidArgument, source: "etcd", operation: "configure", reason: "no endpoints")
        }
        parsed = try endpoints.map { text throws(KVStoreError) in try HTTPEndpoint(parsing: text) }
        self.endpoints = parsed.map(\.url)
        self.timeout = timeout
        self.tls = tls
        self.responseLimit = responseLimit
    }

    // MARK: KV

    public func get(_ key: String) async throws -> KVPair? {
        let r = try await call("/v3/kv/range", ["key": EtcdRequest.base64(key)], "get \(key)", EtcdRangeResponse.self)
        return try r.kvs?.first.map { try $0.pair() }
    }

    public func list(prefix: String) async throws -> KVList {
        let r = try await call("/v3/kv/range", EtcdRequest.prefixRange(prefix), "list \(prefix)", EtcdRangeResponse.self)
        let pairs = try (r.kvs ?? []).map { try $0.pair() }
        return KVList(pairs: pairs, revision: r.header?.revision?.value ?? 0)
    }

    @discardableResult
    public func put(_ key: String, _ value: Data, lease: Lease?) async throws -> Int64 {
        let r = try await call("/v3/kv/put", EtcdRequest.put(key, value, lease: lease), "put \(key)", EtcdHeaderResponse.self)
        return r.header?.revision?.value ?? 0
    }

    public func create(_ key: String, _ value: Data, lease: Lease?) async throws -> Bool {
        let compare: [String: Any] = ["key": EtcdRequest.base64(key), "target": "CREATE", "result": "EQUAL",
                                      "create_revision": "0"]
        return try await txn(compare: compare, success: ["request_put": EtcdRequest.put(key, value, lease: lease)],
                             operation: "create \(key)")
    }

    public func compareAndSwap(_ key: String, expectedModRevision: Int64, newValue: Data, lease: Lease?) async throws -> Bool {
        let compare: [String: Any] = ["key": EtcdRequest.base64(key), "target": "MOD", "result": "EQUAL",
                                      "mod_revision": String(expectedModRevision)]
        return try await txn(compare: compare, success: ["request_put": EtcdRequest.put(key, newValue, lease: lease)],
                             operation: "compare-and-swap \(key)")
    }

    public func compareAndDelete(_ key: String, expectedModRevision: Int64) async throws -> Bool {
        let compare: [String: Any] = ["key": EtcdRequest.base64(key), "target": "MOD", "result": "EQUAL",
                                      "mod_revision": String(expectedModRevision)]
        return try await txn(compare: compare, success: ["request_delete_range": ["key": EtcdRequest.base64(key)]],
                             operation: "compare-and-delete \(key)")
    }

    @discardableResult
    public func delete(_ key: String) async throws -> Bool {
        let r = try await call("/v3/kv/deleterange", ["key": EtcdRequest.base64(key)], "delete \(key)", EtcdDeleteResponse.self)
        return (r.deleted?.value ?? 0) > 0
    }

    @discardableResult
    public func deletePrefix(_ prefix: String) async throws -> Int {
        let r = try await call("/v3/kv/deleterange", EtcdRequest.prefixRange(prefix), "delete prefix \(prefix)",
                               EtcdDeleteResponse.self)
        return Int(r.deleted?.value ?? 0)
    }

    /// Puts (a value) and deletes (nil) in one transaction: one revision, one event each for
    /// the watchers. etcd takes at most 128 operations per transaction (`--max-txn-ops`).
    @discardableResult
    public func write(batch: [(key: String, value: Data?)]) async throws -> Int64 {
        let ops: [[String: Any]] = batch.map { op in
            if let value = op.value { return ["request_put": EtcdRequest.put(op.key, value, lease: nil)] }
            return ["request_delete_range": ["key": EtcdRequest.base64(op.key)]]
        }
        let r = try await call("/v3/kv/txn", ["compare": [] as [Any], "success": ops], "write \(batch.count) keys", EtcdTxnResponse.self)
        return r.header?.revision?.value ?? 0
    }

    private func txn(compare: [String: Any], success: [String: Any], operation: String) async throws -> Bool {
        let r = try await call("/v3/kv/txn", ["compare": [compare], "success": [success]], operation, EtcdTxnResponse.self)
        return r.succeeded ?? false
    }

    // MARK: Leases

    public func grantLease(ttl: Duration) async throws -> Lease {
        let (seconds, atto) = ttl.components
        let ttlSeconds = max(1, seconds + (atto > 0 ? 1 : 0))
        let r = try await call("/v3/lease/grant", ["TTL": String(ttlSeconds)], "grant lease", EtcdLeaseGrantResponse.self)
        guard let id = r.id?.value, id != 0 else {
            throw error(.invalidResponse, endpointURL: currentEndpoint, "grant lease", r.error ?? "no lease ID in answer")
        }
        return Lease(id: id, ttl: .seconds(r.ttl?.value ?? ttlSeconds))
    }

    @discardableResult
    public func keepAlive(_ lease: Lease) async throws -> Duration {
        let operation = "keep-alive lease \(String(lease.id, radix: 16))"
        let r = try await call("/v3/lease/keepalive", ["ID": String(lease.id)], operation, EtcdKeepAliveResponse.self)
        if let e = r.error {
            throw error(.server(status: e.httpCode ?? 0), endpointURL: currentEndpoint, operation, e.message ?? "stream error")
        }
        guard let ttl = r.result?.ttl?.value, ttl > 0 else {
            throw error(.leaseNotFound, endpointURL: currentEndpoint, operation, "requested lease not found")
        }
        return .seconds(ttl)
    }

    public func revoke(_ lease: Lease) async throws {
        do {
            _ = try await call("/v3/lease/revoke", ["ID": String(lease.id)], "revoke lease \(String(lease.id, radix: 16))",
                               EtcdHeaderResponse.self)
        } catch let e as KVStoreError where e.kind == .leaseNotFound {
            // Already gone: revoking is idempotent.
        }
    }

    // MARK: Status

    public func status() async -> KVStoreHealth {
        let results = await withTaskGroup(of: (Int, Result<EtcdStatusResponse, any Error>).self) { group in
            for (i, endpoint) in parsed.enumerated() {
                group.addTask {
                    do {
                        let status = try await self.exchange([endpoint], preferred: nil, path: "/v3/maintenance/status",
                                                             body: Data("{}".utf8), operation: "status",
                                                             as: EtcdStatusResponse.self)
                        return (i, .success(status))
                    } catch {
                        return (i, .failure(error))
                    }
                }
            }
            var all: [(Int, Result<EtcdStatusResponse, any Error>)] = []
            for await r in group { all.append(r) }
            return all.sorted { $0.0 < $1.0 }
        }
        var parts: [String] = []
        var connected = 0
        var leaderKnown = false
        var first: (url: String, revision: Int64)?
        for (i, result) in results {
            let url = parsed[i].url
            switch result {
            case .success(let s):
                connected += 1
                let leader = s.leader?.value ?? 0
                let isLeader = leader != 0 && leader == s.header?.memberID?.value
                if leader != 0 { leaderKnown = true }
                parts.append("\(url) - \(s.version ?? "unknown")\(isLeader ? " (Leader)" : "")")
                if first == nil { first = (url, s.header?.revision?.value ?? 0) }
            case .failure(let e):
                parts.append("\(url) - \((e as? KVStoreError)?.reason ?? "\(e)")")
            }
        }
        let detail = parts.joined(separator: "; ")
        guard let first else {
            return .failure(message: "Err: not able to connect to any etcd endpoints: \(detail)")
        }
        guard leaderKnown else {
            return .failure(message: "Err: quorum check failed: no leader: \(detail)")
        }
        return .ok(endpoint: first.url, revision: first.revision,
                   message: "etcd: \(connected)/\(parsed.count) connected, has-quorum=true: \(detail)")
    }

    // MARK: Exchange

    func call<R: Decodable & Sendable>(_ path: String, _ body: [String: Any], _ operation: String,
                                        _ type: R.Type) async throws -> R {
        try await exchange(parsed, preferred: preferred, path: path, body: EtcdRequest.json(body), operation: operation,
                           as: R.self)
    }

    /// The endpoints starting with the preferred one.
    func ordered() -> [HTTPEndpoint] {
        let start = preferred.withLock { $0 } % parsed.count
        return Array(parsed[start...] + parsed[..<start])
    }

    /// The endpoint requests go to first (the one that answered last).
    var currentEndpoint: String { ordered()[0].url }

    /// One unary request: tries the endpoints in order while they cannot be
    /// connected to, then decodes the answer or maps the error.
    func exchange<R: Decodable>(_ endpoints: [HTTPEndpoint], preferred: Locked<Int>?, path: String, body: Data,
                                operation: String, as type: R.Type) async throws -> R {
        let start = (preferred?.withLock { $0 } ?? 0) % endpoints.count
        var refused: [(String, String)] = []
        for i in 0..<endpoints.count {
            let index = (start + i) % endpoints.count
            let endpoint = endpoints[index]
            let response: HTTPResponse
            do {
                response = try await transport.post(CurlRequest(endpoint: endpoint, path: path, body: body, timeout: timeout,
                                                                tls: tls, responseLimit: responseLimit))
            } catch {
                switch error {
                case .connect(let reason):
                    refused.append((endpoint.url, reason))
                    continue
                case .timeout:
                    throw KVStoreError(.timeout, source: "etcd \(endpoint.url)", operation: operation,
                                       reason: "no answer within \(timeout)")
                case .io(let reason):
                    throw KVStoreError(.unavailable, source: "etcd \(endpoint.url)", operation: operation, reason: reason)
                case .malformed(let reason):
                    throw KVStoreError(.invalidResponse, source: "etcd \(endpoint.url)", operation: operation, reason: reason)
                case .tooLarge(let limit):
                    throw KVStoreError(.invalidResponse, source: "etcd \(endpoint.url)", operation: operation,
                                       reason: "answer larger than \(Self.bytesText(limit)), the limit for one answer; "
                                           + "ask for less (a narrower prefix)")
                case .cancelled:
                    throw CancellationError()
                case .handler(let error):
                    throw error
                }
            }
            if i > 0 { preferred?.withLock { $0 = index } }
            return try Self.decode(response, endpoint: endpoint, operation: operation, as: R.self)
        }
        if refused.count == 1 {
            throw KVStoreError(.unavailable, source: "etcd \(refused[0].0)", operation: operation, reason: refused[0].1)
        }
        throw KVStoreError(.unavailable, source: "etcd", operation: operation,
                           reason: refused.map { "\($0.0): \($0.1)" }.joined(separator: "; "))
    }

    static func bytesText(_ n: Int) -> String {
        n >= 1 << 20 && n % (1 << 20) == 0 ? "\(n >> 20) MiB" : "\(n) bytes"
    }

    static func decode<R: Decodable>(_ response: HTTPResponse, endpoint: HTTPEndpoint, operation: String,
                                     as type: R.Type) throws -> R {
        let source = "etcd \(endpoint.url)"
        guard response.status == 200 else {
            let body = try? JSONDecoder().decode(EtcdErrorBody.self, from: response.body)
            let message = body?.message ?? body?.error
                ?? String(decoding: response.body.prefix(200), as: UTF8.self)
            throw KVStoreError(errorKind(status: response.status, grpcCode: body?.code, message: message),
                               source: source, operation: operation, reason: message)
        }
        do {
            return try JSONDecoder().decode(R.self, from: response.body)
        } catch {
            throw KVStoreError(.invalidResponse, source: source, operation: operation,
                               reason: "cannot decode answer: \(String(decoding: response.body.prefix(200), as: UTF8.self))")
        }
    }

    static func errorKind(status: Int, grpcCode: Int?, message: String) -> KVStoreError.Kind {
        if message.contains("lease not found") { return .leaseNotFound }
        if message.contains("compacted") { return .compacted(revision: 0) }
        if grpcCode == 14 { return .unavailable }   // gRPC UNAVAILABLE (no leader, stopping)
        if grpcCode == 4 { return .timeout }        // gRPC DEADLINE_EXCEEDED
        // A server going away cancels what it was serving: gRPC CANCELED, which the JSON gateway
        // answers as 408; a proxy in front of it answers 502/503/504. All mean "not there now".
        if grpcCode == 1 || [408, 502, 503, 504].contains(status) { return .unavailable }
        return .server(status: status)
    }

    func error(_ kind: KVStoreError.Kind, endpointURL: String, _ operation: String, _ reason: String) -> KVStoreError {
        KVStoreError(kind, source: "etcd \(endpointURL)", operation: operation, reason: reason)
    }
}
