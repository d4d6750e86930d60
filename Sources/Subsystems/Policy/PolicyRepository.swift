import Manifests
/// Which rule of which policy an entry (and so a verdict) came from.
public struct RuleOrigin: Codable, Sendable, Hashable {
    public var kind: PolicyKind
    public var namespace: String?
    public var name: String
    /// Index in the policy's rules (`spec` first, then `specs`).
    public var specIndex: Int
    /// "ingress", "ingressDeny", "egress" or "egressDeny".
    public var section: String
    /// Index in that section's list.
    public var ruleIndex: Int

    public init(kind: PolicyKind, namespace: String?, name: String, specIndex: Int, section: String, ruleIndex: Int) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.specIndex = specIndex
        self.section = section
        self.ruleIndex = ruleIndex
    }

    /// "default/allow-web ingress[0]" (with "specs[i]." when the policy has several rules).
    public var description: String {
        let qualified = namespace.map { "\($0)/\(name)" } ?? name
        return "\(qualified) \(specIndex > 0 ? "specs[\(specIndex)]." : "")\(section)[\(ruleIndex)]"
    }
}

/// The policies in force, their revision, and the rule table verdicts refer to.
package struct PolicyRepository: Sendable {
    package init() {}

    /// Peer selectors without a cluster label select this cluster only (nil: any cluster).
    package var localCluster: String?

    package struct Name: Hashable, Sendable, Codable, Comparable {
        package var kind: PolicyKind
        package var namespace: String?
        package var name: String
        package static func < (a: Name, b: Name) -> Bool {
            (a.namespace ?? "", a.name, a.kind.rawValue) < (b.namespace ?? "", b.name, b.kind.rawValue)
        }
    }

    private(set) var policies: [Name: Policy] = [:]
    private(set) var revision: UInt64 = 1
    private(set) var origins: [UInt32: RuleOrigin] = [:]
    private var ruleIDs: [RuleOrigin: UInt32] = [:]
    private var nextRuleID: UInt32 = 1

    package static func name(of p: Policy) -> Name { Name(kind: p.kind, namespace: p.namespace, name: p.name) }

    /// Adds or replaces policies (by kind, namespace and name) in one revision.
    @discardableResult
    package mutating func apply(_ new: [Policy]) -> UInt64 {
        for p in new {
            let n = Self.name(of: p)
            forgetRules(of: n)
            policies[n] = p
        }
        revision += 1
        return revision
    }

    /// Removes matching policies; returns how many.
    package mutating func delete(where matches: (Policy) -> Bool) -> Int {
        let gone = policies.filter { matches($0.value) }.map(\.key)
        for n in gone {
            forgetRules(of: n)
            policies[n] = nil
        }
        if !gone.isEmpty { revision += 1 }
        return gone.count
    }

    package mutating func replaceAll(_ all: [Policy], revision: UInt64) {
        policies = [:]
        for p in all { policies[Self.name(of: p)] = p }
        self.revision = max(self.revision, revision)
    }

    package var sorted: [Policy] { policies.sorted { $0.key < $1.key }.map(\.value) }

    /// The stable id of a rule (the same rule keeps its id until its policy changes).
    package mutating func ruleID(_ origin: RuleOrigin) -> UInt32 {
        if let id = ruleIDs[origin] { return id }
        let id = nextRuleID
        nextRuleID += 1
        ruleIDs[origin] = id
        origins[id] = origin
        return id
    }

    private mutating func forgetRules(of n: Name) {
        for (origin, id) in ruleIDs where origin.kind == n.kind && origin.namespace == n.namespace && origin.name == n.name {
            ruleIDs[origin] = nil
            origins[id] = nil
        }
    }

    package var ruleCount: Int { policies.values.reduce(0) { $0 + $1.specs.count } }
}
