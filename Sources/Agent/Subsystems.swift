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

/// Keys that cannot change while the agent runs: they name where it lives.
let restartOnlyKeys = ["agent.socketPath", "agent.stateDir", "agent.nodeName", "bpf.root", "cluster.name", "cluster.id"]
