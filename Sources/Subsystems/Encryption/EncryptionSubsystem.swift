import AgentModel
import API
import CBPF
import Config
import Datapath
import Reconciler

/// Transparent encryption (`encryption.enabled`, `encryption.type`). This
/// foundation puts the encryption stage into the pipeline while enabled and
/// says what the kernel can do: no in-kernel WireGuard (wireguard-go is the
/// way here) and no ESP (IPsec cannot run on this kernel).
public actor EncryptionSubsystem: StageSubsystem {
    public nonisolated let name = "encryption"
    public nonisolated let owns = PinOwnership(maps: [], directory: "encryption")
    public nonisolated let dependencies = ["networking"]
    public private(set) var context: SubsystemContext<Section>?
    public nonisolated let stage = PipelineStage(object: "encrypt", program: "cil_stage_encrypt", slot: CILIUM_STAGE_ENCRYPT)

    public init() {}

    /// The settings Encryption reads (`encryption.enabled` switches it; the host reads that).
    public struct Section: Equatable, Sendable {
        public var type: EncryptionType
        public var nodeEncryption: Bool
    }

    public static func section(of c: AgentConfig) -> Section {
        Section(type: c.encryption.type, nodeEncryption: c.encryption.nodeEncryption)
    }

    public func configure(_ context: SubsystemContext<Section>) { self.context = context }

    public func health() async -> Health {
        let h = await stage.health
        guard h.state == .ok else { return h }
        if context?.section.type == .ipsec {
            return Health(.degraded, "IPsec needs ESP transforms, which this kernel lacks; traffic is not encrypted")
        }
        return Health(.degraded, "WireGuard devices and peers not implemented yet; traffic is not encrypted")
    }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let type = context?.section.type == .ipsec ? "IPsec" : "Wireguard"
        return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                               summary: "\(type)   [not encrypting: \(h.message)]",
                               details: ["node encryption (traffic between nodes' own addresses): "
                                         + (context?.section.nodeEncryption == true ? "requested, not implemented yet" : "off")])
    }
}
