import CBPF
import Glibc

/// A BPF map with a typed key and value. `Key` and `Value` are the C structs from
/// `bpf/include/cilium_maps.h` (or plain integers), so the layout is the one the
/// programs use. The map owns its file descriptor (a kernel handle, safe to
/// share); the libbpf object it may come from stays inside its `BPFObject` actor.
public final class BPFMap<Key: BitwiseCopyable, Value: BitwiseCopyable>: Sendable {
    public let fd: Int32
    public let name: String
    public let isPerCPU: Bool
    public let maxEntries: UInt32

    /// Takes ownership of `fd` (a duplicate is made; the caller keeps its own).
    public init(fd: Int32, name: String) throws(BPFError) {
        var info = bpf_map_info()
        var len = UInt32(MemoryLayout<bpf_map_info>.size)
        try check(bpf_obj_get_info_by_fd(fd, &info, &len), "get info of map \(name)")
        let isPerCPU = [BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH]
            .map { $0.rawValue }.contains(info.type)
        guard info.key_size == MemoryLayout<Key>.size else {
            throw BPFError("map \(name): key is \(info.key_size) bytes, Swift type \(Key.self) is \(MemoryLayout<Key>.size)", errno: EINVAL)
        }
        if info.type != BPF_MAP_TYPE_RINGBUF.rawValue && info.type != BPF_MAP_TYPE_PROG_ARRAY.rawValue {
            guard info.value_size == MemoryLayout<Value>.size else {
                throw BPFError("map \(name): value is \(info.value_size) bytes, Swift type \(Value.self) is \(MemoryLayout<Value>.size)", errno: EINVAL)
            }
        }
        let dupFD = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard dupFD >= 0 else { throw BPFError("dup map fd \(name)", errno: errno) }
        self.fd = dupFD
        self.name = name
        self.isPerCPU = isPerCPU
        self.maxEntries = info.max_entries
    }

    /// Opens a pinned map.
    public convenience init(pinned path: String) throws(BPFError) {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { throw BPFError("open pinned map \(path)", errno: errno) }
        defer { close(fd) }
        try self.init(fd: fd, name: path)
    }

    /// Opens a map by its kernel id (e.g. an inner map of a map-in-map).
    public convenience init(id: UInt32) throws(BPFError) {
        let fd = bpf_map_get_fd_by_id(id)
        guard fd >= 0 else { throw BPFError("open map id \(id)", errno: errno) }
        defer { close(fd) }
        try self.init(fd: fd, name: "map id \(id)")
    }

    deinit { close(fd) }

    /// Creates a map not tied to any object (tests, benchmarks).
    public static func create(type: bpf_map_type, name: String, maxEntries: UInt32, flags: UInt32 = 0) throws(BPFError) -> BPFMap {
        var opts = bpf_map_create_opts()
        opts.sz = MemoryLayout<bpf_map_create_opts>.size
        opts.map_flags = flags
        let fd = bpf_map_create(type, name, UInt32(MemoryLayout<Key>.size), UInt32(MemoryLayout<Value>.size), maxEntries, &opts)
        guard fd >= 0 else { throw BPFError("create map \(name)", errno: errno) }
        defer { close(fd) }
        return try BPFMap(fd: fd, name: name)
    }

    public func lookup(_ key: Key) -> Value? {
        precondition(!isPerCPU, "use lookupPerCPU on per-CPU map \(name)")
        var k = key
        var v = unsafe_zero(Value.self)
        return bpf_map_lookup_elem(fd, &k, &v) == 0 ? v : nil
    }

