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
    public nonisolated let dependencies = ["networking"]
    public nonisolated let configKeys = ["hostFirewall.", "devices"]
    public private(set) var context: SubsystemContext?
    public nonisolated let stage = PipelineStage(object: "hostfw", program: "cil_stage_hostfw", slot: CILIUM_STAGE_HOSTFW)

    public init() {}

    public func configure(_ context: SubsystemContext) { self.context = context }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let devices = context?.config.devices ?? []
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: "Enabled   [\(devices.isEmpty ? "no devices" : devices.joined(separator: ", "))]",
                               details: ["host policies: not implemented yet; the stage passes all traffic"])
    }
}
