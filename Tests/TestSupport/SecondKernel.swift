import Foundation
import Glibc

/// The second-kernel test tier (DESIGN.md §7, tier 4): a test that needs a kernel feature this
/// machine's kernel lacks runs in the same test binary under Debian's 6.12 kernel in qemu
/// (`scripts/kernel-vm`). On the host, the test boots the VM with a filter naming itself and
/// checks that it ran and passed there; inside the VM (KERNEL_VM=1) it runs its body.
public enum SecondKernel {
    /// Whether this process runs inside the VM that `scripts/kernel-vm` booted.
    public static var isGuest: Bool { ProcessInfo.processInfo.environment["KERNEL_VM"] == "1" }

    /// `uname -r` of the running kernel.
    public static var release: String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// What the guest printed for one test, and whether it passed there.
    public struct GuestRun: Sendable {
        public var status: Int32
        public var output: String
        public var passed: Bool
    }

    /// Runs `body` under the second kernel. On the host: boots the VM, runs this test binary's Swift
    /// Testing test `suite/test` there, streams nothing but returns the guest's output; `passed` is true
    /// only if the guest ran exactly that test and it passed. Inside the VM: runs `body`.
    public static func run(suite: String, test: String, timeout: Int = 900,
                           _ body: () throws -> Void) throws -> GuestRun? {
        if isGuest {
            print("kernel: \(release) (second kernel, in qemu)")
            try body()
            return nil
        }
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let script = repositoryRoot() + "/scripts/kernel-vm"
        print("kernel: \(release) (host); running \(suite)/\(test) under the second kernel with \(script)")
        let (status, output) = try runCapturing([script, "--timeout", String(timeout), "--",
                                                 binary, "--testing-library", "swift-testing",
                                                 "--filter", "\(suite)/\(test)"])
        print(output.split(separator: "\n").map { "  [vm] " + $0 }.joined(separator: "\n"))
        let passed = status == 0 && output.contains("Test \(test)() passed")
            && output.contains("kernel: ") && !output.contains("Test run with 0 tests")
        return GuestRun(status: status, output: output, passed: passed)
    }
}
