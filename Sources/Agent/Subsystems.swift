import AgentModel
import Config
import API
import Config
import Networking
#if canImport(ClusterMesh)
import ClusterMesh
#endif
#if canImport(Encryption)
import Encryption
#endif
#if canImport(HostFirewall)
import HostFirewall
#endif
#if canImport(Hubble)
import Hubble
#endif
#if canImport(LoadBalancer)
import LoadBalancer
#endif
#if canImport(Policy)
import Policy
#endif

/// Every subsystem the agent knows, in registration order. Networking is the
/// base; each other one is here only when its module is in the package, so
/// removing it from Package.swift leaves the rest building and running
/// (`scripts/check-modularity.sh`).
func allSubsystems() -> [any AgentSubsystem] {
    var all: [any AgentSubsystem] = [NetworkingSubsystem()]
    #if canImport(LoadBalancer)
    all.append(LoadBalancerSubsystem())
    #endif
    #if canImport(Policy)
    all.append(PolicySubsystem())
    #endif
    #if canImport(HostFirewall)
    all.append(HostFirewallSubsystem())
    #endif
    #if canImport(Encryption)
    all.append(EncryptionSubsystem())
    #endif
    #if canImport(ClusterMesh)
    all.append(ClusterMeshSubsystem())
    #endif
    #if canImport(Hubble)
    all.append(HubbleSubsystem())
    #endif
    return all
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
    // The servers keep their limits for their lifetime (Hubble's follow the agent's).
    "agent.http.maxConnections": .needsAgentRestart,
    "agent.http.headerTimeoutSeconds": .needsAgentRestart,
    "agent.http.idleTimeoutSeconds": .needsAgentRestart,
    "agent.http.maxHeadBytes": .needsAgentRestart,
    "agent.http.maxBodyBytes": .needsAgentRestart,
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
