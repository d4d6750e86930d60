import CBPF
import Glibc

/// The pipeline's program array (`cilium_calls`): slot N holds the stage of
/// one subsystem; an empty slot means the subsystem is disabled and packets
/// move on. Setting a slot replaces the program atomically.
public final class ProgramArray: Sendable {
    public let fd: Int32
    public let name: String

    public init(pinned path: String) throws(BPFError) {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { throw BPFError("open program array \(path)", errno: errno) }
        self.fd = fd
        self.name = path
    }

    public init(fd: Int32, name: String) throws(BPFError) {
        let d = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard d >= 0 else { throw BPFError("dup program array fd", errno: errno) }
        self.fd = d
        self.name = name
    }

    deinit { close(fd) }

    public func set(slot: UInt32, program: BPFProgram) throws(BPFError) {
        var k = slot
        var v = UInt32(bitPattern: program.fd)
        try check(bpf_map_update_elem(fd, &k, &v, 0), "put \(program.name) into \(name)[\(slot)]")
    }

    public func clear(slot: UInt32) {
        var k = slot
        _ = bpf_map_delete_elem(fd, &k)
    }

    /// The id of the program in `slot`, nil when empty.
    public func programID(slot: UInt32) -> UInt32? {
        var k = slot
        var id: UInt32 = 0
        return bpf_map_lookup_elem(fd, &k, &id) == 0 ? id : nil
    }
}
