import Foundation

extension EtcdKVStore {
    /// Streams /v3/watch on a connection of its own (a curl transfer driven by
    /// `CurlTransport`'s thread). The connection must be up within `timeout`;
    /// after that the stream may be quiet for any time. A dropped connection
    /// ends the stream with `.unavailable`; resume with `fromRevision:` one
    /// past the last event seen. Ending the stream (the consumer stops or its
    /// task is cancelled) aborts the transfer at once.
    public func watch(prefix: String, fromRevision: Int64?) -> AsyncThrowingStream<KVEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: KVEvent.self, bufferingPolicy: .bufferingOldest(KVWatchBuffer.limit))
        var create: [String: Any] = EtcdRequest.prefixRange(prefix)
        if let fromRevision { create["start_revision"] = String(fromRevision) }
        let body = EtcdRequest.json(["create_request": create])
        let endpoints = ordered()
        let operation = "watch \(prefix)"
        let task = Task {
            await self.runWatch(endpoints: endpoints, body: body, operation: operation, continuation: continuation)
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func runWatch(endpoints: [HTTPEndpoint], body: Data, operation: String,
                          continuation: AsyncThrowingStream<KVEvent, any Error>.Continuation) async {
        var refused: [String] = []
        for endpoint in endpoints {
            let source = "etcd \(endpoint.url)"
            do {
                let request = CurlRequest(endpoint: endpoint, path: "/v3/watch", body: body, timeout: timeout, tls: tls)
                let response = try await transport.stream(request) { line in
                    try Self.deliver(line, source: source, operation: operation, to: continuation)
                }
                if let response {
                    _ = try Self.decode(response, endpoint: endpoint, operation: operation, as: EtcdWatchMessage.self)
                }
                if Task.isCancelled {
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
                case .tooLarge(let limit):
                    continuation.finish(throwing: KVStoreError(.invalidResponse, source: source, operation: operation,
                                                               reason: "error answer larger than \(Self.bytesText(limit))"))
                case .handler(let error):
                    continuation.finish(throwing: error)
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
