import API
import Manifests
import CBPF
import Datapath
import LinuxNet

/// A set of peers a rule names, cached with the identities it selects.
package enum PeerSelector: Hashable, Sendable {
    /// fromEndpoints/toEndpoints (already scoped to the policy's namespace).
    case endpoints(LabelSelector)
    case entity(PolicyEntity)
    case cidr(network: IPv4Prefix, except: [IPv4Prefix])
}

/// Identity numbering facts (Cilium's).
package enum IdentityScope {
    package static let world: UInt32 = 2
    package static let reservedCluster: Set<UInt32> = [1, 3, 4, 5, 6, 7, 8]
    package static let firstCluster: UInt32 = 256
    /// Node-local identities (CIDR identities) start here, as upstream's local scope.
    package static let firstLocal = UInt32(CILIUM_IDENTITY_LOCAL_SCOPE.rawValue)
}

/// One allow or deny rule after compilation: peers (nil = any peer) and the
/// protocol/port blocks it covers (empty = every protocol and port).
package struct CompiledRule: Sendable {
    package var ruleID: UInt32
    package var direction: UInt8
    package var deny: Bool
    package var peers: [PeerSelector]?
    package var l4: [(proto: UInt8, prefixLength: UInt8, port: UInt16)]
    /// Ports named by the pod (ingress rules): each selected endpoint's own named ports give the numbers.
    package var named: [NamedPortRef] = []
    /// `{}`: a rule that names nothing allows (or denies) nothing.
    package var empty: Bool
}

/// A port named in a rule, with the protocols the rule allows it for.
package struct NamedPortRef: Sendable, Hashable {
    package var name: String
    package var protocols: [UInt8]
}

/// A policy rule with the endpoints it selects and the rules it brings.
package struct CompiledSpec: Sendable {
    package var selector: LabelSelector
    package var ingressDefaultDeny: Bool
    package var egressDefaultDeny: Bool
    package var rules: [CompiledRule]
}

/// The computed policy of one endpoint.
package struct EndpointPolicy: Sendable, Equatable {
    package var entries: [PolicyMapEntry.Key: PolicyMapEntry]
    package var ingressEnforced: Bool
    package var egressEnforced: Bool
    package var flags: UInt32
}

/// What to change in the tables after an input changed.
package struct PolicyDelta: Sendable {
    package var upserts: [PolicyMapEntry] = []
    package var deletes: [PolicyMapEntry.Key] = []
    package var flags: [EndpointPolicyFlags] = []
    package var flagDeletes: [UInt16] = []
    package var recomputedEndpoints = 0

    package var isEmpty: Bool { upserts.isEmpty && deletes.isEmpty && flags.isEmpty && flagDeletes.isEmpty }
}

