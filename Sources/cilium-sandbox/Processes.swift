import Agent
import Foundation
import Glibc

/// Starting and stopping the agents the sandbox owns.
enum Processes {
    /// Spawns `argv` in its own session (it outlives `cilium-sandbox up`), with
    /// stdout and stderr appended to `log`.
    static func spawnDetached(_ argv: [String], environment: [String: String], log: String) throws -> Int32 {
        closeInheritedDescriptorsOnExec()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attr = cleanSignalAttributes(extraFlags: 0x80) // POSIX_SPAWN_SETSID (glibc, _GNU_SOURCE only)
        defer { posix_spawnattr_destroy(&attr) }
        let cargs = argv.map { strdup($0) } + [nil]
        let cenv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cargs.forEach { free($0) }
            cenv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let r = posix_spawnp(&pid, argv[0], &actions, &attr, cargs, cenv)
        guard r == 0 else { throw SandboxError("cannot start \(argv[0]): \(String(cString: strerror(r)))") }
        return pid
    }

    /// posix_spawn passes on the calling thread's signal mask, and threads of a
    /// Swift process block most signals: a child would never see SIGTERM. Give
    /// children an empty mask and default actions.
    static func cleanSignalAttributes(extraFlags: Int32) -> posix_spawnattr_t {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGHUP, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | Int16(extraFlags))
        return attr
    }

    /// Marks every descriptor above stderr close-on-exec, so a long-lived agent
    /// does not hold our caller's pipes open (a caller reading our output to
    /// EOF would wait for the agent's exit).
    static func closeInheritedDescriptorsOnExec() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for name in names {
            guard let fd = Int32(name), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
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
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var pid: pid_t = 0
        var attr = cleanSignalAttributes(extraFlags: 0)
        defer { posix_spawnattr_destroy(&attr) }
        let r = posix_spawnp(&pid, argv[0], nil, &attr, cargs, environ)
        guard r == 0 else {
            FileHandle.standardError.write(Data("cannot run \(argv[0]): \(String(cString: strerror(r)))\n".utf8))
            return 127
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
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
