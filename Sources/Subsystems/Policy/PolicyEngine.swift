import AgentModel
import Manifests
import API
import CBPF
import Datapath
import LinuxNet
import Foundation
import Reconciler

/// Owns the policy repository and the resolver and turns every change of
/// policies, identities or endpoints into changes of the desired tables
/// (policy map entries, per-endpoint flags, CIDR prefixes in the ipcache),
/// which reconcilers carry into the BPF maps.
actor PolicyEngine {
    struct Persisted: Codable {
        var revision: UInt64
        var policies: [Policy]
        var sources: [String: String]? // qualified name -> source
    }

    let entries = StateTable<PolicyMapEntry>(name: "policy-entries")
    let flags = StateTable<EndpointPolicyFlags>(name: "policy-endpoints")
    private let shared: SharedState
    private var repository = PolicyRepository()
    private var resolver = PolicyResolver()
    /// Where each policy came from ("api" or a resource-directory file).
    private var sources: [PolicyRepository.Name: String] = [:]
    private var cidrIdentity: [IPv4Prefix: UInt32] = [:]
    private var nextCIDRIdentity = IdentityScope.firstLocal
    private let state: JSONState<Persisted>?
    private(set) var lastError: String?

    init(shared: SharedState, stateFile: String?, mode: PolicyResolver.Mode, audit: Bool, localCluster: String? = nil,
         clusterName: String? = nil) throws {
        self.shared = shared
        repository.localCluster = localCluster
        resolver.clusterName = clusterName
        state = stateFile.map { JSONState(path: $0) }
        resolver.mode = mode
        resolver.audit = audit
        if let saved = try state?.load() {
            repository.replaceAll(saved.policies, revision: saved.revision)
            for p in saved.policies {
                sources[PolicyRepository.name(of: p)] = saved.sources?[p.qualifiedName + "|" + p.kind.rawValue] ?? "api"
            }
        }
    }

    // MARK: policies

    /// Resolves the persisted policies (at start).
    func load() async { await recompile() }

    /// Adds or replaces `policies`; with `replacingSource`, policies that came
    /// from that source before and are not in `policies` go.
    func apply(_ policies: [Policy], source: String, replacingSource: Bool = false) async -> UInt64 {
        if replacingSource {
            let names = Set(policies.map(PolicyRepository.name(of:)))
            _ = repository.delete { sources[PolicyRepository.name(of: $0)] == source && !names.contains(PolicyRepository.name(of: $0)) }
        }
        repository.apply(policies)
        for p in policies { sources[PolicyRepository.name(of: p)] = source }
        await recompile()
        return repository.revision
    }

    func delete(name: String?, namespace: String?) async -> (UInt64, Int) {
        let n = repository.delete { p in
            guard let name else { return true }
            return p.name == name && (namespace == nil || p.namespace == namespace)
        }
        sources = sources.filter { repository.policies[$0.key] != nil }
        if n > 0 { await recompile() }
        return (repository.revision, n)
    }

    func list() -> (UInt64, [(Policy, String)]) {
        (repository.revision, repository.sorted.map { ($0, sources[PolicyRepository.name(of: $0)] ?? "api") })
    }

    func setMode(_ mode: PolicyResolver.Mode, audit: Bool) async {
        guard mode != resolver.mode || audit != resolver.audit else { return }
        await applyDelta(resolver.setMode(mode, audit: audit))
    }

    private func recompile() async {
        let (specs, cidrs) = repository.compile()
        resolver.revision = UInt32(truncatingIfNeeded: repository.revision)
        await syncCIDRIdentities(cidrs)
        await applyDelta(resolver.setSpecs(specs))
        // Every endpoint now implements this revision (changed entries or not).
        for (id, p) in resolver.computed {
            await shared.endpointPolicy.upsert(EndpointPolicyState(endpointID: id, ingressEnforced: p.ingressEnforced,
                                                                   egressEnforced: p.egressEnforced, revision: repository.revision))
        }
        // A rule keeps the revision it arrived in (ids are stable while their policy is unchanged).
        let known = Dictionary(uniqueKeysWithValues: await shared.policyRules.all().map { ($0.id, $0.revision) })
        await shared.policyRules.replaceChanged(repository.origins.map { id, o in
            PolicyRuleRecord(id: id, kind: o.kind.rawValue, namespace: o.namespace, name: o.name,
                             revision: known[id] ?? repository.revision)
        })
        persist()
    }

    /// CIDR prefixes named by rules get node-local identities, in the ipcache
    /// unless the prefix is already there for something else (a pod, a node).
    private func syncCIDRIdentities(_ wanted: Set<IPv4Prefix>) async {
        for (prefix, id) in cidrIdentity where !wanted.contains(prefix) {
            cidrIdentity[prefix] = nil
            if await shared.ipcache.get(prefix)?.identity == id { await shared.ipcache.delete(key: prefix) }
            await shared.identities.delete(key: id)
            await applyDelta(resolver.removeIdentity(id))
        }
        for prefix in wanted.sorted(by: { $0.description < $1.description }) where cidrIdentity[prefix] == nil {
            if let existing = await shared.ipcache.get(prefix), existing.identity < IdentityScope.firstLocal { continue }
            let id = nextCIDRIdentity
            nextCIDRIdentity += 1
            cidrIdentity[prefix] = id
            let labels = ["cidr:\(prefix)", "reserved:world"]
            await applyDelta(resolver.upsertIdentity(id, labels: labels, cidr: prefix))
            await shared.identities.upsert(IdentityRecord(id: id, labels: labels))
            await shared.ipcache.upsert(IPCacheEntry(prefix: prefix, identity: id))
        }
    }

    // MARK: identities and endpoints

    func identityChanged(_ change: Change<IdentityRecord>) async {
        switch change {
        case .upsert(let r, _):
            if r.id >= IdentityScope.firstLocal { return } // ours (CIDR), already known
            await applyDelta(resolver.upsertIdentity(r.id, labels: r.labels))
        case .delete(let r, _):
            if r.id >= IdentityScope.firstLocal { return }
            await applyDelta(resolver.removeIdentity(r.id))
        }
    }

    func endpointChanged(_ change: Change<EndpointRecord>) async {
        switch change {
        case .upsert(let ep, _):
            // The endpoint's own identity first: a rule may select its peers by it.
            if await shared.identities.get(ep.identity) == nil {
                await applyDelta(resolver.upsertIdentity(ep.identity, labels: ep.labels))
            }
            await applyDelta(resolver.upsertEndpoint(ep.id, labels: ep.labels, namedPorts: ep.namedPorts ?? []))
        case .delete(let ep, _):
            await applyDelta(resolver.removeEndpoint(ep.id))
            await shared.endpointPolicy.delete(key: ep.id)
        }
    }

    /// While the cluster's identities are not listed yet (a restart), the entries the last agent
    /// left stay in the map (nothing is pruned) and each endpoint's flags say "look entries up"
    /// in both directions: an entry for an identity not known yet still decides.
    private var holding = false
    /// The flags as computed, whatever `holding` writes.
    private var exactFlags: [UInt16: EndpointPolicyFlags] = [:]

    func hold(until source: String) async {
        holding = true
        await entries.registerInitializer(source)
    }

    /// The identities are listed and resolved: exact flags, and the stale entries may go.
    func release(_ source: String) async {
        guard holding else { return }
        holding = false
        await flags.upsert(contentsOf: Array(exactFlags.values))
        await entries.markInitialized(source)
    }

    static let lookEverythingUp = CILIUM_POLICY_F_INGRESS_ENTRIES.rawValue | CILIUM_POLICY_F_EGRESS_ENTRIES.rawValue
        | CILIUM_POLICY_F_INGRESS_ANY.rawValue | CILIUM_POLICY_F_EGRESS_ANY.rawValue

    private func applyDelta(_ d: PolicyDelta) async {
        guard !d.isEmpty else { return }
        if !d.deletes.isEmpty { await entries.delete(keys: d.deletes) }
        if !d.upserts.isEmpty { await entries.upsert(contentsOf: d.upserts) }
        for k in d.flagDeletes { exactFlags[k] = nil }
        for f in d.flags { exactFlags[f.endpoint] = f }
        if !d.flagDeletes.isEmpty { await flags.delete(keys: d.flagDeletes) }
        if !d.flags.isEmpty {
            await flags.upsert(contentsOf: holding ? d.flags.map { var f = $0; f.flags |= Self.lookEverythingUp; return f } : d.flags)
        }
        for f in d.flags {
            await shared.endpointPolicy.upsert(EndpointPolicyState(
                endpointID: f.endpoint, ingressEnforced: f.flags & CILIUM_POLICY_F_INGRESS.rawValue != 0,
                egressEnforced: f.flags & CILIUM_POLICY_F_EGRESS.rawValue != 0, revision: repository.revision))
        }
    }

    private func persist() {
        guard let state else { return }
        var src: [String: String] = [:]
        for p in repository.sorted { src[p.qualifiedName + "|" + p.kind.rawValue] = sources[PolicyRepository.name(of: p)] }
        let saved = Persisted(revision: repository.revision, policies: repository.sorted, sources: src)
        do {
            try state.save(saved)
        } catch {
            lastError = "cannot save policies to \(state.path): \(error)"
        }
    }

    // MARK: queries

    var summary: (policies: Int, rules: Int, revision: UInt64, endpoints: Int, enforcedIngress: Int, enforcedEgress: Int, entries: Int) {
        let c = resolver.computed.values
        return (repository.policies.count, repository.ruleCount, repository.revision, c.count,
                c.filter(\.ingressEnforced).count, c.filter(\.egressEnforced).count, c.reduce(0) { $0 + $1.entries.count })
    }

    func origin(_ ruleID: UInt32) -> RuleOrigin? { repository.origins[ruleID] }

    func labels(of identity: UInt32) -> [String] {
        guard let set = resolver.identities[identity] else { return [] }
        return set.values.filter { !$0.key.hasPrefix("any:") }.flatMap { k, vs in vs.map { $0.isEmpty ? k : "\(k)=\($0)" } }.sorted()
    }

    func endpointPolicy(_ id: UInt16) -> EndpointPolicy? { resolver.computed[id] }

    var audit: Bool { resolver.audit }

    /// What policy decides for traffic between two label sets, without traffic.
    func trace(_ req: PolicyTraceRequest, clusterName: String) -> PolicyTraceResponse {
        PolicyTrace(resolver: resolver, origins: repository.origins, clusterName: clusterName).run(req)
    }
}
