import Dispatch
import Glibc

/// Turns SIGHUP, SIGTERM and SIGINT into an async stream (the default actions
/// are switched off so the agent decides what each means).
enum SignalEvents {
    static func stream(_ signals: [Int32] = [SIGHUP, SIGTERM, SIGINT]) -> AsyncStream<Int32> {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let queue = DispatchQueue(label: "signals")
        var sources: [any DispatchSourceSignal] = []
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { continuation.yield(sig) }
            source.resume()
            sources.append(source)
        }
        let keep = SourcesBox(sources)
        continuation.onTermination = { _ in keep.cancel() }
        return stream
    }

    final class SourcesBox: Sendable {
        nonisolated(unsafe) let sources: [any DispatchSourceSignal]
        init(_ s: [any DispatchSourceSignal]) { sources = s }
        func cancel() { for s in sources { s.cancel() } }
    }
}
