import Manifests
import API
import CBPF

/// `cilium policy trace`: the verdict the datapath would reach for traffic
/// from one label set to another, computed the way the stage decides (two
/// longest-prefix lookups, deny first, then allow, then the default).
struct PolicyTrace {
    var resolver: PolicyResolver
    let origins: [UInt32: RuleOrigin]
    /// cluster.name: workloads carry it as io.cilium.k8s.policy.cluster, and so do traced label sets.
    var clusterName = "default"

    struct Decision {
        var verdict: String
        var reason: String
        var rule: String?
        var allowed: Bool
    }

    /// Labels as the agent gives them to workloads: "k8s:" by default, the default namespace
    /// unless one is named, and the cluster's name unless one is named (reserved and CIDR
    /// labels stay alone).
    static func workloadLabels(_ labels: [String], clusterName: String = "default") -> [String] {
        let normalized = labels.map { l -> String in
            let (k, v) = LabelSet.split(l)
            return v.isEmpty && k.hasPrefix("reserved:") ? k : "\(k)=\(v)"
        }
        if normalized.isEmpty || normalized.contains(where: { $0.hasPrefix("reserved:") || $0.hasPrefix("cidr:") }) {
            return normalized
        }
        var out = normalized
        for (key, value) in [(LabelSelector.namespaceKey, "default"), ("io.cilium.k8s.policy.cluster", clusterName)]
        where !normalized.contains(where: { $0.hasPrefix("k8s:\(key)=") }) {
            out.append("k8s:\(key)=\(value)")
        }
        return out
    }

    func run(_ req: PolicyTraceRequest) -> PolicyTraceResponse {
        var r = resolver
        let src = Self.workloadLabels(req.sourceLabels, clusterName: clusterName)
        let dst = Self.workloadLabels(req.destinationLabels, clusterName: clusterName)
        let srcID = identity(for: src, in: &r, temporary: 0xFFFF_FFF0)
        let dstID = identity(for: dst, in: &r, temporary: 0xFFFF_FFF1)
        let proto: UInt8 = switch req.proto.uppercased() {
        case "UDP": 17
        case "SCTP": 132
        case "ICMP": 1
        default: 6
        }
        let egress = r.compute(endpoint: 0, labels: LabelSet(src)).0
        let ingress = r.compute(endpoint: 0, labels: LabelSet(dst)).0
        let e = decide(egress, direction: CILIUM_DIR_EGRESS, peer: dstID, proto: proto, port: req.port, what: "source")
        let i = decide(ingress, direction: CILIUM_DIR_INGRESS, peer: srcID, proto: proto, port: req.port, what: "destination")
        let steps = [
            PolicyTraceResponse.Step(direction: "egress", verdict: e.verdict, reason: e.reason, rule: e.rule),
            PolicyTraceResponse.Step(direction: "ingress", verdict: i.verdict, reason: i.reason, rule: i.rule),
        ]
        return PolicyTraceResponse(steps: steps, verdict: e.allowed && i.allowed ? "ALLOWED" : "DENIED")
    }

    /// The identity that has exactly these labels, or a temporary one.
    private func identity(for labels: [String], in r: inout PolicyResolver, temporary: UInt32) -> UInt32 {
        let set = LabelSet(labels)
        if let id = r.identities.first(where: { $0.value == set })?.key { return id }
        if labels == ["reserved:world"] { return 2 }
        _ = r.upsertIdentity(temporary, labels: labels)
        return temporary
    }

    func decide(_ policy: EndpointPolicy, endpoint: UInt16 = 0, direction: cilium_direction, peer: UInt32, proto: UInt8,
                port: UInt16, what: String) -> Decision {
        let dir = UInt8(direction.rawValue)
        let enforced = direction == CILIUM_DIR_INGRESS ? policy.ingressEnforced : policy.egressEnforced
        func longest(_ identity: UInt32) -> PolicyMapEntry? {
            let probe = PolicyMapEntry.Key(endpoint: endpoint, direction: dir, identity: identity, proto: proto,
                                           prefixLength: UInt8(CILIUM_POLICY_PREFIX_FULL), port: port)
            return policy.entries.values.filter { $0.key.covers(probe) }.max { $0.key.prefixLength < $1.key.prefixLength }
        }
        let exact = longest(peer), any = longest(0)
        let audit = resolver.audit
        func denied(_ reason: String, _ rule: String?) -> Decision {
            Decision(verdict: audit ? "AUDIT" : "DENIED", reason: reason, rule: rule, allowed: audit)
        }
        if let d = [exact, any].compactMap({ $0 }).first(where: \.deny) {
            let o = origins[d.ruleID]?.description
            return denied("denied by \(o ?? "rule \(d.ruleID)")", o)
        }
        if let a = exact ?? any {
            let o = origins[a.ruleID]?.description
            return Decision(verdict: "ALLOWED", reason: "allowed by \(o ?? "rule \(a.ruleID)")", rule: o, allowed: true)
        }
        if enforced { return denied("default deny: policy selects the \(what) for \(direction == CILIUM_DIR_INGRESS ? "ingress" : "egress") and no rule allows this", nil) }
        return Decision(verdict: "ALLOWED", reason: "no policy selects the \(what) for \(direction == CILIUM_DIR_INGRESS ? "ingress" : "egress")", rule: nil, allowed: true)
    }
}
