import Manifests
import CBPF
import Datapath
import LinuxNet

extension PolicyRepository {
    /// Every policy's rules in resolver form, with rule ids assigned, and the
    /// CIDR prefixes the rules name (they get CIDR identities in the ipcache).
    package mutating func compile() -> (specs: [CompiledSpec], cidrs: Set<IPv4Prefix>) {
        var specs: [CompiledSpec] = []
        var cidrs = Set<IPv4Prefix>()
        for policy in sorted {
            for (i, spec) in policy.specs.enumerated() {
                var rules: [CompiledRule] = []
                let sections: [(String, [PeerRule]?, cilium_direction, Bool)] = [
                    ("ingressDeny", spec.ingressDeny, CILIUM_DIR_INGRESS, true),
                    ("egressDeny", spec.egressDeny, CILIUM_DIR_EGRESS, true),
                    ("ingress", spec.ingress, CILIUM_DIR_INGRESS, false),
                    ("egress", spec.egress, CILIUM_DIR_EGRESS, false),
                ]
                for (section, list, direction, deny) in sections {
                    for (j, rule) in (list ?? []).enumerated() {
                        let origin = RuleOrigin(kind: policy.kind, namespace: policy.namespace, name: policy.name,
                                                specIndex: i, section: section, ruleIndex: j)
                        var compiled = Self.compile(rule, namespace: policy.namespace, direction: UInt8(direction.rawValue), deny: deny,
                                                    localCluster: localCluster)
                        compiled.ruleID = ruleID(origin)
                        rules.append(compiled)
                        for c in rule.cidrs {
                            guard let net = IPv4Prefix(c.cidr)?.network else { continue }
                            cidrs.insert(net)
                            for e in c.except { if let p = IPv4Prefix(e)?.network { cidrs.insert(p) } }
                        }
                    }
                }
                let hasIngress = (spec.ingress?.count ?? 0) + (spec.ingressDeny?.count ?? 0) > 0
                let hasEgress = (spec.egress?.count ?? 0) + (spec.egressDeny?.count ?? 0) > 0
                specs.append(CompiledSpec(selector: spec.endpointSelector.scoped(to: policy.namespace),
                                          ingressDefaultDeny: hasIngress && spec.defaultDenyIngress != false,
                                          egressDefaultDeny: hasEgress && spec.defaultDenyEgress != false,
                                          rules: rules))
            }
        }
        cidrs.remove(.default) // 0.0.0.0/0 is the world identity
        return (specs, cidrs)
    }

    /// `localCluster`: with clustermesh.policyDefaultLocalCluster, a peer selector that does not name
    /// io.cilium.k8s.policy.cluster selects this cluster's endpoints only (upstream's default since 1.18).
    package static func compile(_ rule: PeerRule, namespace: String?, direction: UInt8, deny: Bool,
                                localCluster: String? = nil) -> CompiledRule {
        var peers: [PeerSelector]?
        if !rule.selectsAnyPeer {
            var p: [PeerSelector] = (rule.endpoints ?? []).map { .endpoints($0.scoped(to: namespace).scoped(toCluster: localCluster)) }
            p += rule.entities.map { .entity($0) }
            p += rule.cidrs.compactMap { c in
                IPv4Prefix(c.cidr).map { .cidr(network: $0.network, except: c.except.compactMap { IPv4Prefix($0)?.network }) }
            }
            peers = p
        }
        var l4: [(proto: UInt8, prefixLength: UInt8, port: UInt16)] = []
        var named: [NamedPortRef] = []
        for p in rule.ports {
            let protos: [L4Protocol] = p.proto == .any ? [.tcp, .udp, .sctp] : [p.proto]
            if let name = p.name {
                named.append(NamedPortRef(name: name, protocols: protos.map(\.number)))
                continue
            }
            for proto in protos {
                if p.port == 0 {
                    l4.append((proto.number, UInt8(CILIUM_POLICY_PREFIX_ANY_PORT), 0))
                } else {
                    for b in portBlocks(p.port...max(p.port, p.endPort ?? p.port)) {
                        l4.append((proto.number, UInt8(80 + b.bits), b.port))
                    }
                }
            }
        }
        for f in rule.icmps where f.family == "IPv4" {
            l4.append((1, UInt8(CILIUM_POLICY_PREFIX_FULL), UInt16(f.type)))
        }
        let hadL4 = !rule.ports.isEmpty || !rule.icmps.isEmpty
        let empty = (rule.selectsAnyPeer && !hadL4) || (hadL4 && l4.isEmpty && named.isEmpty)
        return CompiledRule(ruleID: 0, direction: direction, deny: deny, peers: peers, l4: l4, named: named, empty: empty)
    }
}
