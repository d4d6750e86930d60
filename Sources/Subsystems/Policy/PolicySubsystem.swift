import HTTPTransport
import AgentModel
import Manifests
import API
import CBPF
import Config
import Datapath
import Foundation
import Reconciler

/// Identity-based network policy: CiliumNetworkPolicy and
/// CiliumClusterwideNetworkPolicy from the API (`cilium policy import`) and the
/// resource directory, resolved per endpoint into the `cilium_policy` map that
/// the policy stage (slot CILIUM_STAGE_POLICY) enforces.
public actor PolicySubsystem: SteppedSubsystem {
    public nonisolated let name = "policy"
    public nonisolated let dependencies = ["networking"]
    public nonisolated let apiPrefixes = ["/v1/policy"]
    public nonisolated let owns = PinOwnership(maps: ["cilium_policy", "cilium_policy_ep", "cilium_policy_node"], directory: "policy")
    public private(set) var context: SubsystemContext<Section>?
    public nonisolated let stage = PipelineStage(object: "policy", program: "cil_stage_policy", slot: CILIUM_STAGE_POLICY)

    private var engine: PolicyEngine?
    private var entryReconciler: Reconciler<PolicyMapOperations>?
    private var flagReconciler: Reconciler<BPFMapOperations<EndpointPolicyFlags, UInt16, policy_ep_value>>?
    private var policyMap: BPFMap<policy_key, policy_entry>?
    private var watchers: [Task<Void, Never>] = []
    private var nodeStateWatcher: Task<Void, Never>?
    private var directory: ResourceDirectory?
    /// Objects in the resource directory's policy files that are neither policies nor CIDR groups ("KIND NAME (file)"):
    /// skipped, and said in `cilium status --verbose`.
    private var directorySkipped: [String] = []
    private func setDirectorySkipped(_ list: [String]) { directorySkipped = list }

    public init() {}

    /// The settings Policy reads.
    public struct Section: Equatable, Sendable {
        public var enforcementMode: PolicyEnforcementMode
        public var auditMode: Bool
        /// Policy files are read from here too ("" for none).
        public var resourceDirectory: String
        /// cluster.name, which workloads carry as a label (for `cilium policy trace`'s label sets).
        public var clusterName: String
        /// clustermesh.policyDefaultLocalCluster: peer selectors without a cluster label select this cluster only.
        public var defaultLocalCluster: Bool
    }

    public static func section(of c: AgentConfig) -> Section {
        Section(enforcementMode: c.policyEnforcementMode, auditMode: c.policyAuditMode,
                resourceDirectory: c.agent.resourceDirectory, clusterName: c.cluster.name,
                defaultLocalCluster: c.clustermesh.policyDefaultLocalCluster)
    }

    public func configure(_ context: SubsystemContext<Section>) { self.context = context }

    /// The start, step by step (`SteppedSubsystem` runs them and takes them back).
    public enum Step: String, StartStep {
        case stage = "policy stage"
        case engine = "policy engine"
        case watchers = "shared tables"
        case reconcilers = "map reconcilers"
        case nodeState = "node policy state"
        case directory = "resource directory"
    }

    public var taken: [Step] = []

    /// The initializer of the policy entries table: the cluster's identities, listed.
    static let clusterIdentities = "cluster identities"

    public func run(_ step: Step, in context: SubsystemContext<Section>) async throws {
        switch step {
        case .stage:
            try await stage.install(bpfRoot: context.bpfRoot)
        case .engine:
            let mode = PolicyResolver.Mode(rawValue: context.section.enforcementMode.rawValue) ?? .default
            let engine: PolicyEngine
            do {
                engine = try PolicyEngine(shared: context.shared, stateFile: context.stateDir + "/policies.json",
                                          mode: mode, audit: context.section.auditMode,
                                          localCluster: context.section.defaultLocalCluster ? context.section.clusterName : nil,
                                          clusterName: context.section.clusterName)
            } catch {
                throw SubsystemError("cannot read \(context.stateDir)/policies.json: \(error)")
            }
            self.engine = engine
            // Other nodes' identities come from the kvstore: until they are listed, the policy map
            // keeps what the last agent left (no prune) and every endpoint looks entries up (a
            // restarted agent keeps admitting remote pods meanwhile).
            if !(await context.shared.identities.isInitialized) { await engine.hold(until: Self.clusterIdentities) }
            // Identities before endpoints: an endpoint's rules select peers by
            // identity. The current content is resolved before the reconcilers
            // start, so their first prune keeps every entry still wanted (an
            // agent restart never lifts enforcement); the watchers follow changes.
            await engine.load()
            for r in await context.shared.identities.all() { await engine.identityChanged(.upsert(r, 0)) }
            for e in await context.shared.endpoints.all() { await engine.endpointChanged(.upsert(e, 0)) }
        case .watchers:
            guard let engine else { return }
            watchers.append(follow(await context.shared.identities.changes()) { await engine.identityChanged($0) })
            watchers.append(follow(await context.shared.endpoints.changes()) { await engine.endpointChanged($0) })
            // Held (see .engine) until the cluster's identities are listed and resolved.
            let identities = context.shared.identities
            watchers.append(Task {
                for await _ in await identities.initialization() {}
                guard !Task.isCancelled else { return }
                for r in await identities.all() { await engine.identityChanged(.upsert(r, 0)) }
                await engine.release(Self.clusterIdentities)
            })
        case .reconcilers:
            guard let engine else { return }
            let map = try BPFMap<policy_key, policy_entry>(pinned: context.bpfRoot + "/cilium_policy")
            let epMap = try BPFMap<UInt16, policy_ep_value>(pinned: context.bpfRoot + "/cilium_policy_ep")
            policyMap = map
            let r = Reconciler(name: "policy-map", table: engine.entries, operations: PolicyMapOperations(map: map))
            let f = Reconciler(name: "policy-endpoints", table: engine.flags,
                               operations: BPFMapOperations(map: epMap, key: { $0.endpoint }, value: { $0.mapValue }))
            await r.start()
            await f.start()
            entryReconciler = r
            flagReconciler = f
        case .nodeState:
            guard let engine else { return }
            // The node-wide state the stage checks first: no endpoint with any policy flag means no per-endpoint lookups.
            let nodeState = try BPFMap<UInt32, UInt32>(pinned: context.bpfRoot + "/cilium_policy_node")
            let flags = engine.flags
            nodeStateWatcher = Task {
                for await _ in await flags.changes() {
                    let some = await flags.all().contains { $0.flags != 0 }
                    try? nodeState.update(0, some ? CILIUM_POLICY_NODE_SOME.rawValue : CILIUM_POLICY_NODE_NONE.rawValue)
                }
            }
        case .directory:
            guard let engine else { return }
            let dir = context.section.resourceDirectory
            guard !dir.isEmpty else { return }
            // Policy files in the resource directory: a file that does not parse changes nothing.
            let d = ResourceDirectory(path: dir, wants: { $0.contains("CiliumNetworkPolicy") || $0.contains("CiliumClusterwideNetworkPolicy") }) { [weak self] files in
                var all: [Policy] = []
                var skipped: [String] = []
                for f in files {
                    do {
                        let read = try PolicyParser.read(f.text, file: f.path)
                        all += read.policies
                        skipped += read.skipped.map { "\($0) (\(f.path))" }
                    } catch {
                        return "\(error) (the policies in force stay as they were)"
                    }
                }
                _ = await engine.apply(all, source: "directory", replacingSource: true)
                await self?.setDirectorySkipped(skipped)
                return nil
            }
            await d.start()
            directory = d
        }
    }

    /// Disabled: the stage leaves its slot, and the node state says "unknown" again.
    public func undo(_ step: Step) async {
        await release(step)
        switch step {
        case .stage: await stage.uninstall()
        case .engine:
            engine = nil
            await context?.shared.endpointPolicy.replaceAll([])
        case .nodeState:
            if let bpfRoot { try? BPFMap<UInt32, UInt32>(pinned: bpfRoot + "/cilium_policy_node").update(0, CILIUM_POLICY_NODE_UNKNOWN.rawValue) }
        case .watchers, .reconcilers, .directory: break
        }
    }

    /// Agent shutdown, or a reload: the handles go, the stage and the maps stay and keep enforcing
    /// until the next start (here or in the next agent) converges them.
    public func release(_ step: Step) async {
        switch step {
        case .stage: await stage.release()
        case .engine: break
        case .watchers:
            for w in watchers { w.cancel() }
            watchers = []
        case .reconcilers:
            await entryReconciler?.stop()
            await flagReconciler?.stop()
            entryReconciler = nil
            flagReconciler = nil
            policyMap = nil
        case .nodeState:
            nodeStateWatcher?.cancel()
            nodeStateWatcher = nil
        case .directory:
            await directory?.stop()
            directory = nil
        }
    }

    public func removeLeftovers(bpfRoot: String) async { await stage.removeLeftover(bpfRoot: bpfRoot) }

    private func follow<T: TableObject>(_ stream: AsyncStream<[Change<T>]>,
                                        _ apply: @escaping @Sendable (Change<T>) async -> Void) -> Task<Void, Never> {
        Task {
            for await batch in stream {
                for c in batch { await apply(c) }
            }
        }
    }

    public func health() async -> Health {
        guard let r = entryReconciler, let f = flagReconciler else { return .stopped }
        var all = [await stage.health, await r.health(), await f.health()]
        if let e = await engine?.lastError { all.append(Health(.degraded, e)) }
        if let d = await directory?.lastError { all.append(Health(.degraded, d)) }
        return Health.worst(all)
    }

    public func reconcilers() async -> [ReconcilerStatus] {
        var out: [ReconcilerStatus] = []
        if let r = entryReconciler { out.append(await r.statusReport(subsystem: name)) }
        if let f = flagReconciler { out.append(await f.statusReport(subsystem: name)) }
        return out
    }

    public func status() async -> SubsystemStatus {
        let mode = context?.section.enforcementMode.rawValue ?? "default"
        let audit = context?.section.auditMode == true ? ", audit mode" : ""
        let h = await health()
        guard let s = await engine?.summary else {
            return SubsystemStatus(enabled: true, state: h.state, message: h.message, summary: "Enforcement: \(mode)\(audit)")
        }
        return SubsystemStatus(
            enabled: true, state: h.state, message: h.message,
            summary: "Enforcement: \(mode)\(audit)   Policies: \(s.policies) (\(s.rules) rule\(s.rules == 1 ? "" : "s"), revision \(s.revision))",
            details: ["endpoints with policy enforcement: ingress \(s.enforcedIngress)/\(s.endpoints), egress \(s.enforcedEgress)/\(s.endpoints)",
                      "policy map entries: \(s.entries)",
                      "resource directory: \(context.map { $0.section.resourceDirectory.isEmpty ? "none" : $0.section.resourceDirectory } ?? "none")"]
                + (directorySkipped.isEmpty ? [] : ["resource directory: skipped (not policies): \(directorySkipped.joined(separator: ", "))"]))
    }

    // MARK: API

    /// An import or delete answers once the policy map holds the change (tried once at least:
    /// a failing write keeps retrying and `cilium status` says so), as `cilium-dbg policy import`
    /// followed by `policy wait` would: the next connection sees the new verdicts.
    private func waitRealized() async {
        _ = await entryReconciler?.waitSettled(timeout: .seconds(5))
        _ = await flagReconciler?.waitSettled(timeout: .seconds(5))
    }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        guard let engine else { return .error(status: 503, message: "policy subsystem is not running") }
        switch (request.method, request.path) {
        case ("PUT", "/v1/policy"), ("POST", "/v1/policy"):
            let source = request.query["source"] ?? "stdin"
            guard let text = String(data: request.body, encoding: .utf8) else {
                return .error(status: 400, message: "\(source): not UTF-8 text")
            }
            do {
                let file = try PolicyParser.read(text, file: source)
                let policies = file.policies
                guard !policies.isEmpty else {
                    return .error(status: 400, message: PolicyFile.nothingToImport(source, skipped: file.skipped))
                }
                let rev = await engine.apply(policies, source: "api")
                await waitRealized()
                return .json(PolicyImportResponse(revision: rev, policies: policies.map(\.qualifiedName),
                                                  skipped: file.skipped.isEmpty ? nil : file.skipped))
            } catch {
                return .error(status: 400, message: error.description)
            }
        case ("GET", "/v1/policy"):
            let (rev, list) = await engine.list()
            let name = request.query["name"], ns = request.query["namespace"]
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let selected = list.filter { p, _ in (name == nil || p.name == name) && (ns == nil || p.namespace == ns) }
            if name != nil, selected.isEmpty {
                return .error(status: 404, message: "no policy named \(name!)\(ns.map { " in namespace \($0)" } ?? "")")
            }
            return .json(PolicyListResponse(revision: rev, policies: selected.map { p, source in
                PolicyDescription(kind: p.kind.rawValue, name: p.name, namespace: p.namespace, source: source,
                                  rules: p.specs.count,
                                  json: String(decoding: (try? enc.encode(p)) ?? Data(), as: UTF8.self),
                                  notes: p.notes.isEmpty ? nil : p.notes)
            }))
        case ("DELETE", "/v1/policy"):
            let all = request.query["all"] == "true"
            guard all || request.query["name"] != nil else {
                return .error(status: 400, message: "say which policy: ?name=NAME[&namespace=NS] or ?all=true")
            }
            let (rev, n) = await engine.delete(name: all ? nil : request.query["name"], namespace: request.query["namespace"])
            await waitRealized()
            if n == 0, !all { return .error(status: 404, message: "no policy named \(request.query["name"]!)") }
            return .json(PolicyDeleteResponse(revision: rev, deleted: n))
        case ("POST", "/v1/policy/trace"):
            guard let req = try? JSONDecoder().decode(PolicyTraceRequest.self, from: request.body) else {
                return .error(status: 400, message: "expected a PolicyTraceRequest as JSON")
            }
            return .json(await engine.trace(req, clusterName: context?.section.clusterName ?? "default"))
        case ("GET", let path) where path.hasPrefix("/v1/policy/endpoint/"):
            guard let id = UInt16(path.dropFirst("/v1/policy/endpoint/".count)) else {
                return .error(status: 400, message: "endpoint id must be a number 1-65535")
            }
            guard let p = await engine.endpointPolicy(id) else {
                return .error(status: 404, message: "endpoint \(id) is not known to the policy subsystem")
            }
            return .json(await endpointResponse(id, p, engine))
        default:
            return .error(status: 404, message: "no API endpoint \(request.method) \(request.path)")
        }
    }

    private func endpointResponse(_ id: UInt16, _ p: EndpointPolicy, _ engine: PolicyEngine) async -> EndpointPolicyResponse {
        var entries: [PolicyMapEntryModel] = []
        for (k, e) in p.entries.sorted(by: { $0.key < $1.key }) {
            let counters = policyMap?.lookup(k.mapKey)
            entries.append(PolicyMapEntryModel(
                direction: k.direction == UInt8(CILIUM_DIR_INGRESS.rawValue) ? "ingress" : "egress",
                identity: k.identity, labels: k.identity == 0 ? ["(any)"] : await engine.labels(of: k.identity),
                proto: Self.protoName(k), port: Self.portText(k), verdict: e.deny ? "deny" : "allow",
                packets: counters?.packets ?? 0, bytes: counters?.bytes ?? 0,
                rule: await engine.origin(e.ruleID)?.description))
        }
        let state = await context?.shared.endpointPolicy.get(id)
        return EndpointPolicyResponse(endpoint: id, ingressEnforced: p.ingressEnforced, egressEnforced: p.egressEnforced,
                                      audit: await engine.audit, revision: state?.revision ?? 0, entries: entries)
    }

    static func protoName(_ k: PolicyMapEntry.Key) -> String {
        if k.prefixLength < UInt8(CILIUM_POLICY_PREFIX_ANY_PORT) { return "ANY" }
        switch k.proto {
        case 6: return "TCP"
        case 17: return "UDP"
        case 132: return "SCTP"
        case 1: return "ICMP"
        default: return String(k.proto)
        }
    }

    static func portText(_ k: PolicyMapEntry.Key) -> String {
        if k.prefixLength <= UInt8(CILIUM_POLICY_PREFIX_ANY_PORT) { return "ANY" }
        let r = k.portRange
        return r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)-\(r.upperBound)"
    }
}

/// Writes policy entries into `cilium_policy`, keeping the counters the
/// datapath has accumulated: an unchanged entry is not rewritten (a periodic
/// refresh leaves it alone), a changed one keeps its packet and byte counts.
package struct PolicyMapOperations: Operations {
    package init(map: BPFMap<policy_key, policy_entry>) { self.map = map }
    package let map: BPFMap<policy_key, policy_entry>

    package func update(_ e: PolicyMapEntry) async throws {
        let k = e.key.mapKey
        var v = e.mapValue
        if let old = map.lookup(k) {
            if old.verdict == v.verdict && old.rule_id == v.rule_id { return }
            v.packets = old.packets
            v.bytes = old.bytes
        }
        try map.update(k, v)
    }

    package func delete(_ e: PolicyMapEntry) async throws {
        _ = try map.delete(e.key.mapKey)
    }

    package func prune(desired: [PolicyMapEntry]) async throws {
        let want = Set(desired.map(\.key))
        for k in map.keys() where !want.contains(PolicyMapEntry.Key(k)) {
            _ = try map.delete(k)
        }
    }
}
