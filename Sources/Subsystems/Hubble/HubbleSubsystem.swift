import HTTPServing
import HTTPTransport
import AgentModel
import API
import CBPF
import Config
import Datapath
import LinuxNet
import Foundation
import Reconciler

/// Flow observability (`hubble.enabled`). Reads the datapath's event ring
/// buffer, decodes each event into a flow (endpoints, identities, labels and
/// the policies that decided it, from the shared tables) and keeps the most
/// recent flows in a ring of `hubble.eventBufferCapacity`. `hubble observe`
/// reads them through GET /v1/flows.
public actor HubbleSubsystem: SteppedSubsystem {
    public nonisolated let name = "hubble"
    /// Nothing pinned: it reads Networking's event ring and counters through `NetworkingMaps`.
    public nonisolated let owns = PinOwnership(maps: [], directory: "hubble")
    public nonisolated let dependencies = ["networking"]
    public nonisolated let apiPrefixes = ["/v1/flows", "/v1/hubble"]
    public private(set) var context: SubsystemContext<Section>?
    private var reader: RingBufferReader?
    private var consumer: Task<Void, Never>?
    private var watchers: [Task<Void, Never>] = []
    private var ring = FlowRing(capacity: 4095)
    private var decoder = FlowDecoder()
    private var namesStale = true
    private var undecoded: UInt64 = 0
    private var startedAt = ContinuousClock.now
    private var metrics = HubbleMetrics([])
    private var metricsServer: HTTPServer?
    private var uiServer: HTTPServer?
    /// The datapath's counters: events the ring buffer had no room for are counted there.
    private var datapathMetrics: BPFMap<UInt32, metrics_value>?

    public init() {}

    /// The settings Hubble reads (`hubble.enabled` switches it; the host reads that).
    public struct Section: Equatable, Sendable {
        public var eventBufferCapacity: Int
        public var metrics: AgentConfig.Hubble.Metrics
        public var ui: AgentConfig.Hubble.UI
        /// Flows name the overlay only in tunnel mode.
        public var routingMode: RoutingMode
        /// The limits of the metrics and UI listeners (`agent.http.*`).
        public var http: AgentConfig.HTTP
    }

    public static func section(of c: AgentConfig) -> Section {
        Section(eventBufferCapacity: c.hubble.eventBufferCapacity, metrics: c.hubble.metrics, ui: c.hubble.ui,
                routingMode: c.routingMode, http: c.agent.http)
    }

    public func configure(_ context: SubsystemContext<Section>) { self.context = context }

    /// The start, step by step (`SteppedSubsystem` runs them and takes them back).
    public enum Step: String, StartStep {
        case flows = "flow store"
        case names = "shared tables"
        case metrics = "hubble.metrics"
        case ui = "hubble.ui"
        case events = "event ring"
    }

    public var taken: [Step] = []

    public func run(_ step: Step, in context: SubsystemContext<Section>) async throws {
        switch step {
        case .flows:
            let unknown = HubbleMetrics.unknown(context.section.metrics.enabled)
            guard unknown.isEmpty else {
                throw SubsystemError("hubble.metrics.enabled: unknown metric \(unknown.joined(separator: ", ")); known are \(HubbleMetrics.known.joined(separator: ", "))")
            }
            ring = FlowRing(capacity: context.section.eventBufferCapacity)
            decoder = FlowDecoder()
            decoder.names.nodeName = context.nodeName
            decoder.names.tunnel = context.section.routingMode == .tunnel
            metrics = HubbleMetrics(context.section.metrics.enabled)
            undecoded = 0
            startedAt = .now
        case .names:
            let shared = context.shared
            watchers = [watch(await shared.identities.changes()), watch(await shared.endpoints.changes()),
                        watch(await shared.ipcache.changes()), watch(await shared.policyRules.changes())]
        case .metrics:
            guard !context.section.metrics.enabled.isEmpty else { return }
            let server = HTTPServer(tcpPort: UInt16(context.section.metrics.port),
                                    limits: HTTPServerLimits(context.section.http)) { [weak self] request in
                guard request.path == "/metrics" else { return .error(status: 404, message: "metrics are at /metrics") }
                return await self?.renderMetrics() ?? .error(status: 503, message: "hubble is stopping")
            }
            do {
                try server.start()
            } catch {
                throw SubsystemError("port \(context.section.metrics.port): \(error)")
            }
            metricsServer = server
        case .ui:
            guard context.section.ui.enabled else { return }
            let server = HTTPServer(tcpPort: UInt16(context.section.ui.port),
                                    limits: HTTPServerLimits(context.section.http)) { [weak self] request in
                guard let self else { return .error(status: 503, message: "hubble is stopping") }
                return await self.serveUI(request)
            }
            do {
                try server.start()
            } catch {
                throw SubsystemError("port \(context.section.ui.port): \(error)")
            }
            uiServer = server
        case .events:
            let reader = try NetworkingMaps.openEvents(bpfRoot: context.bpfRoot)
            self.reader = reader
            datapathMetrics = try? NetworkingMaps.metrics.open(bpfRoot: context.bpfRoot)
            consumer = Task { [weak self] in
                for await record in reader.records {
                    guard let self else { return }
                    guard record.count >= MemoryLayout<cilium_event>.size else {
                        await self.countUndecoded()
                        continue
                    }
                    let event = record.withUnsafeBytes { $0.loadUnaligned(as: cilium_event.self) }
                    await self.record(event)
                }
            }
        }
    }

    /// Hubble has no datapath of its own: undoing a step is letting it go.
    public func undo(_ step: Step) async { await release(step) }

    public func release(_ step: Step) async {
        switch step {
        case .flows: break
        case .names:
            for w in watchers { w.cancel() }
            watchers = []
        case .metrics:
            await metricsServer?.stop()
            metricsServer = nil
        case .ui:
            await uiServer?.stop()
            uiServer = nil
        case .events:
            reader?.stop()
            consumer?.cancel()
            reader = nil
            consumer = nil
            datapathMetrics = nil
        }
    }

    private func watch<T: TableObject>(_ stream: AsyncStream<[Change<T>]>) -> Task<Void, Never> {
        Task { [weak self] in
            for await _ in stream { await self?.markStale() }
        }
    }

    private func markStale() { namesStale = true }
    private func countUndecoded() { undecoded += 1 }

    private func refreshNames() async {
        guard namesStale, let shared = context?.shared else { return }
        namesStale = false
        var n = decoder.names
        n.identityLabels = Dictionary(await shared.identities.all().map { ($0.id, $0.labels.sorted()) }, uniquingKeysWith: { a, _ in a })
        n.endpoints = Dictionary(await shared.endpoints.all().compactMap { ep in
            IPv4Address(ep.address).map { ($0.value.bigEndian, FlowDecoder.endpoint(ep)) }
        }, uniquingKeysWith: { a, _ in a })
        n.rules = Dictionary(await shared.policyRules.all().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        n.remote = Dictionary(await shared.ipcache.all().filter { $0.tunnelEndpoint != nil && $0.prefix.length == 32 }
            .map { ($0.prefix.address.value.bigEndian, (namespace: $0.podNamespace, pod: $0.podName, cluster: $0.cluster)) }, uniquingKeysWith: { a, _ in a })
        decoder.names = n
    }

    private func record(_ event: cilium_event) async {
        await refreshNames()
        guard let stored = decoder.resolve(event, seq: ring.seen + 1) else {
            undecoded += 1
            return
        }
        ring.append(stored)
        metrics.record(stored)
    }

    private func renderMetrics() -> HTTPResponse { metrics.render().response }

    /// The service map page and the flows it polls.
    private func serveUI(_ request: HTTPRequest) -> HTTPResponse {
        switch request.path {
        case "/", "/index.html":
            return HTTPResponse(status: 200, headers: ["Content-Type": "text/html; charset=utf-8"], body: Data(ServiceMapPage.html.utf8))
        case "/api/flows":
            return flowsResponse(after: request.query["after"].flatMap { UInt64($0) } ?? 0)
        default:
            return .error(status: 404, message: "not found: \(request.path)")
        }
    }

    private func flowsResponse(after: UInt64) -> HTTPResponse {
        .json(FlowsResponse(flows: ring.records(after: after).map { FlowRecord(seq: $0.seq, flow: decoder.flow($0)) }, status: statusModel()))
    }

    public func health() async -> Health { reader == nil ? .stopped : .ok }

    func statusModel() -> HubbleStatusModel {
        let elapsed = max((ContinuousClock.now - startedAt) / .seconds(1), 0.001)
        return HubbleStatusModel(nodeName: context?.nodeName ?? "", seenFlows: ring.seen, currentFlows: ring.count,
                                 maxFlows: ring.capacity, lostEvents: undecoded + datapathLost(),
                                 flowsPerSecond: Double(ring.seen) / elapsed, uptimeSeconds: elapsed)
    }

    /// Events the datapath could not put in the ring buffer (it was full), summed over CPUs.
    private func datapathLost() -> UInt64 {
        guard let map = datapathMetrics else { return 0 }
        return map.lookupPerCPU(ciliumMetricsIndex(reason: UInt8(CILIUM_EVENTS_LOST), direction: 0))?.reduce(0) { $0 &+ $1.packets } ?? 0
    }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let s = statusModel()
        let pct = Double(s.currentFlows) / Double(max(s.maxFlows, 1)) * 100
        let summary = String(format: "Ok   Current/Max Flows: %d/%d (%.2f%%), Flows/s: %.2f   Metrics: ",
                             s.currentFlows, s.maxFlows, pct, s.flowsPerSecond) + (metricsServer == nil ? "Disabled" : "Ok")
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: h.state == .ok ? summary : h.message,
                               details: ["flows seen: \(s.seenFlows), events lost or not decoded: \(s.lostEvents)",
                                         "reports new connections (trace / policy verdict), audited packets and every drop",
                                         uiServer == nil ? "service map page: disabled (hubble.ui.enabled)"
                                             : "service map page: http://<node address>:\(context?.section.ui.port ?? 0)/",
                                         metricsServer == nil ? "metrics: disabled (hubble.metrics.enabled is empty)"
                                             : "metrics on :\(context?.section.metrics.port ?? 0)/metrics: "
                                             + metrics.enabled.sorted().joined(separator: ", ")
                                             + (metrics.enabled.isDisjoint(with: ["dns", "http"]) ? "" : " (dns, http: no L7 flows yet)")])
    }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        switch (request.method, request.path) {
        case ("GET", "/v1/flows"):
            return flowsResponse(after: request.query["after"].flatMap { UInt64($0) } ?? 0)
        case ("GET", "/v1/hubble/status"):
            return .json(statusModel())
        default:
            return .error(status: 404, message: "no such Hubble endpoint: \(request.method) \(request.path)")
        }
    }
}

/// The most recent flows, oldest first, with increasing sequence numbers.
package struct FlowRing: Sendable {
    let capacity: Int
    private var buffer: [FlowDecoder.Stored] = []
    private var head = 0
    private(set) var seen: UInt64 = 0

    package init(capacity: Int) {
        self.capacity = max(capacity, 1)
        buffer.reserveCapacity(min(self.capacity, 4096))
    }

    package var count: Int { buffer.count }

    /// Stores a flow; its sequence number becomes `seen`.
    package mutating func append(_ flow: FlowDecoder.Stored) {
        seen += 1
        var f = flow
        f.seq = seen
        if buffer.count < capacity {
            buffer.append(f)
        } else {
            buffer[head] = f
            head = (head + 1) % capacity
        }
    }

    /// Flows with a sequence number above `after`, oldest first.
    package func records(after: UInt64) -> [FlowDecoder.Stored] {
        let ordered = buffer.count < capacity ? buffer : Array(buffer[head...] + buffer[..<head])
        guard let first = ordered.first, after >= first.seq else { return ordered }
        return Array(ordered.drop { $0.seq <= after })
    }
}
