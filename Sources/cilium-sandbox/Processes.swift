import Agent
import Spawning
import Foundation
import Glibc

/// Starting and stopping the agents the sandbox owns.
enum Processes {
    /// Spawns `argv` in its own session (it outlives `cilium-sandbox up`), with
    /// stdout and stderr appended to `log`.
    static func spawnDetached(_ argv: [String], environment: [String: String], log: String) throws -> Int32 {
        // ChildProcess passes no descriptor above stderr: a long-lived agent holds none of our caller's pipes open.
        try ChildProcess.spawn(argv, output: log, newSession: true, environment: environment)
    }

    /// True if `pid` is alive and its command line contains `marker` (so we
    /// never signal a process that merely reused the number).
    static func isOurs(_ pid: Int32, marker: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           stat.split(separator: " ").dropFirst(2).first == "Z" {
            return false
        }
        return String(decoding: data, as: UTF8.self).contains(marker)
    }

    /// SIGTERM, then SIGKILL after `grace`.
    static func stop(_ pid: Int32, marker: String, grace: Duration = .seconds(10)) {
        guard isOurs(pid, marker: marker) else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            reap(pid)
            if !isOurs(pid, marker: marker) { return }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        reap(pid)
    }

    static func reap(_ pid: Int32) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// Runs a command in the foreground, passing its exit status on.
    static func run(_ argv: [String]) -> Int32 {
        do {
            return ChildProcess.wait(try ChildProcess.spawn(argv))
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            return 127
        }
    }

    /// The directory of this executable (where `cilium-agent` and `cilium` live too).
    static var binDirectory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }
}


/// Starting one node's agent the way systemd would: its own NOTIFY_SOCKET,
/// returning once it sent READY=1.
enum AgentProcess {
    static func start(_ state: inout SandboxState, node i: Int, timeout: Duration) throws {
        let agent = Processes.binDirectory + "/cilium-agent"
        guard FileManager.default.isExecutableFile(atPath: agent) else {
            throw SandboxError("cilium-agent not found next to cilium-sandbox (\(agent)); build with: swift build")
        }
        let node = state.nodes[i]
        let notify = try NotifyListener(path: SandboxState.directory(state.name) + "/\(node.name).notify")
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notify.path
        let pid = try Processes.spawnDetached(
            ["nsenter", "--net=/run/netns/\(node.namespace)", agent, "--config", node.configFile],
            environment: env, log: node.logFile)
        state.nodes[i].pid = pid
        try state.save()
        let started = ContinuousClock.now
        let (ready, messages) = notify.waitReady(pid: pid, timeout: timeout)
        guard ready else {
            let log = (try? String(contentsOfFile: node.logFile, encoding: .utf8)) ?? ""
            throw SandboxError("agent of \(node.name) did not report READY (messages: \(messages)); its log:\n\(log.suffix(2000))")
        }
        let ms = (ContinuousClock.now - started) / .milliseconds(1)
        let status = messages.last?.split(separator: "\n").first { $0.hasPrefix("STATUS=") }?.dropFirst(7) ?? ""
        print("\(node.name): READY in \(Int(ms)) ms (pid \(pid), api unix://\(node.socket)) \(status)")
    }
}
