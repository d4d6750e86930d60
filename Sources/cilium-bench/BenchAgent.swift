import Agent
import Datapath
import Foundation
import Glibc
import LinuxNet

/// A cilium-agent of the benchmark's own, in a network namespace of its own (lo up), started
/// the way systemd starts it; everything it made is removed by `remove()`.
final class BenchAgent {
    let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    let dir: String
    let bpfRoot: String
    let namespace: NetworkNamespace
    let config: String
    let bin: String
    private(set) var process: Process?

    init(bin: String, extraConfig: String = "") throws {
        self.bin = bin
        dir = "/tmp/cilium-bench-\(tag)"
        bpfRoot = "/sys/fs/bpf/cilium-bench-\(tag)"
        namespace = try NetworkNamespace.create(named: "cbench-\(tag)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        config = dir + "/values.yaml"
        try "agent:\n  socketPath: \(dir)/cilium.sock\n  stateDir: \(dir)/state\nbpf:\n  root: \(bpfRoot)\n\(extraConfig)"
            .write(toFile: config, atomically: true, encoding: .utf8)
    }

    var socket: String { dir + "/cilium.sock" }
    var pid: Int32 { process?.processIdentifier ?? 0 }

    /// Starts the agent; returns the milliseconds to READY.
    @discardableResult
    func start(_ arguments: [String] = []) throws -> Double {
        let notify = try NotifyListener(path: dir + "/notify.sock")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        p.arguments = ["--net=\(namespace.path)", bin + "/cilium-agent", "--config", config] + arguments
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notify.path
        p.environment = env
        p.standardError = FileHandle.nullDevice
        let t = ContinuousClock.now
        try p.run()
        process = p
        let (ready, msgs) = notify.waitReady(pid: p.processIdentifier, timeout: .seconds(30))
        guard ready else { throw AgentError("agent did not become READY: \(msgs)") }
        return Bench.seconds(ContinuousClock.now - t) * 1000
    }

    func stop(_ signal: Int32) {
        guard let p = process, p.isRunning else { return }
        kill(p.processIdentifier, signal)
        p.waitUntilExit()
    }

    func remove() {
        stop(SIGKILL)
        try? namespace.delete()
        BPFFS.removeTree(bpfRoot)
        try? FileManager.default.removeItem(atPath: dir)
    }
}
