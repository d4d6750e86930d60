import CBPF
import Glibc

/// Where a tc program sits on a device.
public enum TCDirection: String, Sendable {
    case ingress, egress
    var tcxAttachType: bpf_attach_type {
        bpf_attach_type(rawValue: UInt32(self == .ingress ? CILIUM_BPF_TCX_INGRESS : CILIUM_BPF_TCX_EGRESS))
    }
}

/// A BPF link (TCX, XDP, cgroup) held by fd. Pinned links outlive the agent:
/// a restarted agent opens the pin and swaps the program atomically, so traffic
/// and enforcement never stop.
public final class BPFLink: Sendable {
    public let fd: Int32
    public let description: String

    init(fd: Int32, description: String) {
        self.fd = fd
        self.description = description
    }

    /// Opens a pinned link, or nil when nothing is pinned at `path`.
    public static func openPinned(_ path: String) -> BPFLink? {
        let fd = bpf_obj_get(path)
        return fd >= 0 ? BPFLink(fd: fd, description: path) : nil
    }

    deinit { close(fd) }

    public func pin(at path: String) throws(BPFError) {
        unlink(path)
        try check(bpf_obj_pin(fd, path), "pin link \(description) at \(path)")
    }

    /// Replaces the program behind the link, atomically.
    public func update(program: BPFProgram) throws(BPFError) {
        try check(bpf_link_update(fd, program.fd, nil), "swap program of \(description) to \(program.name)")
    }

    /// Detaches the link from its hook (also when pinned elsewhere).
    public func detach() {
        _ = bpf_link_detach(fd)
    }

    /// Id of the program the link runs.
    public var programID: UInt32? {
        var info = bpf_link_info()
        var len = UInt32(MemoryLayout<bpf_link_info>.size)
        return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.prog_id : nil
    }
}

/// Attaching programs to hooks. Interface indexes are those of the calling
/// thread's network namespace.
public enum Attach {
    /// Attaches a tc program with a TCX link (kernel 6.6+). When `pinPath` is
    /// given and a link is pinned there already, that link is adopted and its
    /// program swapped instead (no window without a program).
    public static func tcx(_ program: BPFProgram, ifindex: Int32, direction: TCDirection, pinPath: String? = nil) throws(BPFError) -> BPFLink {
        if let pinPath, let existing = BPFLink.openPinned(pinPath) {
            do {
                try existing.update(program: program)
                return existing
            } catch {
                // The device behind the old link is gone: make a new one.
                unlink(pinPath)
            }
        }
        let fd = bpf_link_create(program.fd, ifindex, direction.tcxAttachType, nil)
        guard fd >= 0 else { throw BPFError("attach \(program.name) to ifindex \(ifindex) tcx/\(direction.rawValue)", errno: errno) }
        let link = BPFLink(fd: fd, description: "tcx/\(direction.rawValue) ifindex \(ifindex) \(program.name)")
        if let pinPath { try link.pin(at: pinPath) }
        return link
    }

    /// Classic tc (clsact + cls_bpf direct-action), for kernels without TCX.
    /// Not a link: it stays until detached or the device goes away.
    public static func tcClassic(_ program: BPFProgram, ifindex: Int32, direction: TCDirection) throws(BPFError) {
        var hook = bpf_tc_hook()
        hook.sz = MemoryLayout<bpf_tc_hook>.size
        hook.ifindex = ifindex
        hook.attach_point = direction == .ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS
        let r = bpf_tc_hook_create(&hook)
        if r < 0 && -r != EEXIST { throw BPFError.fromLibbpf("create clsact on ifindex \(ifindex)", r) }
        var opts = bpf_tc_opts()
        opts.sz = MemoryLayout<bpf_tc_opts>.size
        opts.prog_fd = program.fd
        opts.handle = 1
        opts.priority = 1
        opts.flags = UInt32(BPF_TC_F_REPLACE.rawValue)
        try check(bpf_tc_attach(&hook, &opts), "tc attach \(program.name) on ifindex \(ifindex) \(direction.rawValue)")
    }

    /// TCX where the kernel has it, classic tc otherwise. Returns the link for TCX.
    public static func tc(_ program: BPFProgram, ifindex: Int32, direction: TCDirection, pinPath: String? = nil) throws(BPFError) -> BPFLink? {
        do {
            return try tcx(program, ifindex: ifindex, direction: direction, pinPath: pinPath)
        } catch where error.errno == EINVAL || error.errno == EOPNOTSUPP {
            try tcClassic(program, ifindex: ifindex, direction: direction)
            return nil
        }
    }

    public enum XDPMode: Sendable { case native, generic }

    /// XDP through a link (pinnable, swappable).
    public static func xdp(_ program: BPFProgram, ifindex: Int32, mode: XDPMode = .native, pinPath: String? = nil) throws(BPFError) -> BPFLink {
        if let pinPath, let existing = BPFLink.openPinned(pinPath), (try? existing.update(program: program)) != nil {
            return existing
        }
        var opts = bpf_link_create_opts()
        opts.sz = MemoryLayout<bpf_link_create_opts>.size
        opts.flags = mode == .generic ? UInt32(XDP_FLAGS_SKB_MODE) : UInt32(XDP_FLAGS_DRV_MODE)
        let fd = bpf_link_create(program.fd, ifindex, BPF_XDP, &opts)
        guard fd >= 0 else { throw BPFError("attach XDP \(program.name) to ifindex \(ifindex)", errno: errno) }
        let link = BPFLink(fd: fd, description: "xdp ifindex \(ifindex) \(program.name)")
        if let pinPath { try link.pin(at: pinPath) }
        return link
    }

    /// A cgroup program (socket LB hooks: connect4, sendmsg4, ...) on a cgroup v2 directory.
    public static func cgroup(_ program: BPFProgram, cgroupPath: String, type: bpf_attach_type, pinPath: String? = nil) throws(BPFError) -> BPFLink {
        if let pinPath, let existing = BPFLink.openPinned(pinPath), (try? existing.update(program: program)) != nil {
            return existing
        }
        let cg = open(cgroupPath, O_RDONLY | O_DIRECTORY)
        guard cg >= 0 else { throw BPFError("open cgroup \(cgroupPath)", errno: errno) }
        defer { close(cg) }
        let fd = bpf_link_create(program.fd, cg, type, nil)
        guard fd >= 0 else { throw BPFError("attach \(program.name) to cgroup \(cgroupPath)", errno: errno) }
        let link = BPFLink(fd: fd, description: "cgroup \(cgroupPath) \(program.name)")
        if let pinPath { try link.pin(at: pinPath) }
        return link
    }

    /// Programs attached with TCX on a device, by id (BPF_PROG_QUERY).
    public static func tcxProgramIDs(ifindex: Int32, direction: TCDirection) -> [UInt32] {
        var ids = [UInt32](repeating: 0, count: 64)
        var count = UInt32(ids.count)
        var flags: UInt32 = 0
        let r = bpf_prog_query(ifindex, direction.tcxAttachType, 0, &flags, &ids, &count)
        return r == 0 ? Array(ids.prefix(Int(count))) : []
    }
}
