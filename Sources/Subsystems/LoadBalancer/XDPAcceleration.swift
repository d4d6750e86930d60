import CBPF
import Datapath
import LinuxNet
import Foundation

/// `loadBalancer.acceleration: native`: bpf/xdp.c in driver mode on each of
/// the node's `devices`, as pinned links under the agent's bpf root (a
/// restart swaps the program in place; disabling detaches them).
enum XDPAcceleration {
    static let pinPrefix = "xdp-"

    static func linkDirectory(_ bpfRoot: String) -> String { LoadBalancerSubsystem.ownership.links(bpfRoot: bpfRoot) }

    /// bpffs refuses '.' in names, which device names (VLANs) may have.
    static func pinPath(_ bpfRoot: String, device: String) -> String {
        "\(linkDirectory(bpfRoot))/\(pinPrefix)\(device.replacingOccurrences(of: ".", with: ":"))"
    }

    /// Attaches (or swaps in) the XDP program on every device; devices no longer listed lose theirs.
    static func attach(bpfRoot: String, devices: [String]) async throws {
        guard !devices.isEmpty else {
            throw XDPAccelerationError("loadBalancer.acceleration is native but `devices` is empty: name the node's devices (e.g. devices: [eth0]) or set loadBalancer.acceleration to disabled")
        }
        let object = try BPFObject(embedded: "xdp", pinRoot: bpfRoot)
        defer { Task { await object.close() } }
        let program = try await object.program("cil_xdp_lb")
        let netlink = try Netlink()
        for device in devices {
            guard let link = try netlink.link(.name(device)) else {
                throw XDPAccelerationError("device \(device) not found in this node's network namespace (check `devices`)")
            }
            do {
                _ = try Attach.xdp(program, ifindex: link.index, mode: .native, pinPath: pinPath(bpfRoot, device: device))
            } catch {
                throw XDPAccelerationError("\(error); the driver of \(device) may not support native XDP: set loadBalancer.acceleration to disabled")
            }
        }
        let keep = Set(devices.map { pinPath(bpfRoot, device: $0) })
        for pin in pins(bpfRoot) where !keep.contains(pin) { detach(pin) }
    }

    /// Detaches the program from every device (acceleration disabled, or the load balancer off).
    static func detachAll(bpfRoot: String) {
        for pin in pins(bpfRoot) { detach(pin) }
    }

    /// The devices the program is attached to now.
    static func attachedDevices(bpfRoot: String) -> [String] {
        pins(bpfRoot).map { String(($0 as NSString).lastPathComponent.dropFirst(pinPrefix.count)).replacingOccurrences(of: ":", with: ".") }.sorted()
    }

    struct Counters: Sendable, Equatable {
        var translated: UInt64 = 0, reversed: UInt64 = 0, passed: UInt64 = 0
    }

    /// What the program did since it was loaded (summed over CPUs).
    static func counters(bpfRoot: String) -> Counters? {
        guard let map = try? BPFMap<UInt32, UInt64>(pinned: bpfRoot + "/cilium_lb4_xdp_stats") else { return nil }
        func sum(_ k: lb_xdp_counter) -> UInt64 { map.lookupPerCPU(k.rawValue)?.reduce(0, &+) ?? 0 }
        return Counters(translated: sum(LB_XDP_TRANSLATED), reversed: sum(LB_XDP_REVERSED), passed: sum(LB_XDP_PASSED))
    }

    private static func pins(_ bpfRoot: String) -> [String] {
        let dir = linkDirectory(bpfRoot)
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix(pinPrefix) }.map { dir + "/" + $0 }
    }

    private static func detach(_ pin: String) {
        BPFLink.openPinned(pin)?.detach()
        unlink(pin)
    }
}

struct XDPAccelerationError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
