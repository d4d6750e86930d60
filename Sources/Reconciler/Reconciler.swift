import Foundation

public struct ReconcilerConfig: Sendable {
    /// First retry delay after a failure; doubles per attempt up to `maxBackoff`.
    public var minBackoff: Duration = .milliseconds(100)
    public var maxBackoff: Duration = .seconds(60)
    /// How often every object is updated again and the target pruned, to repair drift.
    public var refreshInterval: Duration? = .seconds(300)
    /// Prune once the initial content has been reconciled.
    public var pruneOnStart = true
    /// Objects per batch call to the target.
    public var batchSize = 4096

    public init() {}

    public func backoff(attempts: Int) -> Duration {
        var d = minBackoff
        for _ in 1..<max(attempts, 1) {
            d = d * 2
            if d >= maxBackoff { return maxBackoff }
        }
        return min(d, maxBackoff)
    }
}

/// Drives a target to match a `StateTable`: every change is applied through
/// `Operations` (in batches), failures are retried with exponential backoff,
/// and a periodic refresh plus prune repairs drift. Reports a status per object
/// and a health for the whole.
public actor Reconciler<Ops: Operations> {
    public typealias Object = Ops.Object
    public nonisolated let name: String
    public let table: StateTable<Object>
    private let ops: Ops
    private let config: ReconcilerConfig

    private var statuses: [Object.Key: ObjectStatus] = [:]
    private struct Retry {
        var change: Change<Object>
        var attempts: Int
        var due: ContinuousClock.Instant
    }
    private var retries: [Object.Key: Retry] = [:]
    private var lastError: String?
    private var pruneError: String?
    private var running = false
    private var tasks: [Task<Void, Never>] = []
    private var timer: Task<Void, Never>?
    private var plannedWake: ContinuousClock.Instant?
    private var lastRefresh = ContinuousClock.now
    private var initialSynced = false

    public private(set) var updatesApplied = 0
    public private(set) var deletesApplied = 0
    public private(set) var prunes = 0

    public init(name: String, table: StateTable<Object>, operations: Ops, config: ReconcilerConfig = .init()) {
        self.name = name
        self.table = table
        self.ops = operations
        self.config = config
    }

    public func start() async {
        guard !running else { return }
        running = true
        // The stream's first set is the current content: apply it, then prune
        // what the target holds beyond it; afterwards each change as it comes.
        let stream = await table.changes(includeExisting: true)
        tasks.append(Task { [weak self] in
            var first = true
            for await changes in stream {
                guard let self else { return }
                await self.apply(changes)
                if first {
                    first = false
                    await self.initialSyncDone()
                }
            }
        })
    }

    public func stop() {
        running = false
        for t in tasks { t.cancel() }
        tasks.removeAll()
        timer?.cancel()
        timer = nil
        plannedWake = nil
        retries.removeAll()
    }

    public var isRunning: Bool { running }

    /// Status of one object (nil: never seen by this reconciler).
    public func status(of key: Object.Key) -> ObjectStatus? { statuses[key] }

    /// Objects per status, kept as counters (cheap to ask, even for millions).
    public func statusCounts() -> (pending: Int, done: Int, error: Int) {
        (counts[0], counts[1], counts[2])
    }

    private var counts = [0, 0, 0]

    private static func slot(_ s: ObjectStatus) -> Int {
        switch s {
        case .pending: return 0
        case .done: return 1
        case .error: return 2
        }
    }

    /// Sets (or with nil, forgets) an object's status, keeping the counters true.
    private func setStatus(_ key: Object.Key, _ status: ObjectStatus?) {
        let old: ObjectStatus?
        if let status {
            old = statuses.updateValue(status, forKey: key)
            counts[Self.slot(status)] += 1
        } else {
            old = statuses.removeValue(forKey: key)
        }
        if let old { counts[Self.slot(old)] -= 1 }
    }

    public func health() -> Health {
        if !running { return .stopped }
        let errors = retries.count
        if errors > 0 || pruneError != nil {
            var msg = "\(name): \(errors) object(s) failing"
            if let lastError { msg += ", last error: \(lastError)" }
            if let pruneError { msg += (errors > 0 ? "; " : "") + "prune failed: \(pruneError)" }
            return Health(.degraded, msg)
        }
        return .ok
    }

    /// Waits until every object in the table up to its current revision has
    /// been applied successfully (used by tests and by READY).
    public func waitSynced(timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if initialSynced, retries.isEmpty {
                let all = await table.all()
                if counts[1] >= all.count, all.allSatisfy({ statuses[$0.key] == .done }) { return true }
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    /// Waits until the initial content has been tried once: every object is
    /// done or failed (and retrying), none pending. For READY, which must not
    /// wait out a backoff for, say, a device that does not exist yet.
    public func waitSettled(timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if initialSynced && counts[0] == 0 { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    /// Runs a full refresh and prune now.
    public func refresh() async {
        let all = await table.all()
        await apply(all.map { Change.upsert($0, 0) })
        await runPrune()
        lastRefresh = .now
        schedule()
    }

    // MARK: - internals

    private func initialSyncDone() async {
        if config.pruneOnStart { await runPrune() }
        initialSynced = true
        lastRefresh = .now
        schedule()
    }

    private func apply(_ changes: [Change<Object>]) async {
        guard running else { return }
        // A change set from the table names each key once (StateTable's
        // guarantee), and so do the ones built here for retries and refreshes.
        var upserts: [Object] = []
        var deletes: [Object] = []
        upserts.reserveCapacity(changes.count)
        for change in changes {
            switch change {
            case .upsert(let o, _): upserts.append(o); setStatus(o.key, .pending)
            case .delete(let o, _): deletes.append(o)
            }
        }
        var i = 0
        while i < upserts.count {
            let chunk = Array(upserts[i..<min(i + config.batchSize, upserts.count)])
            let failed = await ops.updateBatch(chunk)
            updatesApplied += chunk.count - failed.count
            ReconcilerMetrics.add(name, "update", success: chunk.count - failed.count, failed: failed.count)
            let failedKeys = Set(failed.map { $0.0.key })
            let retrying = !retries.isEmpty
            for o in chunk where failedKeys.isEmpty || !failedKeys.contains(o.key) {
                setStatus(o.key, .done)
                if retrying { retries.removeValue(forKey: o.key) }
            }
            for (o, err) in failed { recordFailure(.upsert(o, 0), err) }
            i += config.batchSize
        }
        if !deletes.isEmpty {
            let failed = await ops.deleteBatch(deletes)
            deletesApplied += deletes.count - failed.count
            ReconcilerMetrics.add(name, "delete", success: deletes.count - failed.count, failed: failed.count)
            let failedKeys = Set(failed.map { $0.0.key })
            for o in deletes where !failedKeys.contains(o.key) {
                setStatus(o.key, nil)
                retries.removeValue(forKey: o.key)
            }
            for (o, err) in failed { recordFailure(.delete(o, 0), err) }
        }
        ReconcilerMetrics.setRetries(name, retries.count)
        schedule()
    }

    private func recordFailure(_ change: Change<Object>, _ error: any Error) {
        let key = change.object.key
        let attempts = (retries[key]?.attempts ?? 0) + 1
        let message = String(describing: error)
        setStatus(key, .error(message: message, attempts: attempts))
        retries[key] = Retry(change: change, attempts: attempts, due: .now + config.backoff(attempts: attempts))
        lastError = message
    }

    /// Sleeps until the next retry is due or the next refresh, whichever is
    /// first (no polling while nothing is pending).
    private func schedule() {
        guard running else { return }
        var next = retries.values.map(\.due).min()
        if let every = config.refreshInterval {
            let refreshAt = lastRefresh + every
            next = next.map { min($0, refreshAt) } ?? refreshAt
        }
        if next == plannedWake && timer != nil { return }
        timer?.cancel()
        plannedWake = next
        guard let next else { timer = nil; return }
        timer = Task { [weak self] in
            do { try await Task.sleep(until: next, clock: .continuous) } catch { return }
            await self?.timerFired()
        }
    }

    private func timerFired() async {
        timer = nil
        plannedWake = nil
        await tick()
        schedule()
    }

    private func tick() async {
        guard running else { return }
        let now = ContinuousClock.now
        let due = retries.values.filter { $0.due <= now }
        if !due.isEmpty {
            // Retry only if the table still wants that change.
            var changes: [Change<Object>] = []
            for r in due {
                let key = r.change.object.key
                if let current = await table.get(key) {
                    changes.append(.upsert(current, 0))
                } else {
                    changes.append(.delete(r.change.object, 0))
                }
            }
            await apply(changes)
            if retries.isEmpty { lastError = nil }
        }
        if let every = config.refreshInterval, now - lastRefresh >= every {
            await refresh()
        }
    }

    private func runPrune() async {
        do {
            try await ops.prune(desired: await table.all())
            prunes += 1
            pruneError = nil
        } catch {
            pruneError = String(describing: error)
        }
    }
}

