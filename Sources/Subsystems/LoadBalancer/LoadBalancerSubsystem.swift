import API
import CBPF
import Config
import Datapath
import Reconciler

/// kube-proxy replacement (`kubeProxyReplacement: true`). This foundation puts
/// the LB stage into the pipeline while enabled; services, backends, Maglev,
/// socket LB and DSR come with the load-balancer issue.
public actor LoadBalancerSubsystem: StageSubsystem {
    public nonisolated let name = "loadbalancer"
    public nonisolated let dependencies = ["networking"]
    public nonisolated let configKeys = ["kubeProxyReplacement", "loadBalancer.", "maglev."]
    public private(set) var context: SubsystemContext?
    public nonisolated let stage = PipelineStage(object: "lb", program: "cil_stage_lb", slot: CILIUM_STAGE_LB)

    public init() {}

    public func configure(_ context: SubsystemContext) { self.context = context }

    public func status() async -> SubsystemStatus {
        let h = await health()
        var details: [String] = []
        if let c = context?.config {
            details.append("Mode: \(c.loadBalancer.mode.rawValue.uppercased())")
            if c.loadBalancer.algorithm == .maglev {
                details.append("Backend Selection: Maglev (Table Size: \(c.maglev.tableSize))")
            } else {
                details.append("Backend Selection: Random")
            }
            details.append("XDP Acceleration: \(c.loadBalancer.acceleration.rawValue.capitalized)")
        }
        details.append("Services: none (service import not implemented yet; the stage passes all traffic)")
        return SubsystemStatus(enabled: true, state: h.state, message: h.message, summary: "True", details: details)
    }
}
