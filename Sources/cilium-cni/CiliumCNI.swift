import CNIConfig
import Foundation
import Glibc

/// cilium-cni: the CNI plugin (spec 1.0, STATUS from 1.1) that attaches a container to the node's
/// Cilium agent. The runtime sets CNI_* variables and sends the network configuration on stdin; the
/// result (or a CNI error object, with exit status 1) goes to stdout.
@main
struct CiliumCNI {
    static func main() {
        let environment = ProcessInfo.processInfo.environment
        let input: Data
        do {
            input = try FileHandle.standardInput.readToEnd() ?? Data()
        } catch {
            fail(CNIError(.ioFailure, "cannot read the network configuration from stdin", details: "\(error)"),
                 version: "1.0.0")
        }
        // Errors speak the version of the request when it is one this plugin knows.
        let requested = NetworkConfig.peekVersion(input)
        let version = requested.flatMap { supportedVersions.contains($0) ? $0 : nil } ?? "1.0.0"
        do throws(CNIError) {
            let command = try CNIEnvironment.command(from: environment)
            switch command {
            case .version:
                output(VersionResult(cniVersion: version, supportedVersions: supportedVersions).json())
            case .status:
                let config = try NetworkConfig.parse(input)
                try AgentClient(socketPath: config.agentSocket, timeout: 10).health()
            case .gc:
                // Endpoints and addresses are the agent's: it removes those whose container is gone.
                _ = try NetworkConfig.parse(input)
            case .add, .del, .check:
                let config = try NetworkConfig.parse(input)
                let env = try CNIEnvironment.parse(environment, command: command)
                let commands = Commands(env: env, config: config)
                switch command {
                case .add: output(try commands.add().json())
                case .del: try commands.del()
                default: try commands.check()
                }
            }
        } catch {
            fail(error, version: version)
        }
        exit(0)
    }

    static func output(_ data: Data) {
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    static func fail(_ error: CNIError, version: String) -> Never {
        output(error.json(cniVersion: version))
        // The runtime shows stdout; stderr helps when the plugin is run by hand or its log is captured.
        let line = "cilium-cni: \(error)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        exit(1)
    }
}