    /// One value per possible CPU.
    public func lookupPerCPU(_ key: Key) -> [Value]? {
        let cpus = Int(libbpf_num_possible_cpus())
        let stride = (MemoryLayout<Value>.size + 7) & ~7
        var k = key
        var buffer = [UInt8](repeating: 0, count: stride * cpus)
        guard bpf_map_lookup_elem(fd, &k, &buffer) == 0 else { return nil }
        return (0..<cpus).map { cpu in
            buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: cpu * stride, as: Value.self) }
        }
    }

    public enum UpdateMode: UInt64 {
        case any = 0      // BPF_ANY
        case create = 1   // BPF_NOEXIST
        case replace = 2  // BPF_EXIST
    }

    public func update(_ key: Key, _ value: Value, mode: UpdateMode = .any) throws(BPFError) {
        var k = key, v = value
        let r = bpf_map_update_elem(fd, &k, &v, mode.rawValue)
        MapOpsCounter.add(name, "update", success: r == 0)
        try check(r, "update map \(name)")
    }

    /// Deletes `key`; returns false when it was absent.
    @discardableResult
    public func delete(_ key: Key) throws(BPFError) -> Bool {
        var k = key
        let r = bpf_map_delete_elem(fd, &k)
        MapOpsCounter.add(name, "delete", success: r == 0 || -r == ENOENT || errno == ENOENT)
        if r == 0 { return true }
        if -r == ENOENT || errno == ENOENT { return false }
        throw BPFError.fromLibbpf("delete from map \(name)", r)
    }

    /// All keys. Hash maps are read in batches (BPF_MAP_LOOKUP_BATCH, one
    /// syscall per 8192 entries); other maps key by key.
    public func keys() -> [Key] {
        if let batched = keysBatched() { return batched }
        return keysOneByOne()
    }

    private func keysBatched() -> [Key]? {
        let chunk = 8192
        let cpus = isPerCPU ? Int(libbpf_num_possible_cpus()) : 1
        let valueStride = isPerCPU ? (MemoryLayout<Value>.size + 7) & ~7 : MemoryLayout<Value>.size
        var out: [Key] = []
        var keys = [Key](repeating: unsafe_zero(Key.self), count: chunk)
        var values = [UInt8](repeating: 0, count: chunk * valueStride * cpus)
        var inToken = [UInt8](repeating: 0, count: max(MemoryLayout<Key>.size, 8))
        var outToken = inToken
        var opts = bpf_map_batch_opts()
        opts.sz = MemoryLayout<bpf_map_batch_opts>.size
        var first = true
        while true {
            var count = UInt32(chunk)
            let r: Int32 = keys.withUnsafeMutableBytes { kp in
                values.withUnsafeMutableBytes { vp in
                    inToken.withUnsafeMutableBytes { ip in
                        outToken.withUnsafeMutableBytes { op in
                            bpf_map_lookup_batch(fd, first ? nil : ip.baseAddress, op.baseAddress,
                                                 kp.baseAddress, vp.baseAddress, &count, &opts)
                        }
                    }
                }
            }
            let err = r < 0 ? (-r == EPERM ? errno : -r) : 0
            if r < 0 && err != ENOENT {
                return first ? nil : keysOneByOne() // no batch op for this map type
            }
            out.append(contentsOf: keys.prefix(Int(count)))
            if r < 0 { return out } // ENOENT: that was the last batch
            inToken = outToken
            first = false
        }
    }

    private func keysOneByOne() -> [Key] {
        var out: [Key] = []
        var next = unsafe_zero(Key.self)
        var r = bpf_map_get_next_key(fd, nil, &next)
        while r == 0 {
            out.append(next)
            var cur = next
            r = bpf_map_get_next_key(fd, &cur, &next)
        }
        return out
    }

    public func entries() -> [(Key, Value)] {
        keys().compactMap { k in lookup(k).map { (k, $0) } }
    }

    /// Writes many entries with one syscall per chunk (BPF_MAP_UPDATE_BATCH);
    /// falls back to single updates where the map type has no batch op.
    public func updateBatch(keys: [Key], values: [Value]) throws(BPFError) {
        precondition(keys.count == values.count)
        guard !keys.isEmpty else { return }
        var opts = bpf_map_batch_opts()
        opts.sz = MemoryLayout<bpf_map_batch_opts>.size
        var count = UInt32(keys.count)
        let r = keys.withUnsafeBufferPointer { kp in
            values.withUnsafeBufferPointer { vp in
                bpf_map_update_batch(fd, kp.baseAddress, vp.baseAddress, &count, &opts)
            }
        }
        if r == 0 {
            MapOpsCounter.add(name, "update", success: true, count: keys.count)
            return
        }
        if -r == EINVAL || -r == ENOTSUPP || -r == EOPNOTSUPP || errno == ENOTSUPP {
            for i in keys.indices { try update(keys[i], values[i]) }
            return
        }
        MapOpsCounter.add(name, "update", success: false, count: keys.count)
        throw BPFError.fromLibbpf("batch update of \(keys.count) entries in map \(name)", r)
    }

    /// Deletes many keys; absent keys are fine.
    public func deleteBatch(_ keys: [Key]) throws(BPFError) {
        for k in keys { try delete(k) }
    }

    public var count: Int { keys().count }
}

let ENOTSUPP: Int32 = 524

@inline(__always)
func unsafe_zero<T: BitwiseCopyable>(_: T.Type) -> T {
    withUnsafeTemporaryAllocation(of: T.self, capacity: 1) { p in
        let raw = UnsafeMutableRawBufferPointer(p)
        raw.initializeMemory(as: UInt8.self, repeating: 0)
        return p[0]
    }
}
