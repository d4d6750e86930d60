import ConnectionFlood
import Agent
import Foundation
import Glibc
import LinuxNet

/// Issue 16's server load: a real agent with all four listeners (API socket, the agent's and
/// Hubble's Prometheus ports, the service map page), N connections that each send half a
/// request head and stop, one listener at a time (the test and the agent share this machine's
/// open-file limit).
enum ServerLoadBenchmark {
    static let headerTimeout = 4

    static func run(bin: String) throws -> [(String, String, String)] {
        let perListener = BenchMode.pick(5000, quick: 1000)
        ConnectionFlood.raiseOpenFileLimit()
        let agent = try BenchAgent(bin: bin, extraConfig: ConnectionFlood.everyListenerConfig)
        defer { agent.remove() }
        try agent.namespace.run { try Netlink().setLinkUp("lo") }
        try agent.start(["--set", "agent.http.headerTimeoutSeconds=\(headerTimeout)"])
        Thread.sleep(forTimeInterval: 2)
        let pid = String(agent.pid)
        let idleRSS = Bench.rssMB(pid), idleAnon = Bench.rssMB(pid, "RssAnon:")
        let idleThreads = ProcessFigures.status(agent.pid, "Threads:")

        var rows: [(String, String, String)] = []
        var slowest = 0.0, maxThreads = idleThreads, closedAll = true, slowestClose = 0.0
        for (name, target) in ConnectionFlood.listeners(apiSocket: agent.socket) {
            let flood = ConnectionFlood(target)
            let opened = ContinuousClock.now
            try agent.namespace.run { try flood.open(perListener) }
            while ProcessFigures.openFiles(agent.pid) < perListener && ContinuousClock.now - opened < .seconds(30) { usleep(50_000) }
            Thread.sleep(forTimeInterval: 0.5)
            for _ in 0..<3 { slowest = max(slowest, try timedStatus(bin: bin, socket: agent.socket)) }
            maxThreads = max(maxThreads, ProcessFigures.status(agent.pid, "Threads:"))
            rows.append(("agent RSS, \(perListener) idle connections on the \(name)",
                         String(format: "%.1f MB (%.1f anon; idle %.1f/%.1f)", Bench.rssMB(pid), Bench.rssMB(pid, "RssAnon:"), idleRSS, idleAnon),
                         "< 60 MB"))
            let closing = ContinuousClock.now
            let closed = flood.waitClosed(timeout: .seconds(headerTimeout * 4))
            slowestClose = max(slowestClose, Bench.seconds(ContinuousClock.now - closing))
            closedAll = closedAll && closed == perListener
            flood.closeAll()
        }
        Thread.sleep(forTimeInterval: 1)
        rows.append(("agent RSS after the four floods are gone",
                     String(format: "%.1f MB (%.1f anon)", Bench.rssMB(pid), Bench.rssMB(pid, "RssAnon:")), "no growth per flood"))
        rows.append(("agent threads, idle / with idle connections held", "\(idleThreads) / \(maxThreads)", "bounded"))
        rows.append(("cilium status while the connections are held (slowest)", String(format: "%.0f ms", slowest * 1000), "< 1 s"))
        rows.append(("half heads closed after the header timeout (\(headerTimeout) s)",
                     closedAll ? String(format: "all, within %.1f s of the wait", slowestClose) : "not measured: some stayed open",
                     "all"))
        return rows
    }

    static func timedStatus(bin: String, socket: String) throws -> Double {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin + "/cilium")
        p.arguments = ["status", "--brief"]
        p.environment = ["CILIUM_SOCK": "unix://" + socket]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        let start = ContinuousClock.now
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw AgentError("cilium status failed with \(p.terminationStatus) under load") }
        return Bench.seconds(ContinuousClock.now - start)
    }
}
