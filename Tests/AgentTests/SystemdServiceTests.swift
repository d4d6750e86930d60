import Foundation
import Glibc
import Testing
import TestSupport

/// config/cilium-agent.service under a real systemd 252, booted in a
/// container with systemd-nspawn (PID 1 on these machines is not systemd).
/// The checks run inside (Tests/AgentTests/systemd/checks.sh) and report here.
@Suite(.serialized) struct SystemdServiceTests {
    @Test func agentUnderRealSystemd() throws {
        guard let rootfs = ProcessInfo.processInfo.environment["CILIUM_SYSTEMD_ROOTFS"] else {
            print("SKIP agentUnderRealSystemd: CILIUM_SYSTEMD_ROOTFS is not set (scripts/test.sh sets it after building the rootfs with scripts/systemd-rootfs.sh)")
            return
        }
        let run = try TempDir("cilium-systemd")
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let bpfRoot = "/sys/fs/bpf/cilium-systemd-\(tag)"
        defer {
            removeNspawnLeftovers(rootfs: rootfs)
            removeTree(bpfRoot)
        }
        let units = run.path + "/units", etc = run.path + "/etc-cilium", results = run.path + "/results", bin = run.path + "/bin"
        for d in [units, etc, results, bin] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let repo = repositoryRoot()
        try FileManager.default.copyItem(atPath: repo + "/config/cilium-agent.service", toPath: units + "/cilium-agent.service")
        try FileManager.default.copyItem(atPath: repo + "/Tests/AgentTests/systemd/cilium-checks.service", toPath: units + "/cilium-checks.service")
        for exe in ["cilium-agent", "cilium"] {
            try FileManager.default.copyItem(atPath: buildDirectory() + "/" + exe, toPath: bin + "/" + exe)
        }
        try "bpf:\n  root: \(bpfRoot)\n".write(toFile: etc + "/values.yaml", atomically: true, encoding: .utf8)

        let argv = ["timeout", "-k", "10", "180", "systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
                    "-D", rootfs, "--private-network",
                    // nspawn's seccomp filter refuses bpf() (EPERM) unless allowed.
                    "--system-call-filter=bpf",
                    "--bind-ro=\(units):/etc/systemd/system",
                    "--bind=\(etc):/etc/cilium",
                    "--bind=\(results):/results",
                    "--bind-ro=\(repo)/Tests/AgentTests/systemd:/checks",
                    "--bind-ro=\(bin):/usr/local/bin",
                    "--bind-ro=/opt/swift/usr/lib/swift/linux",
                    "--bind=/sys/fs/bpf",
                    "-b", "--console=pipe", "--", "--unit=cilium-checks.service"]
        let (status, output) = try runCapturing(argv)
        let text = (try? String(contentsOfFile: results + "/results.txt", encoding: .utf8)) ?? ""
        let journal = (try? String(contentsOfFile: results + "/agent-journal.txt", encoding: .utf8)) ?? ""
        print("systemd checks (container exit \(status)):\n\(text)")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.last == "DONE", "checks did not finish; container output:\n\(output.suffix(3000))")
        for name in ["start", "statustext", "reload", "config-set", "bad-reload", "watchdog", "stop"] {
            let line = lines.first { $0.hasPrefix("PASS \(name)") || $0.hasPrefix("FAIL \(name)") }
            #expect(line?.hasPrefix("PASS") == true, "\(name): \(line ?? "not run")\nagent journal:\n\(journal.suffix(2000))")
        }
    }
}