/// Policy resolution: policies x identities x endpoints -> policy map entries.
/// Incremental: every distinct peer selection keeps the set of identities it
/// selects; a new identity is tested against each selection once, and only
/// endpoints whose rules use a changed selection are recomputed. Results are
/// diffed per endpoint, so only entries that change reach the map.
package struct PolicyResolver: Sendable {
    package init() {}

    package enum Mode: String, Sendable { case `default`, always, never }

    package var mode: Mode = .default
    package var audit = false
    /// This cluster's name: the `cluster` entity is this cluster's endpoints, not a remote cluster's of the mesh
    /// (an identity labelled io.cilium.k8s.policy.cluster with another name).
    package var clusterName: String?

    private(set) var specs: [CompiledSpec] = []
    private(set) var identities: [UInt32: LabelSet] = [:]
    private var index: [String: Set<UInt32>] = [:]
    private(set) var cidrIdentities: [UInt32: IPv4Prefix] = [:]
    private(set) var selections: [PeerSelector: Set<UInt32>] = [:]
    private(set) var endpoints: [UInt16: LabelSet] = [:]
    /// Each endpoint's named container ports (for rules that name a port).
    private(set) var namedPortsOf: [UInt16: [NamedPort]] = [:]
    private(set) var computed: [UInt16: EndpointPolicy] = [:]
    private var selectorsOfEndpoint: [UInt16: Set<PeerSelector>] = [:]
    package var revision: UInt32 = 0

    // MARK: inputs

    /// Replaces the compiled policy; every endpoint is recomputed.
    package mutating func setSpecs(_ new: [CompiledSpec]) -> PolicyDelta {
        specs = new
        var used = Set<PeerSelector>()
        for s in specs { for r in s.rules { for p in r.peers ?? [] { used.insert(p) } } }
        for p in used where selections[p] == nil { selections[p] = select(p) }
        for p in selections.keys where !used.contains(p) { selections[p] = nil }
        return recompute(Array(endpoints.keys))
    }

    package mutating func setMode(_ mode: Mode, audit: Bool) -> PolicyDelta {
        self.mode = mode
        self.audit = audit
        return recompute(Array(endpoints.keys))
    }

    /// A new or changed identity (or a CIDR identity, with its prefix).
    package mutating func upsertIdentity(_ id: UInt32, labels: [String], cidr: IPv4Prefix? = nil) -> PolicyDelta {
        if let old = identities[id] { for t in old.terms { index[t]?.remove(id) } }
        let set = LabelSet(labels)
        identities[id] = set
        for t in set.terms { index[t, default: []].insert(id) }
        if let cidr { cidrIdentities[id] = cidr }
        var changed = Set<PeerSelector>()
        for (p, ids) in selections {
            let now = selects(p, id)
            if now != ids.contains(id) {
                if now { selections[p]!.insert(id) } else { selections[p]!.remove(id) }
                changed.insert(p)
            }
        }
        return recompute(endpointsUsing(changed))
    }

    package mutating func removeIdentity(_ id: UInt32) -> PolicyDelta {
        guard let old = identities.removeValue(forKey: id) else { return PolicyDelta() }
        for t in old.terms { index[t]?.remove(id) }
        cidrIdentities[id] = nil
        var changed = Set<PeerSelector>()
        for (p, ids) in selections where ids.contains(id) {
            selections[p]!.remove(id)
            changed.insert(p)
        }
        return recompute(endpointsUsing(changed))
    }

    package mutating func upsertEndpoint(_ id: UInt16, labels: [String], namedPorts: [NamedPort] = []) -> PolicyDelta {
        let set = LabelSet(labels)
        if endpoints[id] == set, (namedPortsOf[id] ?? []) == namedPorts, computed[id] != nil { return PolicyDelta() }
        endpoints[id] = set
        namedPortsOf[id] = namedPorts.isEmpty ? nil : namedPorts
        return recompute([id])
    }

    package mutating func removeEndpoint(_ id: UInt16) -> PolicyDelta {
        endpoints[id] = nil
        namedPortsOf[id] = nil
        selectorsOfEndpoint[id] = nil
        guard let old = computed.removeValue(forKey: id) else { return PolicyDelta() }
        return PolicyDelta(deletes: Array(old.entries.keys), flagDeletes: [id])
    }

    // MARK: selection

    private func endpointsUsing(_ changed: Set<PeerSelector>) -> [UInt16] {
        guard !changed.isEmpty else { return [] }
        return selectorsOfEndpoint.filter { !$0.value.isDisjoint(with: changed) }.map(\.key)
    }

    private func isCIDR(_ id: UInt32) -> Bool { id >= IdentityScope.firstLocal }

    private func isRemoteCluster(_ id: UInt32) -> Bool {
        guard let clusterName, let names = identities[id]?.values(of: "k8s:" + LabelSelector.clusterKey) else { return false }
        return !names.contains(clusterName)
    }

    /// Does selection `p` include identity `id`?
    package func selects(_ p: PeerSelector, _ id: UInt32) -> Bool {
        switch p {
        case .endpoints(let sel):
            guard id != IdentityScope.world, !isCIDR(id), let labels = identities[id] else { return false }
            return sel.matches(labels)
        case .entity(let e):
            switch e {
            case .all: return false // the wildcard identity 0, see select()
            case .world, .worldIPv4: return id == IdentityScope.world || isCIDR(id)
            case .cluster:
                return IdentityScope.reservedCluster.contains(id) || (id >= IdentityScope.firstCluster && !isCIDR(id) && !isRemoteCluster(id))
            case .host: return id == 1
            case .remoteNode: return id == 6
            case .`init`: return id == 5
            case .health: return id == 4
            case .unmanaged: return id == 3
            case .kubeAPIServer: return id == 7
            case .ingress: return id == 8
            }
        case .cidr(let network, let except):
            if id == IdentityScope.world { return network.length == 0 }
            guard let prefix = cidrIdentities[id] else { return false }
            return network.covers(prefix) && !except.contains { $0.covers(prefix) }
        }
    }

    /// Every identity selection `p` includes (through the label index when it can).
    package func select(_ p: PeerSelector) -> Set<UInt32> {
        if case .endpoints(let sel) = p, !sel.requiredTerms.isEmpty {
            var candidates: Set<UInt32>?
            for t in sel.requiredTerms.sorted(by: { (index[$0]?.count ?? 0) < (index[$1]?.count ?? 0) }) {
                let ids = index[t] ?? []
                candidates = candidates.map { $0.intersection(ids) } ?? ids
                if candidates!.isEmpty { return [] }
            }
            return (candidates ?? []).filter { selects(p, $0) }
        }
        if case .entity(.all) = p { return [0] }
        return Set(identities.keys.filter { selects(p, $0) })
    }

    // MARK: computation

    /// Recomputes the given endpoints and returns what changed.
    package mutating func recompute(_ ids: [UInt16]) -> PolicyDelta {
        var delta = PolicyDelta()
        for id in ids {
            guard let labels = endpoints[id] else { continue }
            let (policy, used) = compute(endpoint: id, labels: labels)
            selectorsOfEndpoint[id] = used
            let old = computed[id]
            computed[id] = policy
            delta.recomputedEndpoints += 1
            for (k, e) in policy.entries where old?.entries[k] != e { delta.upserts.append(e) }
            if let old { for k in old.entries.keys where policy.entries[k] == nil { delta.deletes.append(k) } }
            if old?.flags != policy.flags || old == nil {
                delta.flags.append(EndpointPolicyFlags(endpoint: id, flags: policy.flags, revision: revision))
            }
        }
        return delta
    }

    /// The entries and flags of one endpoint, and the selections they used.
    package func compute(endpoint: UInt16, labels: LabelSet) -> (EndpointPolicy, Set<PeerSelector>) {
        var ingress = mode == .always, egress = mode == .always
        var entries: [PolicyMapEntry.Key: PolicyMapEntry] = [:]
        var used = Set<PeerSelector>()
        if mode != .never {
            for spec in specs where spec.selector.matches(labels) {
                ingress = ingress || spec.ingressDefaultDeny
                egress = egress || spec.egressDefaultDeny
                for rule in spec.rules where !rule.empty {
                    var ids: Set<UInt32> = [0]
                    if let peers = rule.peers {
                        ids = []
                        for p in peers {
                            used.insert(p)
                            ids.formUnion(selections[p] ?? [])
                        }
                    }
                    var l4 = rule.l4
                    for ref in rule.named {
                        for np in namedPortsOf[endpoint] ?? [] where np.name == ref.name {
                            guard let proto = L4Protocol(rawValue: np.protocol_.uppercased())?.number, ref.protocols.contains(proto) else { continue }
                            l4.append((proto, UInt8(CILIUM_POLICY_PREFIX_FULL), np.port))
                        }
                    }
                    if l4.isEmpty {
                        // A rule of named ports the endpoint does not have covers nothing here.
                        guard rule.named.isEmpty else { continue }
                        l4 = [(UInt8(0), UInt8(CILIUM_POLICY_PREFIX_ANY_PROTO), UInt16(0))]
                    }
                    for identity in ids {
                        for (proto, plen, port) in l4 {
                            let key = PolicyMapEntry.Key(endpoint: endpoint, direction: rule.direction, identity: identity,
                                                         proto: proto, prefixLength: plen, port: port)
                            if let have = entries[key], have.deny || !rule.deny { continue }
                            entries[key] = PolicyMapEntry(key: key, deny: rule.deny, ruleID: rule.ruleID)
                        }
                    }
                }
            }
        }
        Self.resolveDenies(&entries)
        var flags: UInt32 = 0
        if ingress { flags |= CILIUM_POLICY_F_INGRESS.rawValue }
        if egress { flags |= CILIUM_POLICY_F_EGRESS.rawValue }
        if audit { flags |= CILIUM_POLICY_F_AUDIT.rawValue }
        for k in entries.keys {
            let ingress = k.direction == UInt8(CILIUM_DIR_INGRESS.rawValue)
            flags |= ingress ? CILIUM_POLICY_F_INGRESS_ENTRIES.rawValue : CILIUM_POLICY_F_EGRESS_ENTRIES.rawValue
            if k.identity == 0 { flags |= ingress ? CILIUM_POLICY_F_INGRESS_ANY.rawValue : CILIUM_POLICY_F_EGRESS_ANY.rawValue }
        }
        return (EndpointPolicy(entries: entries, ingressEnforced: ingress, egressEnforced: egress, flags: flags), used)
    }

    /// Deny wins over allow. The datapath takes the longest match per identity
    /// and a deny from either lookup; an allow narrower than a deny for the
    /// same identity would be the longest match, so it goes.
    package static func resolveDenies(_ entries: inout [PolicyMapEntry.Key: PolicyMapEntry]) {
        let denies = entries.values.filter(\.deny).map(\.key)
        guard !denies.isEmpty else { return }
        var byGroup: [UInt64: [PolicyMapEntry.Key]] = [:]
        for d in denies { byGroup[group(d), default: []].append(d) }
        for (k, e) in entries where !e.deny {
            if let ds = byGroup[group(k)], ds.contains(where: { $0.covers(k) }) { entries[k] = nil }
        }
    }

    private static func group(_ k: PolicyMapEntry.Key) -> UInt64 {
        UInt64(k.endpoint) << 40 | UInt64(k.direction) << 32 | UInt64(k.identity)
    }
}

extension IPv4Prefix {
    /// True when every address of `other` is inside `self`.
    package func covers(_ other: IPv4Prefix) -> Bool {
        guard other.length >= length else { return false }
        let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << (32 - UInt32(length))
        return other.address.value & mask == address.value & mask
    }
}
