import Foundation
import Spawning
import Testing
@testable import KVStore
#if canImport(Glibc)
import Glibc
#endif

/// A private etcd for tests: 127.0.0.1 only, random free ports, a temporary
/// data directory; stopped by its PID (also when the test fails).
final class EtcdServer: Sendable {
    let clientPort: Int
    let peerPort: Int
    let directory: String
    var clientURL: String { "http://127.0.0.1:\(clientPort)" }
    private let pid = Locked<pid_t>(0)

    private init(clientPort: Int, peerPort: Int, directory: String) {
        self.clientPort = clientPort
        self.peerPort = peerPort
        self.directory = directory
    }

    /// Starts etcd and waits until it answers.
    static func start() async throws -> EtcdServer {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("kvstore-etcd-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // A port found free may be taken by someone else before etcd binds
        // it: then try other ports.
        for attempt in 1...3 {
            let server = EtcdServer(clientPort: try freePort(), peerPort: try freePort(), directory: directory)
            do {
                try await server.restart()
                return server
            } catch {
                let busy = server.logTail().contains("address already in use")
                server.kill(keepData: attempt < 3 && busy)
                if attempt == 3 || !busy { throw error }
                try? FileManager.default.removeItem(atPath: "\(directory)/data")
                try? FileManager.default.removeItem(atPath: "\(directory)/etcd.log")
            }
        }
        throw TestFailure("unreachable")
    }

    /// The command line the tests run.
    var arguments: [String] {
        let peer = "http://127.0.0.1:\(peerPort)"
        return ["/usr/bin/etcd", "--name", "default", "--data-dir", "\(directory)/data",
                "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "default=\(peer)"]
    }

    /// (Re)starts the process on the same ports and data directory.
    func restart() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") else {
            throw TestFailure("etcd is not installed: apt-get install -y etcd-server etcd-client")
        }
        let child = try ChildProcess.spawn(arguments, output: "\(directory)/etcd.log")
        pid.withLock { $0 = child }

        let probe = try EtcdKVStore(endpoints: [clientURL], timeout: .seconds(1))
        let deadline = ContinuousClock.now + .seconds(30)
        var last = KVStoreHealth.failure(message: "not asked yet")
        while ContinuousClock.now < deadline {
            last = await probe.status()
            if last.isOK { return }
            var status: Int32 = 0
            if waitpid(child, &status, WNOHANG) == child {
                pid.withLock { $0 = 0 }
                throw TestFailure("etcd exited (status \(status)):\n\(logTail())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("etcd did not answer on \(clientURL) within 30 s (\(last)):\n\(logTail())")
    }

    func logTail() -> String {
        let text = (try? String(contentsOfFile: "\(directory)/etcd.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }

    /// Sends SIGSTOP / SIGCONT: etcd then holds connections without answering.
    func pause() { signal(SIGSTOP) }
    func resume() { signal(SIGCONT) }

    private func signal(_ sig: Int32) {
        let p = pid.withLock { $0 }
        if p > 0 { Glibc.kill(p, sig) }
    }

    /// Terminates the process (SIGTERM, SIGKILL after 5 s) and reaps it.
    /// `keepData` keeps the data directory for `restart()`.
    func kill(keepData: Bool) {
        let p = pid.withLock { p in defer { p = 0 }; return p }
        ChildProcess.terminate(p)
        if !keepData { try? FileManager.default.removeItem(atPath: directory) }
    }

    func stop() { kill(keepData: false) }

    /// Ports handed out in this process, so that concurrent suites never
    /// get the same one.
    private static let handedOut = Locked<Set<Int>>([])

    static func freePort() throws -> Int {
        for _ in 0..<20 {
            let port = try unusedPort()
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw TestFailure("no free port")
    }

    private static func unusedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { throw TestFailure("bind: \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a fresh etcd and stops it afterwards, also on failure.
func withEtcd<R>(_ body: (EtcdServer) async throws -> R) async throws -> R {
    let server = try await EtcdServer.start()
    do {
        let result = try await body(server)
        server.stop()
        return result
    } catch {
        server.stop()
        throw error
    }
}
