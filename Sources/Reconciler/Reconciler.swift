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
///
/// Waiting is by revision: the reconciler keeps a watermark, the table revision
/// up to which every change has been tried once, and each failing object the
/// revision since which it has been failing. A waiter names the table revision
/// it needs (the table's at the call) and is resumed when the watermark reaches
/// it; nothing polls, nothing rescans the table.
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
        /// The revision of the oldest change to this key not yet applied: the
        /// object has been failing since then.
        var since: Revision
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

    /// Every table change up to this revision has been tried once (done or failing).
    private var processed: Revision = 0
    /// Counts starts: a change set still being applied for an earlier start
    /// (stopped meanwhile) moves no watermark of this one.
    private var generation = 0
    private struct Waiter {
        var target: Revision
        /// waitSynced (nothing up to `target` failing), else waitSettled.
        var synced: Bool
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Bool, Never>
    }
    /// Each continuation is resumed once: by whoever removes it from here.
    private var waiters: [Int: Waiter] = [:]
    private var nextWaiter = 0
    /// One timer for the earliest waiter deadline.
    private var waiterTimer: Task<Void, Never>?
    private var waiterWake: ContinuousClock.Instant?

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
        // Waiters wait for this start's initial content (and prune) too.
        initialSynced = false
        generation += 1
        let generation = generation
        // The stream's first set is the current content: apply it, then prune
        // what the target holds beyond it; afterwards each change as it comes.
        let stream = await table.changeSets()
        tasks.append(Task { [weak self] in
            var first = true
            for await set in stream {
                guard let self else { return }
                await self.applyChangeSet(set, first: first, generation: generation)
                first = false
            }
        })
        // A table still waiting for a source's first full view is pruned once it has it.
        if config.pruneOnStart, !(await table.isInitialized) {
            let initialized = await table.initialization()
            tasks.append(Task { [weak self] in
                for await _ in initialized { await self?.pruneAfterInitialization(generation: generation) }
            })
        }
    }

    private func pruneAfterInitialization(generation: Int) async {
        guard running, generation == self.generation else { return }
        await runPrune()
    }

    public func stop() {
        running = false
        for t in tasks { t.cancel() }
        tasks.removeAll()
        timer?.cancel()
        timer = nil
        plannedWake = nil
        retries.removeAll()
        // Nothing will move the watermark any more: pending waits return false.
        let pending = waiters.values
        waiters.removeAll()
        waiterTimer?.cancel()
        waiterTimer = nil
        waiterWake = nil
        for w in pending { w.continuation.resume(returning: false) }
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
    /// been applied successfully (used by tests and by READY): the initial
    /// content is reconciled and pruned, every change up to the table's
    /// revision at the call has been tried, and no object is still failing
    /// since a revision at or below it. False on timeout, when the task is
    /// cancelled, or when the reconciler is stopped meanwhile.
    public func waitSynced(timeout: Duration = .seconds(10)) async -> Bool {
        await wait(synced: true, timeout: timeout)
    }

    /// Waits until the initial content has been tried once and so has every
    /// change up to the table's revision at the call: each object is done or
    /// failed (and retrying). For READY, which must not wait out a backoff
    /// for, say, a device that does not exist yet. False on timeout, when the
    /// task is cancelled, or when the reconciler is stopped meanwhile.
    public func waitSettled(timeout: Duration = .seconds(10)) async -> Bool {
        await wait(synced: false, timeout: timeout)
    }

    private func wait(synced: Bool, timeout: Duration) async -> Bool {
        let target = await table.revision
        if isReached(target, synced: synced) { return true }
        let id = nextWaiter
        nextWaiter += 1
        let deadline = ContinuousClock.now + timeout
        return await withTaskCancellationHandler {
            // Runs on this actor, without a suspension between the checks
            // and the registration.
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                if isReached(target, synced: synced) { return continuation.resume(returning: true) }
                if Task.isCancelled || timeout <= .zero { return continuation.resume(returning: false) }
                waiters[id] = Waiter(target: target, synced: synced, deadline: deadline, continuation: continuation)
                scheduleWaiterTimer(deadline)
            }
        } onCancel: {
            Task { await self.endWaiter(id) }
        }
    }

    /// Whether a wait for `target` is over.
    private func isReached(_ target: Revision, synced: Bool) -> Bool {
        guard initialSynced, processed >= target else { return false }
        return !synced || !retries.values.contains { $0.since <= target }
    }

    /// Resumes the waiters whose revision is reached (after a change set, a
    /// retry or a refresh).
    private func resumeReached() {
        guard !waiters.isEmpty, initialSynced else { return }
        // The oldest failure, found once per pass (failing objects only).
        var oldestFailure: Revision?
        var reached: [Int] = []
        for (id, w) in waiters where w.target <= processed {
            if w.synced {
                let oldest = oldestFailure ?? (retries.values.lazy.map(\.since).min() ?? .max)
                oldestFailure = oldest
                if oldest <= w.target { continue }
            }
            reached.append(id)
        }
        for id in reached {
            waiters.removeValue(forKey: id)?.continuation.resume(returning: true)
        }
    }

    /// Ends one wait with false (cancelled, or its deadline passed), unless it ended already.
    private func endWaiter(_ id: Int) {
        waiters.removeValue(forKey: id)?.continuation.resume(returning: false)
    }

    /// Makes the waiter timer fire by `deadline`. A timer already due earlier
    /// stays (it fires, ends what expired and sleeps until the next deadline).
    private func scheduleWaiterTimer(_ deadline: ContinuousClock.Instant) {
        if let waiterWake, waiterTimer != nil, waiterWake <= deadline { return }
        waiterTimer?.cancel()
        waiterWake = deadline
        waiterTimer = Task { [weak self] in
            do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
            await self?.waiterTimerFired()
        }
    }

    private func waiterTimerFired() {
        waiterTimer = nil
        waiterWake = nil
        let now = ContinuousClock.now
        for (id, w) in waiters where w.deadline <= now { endWaiter(id) }
        if let next = waiters.values.lazy.map(\.deadline).min() { scheduleWaiterTimer(next) }
    }

    /// Runs a full refresh and prune now.
    public func refresh() async {
        await apply(await table.allAsUpserts())
        await runPrune()
        lastRefresh = .now
        schedule()
    }

    // MARK: - internals

    /// One change set from the table: applied, then the watermark moves to its revision.
    private func applyChangeSet(_ set: ChangeSet<Object>, first: Bool, generation: Int) async {
        guard running, generation == self.generation else { return }
        await apply(set.changes)
        if first, config.pruneOnStart { await runPrune() }
        // Stopped (or started again) meanwhile: the watermark stays.
        guard running, generation == self.generation else { return }
        if first {
            initialSynced = true
            lastRefresh = .now
            schedule()
        }
        processed = max(processed, set.revision)
        resumeReached()
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
        // The revision of each change, for the ones that fail (rare: looked up lazily).
        var revisions: [Object.Key: Revision]?
        func revision(of key: Object.Key) -> Revision {
            if revisions == nil {
                revisions = Dictionary(changes.map { ($0.object.key, $0.revision) }, uniquingKeysWith: { _, last in last })
            }
            return revisions?[key] ?? 0
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
            for (o, err) in failed { recordFailure(.upsert(o, revision(of: o.key)), err) }
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
            for (o, err) in failed { recordFailure(.delete(o, revision(of: o.key)), err) }
        }
        ReconcilerMetrics.setRetries(name, retries.count)
        schedule()
        // A retry that succeeded may end a waitSynced.
        resumeReached()
    }

    private func recordFailure(_ change: Change<Object>, _ error: any Error) {
        let key = change.object.key
        let attempts = (retries[key]?.attempts ?? 0) + 1
        let message = String(describing: error)
        setStatus(key, .error(message: message, attempts: attempts))
        retries[key] = Retry(change: change, attempts: attempts, due: .now + config.backoff(attempts: attempts),
                             since: retries[key]?.since ?? change.revision)
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
                if let current = await table.row(key) {
                    changes.append(.upsert(current.object, current.revision))
                } else {
                    changes.append(.delete(r.change.object, r.change.revision))
                }
            }
            await apply(changes)
            if retries.isEmpty { lastError = nil }
        }
        if let every = config.refreshInterval, now - lastRefresh >= every {
            await refresh()
        }
    }

    /// Removes from the target what the table does not hold, unless a source of the table has
    /// not written its first full view yet (then what is missing may be on its way).
    private func runPrune() async {
        guard await table.isInitialized else { return }
        do {
            try await ops.prune(desired: await table.all())
            prunes += 1
            pruneError = nil
        } catch {
            pruneError = String(describing: error)
        }
    }
}

