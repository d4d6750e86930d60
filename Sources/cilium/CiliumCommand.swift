import HTTPTransport
import API
import ArgumentParser
import Foundation

@main
struct CiliumCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cilium",
        abstract: "CLI for the local Cilium agent.",
        subcommands: [StatusCommand.self, ConfigCommand.self, EndpointCommand.self, IdentityCommand.self, NodeCommand.self,
                      PolicyCommand.self, ServiceCommand.self, BPFCommand.self, EncryptCommand.self, ClusterMeshCommand.self, ConnectivityCommand.self, VersionCommand.self])
}

struct AgentOptions: ParsableArguments {
    @Option(name: [.customShort("H"), .long], help: "The agent's API socket, as unix:///path (default: $CILIUM_SOCK or /var/run/cilium/cilium.sock).")
    var host: String?

    var socketPath: String {
        let raw = host ?? ProcessInfo.processInfo.environment["CILIUM_SOCK"] ?? "unix:///var/run/cilium/cilium.sock"
        return raw.hasPrefix("unix://") ? String(raw.dropFirst("unix://".count)) : raw
    }

    var client: UnixHTTPClient { UnixHTTPClient(socketPath: socketPath, timeout: 30) }

    /// A request whose non-2xx answer becomes a clear error and a failing exit.
    func request(_ method: String, _ path: String, body: Data? = nil) throws -> Data {
        let (status, data) = try client.send(method: method, path: path, body: body)
        guard (200..<300).contains(status) else {
            throw CLIError(APIClientError.message(fromBody: data))
        }
        return data
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

enum OutputFormat: String, ExpressibleByArgument {
    case text, json
}

func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try enc.encode(value), as: UTF8.self))
}

/// Runs `body`, turning errors into a message on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the CLI version.")
    func run() { print("cilium \(AgentVersion.string)") }
}
