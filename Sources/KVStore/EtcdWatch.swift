import Foundation

extension EtcdKVStore {
    /// Streams /v3/watch on a thread of its own. The connection must be up
    /// within `timeout`; after that the stream may be quiet for any time.
    /// A dropped connection ends the stream with `.unavailable`; resume with
    /// `fromRevision:` one past the last event seen.
    public func watch(prefix: String, fromRevision: Int64?) -> AsyncThrowingStream<KVEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: KVEvent.self, bufferingPolicy: .bufferingOldest(KVWatchBuffer.limit))
        let cancel = CancelHandle()
        continuation.onTermination = { _ in cancel.cancel() }
        var create: [String: Any] = EtcdRequest.prefixRange(prefix)
        if let fromRevision { create["start_revision"] = String(fromRevision) }
        let body = EtcdRequest.json(["create_request": create])
        let endpoints = ordered(), timeout = self.timeout
        let operation = "watch \(prefix)"
        startThread("etcd watch") {
            Self.runWatch(endpoints: endpoints, body: body, operation: operation, timeout: timeout,
                          cancel: cancel, continuation: continuation)
        }
        return stream
    }

    private static func runWatch(endpoints: [HTTPEndpoint], body: Data, operation: String, timeout: Duration,
                                 cancel: CancelHandle, continuation: AsyncThrowingStream<KVEvent, any Error>.Continuation) {
        var refused: [String] = []
        for endpoint in endpoints {
            let source = "etcd \(endpoint.url)"
            do {
                var errorBody = Data()
                let status = try HTTPClient.stream(endpoint, path: "/v3/watch", body: body, timeout: timeout,
                                                   cancel: cancel, errorBody: &errorBody) { line in
                    try deliver(line, source: source, operation: operation, to: continuation)
                }
                if let status {
                    let response = HTTPResponse(status: status, body: errorBody)
                    _ = try decode(response, endpoint: endpoint, operation: operation, as: EtcdWatchMessage.self)
                }
                if cancel.isCancelled {
                    continuation.finish()
                } else {
                    continuation.finish(throwing: KVStoreError(.unavailable, source: source, operation: operation,
                                                               reason: "watch stream closed by server"))
                }
                return
            } catch let failure as HTTPFailure {
                switch failure {
                case .connect(let reason):
                    refused.append("\(endpoint.url): \(reason)")
                    continue
                case .cancelled:
                    continuation.finish()
                case .timeout:
                    continuation.finish(throwing: KVStoreError(.timeout, source: source, operation: operation,
                                                               reason: "no answer within \(timeout)"))
                case .io(let reason):
                    continuation.finish(throwing: KVStoreError(.unavailable, source: source, operation: operation,
                                                               reason: reason))
                case .malformed(let reason):
                    // Half an answer from a server that died mid-stream: to the watcher it is gone,
                    // and it resumes from its last revision like after a reset.
                    continuation.finish(throwing: KVStoreError(.unavailable, source: source, operation: operation,
                                                               reason: "broken answer (\(reason))"))
                }
                return
            } catch {
                continuation.finish(throwing: error)
                return
            }
        }
        let source = endpoints.count == 1 ? "etcd \(endpoints[0].url)" : "etcd"
        let reason = endpoints.count == 1 ? String(refused[0].drop { $0 != " " }.dropFirst()) : refused.joined(separator: "; ")
        continuation.finish(throwing: KVStoreError(.unavailable, source: source, operation: operation, reason: reason))
    }

    /// Handles one message of the stream; false stops reading.
    private static func deliver(_ line: Data, source: String, operation: String,
                                to continuation: AsyncThrowingStream<KVEvent, any Error>.Continuation) throws -> Bool {
        let message: EtcdWatchMessage
        do {
            message = try JSONDecoder().decode(EtcdWatchMessage.self, from: line)
        } catch {
            throw KVStoreError(.invalidResponse, source: source, operation: operation,
                               reason: "cannot decode \(String(decoding: line.prefix(200), as: UTF8.self))")
        }
        if let e = message.error {
            let text = e.message ?? "stream error"
            throw KVStoreError(errorKind(status: e.httpCode ?? 0, grpcCode: e.grpcCode, message: text),
                               source: source, operation: operation, reason: text)
        }
        guard let result = message.result else { return true }
        if result.canceled == true {
            if let compacted = result.compactRevision?.value, compacted > 0 {
                throw KVStoreError(.compacted(revision: compacted), source: source, operation: operation,
                                   reason: "required revision has been compacted (compacted up to \(compacted))")
            }
            throw KVStoreError(.server(status: 200), source: source, operation: operation,
                               reason: "watch canceled by server: \(result.cancelReason ?? "no reason given")")
        }
        for event in result.events ?? [] {
            let e = try event.event()
            switch continuation.yield(e) {
            case .terminated: return false
            case .dropped: throw KVWatchBuffer.fellBehind(at: e.revision, source: source, operation: operation)
            case .enqueued: continue
            @unknown default: continue
            }
        }
        return true
    }
}
