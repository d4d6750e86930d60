import Config
import API
import ClusterMesh
import Encryption
import HostFirewall
import Hubble
import LoadBalancer
import Networking
import Policy

/// Every subsystem the agent knows, in registration order. Deleting one here
/// and in Package.swift leaves the rest building and running.
func allSubsystems() -> [any AgentSubsystem] {
    [
        NetworkingSubsystem(),
        LoadBalancerSubsystem(),
        PolicySubsystem(),
        HostFirewallSubsystem(),
        EncryptionSubsystem(),
        ClusterMeshSubsystem(),
        HubbleSubsystem(),
    ]
}

/// What a live change (`cilium config set`, SIGHUP) does to a setting that
/// no subsystem's section holds. Every other setting is in at least one
/// section (`AgentSubsystem.section(of:)`) and restarts its readers, or is an
/// enable flag (`enabledFlags`) that switches a subsystem on or off.
enum AgentSetting: Equatable {
    /// Names where the agent lives: refused while it runs ("needs an agent restart").
    case needsAgentRestart
    /// The agent itself applies the change (its metrics server).
    case appliedByAgent
}

let agentSettings: [String: AgentSetting] = [
    "agent.socketPath": .needsAgentRestart,
    "agent.stateDir": .needsAgentRestart,
    "agent.nodeName": .needsAgentRestart,
    "bpf.root": .needsAgentRestart,
    // Identities, nodes and the pod CIDR claim are keyed by them.
    "cluster.name": .needsAgentRestart,
    "cluster.id": .needsAgentRestart,
    "prometheus.enabled": .appliedByAgent,
    "prometheus.port": .appliedByAgent,
]

/// What a reload from `old` to `new` does.
struct ReloadPlan: Equatable {
    /// Why it is refused (a setting that needs an agent restart changed), or nil.
    var refusal: String?
    /// Subsystems that stay enabled and whose section changed: they restart, keeping their datapath.
    var restart: [String]
    /// Settings that changed.
    var changed: [String]

    init(from old: AgentConfig, to new: AgentConfig, subsystems: [any AgentSubsystem]) {
        let before = Dictionary(old.flattened().map { ($0.key, $0.value) }, uniquingKeysWith: { x, _ in x })
        changed = new.flattened().filter { before[$0.key] != $0.value }.map(\.key)
        refusal = changed.first { agentSettings[$0] == .needsAgentRestart }.map {
            "\($0) cannot change while the agent runs; restart the agent to change it"
        }
        let stayOn = old.enabledSubsystems.intersection(new.enabledSubsystems)
        restart = subsystems.filter { stayOn.contains($0.name) && $0.sectionChanged(from: old, to: new) }.map(\.name)
    }
}
