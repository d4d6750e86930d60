import Foundation

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on a unified
/// system, `/sys/fs/cgroup/unified` on a hybrid one), from /proc/self/mounts.
public enum CGroup2 {
    public static func mountPoint() -> String? {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count > 2, f[2] == "cgroup2" { return String(f[1]) }
        }
        return nil
    }
}
