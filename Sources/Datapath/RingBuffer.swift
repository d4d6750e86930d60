import CBPF
import Foundation
import Glibc
import Synchronization

/// Reads a BPF ring buffer as an `AsyncSequence` of raw records. Polling runs
/// on a dedicated thread (epoll inside libbpf); the ring buffer handle never
/// leaves it.
public final class RingBufferReader: Sendable {
    public let records: AsyncStream<[UInt8]>
    private let continuation: AsyncStream<[UInt8]>.Continuation
    private let stopFlag: StopFlag

    final class StopFlag: Sendable {
        private let flag = Atomic<Bool>(false)
        var stopped: Bool {
            get { flag.load(ordering: .relaxed) }
            set { flag.store(newValue, ordering: .relaxed) }
        }
    }

    final class Sink: Sendable {
        let continuation: AsyncStream<[UInt8]>.Continuation
        init(_ c: AsyncStream<[UInt8]>.Continuation) { continuation = c }
    }

    public init(mapFD: Int32, bufferLimit: Int = 65536) throws(BPFError) {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(bufferLimit))
        self.records = stream
        self.continuation = continuation
        let flag = StopFlag()
        self.stopFlag = flag
        let sink = Unmanaged.passRetained(Sink(continuation))
        let callback: ring_buffer_sample_fn = { ctx, data, size in
            let sink = Unmanaged<Sink>.fromOpaque(ctx!).takeUnretainedValue()
            let bytes = [UInt8](UnsafeRawBufferPointer(start: data, count: Int(size)))
            sink.continuation.yield(bytes)
            return 0
        }
        // Our own descriptor, kept until the poll thread ends (epoll watches it).
        let owned = fcntl(mapFD, F_DUPFD_CLOEXEC, 3)
        guard owned >= 0, let rb = ring_buffer__new(owned, callback, sink.toOpaque(), nil) else {
            let e = errno
            if owned >= 0 { close(owned) }
            sink.release()
            errno = e
            throw BPFError("open ring buffer on map fd \(mapFD)", errno: errno)
        }
        let handle = RingHandle(rb)
        let thread = Thread {
            while !flag.stopped {
                let r = ring_buffer__poll(handle.rb, 100)
                if r < 0 && -r != EINTR { break }
            }
            ring_buffer__free(handle.rb)
            close(owned)
            sink.takeRetainedValue().continuation.finish()
        }
        thread.name = "ringbuf-reader"
        thread.start()
    }

    /// Opens the ring buffer pinned at `path`.
    public convenience init(pinned path: String, bufferLimit: Int = 65536) throws(BPFError) {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { throw BPFError("open pinned ring buffer \(path)", errno: errno) }
        defer { close(fd) }
        try self.init(mapFD: fd, bufferLimit: bufferLimit)
    }

    /// Stops polling; the stream ends within one poll interval.
    public func stop() {
        stopFlag.stopped = true
    }

    deinit { stopFlag.stopped = true }
}

/// The libbpf ring buffer pointer, moved once onto the poll thread.
private struct RingHandle: @unchecked Sendable {
    let rb: OpaquePointer
    init(_ rb: OpaquePointer) { self.rb = rb }
}
