import AgentModel
import API
import CBPF
import Config
import Datapath
import Reconciler

/// Policy for the host endpoint (`hostFirewall.enabled`). This foundation puts
/// the host-firewall stage into the pipeline while enabled; host policies and
/// attachment to the host's devices come with their own issue.
public actor HostFirewallSubsystem: StageSubsystem {
    public nonisolated let name = "hostfirewall"
    public nonisolated let owns = PinOwnership(maps: [], directory: "hostfirewall")
    public nonisolated let dependencies = ["networking"]
    public private(set) var context: SubsystemContext<Section>?
    public nonisolated let stage = PipelineStage(object: "hostfw", program: "cil_stage_hostfw", slot: CILIUM_STAGE_HOSTFW)

    public init() {}

    /// The settings the host firewall reads (`hostFirewall.enabled` switches it; the host reads that).
    public struct Section: Equatable, Sendable {
        /// The host's devices it guards.
        public var devices: [String]
    }

    public static func section(of c: AgentConfig) -> Section { Section(devices: c.devices) }

    public func configure(_ context: SubsystemContext<Section>) { self.context = context }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let devices = context?.section.devices ?? []
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: "Enabled   [\(devices.isEmpty ? "no devices" : devices.joined(separator: ", "))]",
                               details: ["host policies: not implemented yet; the stage passes all traffic"])
    }
}
