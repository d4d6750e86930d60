import CBPF
import Glibc
import Reconciler

/// A subsystem's stage in the pipeline: its BPF object, loaded with the shared
/// maps adopted from the pins, and its program placed in one slot of
/// `cilium_calls`. Removing the stage empties the slot, so packets skip it.
public actor PipelineStage {
    public nonisolated let objectName: String
    public nonisolated let programName: String
    public nonisolated let slot: UInt32
    private var bpfRoot: String?
    private var object: BPFObject?
    private var program: BPFProgram?

    public init(object: String, program: String, slot: cilium_stage) {
        self.objectName = object
        self.programName = program
        self.slot = slot.rawValue
    }

    /// Loads the object (the verifier runs here) and fills the slot. Replacing a
    /// program left by an earlier agent is one atomic map update.
    public func install(bpfRoot: String) async throws {
        let obj = try BPFObject(embedded: objectName, pinRoot: bpfRoot)
        let prog = try await obj.program(programName)
        let calls = try ProgramArray(pinned: bpfRoot + "/cilium_calls")
        try calls.set(slot: slot, program: prog)
        object = obj
        program = prog
        self.bpfRoot = bpfRoot
    }

    /// Empties the slot: the subsystem is disabled, packets move on.
    public func uninstall() async {
        if let bpfRoot, let calls = try? ProgramArray(pinned: bpfRoot + "/cilium_calls") {
            calls.clear(slot: slot)
        }
        await release()
    }

    /// Empties the slot in `bpfRoot` whoever filled it: an earlier agent's stage for a
    /// subsystem this agent starts disabled.
    public func removeLeftover(bpfRoot: String) async {
        if let calls = try? ProgramArray(pinned: bpfRoot + "/cilium_calls"), calls.programID(slot: slot) != nil {
            calls.clear(slot: slot)
        }
    }

    /// Drops this process's handles; the slot keeps the program (agent restart).
    public func release() async {
        await object?.close()
        object = nil
        program = nil
    }

    /// Another program of the stage's object (one the subsystem attaches itself), once installed.
    public func otherProgram(_ name: String) async throws -> BPFProgram {
        guard let object else { throw BPFError("find program \(name) of \(objectName) (the stage is not loaded)", errno: ENOENT) }
        return try await object.program(name)
    }

    public var isInstalled: Bool { program != nil }
    public var programID: UInt32? { program?.id }
    public var health: Health { program == nil ? .stopped : .ok }

    /// The program id currently in the slot, whoever put it there.
    public func installedProgramID() -> UInt32? {
        guard let bpfRoot else { return nil }
        return (try? ProgramArray(pinned: bpfRoot + "/cilium_calls"))?.programID(slot: slot)
    }
}
