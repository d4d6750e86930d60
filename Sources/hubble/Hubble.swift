import FlowDisplay
import HTTPTransport
import API
import Foundation

/// `hubble`: flows from one agent or several (merged in time order).
///
///   hubble observe [--server unix:///path]... [-f|--follow] [--last N] [--since T] [--until T]
///                  [filters] [-o compact|dict|table|json] [--print-policy-names]
///   hubble status [--server unix:///path]...
@main
struct HubbleCommand {
    static let usage = """
        Usage:
          hubble observe [flags]   show flows (filters: values of one flag OR-ed, flags AND-ed; --not negates the next filter)
          hubble status [flags]    flows seen, buffer, flows/s

        Flags:
          --server ADDR            unix:///path/to/cilium.sock (default unix:///var/run/cilium/cilium.sock); repeat to merge agents
          -f, --follow             keep printing new flows
          --last N                 the last N matching flows (default 20 without --follow)
          --since T, --until T     RFC 3339 time, or a duration ago: 30s, 5m, 2h
          --pod, --from-pod, --to-pod [NAMESPACE/]POD-PREFIX
          -n, --namespace, --from-namespace, --to-namespace NAMESPACE
          -l, --label, --from-label, --to-label KEY[=VALUE][,...]
          --ip, --from-ip, --to-ip ADDRESS|CIDR
          --port, --from-port, --to-port PORT
          --identity, --from-identity, --to-identity ID
          --protocol tcp|udp|icmp   --verdict FORWARDED|DROPPED|AUDIT|...   -t, --type trace|drop|policy-verdict
          --traffic-direction ingress|egress   --drop-reason-desc NAME   --node-name NODE
          --not                    the next filter excludes instead
          -o, --output compact|dict|table|json   --print-policy-names   --print-node-name
        """

    static func main() async {
        var args = Array(CommandLine.arguments.dropFirst())
        guard let command = args.first else { fail(usage, code: 2) }
        args.removeFirst()
        do {
            switch command {
            case "observe": try await observe(try ObserveOptions(args))
            case "status": try await status(try ObserveOptions(args))
            case "-h", "--help", "help": print(usage)
            default: fail("unknown command \"\(command)\" for \"hubble\"\n\n\(usage)", code: 2)
            }
        } catch let e as UsageError {
            fail("Error: \(e.message)\nRun 'hubble --help' for usage.", code: 2)
        } catch {
            fail("Error: \(error)", code: 1)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(code)
    }

    static func socketPath(_ server: String) throws -> String {
        if server.hasPrefix("unix://") { return String(server.dropFirst("unix://".count)) }
        if server.hasPrefix("/") { return server }
        throw UsageError("--server \(server): only unix:///path/to/socket is served by this agent")
    }

    static func fetch(_ server: String, after: UInt64) async throws -> FlowsResponse {
        let client = UnixHTTPClient(socketPath: try socketPath(server), timeout: 10)
        let code: Int, body: Data
        do {
            (code, body) = try await client.send(path: "/v1/flows?after=\(after)")
        } catch {
            throw ServerError("cannot reach the agent at \(server) (\(error)); is cilium-agent running there? Point --server at its socket")
        }
        guard code == 200 else {
            throw ServerError("\(server): \(String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) (is hubble.enabled on?)")
        }
        return try JSONDecoder().decode(FlowsResponse.self, from: body)
    }

    static func status(_ o: ObserveOptions) async throws {
        var total = (seen: UInt64(0), current: 0, max: 0, rate: 0.0, lost: UInt64(0))
        for server in o.servers {
            let s = try await fetch(server, after: UInt64.max).status
            total.seen += s.seenFlows
            total.current += s.currentFlows
            total.max += s.maxFlows
            total.rate += s.flowsPerSecond
            total.lost += s.lostEvents
        }
        print("Healthcheck (via \(o.servers.joined(separator: ", "))): Ok")
        print(String(format: "Current/Max Flows: %d/%d (%.2f%%)", total.current, total.max,
                     Double(total.current) / Double(max(total.max, 1)) * 100))
        print(String(format: "Flows/s: %.2f", total.rate))
        print("Seen flows: \(total.seen), lost events: \(total.lost)")
        print("Connected Nodes: \(o.servers.count)/\(o.servers.count)")
    }

    static func observe(_ o: ObserveOptions) async throws {
        var cursors = Dictionary(uniqueKeysWithValues: o.servers.map { ($0, UInt64(0)) })
        var printer = Output(format: o.format, policyNames: o.printPolicyNames, nodeName: o.printNodeName)
        func batch() async throws -> [Flow] {
            var flows: [Flow] = []
            for server in o.servers {
                let r = try await fetch(server, after: cursors[server]!)
                if let last = r.flows.last { cursors[server] = last.seq }
                flows += r.flows.map(\.flow)
            }
            // Several agents: one timeline.
            return flows.filter(o.shows).sorted { $0.time < $1.time }
        }
        var first = try await batch()
        if let n = o.last ?? (o.follow ? nil : 20) { first = Array(first.suffix(n)) }
        printer.print(first)
        guard o.follow else {
            printer.finish()
            return
        }
        while true {
            try await Task.sleep(for: .milliseconds(250))
            printer.print(try await batch())
        }
    }
}

struct ServerError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Prints flows as they come; a table is printed whole at the end.
struct Output {
    let format: FlowPrinter.Format
    let policyNames: Bool
    let nodeName: Bool
    var rows: [[String]] = []

    init(format: FlowPrinter.Format, policyNames: Bool, nodeName: Bool) {
        self.format = format
        self.policyNames = policyNames
        self.nodeName = nodeName
    }

    mutating func print(_ flows: [Flow]) {
        for f in flows {
            switch format {
            case .compact: Swift.print(FlowPrinter.compact(f, policyNames: policyNames, nodeName: nodeName))
            case .json: Swift.print(FlowPrinter.json(f))
            case .dict: Swift.print("------------\n" + FlowPrinter.dict(f, policyNames: policyNames))
            case .table: rows.append(FlowPrinter.tableRow(f, policyNames: policyNames))
            }
        }
        if format == .table, !rows.isEmpty, !flows.isEmpty, rows.count > 200 { finish() }
        fflush(nil)
    }

    mutating func finish() {
        if format == .table {
            Swift.print(FlowPrinter.table(rows))
            rows = []
        }
    }
}

