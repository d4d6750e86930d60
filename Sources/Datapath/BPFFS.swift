import Foundation
import CBPF
import Glibc

/// The BPF filesystem, where maps, programs and links are pinned so they
/// outlive the agent process.
public enum BPFFS {
    public static let defaultMountPoint = "/sys/fs/bpf"
    static let magic: Int = 0xcafe4a11

    /// True when `path` is on a bpffs.
    public static func isBPFFS(_ path: String) -> Bool {
        var st = statfs()
        guard statfs(path, &st) == 0 else { return false }
        return Int(st.f_type) == magic
    }

    /// Mounts bpffs at /sys/fs/bpf when it is not there (PLATFORM.md: it is not
    /// mounted on these machines), then creates `root` (mkdir -p).
    public static func prepare(root: String) throws(BPFError) {
        if !isBPFFS(defaultMountPoint) && root.hasPrefix(defaultMountPoint + "/") {
            mkdir(defaultMountPoint, 0o755)
            if mount("bpf", defaultMountPoint, "bpf", 0, nil) != 0 {
                throw BPFError("mount -t bpf bpf \(defaultMountPoint)", errno: errno)
            }
        }
        try makeDirectories(root)
        guard isBPFFS(root) else {
            throw BPFError("bpf.root \(root) is not on a bpffs (mount one there or use a path under \(defaultMountPoint))", errno: EINVAL)
        }
    }

    public static func makeDirectories(_ path: String) throws(BPFError) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw BPFError("mkdir \(current)", errno: errno)
            }
        }
    }

    /// Moves the pins in `legacy` whose names start with one of `prefixes` into `directory`
    /// (a rename within bpffs: links stay attached, maps keep their content), and removes
    /// `legacy` once nothing is left in it. An upgraded agent adopts an older layout this way.
    public static func adoptPins(from legacy: String, prefixes: [String], into directory: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: legacy)) ?? []
        where prefixes.contains(where: { name.hasPrefix($0) }) {
            rename(legacy + "/" + name, directory + "/" + name)
        }
        rmdir(legacy)
    }

    /// Removes a pin directory and everything pinned in it (unpinning drops the
    /// kernel's reference; objects still in use by others stay alive).
    public static func removeTree(_ path: String) {
        guard let dir = opendir(path) else { unlink(path); return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            if Int32(entry.pointee.d_type) == Int32(DT_DIR) { removeTree(child) } else { unlink(child) }
        }
        closedir(dir)
        rmdir(path)
    }

    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
