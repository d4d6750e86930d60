import Diagnostics
import Foundation
import Glibc

/// Starting programs from a Swift process the way a shell would. posix_spawn
/// passes on the calling thread's signal mask, and a Swift process's threads
/// block most signals: a child started naively never sees SIGTERM (and conmon
/// misses SIGCHLD). Children here get an empty mask and default actions.
public enum ChildProcess {
    /// Starts `argv` (PATH lookup) with stdin from /dev/null and stdout+stderr
    /// appended to `output` (or inherited when nil); `newSession` detaches it
    /// from our session so it outlives us.
    public static func spawn(_ argv: [String], output: String? = nil, truncate: Bool = false, newSession: Bool = false,
                             environment: [String: String]? = nil) throws -> Int32 {
        try spawn(argv, newSession: newSession, environment: environment) { actions in
            if let output {
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND), 0o644)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            }
        }
    }

    /// Starts `argv` with stdin from /dev/null and stdout+stderr into a pipe: its PID and the pipe's reading end
    /// (the caller reads it to EOF and closes it).
    public static func spawnCapturing(_ argv: [String]) throws -> (pid: Int32, output: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SpawnError("cannot make a pipe for \(argv[0]): \(errnoText(errno))") }
        // Close-on-exec: no other child keeps our pipe open (the dup2 below clears it on the child's own copy).
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(fds[1]) }
        do {
            let pid = try spawn(argv, newSession: false, environment: nil) { actions in
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
                posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
            }
            return (pid, fds[0])
        } catch {
            close(fds[0])
            throw error
        }
    }

    /// Marks every descriptor above stderr close-on-exec, so a child gets only 0-2 (and what the file actions give
    /// it): a long-lived child (an agent, a server that daemonizes) must not hold our caller's pipes or sockets open
    /// (Foundation's Process, for one, waits for a socket of its own to close before it reaps).
    public static func closeInheritedDescriptorsOnExec() {
        guard let dir = opendir("/proc/self/fd") else { return }
        defer { closedir(dir) }
        let own = dirfd(dir)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), fd > 2, fd != own else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    private static func spawn(_ argv: [String], newSession: Bool, environment: [String: String]?,
                              files: (inout posix_spawn_file_actions_t) -> Void) throws -> Int32 {
        closeInheritedDescriptorsOnExec()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        files(&actions)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGHUP, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        // 0x80 is POSIX_SPAWN_SETSID (glibc; not imported into Swift).
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | (newSession ? 0x80 : 0))
        let cargs = argv.map { strdup($0) } + [nil]
        let env = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            cargs.forEach { free($0) }
            env?.forEach { free($0) }
        }
        var pid: pid_t = 0
        let r = env.map { e in posix_spawnp(&pid, argv[0], &actions, &attr, cargs, e) }
            ?? posix_spawnp(&pid, argv[0], &actions, &attr, cargs, environ)
        guard r == 0 else { throw SpawnError("cannot start \(argv[0]): \(errnoText(r))") }
        return pid
    }

    /// Stops a child of ours: SIGTERM (and SIGCONT, should it be stopped), SIGKILL after `grace`; reaps it.
    public static func terminate(_ pid: Int32, grace: Duration = .seconds(5)) {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        kill(pid, SIGCONT)
        let deadline = ContinuousClock.now + grace
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                return
            }
            usleep(20_000)
        }
    }

    /// Waits for a child; its exit status, or 128 + the signal that ended it.
    public static func wait(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Reads a descriptor to its end and closes it.
    public static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { out += buffer[0..<n]; continue }
            if n < 0, errno == EINTR { continue }
            break
        }
        close(fd)
        return out
    }

    /// Runs a command to its end; its exit status.
    public static func run(_ argv: [String], output: String? = nil) throws -> Int32 {
        wait(try spawn(argv, output: output, truncate: true))
    }
}

public struct SpawnError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
