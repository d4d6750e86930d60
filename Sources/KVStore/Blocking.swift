import Foundation

/// Runs blocking socket work on a thread of its own, so that it never
/// occupies one of the (two, on this machine) threads of Swift's
/// concurrency pool. At most `BlockingSlots.shared.limit` such threads run
/// at once; further requests wait for a slot.
func runBlocking<T: Sendable>(_ name: String, _ work: @escaping @Sendable () throws -> T) async throws -> T {
    await BlockingSlots.shared.acquire()
    defer { BlockingSlots.shared.release() }
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            continuation.resume(with: Result { try work() })
        }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// Starts a detached thread for long-running blocking work (watch streams).
func startThread(_ name: String, _ work: @escaping @Sendable () -> Void) {
    let thread = Thread(block: work)
    thread.name = name
    thread.stackSize = 1 << 20
    thread.start()
}

/// A counting semaphore for async callers.
final class BlockingSlots: Sendable {
    static let shared = BlockingSlots(limit: 64)

    let limit: Int
    private let state: Locked<(free: Int, waiting: [CheckedContinuation<Void, Never>])>

    init(limit: Int) {
        self.limit = limit
        state = Locked((limit, []))
    }

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.free > 0 {
                    s.free -= 1
                    return true
                }
                s.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiting.isEmpty {
                s.free += 1
                return nil
            }
            return s.waiting.removeFirst()
        }
        next?.resume()
    }
}
