import API
import ArgumentParser
import Foundation

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "View or change the agent's configuration.",
        subcommands: [View.self, Get.self, Set.self])

    struct View: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every key with its value in force.")
        @OptionGroup var agent: AgentOptions
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text

        func run() throws {
            try reportingErrors {
                let resp = try JSONDecoder().decode(ConfigResponse.self, from: try agent.request("GET", "/v1/config"))
                if output == .json { try printJSON(resp) } else {
                    for e in resp.values { print((e.key).padding(toLength: 48, withPad: " ", startingAt: 0) + e.value) }
                }
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one key's value in force (all keys without an argument).")
        @OptionGroup var agent: AgentOptions
        @Argument var key: String?

        func run() throws {
            try reportingErrors {
                if let key {
                    let q = key.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? key
                    let e = try JSONDecoder().decode(ConfigEntry.self, from: try agent.request("GET", "/v1/config?key=\(q)"))
                    print(e.value)
                } else {
                    let resp = try JSONDecoder().decode(ConfigResponse.self, from: try agent.request("GET", "/v1/config"))
                    for e in resp.values { print("\(e.key)=\(e.value)") }
                }
            }
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change keys in the node's config file and reload the agent.",
            discussion: "A bad value is refused: the file and the running configuration stay as they were.")
        @OptionGroup var agent: AgentOptions
        @Argument(help: "key=value pairs.") var settings: [String]

        func run() throws {
            try reportingErrors {
                let body = try JSONEncoder().encode(ConfigSetRequest(settings: settings))
                _ = try agent.request("PUT", "/v1/config", body: body)
                for s in settings { print("set \(s)") }
            }
        }
    }
}
