import Agent
import ArgumentParser
import Foundation

@main
struct CiliumAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cilium-agent",
        abstract: "The Cilium node agent: eBPF networking, policy, load balancing and observability for this node.",
        discussion: """
        Runs as a systemd Type=notify service (see config/cilium-agent.service): READY once the datapath is in \
        place, STATUS with a health summary, WATCHDOG when the unit has WatchdogSec=, RELOADING on SIGHUP, \
        STOPPING on SIGTERM. A bad config file refuses to start (or to reload) and says where and why.
        """)

    @Option(name: .long, help: "The node's config file (Helm-values-shaped YAML, see config/values.yaml).")
    var config: String = "/etc/cilium/values.yaml"

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, as Helm's --set (repeatable).", valueName: "key=value"))
    var overrides: [String] = []

    /// ArgumentParser's entry, after the heap is set up (before any other thread allocates).
    static func main() async {
        AgentDaemon.useOneHeapArena()
        do {
            var command = try parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    func run() async throws {
        let daemon: AgentDaemon
        do {
            daemon = try AgentDaemon(options: AgentOptions(configPath: config, overrides: overrides))
        } catch {
            FileHandle.standardError.write(Data("cilium-agent: refusing to start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let code = await daemon.run()
        if code != 0 { throw ExitCode(code) }
    }
}
