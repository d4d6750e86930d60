import CBPF
import Datapath
import Foundation

/// The socket LB hooks (bpf/sock.c) on a cgroup v2 directory, as pinned links
/// under the agent's bpf root: they outlive the agent (a restart swaps the
/// programs in place) and go when the load balancer is disabled.
enum SocketLB {
    struct Hook: Sendable {
        var program: String
        var type: UInt32 // bpf_attach_type
        var pin: String
    }

    static var hooks: [Hook] {
        [Hook(program: "cil_sock4_connect", type: BPF_CGROUP_INET4_CONNECT.rawValue, pin: "sock4-connect"),
         Hook(program: "cil_sock4_sendmsg", type: BPF_CGROUP_UDP4_SENDMSG.rawValue, pin: "sock4-sendmsg"),
         Hook(program: "cil_sock4_recvmsg", type: BPF_CGROUP_UDP4_RECVMSG.rawValue, pin: "sock4-recvmsg"),
         Hook(program: "cil_sock4_getpeername", type: BPF_CGROUP_INET4_GETPEERNAME.rawValue, pin: "sock4-getpeername")]
    }

    /// `cgroup.hostRoot`, or the cgroup2 mount when it is "".
    static func cgroupRoot(_ configured: String) throws -> String {
        if !configured.isEmpty { return configured }
        if let mount = CGroup2.mountPoint() { return mount }
        throw SocketLBError("no cgroup2 mount found; mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or set cgroup.hostRoot")
    }

    static func pinPath(_ bpfRoot: String, _ hook: String) -> String {
        "\(LoadBalancerSubsystem.ownership.links(bpfRoot: bpfRoot))/\(hook)"
    }

    /// Agents before this layout pinned the hooks and XDP links under `<bpf root>/links`;
    /// an upgraded agent adopts them into the load balancer's own directory.
    static func adoptLegacyPins(bpfRoot: String) throws {
        let links = LoadBalancerSubsystem.ownership.links(bpfRoot: bpfRoot)
        try BPFFS.makeDirectories(links)
        BPFFS.adoptPins(from: bpfRoot + "/links", prefixes: hooks.map(\.pin) + [XDPAcceleration.pinPrefix], into: links)
    }

    /// Loads bpf/sock.c against the pinned LB maps and attaches (or swaps) every hook.
    static func attach(bpfRoot: String, cgroup: String) async throws {
        guard FileManager.default.fileExists(atPath: cgroup + "/cgroup.procs") else {
            throw SocketLBError("cgroup.hostRoot \(cgroup) is not a cgroup v2 directory (no cgroup.procs there)")
        }
        let object = try BPFObject(embedded: "sock", pinRoot: bpfRoot)
        defer { Task { await object.close() } }
        for h in hooks {
            _ = try Attach.cgroup(try await object.program(h.program), cgroupPath: cgroup, type: bpf_attach_type(h.type),
                                  pinPath: pinPath(bpfRoot, h.pin))
        }
    }

    /// Detaches every hook and removes its pin (socket LB disabled).
    static func detach(bpfRoot: String) {
        for h in hooks {
            let path = pinPath(bpfRoot, h.pin)
            BPFLink.openPinned(path)?.detach()
            unlink(path)
        }
    }
}

struct SocketLBError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
