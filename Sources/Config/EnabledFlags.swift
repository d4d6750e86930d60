/// Which setting turns a subsystem on.
public struct SubsystemFlag: Sendable {
    /// Subsystem name: networking, policy, loadbalancer, hostfirewall, encryption, clustermesh, hubble.
    public let subsystem: String
    /// The schema key that switches it; nil when the subsystem is always on.
    public let key: String?
    /// Other keys that switch it too (upstream's spelling of the same switch).
    public let aliases: [String]
    /// The rule in words.
    public let rule: String
    private let predicate: @Sendable (AgentConfig) -> Bool

    init(_ subsystem: String, _ key: String?, aliases: [String] = [], _ rule: String, _ predicate: @escaping @Sendable (AgentConfig) -> Bool) {
        self.subsystem = subsystem
        self.key = key
        self.aliases = aliases
        self.rule = rule
        self.predicate = predicate
    }

    /// Every key that switches it.
    public var keys: [String] { (key.map { [$0] } ?? []) + aliases }

    public func isEnabled(in config: AgentConfig) -> Bool { predicate(config) }
}

/// Subsystem names and the flag key that enables each, in start order.
public let enabledFlags: [SubsystemFlag] = [
    SubsystemFlag("networking", nil, "always on") { _ in true },
    SubsystemFlag("policy", "policyEnforcementMode", "on unless policyEnforcementMode is never") {
        $0.policyEnforcementMode != .never
    },
    SubsystemFlag("loadbalancer", "kubeProxyReplacement", "on when kubeProxyReplacement is true") {
        $0.kubeProxyReplacement
    },
    SubsystemFlag("hostfirewall", "hostFirewall.enabled", "on when hostFirewall.enabled is true") {
        $0.hostFirewall.enabled
    },
    SubsystemFlag("encryption", "encryption.enabled", "on when encryption.enabled is true") {
        $0.encryption.enabled
    },
    SubsystemFlag("clustermesh", "clustermesh.enabled", aliases: ["clustermesh.config.enabled"], "on when clustermesh.enabled (or upstream's clustermesh.config.enabled) is true") {
        $0.clustermesh.on
    },
    SubsystemFlag("hubble", "hubble.enabled", "on when hubble.enabled is true") { $0.hubble.enabled },
]
