import Reconciler
import Synchronization

struct Item: TableObject, Equatable {
    var id: Int
    var value: String
    var key: Int { id }
}

enum InjectedFailure: Error, CustomStringConvertible {
    case boom(Int)
    var description: String {
        switch self { case .boom(let n): return "injected failure for \(n)" }
    }
}

/// An in-memory target that can be told to fail some keys a number of times.
final class MemoryTarget: Operations, Sendable {
    typealias Object = Item
    let state = Mutex<[Int: String]>([:])
    let failuresLeft = Mutex<[Int: Int]>([:])
    let calls = Mutex<[String]>([])
    let attemptTimes = Mutex<[ContinuousClock.Instant]>([])

    func update(_ object: Item) async throws {
        calls.withLock { $0.append("update \(object.id)") }
        let fail = failuresLeft.withLock { f -> Bool in
            guard let n = f[object.id], n > 0 else { return false }
            f[object.id] = n - 1
            return true
        }
        if fail {
            attemptTimes.withLock { $0.append(.now) }
            throw InjectedFailure.boom(object.id)
        }
        state.withLock { $0[object.id] = object.value }
    }

    func delete(_ object: Item) async throws {
        calls.withLock { $0.append("delete \(object.id)") }
        state.withLock { _ = $0.removeValue(forKey: object.id) }
    }

    func prune(desired: [Item]) async throws {
        let keep = Set(desired.map(\.id))
        calls.withLock { $0.append("prune") }
        state.withLock { s in
            for k in s.keys where !keep.contains(k) { s.removeValue(forKey: k) }
        }
    }

    var snapshot: [Int: String] { state.withLock { $0 } }
}

/// Short backoffs and no periodic refresh, for tests.
func fastConfig(minBackoff: Duration = .milliseconds(20), maxBackoff: Duration = .milliseconds(200)) -> ReconcilerConfig {
    var c = ReconcilerConfig()
    c.minBackoff = minBackoff
    c.maxBackoff = maxBackoff
    c.refreshInterval = nil
    return c
}
