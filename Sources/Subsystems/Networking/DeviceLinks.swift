import Datapath
import LinuxNet
import Foundation
import Glibc
import Reconciler

/// One entry program on one direction of a device: one of the node's own
/// devices (`devices`) or an endpoint's host-side veth.
public struct DeviceAttachment: TableObject, Equatable {
    public enum Role: String, Sendable { case netdev, endpoint, overlay }
    public var device: String
    public var direction: TCDirection
    public var role: Role
    /// Also the pin's file name: bpffs refuses names with '.', which device
    /// names (VLANs: eth0.100) may have.
    public var key: String { "\(direction.rawValue)-\(device.replacingOccurrences(of: ".", with: ":"))" }

    public init(device: String, direction: TCDirection, role: Role = .netdev) {
        self.device = device
        self.direction = direction
        self.role = role
    }
}

/// Attaches the entry programs to the node's devices with pinned TCX links
/// (`<bpf root>/networking/links/<direction>-<device>`: a directory only Networking
/// writes, so its prune never meets another subsystem's links, such as the
/// LoadBalancer's socket-LB and XDP links under `<bpf root>/links`). A link pinned by
/// an earlier agent is adopted and its program swapped in one step, so forwarding
/// never stops; prune detaches links of devices no longer configured.
public struct DeviceLinkOperations: Operations {
    public typealias Object = DeviceAttachment
    let fromNetdev: BPFProgram
    let toNetdev: BPFProgram
    let fromContainer: BPFProgram
    let toContainer: BPFProgram
    let fromOverlay: BPFProgram
    let linkDirectory: String

    init(entry: BPFObject, bpfRoot: String) async throws {
        fromNetdev = try await entry.program("cil_from_netdev")
        toNetdev = try await entry.program("cil_to_netdev")
        fromContainer = try await entry.program("cil_from_container")
        toContainer = try await entry.program("cil_to_container")
        fromOverlay = try await entry.program("cil_from_overlay")
        self.linkDirectory = Self.linkDirectory(bpfRoot)
        try BPFFS.makeDirectories(linkDirectory)
        // Agents before this layout pinned device links straight under `<bpf root>/links`,
        // beside the LoadBalancer's; an upgraded agent adopts them.
        BPFFS.adoptPins(from: bpfRoot + "/links", prefixes: [TCDirection.ingress.rawValue + "-", TCDirection.egress.rawValue + "-"],
                        into: linkDirectory)
    }

    static func linkDirectory(_ bpfRoot: String) -> String { NetworkingSubsystem.ownership.links(bpfRoot: bpfRoot) }

    func pinPath(_ a: DeviceAttachment) -> String { "\(linkDirectory)/\(a.key)" }

    public func update(_ a: DeviceAttachment) async throws {
        let netlink = try Netlink()
        guard let link = try netlink.link(.name(a.device)) else {
            throw SubsystemError(a.role == .netdev
                ? "device \(a.device) not found in this node's network namespace (check `devices` in the config)"
                : "\(a.role.rawValue) interface \(a.device) not found in this node's network namespace")
        }
        let program = switch (a.role, a.direction) {
        case (.netdev, .ingress): fromNetdev
        case (.netdev, .egress): toNetdev
        case (.endpoint, .ingress): fromContainer
        case (.endpoint, .egress): toContainer
        case (.overlay, _): fromOverlay
        }
        _ = try Attach.tcx(program, ifindex: link.index, direction: a.direction, pinPath: pinPath(a))
    }

    public func delete(_ a: DeviceAttachment) async throws {
        detach(pinPath(a))
    }

    public func prune(desired: [DeviceAttachment]) async throws {
        let keep = Set(desired.map(\.key))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: linkDirectory)) ?? [] where !keep.contains(name) {
            detach(linkDirectory + "/" + name)
        }
    }

    private func detach(_ pin: String) {
        BPFLink.openPinned(pin)?.detach()
        unlink(pin)
    }
}
