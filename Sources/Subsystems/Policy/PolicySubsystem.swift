import API
import CBPF
import Config
import Datapath
import Reconciler

/// Identity-based network policy. This foundation puts the policy stage into
/// the pipeline (slot CILIUM_STAGE_POLICY) while enabled; CiliumNetworkPolicy
/// parsing, resolution and the per-endpoint maps come with the policy issue.
public actor PolicySubsystem: StageSubsystem {
    public nonisolated let name = "policy"
    public nonisolated let dependencies = ["networking"]
    public nonisolated let configKeys = ["policyEnforcementMode", "policyAuditMode"]
    public private(set) var context: SubsystemContext?
    public nonisolated let stage = PipelineStage(object: "policy", program: "cil_stage_policy", slot: CILIUM_STAGE_POLICY)

    public init() {}

    public func configure(_ context: SubsystemContext) { self.context = context }

    public func status() async -> SubsystemStatus {
        let mode = context?.config.policyEnforcementMode.rawValue ?? "default"
        let audit = context?.config.policyAuditMode == true ? ", audit mode" : ""
        let h = await health()
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: "Enforcement: \(mode)\(audit)   Stage: slot \(CILIUM_STAGE_POLICY.rawValue)",
                               details: ["policy rules: not implemented yet (no CiliumNetworkPolicy import); the stage passes all traffic"])
    }
}
