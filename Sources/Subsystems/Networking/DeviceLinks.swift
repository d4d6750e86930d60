import Datapath
import Foundation
import Glibc
import Reconciler

/// One entry program on one direction of one of the node's devices.
public struct DeviceAttachment: TableObject, Equatable {
    public var device: String
    public var direction: TCDirection
    /// Also the pin's file name: bpffs refuses names with '.', which device
    /// names (VLANs: eth0.100) may have.
    public var key: String { "\(direction.rawValue)-\(device.replacingOccurrences(of: ".", with: ":"))" }

    public init(device: String, direction: TCDirection) {
        self.device = device
        self.direction = direction
    }
}

/// Attaches the entry programs to the node's devices with pinned TCX links
/// (`<bpf root>/links/<direction>-<device>`). A link pinned by an earlier agent
/// is adopted and its program swapped in one step, so forwarding never stops;
/// prune detaches links of devices no longer configured.
public struct DeviceLinkOperations: Operations {
    public typealias Object = DeviceAttachment
    let fromNetdev: BPFProgram
    let toNetdev: BPFProgram
    let linkDirectory: String

    init(fromNetdev: BPFProgram, toNetdev: BPFProgram, bpfRoot: String) throws {
        self.fromNetdev = fromNetdev
        self.toNetdev = toNetdev
        self.linkDirectory = bpfRoot + "/links"
        try BPFFS.makeDirectories(linkDirectory)
    }

    func pinPath(_ a: DeviceAttachment) -> String { "\(linkDirectory)/\(a.key)" }

    public func update(_ a: DeviceAttachment) async throws {
        let netlink = try Netlink()
        guard let link = try netlink.link(.name(a.device)) else {
            throw SubsystemError("device \(a.device) not found in this node's network namespace (check `devices` in the config)")
        }
        let program = a.direction == .ingress ? fromNetdev : toNetdev
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
