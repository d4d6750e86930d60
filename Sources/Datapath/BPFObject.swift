import CBPF
import Foundation
import Glibc

/// A loaded BPF object (one per datapath stage). The libbpf handle never leaves
/// this actor; callers get programs and maps as file descriptors wrapped in
/// Sendable types. Maps the C code marks `LIBBPF_PIN_BY_NAME` are pinned under
/// `pinRoot` and shared with (or adopted from) other objects and earlier agents.
public actor BPFObject {
    public nonisolated let name: String
    public nonisolated let pinRoot: String?
    private var handle: ObjectHandle?
    private var object: OpaquePointer? { handle?.pointer }
    private let elf: Data

    /// Names of the objects compiled from `bpf/*.c` and embedded in the binary.
    public static var embeddedNames: [String] { EmbeddedBPFObjects.base64.keys.sorted() }

    /// Opens and loads the embedded object `name` (from `bpf/NAME.c`). The
    /// kernel verifies every program here; a rejection is an error.
    public init(embedded name: String, pinRoot: String?) throws(BPFError) {
        guard let b64 = EmbeddedBPFObjects.base64[name], let data = Data(base64Encoded: b64) else {
            throw BPFError("no embedded BPF object named \(name) (have: \(Self.embeddedNames.joined(separator: ", ")))", errno: ENOENT)
        }
        try self.init(elf: data, name: name, pinRoot: pinRoot)
    }

    public init(elf: Data, name: String, pinRoot: String?) throws(BPFError) {
        self.name = name
        self.pinRoot = pinRoot
        self.elf = elf
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        let obj: OpaquePointer? = name.withCString { cname in
            (pinRoot ?? "").withCString { croot in
                opts.object_name = cname
                if pinRoot != nil { opts.pin_root_path = croot }
                return elf.withUnsafeBytes { raw in
                    bpf_object__open_mem(raw.baseAddress, raw.count, &opts)
                }
            }
        }
        guard let obj else { throw BPFError("open BPF object \(name)", errno: errno) }
        let r = bpf_object__load(obj)
        if r != 0 {
            bpf_object__close(obj)
            throw BPFError.fromLibbpf("load BPF object \(name) (the verifier log is above)", r)
        }
        self.handle = ObjectHandle(obj)
    }

    /// Closes the object now. Pinned maps and attached links keep what they hold.
    public func close() {
        handle = nil
    }

    /// The program `name` (the C function name).
    public func program(_ name: String) throws(BPFError) -> BPFProgram {
        guard let object, let prog = bpf_object__find_program_by_name(object, name) else {
            throw BPFError("object \(self.name) has no program \(name)", errno: ENOENT)
        }
        return try BPFProgram(fd: bpf_program__fd(prog), name: name, type: bpf_program__type(prog))
    }

    public func programNames() -> [String] {
        guard let object else { return [] }
        var names: [String] = []
        var p = bpf_object__next_program(object, nil)
        while let prog = p {
            names.append(String(cString: bpf_program__name(prog)))
            p = bpf_object__next_program(object, prog)
        }
        return names
    }

    public func mapFD(_ name: String) throws(BPFError) -> Int32 {
        guard let object, let map = bpf_object__find_map_by_name(object, name) else {
            throw BPFError("object \(self.name) has no map \(name)", errno: ENOENT)
        }
        return bpf_map__fd(map)
    }

    /// A typed view of the map `name`.
    public func map<K: BitwiseCopyable, V: BitwiseCopyable>(_ name: String, key: K.Type = K.self, value: V.Type = V.self) throws(BPFError) -> BPFMap<K, V> {
        try BPFMap<K, V>(fd: try mapFD(name), name: name)
    }
}

/// A loaded program, held by its own file descriptor.
public final class BPFProgram: Sendable {
    public let fd: Int32
    public let name: String
    public let id: UInt32
    let typeRaw: UInt32

    init(fd: Int32, name: String, type: bpf_prog_type) throws(BPFError) {
        guard fd >= 0 else { throw BPFError("program \(name) is not loaded", errno: EBADF) }
        let dupFD = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard dupFD >= 0 else { throw BPFError("dup program fd \(name)", errno: errno) }
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        _ = bpf_obj_get_info_by_fd(dupFD, &info, &len)
        self.fd = dupFD
        self.name = name
        self.id = info.id
        self.typeRaw = type.rawValue
    }

    deinit { close(fd) }

    /// Pins the program at `path` (replacing an older pin).
    public func pin(at path: String) throws(BPFError) {
        unlink(path)
        try check(bpf_obj_pin(fd, path), "pin program \(name) at \(path)")
    }

    public struct TestRunResult: Sendable {
        public var returnValue: UInt32
        public var packet: [UInt8]
        /// Average run time per repetition, as the kernel measured it.
        public var durationNs: UInt32
        /// The context after the run (e.g. `__sk_buff` with cb[]), when one was given.
        public var context: [UInt8]
    }

    /// Runs the program on `packet` in the kernel (BPF_PROG_TEST_RUN), without
    /// any network. `context` is e.g. an `__sk_buff` for tc programs.
    public func testRun(packet: [UInt8], context: [UInt8]? = nil, repeat count: Int = 1) throws(BPFError) -> TestRunResult {
        var out = [UInt8](repeating: 0, count: max(packet.count + 256, 1500))
        var ctxOut = [UInt8](repeating: 0, count: context?.count ?? 0)
        var opts = bpf_test_run_opts()
        opts.sz = MemoryLayout<bpf_test_run_opts>.size
        opts.repeat = Int32(count)
        var input = packet
        var ctxIn = context ?? []
        let r: Int32 = input.withUnsafeMutableBytes { inp in
            out.withUnsafeMutableBytes { outp in
                ctxIn.withUnsafeMutableBytes { cin in
                    ctxOut.withUnsafeMutableBytes { cout in
                        opts.data_in = UnsafeRawPointer(inp.baseAddress)
                        opts.data_size_in = UInt32(inp.count)
                        opts.data_out = outp.baseAddress
                        opts.data_size_out = UInt32(outp.count)
                        if context != nil {
                            opts.ctx_in = UnsafeRawPointer(cin.baseAddress)
                            opts.ctx_size_in = UInt32(cin.count)
                            opts.ctx_out = cout.baseAddress
                            opts.ctx_size_out = UInt32(cout.count)
                        }
                        return bpf_prog_test_run_opts(fd, &opts)
                    }
                }
            }
        }
        try check(r, "test run of program \(name)")
        return TestRunResult(returnValue: opts.retval, packet: Array(out.prefix(Int(opts.data_size_out))),
                             durationNs: opts.duration, context: ctxOut)
    }
}

/// Owns the libbpf object pointer; closing happens when the owning actor drops
/// it (close() or the actor's end). Never handed out of the actor.
private final class ObjectHandle {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { bpf_object__close(pointer) }
}
