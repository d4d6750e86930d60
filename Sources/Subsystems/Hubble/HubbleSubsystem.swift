import API
import CBPF
import Config
import Datapath
import Foundation
import Reconciler

/// Flow observability (`hubble.enabled`). Reads the datapath's event ring
/// buffer and keeps the most recent events in a bounded ring of
/// `hubble.eventBufferCapacity`. Decoding into flows, `hubble observe` and
/// metrics come with the Hubble issue.
public actor HubbleSubsystem: AgentSubsystem {
    public nonisolated let name = "hubble"
    public nonisolated let dependencies = ["networking"]
    public nonisolated let configKeys = ["hubble."]
    private var context: SubsystemContext?
    private var reader: RingBufferReader?
    private var consumer: Task<Void, Never>?
    private var ring: [cilium_event] = []
    private var next = 0
    private var capacity = 4095
    private var seen: UInt64 = 0
    private var startedAt = ContinuousClock.now

    public init() {}

    public func configure(_ context: SubsystemContext) { self.context = context }

    public func start() async throws {
        guard let context else { throw SubsystemError("hubble: not configured") }
        capacity = context.config.hubble.eventBufferCapacity
        let reader = try RingBufferReader(pinned: context.bpfRoot + "/cilium_events")
        self.reader = reader
        ring = []
        next = 0
        seen = 0
        startedAt = .now
        consumer = Task { [weak self] in
            for await record in reader.records {
                guard record.count >= MemoryLayout<cilium_event>.size else { continue }
                let event = record.withUnsafeBytes { $0.loadUnaligned(as: cilium_event.self) }
                await self?.record(event)
            }
        }
    }

    private func record(_ event: cilium_event) {
        seen += 1
        if ring.count < capacity {
            ring.append(event)
        } else {
            ring[next] = event
            next = (next + 1) % capacity
        }
    }

    public func stop() async {
        reader?.stop()
        consumer?.cancel()
        reader = nil
        consumer = nil
    }

    public func health() async -> Health { reader == nil ? .stopped : .ok }

    public var eventsSeen: UInt64 { seen }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let elapsed = max((ContinuousClock.now - startedAt) / .seconds(1), 0.001)
        let pct = Double(ring.count) / Double(max(capacity, 1)) * 100
        let summary = String(format: "Ok   Current/Max Flows: %d/%d (%.2f%%), Flows/s: %.2f   Metrics: Disabled",
                             ring.count, capacity, pct, Double(seen) / elapsed)
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: h.state == .ok ? summary : h.message,
                               details: ["events read from the datapath: \(seen)",
                                         "flow decoding, hubble observe and metrics: not implemented yet"])
    }
}
