import Glibc
import NIOCore
import Synchronization

/// The open connections of one listener: the connection cap, eviction of the connection that has
/// waited longest without a request, and what `stop()` closes at once or waits for.
final class ConnectionRegistry: Sendable {
    enum Phase: Sendable {
        /// Waiting for a request: closed first when the cap is reached, and at once by `stop()`.
        case waiting
        /// Part of a head received: closed first when the cap is reached; `stop()` lets it finish.
        case head
        /// A request is being read, handled or answered.
        case busy
        /// A streaming response: ends only when the client or the server stops.
        case streaming
    }

    private struct Entry {
        let channel: any Channel
        var phase: Phase
        var since: NIODeadline
        /// The connection's read deadline (its handler's is the truth; this is for the sweep).
        var deadline = NIODeadline.distantFuture
    }

    /// Sent through a connection's pipeline when its read deadline has passed.
    struct DeadlinePassed: Sendable {}

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var stopping = false
        var refused = 0
        var evicted = 0
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = max(1, limit) }

    enum Admission { case admitted(evicting: (any Channel)?), refused }

    /// Counts `channel` in, closing the longest-waiting connection to make room at the cap (this
    /// listener's, or the process's descriptor budget shared by every listener).
    func admit(_ channel: any Channel) -> Admission {
        state.withLock { s in
            if s.stopping { s.refused += 1; return .refused }
            var evicting: (any Channel)?
            if s.entries.count >= limit || !DescriptorBudget.take() {
                let oldest = s.entries.lazy.filter { $0.value.phase == .waiting || $0.value.phase == .head }.min { $0.value.since < $1.value.since }
                guard let oldest else { s.refused += 1; return .refused }
                s.entries[oldest.key] = nil
                s.evicted += 1
                evicting = oldest.value.channel
            }
            s.entries[ObjectIdentifier(channel)] = Entry(channel: channel, phase: .waiting, since: .now())
            return .admitted(evicting: evicting)
        }
    }

    func set(_ channel: any Channel, _ phase: Phase) {
        state.withLock { s in
            let id = ObjectIdentifier(channel)
            guard s.entries[id] != nil else { return }
            s.entries[id]!.phase = phase
            s.entries[id]!.since = .now()
        }
    }

    func setDeadline(_ channel: any Channel, _ deadline: NIODeadline) {
        state.withLock { s in
            let id = ObjectIdentifier(channel)
            guard s.entries[id] != nil else { return }
            s.entries[id]!.deadline = deadline
        }
    }

    /// Tells every connection whose read deadline has passed (on its own event loop).
    func sweep(now: NIODeadline = .now()) {
        let due = state.withLock { s in
            var due: [any Channel] = []
            for (id, entry) in s.entries where entry.deadline <= now {
                s.entries[id]!.deadline = .distantFuture
                due.append(entry.channel)
            }
            return due
        }
        for channel in due { channel.pipeline.fireUserInboundEventTriggered(DeadlinePassed()) }
    }

    func remove(_ channel: any Channel) {
        let removed = state.withLock { $0.entries.removeValue(forKey: ObjectIdentifier(channel)) != nil }
        if removed { DescriptorBudget.give() }
    }

    var isStopping: Bool { state.withLock { $0.stopping } }
    var count: Int { state.withLock { $0.entries.count } }
    var counters: (refused: Int, evicted: Int) { state.withLock { ($0.refused, $0.evicted) } }

    /// Refuses new connections from now on; returns the connections that are not in the middle
    /// of a request (to be closed now). The others close after their response.
    func beginStop() -> [any Channel] {
        state.withLock { s in
            s.stopping = true
            return s.entries.values.filter { $0.phase == .waiting || $0.phase == .streaming }.map(\.channel)
        }
    }

    var all: [any Channel] { state.withLock { $0.entries.values.map(\.channel) } }
}

/// Connections of all listeners together stay below the process's open-file limit (less a
/// reserve for maps, netlink, etcd and files): past it, accept() would fail for every listener,
/// the API socket included, while waiting connections hold the descriptors.
enum DescriptorBudget {
    static let reserve = 512
    static let limit: Int = {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return max(64, Int(clamping: limit.rlim_cur) - reserve)
    }()
    private static let used = Atomic<Int>(0)

    static func take() -> Bool {
        var current = used.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = used.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    static func give() { used.subtract(1, ordering: .relaxed) }
}

